#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
use super::*;
use crate::chain::GENESIS_HASH;
use std::collections::HashMap;

fn genesis() -> ChainHead {
    ChainHead {
        seq: 0,
        hash: GENESIS_HASH.to_string(),
    }
}

fn try_open(
    dir: &Path,
    head: &ChainHead,
    unsigned: &HashMap<u64, String>,
    durability: Durability,
) -> Result<(Journal, Vec<AuditEvent>, Recovery), AuditError> {
    Journal::open(
        dir,
        durability,
        DEFAULT_SYNC_WINDOW,
        StoreTail {
            head,
            last_ts: DateTime::<Utc>::MIN_UTC,
            unsigned,
        },
        MAX_UNINDEXED,
    )
}

fn open(dir: &Path, head: &ChainHead) -> (Journal, Vec<AuditEvent>, Recovery) {
    try_open(dir, head, &HashMap::new(), Durability::Normal).unwrap()
}

fn event(n: u64) -> NewEvent {
    let mut e = NewEvent::new("command");
    e.session_id = Some("s1".into());
    e.data =
        serde_json::json!({"statement": format!("SELECT {n}"), "note": "ünïcode \"quoted\"\n"});
    e
}

fn append(j: &Journal, n: u64) -> AuditEvent {
    let mut out = None;
    j.append(event(n), |e| out = Some(e.event), true).unwrap();
    out.unwrap()
}

fn newest_segment(dir: &Path) -> PathBuf {
    segments(dir).unwrap().pop().unwrap().1
}

#[test]
fn a_line_is_the_export_format_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _, _) = open(dir.path(), &genesis());
    let first = append(&j, 1);
    let second = append(&j, 2);
    assert_eq!((first.seq, second.seq), (1, 2));
    assert_eq!(second.prev_hash, first.hash);
    let text = std::fs::read_to_string(newest_segment(dir.path())).unwrap();
    let lines: Vec<AuditEvent> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, vec![first, second]);
    for e in &lines {
        assert_eq!(e.compute_hash(), e.hash, "the line hashes as written");
    }
}

#[test]
fn what_the_store_lacks_is_read_back_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _, _) = open(dir.path(), &genesis());
    let written: Vec<_> = (1..=5).map(|n| append(&j, n)).collect();
    drop(j);
    // The store had indexed the first two before the crash.
    let store_head = ChainHead {
        seq: 2,
        hash: written[1].hash.clone(),
    };
    let (j, replay, recovery) = open(dir.path(), &store_head);
    assert_eq!(replay, written[2..].to_vec());
    assert_eq!(
        recovery,
        Recovery {
            replayed: 3,
            torn_bytes: 0
        }
    );
    let next = append(&j, 6);
    assert_eq!(
        (next.seq, next.prev_hash.as_str()),
        (6, written[4].hash.as_str())
    );
}

#[test]
fn a_torn_last_line_is_cut_and_its_seq_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _, _) = open(dir.path(), &genesis());
    let written: Vec<_> = (1..=2).map(|n| append(&j, n)).collect();
    drop(j);
    let path = newest_segment(dir.path());
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"{\"seq\":3,\"ts\":\"2026-").unwrap();
    drop(f);
    let (j, replay, recovery) = open(dir.path(), &genesis());
    assert_eq!(replay, written);
    assert_eq!(recovery.torn_bytes, 20);
    assert_eq!(append(&j, 3).seq, 3);
    // Zeros a power loss left behind are torn too.
    drop(j);
    let path = newest_segment(dir.path());
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[0u8; 512]).unwrap();
    drop(f);
    let (_, replay, recovery) = open(dir.path(), &genesis());
    assert_eq!(replay.len(), 3);
    assert_eq!(recovery.torn_bytes, 512);
}

#[test]
fn an_edited_line_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _, _) = open(dir.path(), &genesis());
    for n in 1..=3 {
        append(&j, n);
    }
    drop(j);
    let path = newest_segment(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("SELECT 2", "SELECT 9", 1)).unwrap();
    let err = try_open(dir.path(), &genesis(), &HashMap::new(), Durability::Normal)
        .err()
        .unwrap();
    assert!(matches!(err, AuditError::Broken { seq: 2, .. }), "{err}");
}

