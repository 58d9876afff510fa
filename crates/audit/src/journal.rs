//! The journal: where an event is on record before its caller goes on.
//!
//! A statement must be in the trail before the target sees it, and the
//! trail must survive the gateway being killed. Committing each event to
//! SQLite on a writer thread and waiting for the answer met both, at the cost
//! of two thread hand-offs and a transaction per statement. The journal
//! meets them with one `write(2)` on the calling task:
//!
//! * [`Journal::append`] takes a short lock, gives the event its seq, time
//!   and chain hash, and appends it as one JSON line (the export format) to
//!   the current segment file. Once `write(2)` returns the bytes are in the
//!   kernel's page cache: a gateway crash (kill -9, panic, OOM) loses
//!   nothing. A failed write (disk full) truncates the segment back to the
//!   last whole line and leaves the chain as it was, so the caller refuses
//!   the command (fail closed).
//! * A syncer thread `fdatasync`s the segment: at most `window` after a
//!   write in [`Durability::Normal`] (the bound on what a power loss can
//!   take), at once in [`Durability::Full`], where callers wait for it.
//!   Writes that arrive during one fsync share the next one (group commit
//!   across sessions).
//! * The writer thread indexes the same events into the store behind the
//!   data path and signs checkpoints, never over an event that is not yet
//!   on disk here. Segments wholly in the store are deleted.
//! * On start, the events the store lacks (a crash before indexing) are
//!   read back, checked against the chain and against the store's own
//!   unsigned events, and indexed (see `replay`). A torn end (a power loss
//!   in the middle of a write) is cut; anything else that does not chain
//!   refuses the start, as a broken store does.
//! * Anything that makes the journal untrustworthy (an fsync that failed,
//!   whose pages Linux then marks clean; a failed write that could not be
//!   cut back; the writer thread gone) poisons it: from then on every
//!   append is refused, so the gateway refuses commands (fail closed).
//!   The store may fall at most [`MAX_UNINDEXED`] events behind the
//!   journal; past that, appends are refused too, which bounds memory and
//!   the store's lag.
//!
//! Segments are named by their first seq (`00000000000000000001.jsonl`) in a
//! 0700 folder next to the store, each file 0600.

use crate::chain::event_hash_with_data;
use crate::error::AuditError;
use crate::event::{format_ts, AuditEvent, NewEvent};
use crate::store::{ChainHead, Durability, Journaled};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

mod replay;

pub(crate) use replay::beyond as journal_beyond;

/// A segment is closed and a new one started past this size, so indexed
/// history can be deleted a segment at a time.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// The most events the store may lag the journal by. Past it appends are
/// refused (the store has failed or stalled), and a start refuses to
/// replay more than this from the journal.
pub const MAX_UNINDEXED: u64 = 50_000;

/// Past this lag a recording caller waits for the writer to catch up (a
/// burst faster than the store indexes), rather than being refused.
const SOFT_LAG: u64 = MAX_UNINDEXED / 2;

/// How long the writer may make no progress at all before waiting callers
/// are refused.
const STALL: Duration = Duration::from_secs(10);

/// The default bound on what a power loss can take in
/// [`Durability::Normal`]: events written in the last 10 ms.
pub const DEFAULT_SYNC_WINDOW: Duration = Duration::from_millis(10);

/// What the start found in the journal beyond the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Events the store lacked and that were read back from the journal.
    pub replayed: u64,
    /// Bytes of a torn end that were cut.
    pub torn_bytes: u64,
}

