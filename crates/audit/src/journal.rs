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
//!   read back, checked against the chain, and indexed. A torn last line (a
//!   power loss in the middle of a write) is cut; anything else that does
//!   not chain refuses the start, as a broken store does.
//!
//! Segments are named by their first seq (`00000000000000000001.jsonl`) in a
//! 0700 folder next to the store, each file 0600.

use crate::chain::{event_hash_with_data, ChainCursor};
use crate::error::AuditError;
use crate::event::{format_ts, AuditEvent, NewEvent};
use crate::store::{ChainHead, Durability};
use chrono::{DateTime, Utc};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// A segment is closed and a new one started past this size, so indexed
/// history can be deleted a segment at a time.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// The default bound on what a power loss can take in
/// [`Durability::Normal`]: events written in the last 10 ms.
pub const DEFAULT_SYNC_WINDOW: Duration = Duration::from_millis(10);

/// What the start found in the journal beyond the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Events the store lacked and that were read back from the journal.
    pub replayed: u64,
    /// Bytes of a torn last line that were cut.
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
    /// Serializes fsyncs and holds the files they cover.
    files: Mutex<SyncFiles>,
    /// Wakes the syncer (strict mode) and blocking waiters.
    wake: Condvar,
    wake_lock: Mutex<()>,
    /// Async waiters for `synced`.
    synced_tx: tokio::sync::watch::Sender<u64>,
    /// Counts segment rotations, so the writer knows when to prune.
    rotations: AtomicU64,
}

/// The end of the journal the next event is appended to. Only touched under
/// the lock, which is also what orders the chain.
struct Tail {
    file: Arc<File>,
    /// Length of the current segment: a failed write is cut back to it.
    len: u64,
    head: ChainHead,
    last_ts: DateTime<Utc>,
    closed: bool,
}

/// What an fsync must cover: segments closed since the last one, and the
/// current one.
struct SyncFiles {
    retired: Vec<Arc<File>>,
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

impl Journal {
    /// Open the journal in `dir` for a store whose head is `store_head`:
    /// read back the events the store lacks (checked against the chain),
    /// cut a torn last line, and start a new segment after the newest event.
    /// Returns the journal, the events to index, and what was recovered.
    pub(crate) fn open(
        dir: &Path,
        durability: Durability,
        window: Duration,
        store_head: &ChainHead,
        store_last_ts: DateTime<Utc>,
    ) -> Result<(Journal, Vec<AuditEvent>, Recovery), AuditError> {
        let shown = dir.display().to_string();
        let open_err = |e: io::Error| AuditError::Open {
            path: shown.clone(),
            reason: format!("the audit journal folder cannot be created or read: {e}"),
        };
        create_private_dir(dir).map_err(open_err)?;
        let (replay, recovery) = read_back(dir, store_head)?;
        let head = replay.last().map_or_else(
            || store_head.clone(),
            |e| ChainHead {
                seq: e.seq,
                hash: e.hash.clone(),
            },
        );
        let last_ts = replay
            .last()
            .and_then(|e| DateTime::parse_from_rfc3339(&e.ts).ok())
            .map_or(store_last_ts, |t| t.with_timezone(&Utc).max(store_last_ts));
        let file = Arc::new(open_segment(dir, head.seq + 1).map_err(open_err)?);
        let len = file.metadata().map_err(open_err)?.len();
        let (synced_tx, _) = tokio::sync::watch::channel(head.seq);
        let journal = Journal {
            dir: dir.to_path_buf(),
            durability,
            window: window.max(Duration::from_millis(1)),
            written: AtomicU64::new(head.seq),
            synced: AtomicU64::new(head.seq),
            files: Mutex::new(SyncFiles {
                retired: Vec::new(),
                current: file.clone(),
                dir_dirty: true,
            }),
            tail: Mutex::new(Tail {
                file,
                len,
                head,
                last_ts,
                closed: false,
            }),
            wake: Condvar::new(),
            wake_lock: Mutex::new(()),
            synced_tx,
            rotations: AtomicU64::new(0),
        };
        // What was read back goes to disk before anything is built on it.
        journal.sync().map_err(|e| AuditError::Open {
            path: shown.clone(),
            reason: format!("the audit journal cannot be synced: {e}"),
        })?;
        Ok((journal, replay, recovery))
    }

