//! Request facts, prompt and answer masking, and streamed answers split at
//! awkward places.

use super::*;
use gatehouse_core::mask::{EntityType, MaskerConfig, Strategy, TokenizeKey, DETECTABLE};
use std::collections::HashMap;

fn masker() -> Masker {
    let mut strategies = HashMap::new();
    strategies.insert(EntityType::Ssn, Strategy::Partial { keep_last: 4 });
    strategies.insert(EntityType::CardNumber, Strategy::Partial { keep_last: 4 });
    Masker::new(MaskerConfig {
        detectors: DETECTABLE.to_vec(),
        strategies,
        default_strategy: Strategy::Redact,
        tokenize_key: TokenizeKey::new(b"k".to_vec()),
    })
}

#[test]
fn endpoints_are_known_by_path() {
    use LlmEndpoint::*;
    for (path, want) in [
        ("/v1/chat/completions", Some(ChatCompletions)),
        ("/llm/v1/chat/completions/?x=1", Some(ChatCompletions)),
        ("/v1/completions", Some(Completions)),
        ("/v1/embeddings", Some(Embeddings)),
        ("/v1/responses", Some(Responses)),
        ("/v1/models", Some(Models)),
        ("/v1/models/gpt-4o", Some(Models)),
        ("/chat/completions", Some(ChatCompletions)),
        ("/v1/files", None),
        ("/", None),
    ] {
        assert_eq!(LlmEndpoint::from_path(path), want, "{path}");
    }
    assert_eq!(ChatCompletions.as_str(), "chat_completions");
}

#[test]
fn chat_requests_yield_model_prompt_and_tools() {
    let body = json!({
        "model": "gpt-4o",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "look at this"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "result"}
        ],
        "tools": [
            {"type": "function", "function": {"name": "lookup", "parameters": {}}},
            {"type": "function", "function": {"name": "transfer"}},
            {"type": "function", "function": {"name": "lookup"}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "transfer"}}
    });
    let r = parse_request("/v1/chat/completions", body.to_string().as_bytes()).unwrap();
    assert_eq!(r.endpoint, LlmEndpoint::ChatCompletions);
    assert_eq!(r.model.as_deref(), Some("gpt-4o"));
    assert!(r.stream && r.include_usage);
    assert_eq!(r.prompt, "be brief\nlook at this\nresult");
    assert!(!r.prompt_truncated);
    assert_eq!(r.tools_offered, ["lookup", "transfer"]);
    assert_eq!(r.tool_choice.as_deref(), Some("transfer"));
    assert_eq!(r.tool_calls, ["lookup"]);
    assert_eq!(r.messages, body["messages"]);
    assert!(!r.messages_truncated);

    let auto = json!({"model": "m", "messages": [], "tool_choice": "required"});
    let r = parse_request("/v1/chat/completions", auto.to_string().as_bytes()).unwrap();
    assert_eq!(r.tool_choice, None);
    assert!(!r.stream && !r.include_usage);
}

#[test]
fn other_endpoints_yield_their_prompts() {
    let r = parse_request(
        "/v1/completions",
        br#"{"model":"m","prompt":["one","two"],"stream":true}"#,
    )
    .unwrap();
    assert_eq!(r.prompt, "one\ntwo");
    assert_eq!(r.messages, json!(["one", "two"]));
    let r = parse_request("/v1/embeddings", br#"{"model":"e","input":"hello"}"#).unwrap();
    assert_eq!(
        (r.endpoint, r.prompt.as_str()),
        (LlmEndpoint::Embeddings, "hello")
    );
    let body = json!({
        "model": "m",
        "instructions": "sys",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "function_call", "name": "lookup", "arguments": "{}", "call_id": "c"},
            {"type": "function_call_output", "call_id": "c", "output": "42"}
        ],
        "tools": [{"type": "function", "name": "lookup"}],
        "tool_choice": {"type": "function", "name": "lookup"}
    });
    let r = parse_request("/v1/responses", body.to_string().as_bytes()).unwrap();
    assert_eq!(r.prompt, "sys\nhi\n42");
    assert_eq!(r.tools_offered, ["lookup"]);
    assert_eq!(r.tool_choice.as_deref(), Some("lookup"));
    assert_eq!(r.tool_calls, ["lookup"]);
    let r = parse_request("/v1/models", b"").unwrap();
    assert_eq!(
        (r.endpoint, r.model, r.messages),
        (LlmEndpoint::Models, None, Value::Null)
    );
}

