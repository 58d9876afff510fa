//! Each kind of tampering is detected, at the right event, in plain words.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;
use gatehouse_audit::{
    verify, AuditError, AuditEvent, AuditLog, AuditSigner, BadEvent, VerifyReport,
};
use rusqlite::params;

fn check(dir: &std::path::Path) -> VerifyReport {
    verify(&db(dir), &public_key(dir)).unwrap()
}

fn first_bad(dir: &std::path::Path) -> BadEvent {
    let report = check(dir);
    match report.first_bad {
        Some(bad) => bad,
        None => panic!("tampering not detected: {report:?}"),
    }
}

/// 20 events and one checkpoint covering all of them.
fn trail() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 20);
    dir
}

fn read_event(dir: &std::path::Path, seq: u64) -> AuditEvent {
    gatehouse_audit::session_events(&db(dir), "s1")
        .unwrap()
        .into_iter()
        .find(|e| e.seq == seq)
        .unwrap()
}

#[test]
fn an_untouched_trail_verifies() {
    let dir = trail();
    let report = check(dir.path());
    assert_eq!(
        (
            report.events,
            report.checkpoints,
            report.last_checkpoint_seq,
            report.first_bad,
            report.unsigned_tail,
            report.pruned_through,
            report.writer_running,
        ),
        (20, 1, Some(20), None, 0, None, Some(false))
    );
    assert_eq!(
        report.policy.map(|p| (p.every, p.signed_by_checkpoint)),
        Some((1000, Some(1))),
        "the policy is the one checkpoint 1 signed"
    );
}

#[test]
fn edited_data() {
    let dir = trail();
    raw(dir.path())
        .execute(
            "UPDATE events SET data = '{\"sql\":\"select 0\"}' WHERE seq = 7",
            [],
        )
        .unwrap();
    let bad = first_bad(dir.path());
    assert_eq!(bad.seq, 7);
    assert!(bad.reason.contains("edited"), "{bad}");
}

#[test]
fn edited_kind() {
    let dir = trail();
    raw(dir.path())
        .execute("UPDATE events SET kind = 'session.end' WHERE seq = 3", [])
        .unwrap();
    assert_eq!(first_bad(dir.path()).seq, 3);
}

#[test]
fn edited_optional_field_to_absent() {
    let dir = trail();
    raw(dir.path())
        .execute("UPDATE events SET subject = NULL WHERE seq = 12", [])
        .unwrap();
    assert_eq!(first_bad(dir.path()).seq, 12);
}

#[test]
fn data_that_is_no_longer_json() {
    let dir = trail();
    raw(dir.path())
        .execute("UPDATE events SET data = 'not json' WHERE seq = 4", [])
        .unwrap();
    let bad = first_bad(dir.path());
    assert_eq!(bad.seq, 4);
    assert!(bad.reason.contains("not valid JSON"), "{bad}");
}

#[test]
fn deleted_middle_event() {
    let dir = trail();
    raw(dir.path())
        .execute("DELETE FROM events WHERE seq = 10", [])
        .unwrap();
    let bad = first_bad(dir.path());
    assert_eq!(bad.seq, 10);
    assert!(bad.reason.contains("event 10 is missing"), "{bad}");
}

#[test]
fn deleted_first_events() {
    let dir = trail();
    raw(dir.path())
        .execute("DELETE FROM events WHERE seq <= 2", [])
        .unwrap();
    let bad = first_bad(dir.path());
    assert_eq!(bad.seq, 1);
    assert!(bad.reason.contains("starts at event 3"), "{bad}");
}

#[test]
fn swapped_events() {
    let dir = trail();
    let conn = raw(dir.path());
    let columns = "ts, kind, session_id, subject, connection, data, prev_hash, hash";
    conn.execute_batch(&format!(
        "CREATE TEMP TABLE five AS SELECT {columns} FROM events WHERE seq = 5;
         UPDATE events SET ({columns}) = (SELECT {columns} FROM events WHERE seq = 6) WHERE seq = 5;
         UPDATE events SET ({columns}) = (SELECT {columns} FROM five) WHERE seq = 6;"
    ))
    .unwrap();
    let bad = first_bad(dir.path());
    assert_eq!(bad.seq, 5);
    assert!(
        bad.reason.contains("does not match the hash of event 4"),
        "{bad}"
    );
}

#[test]
fn inserted_event_with_a_valid_hash() {
    let dir = trail();
    let seven = read_event(dir.path(), 7);
    let conn = raw(dir.path());
    // Make room at 8 (highest first, so seqs never collide), then insert a
    // forged event that links correctly to event 7.
    for seq in (8..=20).rev() {
        conn.execute("UPDATE events SET seq = seq + 1 WHERE seq = ?1", [seq])
            .unwrap();
    }
    let mut forged = AuditEvent {
        seq: 8,
        prev_hash: seven.hash.clone(),
        ..seven.clone()
    };
    forged.data = serde_json::json!({"sql": "select 'innocent'"});
    forged.hash = forged.compute_hash();
    conn.execute(
        "INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            8,
            forged.ts,
            forged.kind,
            forged.session_id,
            forged.subject,
            forged.connection,
            forged.data.to_string(),
            forged.prev_hash,
            forged.hash
        ],
    )
    .unwrap();
    let bad = first_bad(dir.path());
    assert_eq!(
        bad.seq, 9,
        "the event after the forgery no longer links: {bad}"
    );
}

