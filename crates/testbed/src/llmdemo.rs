//! A small OpenAI-compatible upstream for `gatehouse demo` and the
//! integration tests: it answers like a real inference server (chat,
//! completions, embeddings, responses, models; streamed and not) but with a
//! fixed answer full of fake personal data, so the gateway's masking has
//! something to catch.
//!
//! It requires `Authorization: Bearer <api_key>` and answers 401 otherwise,
//! which proves the gateway swapped the caller's token for the upstream key.
//! Streamed answers split the SSN across two events and the card number
//! across two tool-call argument chunks, the hard case for a streaming
//! masker. The answer echoes the start of the last user message, so a test
//! can steer what comes back.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// The model the demo upstream says it is.
pub const MODEL: &str = "gatehouse-demo";

/// The fake SSN every answer holds (passes the SSN validator).
pub const FAKE_SSN: &str = "123-45-6789";

/// The fake email every answer holds.
pub const FAKE_EMAIL: &str = "jane.doe@example.com";

/// The fake card number in answers and tool-call arguments (Luhn-valid).
pub const FAKE_CARD: &str = "4111 1111 1111 1111";

/// How much of the last user message the answer echoes.
const ECHO_CHARS: usize = 80;

/// Pause between streamed events, so they reach the client as separate
/// chunks the way a real model's tokens do.
const TOKEN_GAP: Duration = Duration::from_millis(3);

/// Serve the demo upstream on `listener` (plain HTTP) until the task is
/// aborted; requests must carry `Authorization: Bearer <api_key>`.
pub async fn start(
    listener: tokio::net::TcpListener,
    api_key: String,
) -> tokio::task::JoinHandle<()> {
    let key = Arc::new(api_key);
    let app = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/responses", post(responses))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(key, require_key));
    tokio::spawn(async move {
        use axum::serve::ListenerExt;
        // Tokens go out as they are made, as inference servers send them.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "LLM demo upstream stopped");
        }
    })
}

/// An OpenAI-style error answer.
fn error(status: StatusCode, message: &str, kind: &str, code: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, Json(body)).into_response()
}

async fn require_key(State(key): State<Arc<String>>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented != Some(key.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_request_error",
            "invalid_api_key",
        );
    }
    next.run(req).await
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "Unknown endpoint.",
        "invalid_request_error",
        "not_found",
    )
}

async fn models() -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": MODEL, "object": "model", "created": 1_700_000_000, "owned_by": "gatehouse"}]
    }))
}

/// The request body as JSON, when it is an object.
fn parse(body: &Bytes) -> Option<Value> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
}

/// The 400 for a body that is not a JSON object, in OpenAI's shape.
fn bad_json() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "We could not parse the JSON body of your request.",
        "invalid_request_error",
        "invalid_json",
    )
}

/// Every string inside a prompt value (strings, arrays, parts' `text`,
/// nested `content`).
fn texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|i| texts(i, out)),
        Value::Object(o) => {
            for k in ["text", "content"] {
                if let Some(i) = o.get(k) {
                    texts(i, out);
                }
            }
        }
        _ => {}
    }
}

/// The prompt strings of a request and the last user text among them.
fn prompt(req: &Value) -> (Vec<String>, String) {
    let mut all = Vec::new();
    let mut last_user = String::new();
    for m in req["messages"].as_array().into_iter().flatten() {
        let mut t = Vec::new();
        texts(&m["content"], &mut t);
        if m["role"] == "user" {
            last_user = t.join(" ");
        }
        all.extend(t);
    }
    for k in ["instructions", "prompt", "input"] {
        let mut t = Vec::new();
        texts(&req[k], &mut t);
        if k != "instructions" && !t.is_empty() {
            last_user = t.join(" ");
        }
        all.extend(t);
    }
    (all, last_user)
}

fn words(texts: &[String]) -> u64 {
    texts
        .iter()
        .map(|t| t.split_whitespace().count() as u64)
        .sum()
}

/// The fixed answer, echoing the start of `last_user`.
fn answer(last_user: &str) -> String {
    let echo: String = last_user.chars().take(ECHO_CHARS).collect();
    format!(
        "You asked: \"{echo}\". The customer on file has SSN {FAKE_SSN}, \
         email {FAKE_EMAIL} and card {FAKE_CARD}."
    )
}

