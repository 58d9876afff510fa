//! OpenAI-compatible LLM traffic: what a request asks for, masking prompts
//! and answers, and errors in OpenAI's own shape.
//!
//! These are pure functions over bodies and SSE chunks; the proxy calls
//! them. The facts in [`LlmRequest`] feed policy and the audit record
//! (which model, which tools, what was asked). Answers are masked before the
//! caller sees them: a whole JSON answer string by string
//! ([`mask_response`]), a streamed answer chunk by chunk ([`SseMasker`]),
//! where a value split across chunks is still masked whole and everything
//! else goes out the moment it arrives.

use crate::sse::{SseDecoder, SseError, SseEvent};
use gatehouse_core::mask::{MaskCounts, Masker, StreamMasker};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use thiserror::Error;

/// Cap on [`LlmRequest::prompt`]: enough for policy to classify a prompt,
/// bounded so a huge context window cannot inflate an audit record.
pub const MAX_PROMPT_TEXT: usize = 64 * 1024;

/// Cap on the serialized [`LlmRequest::messages`] kept for the audit record.
pub const MAX_AUDIT_MESSAGES: usize = 32 * 1024;

/// Cap on the answer text and on each tool call's arguments kept in a
/// [`LlmResponseSummary`].
pub const MAX_CAPTURE: usize = 16 * 1024;

/// Which OpenAI-compatible API a request calls; policy and the audit
/// record name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmEndpoint {
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/completions` (legacy text completions).
    Completions,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/responses`.
    Responses,
    /// `GET /v1/models` and `GET /v1/models/{id}`.
    Models,
}

impl LlmEndpoint {
    /// The endpoint a request path names, after any route prefix
    /// (`/llm/v1/chat/completions`) and without the query; `None` for paths
    /// that are not one of the LLM APIs.
    pub fn from_path(path: &str) -> Option<LlmEndpoint> {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let path = path.trim_end_matches('/');
        let rest = match path.rfind("/v1/") {
            Some(i) => &path[i + 4..],
            None => path.trim_start_matches('/'),
        };
        match rest {
            "chat/completions" => Some(LlmEndpoint::ChatCompletions),
            "completions" => Some(LlmEndpoint::Completions),
            "embeddings" => Some(LlmEndpoint::Embeddings),
            "responses" => Some(LlmEndpoint::Responses),
            "models" => Some(LlmEndpoint::Models),
            r if r.starts_with("models/") => Some(LlmEndpoint::Models),
            _ => None,
        }
    }

    /// Name in policy files and audit events.
    pub fn as_str(&self) -> &'static str {
        match self {
            LlmEndpoint::ChatCompletions => "chat_completions",
            LlmEndpoint::Completions => "completions",
            LlmEndpoint::Embeddings => "embeddings",
            LlmEndpoint::Responses => "responses",
            LlmEndpoint::Models => "models",
        }
    }
}

/// Why an LLM request could not be understood; the proxy answers 400 with
/// [`openai_error_body`] rather than forward what it cannot judge.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LlmError {
    /// The path is not one of the OpenAI-compatible APIs.
    #[error("not an OpenAI-compatible endpoint: {0}")]
    UnknownEndpoint(String),
    /// The body is not a JSON object.
    #[error("request body is not a JSON object: {0}")]
    BadJson(String),
}

/// What an LLM request asks for, for policy and the audit record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlmRequest {
    /// The API called.
    pub endpoint: LlmEndpoint,
    /// The `model` asked for.
    pub model: Option<String>,
    /// Whether the answer is streamed (`stream: true`).
    pub stream: bool,
    /// Whether a streamed answer ends with a usage chunk
    /// (`stream_options.include_usage`).
    pub include_usage: bool,
    /// Every prompt string (message contents and their text parts,
    /// `instructions`, `prompt`, `input`), one per line, capped at
    /// [`MAX_PROMPT_TEXT`].
    pub prompt: String,
    /// Whether `prompt` was cut at the cap.
    pub prompt_truncated: bool,
    /// Tools offered to the model (`tools[].function.name`, `tools[].name`,
    /// legacy `functions[].name`), in order, without repeats.
    pub tools_offered: Vec<String>,
    /// The tool the caller forces (`tool_choice` naming a function, legacy
    /// `function_call`); `None` for `auto`, `none`, `required` or absent.
    pub tool_choice: Option<String>,
    /// Tools the model already called in the conversation (assistant
    /// `tool_calls`, responses-API `function_call` items), in order.
    pub tool_calls: Vec<String>,
    /// The conversation for the audit record: `messages`, else `prompt`,
    /// else `input`. When its JSON exceeds [`MAX_AUDIT_MESSAGES`] it is
    /// kept as a string holding the start of that JSON.
    pub messages: Value,
    /// Whether `messages` was cut at the cap.
    pub messages_truncated: bool,
}

/// Parse an LLM request from its path and body. `GET /v1/models` needs no
/// body; every other endpoint needs a JSON object.
pub fn parse_request(path: &str, body: &[u8]) -> Result<LlmRequest, LlmError> {
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(serde_json::from_slice::<Value>(body).map_err(|e| LlmError::BadJson(e.to_string()))?)
    };
    read_request(path, value.as_ref())
}

