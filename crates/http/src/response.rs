//! The mask stage for HTTP responses, and their relay to the client.
//!
//! Bodies are streamed: a pump task reads the upstream body frame by frame,
//! masks what it must and hands each piece to the client at once. Only a
//! JSON document whose fields are masked by pointer is read whole (bounded
//! by `[http] max_response_bytes`), since a pointer needs the whole tree.

use crate::proxy::{strip_hop_by_hop, Exchange};
use crate::respond::{error, full, BodyError, ClientBody, Refusal};
use crate::textstream::TextStream;
use bytes::Bytes;
use gatehouse_core::mask::{MaskCounts, Masker};
use gatehouse_core::policy::{ConnectionConfig, ConnectionKind};
use http::header::{self, HeaderValue};
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use std::sync::Arc;
use tokio::sync::mpsc;

/// How a response body is treated.
enum Plan {
    /// Bytes pass as they are (binary content, or nothing to mask).
    Pass,
    /// Streamed text masked piece by piece.
    Text,
    /// An LLM's server-sent events, masked as they stream.
    Sse,
    /// A JSON document read whole and masked by field and detector.
    Whole,
    /// One JSON document per line (a Kubernetes watch), each masked by
    /// field and detector.
    JsonLines,
    /// Field rules apply but the body cannot be masked by field.
    Refuse(&'static str),
}

/// A streaming body transformation.
pub(crate) trait Transform: Send {
    /// Bytes to send now for one upstream chunk.
    fn chunk(&mut self, bytes: Bytes) -> Result<Bytes, String>;
    /// Bytes still held at the end of the body.
    fn finish(&mut self) -> Result<Bytes, String>;
    /// What the audit record says about the response, and what was masked.
    fn summary(&mut self) -> (Option<serde_json::Value>, MaskCounts);
    /// Bytes to send the client when the stream breaks off, if its
    /// protocol has a way to say so (an SSE error event).
    fn error_tail(&mut self, _message: &str) -> Option<Bytes> {
        None
    }
    /// Whether the answer so far calls a tool (then the rest is held back
    /// until the calls are complete and decided).
    fn calls_tools(&self) -> bool {
        false
    }
    /// The tool calls of the whole answer.
    fn tool_calls(&self) -> Vec<crate::openai::LlmToolCall> {
        Vec::new()
    }
}

struct Passthrough;

impl Transform for Passthrough {
    fn chunk(&mut self, bytes: Bytes) -> Result<Bytes, String> {
        Ok(bytes)
    }
    fn finish(&mut self) -> Result<Bytes, String> {
        Ok(Bytes::new())
    }
    fn summary(&mut self) -> (Option<serde_json::Value>, MaskCounts) {
        (None, MaskCounts::default())
    }
}

pub(crate) struct MaskedText {
    pub(crate) masker: Arc<Masker>,
    pub(crate) stream: TextStream,
    pub(crate) counts: MaskCounts,
}

impl Transform for MaskedText {
    fn chunk(&mut self, bytes: Bytes) -> Result<Bytes, String> {
        Ok(self
            .stream
            .push(&self.masker, &bytes, &mut self.counts)
            .into())
    }
    fn finish(&mut self) -> Result<Bytes, String> {
        Ok(self.stream.finish(&self.masker, &mut self.counts).into())
    }
    fn summary(&mut self) -> (Option<serde_json::Value>, MaskCounts) {
        (None, std::mem::take(&mut self.counts))
    }
}

/// A stream of JSON documents, one per line, masked line by line.
struct JsonLines {
    masker: Arc<Masker>,
    fields: Vec<gatehouse_core::policy::FieldMask>,
    detectors: bool,
    line: Vec<u8>,
    limit: usize,
    counts: MaskCounts,
}

impl JsonLines {
    fn mask_line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        if line.trim_ascii().is_empty() {
            out.extend_from_slice(line);
            out.push(b'\n');
            return Ok(());
        }
        let mut value: serde_json::Value = serde_json::from_slice(line)
            .map_err(|_| "a line of the stream is not JSON, so field rules cannot be applied; the stream is cut".to_string())?;
        // A watch event carries its object under `object`; field rules are
        // written for the object.
        let is_event = value.get("type").is_some() && value.get("object").is_some();
        let target = if is_event {
            &mut value["object"]
        } else {
            &mut value
        };
        crate::jsonmask::mask_json(
            target,
            &self.fields,
            &self.masker,
            self.detectors,
            &mut self.counts,
        );
        out.extend(serde_json::to_vec(&value).unwrap_or_default());
        out.push(b'\n');
        Ok(())
    }
}

