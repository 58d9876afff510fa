//! A trail must be signed where its policy says it is: deleting checkpoints
//! (all of them, one in the middle, or the newest together with the events
//! after the one before it) fails verify, and so does an unsigned tail
//! longer or older than the signed policy allows. Every trail here is
//! written by the real writer into a real SQLite store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use chrono::{Duration as Days, Utc};
use common::*;
use gatehouse_audit::{
    prune, read_checkpoints, verify, verify_with, AuditError, AuditLog, AuditSigner, Checkpoint,
    CheckpointPolicy, RetentionPolicy, VerifyOptions, VerifyReport,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// `n` events, a checkpoint every `every` and one at close.
fn written(n: u64, every: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path(), every)).unwrap();
    for i in 1..=n {
        assert_eq!(log.record_blocking(command("s1", i)).unwrap(), i);
    }
    log.shutdown_blocking().unwrap();
    dir
}

fn anchored(dir: &Path) -> VerifyOptions {
    VerifyOptions {
        anchor_file: Some(anchor_path(dir)),
        ..Default::default()
    }
}

fn check(dir: &Path, options: &VerifyOptions) -> VerifyReport {
    verify_with(&db(dir), &public_key(dir), options).unwrap()
}

/// Every problem, as text.
fn problems(report: &VerifyReport) -> Vec<String> {
    report
        .first_bad
        .iter()
        .chain(&report.other_problems)
        .map(|b| b.to_string())
        .collect()
}

fn fails_with(report: &VerifyReport, needle: &str) {
    let all = problems(report);
    assert!(
        all.iter().any(|p| p.contains(needle)),
        "expected a problem containing {needle:?}, got {all:#?}"
    );
}

fn run(dir: &Path, sql: &str) {
    raw(dir).execute_batch(sql).unwrap();
}

fn refused(result: Result<AuditLog, AuditError>, needle: &str) {
    match result {
        Err(e @ AuditError::Broken { .. }) => {
            assert!(e.to_string().contains(needle), "{e}")
        }
        Err(other) => panic!("expected Broken containing {needle:?}, got {other:?}"),
        Ok(_) => panic!("the writer resumed a trail it must refuse ({needle})"),
    }
}

