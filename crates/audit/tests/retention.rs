//! Retention: pruning a prefix of the trail up to a signed checkpoint, with a
//! signed prune record, leaves what remains verifiable and writable.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use chrono::{Duration as Days, Utc};
use common::*;
use gatehouse_audit::{prune, verify, AuditLog, AuditSigner, NewEvent, RetentionPolicy};
use std::collections::BTreeMap;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(86_400);

fn signer(dir: &std::path::Path) -> AuditSigner {
    AuditSigner::load(&key_path(dir)).unwrap()
}

fn write(dir: &std::path::Path, from: u64, to: u64, every: u64) {
    let log = AuditLog::open(config(dir, every)).unwrap();
    for i in from..=to {
        let mut e = command("s1", i);
        if i == 12 {
            e = NewEvent::new("session.start");
        }
        assert_eq!(log.record_blocking(e).unwrap(), i);
    }
    log.shutdown_blocking().unwrap();
}

#[test]
fn pruning_keeps_the_rest_verifiable_and_writable() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 1, 35, 10); // checkpoints at 10, 20, 30, and 35 at close
    let policy = RetentionPolicy {
        default: Some(DAY),
        by_kind: BTreeMap::new(),
    };
    let later = Utc::now() + Days::days(2);

    let dry = prune(&db(dir.path()), &policy, &signer(dir.path()), later, true).unwrap();
    assert_eq!(
        dry.anchor.as_ref().map(|c| c.event_seq),
        Some(30),
        "never the newest checkpoint"
    );
    assert!(dry.record.is_none());
    assert_eq!(
        verify(&db(dir.path()), &public_key(dir.path()))
            .unwrap()
            .events,
        35
    );

    let done = prune(&db(dir.path()), &policy, &signer(dir.path()), later, false).unwrap();
    assert_eq!((done.events, done.checkpoints), (30, 2));
    let record = done.record.unwrap();
    assert_eq!(
        (record.seq, record.through_event_seq, record.checkpoint_seq),
        (1, 30, 3)
    );

    let report = verify(&db(dir.path()), &public_key(dir.path())).unwrap();
    assert!(report.is_intact(), "{:?}", report.first_bad);
    assert_eq!(report.pruned_through, Some(30));
    assert_eq!(
        (
            report.events,
            report.last_checkpoint_seq,
            report.unsigned_tail
        ),
        (5, Some(35), 0)
    );

    // The gateway resumes and appends; a second prune links to the first.
    write(dir.path(), 36, 45, 10);
    let report = verify(&db(dir.path()), &public_key(dir.path())).unwrap();
    assert!(report.is_intact(), "{:?}", report.first_bad);
    assert_eq!(report.events, 15);
    let again = prune(&db(dir.path()), &policy, &signer(dir.path()), later, false).unwrap();
    assert_eq!(again.record.as_ref().map(|r| r.seq), Some(2));
    assert_eq!(again.record.unwrap().prev_hash, record.hash);
    assert!(verify(&db(dir.path()), &public_key(dir.path()))
        .unwrap()
        .is_intact());
}

#[test]
fn retention_per_kind_prunes_only_a_prefix_that_is_all_due() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 1, 35, 10);
    // Commands are kept a day, everything else forever: event 12 (a
    // session.start) holds the prefix at checkpoint 1 (event 10).
    let policy = RetentionPolicy {
        default: None,
        by_kind: BTreeMap::from([("command".to_string(), DAY)]),
    };
    let done = prune(
        &db(dir.path()),
        &policy,
        &signer(dir.path()),
        Utc::now() + Days::days(2),
        false,
    )
    .unwrap();
    assert_eq!(done.events, 10);
    assert_eq!(done.first_kept, Some(11));
    assert!(verify(&db(dir.path()), &public_key(dir.path()))
        .unwrap()
        .is_intact());
    // Nothing is due yet today.
    let none = prune(
        &db(dir.path()),
        &policy,
        &signer(dir.path()),
        Utc::now(),
        false,
    )
    .unwrap();
    assert_eq!((none.events, none.anchor), (0, None));
}

#[test]
fn tampering_with_the_prune_record_or_its_anchor_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 1, 35, 10);
    let policy = RetentionPolicy {
        default: Some(DAY),
        by_kind: BTreeMap::new(),
    };
    prune(
        &db(dir.path()),
        &policy,
        &signer(dir.path()),
        Utc::now() + Days::days(2),
        false,
    )
    .unwrap();
    // Claiming fewer events were pruned (to hide a deletion) breaks the signature.
    raw(dir.path())
        .execute("UPDATE prunes SET pruned_events = 3", [])
        .unwrap();
    let bad = verify(&db(dir.path()), &public_key(dir.path()))
        .unwrap()
        .first_bad
        .unwrap();
    assert!(
        bad.reason
            .contains("prune record 1: its signature does not verify"),
        "{bad}"
    );

    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 1, 35, 10);
    prune(
        &db(dir.path()),
        &policy,
        &signer(dir.path()),
        Utc::now() + Days::days(2),
        false,
    )
    .unwrap();
    raw(dir.path())
        .execute("DELETE FROM checkpoints WHERE seq = 3", [])
        .unwrap();
    let bad = verify(&db(dir.path()), &public_key(dir.path()))
        .unwrap()
        .first_bad
        .unwrap();
    assert!(
        bad.reason
            .contains("anchors the trail on this checkpoint, but it is missing or altered"),
        "{bad}"
    );

    // Deleting more events behind the anchor is caught by the chain.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 1, 35, 10);
    prune(
        &db(dir.path()),
        &policy,
        &signer(dir.path()),
        Utc::now() + Days::days(2),
        false,
    )
    .unwrap();
    raw(dir.path())
        .execute("DELETE FROM events WHERE seq = 31", [])
        .unwrap();
    let bad = verify(&db(dir.path()), &public_key(dir.path()))
        .unwrap()
        .first_bad
        .unwrap();
    assert_eq!(bad.seq, 31, "{bad}");
}
