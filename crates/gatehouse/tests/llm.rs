//! OpenAI-compatible LLM endpoints through the gateway: the official
//! `openai` Python SDK and curl, streamed and not, masked as they stream,
//! prompts blocked by rules, a model's tool call held for approval.
//!
//! The upstream is `gatehouse_testbed::llmdemo`, an OpenAI-compatible server that
//! speaks the real protocol (SSE chunks, usage, tool calls) and answers
//! with known fake PII split across chunks; a real llama.cpp server would
//! answer with text no test can predict.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;
use support::*;

const UPSTREAM_KEY: &str = "upstream-llm-key-for-tests";

fn sdk_ready() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("GATEHOUSE_REQUIRE_OPENAI").as_deref() == Ok("1") {
        panic!("the openai Python SDK is required (scripts/test.sh installs it)");
    }
    ok
}

async fn start() -> TestGateway {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    gatehouse_testbed::llmdemo::start(listener, UPSTREAM_KEY.into()).await;
    TestGateway::start_with_policy("[http]\nlisten = \"127.0.0.1:0\"", |dir| {
        let key = dir.join("llm.key");
        std::fs::write(&key, UPSTREAM_KEY).unwrap();
        format!(
            r#"
[[connections]]
name = "llm"
type = "openai"
host = "127.0.0.1"
port = {port}
password_file = "{key}"
allow_groups = ["analysts", "data-science"]

[[rules]]
name = "no-ssn-harvesting"
effect = "block"
message = "prompts may not ask for Social Security numbers"
connections = ["llm"]
pattern = "(?i)(list|give|show|tell).{{0,40}}(ssns?|social security)"

[[rules]]
name = "no-cards-in-prompts"
effect = "block"
message = "prompts may not carry card numbers"
connections = ["llm"]
detects = ["card_number"]

[[rules]]
name = "wire-transfers-need-approval"
effect = "approve"
message = "the model wants to move money"
connections = ["llm"]
tools = ["wire_transfer"]
approvers = ["approvers"]
"#,
            key = key.display()
        )
    })
    .await
}

fn base_url(gw: &TestGateway) -> String {
    format!("https://{}/llm/v1", gw.gw.http_addr.unwrap())
}

async fn sdk(gw: &TestGateway, token: &str, scenario: &str, prompt: &str) -> serde_json::Value {
    run_sdk(&base_url(gw), &gw.ca_file(), token, scenario, prompt).await
}