/// [`parse_request`] for a body already parsed (the proxy parses each body
/// once); `None` is an empty body.
pub fn read_request(path: &str, body: Option<&Value>) -> Result<LlmRequest, LlmError> {
    let endpoint =
        LlmEndpoint::from_path(path).ok_or_else(|| LlmError::UnknownEndpoint(path.to_string()))?;
    let empty = Map::new();
    let obj = match body {
        None if endpoint == LlmEndpoint::Models => &empty,
        None => return Err(LlmError::BadJson("EOF while parsing a value".into())),
        Some(Value::Object(obj)) => obj,
        Some(_) => return Err(LlmError::BadJson("not an object".into())),
    };
    let str_of = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);

    let mut prompt = Capture::new(MAX_PROMPT_TEXT);
    for key in ["instructions", "prompt", "input"] {
        if let Some(v) = obj.get(key) {
            collect_text(v, &mut prompt);
        }
    }
    for m in obj
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(c) = m.get("content") {
            collect_text(c, &mut prompt);
        }
    }

    let mut tools_offered: Vec<String> = Vec::new();
    let offered = ["tools", "functions"]
        .iter()
        .filter_map(|k| obj.get(*k).and_then(Value::as_array))
        .flatten();
    for t in offered {
        if let Some(name) = tool_name(t) {
            if !tools_offered.iter().any(|n| n == name) {
                tools_offered.push(name.to_string());
            }
        }
    }
    let tool_choice = ["tool_choice", "function_call"]
        .iter()
        .filter_map(|k| obj.get(*k))
        .find_map(|v| v.is_object().then(|| tool_name(v)).flatten())
        .map(str::to_string);
    let mut tool_calls = Vec::new();
    for m in obj
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for tc in m
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            tool_calls.extend(tool_name(tc).map(str::to_string));
        }
        tool_calls.extend(str_of(m.pointer("/function_call/name")));
    }
    for item in obj
        .get("input")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if item.get("type").and_then(Value::as_str) == Some("function_call") {
            tool_calls.extend(str_of(item.get("name")));
        }
    }

    let conversation = ["messages", "prompt", "input"]
        .iter()
        .find_map(|k| obj.get(*k))
        .cloned()
        .unwrap_or(Value::Null);
    let (messages, messages_truncated) = bounded_json(conversation, MAX_AUDIT_MESSAGES);

    Ok(LlmRequest {
        endpoint,
        model: str_of(obj.get("model")),
        stream: obj.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: obj
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        prompt_truncated: prompt.truncated,
        prompt: prompt.text,
        tools_offered,
        tool_choice,
        tool_calls,
        messages,
        messages_truncated,
    })
}

/// A tool's name in any of the shapes OpenAI uses: `{function:{name}}`
/// (chat) or `{name}` (responses API, legacy functions).
fn tool_name(v: &Value) -> Option<&str> {
    v.pointer("/function/name")
        .or_else(|| v.get("name"))
        .and_then(Value::as_str)
}

/// `v` as is when its JSON fits `limit`, else the start of its JSON as a string.
fn bounded_json(v: Value, limit: usize) -> (Value, bool) {
    let text = v.to_string();
    if text.len() <= limit {
        return (v, false);
    }
    // Never inside a number: a cut card would escape the detectors.
    let cut = gatehouse_core::mask::cut_for_trail(&text, limit);
    (Value::String(cut.to_string()), true)
}

/// Text accumulated up to a cap, cut on a char boundary.
#[derive(Debug, Clone)]
struct Capture {
    text: String,
    truncated: bool,
    limit: usize,
}

impl Capture {
    fn new(limit: usize) -> Capture {
        Capture {
            text: String::new(),
            truncated: false,
            limit,
        }
    }

    fn push(&mut self, s: &str) {
        let room = self.limit - self.text.len();
        if s.len() <= room {
            self.text.push_str(s);
            return;
        }
        // Never inside a number: a cut card would escape the detectors.
        self.text
            .push_str(gatehouse_core::mask::cut_for_trail(s, room));
        self.truncated = true;
    }

    /// Push one prompt string as its own line.
    fn line(&mut self, s: &str) {
        if !self.text.is_empty() {
            self.push("\n");
        }
        self.push(s);
    }
}

/// Every prompt string inside a content value: a string, an array of
/// strings or parts, parts' `text`, nested `content`.
fn collect_text(v: &Value, out: &mut Capture) {
    match v {
        Value::String(s) => out.line(s),
        Value::Array(items) => items.iter().for_each(|i| collect_text(i, out)),
        Value::Object(o) => {
            for key in ["text", "content", "output"] {
                if let Some(inner) = o.get(key) {
                    collect_text(inner, out);
                }
            }
        }
        _ => {}
    }
}

