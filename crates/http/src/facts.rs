//! The classify stage for HTTP: what each connection type can read off a
//! request, as protocol-free [`HttpFacts`] for the decide stage.

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
    match kind {
        ConnectionKind::Openai => {
            crate::llm::read_request(&mut facts, req.body, masker)?;
        }
        ConnectionKind::Kubernetes => crate::kubefacts::read_request(&mut facts)?,
        _ => {
            facts.text = capture(req.body);
            facts.summary = facts.request_line();
        }
    }
    facts.json = json;
    let mut counts = MaskCounts::default();
    if masker.mask_detected(&facts.text, &mut counts).is_some() {
        facts.detected = counts.iter().map(|(e, _)| *e).collect();
    }
    Ok(facts)
}

/// The body as JSON when it claims to be JSON (or is an LLM call), `None`
/// for an empty body; a body that claims JSON and is not is refused.
fn parse_json(req: &RequestView<'_>) -> Result<Option<serde_json::Value>, String> {
    let trimmed = req.body.trim_ascii_start();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let looks_json = matches!(trimmed.first(), Some(b'{') | Some(b'['));
    if !req.json_content && !looks_json {
        return Ok(None);
    }
    match serde_json::from_slice(req.body) {
        Ok(v) => Ok(Some(v)),
        Err(e) if req.json_content => Err(format!(
            "the request body is not valid JSON ({e}), so gatehouse cannot check it"
        )),
        Err(_) => Ok(None),
    }
}

/// The first [`TEXT_CAPTURE`] bytes of `body` as text.
pub fn capture(body: &[u8]) -> String {
    let end = body.len().min(TEXT_CAPTURE);
    String::from_utf8_lossy(&body[..end]).into_owned()
}