    /// Give `new` its place in the chain and append it. `indexed` is called
    /// with the finished event while the lock is held, so the writer
    /// receives events in seq order. On `Err` nothing was appended and the
    /// chain is unchanged.
    pub(crate) fn append(
        &self,
        new: NewEvent,
        indexed: impl FnOnce(AuditEvent),
    ) -> Result<u64, AuditError> {
        // The expensive parts happen before the lock.
        let data_text = crate::canonical_json(&new.data);
        let mut tail = lock(&self.tail);
        if tail.closed {
            return Err(AuditError::Closed);
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
            // Cut a partial line, so the next append starts clean.
            let cut = tail.file.set_len(tail.len);
            tracing::error!(journal = %self.dir.display(), error = %e, cut_back = cut.is_ok(), "audit journal write failed; the event was not recorded");
            return Err(AuditError::NotWritable {
                path: self.dir.display().to_string(),
                reason: e.to_string(),
            });
        }
        tail.len += line.len() as u64;
        tail.last_ts = now;
        tail.head = ChainHead {
            seq: event.seq,
            hash: event.hash.clone(),
        };
        let seq = event.seq;
        self.written.store(seq, Ordering::Release);
        if tail.len >= SEGMENT_BYTES {
            self.rotate(&mut tail);
        }
        indexed(event);
        drop(tail);
        if self.durability == Durability::Full {
            self.wake.notify_all();
        }
        Ok(seq)
    }

    /// Start a new segment after the current one. A failure keeps the
    /// current one (appends go on; it is only larger).
    fn rotate(&self, tail: &mut Tail) {
        match open_segment(&self.dir, tail.head.seq + 1) {
            Ok(file) => {
                let file = Arc::new(file);
                let old = std::mem::replace(&mut tail.file, file.clone());
                tail.len = 0;
                let mut files = lock(&self.files);
                files.retired.push(old);
                files.current = file;
                files.dir_dirty = true;
                self.rotations.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(journal = %self.dir.display(), error = %e, "cannot start a new audit journal segment; continuing the current one");
            }
        }
    }

    /// No appends after this; what is written stays.
    pub(crate) fn close(&self) {
        lock(&self.tail).closed = true;
    }

    /// Wait until the event `seq` is on disk (strict mode's promise).
    pub(crate) async fn synced_through(&self, seq: u64) -> Result<(), AuditError> {
        let mut rx = self.synced_tx.subscribe();
        rx.wait_for(|&s| s >= seq)
            .await
            .map(drop)
            .map_err(|_| AuditError::Closed)
    }