#[test]
fn bad_requests_are_errors_and_big_ones_are_bounded() {
    assert!(matches!(
        parse_request("/v1/chat/completions", b"{nope"),
        Err(LlmError::BadJson(_))
    ));
    assert!(matches!(
        parse_request("/v1/chat/completions", b"[1]"),
        Err(LlmError::BadJson(_))
    ));
    assert!(matches!(
        parse_request("/v1/files", b"{}"),
        Err(LlmError::UnknownEndpoint(_))
    ));
    let big = "é".repeat(MAX_PROMPT_TEXT);
    let body = json!({"model": "m", "messages": [{"role": "user", "content": big}]});
    let r = parse_request("/v1/chat/completions", body.to_string().as_bytes()).unwrap();
    assert!(r.prompt_truncated && r.prompt.len() <= MAX_PROMPT_TEXT);
    assert!(r.messages_truncated);
    assert!(r.messages.as_str().unwrap().len() <= MAX_AUDIT_MESSAGES);
}

#[test]
fn prompts_are_masked_before_they_reach_the_model() {
    let m = masker();
    let mut counts = MaskCounts::default();
    let body = json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "my ssn is 123-45-6789"},
            {"role": "user", "content": [
                {"type": "text", "text": "mail jo@example.com"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,4111111111111111"}}
            ]}
        ]
    });
    let out = mask_request(body.to_string().as_bytes(), &m, &mut counts)
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["messages"][0]["content"], "my ssn is ***-**-6789");
    assert_eq!(
        v["messages"][1]["content"][0]["text"],
        "mail [REDACTED:email]"
    );
    assert_eq!(
        v["messages"][1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,4111111111111111",
        "images are not text"
    );
    assert_eq!(counts.total(), 2);
    let plain = br#"{"model":"m","prompt":"hello","input":["x"]}"#;
    assert_eq!(mask_request(plain, &m, &mut counts).unwrap(), None);
    assert!(mask_request(b"nope", &m, &mut counts).is_err());
    let r = mask_request(br#"{"input":"call (212) 555-0147"}"#, &m, &mut counts).unwrap();
    assert!(String::from_utf8(r.unwrap())
        .unwrap()
        .contains("[REDACTED:phone]"));
}

#[test]
fn whole_answers_are_masked_and_summarized() {
    let body = json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "SSN 123-45-6789 on file",
                "tool_calls": [{"id": "t", "type": "function", "function": {
                    "name": "charge", "arguments": "{\"card\":\"4111 1111 1111 1111\"}"
                }}]
            },
            "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    });
    let r = mask_response(body.to_string().as_bytes(), &masker());
    assert!(r.changed);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "SSN ***-**-6789 on file"
    );
    assert_eq!(r.summary.text, "SSN ***-**-6789 on file");
    assert_eq!(
        r.summary.tool_calls,
        [LlmToolCall {
            name: "charge".into(),
            arguments: "{\"card\":\"**** **** **** 1111\"}".into()
        }]
    );
    assert_eq!(r.summary.model.as_deref(), Some("gpt-4o"));
    assert_eq!(r.summary.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        r.summary.usage,
        Some(LlmUsage {
            prompt_tokens: 5,
            completion_tokens: 7,
            total_tokens: 12
        })
    );
    assert_eq!(r.counts.get(EntityType::Ssn), 1);
    assert_eq!(r.counts.get(EntityType::CardNumber), 1);

    // Per-token logprobs would spell a value out: dropped.
    let lp = json!({"choices": [{"text": "x", "logprobs": {"tokens": ["123", "-45-", "6789"]}}]});
    let r = mask_response(lp.to_string().as_bytes(), &masker());
    assert!(r.changed && !String::from_utf8(r.body).unwrap().contains("6789"));

    // Nothing to mask: the original bytes, untouched.
    let plain = br#"{"choices": [{"text": "hi", "finish_reason": "stop"}]}"#;
    let r = mask_response(plain, &masker());
    assert!(!r.changed);
    assert_eq!(r.body, plain);
    assert_eq!(r.summary.text, "hi");

    // Responses API.
    let body = json!({
        "object": "response", "status": "completed", "model": "m",
        "output": [
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "mail jo@example.com"}
            ]},
            {"type": "function_call", "name": "lookup", "arguments": "{\"ssn\":\"123-45-6789\"}"}
        ],
        "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
    });
    let r = mask_response(body.to_string().as_bytes(), &masker());
    assert_eq!(r.summary.text, "mail [REDACTED:email]");
    assert_eq!(
        r.summary.tool_calls[0].arguments,
        "{\"ssn\":\"***-**-6789\"}"
    );
    assert_eq!(r.summary.finish_reason.as_deref(), Some("completed"));
    assert_eq!(r.summary.usage.unwrap().completion_tokens, 4);

    // Not JSON: masked as text.
    let r = mask_response(b"<html>ssn 123-45-6789</html>", &masker());
    assert_eq!(r.body, b"<html>ssn ***-**-6789</html>");
}