impl Transform for JsonLines {
    fn chunk(&mut self, bytes: Bytes) -> Result<Bytes, String> {
        self.line.extend_from_slice(&bytes);
        let mut out = Vec::new();
        while let Some(end) = self.line.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.line.drain(..=end).collect();
            self.mask_line(&line[..line.len() - 1], &mut out)?;
        }
        if self.line.len() > self.limit {
            return Err(format!(
                "a line of the stream is longer than {} bytes ([http] max_response_bytes)",
                self.limit
            ));
        }
        Ok(out.into())
    }

    fn finish(&mut self) -> Result<Bytes, String> {
        let rest = std::mem::take(&mut self.line);
        let mut out = Vec::new();
        if !rest.is_empty() {
            self.mask_line(&rest, &mut out)?;
            out.pop();
        }
        Ok(out.into())
    }

    fn summary(&mut self) -> (Option<serde_json::Value>, MaskCounts) {
        (None, std::mem::take(&mut self.counts))
    }
}

/// Relay `resp` to the client through the mask stage, recording the
/// result when the last byte has gone.
pub(crate) async fn relay(
    exchange: Exchange,
    conn: &ConnectionConfig,
    resp: Response<Incoming>,
    busy: crate::sessions::Busy,
) -> Response<ClientBody> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let pipeline = exchange.adapter.pipeline.clone();
    let detectors = pipeline.policy.detectors_apply(&exchange.identity);
    let fields = exchange.fields.clone();
    let facts = &exchange.request;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let textual = content_type.is_empty()
        || content_type.starts_with("text/")
        || content_type.contains("json")
        || content_type.contains("xml")
        || content_type.contains("event-stream")
        || content_type.contains("yaml")
        || [
            "csv",
            "javascript",
            "ndjson",
            "x-www-form-urlencoded",
            "graphql",
        ]
        .iter()
        .any(|t| content_type.contains(t));
    let sse = content_type.contains("event-stream");
    // Streams are told by what the request is (a Kubernetes watch or
    // followed log) and what the upstream sends, never by query text
    // alone, which a client could add to any request.
    let kube_stream = conn.kind == ConnectionKind::Kubernetes
        && (facts.verb.as_deref() == Some("watch")
            || (facts
                .resource
                .as_deref()
                .is_some_and(|r| r.ends_with("/log"))
                && query_flag(&facts.query, "follow")));
    let bodiless = facts.method == "HEAD"
        || parts.status == http::StatusCode::NO_CONTENT
        || parts.status == http::StatusCode::NOT_MODIFIED;
    let json = content_type.contains("json");
    let inspect = detectors || !fields.is_empty() || conn.kind == ConnectionKind::Openai;
    let fields_unmaskable = "field rules apply to this connection, and this response cannot be masked by field (it is not one JSON document), so it is withheld";
    let plan = if bodiless || !inspect {
        Plan::Pass
    } else if !fields.is_empty() && parts.status == http::StatusCode::PARTIAL_CONTENT {
        Plan::Refuse(fields_unmaskable)
    } else if !textual {
        if fields.is_empty() {
            Plan::Pass
        } else {
            Plan::Refuse(fields_unmaskable)
        }
    } else if sse && conn.kind == ConnectionKind::Openai {
        Plan::Sse
    } else if sse || kube_stream {
        if fields.is_empty() {
            Plan::Text
        } else if kube_stream && json {
            Plan::JsonLines
        } else {
            Plan::Refuse(fields_unmaskable)
        }
    } else if json {
        Plan::Whole
    } else if fields.is_empty() {
        Plan::Text
    } else {
        Plan::Refuse(fields_unmaskable)
    };
    // Where rules judge a model's tool calls, an answer the gateway cannot
    // read them from (text, several documents) is not passed on.
    let tools_unreadable = "rules about tool calls apply to this connection, and this answer is neither one JSON document nor an event stream, so it is withheld";
    let plan = match plan {
        Plan::Text
            if conn.kind == ConnectionKind::Openai
                && parts.status.is_success()
                && pipeline.policy.tool_rules_apply(&conn.name) =>
        {
            Plan::Refuse(tools_unreadable)
        }
        other => other,
    };
    if let Plan::Refuse(message) = plan {
        return exchange
            .refuse(parts.status, conn.kind, Refusal::BadGateway, message, None)
            .await;
    }
    let encoded = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|e| !e.eq_ignore_ascii_case("identity"));
    if encoded && !matches!(plan, Plan::Pass) {
        let message = "the upstream sent a compressed body, which gatehouse cannot inspect for masking, so it is withheld";
        return exchange
            .refuse(parts.status, conn.kind, Refusal::BadGateway, message, None)
            .await;
    }
    let masker = pipeline.masker.clone();
    let transform: Box<dyn Transform> = match plan {
        Plan::Pass => Box::new(Passthrough),
        Plan::Text if detectors => Box::new(MaskedText {
            masker,
            stream: TextStream::default(),
            counts: MaskCounts::default(),
        }),
        Plan::Text => Box::new(Passthrough),
        Plan::Sse => crate::llm::sse_transform(masker, detectors),
        Plan::JsonLines => Box::new(JsonLines {
            masker,
            fields: fields.clone(),
            detectors,
            line: Vec::new(),
            limit: exchange.adapter.settings.max_response_bytes,
            counts: MaskCounts::default(),
        }),
        Plan::Refuse(_) => unreachable!("refused above"),
        Plan::Whole => {
            let limit = exchange.adapter.settings.max_response_bytes;
            return whole(exchange, conn, parts, body, limit, &fields, detectors, busy).await;
        }
    };
    if !matches!(plan, Plan::Pass) {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BodyError>>(16);
    tokio::spawn(pump(exchange, parts.status, body, transform, tx, busy));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::from_parts(parts, StreamBody::new(stream).boxed())
}