/// Mask detector findings in a request's prompt strings (`messages[].content`
/// and its text parts, `instructions`, `prompt`, `input`, tool outputs sent
/// back), so a connection can keep sensitive values away from the model.
/// `Ok(None)` when nothing was masked: forward the original bytes. Images
/// and other non-text parts are left alone.
pub fn mask_request(
    body: &[u8],
    masker: &Masker,
    counts: &mut MaskCounts,
) -> Result<Option<Vec<u8>>, LlmError> {
    let mut obj = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => obj,
        Ok(_) => return Err(LlmError::BadJson("not an object".into())),
        Err(e) => return Err(LlmError::BadJson(e.to_string())),
    };
    let mut changed = false;
    for key in ["instructions", "prompt", "input"] {
        if let Some(inner) = obj.get_mut(key) {
            changed |= mask_prompt_value(inner, masker, counts);
        }
    }
    if let Some(messages) = obj.get_mut("messages").and_then(Value::as_array_mut) {
        for m in messages {
            if let Some(c) = m.get_mut("content") {
                changed |= mask_prompt_value(c, masker, counts);
            }
        }
    }
    Ok(changed.then(|| Value::Object(obj).to_string().into_bytes()))
}

/// Mask the prompt strings of one content value (see [`collect_text`]).
fn mask_prompt_value(v: &mut Value, masker: &Masker, counts: &mut MaskCounts) -> bool {
    match v {
        Value::String(_) => mask_string(v, masker, counts),
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |c, i| mask_prompt_value(i, masker, counts) | c),
        Value::Object(o) => {
            ["text", "content", "output"]
                .iter()
                .fold(false, |c, key| match o.get_mut(*key) {
                    Some(inner) => mask_prompt_value(inner, masker, counts) | c,
                    None => c,
                })
        }
        _ => false,
    }
}

/// Mask a string value in place; whether it changed.
fn mask_string(v: &mut Value, masker: &Masker, counts: &mut MaskCounts) -> bool {
    if let Value::String(s) = v {
        if let Some(masked) = masker.mask_detected(s, counts) {
            *s = masked;
            return true;
        }
    }
    false
}

/// Token counts as the upstream reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LlmUsage {
    /// Prompt (input) tokens.
    pub prompt_tokens: u64,
    /// Completion (output) tokens.
    pub completion_tokens: u64,
    /// Both together.
    pub total_tokens: u64,
}

impl LlmUsage {
    /// Read chat-style (`prompt_tokens`) or responses-style
    /// (`input_tokens`) usage; `None` when absent or null.
    fn from_json(v: Option<&Value>) -> Option<LlmUsage> {
        let v = v.filter(|v| v.is_object())?;
        let n = |a: &str, b: &str| {
            v.get(a)
                .or_else(|| v.get(b))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let prompt_tokens = n("prompt_tokens", "input_tokens");
        let completion_tokens = n("completion_tokens", "output_tokens");
        let total_tokens = v
            .get("total_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(prompt_tokens + completion_tokens);
        Some(LlmUsage {
            prompt_tokens,
            completion_tokens,
            total_tokens,
        })
    }
}

/// One tool call the model made, arguments as sent (masked), capped at
/// [`MAX_CAPTURE`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LlmToolCall {
    /// The function called.
    pub name: String,
    /// Its JSON arguments, as text.
    pub arguments: String,
}

/// What the model answered, for the audit record; all text is the masked
/// text the caller received.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LlmResponseSummary {
    /// The model that answered.
    pub model: Option<String>,
    /// The answer text (every choice, in arrival order), capped at
    /// [`MAX_CAPTURE`].
    pub text: String,
    /// Whether `text` was cut at the cap.
    pub text_truncated: bool,
    /// Tool calls, in order.
    pub tool_calls: Vec<LlmToolCall>,
    /// Token usage, when the upstream reported it.
    pub usage: Option<LlmUsage>,
    /// Why generation stopped (`stop`, `length`, `tool_calls`; the
    /// responses API's `status`).
    pub finish_reason: Option<String>,
}

/// A whole (non-streamed) answer after masking.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskedResponse {
    /// The bytes to send: the original ones when nothing was masked.
    pub body: Vec<u8>,
    /// Whether anything was masked.
    pub changed: bool,
    /// What the answer held.
    pub summary: LlmResponseSummary,
    /// What was masked.
    pub counts: MaskCounts,
}

/// Mask detector findings in every string of a JSON answer (message
/// content, tool call arguments, completion text, responses-API output, and
/// anything else an upstream adds) and summarize it. A body that is not
/// JSON (an upstream's HTML error page) is masked as text. Choices'
/// `logprobs` are dropped (see `SseMasker`).
pub fn mask_response(body: &[u8], masker: &Masker) -> MaskedResponse {
    let mut counts = MaskCounts::default();
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        let masked = masker.mask_detected_bytes(body, &mut counts);
        return MaskedResponse {
            changed: masked.is_some(),
            body: masked.unwrap_or_else(|| body.to_vec()),
            summary: LlmResponseSummary::default(),
            counts,
        };
    };
    let mut changed = false;
    for c in v
        .get_mut("choices")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        changed |= drop_logprobs(c);
    }
    changed |= crate::jsonmask::mask_strings(&mut v, masker, &mut counts);
    MaskedResponse {
        body: if changed {
            v.to_string().into_bytes()
        } else {
            body.to_vec()
        },
        changed,
        summary: summarize(&v),
        counts,
    }
}

