//! The LLM connection type on the pipeline: OpenAI-style requests read for
//! the decide stage, answers masked whole or as they stream, and the
//! model's own tool calls decided like requests.

use crate::openai::{self, LlmRequest, LlmResponseSummary, SseMasker};
use crate::response::Transform;
use bytes::Bytes;
use gatehouse_core::classify::http::HttpFacts;
use gatehouse_core::mask::{MaskCounts, Masker};
use std::sync::Arc;

/// Fill `facts` from an OpenAI-style request; a POST the gateway cannot
/// read is refused (it could not be checked).
pub fn read_request(
    facts: &mut HttpFacts,
    body: Option<&serde_json::Value>,
    masker: &Masker,
) -> Result<Option<LlmRequest>, String> {
    if facts.opaque_body {
        return Err("gatehouse cannot read this LLM request: its body is not JSON".into());
    }
    let parsed = if facts.method == "POST" || body.is_some() {
        match openai::read_request(&facts.path, body) {
            Ok(r) => Some(r),
            Err(openai::LlmError::UnknownEndpoint(_)) if facts.method != "POST" => None,
            Err(openai::LlmError::UnknownEndpoint(p)) => {
                return Err(format!(
                    "{p} is not an OpenAI-compatible endpoint gatehouse can check (chat/completions, completions, embeddings, responses, models)"
                ))
            }
            Err(e) => return Err(format!("gatehouse cannot read this LLM request: {e}")),
        }
    } else {
        None
    };
    if let Some(r) = &parsed {
        facts.model = r.model.clone();
        // What the request makes happen: a forced tool, and tool calls it
        // reports as made. Tools merely offered are recorded, not matched.
        facts.tools = r
            .tool_choice
            .iter()
            .chain(r.tool_calls.iter())
            .cloned()
            .collect();
        let mut messages = r.messages.clone();
        crate::jsonmask::mask_strings(&mut messages, masker, &mut MaskCounts::default());
        facts.detail = Some(serde_json::json!({
            "endpoint": r.endpoint.as_str(),
            "stream": r.stream,
            "messages": messages,
            "messages_truncated": r.messages_truncated,
            "tools_offered": r.tools_offered,
            "tool_choice": r.tool_choice,
        }));
    }
    facts.summary = match (&parsed, &facts.model) {
        (Some(r), Some(m)) => format!(
            "{} {} model={m}{}",
            facts.method,
            r.endpoint.as_str(),
            if r.stream { " stream" } else { "" }
        ),
        _ => facts.request_line(),
    };
    Ok(parsed)
}

/// Mask detector findings in every string of a request before it reaches
/// the model (prompts, tool results, history, whatever the keys' case);
/// `None` when nothing changed (the original bytes go).
pub fn mask_prompt(body: &[u8], masker: &Masker, counts: &mut MaskCounts) -> Option<Bytes> {
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let before = counts.total();
    crate::jsonmask::mask_strings(&mut value, masker, counts);
    (counts.total() > before).then(|| serde_json::to_vec(&value).unwrap_or_default().into())
}

/// The audit record's view of an answer.
pub fn summary_json(summary: &LlmResponseSummary) -> serde_json::Value {
    serde_json::to_value(summary).unwrap_or_default()
}

/// The mask stage for a streamed answer. With detectors off for this
/// caller the bytes go out as they came, but the record is still masked.
pub(crate) fn sse_transform(masker: Arc<Masker>, detectors: bool) -> Box<dyn Transform> {
    Box::new(SseTransform {
        masker,
        detectors,
        sse: SseMasker::new(),
        calls_tools: false,
    })
}

struct SseTransform {
    masker: Arc<Masker>,
    detectors: bool,
    sse: SseMasker,
    calls_tools: bool,
}

impl Transform for SseTransform {
    fn chunk(&mut self, bytes: Bytes) -> Result<Bytes, String> {
        let masked = self
            .sse
            .push(&self.masker, &bytes)
            .map_err(|e| e.to_string())?;
        if !self.calls_tools {
            self.calls_tools = self.sse.has_tool_calls();
        }
        Ok(if self.detectors { masked.into() } else { bytes })
    }

    fn finish(&mut self) -> Result<Bytes, String> {
        let rest = self.sse.finish(&self.masker).map_err(|e| e.to_string())?;
        Ok(if self.detectors {
            rest.into()
        } else {
            Bytes::new()
        })
    }

    fn summary(&mut self) -> (Option<serde_json::Value>, MaskCounts) {
        (
            Some(summary_json(&self.sse.summary())),
            self.sse.counts().clone(),
        )
    }

    fn calls_tools(&self) -> bool {
        self.calls_tools
    }

    fn tool_calls(&self) -> Vec<openai::LlmToolCall> {
        self.sse.summary().tool_calls
    }

    fn error_tail(&mut self, message: &str) -> Option<Bytes> {
        Some(openai::sse_error_event(message, "api_error", Some("stream_interrupted")).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::mask::{MaskerConfig, Strategy, TokenizeKey, DETECTABLE};

    fn masker() -> Arc<Masker> {
        Arc::new(Masker::new(MaskerConfig {
            detectors: DETECTABLE.to_vec(),
            strategies: Default::default(),
            default_strategy: Strategy::Redact,
            tokenize_key: TokenizeKey::new(vec![3; 32]),
        }))
    }

    /// However the upstream's bytes are cut, no output naming a tool leaves
    /// the transform before it says the answer calls tools (which is when
    /// the pump starts holding the answer back for the decision).
    #[test]
    fn a_tool_call_is_seen_before_any_of_it_is_released() {
        let stream = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Sure, paying now. \"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"wire_transfer\",\"arguments\":\"\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"amount\\\": 5}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n",
        )
        .as_bytes();
        let legacy = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"function_call\":{\"name\":\"wire_transfer\",\"arguments\":\"{}\"}}}]}\n\n",
            "data: [DONE]\n\n",
        )
        .as_bytes();
        for bytes in [stream, legacy] {
            for cut in 1..bytes.len() {
                let mut t = sse_transform(masker(), true);
                for piece in [&bytes[..cut], &bytes[cut..]] {
                    let out = t.chunk(Bytes::copy_from_slice(piece)).unwrap();
                    let shows_call = out.windows(13).any(|w| w == b"wire_transfer");
                    assert!(!shows_call || t.calls_tools(), "cut at {cut}");
                }
                assert!(t.calls_tools(), "cut at {cut}");
                assert_eq!(t.tool_calls()[0].name, "wire_transfer", "cut at {cut}");
            }
        }
    }
}
