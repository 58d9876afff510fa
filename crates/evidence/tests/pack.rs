//! Packs from a real audit store (no gateway): segments anchored after a
//! checkpoint, and a trail whose tail was never signed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use gatehouse_audit::{
    load_verifying_key, public_key_path, AuditConfig, AuditLog, AuditSigner, Durability, NewEvent,
    SegmentStart,
};
use gatehouse_evidence::{plan_segment, verify_pack, write_pack, write_pack_with, PackOptions};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

fn config(dir: &Path, every: u64) -> AuditConfig {
    AuditConfig {
        path: dir.join("audit.db"),
        signing_key_path: dir.join("audit.key"),
        durability: Durability::Normal,
        sync_window: gatehouse_audit::DEFAULT_SYNC_WINDOW,
        checkpoint_every: every,
        checkpoint_interval: Duration::from_secs(3600),
        anchor_file: None,
    }
}

fn command(n: u64, effect: &str) -> NewEvent {
    NewEvent {
        kind: "command".into(),
        session_id: Some(format!("s{}", n % 3)),
        subject: Some(["alice", "bob", "carol"][(n % 3) as usize].into()),
        connection: Some("bank".into()),
        data: json!({"sql": format!("select {n}"), "verdict": {"effect": effect, "rule": "r"}}),
    }
}

#[test]
fn a_period_after_a_checkpoint_is_anchored_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path(), 10)).unwrap();
    for i in 1..=15 {
        log.record_blocking(command(i, "allow")).unwrap();
    }
    std::thread::sleep(Duration::from_millis(30));
    let from = chrono::Utc::now().to_rfc3339();
    std::thread::sleep(Duration::from_millis(30));
    for i in 16..=27 {
        log.record_blocking(command(i, if i == 20 { "block" } else { "allow" }))
            .unwrap();
    }
    log.shutdown_blocking().unwrap();

    let db = dir.path().join("audit.db");
    let plan = plan_segment(&db, Some(&from), Some("2999-01-01")).unwrap();
    assert_eq!(plan.period, (16, 27));
    assert_eq!(
        (plan.first_seq, plan.last_seq),
        (11, 27),
        "widened back to checkpoint 1"
    );
    assert!(plan.is_closed());
    let signer = AuditSigner::load(&dir.path().join("audit.key")).unwrap();
    let out = dir.path().join("pack");
    let summary = write_pack(&db, &plan, &signer, &out, "test").unwrap();
    assert!(
        summary.verification.is_intact(),
        "{:?}",
        summary.verification.problems
    );
    assert_eq!(
        summary.verification.start,
        SegmentStart::Checkpoint {
            checkpoint: 1,
            event_seq: 10
        }
    );
    assert_eq!(
        summary.facts.commands, 12,
        "only the period's events are reported"
    );
    assert_eq!(summary.facts.blocked.len(), 1);

    let key = load_verifying_key(&public_key_path(&dir.path().join("audit.key"))).unwrap();
    let v = verify_pack(&out, &key).unwrap();
    assert!(v.is_verified(), "{:?}", v.problems);
    assert!(v.notes.is_empty());

    // Dropping the opening checkpoint leaves the start unanchored.
    let cps = out.join("checkpoints.jsonl");
    let text = std::fs::read_to_string(&cps).unwrap();
    std::fs::write(
        &cps,
        text.lines().skip(1).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    let v = verify_pack(&out, &key).unwrap();
    assert!(
        v.problems
            .iter()
            .any(|p| p.contains("no signed checkpoint covers event 10")),
        "{:?}",
        v.problems
    );
}

