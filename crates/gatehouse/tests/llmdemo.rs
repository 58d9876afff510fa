//! The demo LLM upstream answers like an OpenAI server: key checked,
//! streamed and whole answers, tools, embeddings, the responses API.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use gatehouse_testbed::llmdemo::{self, FAKE_CARD, FAKE_SSN, MODEL};
use serde_json::{json, Value};

const KEY: &str = "sk-demo-upstream";

async fn upstream() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = llmdemo::start(listener, KEY.to_string()).await;
    (base, task)
}

async fn post(base: &str, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Read a streamed body chunk by chunk; the `data:` payloads in order and
/// how many chunks arrived.
async fn sse_data(mut resp: reqwest::Response) -> (Vec<String>, usize) {
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut body = Vec::new();
    let mut chunks = 0;
    while let Some(c) = resp.chunk().await.unwrap() {
        chunks += 1;
        body.extend_from_slice(&c);
    }
    let text = String::from_utf8(body).unwrap();
    let data = text
        .split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_string)
        .collect();
    (data, chunks)
}

#[tokio::test]
async fn the_key_is_required() {
    let (base, task) = upstream().await;
    let client = reqwest::Client::new();
    for auth in [None, Some("Bearer wrong")] {
        let mut req = client.get(format!("{base}/v1/models"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["param"], Value::Null);
    }
    let models: Value = client
        .get(format!("{base}/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], MODEL);
    let resp = client
        .get(format!("{base}/v1/nothing"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    task.abort();
}

#[tokio::test]
async fn chat_answers_whole_and_streamed() {
    let (base, task) = upstream().await;
    let ask = json!([{"role": "user", "content": "who is customer 42?"}]);
    let whole: Value = post(
        &base,
        "/v1/chat/completions",
        json!({"model": "m", "messages": ask}),
    )
    .await
    .json()
    .await
    .unwrap();
    let text = whole["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        text.contains("who is customer 42?") && text.contains(FAKE_SSN),
        "{text}"
    );
    assert_eq!(whole["choices"][0]["finish_reason"], "stop");
    assert_eq!(whole["usage"]["prompt_tokens"], 4);
    assert!(whole["usage"]["completion_tokens"].as_u64().unwrap() > 10);

    let resp = post(
        &base,
        "/v1/chat/completions",
        json!({"model": "m", "messages": ask, "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    let (data, chunks) = sse_data(resp).await;
    assert!(chunks > 3, "events arrive as separate chunks");
    assert_eq!(data.last().unwrap(), "[DONE]");
    let events: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(events
        .iter()
        .all(|e| e["object"] == "chat.completion.chunk"));
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let deltas: Vec<&str> = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(deltas.concat(), text);
    assert!(
        deltas.iter().all(|d| !d.contains(FAKE_SSN)),
        "the SSN is split"
    );
    let n = events.len();
    assert_eq!(events[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(events[n - 1]["choices"], json!([]));
    assert_eq!(events[n - 1]["usage"], whole["usage"]);
    task.abort();
}

#[tokio::test]
async fn offered_tools_get_a_tool_call_with_a_card() {
    let (base, task) = upstream().await;
    let req = json!({
        "model": "m",
        "messages": [{"role": "user", "content": "charge it"}],
        "tools": [{"type": "function", "function": {"name": "charge_card", "parameters": {}}}]
    });
    let whole: Value = post(&base, "/v1/chat/completions", req.clone())
        .await
        .json()
        .await
        .unwrap();
    let call = &whole["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "charge_card");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["card_number"], FAKE_CARD);
    assert_eq!(whole["choices"][0]["finish_reason"], "tool_calls");

    let mut streamed = req;
    streamed["stream"] = json!(true);
    let (data, _) = sse_data(post(&base, "/v1/chat/completions", streamed).await).await;
    let mut args = String::new();
    let mut name = None;
    for d in &data[..data.len() - 1] {
        let e: Value = serde_json::from_str(d).unwrap();
        for tc in e["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            name = name.or(tc["function"]["name"].as_str().map(str::to_string));
            let piece = tc["function"]["arguments"].as_str().unwrap_or("");
            assert!(!piece.contains(FAKE_CARD), "the card is split");
            args.push_str(piece);
        }
    }
    assert_eq!(name.as_deref(), Some("charge_card"));
    assert_eq!(args, call["function"]["arguments"].as_str().unwrap());
    task.abort();
}

#[tokio::test]
async fn completions_embeddings_and_responses() {
    let (base, task) = upstream().await;
    let whole: Value = post(
        &base,
        "/v1/completions",
        json!({"model": "m", "prompt": "say hi"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let text = whole["choices"][0]["text"].as_str().unwrap().to_string();
    assert!(text.contains("say hi") && text.contains(FAKE_SSN));
    let (data, _) = sse_data(
        post(
            &base,
            "/v1/completions",
            json!({"model": "m", "prompt": "say hi", "stream": true}),
        )
        .await,
    )
    .await;
    let streamed: String = data[..data.len() - 1]
        .iter()
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["choices"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(streamed, text);

    let emb: Value = post(
        &base,
        "/v1/embeddings",
        json!({"model": "e", "input": ["a", "b c"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(emb["data"].as_array().unwrap().len(), 2);
    assert_eq!(emb["data"][1]["embedding"].as_array().unwrap().len(), 8);
    assert_eq!(emb["usage"]["prompt_tokens"], 3);
    let again: Value = post(&base, "/v1/embeddings", json!({"model": "e", "input": "a"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["data"][0]["embedding"], emb["data"][0]["embedding"],
        "deterministic"
    );

    let resp: Value = post(
        &base,
        "/v1/responses",
        json!({"model": "m", "input": "hello there"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(resp["object"], "response");
    assert_eq!(resp["status"], "completed");
    let out = resp["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(out.contains("hello there") && out.contains(FAKE_SSN));
    assert_eq!(resp["usage"]["input_tokens"], 2);
    let (data, _) = sse_data(
        post(
            &base,
            "/v1/responses",
            json!({"model": "m", "input": "hello there", "stream": true}),
        )
        .await,
    )
    .await;
    let events: Vec<Value> = data
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, out);
    assert_eq!(events.last().unwrap()["type"], "response.completed");

    let bad = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    task.abort();
}
