//! The classify stage for HTTP requests (LLM endpoints, JSON APIs, the
//! Kubernetes API).
//!
//! The HTTP adapter reads what its connection type knows how to read (an
//! OpenAI request's prompt and tools, a Kubernetes request's verb and
//! resource) and hands the decide stage these protocol-free facts, so the
//! same rules file covers SQL, shell and HTTP.

use serde::Serialize;

/// Facts about one HTTP request, as rules see them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HttpFacts {
    /// Request method, upper case.
    pub method: String,
    /// Path below the connection's prefix (`/v1/chat/completions`).
    pub path: String,
    /// Raw query string, without the `?`.
    pub query: String,
    /// The JSON body, when the request had one that parsed.
    #[serde(skip)]
    pub json: Option<serde_json::Value>,
    /// The request has a body the gateway could not read as JSON (a form,
    /// YAML, binary): rules about JSON fields cannot be checked against
    /// it, so block and approve rules that name fields match it.
    pub opaque_body: bool,
    /// The text a person or model wrote into the request (an LLM prompt),
    /// which `pattern` and `detects` look at; empty when there is none.
    #[serde(skip)]
    pub text: String,
    /// Entity types the content detectors found in `text` (filled by the
    /// adapter, which holds the masker).
    pub detected: Vec<crate::mask::EntityType>,
    /// The LLM model asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Tool or function names the request offers, forces or has called.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `delete`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    /// Kubernetes resource, with its subresource (`pods/exec`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Kubernetes namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Kubernetes object name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the connection type records beyond these facts (an LLM
    /// request's messages, masked, and the tools it offers).
    #[serde(skip)]
    pub detail: Option<serde_json::Value>,
    /// One line for people: what the request does (`delete namespaces/prod`,
    /// `POST /v1/chat/completions model=llama`).
    pub summary: String,
}

impl HttpFacts {
    /// The request line rules' `pattern` also sees (`GET /path?query`).
    pub fn request_line(&self) -> String {
        if self.query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, self.query)
        }
    }
}

/// Look up a JSON pointer where `*` stands for every array element or
/// object member, so `/messages/*/content` reaches each message.
pub fn json_pointer_all<'a>(
    value: &'a serde_json::Value,
    pointer: &str,
) -> Vec<&'a serde_json::Value> {
    let mut current = vec![value];
    if pointer.is_empty() {
        return current;
    }
    for raw in pointer.trim_start_matches('/').split('/') {
        let token = raw.replace("~1", "/").replace("~0", "~");
        let mut next = Vec::new();
        for v in current {
            match (v, token.as_str()) {
                (serde_json::Value::Array(items), "*") => next.extend(items.iter()),
                (serde_json::Value::Object(map), "*") => next.extend(map.values()),
                (serde_json::Value::Array(items), t) => {
                    if let Some(item) = t.parse::<usize>().ok().and_then(|i| items.get(i)) {
                        next.push(item);
                    }
                }
                // Many servers match field names without regard to case
                // (Go, ASP.NET), so a rule about `/amount` also sees `AMOUNT`.
                (serde_json::Value::Object(map), t) => next.extend(
                    map.iter()
                        .filter(|(k, _)| k.eq_ignore_ascii_case(t))
                        .map(|(_, v)| v),
                ),
                _ => {}
            }
        }
        current = next;
    }
    current
}

/// A JSON value as a rule's regex sees it: strings without quotes, other
/// scalars as written, arrays and objects as compact JSON.
pub fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        // A whole number too large for 64 bits is still written out in
        // digits, so `^[0-9]{5,}` sees `100000000000000000000`, not `1e20`.
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e300 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointer_wildcards_reach_every_element() {
        let v = json!({"messages": [{"content": "a"}, {"content": "b"}], "n": 2});
        let found: Vec<String> = json_pointer_all(&v, "/messages/*/content")
            .into_iter()
            .map(json_text)
            .collect();
        assert_eq!(found, ["a", "b"]);
        assert_eq!(json_text(json_pointer_all(&v, "/n")[0]), "2");
        assert!(json_pointer_all(&v, "/missing/x").is_empty());
        assert_eq!(
            json_text(json_pointer_all(&v, "/messages/1/content")[0]),
            "b"
        );
    }
}
