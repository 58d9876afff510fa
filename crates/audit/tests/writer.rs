//! The writer: ordering, group commit, checkpoints, failures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;
use gatehouse_audit::{
    verify, AuditError, AuditEvent, AuditLog, AuditSigner, AuditStore, ChainHead, Checkpoint,
    CheckpointPolicy, Durability, JournalOptions, SqliteStore, StoreError,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn chain_continues_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 3);
    let log = AuditLog::open(config(dir.path(), 1000)).unwrap();
    assert_eq!(log.record_blocking(command("s2", 4)).unwrap(), 4);
    assert_eq!(log.record_blocking(command("s2", 5)).unwrap(), 5);
    log.shutdown_blocking().unwrap();

    let report = verify(&db(dir.path()), &public_key(dir.path())).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (
            report.events,
            report.checkpoints,
            report.last_checkpoint_seq,
            report.unsigned_tail
        ),
        (5, 2, Some(5), 0)
    );
    let events = gatehouse_audit::session_events(&db(dir.path()), "s2").unwrap();
    assert_eq!(
        events[0].prev_hash,
        gatehouse_audit::session_events(&db(dir.path()), "s1").unwrap()[2].hash
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_records_get_gap_free_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path(), 50)).unwrap();
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                log.record(command(&format!("s{}", i % 7), i))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=300).collect::<Vec<u64>>());
    log.close().await;

    let report = verify(&db(dir.path()), &public_key(dir.path())).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.events, 300);
    assert_eq!(report.unsigned_tail, 0);
    // How many checkpoints depends on how the records were grouped into
    // transactions; at least the closing one covers everything.
    assert_eq!(report.last_checkpoint_seq, Some(300));
}

/// Wraps a real store to observe or break it through the trait.
struct Instrumented {
    inner: SqliteStore,
    fail: Arc<AtomicBool>,
    batch_sizes: Arc<Mutex<Vec<usize>>>,
    slow_first: bool,
}

impl AuditStore for Instrumented {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn head(&mut self) -> Result<Option<ChainHead>, StoreError> {
        self.inner.head()
    }
    fn last_checkpoint(&mut self) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.last_checkpoint()
    }
    fn append_batch(&mut self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if std::mem::take(&mut self.slow_first) {
            // Let callers queue up behind the first commit.
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError("No space left on device".into()));
        }
        self.batch_sizes.lock().unwrap().push(events.len());
        self.inner.append_batch(events)
    }
    fn append_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError("No space left on device".into()));
        }
        self.inner.append_checkpoint(checkpoint)
    }
    fn read_events(&mut self, from_seq: u64, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.read_events(from_seq, limit)
    }
    fn read_checkpoints(
        &mut self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        self.inner.read_checkpoints(from_seq, limit)
    }
}

fn instrumented(
    dir: &std::path::Path,
    slow_first: bool,
) -> (Instrumented, Arc<AtomicBool>, Arc<Mutex<Vec<usize>>>) {
    let fail = Arc::new(AtomicBool::new(false));
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let store = Instrumented {
        inner: SqliteStore::open(&db(dir), Durability::Normal).unwrap(),
        fail: fail.clone(),
        batch_sizes: sizes.clone(),
        slow_first,
    };
    (store, fail, sizes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queued_records_share_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _fail, sizes) = instrumented(dir.path(), true);
    let log = AuditLog::start(
        Box::new(store),
        AuditSigner::ephemeral(),
        CheckpointPolicy::default(),
        JournalOptions::new(dir.path().join("journal")),
    )
    .unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.record(command("s", i)).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    log.close().await;
    let sizes = sizes.lock().unwrap().clone();
    assert_eq!(sizes.iter().sum::<usize>(), 200);
    assert!(
        sizes.len() < 50,
        "200 queued records took {} transactions: {sizes:?}",
        sizes.len()
    );
    assert!(sizes.iter().any(|&n| n > 10), "{sizes:?}");
}