/// Null a choice's `logprobs`; whether there were any. Their per-token
/// strings spell a value out one token at a time, which no masker can
/// judge, so they do not leave the gateway.
fn drop_logprobs(choice: &mut Value) -> bool {
    match choice.get_mut("logprobs") {
        Some(lp) if !lp.is_null() => {
            *lp = Value::Null;
            true
        }
        _ => false,
    }
}

/// The summary of a whole answer (chat, completions, responses, embeddings).
fn summarize(v: &Value) -> LlmResponseSummary {
    let mut text = Capture::new(MAX_CAPTURE);
    let mut tool_calls = Vec::new();
    let mut finish_reason = None;
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let call = |name: Option<&Value>, args: Option<&Value>| LlmToolCall {
        name: s(name).unwrap_or_default(),
        arguments: capped(args.and_then(Value::as_str).unwrap_or("")),
    };
    for c in v
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(content) = c.pointer("/message/content") {
            collect_answer(content, &mut text);
        }
        if let Some(t) = c.get("text").and_then(Value::as_str) {
            text.push(t);
        }
        for tc in c
            .pointer("/message/tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // `function` calls, `custom` tools, and any shape to come:
            // a call whose name cannot be read is still a call.
            let name = tc
                .pointer("/function/name")
                .or_else(|| tc.pointer("/custom/name"))
                .or_else(|| tc.get("name"));
            let args = tc
                .pointer("/function/arguments")
                .or_else(|| tc.pointer("/custom/input"))
                .or_else(|| tc.get("arguments"));
            let mut c = call(name, args);
            if c.name.is_empty() {
                c.name = s(tc.get("type")).unwrap_or_else(|| "unknown_tool".into());
            }
            tool_calls.push(c);
        }
        if let Some(fc) = c.pointer("/message/function_call") {
            tool_calls.push(call(fc.get("name"), fc.get("arguments")));
        }
        if finish_reason.is_none() {
            finish_reason = s(c.get("finish_reason"));
        }
    }
    for item in v
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                if let Some(content) = item.get("content") {
                    collect_answer(content, &mut text);
                }
            }
            Some("function_call") => tool_calls.push(call(item.get("name"), item.get("arguments"))),
            // Custom tools, shell, computer use, patches: every `*_call`
            // item is something an agent will run.
            Some(t) if t.ends_with("_call") => {
                let mut c = call(
                    item.get("name"),
                    item.get("arguments").or_else(|| item.get("input")),
                );
                if c.name.is_empty() {
                    c.name = t.to_string();
                }
                if c.arguments.is_empty() {
                    c.arguments = capped(&item.to_string());
                }
                tool_calls.push(c);
            }
            _ => {}
        }
    }
    if v.get("object").and_then(Value::as_str) == Some("response") {
        finish_reason = s(v.get("status"));
    }
    LlmResponseSummary {
        model: s(v.get("model")),
        text_truncated: text.truncated,
        text: text.text,
        tool_calls,
        usage: LlmUsage::from_json(v.get("usage")),
        finish_reason,
    }
}

/// Answer text in a content value: a string, or parts' `text`.
fn collect_answer(v: &Value, out: &mut Capture) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(parts) => {
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    out.push(t);
                }
            }
        }
        _ => {}
    }
}

fn capped(s: &str) -> String {
    let mut c = Capture::new(MAX_CAPTURE);
    c.push(s);
    c.text
}

/// A streamed text field that is masked across chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    /// `choices[i].delta.content`.
    Content(u64),
    /// `choices[i].text` (completions).
    Text(u64),
    /// `choices[i].delta.tool_calls[j].function.arguments`.
    ToolArgs(u64, u64),
    /// Responses API `response.output_text.delta` by output and content index.
    OutputText(u64, u64),
    /// Responses API `response.function_call_arguments.delta` by output index.
    CallArgs(u64),
    /// Any other string in a chat choice's `delta` (`reasoning_content`,
    /// `refusal`, …), by choice and the key's name (see `SseMasker::names`).
    Delta(u64, u64),
    /// Any other Responses API `*.delta` event (reasoning summaries,
    /// refusals, transcripts), by output index, content index and the
    /// event type's name.
    OtherDelta(u64, u64, u64),
}

impl Field {
    fn choice(&self) -> Option<u64> {
        match *self {
            Field::Content(i) | Field::Text(i) | Field::ToolArgs(i, _) | Field::Delta(i, _) => {
                Some(i)
            }
            _ => None,
        }
    }
}

/// Which tool call a streamed fragment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ToolKey {
    /// Chat: choice and tool-call index.
    Chat(u64, u64),
    /// Responses API: output index.
    Output(u64),
}