/// Cut `text` into pieces of a few characters, with one cut inside `split`
/// (at its middle) so a streaming masker must join two pieces.
fn pieces(text: &str, split: &str) -> Vec<String> {
    let mut cuts: Vec<usize> = text.char_indices().map(|(i, _)| i).step_by(5).collect();
    if let Some(at) = text.find(split) {
        cuts.retain(|&c| c <= at || c >= at + split.len());
        cuts.push(at + split.len() / 2);
    }
    cuts.push(text.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .map(|w| text[w[0]..w[1]].to_string())
        .collect()
}

/// A `text/event-stream` answer sending `events` one at a time, then `[DONE]`
/// when `done`.
fn sse(events: Vec<Value>, done: bool) -> Response {
    let mut frames: Vec<Bytes> = events
        .into_iter()
        .map(|e| match e.get("type").and_then(Value::as_str) {
            Some(t) if t.starts_with("response.") => {
                Bytes::from(format!("event: {t}\ndata: {e}\n\n"))
            }
            _ => Bytes::from(format!("data: {e}\n\n")),
        })
        .collect();
    if done {
        frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    }
    let stream = futures_util::stream::unfold(frames.into_iter(), |mut it| async move {
        let next = it.next()?;
        tokio::time::sleep(TOKEN_GAP).await;
        Some((Ok::<Bytes, std::convert::Infallible>(next), it))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// The first tool offered, if any.
fn first_tool(req: &Value) -> Option<String> {
    let t = req["tools"].as_array()?.first()?;
    t.pointer("/function/name")
        .or_else(|| t.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Tool-call arguments holding the fake card.
fn tool_arguments(last_user: &str) -> String {
    let echo: String = last_user.chars().take(ECHO_CHARS).collect();
    json!({"card_number": FAKE_CARD, "note": echo}).to_string()
}

async fn chat(body: Bytes) -> Response {
    let Some(req) = parse(&body) else {
        return bad_json();
    };
    let (all, last_user) = prompt(&req);
    let model = req["model"].as_str().unwrap_or(MODEL).to_string();
    let id = format!("chatcmpl-demo{}", now());
    let created = now();
    let prompt_tokens = words(&all);
    let tool = first_tool(&req);
    let text = answer(&last_user);
    let (completion_tokens, finish) = match &tool {
        Some(_) => (words(&[tool_arguments(&last_user)]), "tool_calls"),
        None => (words(std::slice::from_ref(&text)), "stop"),
    };
    if req["stream"].as_bool() != Some(true) {
        let message = match &tool {
            Some(name) => json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{"id": "call_demo1", "type": "function",
                    "function": {"name": name, "arguments": tool_arguments(&last_user)}}]
            }),
            None => json!({"role": "assistant", "content": text}),
        };
        return Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": usage(prompt_tokens, completion_tokens),
        }))
        .into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        })
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    match &tool {
        Some(name) => {
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_demo1", "type": "function",
                    "function": {"name": name, "arguments": ""}}]}),
                Value::Null,
            ));
            for p in pieces(&tool_arguments(&last_user), FAKE_CARD) {
                events.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}),
                    Value::Null,
                ));
            }
        }
        None => {
            for p in pieces(&text, FAKE_SSN) {
                events.push(chunk(json!({"content": p}), Value::Null));
            }
        }
    }
    events.push(chunk(json!({}), json!(finish)));
    if req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true)
    {
        events.push(json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": usage(prompt_tokens, completion_tokens)
        }));
    }
    sse(events, true)
}

async fn completions(body: Bytes) -> Response {
    let Some(req) = parse(&body) else {
        return bad_json();
    };
    let (all, last_user) = prompt(&req);
    let model = req["model"].as_str().unwrap_or(MODEL).to_string();
    let id = format!("cmpl-demo{}", now());
    let created = now();
    let text = answer(&last_user);
    let use_ = usage(words(&all), words(std::slice::from_ref(&text)));
    if req["stream"].as_bool() != Some(true) {
        return Json(json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": "stop"}],
            "usage": use_,
        }))
        .into_response();
    }
    let chunk = |text: &str, finish: Value| {
        json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish}]
        })
    };
    let mut events: Vec<Value> = pieces(&text, FAKE_SSN)
        .iter()
        .map(|p| chunk(p, Value::Null))
        .collect();
    events.push(chunk("", json!("stop")));
    if req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true)
    {
        events.push(json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [], "usage": use_
        }));
    }
    sse(events, true)
}

/// A deterministic unit-ish vector for `text`, from its SHA-256.
fn embed(text: &str) -> Vec<f64> {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| (f64::from(*b) / 127.5 - 1.0) * 0.5)
        .collect()
}

async fn embeddings(body: Bytes) -> Response {
    let Some(req) = parse(&body) else {
        return bad_json();
    };
    let inputs: Vec<String> = match &req["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect(),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "'input' is a required property.",
                "invalid_request_error",
                "missing_input",
            )
        }
    };
    let tokens = words(&inputs);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": embed(t)}))
        .collect();
    Json(json!({
        "object": "list",
        "data": data,
        "model": req["model"].as_str().unwrap_or(MODEL),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response()
}

async fn responses(body: Bytes) -> Response {
    let Some(req) = parse(&body) else {
        return bad_json();
    };
    let (all, last_user) = prompt(&req);
    let model = req["model"].as_str().unwrap_or(MODEL).to_string();
    let id = format!("resp_demo{}", now());
    let text = answer(&last_user);
    let (input_tokens, output_tokens) = (words(&all), words(std::slice::from_ref(&text)));
    let message = |text: &str, status: &str| {
        json!({"type": "message", "id": "msg_demo1", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]})
    };
    let response = |status: &str, output: Value, usage: Value| {
        json!({
            "id": id, "object": "response", "created_at": now(), "status": status, "model": model,
            "output": output, "usage": usage,
        })
    };
    let done = response(
        "completed",
        json!([message(&text, "completed")]),
        json!({"input_tokens": input_tokens, "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens}),
    );
    if req["stream"].as_bool() != Some(true) {
        return Json(done).into_response();
    }
    let mut events = vec![
        json!({"type": "response.created", "response": response("in_progress", json!([]), Value::Null)}),
    ];
    for p in pieces(&text, FAKE_SSN) {
        events.push(
            json!({"type": "response.output_text.delta", "item_id": "msg_demo1",
            "output_index": 0, "content_index": 0, "delta": p}),
        );
    }
    events.push(
        json!({"type": "response.output_text.done", "item_id": "msg_demo1",
        "output_index": 0, "content_index": 0, "text": text}),
    );
    events.push(json!({"type": "response.completed", "response": done}));
    for (n, e) in events.iter_mut().enumerate() {
        e["sequence_number"] = json!(n);
    }
    sse(events, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_split_the_value_and_rejoin_to_the_text() {
        let text = answer("hello");
        let p = pieces(&text, FAKE_SSN);
        assert_eq!(p.concat(), text);
        assert!(p.iter().all(|p| !p.contains(FAKE_SSN)));
        assert!(p.iter().any(|p| p.ends_with("123-4")));
        assert!(pieces("é ü", "x").concat() == "é ü");
    }
}