fn chunk(id: &str, choice: Value) -> String {
    let v = json!({
        "id": id, "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
        "choices": [choice]
    });
    format!("data: {v}\n\n")
}

fn content(text: &str) -> String {
    chunk(
        "c",
        json!({"index": 0, "delta": {"content": text}, "finish_reason": null}),
    )
}

fn finish_chunk() -> String {
    chunk(
        "c",
        json!({"index": 0, "delta": {}, "finish_reason": "stop"}),
    )
}

/// What a client sees: the concatenated content and the raw events.
fn client_view(bytes: &[u8]) -> (String, Vec<SseEvent>) {
    let mut d = SseDecoder::default();
    let mut events = d.push(bytes).unwrap();
    events.extend(d.finish().unwrap());
    let mut text = String::new();
    for ev in &events {
        let Some(Ok(v)) = ev.data.as_deref().map(serde_json::from_str::<Value>) else {
            continue;
        };
        for c in v["choices"].as_array().into_iter().flatten() {
            text.push_str(c["delta"]["content"].as_str().unwrap_or(""));
            text.push_str(c["text"].as_str().unwrap_or(""));
        }
        if v["type"] == "response.output_text.delta" {
            text.push_str(v["delta"].as_str().unwrap());
        }
    }
    (text, events)
}

#[test]
fn a_streamed_ssn_split_across_events_and_chunks_is_masked() {
    let m = masker();
    let role = chunk(
        "c",
        json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}),
    );
    let stream = [
        role.clone(),
        content("Your"),
        content(" SSN is 123-4"),
        content("5-6789, keep"),
        content(" it safe."),
        finish_chunk(),
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":9,\"total_tokens\":12}}\n\n".to_string(),
        "data: [DONE]\n\n".to_string(),
    ]
    .concat();
    let bytes = stream.as_bytes();
    // Split the bytes inside the SSN's second event too.
    let split = stream.find("5-67").unwrap();
    for cuts in [
        vec![split],
        vec![7, split, split + 3],
        (1..bytes.len()).step_by(37).collect(),
    ] {
        let mut s = SseMasker::new();
        let mut out = Vec::new();
        let mut at = 0;
        for c in cuts.into_iter().chain([bytes.len()]) {
            out.extend(s.push(&m, &bytes[at..c]).unwrap());
            at = c;
        }
        out.extend(s.finish(&m).unwrap());
        let (text, events) = client_view(&out);
        assert_eq!(text, "Your SSN is ***-**-6789, keep it safe.");
        assert!(!String::from_utf8_lossy(&out).contains("123-4"));
        assert_eq!(events.last().unwrap().data.as_deref(), Some("[DONE]"));
        let sum = s.summary();
        assert_eq!(sum.text, text);
        assert_eq!(sum.finish_reason.as_deref(), Some("stop"));
        assert_eq!(sum.usage.unwrap().total_tokens, 12);
        assert_eq!(sum.model.as_deref(), Some("gpt-4o"));
        assert_eq!(s.counts().get(EntityType::Ssn), 1);
    }
    // The role chunk, unchanged, passes byte for byte.
    let mut s = SseMasker::new();
    assert_eq!(s.push(&m, role.as_bytes()).unwrap(), role.as_bytes());
}