/// Masks a streamed (SSE) LLM answer as it passes: feed upstream body
/// chunks, send what comes back to the caller at once.
///
/// Text fields that arrive in pieces (chat `delta.content`, completions
/// `text`, tool-call `arguments`, responses-API text and argument deltas)
/// each go through their own [`StreamMasker`], so an SSN split across two
/// events is masked whole; each event is rewritten with the part that is
/// safe to send, and what is held back is released in the event that
/// finishes its choice, in an event added before `data: [DONE]` or before
/// the responses API's `.done` event, or at the end of the stream. Every
/// other string of a JSON event is masked as a whole value; events with
/// nothing to mask pass through byte for byte. Choices' `logprobs` are
/// nulled: their tokens would spell a value out piece by piece.
#[derive(Debug, Default)]
pub struct SseMasker {
    decoder: SseDecoder,
    streams: BTreeMap<Field, StreamMasker>,
    /// Names of delta keys and event types, by the number a [`Field`]
    /// carries (fields are `Copy`, names are not).
    names: Vec<String>,
    text: Option<Capture>,
    tools: BTreeMap<ToolKey, LlmToolCall>,
    model: Option<String>,
    usage: Option<LlmUsage>,
    finish_reason: Option<String>,
    counts: MaskCounts,
    /// `id`, `object`, `created`, `model` of the last chat/completions
    /// chunk, so chunks the masker adds look like the upstream's.
    template: Map<String, Value>,
    /// Responses API `item_id` per output index, for added delta events.
    item_ids: BTreeMap<u64, Value>,
}

impl SseMasker {
    /// A masker for one streamed answer, with the default event size cap.
    pub fn new() -> SseMasker {
        SseMasker::default()
    }

    /// A masker refusing upstream events over `max_event` bytes.
    pub fn with_max_event(max_event: usize) -> SseMasker {
        SseMasker {
            decoder: SseDecoder::new(max_event),
            ..SseMasker::default()
        }
    }

    /// Take the next upstream body chunk; return the bytes to send now.
    /// On error, send [`sse_error_event`] and end the stream.
    pub fn push(&mut self, masker: &Masker, chunk: &[u8]) -> Result<Vec<u8>, SseError> {
        let mut out = Vec::new();
        for ev in self.decoder.push(chunk)? {
            self.event(masker, ev, &mut out);
        }
        Ok(out)
    }

    /// The upstream body ended: return the last bytes to send, including
    /// any text still held back.
    pub fn finish(&mut self, masker: &Masker) -> Result<Vec<u8>, SseError> {
        let mut out = Vec::new();
        while let Some(ev) = self.decoder.finish()? {
            self.event(masker, ev, &mut out);
        }
        self.flush_all(masker, &mut out);
        Ok(out)
    }

    /// What was masked so far.
    pub fn counts(&self) -> &MaskCounts {
        &self.counts
    }

    /// What the answer held so far (masked text, tool calls, usage from the
    /// final chunk).
    pub fn summary(&self) -> LlmResponseSummary {
        let text = self
            .text
            .clone()
            .unwrap_or_else(|| Capture::new(MAX_CAPTURE));
        LlmResponseSummary {
            model: self.model.clone(),
            text: text.text,
            text_truncated: text.truncated,
            tool_calls: self.tools.values().cloned().collect(),
            usage: self.usage,
            finish_reason: self.finish_reason.clone(),
        }
    }

    fn event(&mut self, masker: &Masker, ev: SseEvent, out: &mut Vec<u8>) {
        let Some(data) = ev.data.as_deref() else {
            out.extend_from_slice(&ev.bytes());
            return;
        };
        if data.trim() == "[DONE]" {
            self.flush_all(masker, out);
            out.extend_from_slice(&ev.bytes());
            return;
        }
        let new_data = match serde_json::from_str::<Value>(data) {
            Ok(mut v @ Value::Object(_)) => self.chunk(masker, &mut v, out).then(|| v.to_string()),
            // Other JSON is masked decoded, so escapes hide nothing.
            Ok(mut v) => crate::jsonmask::mask_strings(&mut v, masker, &mut self.counts)
                .then(|| v.to_string()),
            // Text that is not JSON is one stream across events: a value
            // split over two of them is still caught (held back like any
            // streamed text and released at the end).
            Err(_) => {
                let n = self.name_number("data:text");
                let field = Field::Delta(u64::MAX, n);
                let could_be_part = data.bytes().any(|b| b.is_ascii_digit() || b == b'@');
                if could_be_part || self.streams.contains_key(&field) {
                    let safe = self.stream(masker, field, data);
                    (safe != data).then_some(safe)
                } else {
                    masker.mask_detected(data, &mut self.counts)
                }
            }
        };
        match new_data {
            Some(data) => out.extend_from_slice(
                &SseEvent {
                    data: Some(data),
                    raw: Vec::new(),
                    ..ev
                }
                .to_bytes(),
            ),
            None => out.extend_from_slice(&ev.bytes()),
        }
    }

    /// Mask one JSON chunk in place; whether it changed. Events the masker
    /// adds before this one go to `out`.
    fn chunk(&mut self, masker: &Masker, v: &mut Value, out: &mut Vec<u8>) -> bool {
        let kind = v.get("type").and_then(Value::as_str).map(str::to_string);
        match kind.as_deref() {
            Some(k) if k.starts_with("response.") => self.responses_event(masker, k, v, out),
            _ => self.chat_chunk(masker, v),
        }
    }