/// A store that fails loses nothing: every record is on record in the
/// journal, and the writer indexes it once the store recovers.
#[tokio::test]
async fn a_failing_store_loses_nothing_the_journal_took() {
    let dir = tempfile::tempdir().unwrap();
    let (store, fail, _) = instrumented(dir.path(), false);
    let signer = AuditSigner::ephemeral();
    let key = signer.verifying_key();
    let log = AuditLog::start(
        Box::new(store),
        signer,
        CheckpointPolicy::default(),
        JournalOptions::new(dir.path().join("journal")),
    )
    .unwrap();
    for i in 1..=3 {
        assert_eq!(log.record(command("s", i)).await.unwrap(), i);
    }
    fail.store(true, Ordering::SeqCst);
    for i in 4..=6 {
        assert_eq!(log.record(command("s", i)).await.unwrap(), i);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    fail.store(false, Ordering::SeqCst);
    assert_eq!(log.record(command("s", 7)).await.unwrap(), 7);
    log.shutdown().await.unwrap();

    let report = verify(&db(dir.path()), &key).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.events, report.unsigned_tail), (7, 0));
}

/// A real SQLite failure in the middle of a batch rolls the batch back; the
/// writer retries it whole, so the store never has a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_rolls_back_a_failing_batch_without_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path(), 1000)).unwrap();
    raw(dir.path())
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.kind = 'poison'
             BEGIN SELECT RAISE(ABORT, 'disk I/O error (simulated)'); END;",
        )
        .unwrap();
    let tasks: Vec<_> = (0..120)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut event = command("s", i);
                if i % 40 == 7 {
                    event.kind = "poison".into();
                }
                log.record(event).await.unwrap()
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=120).collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = gatehouse_audit::last_event_seq(&db(dir.path())).unwrap();
    assert!(
        stored < 120,
        "the store holds nothing past the first poisoned event ({stored:?})"
    );
    raw(dir.path())
        .execute_batch("DROP TRIGGER poison")
        .unwrap();
    log.close().await;

    let report = verify(&db(dir.path()), &public_key(dir.path())).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.events, report.unsigned_tail), (120, 0));
}

#[tokio::test]
async fn close_is_idempotent_and_later_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path(), 1000)).unwrap();
    let other = log.clone();
    log.record(command("s", 1)).await.unwrap();
    log.shutdown().await.unwrap();
    log.shutdown().await.unwrap();
    other.close().await;
    assert!(matches!(
        other.record(command("s", 2)).await,
        Err(AuditError::Closed)
    ));
    assert!(matches!(
        log.record_blocking(command("s", 2)),
        Err(AuditError::Closed)
    ));
    let report = verify(&db(dir.path()), &public_key(dir.path())).unwrap();
    assert_eq!(
        (report.events, report.checkpoints, report.unsigned_tail),
        (1, 1, 0)
    );
}

#[test]
fn dropping_the_last_handle_signs_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path(), 1000)).unwrap();
    let clone = log.clone();
    log.record_blocking(command("s", 1)).unwrap();
    drop(log);
    clone.record_blocking(command("s", 2)).unwrap();
    drop(clone);
    let report = verify(&db(dir.path()), &public_key(dir.path())).unwrap();
    assert!(report.is_intact());
    assert_eq!(
        (report.events, report.checkpoints, report.unsigned_tail),
        (2, 1, 0)
    );
}

#[test]
fn checkpoints_every_n_events_and_reports_the_unsigned_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path(), 10)).unwrap();
    for i in 1..=25 {
        log.record_blocking(command("s", i)).unwrap();
    }
    log.flush_blocking().unwrap();
    // Verify while the gateway is still writing.
    let report = verify(&db(dir.path()), &public_key(dir.path())).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (
            report.events,
            report.checkpoints,
            report.last_checkpoint_seq,
            report.unsigned_tail
        ),
        (25, 2, Some(20), 5)
    );
    log.shutdown_blocking().unwrap();
    let report = verify(&db(dir.path()), &public_key(dir.path())).unwrap();
    assert_eq!(
        (
            report.checkpoints,
            report.last_checkpoint_seq,
            report.unsigned_tail
        ),
        (3, Some(25), 0)
    );
}