#[test]
fn content_flows_before_the_stream_ends() {
    let m = masker();
    let mut s = SseMasker::new();
    let out = s.push(&m, content("Hello").as_bytes()).unwrap();
    let (text, events) = client_view(&out);
    assert_eq!(
        (text.as_str(), events.len()),
        ("", 1),
        "event kept, word held"
    );
    let out = s.push(&m, content(" world").as_bytes()).unwrap();
    assert_eq!(client_view(&out).0, "Hello ");
    // The held word is released into the finishing chunk.
    let out = s.push(&m, finish_chunk().as_bytes()).unwrap();
    let (text, events) = client_view(&out);
    assert_eq!(text, "world");
    let v: Value = serde_json::from_str(events[0].data.as_deref().unwrap()).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(s.finish(&m).unwrap().is_empty());
}

#[test]
fn held_text_is_released_before_done_or_at_the_end() {
    let m = masker();
    let mut s = SseMasker::new();
    let mut out = s.push(&m, content("ssn 123-45-").as_bytes()).unwrap();
    out.extend(s.push(&m, content("6789").as_bytes()).unwrap());
    out.extend(s.push(&m, b"data: [DONE]\n\n").unwrap());
    let (text, events) = client_view(&out);
    assert_eq!(text, "ssn ***-**-6789");
    assert_eq!(events.len(), 4, "one chunk added before [DONE]");
    let added: Value = serde_json::from_str(events[2].data.as_deref().unwrap()).unwrap();
    assert_eq!(added["id"], "c");
    assert_eq!(added["object"], "chat.completion.chunk");
    assert_eq!(events[3].data.as_deref(), Some("[DONE]"));

    // No [DONE], no finish_reason: released when the body ends.
    let mut s = SseMasker::new();
    let mut out = s.push(&m, content("mail jo@example.").as_bytes()).unwrap();
    out.extend(s.push(&m, content("com").as_bytes()).unwrap());
    out.extend(s.finish(&m).unwrap());
    assert_eq!(client_view(&out).0, "mail [REDACTED:email]");
}

#[test]
fn streamed_tool_call_arguments_are_masked() {
    let m = masker();
    let tc = |args: &str, name: Option<&str>| {
        let mut f = json!({"arguments": args});
        if let Some(n) = name {
            f["name"] = json!(n);
        }
        chunk(
            "c",
            json!({"index": 0, "delta": {"tool_calls": [{"index": 0, "function": f}]}, "finish_reason": null}),
        )
    };
    let stream = [
        tc("", Some("charge")),
        tc("{\"card\": \"4111 1111", None),
        tc(" 1111 1111\", \"note\": \"ok", None),
        tc("\"}", None),
        chunk(
            "c",
            json!({"index": 0, "delta": {}, "finish_reason": "tool_calls"}),
        ),
        "data: [DONE]\n\n".into(),
    ]
    .concat();
    let mut s = SseMasker::new();
    let mut out = Vec::new();
    for piece in stream.as_bytes().chunks(50) {
        out.extend(s.push(&m, piece).unwrap());
    }
    out.extend(s.finish(&m).unwrap());
    let (_, events) = client_view(&out);
    let mut args = String::new();
    for ev in &events {
        if let Some(Ok(v)) = ev.data.as_deref().map(serde_json::from_str::<Value>) {
            for tc in v["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                args.push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
            }
        }
    }
    assert_eq!(
        args,
        "{\"card\": \"**** **** **** 1111\", \"note\": \"ok\"}"
    );
    let sum = s.summary();
    assert_eq!(
        sum.tool_calls,
        [LlmToolCall {
            name: "charge".into(),
            arguments: args
        }]
    );
    assert_eq!(sum.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(s.counts().get(EntityType::CardNumber), 1);
}

#[test]
fn reasoning_and_other_streamed_fields_are_masked_across_events() {
    let m = masker();
    let reasoning = |t: &str| {
        chunk(
            "c",
            json!({"index": 0, "delta": {"reasoning_content": t}, "finish_reason": null}),
        )
    };
    let mut s = SseMasker::new();
    let mut out = s.push(&m, reasoning("ssn 123-45").as_bytes()).unwrap();
    out.extend(s.push(&m, reasoning("-6789 ok").as_bytes()).unwrap());
    out.extend(s.push(&m, finish_chunk().as_bytes()).unwrap());
    out.extend(s.push(&m, b"data: [DONE]\n\n").unwrap());
    let text = String::from_utf8(out).unwrap();
    assert!(
        !text.contains("6789 ok") || text.contains("***-**-6789"),
        "{text}"
    );
    assert!(!text.contains("123-45"), "{text}");

    let ev = |v: Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap());
    let summary = |d: &str| {
        ev(
            json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": d, "logprobs": [{"token": "123"}]}),
        )
    };
    let stream = [
        summary("looked up 123-45-"),
        summary("6789 in the file"),
        ev(json!({"type": "response.reasoning_summary_text.done", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "text": "looked up 123-45-6789 in the file"})),
    ]
    .concat();
    let mut s = SseMasker::new();
    let mut out = s.push(&m, stream.as_bytes()).unwrap();
    out.extend(s.finish(&m).unwrap());
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("123-45"), "{text}");
    assert!(!text.contains("\"token\""), "logprobs are dropped: {text}");
}