/// The journal of one trail. Shared by every [`crate::AuditLog`] handle.
pub(crate) struct Journal {
    dir: PathBuf,
    durability: Durability,
    window: Duration,
    tail: Mutex<Tail>,
    /// Highest seq whose line `write(2)` accepted.
    written: AtomicU64,
    /// Highest seq known to be on disk.
    synced: AtomicU64,
    /// The store's head, as the writer last indexed it.
    indexed: AtomicU64,
    /// Why the journal refuses appends for good (see the module docs).
    poisoned: OnceLock<String>,
    /// Serializes fsyncs; the file they cover.
    files: Mutex<SyncFiles>,
    /// Wakes the syncer (strict mode) and blocking waiters.
    wake: Condvar,
    wake_lock: Mutex<()>,
    /// Async waiters for `synced` (and for poisoning).
    synced_tx: tokio::sync::watch::Sender<u64>,
    /// Async waiters for `indexed` (callers held back by a lagging store).
    indexed_tx: tokio::sync::watch::Sender<u64>,
    /// Counts segment rotations, so the writer knows when to prune.
    rotations: AtomicU64,
}

/// The end of the journal the next event is appended to. Only touched under
/// the lock, which is also what orders the chain.
struct Tail {
    file: Arc<File>,
    /// The current segment's name (its first seq).
    first_seq: u64,
    /// Length of the current segment: a failed write is cut back to it.
    len: u64,
    /// Start a new segment once `len` reaches this.
    rotate_at: u64,
    head: ChainHead,
    last_ts: DateTime<Utc>,
    closed: bool,
}

/// The current segment, for fsyncs.
struct SyncFiles {
    current: Arc<File>,
    dir_dirty: bool,
}

fn open_segment(dir: &Path, first_seq: u64) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.append(true).create(true).read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(segment_path(dir, first_seq))
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.jsonl"))
}

