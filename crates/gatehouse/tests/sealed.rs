//! Sealed originals end to end: the real psql reads masked SSNs through the
//! gateway; the originals behind them are sealed to an investigator's age
//! key in the result's audit event; the gateway (which holds only the public
//! key) never shows them; `gatehouse reveal` through the API records the
//! reveal and opens them only with the right identity.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use support::{err, out, TestGateway};

const CONSOLE: &str = r#"
[console]
auditor_groups = ["auditors"]
"#;

fn gatehouse(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env_remove("GATEHOUSE_CONFIG")
        .env_remove("GATEHOUSE_URL")
        .env_remove("GATEHOUSE_TOKEN")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_originals_open_only_with_the_investigators_key_and_the_reveal_is_recorded() {
    let keys = tempfile::tempdir().unwrap();
    let identity = keys.path().join("investigator.key");
    let o = gatehouse(&["reveal", "keygen", "--out", identity.to_str().unwrap()]);
    assert!(o.status.success(), "{}", err(&o));
    let recipient = out(&o).trim().to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");
    let other = keys.path().join("other.key");
    assert!(
        gatehouse(&["reveal", "keygen", "--out", other.to_str().unwrap()])
            .status
            .success()
    );

    let gw = TestGateway::start_with(CONSOLE, "", |t| {
        t.replace(
            "[audit]\n",
            &format!("[audit]\nseal_originals_to = \"{recipient}\"\n"),
        )
    })
    .await;
    let alice = gw.token("alice", &["analysts"]);
    let o = gw
        .psql(
            "alice",
            &alice,
            &["select id, ssn from customers order by id limit 2"],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let originals = support::target()
        .cluster
        .psql("bank", "select ssn from customers order by id limit 2")
        .unwrap();
    let first_ssn = originals
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 11 && l.as_bytes()[3] == b'-')
        .expect("an SSN from the database")
        .to_string();
    assert!(!out(&o).contains(&first_ssn), "alice sees it masked");

    let events = support::events(&gw).await;
    let result = events
        .iter()
        .find(|e| e["kind"] == "command.result" && e["data"]["sealed_originals"].is_string())
        .expect("the result event carries sealed originals");
    let seq = result["seq"].as_u64().unwrap().to_string();
    let stored = serde_json::to_string(result).unwrap();
    assert!(
        !stored.contains(&first_ssn),
        "the trail never holds the original in the clear"
    );
    assert!(result["data"]["sealed_originals"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));

    // Through the gateway: an auditor's token, a reason, recorded.
    let reveal = |token: &str, id: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["reveal", &seq, "--identity", id.to_str().unwrap()])
            .args(["--reason", "INC-9: suspected data exfiltration"])
            .env("GATEHOUSE_URL", gw.api_url())
            .env("GATEHOUSE_TOKEN", token)
            .env("GATEHOUSE_CA_FILE", gw.ca_file())
            .env_remove("GATEHOUSE_CONFIG")
            .output()
            .unwrap()
    };
    let audrey = gw.token("audrey", &["auditors"]);
    let o = reveal(&audrey, &identity);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains(&first_ssn),
        "the investigator sees the original: {}",
        out(&o)
    );
    assert!(
        err(&o).contains("recorded in the audit trail as event"),
        "{}",
        err(&o)
    );

    // The wrong key opens nothing (the reveal is still recorded: it was asked for).
    let o = reveal(&audrey, &other);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("another investigator's key"),
        "{}",
        err(&o)
    );
    assert!(!out(&o).contains(&first_ssn));

    // Only auditors may take sealed originals.
    let o = reveal(&alice, &identity);
    assert!(!o.status.success());
    assert!(err(&o).contains("only auditors"), "{}", err(&o));

    let events = support::events(&gw).await;
    let reveals: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "sealed.revealed")
        .collect();
    assert_eq!(reveals.len(), 2, "both auditor requests are on record");
    assert_eq!(reveals[0]["subject"], "audrey");
    assert_eq!(reveals[0]["data"]["event_seq"].to_string(), seq);
    assert_eq!(
        reveals[0]["data"]["reason"],
        "INC-9: suspected data exfiltration"
    );

    // The evidence pack shows the sealed results and who revealed what, why.
    let pack = keys.path().join("pack");
    let day = |d: i64| {
        (chrono::Utc::now() + chrono::Duration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    let o = gw
        .cli(&[
            "evidence",
            "--from",
            &day(-1),
            "--to",
            &day(1),
            "--out",
            pack.to_str().unwrap(),
        ])
        .await;
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pack.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["reveals"].as_array().unwrap().len(), 2);
    assert!(summary["sealed_results"].as_u64().unwrap() >= 1);
    let report = std::fs::read_to_string(pack.join("report.html")).unwrap();
    assert!(
        report.contains("Sealed originals and reveals")
            && report.contains("INC-9: suspected data exfiltration")
    );
    assert!(
        !report.contains(&first_ssn),
        "the report never shows an original"
    );

    let (_dir, config) = gw.stop().await;
    // Offline, from the store: opens, and says it is not recorded.
    let o = gatehouse(&[
        "--config",
        config.to_str().unwrap(),
        "reveal",
        &seq,
        "--identity",
        identity.to_str().unwrap(),
        "--offline",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains(&first_ssn));
    assert!(err(&o).contains("NOT recorded"), "{}", err(&o));
    let o = gatehouse(&["--config", config.to_str().unwrap(), "audit", "verify"]);
    assert!(o.status.success(), "{}", out(&o));
}