#[test]
fn an_intact_trail_verifies_against_its_anchor() {
    let dir = written(25, 10); // checkpoints at 10, 20, 25
    let report = check(dir.path(), &anchored(dir.path()));
    assert!(report.is_intact(), "{report:#?}");
    assert_eq!(
        (
            report.checkpoints,
            report.unsigned_tail,
            report.writer_running
        ),
        (3, 0, Some(false))
    );
    let anchor = report.anchor.unwrap();
    assert_eq!(
        (anchor.entries, anchor.newest, anchor.not_anchored),
        (3, Some(3), 0)
    );
    let policy = report.policy.unwrap();
    assert_eq!(
        (
            policy.every,
            policy.interval_ms,
            policy.signed_by_checkpoint
        ),
        (10, 3_600_000, Some(3))
    );

    // One JSON line per checkpoint, the same records the store holds.
    let text = std::fs::read_to_string(anchor_path(dir.path())).unwrap();
    let lines: Vec<Checkpoint> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, read_checkpoints(&db(dir.path())).unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(anchor_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn deleting_every_checkpoint_fails() {
    let dir = written(20, 1000);
    run(dir.path(), "DELETE FROM checkpoints");

    // The store alone: the gateway is stopped, so its tail must be signed.
    let report = verify(&db(dir.path()), &public_key(dir.path())).unwrap();
    let bad = report.first_bad.clone().expect("must fail");
    assert_eq!(bad.seq, 1);
    fails_with(&report, "there is no signed checkpoint at all");
    fails_with(&report, "no gateway is writing this store");

    // With the anchor: the store is behind it, whatever the tail rules say.
    let report = check(
        dir.path(),
        &VerifyOptions {
            writer_running: Some(true),
            ..anchored(dir.path())
        },
    );
    fails_with(&report, "the store is behind its anchor");
    fails_with(&report, "holds checkpoint 1 (covering event 20");

    // And the writer will not sign over it.
    refused(
        AuditLog::open(config(dir.path(), 1000)),
        "the store is behind its anchor",
    );
}

#[test]
fn deleting_a_middle_checkpoint_fails_as_a_gap() {
    let dir = written(25, 10);
    run(dir.path(), "DELETE FROM checkpoints WHERE seq = 2");
    let report = check(dir.path(), &anchored(dir.path()));
    let bad = report.first_bad.clone().expect("must fail");
    assert_eq!(bad.checkpoint, Some(3), "{bad}");
    fails_with(&report, "checkpoint 2 is missing");
    fails_with(&report, "the store is behind its anchor");
}

#[test]
fn a_truncated_trail_that_is_consistent_on_its_own_is_caught_by_the_anchor() {
    let dir = written(25, 10); // checkpoints 1 (event 10), 2 (20), 3 (25)
    run(
        dir.path(),
        "DELETE FROM checkpoints WHERE seq = 3; DELETE FROM events WHERE seq > 20;",
    );

    // On its own the store holds together: this is what the anchor is for.
    let alone = verify(&db(dir.path()), &public_key(dir.path())).unwrap();
    assert!(alone.is_intact(), "{alone:#?}");
    assert_eq!((alone.events, alone.unsigned_tail), (20, 0));

    let report = check(dir.path(), &anchored(dir.path()));
    let bad = report.first_bad.clone().expect("must fail");
    assert_eq!((bad.seq, bad.checkpoint), (25, Some(3)));
    fails_with(&report, "the store is behind its anchor: the anchor file");
    fails_with(&report, "its newest checkpoint is 2");

    refused(
        AuditLog::open(config(dir.path(), 10)),
        "the store is behind its anchor",
    );
}

#[test]
fn a_rewritten_end_signed_again_differs_from_its_anchor() {
    // The end of the trail is cut off and a writer that does not know the
    // anchor writes (and signs) a different one: the store agrees with
    // itself, but checkpoint 3 is not the one the anchor recorded.
    let dir = written(25, 10);
    run(
        dir.path(),
        "DELETE FROM checkpoints WHERE seq = 3; DELETE FROM events WHERE seq > 20;",
    );
    let mut cfg = config(dir.path(), 10);
    cfg.anchor_file = None;
    let log = AuditLog::open(cfg).unwrap();
    for i in 21..=25 {
        log.record_blocking(command("s-other", i)).unwrap();
    }
    log.shutdown_blocking().unwrap();
    assert!(verify(&db(dir.path()), &public_key(dir.path()))
        .unwrap()
        .is_intact());

    let report = check(dir.path(), &anchored(dir.path()));
    let bad = report.first_bad.clone().expect("must fail");
    assert_eq!(bad.checkpoint, Some(3));
    fails_with(
        &report,
        "checkpoint 3 in the store differs from the copy in the anchor file",
    );
}

#[test]
fn a_long_unsigned_tail_fails_even_under_a_relaxed_configuration() {
    let dir = written(25, 10);
    // The newest two checkpoints go; the tail after checkpoint 1 is 15
    // events, more than the 10 checkpoint 1 signed.
    run(dir.path(), "DELETE FROM checkpoints WHERE seq >= 2");
    let relaxed = VerifyOptions {
        configured_policy: Some(CheckpointPolicy {
            every: 1_000_000,
            interval: Duration::from_secs(86_400 * 365),
        }),
        writer_running: Some(true),
        ..Default::default()
    };
    let report = check(dir.path(), &relaxed);
    let bad = report.first_bad.clone().expect("must fail");
    assert_eq!(bad.seq, 11);
    fails_with(
        &report,
        "events 11 to 25 (15) come after the last signed checkpoint (1, covering event 10)",
    );
    fails_with(
        &report,
        "more than the 10 events after which the policy the trail signed requires a checkpoint",
    );
    assert_eq!(report.unsigned_tail, 15);
    assert_eq!(report.policy.and_then(|p| p.signed_by_checkpoint), Some(1));

    // The writer does not sign such a tail either (no anchor, to see this
    // rule on its own).
    let mut cfg = config(dir.path(), 1000);
    cfg.anchor_file = None;
    refused(
        AuditLog::open(cfg),
        "more than the 10 a checkpoint is signed after",
    );
}

#[test]
fn a_live_tail_is_reported_and_fails_once_older_than_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path(), 1000)).unwrap(); // interval 1 h
    for i in 1..=3 {
        log.record_blocking(command("s", i)).unwrap();
    }
    log.flush_blocking().unwrap();
    // What `gatehouse audit verify --config` passes: no checkpoint is
    // signed yet, so the configured policy is the one to keep.
    let configured = VerifyOptions {
        configured_policy: Some(CheckpointPolicy {
            every: 1000,
            interval: Duration::from_secs(3600),
        }),
        ..anchored(dir.path())
    };
    // The writer holds its lock: a short, young tail is what a live trail has.
    let report = check(dir.path(), &configured);
    assert!(report.is_intact(), "{report:#?}");
    assert_eq!(report.writer_running, Some(true));
    assert_eq!(report.unsigned_tail, 3);
    assert!(report.unsigned_since.is_some());
    assert!(report.unsigned_age_ms.is_some());
    assert_eq!(
        report.policy.map(|p| (p.every, p.signed_by_checkpoint)),
        Some((1000, None)),
        "no checkpoint yet: the configured policy"
    );

    // The same tail judged two hours later: its checkpoints must be missing.
    let later = VerifyOptions {
        now: Some(Utc::now() + Days::hours(2)),
        ..configured
    };
    let report = check(dir.path(), &later);
    fails_with(
        &report,
        "events 1 to 3 (3) come after the start of the trail",
    );
    fails_with(&report, "longer than the 60 min");

    log.shutdown_blocking().unwrap();
    let report = check(dir.path(), &later);
    assert!(report.is_intact(), "{report:#?}");
    assert_eq!(
        (report.writer_running, report.unsigned_tail),
        (Some(false), 0)
    );
}

