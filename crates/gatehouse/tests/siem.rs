//! SIEM delivery wired into the gateway: the real psql through the gateway,
//! and the events arriving in a `[siem]` file sink in OCSF, off the data path.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};
use support::{err, TestGateway};

const SIEM: &str = r#"
[siem]
format = "ocsf"
poll_interval_ms = 50
[[siem.sinks]]
name = "archive"
type = "file"
path = "siem/events.jsonl"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_events_reach_a_siem_sink_in_ocsf() {
    // [siem] must come before [[connections]] and the policy tables.
    let gw = TestGateway::start_with("", "", |t| {
        t.replace("[audit]", &format!("{SIEM}\n[audit]"))
    })
    .await;
    let alice = gw.token("alice", &["analysts"]);
    let o = gw
        .psql(
            "alice",
            &alice,
            &[
                "select ssn from customers limit 2",
                "delete from customers where id = 3",
            ],
        )
        .await;
    assert!(err(&o).contains("analysts-read-only"), "{}", err(&o));
    let o = gw.psql("mallory", "not-a-token", &["select 1"]).await;
    assert!(!o.status.success());

    let file = gw.dir.path().join("state/siem/events.jsonl");
    let deadline = Instant::now() + Duration::from_secs(20);
    let events: Vec<serde_json::Value> = loop {
        let events: Vec<serde_json::Value> = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let done = events.iter().any(|e| e["message"] == "auth.failure")
            && events
                .iter()
                .filter(|e| e["message"] == "session.end")
                .count()
                >= 1;
        if done {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "events did not arrive: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A copy of the trail is as private as the trail.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600, "the sink file");
        assert_eq!(mode(file.parent().unwrap()), 0o700, "the sink's folder");
    }
    let logon = events
        .iter()
        .find(|e| e["message"] == "session.start")
        .unwrap();
    assert_eq!(logon["class_uid"], 3002);
    assert_eq!(logon["activity_id"], 1);
    assert_eq!(logon["actor"]["user"]["uid"], "alice");
    assert_eq!(logon["src_endpoint"]["ip"], "127.0.0.1");
    let blocked = events
        .iter()
        .find(|e| e["class_uid"] == 6005 && e["disposition_id"] == 2)
        .expect("the blocked delete, as Datastore Activity");
    assert_eq!(
        blocked["query_info"]["query_string"],
        "delete from customers where id = 3"
    );
    assert_eq!(blocked["status_detail"], "rule analysts-read-only");
    let failure = events
        .iter()
        .find(|e| e["message"] == "auth.failure")
        .unwrap();
    assert_eq!(
        (failure["class_uid"].as_u64(), failure["status_id"].as_u64()),
        (Some(3002), Some(2))
    );
    // Seqs are the trail's, in order, none skipped.
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["metadata"]["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    gw.stop().await;
}
