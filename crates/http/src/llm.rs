//! OpenAI-compatible requests as the classify stage reads them.

use gatehouse_core::classify::http::HttpFacts;

/// Fill `facts` from an OpenAI-style request body.
pub fn read_request(facts: &mut HttpFacts, json: Option<&serde_json::Value>) -> Result<(), String> {
    if facts.method == "POST" && json.is_none() {
        return Err("an LLM request needs a JSON body".into());
    }
    if let Some(body) = json {
        facts.model = body
            .get("model")
            .and_then(|m| m.as_str())
            .map(str::to_string);
        let mut text = String::new();
        collect_text(body.get("messages"), &mut text);
        collect_text(body.get("prompt"), &mut text);
        collect_text(body.get("input"), &mut text);
        facts.text = text;
        if let Some(tools) = body.get("tools").and_then(|t| t.as_array()) {
            for t in tools {
                if let Some(n) = t
                    .pointer("/function/name")
                    .or_else(|| t.get("name"))
                    .and_then(|n| n.as_str())
                {
                    facts.tools.push(n.to_string());
                }
            }
        }
    }
    facts.summary = match &facts.model {
        Some(m) => format!("{} model={m}", facts.request_line()),
        None => facts.request_line(),
    };
    Ok(())
}

fn collect_text(v: Option<&serde_json::Value>, out: &mut String) {
    match v {
        Some(serde_json::Value::String(s)) => {
            out.push_str(s);
            out.push('\n');
        }
        Some(serde_json::Value::Array(items)) => {
            items.iter().for_each(|i| collect_text(Some(i), out))
        }
        Some(serde_json::Value::Object(map)) => {
            for key in ["content", "text", "input"] {
                collect_text(map.get(key), out);
            }
        }
        _ => {}
    }
}

/// Mask detector findings in a request's prompt strings; `None` when
/// nothing changed.
pub fn mask_prompt(
    body: &[u8],
    masker: &gatehouse_core::mask::Masker,
    counts: &mut gatehouse_core::mask::MaskCounts,
) -> Option<bytes::Bytes> {
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let before = counts.total();
    for key in ["messages", "prompt", "input"] {
        if let Some(v) = value.get_mut(key) {
            crate::jsonmask::mask_strings(v, masker, counts);
        }
    }
    (counts.total() > before).then(|| serde_json::to_vec(&value).unwrap_or_default().into())
}

/// What the audit record keeps of a non-streamed answer.
pub fn summarize(value: &serde_json::Value) -> Option<serde_json::Value> {
    Some(serde_json::json!({
        "model": value.get("model"),
        "usage": value.get("usage"),
        "text": value.pointer("/choices/0/message/content").or_else(|| value.pointer("/choices/0/text")),
        "tool_calls": value.pointer("/choices/0/message/tool_calls"),
    }))
}

/// The mask stage for a streamed answer.
pub(crate) fn sse_transform(
    masker: std::sync::Arc<gatehouse_core::mask::Masker>,
    _detectors: bool,
) -> Box<dyn crate::response::Transform> {
    Box::new(crate::response::MaskedText {
        masker,
        stream: Default::default(),
        counts: Default::default(),
    })
}
