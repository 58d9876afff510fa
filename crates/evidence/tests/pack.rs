//! Packs from a real audit store (no gateway): segments anchored after a
//! checkpoint, and a trail whose tail was never signed.

use gatehouse_audit::{
    load_verifying_key, public_key_path, AuditConfig, AuditLog, AuditSigner, Durability, NewEvent,
    SegmentStart,
};
use gatehouse_evidence::{plan_segment, verify_pack, write_pack};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

fn config(dir: &Path, every: u64) -> AuditConfig {
    AuditConfig {
        path: dir.join("audit.db"),
        signing_key_path: dir.join("audit.key"),
        durability: Durability::Normal,
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
    // The gateway "crashes": no final checkpoint.
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