#[test]
fn a_crashed_writers_tail_fails_until_the_gateway_starts_again() {
    // A crash leaves events after the last checkpoint; deleting the newest
    // checkpoint leaves the same picture (without an anchor to tell).
    let dir = written(20, 1000);
    run(dir.path(), "DELETE FROM checkpoints");
    let mut cfg = config(dir.path(), 1000);
    cfg.anchor_file = None;
    let report = verify(&db(dir.path()), &public_key(dir.path())).unwrap();
    fails_with(&report, "start it again: it signs the tail at once");

    let log = AuditLog::open(cfg).unwrap();
    log.shutdown_blocking().unwrap();
    let report = verify(&db(dir.path()), &public_key(dir.path())).unwrap();
    assert!(report.is_intact(), "{report:#?}");
    // The tail signed at start, then the start's own record of the unclean
    // stop (`audit.recovered`), signed at close.
    assert_eq!(
        (report.events, report.checkpoints, report.unsigned_tail),
        (21, 2, 0)
    );
    let mut last = Vec::new();
    gatehouse_audit::export_range_jsonl(&db(dir.path()), &mut last, 21, 21).unwrap();
    let last = String::from_utf8(last).unwrap();
    assert!(last.contains("\"kind\":\"audit.recovered\""), "{last}");
}

#[test]
fn a_pruned_trail_still_verifies_against_its_anchor() {
    let dir = written(35, 10); // checkpoints at 10, 20, 30, 35
    let policy = RetentionPolicy {
        default: Some(Duration::from_secs(86_400)),
        by_kind: BTreeMap::new(),
    };
    let signer = AuditSigner::load(&key_path(dir.path())).unwrap();
    let done = prune(
        &db(dir.path()),
        &policy,
        &signer,
        Utc::now() + Days::days(2),
        false,
    )
    .unwrap();
    assert_eq!((done.events, done.checkpoints), (30, 2));

    let report = check(dir.path(), &anchored(dir.path()));
    assert!(report.is_intact(), "{report:#?}");
    assert_eq!(report.pruned_through, Some(30));
    let anchor = report.anchor.unwrap();
    assert_eq!((anchor.entries, anchor.pruned), (4, 2));

    // The gateway resumes and keeps anchoring.
    let log = AuditLog::open(config(dir.path(), 10)).unwrap();
    for i in 36..=40 {
        assert_eq!(log.record_blocking(command("s", i)).unwrap(), i);
    }
    log.shutdown_blocking().unwrap();
    let report = check(dir.path(), &anchored(dir.path()));
    assert!(report.is_intact(), "{report:#?}");
    assert_eq!(report.anchor.unwrap().newest, Some(5));

    // Deleting the prune's own anchor checkpoint is still caught.
    run(dir.path(), "DELETE FROM checkpoints WHERE seq = 3");
    let report = check(dir.path(), &anchored(dir.path()));
    fails_with(&report, "anchors the trail on this checkpoint");
}