#[test]
fn rewritten_history_with_recomputed_hashes_is_caught_by_the_checkpoint() {
    let dir = trail();
    let conn = raw(dir.path());
    let mut prev = read_event(dir.path(), 4).hash;
    for seq in 5..=20 {
        let mut e = read_event(dir.path(), seq);
        if seq == 5 {
            e.data = serde_json::json!({"sql": "select 'nothing to see'"});
        }
        e.prev_hash = prev;
        e.hash = e.compute_hash();
        conn.execute(
            "UPDATE events SET data = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            params![
                gatehouse_audit::canonical_json(&e.data),
                e.prev_hash,
                e.hash,
                seq
            ],
        )
        .unwrap();
        prev = e.hash;
    }
    let bad = first_bad(dir.path());
    assert_eq!((bad.seq, bad.checkpoint), (20, Some(1)));
    assert!(bad.reason.contains("rewritten"), "{bad}");
}

#[test]
fn truncated_tail_behind_a_checkpoint() {
    let dir = trail();
    raw(dir.path())
        .execute("DELETE FROM events WHERE seq > 15", [])
        .unwrap();
    let bad = first_bad(dir.path());
    assert_eq!(bad.seq, 16);
    assert!(bad.reason.contains("events 16 to 20 were deleted"), "{bad}");
}

#[test]
fn forged_checkpoint_signature() {
    let dir = trail();
    let conn = raw(dir.path());
    let sig: String = conn
        .query_row("SELECT signature FROM checkpoints WHERE seq = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let replacement = if sig.starts_with('0') { "1" } else { "0" };
    let flipped = format!("{replacement}{}", sig.get(1..).unwrap());
    conn.execute("UPDATE checkpoints SET signature = ?1", [flipped])
        .unwrap();
    let bad = first_bad(dir.path());
    assert_eq!((bad.seq, bad.checkpoint), (20, Some(1)));
    assert!(bad.reason.contains("signature does not verify"), "{bad}");
    assert_eq!(check(dir.path()).last_checkpoint_seq, None);
}

#[test]
fn checkpoint_moved_to_cover_fewer_events() {
    let dir = trail();
    raw(dir.path())
        .execute("UPDATE checkpoints SET event_seq = 10", [])
        .unwrap();
    let bad = first_bad(dir.path());
    assert_eq!(bad.checkpoint, Some(1));
}

#[test]
fn deleted_checkpoint_in_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path(), 5)).unwrap();
    for i in 1..=15 {
        log.record_blocking(command("s1", i)).unwrap();
    }
    log.shutdown_blocking().unwrap();
    assert_eq!(check(dir.path()).checkpoints, 3);
    raw(dir.path())
        .execute("DELETE FROM checkpoints WHERE seq = 2", [])
        .unwrap();
    let bad = first_bad(dir.path());
    assert_eq!(bad.checkpoint, Some(3));
    assert!(bad.reason.contains("checkpoint 2 is missing"), "{bad}");
}

#[test]
fn wrong_public_key() {
    let dir = trail();
    let other = AuditSigner::ephemeral().verifying_key();
    let report = verify(&db(dir.path()), &other).unwrap();
    let bad = report.first_bad.unwrap();
    assert!(
        bad.reason.contains("not the key the trail was signed with"),
        "{bad}"
    );
}

/// Events after the last checkpoint are protected by the chain only. On a
/// stopped trail (no writer holds its lock) any such event fails, since a
/// gateway signs a final checkpoint when it stops; on a live one, a tail
/// within the signed policy is the documented limit, and verify says how
/// long it is.
#[test]
fn a_forged_event_appended_after_the_last_checkpoint() {
    let dir = trail();
    let last = read_event(dir.path(), 20);
    let mut forged = AuditEvent {
        seq: 21,
        prev_hash: last.hash.clone(),
        ..last
    };
    forged.hash = forged.compute_hash();
    raw(dir.path())
        .execute(
            "INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                21,
                forged.ts,
                forged.kind,
                forged.session_id,
                forged.subject,
                forged.connection,
                forged.data.to_string(),
                forged.prev_hash,
                forged.hash
            ],
        )
        .unwrap();
    let report = check(dir.path());
    let bad = report
        .first_bad
        .expect("a stopped trail must be signed to its end");
    assert_eq!(bad.seq, 21);
    assert!(
        bad.reason.contains("no gateway is writing this store"),
        "{bad}"
    );

    let live = gatehouse_audit::verify_with(
        &db(dir.path()),
        &public_key(dir.path()),
        &gatehouse_audit::VerifyOptions {
            writer_running: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(live.is_intact(), "{live:?}");
    assert_eq!(live.unsigned_tail, 1);
    assert!(live.unsigned_since.is_some() && live.unsigned_age_ms.is_some());
}

#[test]
fn the_writer_refuses_to_extend_a_broken_tail() {
    let dir = trail();
    let conn = raw(dir.path());
    // Make the tail unsigned, then edit it.
    conn.execute("DELETE FROM checkpoints", []).unwrap();
    conn.execute("UPDATE events SET kind = 'x' WHERE seq = 18", [])
        .unwrap();
    let err = AuditLog::open(config(dir.path(), 1000)).unwrap_err();
    match &err {
        AuditError::Broken { seq, .. } => assert_eq!(*seq, 18),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("gatehouse audit verify"), "{err}");
}

#[test]
fn the_writer_refuses_a_trail_signed_by_another_key() {
    let dir = trail();
    std::fs::remove_file(key_path(dir.path())).unwrap();
    let err = AuditLog::open(config(dir.path(), 1000)).unwrap_err();
    assert!(matches!(err, AuditError::Broken { seq: 20, .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("not valid for this gateway's signing key"),
        "{err}"
    );
}

#[test]
fn the_writer_refuses_a_truncated_trail() {
    let dir = trail();
    raw(dir.path())
        .execute("DELETE FROM events WHERE seq > 18", [])
        .unwrap();
    let err = AuditLog::open(config(dir.path(), 1000)).unwrap_err();
    assert!(matches!(err, AuditError::Broken { seq: 20, .. }), "{err:?}");
}