    /// A chat or completions chunk.
    fn chat_chunk(&mut self, masker: &Masker, v: &mut Value) -> bool {
        for key in ["id", "object", "created", "model", "system_fingerprint"] {
            if let Some(x) = v.get(key) {
                self.template.insert(key.to_string(), x.clone());
            }
        }
        // Take the streamed fields out, mask the rest as whole values, then
        // put the streamed fields back as their safe-to-send part.
        let mut streamed: Vec<(String, Field, String)> = Vec::new();
        let mut finished: Vec<(usize, u64)> = Vec::new();
        let mut dropped = false;
        let choices = v.get_mut("choices").and_then(Value::as_array_mut);
        for (pos, c) in choices.into_iter().flatten().enumerate() {
            dropped |= drop_logprobs(c);
            let i = c.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
            let base = format!("/choices/{pos}");
            if let Some(Value::String(s)) = c.pointer_mut("/delta/content") {
                streamed.push((format!("{base}/delta/content"), Field::Content(i), take(s)));
            }
            if let Some(Value::String(s)) = c.get_mut("text") {
                streamed.push((format!("{base}/text"), Field::Text(i), take(s)));
            }
            // Every other text the delta streams (reasoning, refusals) is
            // masked across chunks too, not only the fields named above.
            let mut others = Vec::new();
            if let Some(d) = c.get("delta") {
                string_pointers(d, String::new(), &mut others);
            }
            others.retain(|p| {
                !matches!(p.as_str(), "/content" | "/role")
                    && !p.starts_with("/tool_calls")
                    && !p.starts_with("/function_call/name")
            });
            for key in others {
                let n = self.name_number(&key);
                if let Some(Value::String(s)) = c.pointer_mut(&format!("/delta{key}")) {
                    streamed.push((format!("{base}/delta{key}"), Field::Delta(i, n), take(s)));
                }
            }
            let calls = c
                .pointer_mut("/delta/tool_calls")
                .and_then(Value::as_array_mut);
            for (tpos, tc) in calls.into_iter().flatten().enumerate() {
                let j = tc
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(tpos as u64);
                let name = tc
                    .pointer("/function/name")
                    .or_else(|| tc.pointer("/custom/name"))
                    .and_then(Value::as_str);
                let entry = self.tools.entry(ToolKey::Chat(i, j)).or_default();
                match name {
                    Some(name) => entry.name = name.to_string(),
                    // A fragment of a call whose name came earlier, or a
                    // shape without one: still a call.
                    None if entry.name.is_empty() => {
                        entry.name = tc
                            .get("type")
                            .and_then(Value::as_str)
                            .unwrap_or("unknown_tool")
                            .to_string()
                    }
                    None => {}
                }
                if let Some(Value::String(s)) = tc.pointer_mut("/function/arguments") {
                    let path = format!("{base}/delta/tool_calls/{tpos}/function/arguments");
                    streamed.push((path, Field::ToolArgs(i, j), take(s)));
                }
            }
            // The legacy single `function_call` is a tool call too.
            if let Some(name) = c
                .pointer("/delta/function_call/name")
                .and_then(Value::as_str)
            {
                self.tools
                    .entry(ToolKey::Chat(i, u64::MAX))
                    .or_default()
                    .name = name.to_string();
            }
            if c.get("finish_reason").is_some_and(|f| !f.is_null()) {
                finished.push((pos, i));
            }
        }
        let mut changed = crate::jsonmask::mask_strings(v, masker, &mut self.counts) | dropped;
        for (path, field, original) in streamed {
            let safe = self.stream(masker, field, &original);
            changed |= safe != original;
            if let Some(slot) = v.pointer_mut(&path) {
                *slot = Value::String(safe);
            }
        }
        for (pos, i) in finished {
            changed |= self.release_choice(masker, v, pos, i);
        }
        if let Some(m) = v.get("model").and_then(Value::as_str) {
            self.model = Some(m.to_string());
        }
        if let Some(u) = LlmUsage::from_json(v.get("usage")) {
            self.usage = Some(u);
        }
        changed
    }