#[test]
fn checkpoints_on_an_interval_only_when_there_is_something_new() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 1000);
    cfg.checkpoint_interval = Duration::from_millis(50);
    let log = AuditLog::open(cfg).unwrap();
    log.record_blocking(command("s", 1)).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let report = verify(&db(dir.path()), &public_key(dir.path())).unwrap();
    assert_eq!(
        (report.checkpoints, report.unsigned_tail),
        (1, 0),
        "idle intervals add no checkpoints"
    );
    drop(log);
}

#[test]
fn timestamps_follow_seq_order_in_the_documented_format() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 20);
    let events = gatehouse_audit::session_events(&db(dir.path()), "s1").unwrap();
    for pair in events.windows(2) {
        assert!(pair[0].ts <= pair[1].ts);
    }
    let ts = &events[0].ts;
    assert_eq!(ts.len(), "2025-01-31T09:15:02.123Z".len(), "{ts}");
    assert!(
        ts.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
        "{ts}"
    );
}

#[test]
fn open_reports_an_unusable_location() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 1000);
    cfg.path = dir.path().join("missing-folder/audit.db");
    let err = AuditLog::open(cfg).unwrap_err();
    assert!(matches!(err, AuditError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("missing-folder"), "{err}");
}

#[test]
fn a_second_writer_cannot_fork_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let first = AuditLog::open(config(dir.path(), 1000)).unwrap();
    let err = AuditLog::open(config(dir.path(), 1000))
        .unwrap_err()
        .to_string();
    assert!(err.contains("only one gateway may write"), "{err}");
    first.record_blocking(command("s", 1)).unwrap();
    first.shutdown_blocking().unwrap();
    let report = verify(&db(dir.path()), &public_key(dir.path())).unwrap();
    assert!(report.is_intact(), "{report:?}");
}

/// Watches, through the store trait, how far the unsigned tail ever gets.
struct TailWatch {
    inner: SqliteStore,
    head: u64,
    signed: u64,
    max_unsigned: Arc<Mutex<u64>>,
    slow_first: bool,
}

impl AuditStore for TailWatch {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn head(&mut self) -> Result<Option<ChainHead>, StoreError> {
        self.inner.head()
    }
    fn last_checkpoint(&mut self) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.last_checkpoint()
    }
    fn append_batch(&mut self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if std::mem::take(&mut self.slow_first) {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.inner.append_batch(events)?;
        self.head = events.last().map_or(self.head, |e| e.seq);
        let mut max = self.max_unsigned.lock().unwrap();
        *max = (*max).max(self.head - self.signed);
        Ok(())
    }
    fn append_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        self.inner.append_checkpoint(checkpoint)?;
        self.signed = checkpoint.event_seq;
        Ok(())
    }
    fn read_events(&mut self, from_seq: u64, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.read_events(from_seq, limit)
    }
    fn read_checkpoints(
        &mut self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        self.inner.read_checkpoints(from_seq, limit)
    }
}

/// Group commit never takes the unsigned tail past `checkpoint_every`, so a
/// live trail always meets the policy it signs (which verify checks).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_never_leaves_more_unsigned_events_than_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let max_unsigned = Arc::new(Mutex::new(0));
    let store = TailWatch {
        inner: SqliteStore::open(&db(dir.path()), Durability::Normal).unwrap(),
        head: 0,
        signed: 0,
        max_unsigned: max_unsigned.clone(),
        slow_first: true,
    };
    let signer = AuditSigner::ephemeral();
    let key = signer.verifying_key();
    let policy = CheckpointPolicy {
        every: 16,
        interval: Duration::from_secs(3600),
    };
    let log = AuditLog::start(
        Box::new(store),
        signer,
        policy,
        JournalOptions::new(dir.path().join("journal")),
    )
    .unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.record(command("s", i)).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    log.close().await;
    let max = *max_unsigned.lock().unwrap();
    assert!(max <= 16, "the unsigned tail reached {max} events");
    let report = verify(&db(dir.path()), &key).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.policy.map(|p| p.every), Some(16));
}