#[test]
fn nested_deltas_plain_text_and_json_arrays_are_masked() {
    let m = masker();
    let audio = |t: &str| {
        chunk(
            "c",
            json!({"index": 0, "delta": {"audio": {"transcript": t}}, "finish_reason": null}),
        )
    };
    let mut s = SseMasker::new();
    let mut out = s.push(&m, audio("ssn 123-45").as_bytes()).unwrap();
    out.extend(s.push(&m, audio("-6789 ok").as_bytes()).unwrap());
    out.extend(s.push(&m, finish_chunk().as_bytes()).unwrap());
    out.extend(s.push(&m, b"data: [DONE]\n\n").unwrap());
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("123-45"), "{text}");
    assert!(text.contains("transcript"), "{text}");

    let mut s = SseMasker::new();
    let mut out = s.push(&m, b"data: ssn 123-45\n\n").unwrap();
    out.extend(s.push(&m, b"data: -6789 ok\n\n").unwrap());
    out.extend(s.finish(&m).unwrap());
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("123-45"), "{text}");

    let mut s = SseMasker::new();
    let mut out = s
        .push(&m, b"data: [\"123\\u002d45\\u002d6789\"]\n\n")
        .unwrap();
    out.extend(s.finish(&m).unwrap());
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("6789\"") || text.contains("***"), "{text}");
    assert!(!text.contains("\\u002d45"), "{text}");
}

#[test]
fn completions_and_responses_streams_are_masked() {
    let m = masker();
    let text = |t: &str| {
        format!(
            "data: {}\n\n",
            json!({"object": "text_completion", "choices": [{"index": 0, "text": t, "finish_reason": null}]})
        )
    };
    let mut s = SseMasker::new();
    let mut out = s.push(&m, text("call 212-555-").as_bytes()).unwrap();
    out.extend(s.push(&m, text("0147 now").as_bytes()).unwrap());
    out.extend(s.push(&m, b"data: [DONE]\n\n").unwrap());
    assert_eq!(client_view(&out).0, "call [REDACTED:phone] now");

    let ev = |v: Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap());
    let delta = |d: &str| {
        ev(
            json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": d}),
        )
    };
    let stream = [
        ev(json!({"type": "response.created", "response": {"model": "m", "status": "in_progress"}})),
        delta("SSN 123-45-"),
        delta("6789 here"),
        ev(json!({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0, "content_index": 0, "text": "SSN 123-45-6789 here"})),
        ev(json!({"type": "response.completed", "response": {"model": "m", "status": "completed", "output": [], "usage": {"input_tokens": 2, "output_tokens": 3, "total_tokens": 5}}})),
    ]
    .concat();
    let mut s = SseMasker::new();
    let mut out = s.push(&m, stream.as_bytes()).unwrap();
    out.extend(s.finish(&m).unwrap());
    let (text, events) = client_view(&out);
    assert_eq!(text, "SSN ***-**-6789 here");
    let done = events
        .iter()
        .find(|e| e.event.as_deref() == Some("response.output_text.done"))
        .unwrap();
    assert!(done
        .data
        .as_deref()
        .unwrap()
        .contains("SSN ***-**-6789 here"));
    let added = events.iter().position(|e| e.event.is_none()).unwrap();
    let done_at = events
        .iter()
        .position(|e| e.event.as_deref() == Some("response.output_text.done"))
        .unwrap();
    assert!(added < done_at, "held text goes out before .done");
    let sum = s.summary();
    assert_eq!(sum.text, "SSN ***-**-6789 here");
    assert_eq!(sum.finish_reason.as_deref(), Some("completed"));
    assert_eq!(sum.usage.unwrap().total_tokens, 5);
}