/// The segments in `dir`, by first seq.
fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((seq, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// The journal folder of the store at `store_path`.
pub fn journal_dir(store_path: &Path) -> PathBuf {
    let mut name = store_path.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// Where a start resumes: the store's head and time, and the hashes of the
/// store's events after its last checkpoint (the journal's copies must
/// match them).
pub(crate) struct StoreTail<'a> {
    pub head: &'a ChainHead,
    pub last_ts: DateTime<Utc>,
    pub unsigned: &'a HashMap<u64, String>,
}

impl Journal {
    /// Open the journal in `dir` for the store `store` describes: read back
    /// the events the store lacks, and start a new segment after the newest
    /// event. Returns the journal, the events to index, and what was
    /// recovered.
    pub(crate) fn open(
        dir: &Path,
        durability: Durability,
        window: Duration,
        store: StoreTail<'_>,
        max_replay: u64,
    ) -> Result<(Journal, Vec<AuditEvent>, Recovery), AuditError> {
        let shown = dir.display().to_string();
        let open_err = |e: io::Error| AuditError::Open {
            path: shown.clone(),
            reason: format!("the audit journal folder cannot be created, read or synced: {e}"),
        };
        create_private_dir(dir).map_err(open_err)?;
        let (replay, recovery) = replay::read_back(dir, &store, max_replay)?;
        let head = replay.last().map_or_else(
            || store.head.clone(),
            |e| ChainHead {
                seq: e.seq,
                hash: e.hash.clone(),
            },
        );
        let last_ts = replay
            .last()
            .and_then(|e| DateTime::parse_from_rfc3339(&e.ts).ok())
            .map_or(store.last_ts, |t| t.with_timezone(&Utc).max(store.last_ts));
        replay::remove_empty_segments(dir, head.seq + 1).map_err(open_err)?;
        let file = Arc::new(open_segment(dir, head.seq + 1).map_err(open_err)?);
        let len = file.metadata().map_err(open_err)?.len();
        let (synced_tx, _) = tokio::sync::watch::channel(head.seq);
        let (indexed_tx, _) = tokio::sync::watch::channel(store.head.seq);
        let journal = Journal {
            dir: dir.to_path_buf(),
            durability,
            window: window.max(Duration::from_millis(1)),
            written: AtomicU64::new(head.seq),
            synced: AtomicU64::new(head.seq),
            indexed: AtomicU64::new(store.head.seq),
            poisoned: OnceLock::new(),
            files: Mutex::new(SyncFiles {
                current: file.clone(),
                dir_dirty: true,
            }),
            tail: Mutex::new(Tail {
                file,
                first_seq: head.seq + 1,
                len,
                rotate_at: SEGMENT_BYTES,
                head,
                last_ts,
                closed: false,
            }),
            wake: Condvar::new(),
            wake_lock: Mutex::new(()),
            synced_tx,
            indexed_tx,
            rotations: AtomicU64::new(0),
        };
        journal.sync().map_err(|e| AuditError::Open {
            path: shown.clone(),
            reason: format!("the audit journal cannot be synced: {e}"),
        })?;
        Ok((journal, replay, recovery))
    }

    /// Give `new` its place in the chain and append it. `indexed` is called
    /// with the finished event while the lock is held, so the writer
    /// receives events in seq order. On `Err` nothing was appended and the
    /// chain is unchanged. `bound_lag` is false only for the start's own
    /// `audit.recovered`, written while the replay is still to be indexed.
    pub(crate) fn append(
        &self,
        new: NewEvent,
        indexed: impl FnOnce(Journaled),
        bound_lag: bool,
    ) -> Result<u64, AuditError> {
        // The expensive parts happen before the lock.
        let data_text = crate::canonical_json(&new.data);
        let mut tail = lock(&self.tail);
        if tail.closed {
            return Err(AuditError::Closed);
        }
        if let Some(why) = self.poisoned.get() {
            return Err(self.not_writable(why.clone()));
        }
        let behind = tail
            .head
            .seq
            .saturating_sub(self.indexed.load(Ordering::Acquire));
        if bound_lag && behind >= MAX_UNINDEXED {
            return Err(self.not_writable(format!(
                "the audit store is {behind} events behind its journal (indexing failed or stalled; see the \
                 gateway's log)"
            )));
        }
        let now = Utc::now().max(tail.last_ts);
        let mut event = AuditEvent {
            seq: tail.head.seq + 1,
            ts: format_ts(now),
            kind: new.kind,
            session_id: new.session_id,
            subject: new.subject,
            connection: new.connection,
            data: new.data,
            prev_hash: tail.head.hash.clone(),
            hash: String::new(),
        };
        event.hash = event_hash_with_data(&event, &data_text);
        let line = journal_line(&event, &data_text);
        if let Err(e) = (&*tail.file).write_all(&line) {
            // Cut a partial line, so the next append starts clean; a journal
            // that cannot be cut back cannot be appended to.
            if let Err(cut) = tail.file.set_len(tail.len) {
                self.poison(format!(
                    "a failed write ({e}) could not be cut back from the journal ({cut})"
                ));
            }
            tracing::error!(journal = %self.dir.display(), error = %e, "audit journal write failed; the event was not recorded");
            return Err(self.not_writable(e.to_string()));
        }
        tail.len += line.len() as u64;
        tail.last_ts = now;
        tail.head = ChainHead {
            seq: event.seq,
            hash: event.hash.clone(),
        };
        let seq = event.seq;
        self.written.store(seq, Ordering::Release);
        if tail.len >= tail.rotate_at {
            self.rotate(&mut tail);
        }
        indexed(Journaled { event, data_text });
        drop(tail);
        if self.durability == Durability::Full {
            let _guard = lock(&self.wake_lock);
            self.wake.notify_all();
        }
        Ok(seq)
    }

    fn not_writable(&self, reason: String) -> AuditError {
        AuditError::NotWritable {
            path: self.dir.display().to_string(),
            reason,
        }
    }

    /// Start a new segment after the current one. The current one goes to
    /// disk first, so no line of the new one can outlive a power loss that
    /// takes the end of the old one. A failure keeps the current segment
    /// (appends go on; it is only larger) and tries again later.
    fn rotate(&self, tail: &mut Tail) {
        if let Err(e) = tail.file.sync_data() {
            self.poison(format!("the journal segment could not be synced: {e}"));
            return;
        }
        match open_segment(&self.dir, tail.head.seq + 1) {
            Ok(file) => {
                let file = Arc::new(file);
                tail.file = file.clone();
                tail.first_seq = tail.head.seq + 1;
                tail.len = 0;
                tail.rotate_at = SEGMENT_BYTES;
                let mut files = lock(&self.files);
                files.current = file;
                files.dir_dirty = true;
                self.rotations.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tail.rotate_at = tail.len + SEGMENT_BYTES / 8;
                tracing::warn!(journal = %self.dir.display(), error = %e, "cannot start a new audit journal segment; continuing the current one");
            }
        }
    }

    /// Refuse every append from now on, and wake whoever waits for a sync.
    pub(crate) fn poison(&self, why: String) {
        if self.poisoned.set(why.clone()).is_ok() {
            tracing::error!(journal = %self.dir.display(), reason = %why, "the audit journal can no longer be trusted to hold what it takes; the gateway refuses commands until it is restarted");
        }
        self.synced_tx.send_modify(|_| {});
        let _guard = lock(&self.wake_lock);
        self.wake.notify_all();
    }

    /// No appends after this; what is written stays.
    pub(crate) fn close(&self) {
        lock(&self.tail).closed = true;
    }

    /// The writer indexed the store up to `seq`.
    pub(crate) fn set_indexed(&self, seq: u64) {
        self.indexed.store(seq, Ordering::Release);
        self.indexed_tx.send_replace(seq);
    }

    fn lag(&self) -> u64 {
        self.written
            .load(Ordering::Acquire)
            .saturating_sub(self.indexed.load(Ordering::Acquire))
    }

    /// Hold a recording caller back while the store lags by more than
    /// [`SOFT_LAG`] events; Err once the writer made no progress for
    /// [`STALL`]. Costs two atomic loads when the store keeps up.
    pub(crate) async fn room(&self) -> Result<(), AuditError> {
        let mut rx = self.indexed_tx.subscribe();
        while self.lag() >= SOFT_LAG {
            match tokio::time::timeout(STALL, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(self.stalled()),
            }
        }
        Ok(())
    }

    /// [`room`](Self::room) for a blocking caller.
    pub(crate) fn room_blocking(&self) -> Result<(), AuditError> {
        let mut last = self.indexed.load(Ordering::Acquire);
        let mut since = std::time::Instant::now();
        while self.lag() >= SOFT_LAG {
            std::thread::sleep(Duration::from_millis(1));
            let now = self.indexed.load(Ordering::Acquire);
            if now != last {
                (last, since) = (now, std::time::Instant::now());
            } else if since.elapsed() >= STALL {
                return Err(self.stalled());
            }
        }
        Ok(())
    }

    fn stalled(&self) -> AuditError {
        self.not_writable(format!(
            "the audit store is {} events behind its journal and indexed nothing for {}s (see the gateway's log)",
            self.lag(),
            STALL.as_secs()
        ))
    }

    /// Wait until the event `seq` is on disk (strict mode's promise); Err
    /// when the journal was poisoned first.
    pub(crate) async fn synced_through(&self, seq: u64) -> Result<(), AuditError> {
        let mut rx = self.synced_tx.subscribe();
        let _ = rx
            .wait_for(|&s| s >= seq || self.poisoned.get().is_some())
            .await;
        self.check_synced(seq)
    }

    /// [`synced_through`](Self::synced_through) for a blocking caller.
    pub(crate) fn synced_through_blocking(&self, seq: u64) -> Result<(), AuditError> {
        let mut guard = lock(&self.wake_lock);
        while self.synced.load(Ordering::Acquire) < seq && self.poisoned.get().is_none() {
            guard = self
                .wake
                .wait_timeout(guard, self.window)
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
        drop(guard);
        self.check_synced(seq)
    }

    fn check_synced(&self, seq: u64) -> Result<(), AuditError> {
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let why = self
            .poisoned
            .get()
            .cloned()
            .unwrap_or_else(|| "the journal stopped before the event reached the disk".into());
        Err(self.not_writable(why))
    }

    /// Flush every written event to disk now. Safe from any thread; fsyncs
    /// are serialized. A failure poisons the journal: Linux reports a
    /// writeback error once and marks the pages clean, so a retry that
    /// "succeeds" proves nothing.
    pub(crate) fn sync(&self) -> io::Result<()> {
        if let Some(why) = self.poisoned.get() {
            return Err(io::Error::other(why.clone()));
        }
        let mut files = lock(&self.files);
        let target = self.written.load(Ordering::Acquire);
        if target <= self.synced.load(Ordering::Acquire) && !files.dir_dirty {
            return Ok(());
        }
        let synced = files.current.sync_data().and_then(|()| {
            if files.dir_dirty {
                File::open(&self.dir)?.sync_all()?;
                files.dir_dirty = false;
            }
            Ok(())
        });
        drop(files);
        if let Err(e) = synced {
            self.poison(format!("the journal could not be synced to disk: {e}"));
            return Err(e);
        }
        self.synced.fetch_max(target, Ordering::AcqRel);
        // Never backwards: a slower sync may finish after a newer one.
        let synced = self.synced.load(Ordering::Acquire);
        self.synced_tx.send_if_modified(|seen| {
            let newer = synced > *seen;
            if newer {
                *seen = synced;
            }
            newer
        });
        let _guard = lock(&self.wake_lock);
        self.wake.notify_all();
        Ok(())
    }

    /// The syncer's loop, on its own thread, until `stop` returns true:
    /// strict mode syncs as soon as anything is written, the window mode at
    /// most `window` after.
    pub(crate) fn run_syncer(&self, stop: impl Fn() -> bool) {
        loop {
            {
                let guard = lock(&self.wake_lock);
                let pending =
                    self.written.load(Ordering::Acquire) > self.synced.load(Ordering::Acquire);
                let now =
                    pending && self.durability == Durability::Full && self.poisoned.get().is_none();
                if !now {
                    let _ = self.wake.wait_timeout(guard, self.window);
                }
            }
            // A failure poisons the journal and is logged there.
            let _ = self.sync();
            if stop() {
                return;
            }
        }
    }

    /// Delete the segments before the current one that are wholly at or
    /// below `indexed` (the store's durable head).
    pub(crate) fn prune(&self, indexed: u64) {
        let current = lock(&self.tail).first_seq;
        let Ok(list) = segments(&self.dir) else {
            return;
        };
        for pair in list.windows(2) {
            let (first, path) = &pair[0];
            let (next_first, _) = pair[1];
            if *first < current && next_first <= current && next_first.saturating_sub(1) <= indexed
            {
                if let Err(e) = std::fs::remove_file(path) {
                    tracing::warn!(segment = %path.display(), error = %e, "cannot delete an indexed audit journal segment");
                }
            }
        }
    }

    /// How many segments were started since open (the writer prunes when
    /// this moves).
    pub(crate) fn rotations(&self) -> u64 {
        self.rotations.load(Ordering::Relaxed)
    }

    /// The highest seq on disk.
    pub(crate) fn synced(&self) -> u64 {
        self.synced.load(Ordering::Acquire)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Create `dir` 0700 (and make its entry durable in its parent).
fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// One event as a journal line: the export format, with `data` in the
/// canonical text the hash covers (so it is built once).
fn journal_line(event: &AuditEvent, data_text: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(data_text.len() + 320);
    let text = |v: &Option<String>| serde_json::to_string(v).unwrap_or_else(|_| "null".into());
    let _ = writeln!(
        line,
        "{{\"seq\":{},\"ts\":\"{}\",\"kind\":{},\"session_id\":{},\"subject\":{},\"connection\":{},\"data\":{},\"prev_hash\":\"{}\",\"hash\":\"{}\"}}",
        event.seq,
        event.ts,
        serde_json::to_string(&event.kind).unwrap_or_default(),
        text(&event.session_id),
        text(&event.subject),
        text(&event.connection),
        data_text,
        event.prev_hash,
        event.hash
    );
    line
}

#[cfg(test)]
mod tests;
