//! The classify stage for HTTP: what each connection type can read off a
//! request, as protocol-free [`HttpFacts`] for the decide stage.

use crate::kube::percent_decode;
use gatehouse_core::classify::http::HttpFacts;
use gatehouse_core::mask::{MaskCounts, Masker};
use gatehouse_core::policy::ConnectionKind;

/// Longest stretch of a request body kept as its text for rules and the
/// audit record.
pub const TEXT_CAPTURE: usize = 64 * 1024;

/// A request as the classify stage sees it.
pub struct RequestView<'a> {
    /// Method, upper case.
    pub method: &'a str,
    /// Path below the connection's prefix.
    pub path: &'a str,
    /// Raw query, without `?`.
    pub query: &'a str,
    /// Whether the body says it is JSON.
    pub json_content: bool,
    /// Whether the body says it is a URL-encoded form.
    pub form_content: bool,
    /// The body, read whole (bounded).
    pub body: &'a [u8],
}

/// Read `req` as `kind` knows how; an error is a request the gateway
/// cannot check and therefore refuses (fail closed).
pub fn classify(
    kind: ConnectionKind,
    req: &RequestView<'_>,
    masker: &Masker,
) -> Result<HttpFacts, String> {
    let mut facts = HttpFacts {
        method: req.method.to_string(),
        path: req.path.to_string(),
        query: req.query.to_string(),
        ..HttpFacts::default()
    };
    let json = parse_json(req)?;
    facts.opaque_body = json.is_none() && !req.body.trim_ascii().is_empty();
    match kind {
        ConnectionKind::Openai => {
            if !matches!(req.method, "GET" | "POST" | "HEAD" | "OPTIONS") {
                return Err(format!(
                    "{} is not a method of the OpenAI API that gatehouse can check",
                    req.method
                ));
            }
            crate::llm::read_request(&mut facts, json.as_ref(), masker)?;
            // Rules see every string of the request, not only the fields
            // the prompt is read from: a key in another case, tool-call
            // arguments in the history and tool descriptions reach the
            // model too.
            if let Some(j) = &json {
                facts.text = json_strings(j);
            }
        }
        ConnectionKind::Kubernetes => {
            crate::kubefacts::read_request(&mut facts)?;
            if facts.text.is_empty() {
                facts.text = body_text(json.as_ref(), req.body);
            }
        }
        _ => {
            facts.text = body_text(json.as_ref(), req.body);
            let query = crate::proxy::redact_query(req.query);
            facts.summary = if query.is_empty() {
                format!("{} {}", req.method, req.path)
            } else {
                format!("{} {}?{query}", req.method, req.path)
            };
        }
    }
    // Values in the query (of JSON APIs; Kubernetes and LLM queries are
    // read above), and in a form body, are part of what the request says.
    let mut extra = if kind == ConnectionKind::Http {
        form_values(req.query)
    } else {
        String::new()
    };
    if json.is_none() && req.form_content {
        extra.push_str(&form_values(&String::from_utf8_lossy(req.body)));
    }
    if !extra.is_empty() {
        facts.text.push('\n');
        facts.text.push_str(&extra);
    }
    facts.json = json;
    let mut counts = MaskCounts::default();
    if masker.mask_detected(&facts.text, &mut counts).is_some() {
        facts.detected = counts.iter().map(|(e, _)| *e).collect();
    }
    Ok(facts)
}

/// The body as JSON when it claims to be JSON (or looks like it), `None`
/// otherwise; a body that claims JSON and is not is refused.
fn parse_json(req: &RequestView<'_>) -> Result<Option<serde_json::Value>, String> {
    let body = req.body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(req.body);
    let trimmed = body.trim_ascii_start();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let looks_json = matches!(trimmed.first(), Some(b'{') | Some(b'['));
    if !req.json_content && !looks_json {
        return Ok(None);
    }
    match serde_json::from_slice(body) {
        Ok(v) => Ok(Some(v)),
        Err(e) => Err(format!(
            "the request body is not valid JSON ({e}), so gatehouse cannot check it"
        )),
    }
}

/// What rules' `pattern` and `detects` read of a body: the decoded string
/// values of JSON (so `\u002d` escapes hide nothing), else the text.
/// Values under keys named like secrets are left out, since this text is
/// also what the audit record keeps.
fn body_text(json: Option<&serde_json::Value>, body: &[u8]) -> String {
    match json {
        Some(j) => json_strings(j),
        None => String::from_utf8_lossy(body).into_owned(),
    }
}

/// Every string (and number) in `value`, one per line, skipping values of
/// secret-named keys.
pub fn json_strings(value: &serde_json::Value) -> String {
    fn walk(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            serde_json::Value::Number(n) => {
                out.push_str(&n.to_string());
                out.push('\n');
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    if is_secret_name(k) {
                        out.push_str(k);
                        out.push_str(": ***\n");
                    } else {
                        walk(v, out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = String::new();
    walk(value, &mut out);
    out
}

/// The decoded values of `a=1&b=x+y` (a query or a form body), one per
/// line; values of secret-named keys are left out.
pub fn form_values(encoded: &str) -> String {
    let mut out = String::new();
    for pair in encoded.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or(("", pair));
        if is_secret_name(&percent_decode(k, true)) {
            continue;
        }
        out.push_str(&percent_decode(v, true));
        out.push('\n');
    }
    out
}

/// Whether a field or parameter name suggests a credential.
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "authorization",
        "credential",
        "private_key",
    ]
    .iter()
    .any(|s| lower.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_secrets_in_json_bodies() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"memo":"123\u002d45\u002d6789","password":"hunter2","n":5}"#)
                .unwrap();
        let text = json_strings(&v);
        assert!(text.contains("123-45-6789"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("password: ***"), "{text}");
    }

    #[test]
    fn queries_and_forms_are_read_for_rules() {
        assert_eq!(
            form_values("ssn=123%2D45%2D6789&card=4111+1111&token=abc"),
            "123-45-6789\n4111 1111\n"
        );
        assert_eq!(form_values("a=%ZZ&b=%4"), "%ZZ\n%4\n");
    }
}