#[test]
fn a_failed_write_leaves_the_chain_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _, _) = open(dir.path(), &genesis());
    // The segment becomes a device that is always full.
    lock(&j.tail).file = Arc::new(OpenOptions::new().append(true).open("/dev/full").unwrap());
    let mut sent = false;
    let err = j.append(event(1), |_| sent = true, true).unwrap_err();
    assert!(matches!(err, AuditError::NotWritable { .. }), "{err}");
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert!(!sent, "nothing is indexed that is not on record");
    assert_eq!(lock(&j.tail).head, genesis());
    assert_eq!(j.written.load(Ordering::Acquire), 0);
}

#[test]
fn strict_mode_waits_for_the_fsync_and_closing_stops_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _, _) = try_open(dir.path(), &genesis(), &HashMap::new(), Durability::Full).unwrap();
    let j = Arc::new(j);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let syncer = {
        let (j, stop) = (j.clone(), stop.clone());
        std::thread::spawn(move || j.run_syncer(|| stop.load(Ordering::SeqCst)))
    };
    let seq = j.append(event(1), |_| {}, true).unwrap();
    j.synced_through_blocking(seq).unwrap();
    assert!(j.synced() >= seq);
    j.close();
    assert!(matches!(
        j.append(event(2), |_| {}, true),
        Err(AuditError::Closed)
    ));
    stop.store(true, Ordering::SeqCst);
    j.wake.notify_all();
    syncer.join().unwrap();
}

#[test]
fn indexed_segments_are_pruned_and_the_current_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _, _) = open(dir.path(), &genesis());
    for n in 1..=3 {
        append(&j, n);
    }
    {
        let mut tail = lock(&j.tail);
        j.rotate(&mut tail);
    }
    for n in 4..=5 {
        append(&j, n);
    }
    {
        let mut tail = lock(&j.tail);
        j.rotate(&mut tail);
    }
    assert_eq!(segments(dir.path()).unwrap().len(), 3);
    j.prune(3);
    let left: Vec<u64> = segments(dir.path()).unwrap().iter().map(|s| s.0).collect();
    assert_eq!(left, vec![4, 6]);
    j.prune(5);
    let left: Vec<u64> = segments(dir.path()).unwrap().iter().map(|s| s.0).collect();
    assert_eq!(left, vec![6]);
}

#[test]
fn a_store_tail_that_differs_from_the_journal_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _, _) = open(dir.path(), &genesis());
    let written: Vec<_> = (1..=3).map(|n| append(&j, n)).collect();
    drop(j);
    // The store "has" events 1-2 unsigned, but its event 2 was rewritten.
    let head = ChainHead {
        seq: 2,
        hash: "f".repeat(64),
    };
    let unsigned = HashMap::from([(1, written[0].hash.clone()), (2, "f".repeat(64))]);
    let err = try_open(dir.path(), &head, &unsigned, Durability::Normal)
        .err()
        .unwrap();
    assert!(
        matches!(err, AuditError::Broken { seq: 2, .. }) && err.to_string().contains("differs"),
        "{err}"
    );
}

#[test]
fn a_segment_must_start_where_its_name_says() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _, _) = open(dir.path(), &genesis());
    for n in 1..=2 {
        append(&j, n);
    }
    drop(j);
    let from = newest_segment(dir.path());
    std::fs::rename(&from, segment_path(dir.path(), 7)).unwrap();
    let err = try_open(dir.path(), &genesis(), &HashMap::new(), Durability::Normal)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("does not start with event 7"),
        "{err}"
    );
}

#[test]
fn a_poisoned_journal_refuses_appends_and_wakes_strict_waiters() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _, _) = try_open(dir.path(), &genesis(), &HashMap::new(), Durability::Full).unwrap();
    let seq = j.append(event(1), |_| {}, true).unwrap();
    j.poison("the disk reported an I/O error".into());
    let err = j.synced_through_blocking(seq).unwrap_err();
    assert!(err.to_string().contains("I/O error"), "{err}");
    let err = j.append(event(2), |_| {}, true).unwrap_err();
    assert!(matches!(err, AuditError::NotWritable { .. }), "{err}");
    assert!(j.sync().is_err(), "a poisoned journal never claims a sync");
}

#[test]
fn the_store_may_not_fall_too_far_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _, _) = open(dir.path(), &genesis());
    lock(&j.tail).head.seq = MAX_UNINDEXED;
    let err = j.append(event(1), |_| {}, true).unwrap_err();
    assert!(err.to_string().contains("behind its journal"), "{err}");
    j.set_indexed(MAX_UNINDEXED);
    assert_eq!(j.append(event(1), |_| {}, true).unwrap(), MAX_UNINDEXED + 1);
}