#[test]
fn an_unsigned_tail_is_packed_and_said_so() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path(), 5)).unwrap();
    for i in 1..=8 {
        log.record_blocking(command(i, "allow")).unwrap();
    }
    // The gateway "crashes" once the events are indexed: no final checkpoint.
    log.flush_blocking().unwrap();
    std::mem::forget(log);
    let db = dir.path().join("audit.db");
    let plan = plan_segment(&db, Some("2000-01-01"), Some("2999-01-01")).unwrap();
    assert!(!plan.is_closed());
    assert_eq!((plan.first_seq, plan.last_seq), (1, 8));
    let signer = AuditSigner::load(&dir.path().join("audit.key")).unwrap();
    let out = dir.path().join("pack");
    let summary = write_pack(&db, &plan, &signer, &out, "test").unwrap();
    assert_eq!(summary.verification.unsigned_tail, 3);
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("not yet covered by a checkpoint"));
    let v = verify_pack(&out, &signer.verifying_key()).unwrap();
    assert!(v.is_verified(), "{:?}", v.problems);
    assert!(v.notes[0].contains("events 6–8"), "{:?}", v.notes);

    // A pack is never written over another.
    let err = write_pack(&db, &plan, &signer, &out, "test").unwrap_err();
    assert!(err.to_string().contains("is not empty"), "{err}");
}

#[test]
fn an_empty_period_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path(), 5)).unwrap();
    log.record_blocking(command(1, "allow")).unwrap();
    log.shutdown_blocking().unwrap();
    let db = dir.path().join("audit.db");
    let err = plan_segment(&db, Some("2001-01-01"), Some("2001-02-01")).unwrap_err();
    assert!(
        err.to_string().contains("no events from 2001-01-01"),
        "{err}"
    );
    let err = plan_segment(&db, Some("2001-02-01"), Some("2001-01-01")).unwrap_err();
    assert!(err.to_string().contains("must be before"), "{err}");
    let err = plan_segment(&db, Some("last tuesday"), None).unwrap_err();
    assert!(err.to_string().contains("is not a time"), "{err}");
}

#[test]
fn packs_survive_pruning_and_new_packs_anchor_on_the_prune_checkpoint() {
    use gatehouse_audit::{prune, verify, RetentionPolicy};
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path(), 10)).unwrap();
    for i in 1..=35 {
        log.record_blocking(command(i, "allow")).unwrap();
    }
    log.shutdown_blocking().unwrap();
    let db = dir.path().join("audit.db");
    let signer = AuditSigner::load(&dir.path().join("audit.key")).unwrap();
    let key = signer.verifying_key();
    let plan = plan_segment(&db, Some("2000-01-01"), Some("2999-01-01")).unwrap();
    let before = dir.path().join("before");
    write_pack(&db, &plan, &signer, &before, "test").unwrap();

    let policy = RetentionPolicy {
        default: Some(Duration::from_secs(86_400)),
        by_kind: Default::default(),
    };
    let later = chrono::Utc::now() + chrono::Duration::days(2);
    let done = prune(&db, &policy, &signer, later, false).unwrap();
    assert_eq!(done.events, 30);
    assert!(verify(&db, &key).unwrap().is_intact());

    // The pack written before the prune is self-contained: still verifies.
    let v = verify_pack(&before, &key).unwrap();
    assert!(v.is_verified(), "{:?}", v.problems);

    // A pack for the same period now holds what remains, anchored on the
    // checkpoint the prune record kept.
    let plan = plan_segment(&db, Some("2000-01-01"), Some("2999-01-01")).unwrap();
    assert_eq!((plan.first_seq, plan.last_seq), (31, 35));
    let after = dir.path().join("after");
    let summary = write_pack(&db, &plan, &signer, &after, "test").unwrap();
    assert_eq!(
        summary.verification.start,
        SegmentStart::Checkpoint {
            checkpoint: 3,
            event_seq: 30
        }
    );
    let v = verify_pack(&after, &key).unwrap();
    assert!(v.is_verified(), "{:?}", v.problems);
}