    /// Choice `i` (at `pos` in this chunk) finished: append everything its
    /// streams still hold to this chunk's fields.
    fn release_choice(&mut self, masker: &Masker, v: &mut Value, pos: usize, i: u64) -> bool {
        let fields: Vec<Field> = self
            .streams
            .keys()
            .filter(|f| f.choice() == Some(i))
            .copied()
            .collect();
        let c = &mut v["choices"][pos];
        if let Some(reason) = c.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_string());
        }
        let mut changed = false;
        for field in fields {
            let tail = self.release(masker, field);
            if tail.is_empty() {
                continue;
            }
            changed = true;
            match field {
                Field::Content(_) => append(object_at(c, "delta"), "content", &tail),
                Field::Text(_) => append(c, "text", &tail),
                Field::Delta(_, n) => {
                    let pointer = self.names[n as usize].clone();
                    append_at(object_at(c, "delta"), &pointer, &tail)
                }
                Field::ToolArgs(_, j) => {
                    // `delta.tool_calls`, made an array if absent or not one.
                    let calls = &mut object_at(c, "delta")["tool_calls"];
                    let mut list = match calls.take() {
                        Value::Array(list) => list,
                        _ => Vec::new(),
                    };
                    let at = list
                        .iter()
                        .position(|tc| tc.get("index").and_then(Value::as_u64) == Some(j))
                        .unwrap_or_else(|| {
                            list.push(json!({"index": j, "function": {}}));
                            list.len() - 1
                        });
                    append(object_at(&mut list[at], "function"), "arguments", &tail);
                    *calls = Value::Array(list);
                }
                _ => {}
            }
        }
        changed
    }

    /// A responses-API event.
    fn responses_event(
        &mut self,
        masker: &Masker,
        kind: &str,
        v: &mut Value,
        out: &mut Vec<u8>,
    ) -> bool {
        let oi = v.get("output_index").and_then(Value::as_u64).unwrap_or(0);
        let ci = v.get("content_index").and_then(Value::as_u64).unwrap_or(0);
        if let Some(id) = v.get("item_id") {
            self.item_ids.insert(oi, id.clone());
        }
        // Token log-probabilities would spell a value out one token at a time.
        if let Some(obj) = v.as_object_mut() {
            if obj.get("logprobs").is_some_and(|l| !l.is_null()) {
                obj.insert("logprobs".into(), json!([]));
            }
        }
        let delta_field = match kind {
            "response.output_text.delta" => Some(Field::OutputText(oi, ci)),
            "response.function_call_arguments.delta" => Some(Field::CallArgs(oi)),
            k if k.ends_with(".delta") && v.get("delta").is_some_and(Value::is_string) => {
                Some(Field::OtherDelta(oi, ci, self.name_number(k)))
            }
            _ => None,
        };
        match kind {
            "response.output_text.done" => {
                self.release_responses(masker, Field::OutputText(oi, ci), out)
            }
            "response.function_call_arguments.done" => {
                self.release_responses(masker, Field::CallArgs(oi), out)
            }
            k if k.ends_with(".done") => {
                let delta_kind = format!("{}.delta", &k[..k.len() - ".done".len()]);
                if let Some(n) = self.names.iter().position(|x| *x == delta_kind) {
                    self.release_responses(masker, Field::OtherDelta(oi, ci, n as u64), out)
                }
            }
            _ => {}
        }
        let original = match (delta_field, v.get_mut("delta")) {
            (Some(_), Some(Value::String(s))) => Some(take(s)),
            _ => None,
        };
        let mut changed = crate::jsonmask::mask_strings(v, masker, &mut self.counts);
        if let (Some(field), Some(original)) = (delta_field, original) {
            let safe = self.stream(masker, field, &original);
            changed |= safe != original;
            v["delta"] = Value::String(safe);
        }
        if let Some((item, t)) = v.get("item").and_then(|i| {
            i.get("type")
                .and_then(Value::as_str)
                .filter(|t| t.ends_with("_call"))
                .map(|t| (i, t))
        }) {
            let name = item.get("name").and_then(Value::as_str).unwrap_or(t);
            self.tools.entry(ToolKey::Output(oi)).or_default().name = name.to_string();
        }
        if let Some(resp) = v.get("response") {
            if let Some(m) = resp.get("model").and_then(Value::as_str) {
                self.model = Some(m.to_string());
            }
            if let Some(u) = LlmUsage::from_json(resp.get("usage")) {
                self.usage = Some(u);
            }
            if matches!(
                kind,
                "response.completed" | "response.incomplete" | "response.failed"
            ) {
                self.finish_reason = resp
                    .get("status")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
        }
        changed
    }

    /// Before a responses-API `.done` event: send what `field` holds as one
    /// more delta event.
    fn release_responses(&mut self, masker: &Masker, field: Field, out: &mut Vec<u8>) {
        let tail = self.release(masker, field);
        if !tail.is_empty() {
            out.extend_from_slice(
                &SseEvent::data(self.added_event(field, tail).to_string()).to_bytes(),
            );
        }
    }

    /// The number standing for a delta key or event type in [`Field`].
    fn name_number(&mut self, name: &str) -> u64 {
        match self.names.iter().position(|n| n == name) {
            Some(i) => i as u64,
            None => {
                self.names.push(name.to_string());
                (self.names.len() - 1) as u64
            }
        }
    }

    /// Run `piece` of `field` through its stream masker; record what is sent.
    fn stream(&mut self, masker: &Masker, field: Field, piece: &str) -> String {
        let safe = self
            .streams
            .entry(field)
            .or_default()
            .push(masker, piece, &mut self.counts);
        self.record(field, &safe);
        safe
    }

    /// Whether the answer so far calls a tool (cheap; for gating).
    pub fn has_tool_calls(&self) -> bool {
        !self.tools.is_empty()
    }

    /// Everything `field` still holds, masked; the stream is then closed.
    fn release(&mut self, masker: &Masker, field: Field) -> String {
        let Some(mut s) = self.streams.remove(&field) else {
            return String::new();
        };
        let tail = s.finish(masker, &mut self.counts);
        self.record(field, &tail);
        tail
    }

    /// Add sent text to the summary.
    fn record(&mut self, field: Field, sent: &str) {
        if sent.is_empty() {
            return;
        }
        let tool = match field {
            Field::ToolArgs(i, j) => ToolKey::Chat(i, j),
            Field::CallArgs(oi) => ToolKey::Output(oi),
            _ => {
                self.text
                    .get_or_insert_with(|| Capture::new(MAX_CAPTURE))
                    .push(sent);
                return;
            }
        };
        let call = self.tools.entry(tool).or_default();
        let room = MAX_CAPTURE.saturating_sub(call.arguments.len());
        let mut cut = room.min(sent.len());
        while !sent.is_char_boundary(cut) {
            cut -= 1;
        }
        call.arguments.push_str(&sent[..cut]);
    }

    /// Release every stream still open, each in an event of its own.
    fn flush_all(&mut self, masker: &Masker, out: &mut Vec<u8>) {
        let fields: Vec<Field> = self.streams.keys().copied().collect();
        for field in fields {
            let tail = self.release(masker, field);
            if tail.is_empty() {
                continue;
            }
            let data = match (field, self.added_event(field, tail)) {
                (Field::Delta(u64::MAX, _), Value::String(text)) => text,
                (_, event) => event.to_string(),
            };
            out.extend_from_slice(&SseEvent::data(data).to_bytes());
        }
    }

    /// An event carrying `tail` for `field`, shaped like the upstream's.
    fn added_event(&self, field: Field, tail: String) -> Value {
        let item_id = |oi: u64| self.item_ids.get(&oi).cloned().unwrap_or(Value::Null);
        let choice = match field {
            Field::Content(i) => {
                json!({"index": i, "delta": {"content": tail}, "finish_reason": null})
            }
            Field::Text(i) => json!({"index": i, "text": tail, "finish_reason": null}),
            Field::ToolArgs(i, j) => json!({
                "index": i,
                "delta": {"tool_calls": [{"index": j, "function": {"arguments": tail}}]},
                "finish_reason": null,
            }),
            Field::OutputText(oi, ci) => {
                return json!({
                    "type": "response.output_text.delta",
                    "item_id": item_id(oi),
                    "output_index": oi,
                    "content_index": ci,
                    "delta": tail,
                })
            }
            Field::CallArgs(oi) => {
                return json!({
                    "type": "response.function_call_arguments.delta",
                    "item_id": item_id(oi),
                    "output_index": oi,
                    "delta": tail,
                })
            }
            // Text of non-JSON data events, released as such.
            Field::Delta(u64::MAX, _) => return Value::String(tail),
            Field::Delta(i, n) => {
                let mut delta = json!({});
                append_at(&mut delta, &self.names[n as usize], &tail);
                json!({"index": i, "delta": delta, "finish_reason": null})
            }
            Field::OtherDelta(oi, ci, n) => {
                return json!({
                    "type": self.names[n as usize],
                    "item_id": item_id(oi),
                    "output_index": oi,
                    "content_index": ci,
                    "delta": tail,
                })
            }
        };
        let mut chunk = self.template.clone();
        chunk.insert("choices".into(), json!([choice]));
        Value::Object(chunk)
    }
}

