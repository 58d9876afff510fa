//! tests/browser/approve.mjs against this crate's console: a real browser
//! (Debian's chromium through playwright-core) signs in through the dev
//! sign-in page and through the real IdP's login and consent pages, and
//! decides requests through the form.
//!
//! Needs /usr/bin/chromium and `npm ci` in tests/browser; without them the
//! test says so and passes, unless GATEHOUSE_REQUIRE_BROWSER=1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use gatehouse_approvals::Status;
use gatehouse_core::approval::{ApprovalBroker, Outcome};
use std::path::Path;
use std::time::Duration;
use support::*;
use tokio::net::TcpListener;

const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser");

fn browser_missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "{chromium} is not installed (apt-get install chromium)"
        ));
    }
    if !Path::new(BROWSER_DIR)
        .join("node_modules/playwright-core")
        .exists()
    {
        return Some("playwright-core is not installed (npm ci in tests/browser)".into());
    }
    None
}

/// Run approve.mjs; its exit success and its JSON line.
async fn approve_mjs(args: &[&str]) -> (bool, serde_json::Value, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(150),
        tokio::process::Command::new("node")
            .arg("approve.mjs")
            .args(args)
            .current_dir(BROWSER_DIR)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("approve.mjs finished in time")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = stdout.lines().last().unwrap_or_default().to_string();
    let json = serde_json::from_str(&line)
        .unwrap_or_else(|_| panic!("approve.mjs printed no JSON line: {stdout}\n{stderr}"));
    (out.status.success(), json, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_signs_in_and_decides() {
    if let Some(why) = browser_missing() {
        assert!(
            std::env::var("GATEHOUSE_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "browser test required but {why}"
        );
        eprintln!("SKIPPED a_real_browser_signs_in_and_decides: {why}");
        return;
    }
    let shots = tempfile::tempdir().expect("tempdir");

    // Dev sign-in page, approve.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let console = Console::start(listener, SignInWith::Dev).await;
    let alice = console.person("alice", &["analysts"]);
    let id = console
        .hold(&alice, "sess-b1", "DELETE FROM customers\nWHERE id = 7", 1)
        .await;
    let waiter = {
        let b = console.broker.clone();
        tokio::spawn(async move { b.wait(id).await })
    };
    let shot = shots.path().join("dev-approve.png");
    let id_text = id.to_string();
    let (ok, json, stderr) = approve_mjs(&[
        "--console",
        &console.url,
        "--login",
        "omar",
        "--request",
        &id_text,
        "--decision",
        "approve",
        "--reason",
        "checked with the ticket <CHG-1>",
        "--screenshot",
        shot.to_str().expect("path"),
    ])
    .await;
    assert!(ok, "{json} {stderr}");
    assert_eq!(json["ok"], true);
    assert!(
        matches!(json["status"].as_str(), Some("approved" | "executed")),
        "{json}"
    );
    assert_eq!(json["signed_in_as"], "omar@bank.test");
    assert!(shot.exists(), "screenshot written");
    let outcome = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("waiter woke")
        .expect("task");
    assert!(matches!(outcome, Outcome::Approved { .. }), "{outcome:?}");
    let r = console.broker.request(id).await.expect("request");
    assert_eq!(r.decisions[0].reason, "checked with the ticket <CHG-1>");
    drop(console);

    // The real IdP's login and consent pages, deny, with the console over
    // TLS (self-signed, HTTP/2) as the gateway serves it.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let redirect = format!("https://{}/callback", listener.local_addr().expect("addr"));
    let idp = Idp::start(&redirect).await;
    std::env::set_var(
        "GATEHOUSE_CONSOLE_BROWSER_SECRET",
        "gatehouse-console-secret",
    );
    let console = Console::start_tls(
        listener,
        SignInWith::Idp {
            issuer: idp.issuer(),
            secret_env: "GATEHOUSE_CONSOLE_BROWSER_SECRET".into(),
        },
    )
    .await;
    let alice = console.person("alice", &["analysts"]);
    let id = console
        .hold(&alice, "sess-b2", "DROP TABLE ledger", 1)
        .await;
    let id_text = id.to_string();
    let (ok, json, stderr) = approve_mjs(&[
        "--console",
        &console.url,
        "--login",
        "omar",
        "--password",
        "any",
        "--request",
        &id_text,
        "--decision",
        "deny",
        "--reason",
        "not during the audit",
    ])
    .await;
    assert!(ok, "{json} {stderr}");
    assert_eq!(json["status"], "denied", "{json}");
    assert_eq!(
        console.broker.request(id).await.expect("request").status,
        Status::Denied
    );

    // The requester finds no decision form on her own request.
    let id = console
        .hold(&alice, "sess-b2", "DROP TABLE ledger", 1)
        .await;
    let id_text = id.to_string();
    let (ok, json, _) = approve_mjs(&[
        "--console",
        &console.url,
        "--login",
        "alice",
        "--request",
        &id_text,
        "--decision",
        "approve",
        "--reason",
        "mine",
        "--step-timeout-ms",
        "10000",
    ])
    .await;
    assert!(!ok, "{json}");
    assert!(
        json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no decision form"),
        "{json}"
    );
    assert_eq!(
        console.broker.request(id).await.expect("request").status,
        Status::Pending
    );
    ApprovalBroker::withdraw(&console.broker, id, "test over").await;
}