#[test]
fn other_events_pass_through_and_errors_have_openai_shape() {
    let m = masker();
    let mut s = SseMasker::new();
    let odd = b": keep-alive\r\n\r\nevent: ping\r\ndata: not json\r\n\r\n";
    assert_eq!(s.push(&m, odd).unwrap(), odd);
    let mut out = s.push(&m, b"data: raw ssn 123-45-6789\n\n").unwrap();
    out.extend(s.finish(&m).unwrap());
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("data: raw ssn "), "{text}");
    assert!(
        text.contains("***-**-6789") && !text.contains("123-45"),
        "{text}"
    );
    let lp = chunk(
        "c",
        json!({"index": 0, "delta": {"content": ""}, "logprobs": {"content": [{"token": "123"}]}, "finish_reason": null}),
    );
    let out = s.push(&m, lp.as_bytes()).unwrap();
    assert!(!String::from_utf8(out).unwrap().contains("123"));
    let mut small = SseMasker::with_max_event(32);
    assert!(small.push(&m, &[b'x'; 64]).is_err());

    let body: Value = serde_json::from_slice(&openai_error_body(
        "blocked by policy",
        "gatehouse_policy",
        Some("blocked"),
    ))
    .unwrap();
    assert_eq!(
        body,
        json!({"error": {"message": "blocked by policy", "type": "gatehouse_policy", "param": null, "code": "blocked"}})
    );
    let ev = sse_error_event("upstream failed", "gatehouse_error", None);
    let text = String::from_utf8(ev).unwrap();
    assert!(text.starts_with("data: {\"error\":") && text.ends_with("}\n\n"));
    assert!(text.contains("\"code\":null"));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    /// However the answer is cut into events and the bytes into chunks,
    /// the client sees the whole answer masked as if it came in one piece.
    #[test]
    fn any_event_and_chunk_split_masks_like_the_whole_answer(
        event_cuts in proptest::collection::vec(0usize..120, 0..10),
        byte_cuts in proptest::collection::vec(0usize..3000, 0..10),
    ) {
        let m = masker();
        let answer = "Customer: SSN 123-45-6789, card 4111 1111 1111 1111, mail jo@example.com, \
                      phone (212) 555-0147; IBAN GB82 WEST 1234 5698 7654 32 ok.";
        let mut cuts: Vec<usize> = event_cuts.into_iter().filter(|&c| c < answer.len()).collect();
        cuts.extend([0, answer.len()]);
        cuts.sort_unstable();
        cuts.dedup();
        let mut stream: String = cuts.windows(2).map(|w| content(&answer[w[0]..w[1]])).collect();
        stream.push_str(&finish_chunk());
        stream.push_str("data: [DONE]\n\n");
        let bytes = stream.as_bytes();
        let mut byte_cuts: Vec<usize> = byte_cuts.into_iter().filter(|&c| c < bytes.len()).collect();
        byte_cuts.push(bytes.len());
        byte_cuts.sort_unstable();
        let mut s = SseMasker::new();
        let mut out = Vec::new();
        let mut at = 0;
        for c in byte_cuts {
            out.extend(s.push(&m, &bytes[at..c]).unwrap());
            at = c;
        }
        out.extend(s.finish(&m).unwrap());
        let mut counts = MaskCounts::default();
        let expected = m.mask_detected(answer, &mut counts).unwrap();
        proptest::prop_assert_eq!(client_view(&out).0, expected);
        proptest::prop_assert_eq!(s.counts(), &counts);
    }
}
