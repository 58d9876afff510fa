//! The approval flow in a real browser against the whole gateway: psql
//! holds a statement, an approver opens the link in headless Chromium, signs
//! in to the console (dev sign-in, the authorization-code + PKCE flow),
//! writes a justification and decides; psql gets the result or the denial.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::path::Path;
use std::time::Duration;
use support::{browser_ready, err, out, TestGateway, BROWSER_DIR};

const CONSOLE: &str = r#"
[console]
auditor_groups = ["auditors"]
[[console.dev_identities]]
subject = "omar"
email = "omar@example.com"
groups = ["approvers"]
[[console.dev_identities]]
subject = "audrey"
groups = ["auditors"]
"#;

/// Decide request `id` in Chromium as `login`; the script's JSON line.
async fn decide_in_browser(
    gw: &TestGateway,
    id: u64,
    decision: &str,
    reason: &str,
    shot: &Path,
) -> serde_json::Value {
    let o = tokio::time::timeout(
        Duration::from_secs(150),
        tokio::process::Command::new("node")
            .arg("approve.mjs")
            .args(["--console", &gw.api_url(), "--login", "omar"])
            .args(["--request", &id.to_string(), "--decision", decision])
            .args(["--reason", reason])
            .arg("--screenshot")
            .arg(shot)
            .current_dir(BROWSER_DIR)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser finished in time")
    .expect("node runs");
    assert!(
        o.status.success(),
        "approve.mjs failed:\n{}\n{}",
        out(&o),
        err(&o)
    );
    serde_json::from_str(out(&o).lines().last().unwrap_or_default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_waits_while_an_approver_decides_in_the_console() {
    if !browser_ready() {
        return;
    }
    let gw = TestGateway::start_with(CONSOLE, "", |t| {
        format!("{t}\n{}", gatehouse::demo::DEMO_APPROVAL_RULE)
    })
    .await;
    let omar = gw.token("omar", &["approvers"]);
    let shots = tempfile::tempdir().unwrap();

    // Approve in the console: psql gets its result.
    let dana = gw.token("dana", &["dba"]);
    let psql = gw.psql_background(
        "dana",
        &dana,
        &["update customers set phone = '555-0120' where id = 20"],
        &[],
    );
    let id = gw.pending_request(&omar).await["id"].as_u64().unwrap();
    let shot = shots.path().join("approved.png");
    let result = decide_in_browser(
        &gw,
        id,
        "approve",
        "CHG-2001 reviewed in the console",
        &shot,
    )
    .await;
    assert_eq!(result["ok"], true, "{result}");
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 1000,
        "a screenshot was taken"
    );
    let o = psql.await.unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("UPDATE 1"), "{}", out(&o));
    let (_, r) = gw
        .api("GET", &format!("/api/v1/approvals/{id}"), &omar, None)
        .await;
    assert_eq!(r["status"], "executed");
    assert_eq!(r["decisions"][0]["approver"]["subject"], "omar");
    assert_eq!(
        r["decisions"][0]["reason"],
        "CHG-2001 reviewed in the console"
    );

    // Deny in the console: psql gets the denial as an error.
    let psql = gw.psql_background("dana", &dana, &["delete from customers where id = 21"], &[]);
    let id = gw.pending_request(&omar).await["id"].as_u64().unwrap();
    let shot = shots.path().join("denied.png");
    let result = decide_in_browser(&gw, id, "deny", "no change ticket", &shot).await;
    assert_eq!(result["ok"], true, "{result}");
    let o = psql.await.unwrap();
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains(&format!("approval request #{id} was denied by omar")),
        "{e}"
    );
    assert!(e.contains("no change ticket"), "{e}");

    // The console's pages answer only signed-in people.
    let resp = gw
        .http()
        .get(format!("{}/sessions", gw.api_url()))
        .send()
        .await
        .unwrap();
    assert!(
        resp.url().path().contains("login")
            || resp.status().is_redirection()
            || resp.url().path().contains("authorize"),
        "anonymous visitors are sent to sign in: {}",
        resp.url()
    );
    gw.stop().await;
}