/// JSON pointers of every string under `v` (relative to it).
fn string_pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::String(_) => out.push(at),
        Value::Object(map) => {
            for (k, v) in map {
                let key = k.replace('~', "~0").replace('/', "~1");
                string_pointers(v, format!("{at}/{key}"), out);
            }
        }
        _ => {}
    }
}

/// Append `tail` to the string at `pointer` under `v`, making the objects
/// on the way.
fn append_at(v: &mut Value, pointer: &str, tail: &str) {
    let keys: Vec<String> = pointer
        .trim_start_matches('/')
        .split('/')
        .map(|k| k.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, path)) = keys.split_last() else {
        return;
    };
    let mut here = v;
    for k in path {
        here = object_at(here, k);
    }
    if !here.is_object() {
        *here = json!({});
    }
    append(here, last, tail);
}

/// Take a string's contents, leaving it empty.
fn take(s: &mut String) -> String {
    std::mem::take(s)
}

/// `v[key]`, made an object if it is absent or not one (and `v` made an
/// object if it is not one).
fn object_at<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    if !v.is_object() {
        *v = json!({});
    }
    // Indexing an object by a key it lacks inserts null there.
    let slot = &mut v[key];
    if !slot.is_object() {
        *slot = json!({});
    }
    slot
}

/// Append `tail` to the string at `v[key]` (created when absent or not a
/// string; `v` is made an object if it is not one).
fn append(v: &mut Value, key: &str, tail: &str) {
    if !v.is_object() {
        *v = json!({});
    }
    // Indexing an object by a key it lacks inserts null there.
    match &mut v[key] {
        Value::String(s) => s.push_str(tail),
        slot => *slot = Value::String(tail.to_string()),
    }
}

/// The OpenAI error object, as the body of a non-2xx answer:
/// `{"error":{"message","type","param":null,"code"}}`, so SDKs show the
/// gateway's reason like any upstream error.
pub fn openai_error_body(message: &str, kind: &str, code: Option<&str>) -> Vec<u8> {
    error_json(message, kind, code).to_string().into_bytes()
}

/// The same error as one SSE event (`data: {"error":{…}}`), for a stream
/// that fails after its 200 status was sent.
pub fn sse_error_event(message: &str, kind: &str, code: Option<&str>) -> Vec<u8> {
    SseEvent::data(error_json(message, kind, code).to_string()).to_bytes()
}

fn error_json(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

#[cfg(test)]
mod tests;
