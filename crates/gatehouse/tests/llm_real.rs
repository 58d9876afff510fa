//! A real OpenAI-compatible server behind the gateway: llama.cpp (through
//! llama-cpp-python's server) running a tiny random-weights model, called
//! with the official `openai` Python SDK.
//!
//! `llm.rs` proves masking against an upstream with known PII; this one
//! proves the gateway copes with a server it did not write: its SSE
//! framing, its usage chunk, its model list, its API key check. The answers
//! are gibberish, so only their shape is checked.
//!
//! Needs `bash scripts/llama.sh` first (installs llama-cpp-python and makes
//! target/llm/tiny.gguf). Skips when llama_cpp is not importable, unless
//! GATEHOUSE_REQUIRE_LLAMA=1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The key the llama server demands; only the gateway holds it.
const UPSTREAM_KEY: &str = "llama-upstream-key-only-the-gateway-holds";
/// Chat answers are capped so the whole test takes seconds.
const MAX_TOKENS: &str = "16";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn llama_ready() -> bool {
    let python = |code: &str| {
        Command::new("python3")
            .args(["-c", code])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let required = std::env::var("GATEHOUSE_REQUIRE_LLAMA").as_deref() == Ok("1");
    if !python("import llama_cpp, llama_cpp.server.app") {
        if required {
            panic!("llama-cpp-python's server is required (run: bash scripts/llama.sh)");
        }
        return false;
    }
    if !python("import openai") {
        if required || std::env::var("GATEHOUSE_REQUIRE_OPENAI").as_deref() == Ok("1") {
            panic!("the openai Python SDK is required (scripts/test.sh installs it)");
        }
        return false;
    }
    true
}

/// The tiny model: GATEHOUSE_LLAMA_MODEL, or target/llm/tiny.gguf (made
/// here when missing).
fn model() -> PathBuf {
    if let Ok(p) = std::env::var("GATEHOUSE_LLAMA_MODEL") {
        return PathBuf::from(p);
    }
    let path = repo_root().join("target/llm/tiny.gguf");
    if !path.is_file() {
        let o = Command::new("python3")
            .arg(repo_root().join("tests/llm/make_tiny_model.py"))
            .arg(&path)
            .output()
            .expect("python3 runs");
        assert!(o.status.success(), "make_tiny_model.py: {}", err(&o));
    }
    path
}

/// A llama.cpp server on a free local port, killed when dropped.
struct Llama {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Llama {
    async fn start(model: &Path) -> Llama {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("llama.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new("python3")
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(model)
            .args(["--model_alias", "tiny", "--host", "127.0.0.1"])
            .args(["--port", &port.to_string(), "--n_ctx", "512"])
            .args(["--api_key", UPSTREAM_KEY])
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("python3 -m llama_cpp.server starts");
        let mut llama = Llama {
            child,
            port,
            log,
            _dir: dir,
        };
        llama.wait_ready(Duration::from_secs(60)).await;
        llama
    }

    async fn wait_ready(&mut self, limit: Duration) {
        let started = Instant::now();
        loop {
            if let Ok((200, _)) = self.get("/v1/models", Some(UPSTREAM_KEY)).await {
                eprintln!("llama.cpp server ready in {:?}", started.elapsed());
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("llama.cpp server exited ({status}):\n{}", self.log_text());
            }
            if started.elapsed() > limit {
                panic!(
                    "llama.cpp server not ready after {limit:?}:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A plain HTTP/1.1 GET straight to the server: (status, body).
    async fn get(&self, path: &str, key: Option<&str>) -> std::io::Result<(u16, String)> {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let auth = key
            .map(|k| format!("Authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
            .await
            .map_err(|_| std::io::Error::other("timed out"))??;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no status line: {text}")))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }
}

/// A streamed chat answer fetched with curl, raw.
async fn curl_stream(url: &str, key: &str, ca: Option<&Path>) -> String {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "-N", "--max-time", "30"]);
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    let o = tokio::time::timeout(
        Duration::from_secs(60),
        cmd.args([
            "-H",
            &format!("Authorization: Bearer {key}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"model":"tiny","stream":true,"max_tokens":8,"seed":7,"temperature":0,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
            url,
        ])
        .kill_on_drop(true)
        .output(),
    )
    .await
    .expect("curl finishes")
    .unwrap();
    let body = out(&o);
    assert!(o.status.success(), "{}", err(&o));
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    body
}

/// The JSON events of an SSE body (each must parse).
fn sse_events(body: &str) -> Vec<serde_json::Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:").map(str::trim))
        .filter(|l| *l != "[DONE]")
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The content of a streamed answer's deltas, joined.
fn stream_text(events: &[serde_json::Value]) -> String {
    events
        .iter()
        .flat_map(|e| e["choices"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["delta"]["content"].as_str().map(str::to_string))
        .collect()
}

impl Drop for Llama {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn gateway(llama: &Llama) -> TestGateway {
    let port = llama.port;
    TestGateway::start_with_policy("[http]\nlisten = \"127.0.0.1:0\"", |dir| {
        let key = dir.join("llama.key");
        std::fs::write(&key, UPSTREAM_KEY).unwrap();
        format!(
            r#"
[[connections]]
name = "llama"
type = "openai"
host = "127.0.0.1"
port = {port}
password_file = "{key}"
allow_groups = ["data-science"]

[[rules]]
name = "no-ssn-harvesting"
effect = "block"
message = "prompts may not ask for Social Security numbers"
connections = ["llama"]
pattern = "(?i)(list|give|show|tell).{{0,40}}(ssns?|social security)"
"#,
            key = key.display()
        )
    })
    .await
}

fn base_url(gw: &TestGateway) -> String {
    format!("https://{}/llama/v1", gw.gw.http_addr.unwrap())
}

/// One scenario of tests/py/openai_client.py through the gateway.
async fn sdk(gw: &TestGateway, token: &str, scenario: &str, prompt: &str) -> serde_json::Value {
    let script = repo_root().join("tests/py/openai_client.py");
    let started = Instant::now();
    let o = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("python3")
            .arg(script)
            .args([scenario, prompt])
            .env("GATEHOUSE_LLM_BASE_URL", base_url(gw))
            .env("GATEHOUSE_TOKEN", token)
            .env("GATEHOUSE_CA_FILE", gw.ca_file())
            .env("GATEHOUSE_LLM_MODEL", "tiny")
            .env("GATEHOUSE_LLM_MAX_TOKENS", MAX_TOKENS)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the SDK finishes")
    .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value =
        serde_json::from_str(out(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", out(&o)));
    eprintln!("{scenario} in {:?}: {v}", started.elapsed());
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_llama_cpp_server_through_the_gateway_with_the_openai_sdk() {
    if !llama_ready() {
        eprintln!("skipping: llama-cpp-python's server is not installed (bash scripts/llama.sh)");
        return;
    }
    let llama = Llama::start(&model()).await;

    // The server wants its key: a caller who reaches it directly without
    // the key only the gateway holds is turned away.
    let (status, body) = llama.get("/v1/models", None).await.unwrap();
    assert_eq!(status, 401, "no key: {body}");
    let (status, body) = llama.get("/v1/models", Some("a-guess")).await.unwrap();
    assert_eq!(status, 401, "wrong key: {body}");

    let gw = gateway(&llama).await;
    let ana = gw.token("ana", &["data-science"]);

    let chat = sdk(&gw, &ana, "chat", "Say hello to the team").await;
    let content = chat["content"].as_str().unwrap_or_else(|| panic!("{chat}"));
    assert!(!content.is_empty(), "{chat}");
    assert!(
        chat["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0,
        "{chat}"
    );
    assert!(
        chat["usage"]["completion_tokens"].as_u64().unwrap_or(0) <= 16,
        "max_tokens reached the server: {chat}"
    );

    let streamed = sdk(&gw, &ana, "stream", "Tell a short story").await;
    assert!(
        streamed["content_chunks"].as_u64().unwrap_or(0) > 1,
        "the answer arrives in pieces: {streamed}"
    );
    assert!(
        !streamed["content"].as_str().unwrap_or("").is_empty(),
        "{streamed}"
    );

    let models = sdk(&gw, &ana, "models", "").await;
    assert!(
        models["models"]
            .as_array()
            .unwrap_or_else(|| panic!("{models}"))
            .iter()
            .any(|m| m == "tiny"),
        "{models}"
    );

    // A rule still blocks before anything reaches the server.
    let blocked = sdk(&gw, &ana, "chat", "List the SSNs of our top customers").await;
    assert_eq!(blocked["error"]["status"], 403, "{blocked}");
    assert!(
        blocked["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("no-ssn-harvesting"),
        "{blocked}"
    );

    // Raw SSE straight from the server and through the gateway: every
    // event is still one JSON object, the stream still ends with [DONE],
    // and a usage chunk comes through exactly when the server sends one
    // (llama-cpp-python's server ignores stream_options.include_usage).
    let direct = curl_stream(
        &format!("http://127.0.0.1:{}/v1/chat/completions", llama.port),
        UPSTREAM_KEY,
        None,
    )
    .await;
    let through = curl_stream(
        &format!("{}/chat/completions", base_url(&gw)),
        &ana,
        Some(&gw.ca_file()),
    )
    .await;
    let direct_events = sse_events(&direct);
    let through_events = sse_events(&through);
    eprintln!("direct stream:\n{direct}\nthrough the gateway:\n{through}");
    assert!(through_events.len() > 1, "{through}");
    // Same seed, greedy: the same answer, whatever the re-chunking.
    assert_eq!(
        stream_text(&through_events),
        stream_text(&direct_events),
        "the gateway passes the streamed text unchanged"
    );
    let upstream_usage = direct_events.iter().any(|e| e["usage"].is_object());
    assert_eq!(
        through_events.iter().any(|e| e["usage"].is_object()),
        upstream_usage,
        "a streamed usage chunk passes as the server sent it: {through}"
    );
    match streamed["usage"]["total_tokens"].as_u64() {
        Some(total) => assert!(total > 0, "{streamed}"),
        None => assert!(
            !upstream_usage,
            "the server streams usage but the SDK saw none: {streamed}"
        ),
    }

    let events = events(&gw).await;
    let chats: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| {
            e["kind"] == "command"
                && e["connection"] == "llama"
                && e["data"]["request"]["path"] == "/v1/chat/completions"
        })
        .collect();
    assert!(chats.len() >= 3, "{chats:?}");
    for c in &chats {
        assert_eq!(c["subject"], "ana", "{c}");
        assert_eq!(c["data"]["request"]["model"], "tiny", "{c}");
    }
    assert!(
        chats
            .iter()
            .any(|c| c["data"]["verdict"]["effect"] == "block"),
        "the blocked prompt is recorded: {chats:?}"
    );
    let results: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "command.result" && e["connection"] == "llama")
        .filter(|e| {
            e["data"]["response"]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
        .collect();
    // The whole answer, the SDK's stream and curl's stream.
    assert!(results.len() >= 3, "each answer is recorded: {events:#?}");
    for r in &results {
        assert_eq!(r["data"]["response"]["model"], "tiny", "{r}");
    }
    let with_usage: Vec<u64> = results
        .iter()
        .filter_map(|r| r["data"]["response"]["usage"]["total_tokens"].as_u64())
        .collect();
    assert!(
        with_usage.iter().all(|t| *t > 0),
        "{with_usage:?}: {results:?}"
    );
    // The whole answer always carries usage; streamed ones when the server
    // streamed it.
    let expected = if upstream_usage { 3 } else { 1 };
    assert!(
        with_usage.len() >= expected,
        "usage recorded for {} answers, expected {expected}: {results:?}",
        with_usage.len()
    );
    eprintln!(
        "recorded answers: {}",
        serde_json::to_string(&results.iter().map(|r| &r["data"]).collect::<Vec<_>>()).unwrap()
    );
    gw.stop().await;
    drop(llama);
}
