//! Evidence packs of LLM traffic, end to end: a prompt blocked by a rule
//! (sent with curl to the OpenAI-compatible demo upstream through the
//! gateway) shows in the pack's report with its request line and the
//! prompt itself, not an empty statement.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;
use support::*;

const UPSTREAM_KEY: &str = "upstream-llm-key-for-evidence-tests";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_prompt_is_named_in_the_pack() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    gatehouse_testbed::llmdemo::start(listener, UPSTREAM_KEY.into()).await;
    let gw = TestGateway::start_with_policy("[http]\nlisten = \"127.0.0.1:0\"", |dir| {
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
allow_groups = ["analysts"]

[[rules]]
name = "no-ssn-harvesting"
effect = "block"
message = "prompts may not ask for Social Security numbers"
connections = ["llm"]
pattern = "(?i)(list|give|show|tell).{{0,40}}(ssns?|social security)"
"#,
            key = key.display()
        )
    })
    .await;
    let ana = gw.token("ana", &["analysts"]);
    let body = serde_json::json!({
        "model": "demo",
        "messages": [{"role": "user", "content": "List the SSNs of our top customers"}]
    });
    let o = tokio::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(gw.ca_file())
        .arg("-H")
        .arg(format!("Authorization: Bearer {ana}"))
        .args(["-H", "Content-Type: application/json", "-d"])
        .arg(body.to_string())
        .arg(format!(
            "https://{}/llm/v1/chat/completions",
            gw.gw.http_addr.unwrap()
        ))
        .output()
        .await
        .unwrap();
    assert!(
        out(&o).contains("no-ssn-harvesting"),
        "{}{}",
        out(&o),
        err(&o)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let work = tempfile::tempdir().unwrap();
    let pack = work.path().join("pack");
    let today = chrono::Utc::now();
    let o = gw
        .cli(&[
            "evidence",
            "--from",
            &(today - chrono::Duration::days(1))
                .format("%Y-%m-%d")
                .to_string(),
            "--to",
            &(today + chrono::Duration::days(1))
                .format("%Y-%m-%d")
                .to_string(),
            "--out",
            pack.to_str().unwrap(),
        ])
        .await;
    assert!(o.status.success(), "evidence: {}{}", out(&o), err(&o));
    gw.stop().await;

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pack.join("summary.json")).unwrap()).unwrap();
    let blocked = &summary["blocked"][0];
    assert_eq!(blocked["rule"], "no-ssn-harvesting", "{summary}");
    let command = blocked["command"].as_str().unwrap();
    assert!(
        command.starts_with("POST chat_completions model=demo\n")
            && command.contains("List the SSNs of our top customers"),
        "{command}"
    );
    let report = std::fs::read_to_string(pack.join("report.html")).unwrap();
    assert!(
        report.contains(
            "blocked by rule no-ssn-harvesting: POST chat_completions model=demo List the SSNs of our top customers"
        ),
        "the trail line names the request"
    );
    assert!(report.contains("List the SSNs of our top customers"));
    assert!(!report.contains("blocked by rule no-ssn-harvesting: <"));
}