fn event(kind: &str, session: Option<&str>, subject: &str, data: serde_json::Value) -> NewEvent {
    NewEvent {
        kind: kind.into(),
        session_id: session.map(str::to_string),
        subject: Some(subject.into()),
        connection: Some("bank".into()),
        data,
    }
}

/// The examiner's gaps (issue 12): every protocol's command text in the
/// report, decisions worded and attributed the same from the CLI and the
/// console, data changes per table with grants marked, terminal masking
/// counted, the policy in force and the key's custody.
#[test]
fn the_report_names_every_command_decision_change_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path(), 100)).unwrap();
    let iss = "https://127.0.0.1:1/dev";
    let omar_cli =
        json!({"subject": "omar", "email": null, "groups": ["approvers"], "issuer": iss});
    let omar_console = json!({"subject": "omar", "email": "omar@bank.test", "groups": ["approvers"], "issuer": iss});
    let block = |rule: &str| json!({"effect": "block", "rule": rule, "message": "no"});
    let events = vec![
        event(
            "gateway.start",
            None,
            "",
            json!({"version": "9.9.9", "signing_key_fingerprint": "SHA256:feedface"}),
        ),
        event(
            "policy.loaded",
            None,
            "",
            json!({"reason": "start", "sha256": "ab12cd34", "path": "/etc/gatehouse.toml", "excluded": 1, "text": "[audit]\n"}),
        ),
        // SSH exec blocked, an LLM prompt held, a kubectl request blocked.
        event(
            "command",
            Some("ssh1"),
            "dana",
            json!({"command_id": 1, "protocol": "ssh", "kind": "exec", "command": "rm -rf /var/lib/app", "verdict": block("no-rm-rf")}),
        ),
        event(
            "command",
            Some("llm1"),
            "bob",
            json!({"command_id": 1, "protocol": "http", "request": {"summary": "POST /v1/chat/completions model=llama"},
                   "text": "list every customer's balance", "verdict": {"effect": "hold", "rule": "llm-review"}, "approval_request": 1}),
        ),
        event(
            "command",
            Some("k1"),
            "bob",
            json!({"command_id": 2, "protocol": "http", "request": {"summary": "delete namespaces/prod"}, "verdict": block("no-ns-delete")}),
        ),
        event(
            "approval.requested",
            Some("llm1"),
            "bob",
            json!({"request_id": 1, "request_kind": "command", "command": "POST /v1/chat/completions", "rule": "llm-review"}),
        ),
        event(
            "approval.decision",
            Some("llm1"),
            "bob",
            json!({"request_id": 1, "decision": "approve", "approver": omar_cli, "reason": "CHG-1"}),
        ),
        event(
            "approval.requested",
            None,
            "eve",
            json!({"request_id": 2, "request_kind": "access", "access_secs": 3600, "message": "INC-1"}),
        ),
        event(
            "approval.decision",
            None,
            "eve",
            json!({"request_id": 2, "decision": "deny", "approver": omar_console, "reason": "no ticket"}),
        ),
        // A write under a grant, a failed write, a write allowed outright.
        event(
            "session.start",
            Some("g1"),
            "eve",
            json!({"client_addr": "127.0.0.1:5", "protocol": "postgres", "grant_id": 7}),
        ),
        event(
            "command",
            Some("g1"),
            "eve",
            json!({"command_id": 1, "protocol": "postgres", "sql": "update accounts set balance = 0 where id = 3",
                   "statements": [{"kind": "update", "tables_written": ["accounts"]}], "verdict": {"effect": "allow"}}),
        ),
        event(
            "command.result",
            Some("g1"),
            "eve",
            json!({"command_id": 1, "rows": 1, "error": null}),
        ),
        event(
            "command",
            Some("g1"),
            "eve",
            json!({"command_id": 2, "protocol": "postgres", "sql": "delete from branches where id = 1",
                   "statements": [{"kind": "delete", "tables_written": ["branches"]}], "verdict": {"effect": "allow"}}),
        ),
        event(
            "command.result",
            Some("g1"),
            "eve",
            json!({"command_id": 2, "rows": 0, "error": {"sqlstate": "23503", "message": "fk"}}),
        ),
        event(
            "command",
            Some("d1"),
            "dana",
            json!({"command_id": 1, "protocol": "mysql", "sql": "insert into customers values (1)",
                   "statements": [{"kind": "insert", "tables_written": ["customers"]}], "verdict": {"effect": "allow"}}),
        ),
        event(
            "command.result",
            Some("d1"),
            "dana",
            json!({"command_id": 1, "rows": 1}),
        ),
        // Terminal masking: an SSH recording's counts; a kubectl exec's
        // are already in its result and must not count twice.
        event(
            "recording",
            Some("ssh1"),
            "dana",
            json!({"protocol": "ssh", "file": "a.cast", "sha256": "00", "size": 1, "masked": {"ssn": 2, "card_number": 1}}),
        ),
        event(
            "recording",
            Some("k1"),
            "bob",
            json!({"protocol": "kubernetes-exec", "file": "b.cast", "sha256": "00", "size": 1, "masked": {"ssn": 5}}),
        ),
        event(
            "command.result",
            Some("k1"),
            "bob",
            json!({"command_id": 3, "masked": {"ssn": 5}}),
        ),
        // A CSV downloaded over SFTP from a masking connection.
        event(
            "file.transfer",
            Some("ssh1"),
            "dana",
            json!({"protocol": "sftp", "channel": 0, "path": "/srv/export.csv", "direction": "download", "bytes": 90,
                   "masking": {"result": "masked", "masked": {"iban": 3}, "bytes_sent": 90, "rule": null, "reason": null}}),
        ),
        event("gateway.stop", None, "", json!({})),
    ];
    for e in events {
        log.record_blocking(e).unwrap();
    }
    log.shutdown_blocking().unwrap();
    let db = dir.path().join("audit.db");
    let plan = plan_segment(&db, Some("2000-01-01"), Some("2999-01-01")).unwrap();
    let signer = AuditSigner::load(&dir.path().join("audit.key")).unwrap();
    let out = dir.path().join("pack");
    let summary = write_pack(&db, &plan, &signer, &out, "test").unwrap();
    let f = &summary.facts;

    // 1. Every protocol's command text.
    let blocked: Vec<&str> = f.blocked.iter().map(|b| b.command.as_str()).collect();
    assert_eq!(
        blocked,
        ["rm -rf /var/lib/app", "delete namespaces/prod"],
        "{blocked:?}"
    );
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    for needle in [
        "blocked by rule no-rm-rf: rm -rf /var/lib/app",
        "by rule llm-review: POST /v1/chat/completions model=llama list every customer",
        "<pre>rm -rf /var/lib/app</pre>",
        "<pre>delete namespaces/prod</pre>",
    ] {
        assert!(report.contains(needle), "the report shows {needle}");
    }
    assert_eq!(
        f.approvals[&1].command.as_deref(),
        Some("POST /v1/chat/completions model=llama\nlist every customer's balance"),
        "the approvals table shows the held prompt"
    );
    let session = std::fs::read_to_string(out.join("sessions").join("ssh1.html")).unwrap();
    assert!(session.contains("rm -rf /var/lib/app"), "{session}");

    // 4. Decisions: who decided whose request, one name for one person.
    let omar = &f.identities["omar"];
    let texts: Vec<&str> = omar.trail.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "omar@bank.test approved bob\u{2019}s request #1: \u{201c}CHG-1\u{201d}",
            "omar@bank.test denied eve\u{2019}s request #2: \u{201c}no ticket\u{201d}",
        ]
    );
    for a in f.approvals.values() {
        assert_eq!(a.decisions[0].approver, "omar@bank.test");
        assert_eq!(a.decisions[0].subject, "omar");
        assert_eq!(a.decisions[0].issuer, iss);
    }

    // 6. Data changes per identity and table, grants marked, failures not.
    let eve = &f.writes["eve"];
    assert_eq!(eve.len(), 1, "the failed delete changed nothing");
    assert_eq!(eve[0].tables, ["accounts"]);
    assert_eq!(eve[0].grant_id, Some(7));
    assert_eq!(f.writes["dana"][0].tables, ["customers"]);
    assert!(report.contains("access grant #7"));
    assert!(report.contains("update accounts set balance = 0 where id = 3"));

    // 7. Terminal masking counted once.
    assert_eq!(
        f.masking["ssn"].values, 7,
        "2 from ssh + 5 from the exec result"
    );
    assert_eq!(f.masking["card_number"].values, 1);
    assert_eq!(f.recordings, 1);
    // And a masked file download counts what was masked in the file.
    assert_eq!(f.masking["iban"].values, 3, "the SFTP download's masking");

    // 2 and 8. The policy in force, the runs, and the key's custody.
    assert_eq!(f.policies.len(), 1);
    assert_eq!(f.gateway.len(), 2);
    for needle in [
        "Policy in force",
        "ab12cd34",
        "gateway started",
        "gateway stopped",
        "Signing key custody",
        "SHA256:feedface",
        "anchor_file",
        "Configuration loaded at event 2",
    ] {
        assert!(report.contains(needle), "the report shows {needle}");
    }
    let v = verify_pack(&out, &signer.verifying_key()).unwrap();
    assert!(v.is_verified(), "{:?}", v.problems);
}

