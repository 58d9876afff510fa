//! `gatehouse audit verify` end to end (issue 11, finding 13): a real
//! gateway records real psql sessions, stops (signing its final
//! checkpoint), and then every row of the `checkpoints` table is deleted,
//! as an attacker with write access to the store would. Verify must fail
//! with a non-zero exit and say what is missing, where it used to report
//! the trail intact.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::path::Path;
use std::process::Output;
use support::{err, out, TestGateway};

fn gatehouse(config: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("GATEHOUSE_CONFIG")
        .output()
        .expect("gatehouse runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_fails_once_the_checkpoints_are_deleted() {
    let gw = TestGateway::start("", "").await;
    let alice = gw.token("alice", &["analysts"]);
    let o = gw
        .psql(
            "alice",
            &alice,
            &["select count(*) from customers", "select 1 as one"],
        )
        .await;
    assert!(o.status.success(), "psql: {}{}", out(&o), err(&o));

    // While the gateway runs, its short unsigned tail is allowed.
    let o = gw.cli(&["audit", "verify"]).await;
    let text = format!("{}{}", out(&o), err(&o));
    assert!(o.status.success(), "live verify: {text}");
    assert!(text.contains("a gateway is writing it"), "{text}");

    let db = gw.audit_db();
    let (dir, config) = gw.stop().await;
    let anchor = dir.path().join("state").join("audit-anchor.jsonl");
    assert!(
        std::fs::read_to_string(&anchor).unwrap().lines().count() >= 1,
        "every checkpoint is anchored outside the store"
    );

    // Stopped cleanly: signed to the end, under the policy it signed.
    let o = gatehouse(&config, &["audit", "verify"]);
    let text = format!("{}{}", out(&o), err(&o));
    println!("after a clean stop:\n{text}");
    assert!(o.status.success(), "verify after stop: {text}");
    assert!(text.contains("audit trail intact"), "{text}");
    assert!(text.contains("no gateway is writing it"), "{text}");
    assert!(text.contains("as signed by checkpoint"), "{text}");

    // The attack from the finding.
    let deleted = rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM checkpoints", [])
        .unwrap();
    assert!(deleted >= 1);

    let o = gatehouse(&config, &["audit", "verify"]);
    let text = format!("{}{}", out(&o), err(&o));
    println!("after DELETE FROM checkpoints:\n{text}");
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED verification"), "{text}");
    assert!(text.contains("the store is behind its anchor"), "{text}");
    assert!(
        text.contains("there is no signed checkpoint at all"),
        "{text}"
    );
    assert!(!text.contains("audit trail intact"), "{text}");

    // Even pointed at an anchor that holds nothing, the stopped trail's
    // unsigned events fail it.
    let empty = dir.path().join("empty-anchor.jsonl");
    std::fs::write(&empty, "").unwrap();
    let o = gatehouse(
        &config,
        &["audit", "verify", "--anchor", empty.to_str().unwrap()],
    );
    let text = format!("{}{}", out(&o), err(&o));
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("no gateway is writing this store"), "{text}");

    // And the gateway will not start on it and sign over the gap.
    let serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env_remove("GATEHOUSE_CONFIG")
        .kill_on_drop(true)
        .output();
    let o = tokio::time::timeout(std::time::Duration::from_secs(60), serve)
        .await
        .expect("the gateway must refuse to start, not serve")
        .unwrap();
    let text = format!("{}{}", out(&o), err(&o));
    assert!(!o.status.success(), "{text}");
    assert!(text.contains("behind its anchor"), "{text}");
}