/// Move the upstream body to the client through `transform`, then record
/// the result. Stops when the client goes away or the request's deadline
/// comes (its token expires, the access grant ends).
async fn pump(
    exchange: Exchange,
    status: http::StatusCode,
    mut body: Incoming,
    mut transform: Box<dyn Transform>,
    tx: mpsc::Sender<Result<Frame<Bytes>, BodyError>>,
    busy: crate::sessions::Busy,
) {
    let mut sent: u64 = 0;
    let mut failure: Option<String> = None;
    let deadline = exchange.deadline.clone();
    let mut deadline_end = None;
    // Output held back while a tool call in the answer awaits its decision.
    let mut held: Vec<Bytes> = Vec::new();
    let mut held_bytes = 0usize;
    let hold_limit = exchange.adapter.settings.max_response_bytes;
    loop {
        let next = tokio::select! {
            // The deadline first: nothing more is sent after it.
            biased;
            end = deadline.reached() => {
                failure = Some(end.message());
                deadline_end = Some(end);
                break;
            }
            frame = body.frame() => frame,
        };
        match next {
            None => break,
            Some(Err(e)) => {
                failure = Some(format!("the upstream body broke off: {e}"));
                break;
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers are not relayed
                };
                match transform.chunk(data) {
                    Ok(out) => {
                        if out.is_empty() {
                            continue;
                        }
                        if transform.calls_tools() {
                            held_bytes += out.len();
                            held.push(out);
                            if held_bytes > hold_limit {
                                failure = Some(format!("an answer calling a tool is held until the call is decided, and this one grew past {hold_limit} bytes ([http] max_response_bytes)"));
                                break;
                            }
                            continue;
                        }
                        sent += out.len() as u64;
                        if tx.send(Ok(Frame::data(out))).await.is_err() {
                            failure = Some("the client went away".into());
                            break;
                        }
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
    }
    if failure.is_none() {
        match transform.finish() {
            Ok(rest) if !rest.is_empty() => held.push(rest),
            Ok(_) => {}
            Err(e) => failure = Some(e),
        }
    }
    if failure.is_none() && transform.calls_tools() {
        // A client that hangs up while the call waits for approvers
        // withdraws it (dropping the wait does); so does the request's
        // deadline (the wait itself withdraws it then).
        let calls = transform.tool_calls();
        let vetted = async {
            tokio::select! {
                r = crate::toolgate::vet(&exchange, &calls) => r,
                _ = tx.closed() => Err("the client went away".into()),
            }
        };
        if let Err(why) = vetted.await {
            if let Some(end) = exchange.deadline.ended() {
                deadline_end = Some(end);
            }
            failure = Some(why);
            held.clear();
        }
    }
    match &failure {
        None => {
            for piece in held {
                sent += piece.len() as u64;
                if tx.send(Ok(Frame::data(piece))).await.is_err() {
                    break;
                }
            }
        }
        // Say so in the stream's own protocol where it has a way (an SSE
        // error event); otherwise break the body off so the client cannot
        // mistake a partial answer for a whole one.
        Some(why) => match transform.error_tail(why) {
            Some(tail) => {
                sent += tail.len() as u64;
                let _ = tx.send(Ok(Frame::data(tail))).await;
            }
            None => {
                let _ = tx.send(Err(why.clone().into())).await;
            }
        },
    }
    drop(tx);
    if let Some(end) = &deadline_end {
        exchange.record_cut(end).await;
    }
    let (summary, counts) = transform.summary();
    exchange
        .finish(status, sent, &counts, summary, failure)
        .await;
    drop(busy);
}

/// Read a JSON response whole (bounded), mask it by field rules and
/// detectors, and send it.
#[allow(clippy::too_many_arguments)]
async fn whole(
    exchange: Exchange,
    conn: &ConnectionConfig,
    mut parts: http::response::Parts,
    body: Incoming,
    limit: usize,
    fields: &[gatehouse_core::policy::FieldMask],
    detectors: bool,
    busy: crate::sessions::Busy,
) -> Response<ClientBody> {
    let status = parts.status;
    let collected = tokio::select! {
        biased;
        end = exchange.deadline.reached() => {
            return exchange.refuse_at_deadline(conn.kind, &end).await;
        }
        collected = http_body_util::Limited::new(body, limit).collect() => collected,
    };
    let bytes = match collected {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let message = if e.is::<http_body_util::LengthLimitError>() {
                format!("the upstream's JSON response is larger than gatehouse masks whole ({limit} bytes, [http] max_response_bytes), so it is withheld")
            } else {
                format!("the upstream body broke off: {e}")
            };
            return exchange
                .refuse(status, conn.kind, Refusal::BadGateway, &message, None)
                .await;
        }
    };
    let masker = &exchange.adapter.pipeline.masker;
    let mut counts = MaskCounts::default();
    if conn.kind == ConnectionKind::Openai {
        if status.is_success()
            && exchange
                .adapter
                .pipeline
                .policy
                .tool_rules_apply(&conn.name)
            && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err()
        {
            let message = "rules about tool calls apply to this connection, and this answer is not one JSON document, so it is withheld";
            return exchange
                .refuse(status, conn.kind, Refusal::BadGateway, message, None)
                .await;
        }
        let mut masked = crate::openai::mask_response(&bytes, masker);
        if !fields.is_empty() {
            // Field rules on an LLM connection apply after the detectors.
            match serde_json::from_slice::<serde_json::Value>(&masked.body) {
                Ok(mut v) => {
                    crate::jsonmask::mask_json(&mut v, fields, masker, false, &mut masked.counts);
                    masked.body = serde_json::to_vec(&v).unwrap_or_default();
                    masked.changed = true;
                }
                Err(_) => {
                    let message = "field rules apply to this connection, and the upstream's response is not valid JSON, so it is withheld";
                    return exchange
                        .refuse(status, conn.kind, Refusal::BadGateway, message, None)
                        .await;
                }
            }
        }
        if let Err(message) = crate::toolgate::vet(&exchange, &masked.summary.tool_calls).await {
            exchange
                .finish(
                    status,
                    0,
                    &masked.counts,
                    Some(crate::llm::summary_json(&masked.summary)),
                    Some(message.clone()),
                )
                .await;
            return error(Some(conn.kind), Refusal::Forbidden, &message);
        }
        let out: Bytes = if (detectors || !fields.is_empty()) && masked.changed {
            masked.body.into()
        } else {
            bytes
        };
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
        record_after(
            exchange,
            status,
            out.len() as u64,
            masked.counts,
            Some(crate::llm::summary_json(&masked.summary)),
            busy,
        );
        return Response::from_parts(parts, full(out));
    }
    let out: Bytes = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(mut value) => {
            crate::jsonmask::mask_json(&mut value, fields, masker, detectors, &mut counts);
            serde_json::to_vec(&value).unwrap_or_default().into()
        }
        Err(_) if !fields.is_empty() => {
            let message = "field rules apply to this connection, and the upstream's response is not valid JSON, so it is withheld";
            return exchange
                .refuse(status, conn.kind, Refusal::BadGateway, message, None)
                .await;
        }
        Err(_) => {
            let mut text = TextStream::default();
            let mut out = if detectors {
                text.push(masker, &bytes, &mut counts)
            } else {
                bytes.to_vec()
            };
            out.extend(text.finish(masker, &mut counts));
            out.into()
        }
    };
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    record_after(exchange, status, out.len() as u64, counts, None, busy);
    Response::from_parts(parts, full(out))
}

/// Record a whole answer's result without making the caller wait for it:
/// the request itself was recorded before it ran, and the answer is
/// already masked, as the SQL adapters record results.
fn record_after(
    exchange: Exchange,
    status: http::StatusCode,
    sent: u64,
    counts: MaskCounts,
    summary: Option<serde_json::Value>,
    busy: crate::sessions::Busy,
) {
    tokio::spawn(async move {
        exchange.finish(status, sent, &counts, summary, None).await;
        drop(busy);
    });
}

/// Whether `name=true` (or `1`) is in a query string.
fn query_flag(query: &str, name: &str) -> bool {
    query.split('&').any(|pair| {
        pair.split_once('=')
            .is_some_and(|(k, v)| k == name && (v == "true" || v == "1"))
    })
}