/// Turn a trail written by the current writer into what a gatehouse from
/// before signed policies wrote: format 1 checkpoints (re-signed with the
/// same key), no policy columns, `user_version` 1, no anchor file.
fn make_format_1(dir: &Path) {
    let signer = AuditSigner::load(&key_path(dir)).unwrap();
    let cps = read_checkpoints(&db(dir)).unwrap();
    let conn = raw(dir);
    conn.execute_batch(
        "DELETE FROM checkpoints;
         ALTER TABLE checkpoints DROP COLUMN checkpoint_every;
         ALTER TABLE checkpoints DROP COLUMN checkpoint_interval_ms;
         PRAGMA user_version = 1;",
    )
    .unwrap();
    let mut previous: Option<Checkpoint> = None;
    for cp in cps {
        let old = Checkpoint::sign_with(
            &signer,
            previous.as_ref(),
            cp.event_seq,
            &cp.event_hash,
            cp.ts.clone(),
            None,
        );
        conn.execute(
            "INSERT INTO checkpoints VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                old.seq as i64,
                old.event_seq as i64,
                old.event_hash,
                old.ts,
                old.prev_hash,
                old.hash,
                old.signature
            ],
        )
        .unwrap();
        previous = Some(old);
    }
    std::fs::remove_file(anchor_path(dir)).unwrap();
}

#[test]
fn a_trail_in_the_old_format_still_verifies_and_says_so() {
    let dir = written(20, 10); // checkpoints at 10 and 20
    make_format_1(dir.path());

    let report = check(dir.path(), &anchored(dir.path()));
    assert!(report.is_intact(), "{report:#?}");
    assert_eq!(
        report
            .policy
            .as_ref()
            .map(|p| (p.every, p.signed_by_checkpoint)),
        Some((1000, None)),
        "held to the configured (here: default) policy"
    );
    assert!(
        report.notes.iter().any(|n| n.contains("format 1")),
        "{:?}",
        report.notes
    );
    assert!(
        report.notes.iter().any(|n| n.contains("no anchor file")),
        "{:?}",
        report.notes
    );

    // A current gateway migrates it, anchors its old checkpoints, and signs
    // its policy from then on.
    let log = AuditLog::open(config(dir.path(), 10)).unwrap();
    assert_eq!(log.record_blocking(command("s", 21)).unwrap(), 21);
    log.shutdown_blocking().unwrap();
    let report = check(dir.path(), &anchored(dir.path()));
    assert!(report.is_intact(), "{report:#?}");
    assert_eq!(report.policy.and_then(|p| p.signed_by_checkpoint), Some(3));
    assert_eq!(report.anchor.map(|a| a.entries), Some(3));
}

/// A key given twice in an event's data reads one way to SQLite's
/// `json_extract` (the first) and another to the hash (the last): the
/// stored text must be the canonical form the gateway writes.
#[test]
fn a_duplicated_key_in_event_data_fails_verify() {
    let dir = written(5, 100);
    run(
        dir.path(),
        r#"UPDATE events SET data = '{"verdict":{"effect":"allow"},' || substr(data, 2) WHERE seq = 3"#,
    );
    let result = verify_with(
        &db(dir.path()),
        &public_key(dir.path()),
        &VerifyOptions::default(),
    );
    let failed = match result {
        Ok(report) => !report.is_intact(),
        Err(_) => true,
    };
    assert!(failed, "a duplicated key went unnoticed");
}

/// After a crash, events the store lacks wait in the journal for the next
/// start; verify, run on the stopped trail, says so.
#[test]
fn verify_names_what_a_crashed_gateway_left_in_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path(), 1000)).unwrap();
    for i in 1..=3 {
        log.record_blocking(command("s", i)).unwrap();
    }
    log.flush_blocking().unwrap();
    // Two more reach the journal, then the process "dies": the writer lock
    // goes with it, the indexing does not happen.
    let journal = gatehouse_audit::journal_dir(&db(dir.path()));
    let segment = std::fs::read_dir(&journal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let lines = std::fs::read_to_string(&segment).unwrap();
    std::mem::forget(log);
    std::fs::remove_file(dir.path().join("audit.db.lock")).unwrap();
    run(dir.path(), "DELETE FROM events WHERE seq > 1");
    assert_eq!(lines.lines().count(), 3);
    let report = verify(&db(dir.path()), &public_key(dir.path())).unwrap();
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("holds 2 events after the store's last (events 2 to 3)")),
        "{:?}",
        report.notes
    );
}