/// The independent verifier's verdict and output on `pack`.
fn verify_independently(pack: &Path, key_pem: &str) -> (bool, String) {
    let key = pack.with_extension("pub");
    std::fs::write(&key, key_pem).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/verify_pack.py");
    let o = std::process::Command::new("python3")
        .arg(script)
        .arg(pack)
        .arg("--public-key")
        .arg(&key)
        .output()
        .expect("python3 runs (scripts/test.sh installs the cryptography package)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(matches!(o.status.code(), Some(0 | 1)), "{text}");
    (o.status.success(), text)
}

/// Terminal recordings are in the pack, bound to the chain by the SHA-256
/// their `recording` event holds, with an offline player page; one whose
/// file no longer matches is left out and said so; altering an included
/// one fails both verifiers.
#[test]
fn terminal_recordings_are_packed_with_a_player_and_bound_to_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let recordings = dir.path().join("recordings");
    std::fs::create_dir_all(&recordings).unwrap();
    let cast = "{\"version\":2,\"width\":80,\"height\":24}\n[0.1,\"o\",\"$ cat notes\\r\\n\"]\n[0.2,\"o\",\"ssn ***-**-6789 </script>\\r\\n\"]\n";
    std::fs::write(recordings.join("s1-0.cast"), cast).unwrap();
    std::fs::write(recordings.join("s1-1.cast"), "edited later").unwrap();
    let sha = |t: &str| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(t.as_bytes()));
    let log = AuditLog::open(config(dir.path(), 100)).unwrap();
    for (file, digest) in [("s1-0.cast", sha(cast)), ("s1-1.cast", sha("as closed"))] {
        log.record_blocking(NewEvent {
            kind: "recording".into(),
            session_id: Some("s1".into()),
            subject: Some("dana".into()),
            connection: Some("bank-host".into()),
            data: json!({"file": file, "sha256": digest, "size": 1, "protocol": "ssh", "masked": {"ssn": 1},
                // Canonical JSON edge cases the independent verifier must
                // hash exactly as gatehouse does.
                "numbers": [0.1, 1.5e-7, 1e21, -2.5, 2.0, 123.456, 5e-324, u64::MAX, i64::MIN],
                "text": "é😀\u{1}\u{1f}\"\\\n\t\u{2028}", "Ａ": 1, "z": 2, "é": 3, "😀": 4}),
        })
        .unwrap();
    }
    log.shutdown_blocking().unwrap();
    let db = dir.path().join("audit.db");
    let plan = plan_segment(&db, Some("2000-01-01"), Some("2999-01-01")).unwrap();
    let signer = AuditSigner::load(&dir.path().join("audit.key")).unwrap();
    let out = dir.path().join("pack");
    let options = PackOptions {
        recordings_dir: Some(recordings),
    };
    let summary = write_pack_with(&db, &plan, &signer, &out, "test", &options).unwrap();
    let m = &summary.manifest;
    assert_eq!(m.recordings.len(), 1, "{:?}", m.recordings);
    assert_eq!(m.recordings[0].path, "recordings/s1-0.cast");
    assert_eq!(
        std::fs::read_to_string(out.join("recordings/s1-0.cast")).unwrap(),
        cast
    );
    let paths: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    for p in [
        "recordings/s1-0.cast",
        "recordings/s1-0.cast.html",
        "recordings/player/asciinema-player.min.js",
        "recordings/player/asciinema-player.css",
        "recordings/player/play.js",
        "SPEC.md",
    ] {
        assert!(paths.contains(&p), "{p} in {paths:?}");
    }
    let player = std::fs::read_to_string(out.join("recordings/s1-0.cast.html")).unwrap();
    assert!(player.contains("player/asciinema-player.min.js"));
    assert!(
        player.contains("ssn ***-**-6789 &lt;/script&gt;"),
        "the cast is embedded, escaped"
    );
    assert!(
        !player.contains("http://") && !player.contains("https://"),
        "no network"
    );
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("recordings/s1-0.cast.html"));
    assert!(report.contains("s1-1.cast"), "the left-out one is named");
    assert!(report.contains("altered after it was"));
    let session = std::fs::read_to_string(out.join("sessions/s1.html")).unwrap();
    assert!(session.contains("../recordings/s1-0.cast.html"));
    assert_eq!(
        summary.facts.masking["ssn"].values, 2,
        "terminal masking counted"
    );

    let key = signer.verifying_key();
    let v = verify_pack(&out, &key).unwrap();
    assert!(v.is_verified(), "{:?}", v.problems);
    let (ok, text) = verify_independently(&out, &signer.public_key_pem());
    assert!(ok, "{text}");

    // Kept for people (and the browser check) to open: target/tmp/recording-pack.
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("recording-pack");
    let _ = std::fs::remove_dir_all(&kept);
    copy_dir(&out, &kept);
    // The player page works from disk with no network: Chromium renders
    // the vendored player's terminal.
    let chromium = std::process::Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if chromium {
        let o = std::process::Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--virtual-time-budget=5000",
                "--dump-dom",
            ])
            .arg(format!(
                "file://{}",
                kept.join("recordings/s1-0.cast.html").display()
            ))
            .output()
            .unwrap();
        let dom = String::from_utf8_lossy(&o.stdout);
        assert!(
            dom.contains("data-ready=\"1\"") && dom.contains("ap-term"),
            "the player ran offline: {dom}"
        );
    }

    // Altered after packing: both verifiers name the file and the event.
    let path = out.join("recordings/s1-0.cast");
    std::fs::write(&path, cast.replace("6789", "6780")).unwrap();
    let v = verify_pack(&out, &key).unwrap();
    let expected = [
        "files: recordings/s1-0.cast: its SHA-256",
        "recordings: recordings/s1-0.cast: its SHA-256 is",
        "it is not the recording the gateway made",
    ];
    for e in expected {
        assert!(
            v.problems.iter().any(|p| p.contains(e)),
            "{e}: {:?}",
            v.problems
        );
    }
    let (ok, text) = verify_independently(&out, &signer.public_key_pem());
    assert!(!ok, "{text}");
    for e in expected {
        assert!(text.contains(e), "{e}: {text}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