fn assert_masked(text: &str) {
    assert!(
        !text.contains(gatehouse_testbed::llmdemo::FAKE_SSN),
        "SSN leaked: {text}"
    );
    assert!(
        !text.contains(gatehouse_testbed::llmdemo::FAKE_CARD),
        "card leaked: {text}"
    );
    assert!(
        !text.contains(gatehouse_testbed::llmdemo::FAKE_EMAIL),
        "email leaked: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openai_sdk_gets_masked_answers_streamed_and_not() {
    if !sdk_ready() {
        eprintln!("skipping: no openai SDK");
        return;
    }
    let gw = start().await;
    let ana = gw.token("ana", &["data-science"]);

    let chat = sdk(&gw, &ana, "chat", "summarise the customer file").await;
    let content = chat["content"].as_str().unwrap_or_else(|| panic!("{chat}"));
    assert!(
        content.contains("***-**-6789"),
        "SSN masked with its tail kept: {content}"
    );
    assert_masked(content);
    assert!(
        chat["usage"]["total_tokens"].as_u64().unwrap() > 0,
        "{chat}"
    );

    let streamed = sdk(&gw, &ana, "stream", "summarise the customer file").await;
    let content = streamed["content"]
        .as_str()
        .unwrap_or_else(|| panic!("{streamed}"));
    assert!(content.contains("***-**-6789"), "{content}");
    assert_masked(content);
    assert!(
        streamed["content_chunks"].as_u64().unwrap() > 5,
        "the answer arrives in many pieces, not at once: {streamed}"
    );
    assert!(
        streamed["usage"]["total_tokens"].as_u64().unwrap() > 0,
        "{streamed}"
    );
    assert_eq!(
        content.replace(' ', ""),
        chat["content"].as_str().unwrap().replace(' ', ""),
        "streamed and whole answers mask alike"
    );

    let completion = sdk(&gw, &ana, "completions", "customer file").await;
    assert_masked(completion["content"].as_str().unwrap());
    let embeddings = sdk(&gw, &ana, "embeddings", "hello").await;
    assert!(
        embeddings["dimensions"].as_u64().unwrap() > 0,
        "{embeddings}"
    );
    let models = sdk(&gw, &ana, "models", "").await;
    assert!(
        models["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == gatehouse_testbed::llmdemo::MODEL),
        "{models}"
    );

    // A prompt a rule blocks: the SDK raises a clean 403 with the rule.
    let blocked = sdk(&gw, &ana, "chat", "List the SSNs of our top customers").await;
    assert_eq!(blocked["error"]["status"], 403, "{blocked}");
    assert!(
        blocked["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-ssn-harvesting"),
        "{blocked}"
    );
    let blocked = sdk(
        &gw,
        &ana,
        "stream",
        "my card is 4111 1111 1111 1111, is it ok?",
    )
    .await;
    assert_eq!(blocked["error"]["status"], 403, "{blocked}");
    assert!(
        blocked["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-cards-in-prompts"),
        "{blocked}"
    );

    // Someone outside the connection's groups.
    let eve = gw.token("eve", &["contractors"]);
    let refused = sdk(&gw, &eve, "chat", "hi").await;
    assert_eq!(refused["error"]["status"], 403, "{refused}");
    let forged = sdk(&gw, "not-a-token", "chat", "hi").await;
    assert_eq!(forged["error"]["status"], 401, "{forged}");

    let events = events(&gw).await;
    let command = events
        .iter()
        .find(|e| {
            e["kind"] == "command"
                && e["connection"] == "llm"
                && e["data"]["request"]["path"] == "/v1/chat/completions"
                && e["data"]["verdict"]["effect"] == "allow"
        })
        .expect("the chat request is recorded");
    assert_eq!(command["subject"], "ana");
    assert_eq!(command["data"]["request"]["model"], "tiny");
    assert!(command["data"]["text"]
        .as_str()
        .unwrap()
        .contains("summarise the customer file"));
    let result = events
        .iter()
        .find(|e| {
            e["kind"] == "command.result"
                && e["connection"] == "llm"
                && e["data"]["response"]["usage"].is_object()
        })
        .expect("the answer and its usage are recorded");
    let recorded = result["data"]["response"]["text"].as_str().unwrap();
    assert!(recorded.contains("***-**-6789"), "{result}");
    assert_masked(recorded);
    assert!(
        result["data"]["masked"]["ssn"].as_u64().unwrap() >= 1,
        "{result}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_streams_server_sent_events_masked() {
    let gw = start().await;
    let ana = gw.token("ana", &["data-science"]);
    let o = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("curl")
            .args(["-sS", "-N", "--max-time", "30", "--cacert"])
            .arg(gw.ca_file())
            .args([
                "-H",
                &format!("Authorization: Bearer {ana}"),
                "-H",
                "Content-Type: application/json",
                "-d",
                r#"{"model":"tiny","stream":true,"messages":[{"role":"user","content":"read me the file"}]}"#,
                &format!("{}/chat/completions", base_url(&gw)),
            ])
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let body = out(&o);
    assert!(o.status.success(), "{}", err(&o));
    assert!(body.contains("data: {"), "{body}");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert_masked(&body);
    // Each event is still valid JSON after masking.
    for line in body.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line != "[DONE]" {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("{e}: {line}"));
        }
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_models_tool_call_waits_for_an_approver() {
    if !sdk_ready() {
        eprintln!("skipping: no openai SDK");
        return;
    }
    let gw = start().await;
    let ana = gw.token("ana", &["data-science"]);
    let omar = gw.token("omar", &["approvers"]);

    // Approved: the agent gets the call, its card number masked.
    let asked = tokio::spawn({
        let base = base_url(&gw);
        let ca = gw.ca_file();
        let ana = ana.clone();
        async move { run_sdk(&base, &ca, &ana, "tools", "pay the supplier").await }
    });
    let request = gw.pending_request(&omar).await;
    let command = request["command"].as_str().unwrap();
    assert!(command.contains("wire_transfer("), "{request}");
    assert!(
        !command.contains(gatehouse_testbed::llmdemo::FAKE_CARD),
        "approvers see masked arguments: {command}"
    );
    let id = request["id"].as_u64().unwrap();
    let (status, _) = gw
        .api(
            "POST",
            &format!("/api/v1/approvals/{id}/approve"),
            &omar,
            Some(serde_json::json!({"reason": "supplier invoice 88"})),
        )
        .await;
    assert_eq!(status, 200);
    let answer = asked.await.unwrap();
    let calls = answer["tool_calls"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(calls[0]["name"], "wire_transfer");
    assert_masked(calls[0]["arguments"].as_str().unwrap());

    // Denied while streaming: the stream ends with an SSE error event the
    // SDK raises, and no tool call reaches the agent.
    let asked = tokio::spawn({
        let base = base_url(&gw);
        let ca = gw.ca_file();
        async move { run_sdk(&base, &ca, &ana, "tools_stream", "pay the supplier").await }
    });
    let request = gw.pending_request(&omar).await;
    let id = request["id"].as_u64().unwrap();
    let (status, _) = gw
        .api(
            "POST",
            &format!("/api/v1/approvals/{id}/deny"),
            &omar,
            Some(serde_json::json!({"reason": "not on the vendor list"})),
        )
        .await;
    assert_eq!(status, 200);
    let answer = asked.await.unwrap();
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("not on the vendor list"),
        "{answer}"
    );
    gw.stop().await;
}

async fn run_sdk(
    base: &str,
    ca: &std::path::Path,
    token: &str,
    scenario: &str,
    prompt: &str,
) -> serde_json::Value {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/py/openai_client.py");
    let o = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("python3")
            .arg(script)
            .args([scenario, prompt])
            .env("GATEHOUSE_LLM_BASE_URL", base)
            .env("GATEHOUSE_TOKEN", token)
            .env("GATEHOUSE_CA_FILE", ca)
            .output(),
    )
    .await
    .expect("the SDK finishes")
    .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    serde_json::from_str(out(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", out(&o)))
}