    /// [`synced_through`](Self::synced_through) for a blocking caller.
    pub(crate) fn synced_through_blocking(&self, seq: u64) {
        let mut guard = lock(&self.wake_lock);
        while self.synced.load(Ordering::Acquire) < seq {
            guard = self
                .wake
                .wait_timeout(guard, self.window)
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
    }

    /// Flush every written event to disk now. Safe from any thread; fsyncs
    /// are serialized.
    pub(crate) fn sync(&self) -> io::Result<()> {
        let mut files = lock(&self.files);
        let target = self.written.load(Ordering::Acquire);
        if target <= self.synced.load(Ordering::Acquire) && !files.dir_dirty {
            return Ok(());
        }
        for file in &files.retired {
            file.sync_data()?;
        }
        files.retired.clear();
        files.current.sync_data()?;
        if files.dir_dirty {
            File::open(&self.dir)?.sync_all()?;
            files.dir_dirty = false;
        }
        drop(files);
        self.synced.fetch_max(target, Ordering::AcqRel);
        self.synced_tx
            .send_replace(self.synced.load(Ordering::Acquire));
        let _guard = lock(&self.wake_lock);
        self.wake.notify_all();
        Ok(())
    }

    /// The syncer's loop, on its own thread, until `stop` returns true:
    /// strict mode syncs as soon as anything is written, the window mode at
    /// most `window` after.
    pub(crate) fn run_syncer(&self, stop: impl Fn() -> bool) {
        let mut failing = false;
        loop {
            {
                let guard = lock(&self.wake_lock);
                let pending =
                    self.written.load(Ordering::Acquire) > self.synced.load(Ordering::Acquire);
                if !pending || self.durability == Durability::Normal {
                    let _ = self.wake.wait_timeout(guard, self.window);
                }
            }
            if let Err(e) = self.sync() {
                if !failing {
                    tracing::error!(journal = %self.dir.display(), error = %e, "cannot sync the audit journal to disk; retrying");
                }
                failing = true;
            } else {
                failing = false;
            }
            if stop() {
                return;
            }
        }
    }

    /// Delete the segments wholly at or below `indexed` (the store's
    /// durable head). The current segment always stays.
    pub(crate) fn prune(&self, indexed: u64) {
        let Ok(list) = segments(&self.dir) else {
            return;
        };
        for pair in list.windows(2) {
            let (_, path) = &pair[0];
            let (next_first, _) = pair[1];
            if next_first.saturating_sub(1) <= indexed {
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

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
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

/// Read the events after `store_head` back from the segments, checking the
/// chain. A line that does not parse or chain is a torn write only if it is
/// the last line of the newest segment; it is cut. Anything else refuses.
fn read_back(
    dir: &Path,
    store_head: &ChainHead,
) -> Result<(Vec<AuditEvent>, Recovery), AuditError> {
    let shown = dir.display().to_string();
    let read_err = |e: io::Error| AuditError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let list = segments(dir).map_err(read_err)?;
    let mut cursor = ChainCursor::after(store_head.seq, &store_head.hash);
    let mut replay = Vec::new();
    let mut recovery = Recovery::default();
    let count = list.len();
    for (i, (first, path)) in list.iter().enumerate() {
        let newest = i + 1 == count;
        // A segment whose successor starts at or below the store's next
        // event holds nothing the store lacks.
        if list
            .get(i + 1)
            .is_some_and(|(next, _)| *next <= store_head.seq + 1)
        {
            continue;
        }
        let file = File::open(path).map_err(read_err)?;
        let total = file.metadata().map_err(read_err)?.len();
        // Never past the length seen at open (a device reads forever).
        let mut reader = BufReader::new(file.take(total));
        let mut offset = 0u64;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(read_err)?;
            if n == 0 {
                break;
            }
            let whole = line.ends_with(b"\n");
            let parsed = serde_json::from_slice::<AuditEvent>(&line).ok();
            let verdict = match &parsed {
                None => Err(format!(
                    "line at byte {offset} of {} is not an event",
                    path.display()
                )),
                Some(event) if event.seq <= store_head.seq => Ok(false),
                Some(event) => cursor.check(event).map(|()| true).map_err(|bad| bad.reason),
            };
            let at_end = newest && offset + n as u64 == total;
            match verdict {
                Ok(true) if whole => replay.extend(parsed),
                Ok(false) if whole => {}
                // The last line of the newest segment, cut short or not an
                // event: a write a power loss tore. It was never on disk
                // whole, so never acknowledged in strict mode; cut it.
                _ if at_end && (!whole || parsed.is_none()) => {
                    let file = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(read_err)?;
                    file.set_len(offset).map_err(read_err)?;
                    file.sync_all().map_err(read_err)?;
                    recovery.torn_bytes = n as u64;
                    tracing::warn!(segment = %path.display(), bytes = n, "cut a torn last line from the audit journal");
                    break;
                }
                _ => {
                    let seq = parsed.as_ref().map_or(cursor.next_seq(), |e| e.seq);
                    let reason = match verdict {
                        Err(reason) => reason,
                        Ok(_) => "a line without its end, before the journal's last".to_string(),
                    };
                    return Err(AuditError::Broken {
                        path: shown.clone(),
                        seq,
                        reason: format!(
                            "the journal segment {} (from event {first}) does not continue the trail: {reason}",
                            path.display()
                        ),
                    });
                }
            }
            offset += n as u64;
        }
    }
    recovery.replayed = replay.len() as u64;
    Ok((replay, recovery))
}

#[cfg(test)]
mod tests;
