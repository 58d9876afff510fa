//! The audit log handle and its writer thread. A caller's event is put in
//! order, hashed and written by the [`Journal`] on the caller's own task;
//! the writer thread indexes the journal's events into the store in groups
//! and signs checkpoints, behind the data path.

use crate::chain::{ChainCursor, GENESIS_HASH};
use crate::checkpoint::{Checkpoint, SignedPolicy};
use crate::error::AuditError;
use crate::event::{format_ts, NewEvent};
use crate::journal::{journal_dir, Journal, StoreTail, DEFAULT_SYNC_WINDOW, MAX_UNINDEXED};
use crate::signer::AuditSigner;
use crate::store::{AuditStore, ChainHead, Durability, Journaled, SqliteStore, StoreError};
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most events indexed in one transaction. Large enough that a burst is
/// one fsync, small enough that one transaction stays short.
const MAX_BATCH: usize = 1024;

/// Events read per round trip when checking the unsigned tail on open.
const TAIL_CHUNK: usize = 1000;

/// Where the trail and its key live, and how it is written.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The SQLite file.
    pub path: PathBuf,
    /// The Ed25519 signing key (created 0600 on first start; the public key
    /// is written next to it with `.pub` appended).
    pub signing_key_path: PathBuf,
    /// When a recorded event is on disk: before the caller goes on
    /// ([`Durability::Full`]), or within `sync_window` ([`Durability::Normal`]).
    pub durability: Durability,
    /// The most a power loss can take in [`Durability::Normal`] (default
    /// 10 ms). The journal lives next to the store (see [`journal_dir`]).
    pub sync_window: Duration,
    /// Sign a checkpoint after at least this many new events (default 1000).
    pub checkpoint_every: u64,
    /// …and at least this often while events arrive (default 60 s).
    pub checkpoint_interval: Duration,
    /// Where every signed checkpoint is also appended, one JSON line each
    /// (created 0600): the external anchor that exposes a store whose
    /// newest checkpoints and events were deleted. Meant for another volume
    /// or a write-once copy. None: no anchor.
    pub anchor_file: Option<PathBuf>,
}

impl AuditConfig {
    /// The defaults for a trail at `path` signed with the key at
    /// `signing_key_path`.
    pub fn new(path: impl Into<PathBuf>, signing_key_path: impl Into<PathBuf>) -> Self {
        let policy = CheckpointPolicy::default();
        AuditConfig {
            path: path.into(),
            signing_key_path: signing_key_path.into(),
            durability: Durability::Normal,
            sync_window: DEFAULT_SYNC_WINDOW,
            checkpoint_every: policy.every,
            checkpoint_interval: policy.interval,
            anchor_file: None,
        }
    }
}

/// When the writer signs a checkpoint. Also signs one when it closes.
/// Bounds the unsigned tail, and so the work of checking it on open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// After at least this many events since the last checkpoint.
    pub every: u64,
    /// After this long, if any event arrived since the last checkpoint.
    pub interval: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            every: 1000,
            interval: Duration::from_secs(60),
        }
    }
}

impl CheckpointPolicy {
    /// Zero would mean "never" or "spin"; clamp to workable minimums.
    pub(crate) fn sane(self) -> Self {
        CheckpointPolicy {
            every: self.every.max(1),
            interval: self.interval.max(Duration::from_millis(10)),
        }
    }

    /// As a format 2 checkpoint signs it.
    pub(crate) fn signed(self) -> SignedPolicy {
        SignedPolicy {
            every: self.every,
            interval_ms: u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The policy a checkpoint signed.
    pub(crate) fn from_signed(p: SignedPolicy) -> Self {
        CheckpointPolicy {
            every: p.every,
            interval: Duration::from_millis(p.interval_ms),
        }
    }

    /// The stricter of the two, field by field.
    pub(crate) fn strictest(self, other: CheckpointPolicy) -> Self {
        CheckpointPolicy {
            every: self.every.min(other.every),
            interval: self.interval.min(other.interval),
        }
    }
}

/// Handle to the audit trail. Cheap to clone; every clone appends to the
/// same journal and feeds the same writer thread. Closing one closes them
/// all.
///
/// Dropping the last handle without [`close`](Self::close) still signs a
/// final checkpoint, but waits for it on the dropping thread; prefer
/// `close().await` in async code.
#[derive(Clone)]
pub struct AuditLog {
    // Field order matters: `requests` must drop before `shared`, so the
    // writer sees the channel close before `Shared::drop` joins it.
    requests: Sender<Request>,
    shared: Arc<Shared>,
}

struct Shared {
    closed: AtomicBool,
    journal: Arc<Journal>,
    durability: Durability,
    thread: Mutex<Option<JoinHandle<()>>>,
    syncer: Mutex<Option<JoinHandle<()>>>,
    stop_syncer: Arc<AtomicBool>,
    public_key_pem: String,
    location: String,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(handle) = take_handle(&mut self.thread) {
            if handle.join().is_err() {
                tracing::error!(store = %self.location, "the audit writer thread panicked");
            }
        }
        self.stop_syncer.store(true, Ordering::SeqCst);
        if let Some(handle) = take_handle(&mut self.syncer) {
            let _ = handle.join();
        }
        if let Err(e) = self.journal.sync() {
            tracing::error!(store = %self.location, error = %e, "could not sync the audit journal when closing");
        }
    }
}

fn take_handle(slot: &mut Mutex<Option<JoinHandle<()>>>) -> Option<JoinHandle<()>> {
    slot.get_mut()
        .map(Option::take)
        .unwrap_or_else(|poisoned| poisoned.into_inner().take())
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("store", &self.shared.location)
            .finish()
    }
}

enum Reply<T> {
    Async(oneshot::Sender<Result<T, AuditError>>),
    Blocking(SyncSender<Result<T, AuditError>>),
}

impl<T> Reply<T> {
    fn send(self, result: Result<T, AuditError>) {
        // A caller that stopped waiting no longer needs the answer.
        match self {
            Reply::Async(tx) => {
                let _ = tx.send(result);
            }
            Reply::Blocking(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

/// What the writer thread receives: journaled events to index, in seq
/// order, and the request to close.
// Index is nearly every message; boxing it would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Request {
    Index(Journaled),
    /// Answer once everything queued before it is in the store.
    Flush {
        reply: Reply<()>,
    },
    Close {
        reply: Reply<()>,
    },
}

/// How the journal is kept: where, and how soon an append reaches the disk.
#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// The folder of segment files (see [`journal_dir`]).
    pub dir: PathBuf,
    /// [`Durability::Full`]: a caller goes on only once its event is on
    /// disk. [`Durability::Normal`]: once it is in the page cache; on disk
    /// within `sync_window`.
    pub durability: Durability,
    /// The most a power loss can take in [`Durability::Normal`].
    pub sync_window: Duration,
}

impl JournalOptions {
    /// The window mode with the default window, in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalOptions {
            dir: dir.into(),
            durability: Durability::Normal,
            sync_window: DEFAULT_SYNC_WINDOW,
        }
    }
}

impl AuditLog {
    /// Open the SQLite trail `config` names (creating it and the signing key
    /// on first start), check its tail (and that it is not behind its
    /// anchor), index what its journal holds beyond it, take the writer
    /// lock, and start the writer and syncer threads.
    pub fn open(config: AuditConfig) -> Result<AuditLog, AuditError> {
        let signer = AuditSigner::load_or_create(&config.signing_key_path)?;
        // The journal is what makes a recorded event durable; the store is
        // made so (fsync) only before a checkpoint reaches the anchor and
        // before indexed journal segments are deleted.
        let store = SqliteStore::open(&config.path, Durability::Normal)?;
        let lock = Some(crate::anchor::lock_writer(&config.path)?);
        let policy = CheckpointPolicy {
            every: config.checkpoint_every,
            interval: config.checkpoint_interval,
        };
        let journal = JournalOptions {
            dir: journal_dir(&config.path),
            durability: config.durability,
            sync_window: config.sync_window,
        };
        AuditLog::start_inner(
            Box::new(store),
            signer,
            policy,
            journal,
            config.anchor_file.as_deref(),
            lock,
        )
    }

    /// Start a writer over any store (PostgreSQL, or a test double), with
    /// its journal as `journal` says.
    ///
    /// Before accepting events it checks, cheaply, that the trail it is about
    /// to extend is sound: the last checkpoint must carry this key's valid
    /// signature and match the event it covers, and every event after it
    /// must chain correctly. Older history is left to [`crate::verify`]. A
    /// broken tail is refused ([`AuditError::Broken`]) rather than signed
    /// over, and so is a trail last signed by a different key, and an
    /// unsigned tail longer than the signed policy allows (its checkpoints
    /// were deleted: signing it would bless whatever was rewritten).
    pub fn start(
        store: Box<dyn AuditStore>,
        signer: AuditSigner,
        policy: CheckpointPolicy,
        journal: JournalOptions,
    ) -> Result<AuditLog, AuditError> {
        AuditLog::start_inner(store, signer, policy, journal, None, None)
    }

    fn start_inner(
        mut store: Box<dyn AuditStore>,
        signer: AuditSigner,
        policy: CheckpointPolicy,
        journal: JournalOptions,
        anchor_file: Option<&Path>,
        lock: Option<File>,
    ) -> Result<AuditLog, AuditError> {
        let location = store.location();
        let policy = policy.sane();
        let resumed = resume(store.as_mut(), &signer.verifying_key(), policy)?;
        let anchor_pending = match anchor_file {
            Some(path) => anchor_catch_up(
                store.as_mut(),
                &signer.verifying_key(),
                path,
                resumed.last_checkpoint.as_ref(),
            )?,
            None => Vec::new(),
        };
        let (opened, replay, recovery) = Journal::open(
            &journal.dir,
            journal.durability,
            journal.sync_window,
            StoreTail {
                head: &resumed.head,
                last_ts: resumed.last_ts,
                unsigned: &resumed.unsigned,
            },
            MAX_UNINDEXED.saturating_add(policy.every),
        )?;
        let journal_handle = Arc::new(opened);
        let resumed_unsigned = resumed.head.seq
            - resumed
                .last_checkpoint
                .as_ref()
                .map_or(0, |cp| cp.event_seq);
        let public_key_pem = signer.public_key_pem();
        let writer = Writer {
            store,
            signer,
            policy,
            head: resumed.head,
            head_ts: resumed.last_ts,
            pending: replay.into_iter().map(Journaled::new).collect(),
            journal: journal_handle.clone(),
            pruned_at: u64::MAX,
            last_checkpoint: resumed.last_checkpoint,
            last_checkpoint_at: Instant::now(),
            location: location.clone(),
            anchor: anchor_file.map(Path::to_path_buf),
            anchor_pending,
            lock,
        };
        let thread_err = |e: std::io::Error| AuditError::Open {
            path: location.clone(),
            reason: format!("cannot start the writer thread: {e}"),
        };
        let (requests, inbox) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("gatehouse-audit-writer".to_string())
            .spawn(move || writer.run(inbox))
            .map_err(thread_err)?;
        let stop_syncer = Arc::new(AtomicBool::new(false));
        let syncer = {
            let journal = journal_handle.clone();
            let stop = stop_syncer.clone();
            std::thread::Builder::new()
                .name("gatehouse-audit-sync".to_string())
                .spawn(move || journal.run_syncer(|| stop.load(Ordering::SeqCst)))
                .map_err(thread_err)?
        };
        let log = AuditLog {
            requests,
            shared: Arc::new(Shared {
                closed: AtomicBool::new(false),
                journal: journal_handle,
                durability: journal.durability,
                thread: Mutex::new(Some(thread)),
                syncer: Mutex::new(Some(syncer)),
                stop_syncer,
                public_key_pem,
                location,
            }),
        };
        // A trail not closed last time (a crash, kill -9, power loss) has
        // events after its last checkpoint, in the store or the journal.
        let unsigned = resumed_unsigned + recovery.replayed;
        if unsigned > 0 || recovery.torn_bytes > 0 {
            tracing::warn!(
                unsigned,
                replayed = recovery.replayed,
                torn_bytes = recovery.torn_bytes,
                "the audit trail was not closed last time; indexing what its journal held beyond the store and signing it"
            );
            let mut event = NewEvent::new("audit.recovered");
            event.data = serde_json::json!({
                "unsigned_events": unsigned,
                "replayed_from_journal": recovery.replayed,
                "torn_bytes_cut": recovery.torn_bytes,
            });
            // Written while the replay is still to be indexed: the lag
            // bound does not apply to it.
            log.append(event, false)?;
        }
        Ok(log)
    }

    /// Record `event` and return its seq once it is on record: in the
    /// journal (and on disk, in [`Durability::Full`]).
    ///
    /// `Err` means the event is not on record (journal not writable, log
    /// closed): the caller must not run the command. Dropping the future
    /// after the call does not withdraw the event.
    pub async fn record(&self, event: NewEvent) -> Result<u64, AuditError> {
        self.shared.journal.room().await?;
        let seq = self.append(event, true)?;
        if self.shared.durability == Durability::Full {
            self.shared.journal.synced_through(seq).await?;
        }
        Ok(seq)
    }

    /// [`record`](Self::record) for callers without an async runtime (the
    /// CLI). Blocks the calling thread in strict mode until the fsync.
    pub fn record_blocking(&self, event: NewEvent) -> Result<u64, AuditError> {
        self.shared.journal.room_blocking()?;
        let seq = self.append(event, true)?;
        if self.shared.durability == Durability::Full {
            self.shared.journal.synced_through_blocking(seq)?;
        }
        Ok(seq)
    }

    /// Append to the journal (held to the lag bound when `bound_lag`); the
    /// writer indexes it.
    fn append(&self, event: NewEvent, bound_lag: bool) -> Result<u64, AuditError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(AuditError::Closed);
        }
        self.shared.journal.append(
            event,
            |indexed| {
                // A stopped writer leaves the event to the next start's replay.
                let _ = self.requests.send(Request::Index(indexed));
            },
            bound_lag,
        )
    }

    /// Wait until every event recorded so far is in the store (readers such
    /// as `sessions` and the console read the store, which otherwise trails
    /// the journal by a few milliseconds).
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Flush {
                reply: Reply::Async(tx),
            })
            .map_err(|_| AuditError::Closed)?;
        rx.await.unwrap_or(Err(AuditError::Closed))
    }

    /// [`flush`](Self::flush) for callers without an async runtime.
    pub fn flush_blocking(&self) -> Result<(), AuditError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.requests
            .send(Request::Flush {
                reply: Reply::Blocking(tx),
            })
            .map_err(|_| AuditError::Closed)?;
        rx.recv().unwrap_or(Err(AuditError::Closed))
    }

    /// Sign a final checkpoint, flush and stop the writer; later `record`
    /// calls fail with [`AuditError::Closed`]. Idempotent. Failures are
    /// logged; use [`shutdown`](Self::shutdown) to handle them.
    pub async fn close(&self) {
        if let Err(e) = self.shutdown().await {
            tracing::error!(error = %e, "closing the audit trail failed");
        }
    }

    /// [`close`](Self::close) that reports whether the final checkpoint was
    /// written. Only the first call does the work; later ones return Ok.
    pub async fn shutdown(&self) -> Result<(), AuditError> {
        let Some(close) = self.begin_close() else {
            return Ok(());
        };
        let (tx, rx) = oneshot::channel();
        if close(Reply::Async(tx)).is_err() {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }

    /// [`shutdown`](Self::shutdown) for callers without an async runtime.
    pub fn shutdown_blocking(&self) -> Result<(), AuditError> {
        let Some(close) = self.begin_close() else {
            return Ok(());
        };
        let (tx, rx) = mpsc::sync_channel(1);
        if close(Reply::Blocking(tx)).is_err() {
            return Ok(());
        }
        rx.recv().unwrap_or(Ok(()))
    }

    /// Stop appends (only the first caller gets Some) and return how to ask
    /// the writer to finish: every appended event is already queued to it,
    /// ahead of the close.
    fn begin_close(&self) -> Option<impl FnOnce(Reply<()>) -> Result<(), ()> + '_> {
        if self.shared.closed.swap(true, Ordering::SeqCst) {
            return None;
        }
        self.shared.journal.close();
        Some(move |reply| self.requests.send(Request::Close { reply }).map_err(drop))
    }

    /// The public key that verifies this trail's checkpoints (SPKI PEM), for
    /// the evidence bundle.
    pub fn public_key_pem(&self) -> &str {
        &self.shared.public_key_pem
    }
}

/// What the writer continues from.
struct Resumed {
    head: ChainHead,
    last_ts: DateTime<Utc>,
    last_checkpoint: Option<Checkpoint>,
    /// The hashes of the events after the last checkpoint: the journal's
    /// copies must match them.
    unsigned: HashMap<u64, String>,
}

/// Check the last checkpoint and the events after it, and return the head to
/// continue from. Reads at most the unsigned tail plus one event.
fn resume(
    store: &mut dyn AuditStore,
    key: &VerifyingKey,
    policy: CheckpointPolicy,
) -> Result<Resumed, AuditError> {
    let location = store.location();
    let read = |e: StoreError| AuditError::Read {
        path: location.clone(),
        reason: e.0,
    };
    let broken = |seq: u64, reason: String| AuditError::Broken {
        path: location.clone(),
        seq,
        reason,
    };

    let last_checkpoint = store.last_checkpoint().map_err(read)?;
    let head = store.head().map_err(read)?;
    let mut cursor = ChainCursor::genesis();
    let mut from = 1;
    if let Some(cp) = &last_checkpoint {
        cp.check_signature(key).map_err(|reason| {
            broken(
                cp.event_seq,
                format!("the last checkpoint ({}) is not valid for this gateway's signing key: {reason}", cp.seq),
            )
        })?;
        let covered = store.read_events(cp.event_seq, 1).map_err(read)?;
        match covered.first() {
            Some(event) if event.seq == cp.event_seq && event.hash == cp.event_hash => {
                cursor = ChainCursor::after(event.seq, &event.hash);
                from = event.seq + 1;
            }
            Some(event) if event.seq == cp.event_seq => {
                return Err(broken(
                    event.seq,
                    format!(
                        "its hash differs from the one signed by checkpoint {}",
                        cp.seq
                    ),
                ))
            }
            _ => {
                return Err(broken(
                    cp.event_seq,
                    format!(
                    "checkpoint {} covers event {} but it is not in the store: events were deleted",
                    cp.seq, cp.event_seq
                ),
                ))
            }
        }
    }
    let mut last_ts = None;
    let mut unsigned = HashMap::new();
    loop {
        let events = store.read_events(from, TAIL_CHUNK).map_err(read)?;
        for event in &events {
            cursor
                .check(event)
                .map_err(|bad| broken(bad.seq, bad.reason))?;
            last_ts = Some(event.ts.clone());
            unsigned.insert(event.seq, event.hash.clone());
        }
        match events.last() {
            Some(last) if events.len() == TAIL_CHUNK => from = last.seq + 1,
            _ => break,
        }
    }
    let expected_head = cursor.next_seq() - 1;
    let head = head.unwrap_or(ChainHead {
        seq: 0,
        hash: GENESIS_HASH.to_string(),
    });
    if head.seq != expected_head {
        return Err(broken(
            expected_head + 1,
            format!(
                "the store's head is event {} but the chain ends at event {expected_head}",
                head.seq
            ),
        ));
    }
    if last_ts.is_none() && head.seq > 0 {
        last_ts = store
            .read_events(head.seq, 1)
            .map_err(read)?
            .first()
            .map(|e| e.ts.clone());
    }
    let last_ts = last_ts
        .and_then(|ts| DateTime::parse_from_rfc3339(&ts).ok())
        .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc));
    let signed_through = last_checkpoint.as_ref().map_or(0, |cp| cp.event_seq);
    if head.seq > signed_through {
        let unsigned = head.seq - signed_through;
        // The policy the last checkpoint signed. Without one (a format 1
        // checkpoint, or none at all) this writer's own, plus one batch: a
        // writer from before signed policies checkpointed after a whole
        // batch, so a crash could leave that much more.
        let limit = last_checkpoint
            .as_ref()
            .and_then(Checkpoint::policy)
            .map_or(policy.every.saturating_add(MAX_BATCH as u64), |p| p.every);
        if unsigned > limit {
            return Err(broken(
                signed_through + 1,
                format!(
                    "events {} to {} ({unsigned}) follow the last signed checkpoint{}, more than the {limit} a \
                     checkpoint is signed after: the checkpoints that covered them were deleted (and the events may \
                     have been rewritten), so this writer will not sign them",
                    signed_through + 1,
                    head.seq,
                    last_checkpoint
                        .as_ref()
                        .map_or(" (there is none)".to_string(), |cp| format!(
                            " (checkpoint {}, covering event {})",
                            cp.seq, cp.event_seq
                        )),
                ),
            ));
        }
        tracing::info!(
            store = %location,
            unsigned,
            "audit trail has events after its last checkpoint (the gateway stopped without closing); signing them now"
        );
    }
    Ok(Resumed {
        head,
        last_ts,
        last_checkpoint,
        unsigned,
    })
}

/// Checkpoints read per round trip when copying them to the anchor.
const ANCHOR_CHUNK: usize = 1000;

/// Check that the store is not behind its anchor at `path` (creating the
/// anchor if needed), and return the store's checkpoints the anchor lacks
/// (all of them for a new anchor, e.g. a trail from before anchors), for
/// the writer to append.
fn anchor_catch_up(
    store: &mut dyn AuditStore,
    key: &VerifyingKey,
    path: &Path,
    store_last: Option<&Checkpoint>,
) -> Result<Vec<Checkpoint>, AuditError> {
    let location = store.location();
    let shown = path.display().to_string();
    let open_err = |e: std::io::Error| AuditError::Open {
        path: shown.clone(),
        reason: format!(
            "the audit anchor file cannot be created or read ({e}); check [audit] anchor_file \
             and that its folder is writable"
        ),
    };
    crate::anchor::ensure(path).map_err(open_err)?;
    let anchored = crate::anchor::last(path).map_err(open_err)?;
    let broken = |seq: u64, reason: String| AuditError::Broken {
        path: location.clone(),
        seq,
        reason,
    };
    let from = match &anchored {
        None => 1,
        Some(a) => {
            if let Err(reason) = a.check_signature(key) {
                return Err(broken(
                    a.event_seq,
                    format!(
                        "the last line of the anchor file {shown} is not a checkpoint of this trail ({reason}); \
                         the anchor was edited or belongs to another trail"
                    ),
                ));
            }
            match store_last {
                Some(cp) if cp.seq > a.seq => a.seq + 1,
                Some(cp) if cp.seq == a.seq && cp.hash == a.hash => return Ok(Vec::new()),
                Some(cp) if cp.seq == a.seq => {
                    return Err(broken(
                        cp.event_seq,
                        format!(
                            "checkpoint {} differs from the copy in the anchor file {shown}: the store's \
                             checkpoints were replaced",
                            cp.seq
                        ),
                    ))
                }
                _ => {
                    return Err(broken(
                        a.event_seq,
                        format!(
                            "the store is behind its anchor: the anchor file {shown} holds checkpoint {} (covering \
                             event {}, signed {}) but the store's newest checkpoint is {}: checkpoints, and \
                             perhaps the events they covered, were deleted",
                            a.seq,
                            a.event_seq,
                            a.ts,
                            store_last.map_or("none".to_string(), |cp| cp.seq.to_string())
                        ),
                    ))
                }
            }
        }
    };
    if store_last.is_none() {
        return Ok(Vec::new());
    }
    let read = |e: StoreError| AuditError::Read {
        path: location.clone(),
        reason: e.0,
    };
    let mut missing = Vec::new();
    let mut next = from;
    loop {
        let chunk = store.read_checkpoints(next, ANCHOR_CHUNK).map_err(read)?;
        let full = chunk.len() == ANCHOR_CHUNK;
        if let Some(last) = chunk.last() {
            next = last.seq + 1;
        }
        missing.extend(chunk);
        if !full {
            break;
        }
    }
    Ok(missing)
}

/// State owned by the writer thread: indexes journaled events into the
/// store and signs checkpoints.
struct Writer {
    store: Box<dyn AuditStore>,
    signer: AuditSigner,
    policy: CheckpointPolicy,
    /// The store's last event.
    head: ChainHead,
    /// Its time (a checkpoint is never signed earlier).
    head_ts: DateTime<Utc>,
    /// Journaled events not yet in the store, in seq order.
    pending: Vec<Journaled>,
    journal: Arc<Journal>,
    /// The journal's rotation count when segments were last pruned.
    pruned_at: u64,
    last_checkpoint: Option<Checkpoint>,
    last_checkpoint_at: Instant,
    location: String,
    /// The external anchor, if any.
    anchor: Option<PathBuf>,
    /// Checkpoints committed to the store but not yet to the anchor.
    anchor_pending: Vec<Checkpoint>,
    /// The writer lock, held until the thread ends (after the final
    /// checkpoint).
    lock: Option<File>,
}

impl Drop for Writer {
    /// However the writer thread ends (closed, or a panic), nothing more is
    /// appended that it would not index.
    fn drop(&mut self) {
        self.journal.close();
    }
}

/// How long the writer gathers events into one transaction: the store
/// trails the journal by about this much, and indexes in fewer, larger
/// transactions.
const GATHER: Duration = Duration::from_millis(5);

/// How long the writer waits before retrying a store that failed.
const RETRY_AFTER: Duration = Duration::from_millis(200);

impl Writer {
    fn run(mut self, inbox: Receiver<Request>) {
        // What the journal held beyond the store is indexed first; a tail
        // left by a crash is signed at once, and a trail from before anchors
        // is copied to its anchor.
        self.index_pending();
        if self.unsigned() > 0 {
            if let Err(e) = self.checkpoint() {
                tracing::error!(store = %self.location, error = %e, "could not sign the audit trail's unsigned tail");
            }
        } else {
            self.flush_anchor();
        }
        loop {
            let wait = if self.pending.is_empty() {
                (self.last_checkpoint_at + self.policy().interval)
                    .saturating_duration_since(Instant::now())
            } else {
                RETRY_AFTER
            };
            let first = match inbox.recv_timeout(wait) {
                Ok(request) => request,
                Err(RecvTimeoutError::Timeout) => {
                    self.index_pending();
                    self.checkpoint_if_due();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Every handle was dropped without close().
                    self.index_pending();
                    if let Err(e) = self.final_checkpoint() {
                        tracing::error!(store = %self.location, error = %e, "could not sign the final audit checkpoint");
                    }
                    return;
                }
            };
            let control = self.drain(first, &inbox);
            self.index_pending();
            if let Some(Request::Flush { reply }) = control {
                reply.send(self.indexed_all());
                continue;
            }
            if let Some(Request::Close { reply }) = control {
                let signed = self.indexed_all().and_then(|()| self.final_checkpoint());
                // Stopped: from now on verify requires the trail to be
                // signed to its end (it is, unless signing failed).
                drop(self.lock.take());
                reply.send(signed);
                while let Ok(request) = inbox.try_recv() {
                    if let Request::Close { reply } | Request::Flush { reply } = request {
                        reply.send(Ok(()));
                    }
                }
                return;
            }
        }
    }

    /// Whether every journaled event so far is in the store.
    fn indexed_all(&self) -> Result<(), AuditError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        Err(AuditError::NotWritable {
            path: self.location.clone(),
            reason: format!(
                "{} journaled events could not be indexed yet; they stay in the journal, and the writer (or the next \
                 start) indexes them",
                self.pending.len()
            ),
        })
    }

    /// Queue `first` and whatever else is already waiting (up to
    /// [`MAX_BATCH`] events), stopping at a flush or close request, which
    /// is returned: the group in group commit.
    fn drain(&mut self, first: Request, inbox: &Receiver<Request>) -> Option<Request> {
        match first {
            Request::Index(event) => self.pending.push(event),
            control => return Some(control),
        }
        let mut taken = 1;
        let mut gathered = false;
        while taken < MAX_BATCH {
            match inbox.try_recv() {
                Ok(Request::Index(event)) => self.pending.push(event),
                Ok(control) => return Some(control),
                // A small group: let more gather without being woken for
                // each event (senders only wake a receiver that is blocked).
                Err(_) if !gathered && taken < MAX_BATCH / 8 => {
                    gathered = true;
                    std::thread::sleep(GATHER);
                    continue;
                }
                Err(_) => break,
            }
            taken += 1;
        }
        None
    }

    /// Commit the pending events in as few transactions as the policy
    /// allows: a transaction never takes the unsigned tail past
    /// `checkpoint_every`, and the checkpoint follows it at once, so a live
    /// trail's unsigned tail is never longer than the policy it signs (what
    /// verify checks). A store failure keeps the rest pending: the events
    /// are on record in the journal, and the writer retries.
    fn index_pending(&mut self) {
        while !self.pending.is_empty() {
            if self.unsigned() >= self.policy().every {
                // A checkpoint is due and could not be signed (the journal
                // cannot be synced, or the store refuses it): index no
                // further, so the store's unsigned tail stays within the
                // policy; the events stay in the journal for the next start.
                self.checkpoint_if_due();
                if self.unsigned() >= self.policy().every {
                    return;
                }
            }
            let room = self.policy().every.saturating_sub(self.unsigned()).max(1);
            let take = self
                .pending
                .len()
                .min(usize::try_from(room).unwrap_or(usize::MAX))
                .min(MAX_BATCH);
            if let Err(e) = self.store.append_journaled(&self.pending[..take]) {
                tracing::error!(store = %self.location, error = %e, pending = self.pending.len(), "audit store commit failed; the events are in the journal and will be indexed when the store recovers");
                // A store whose head moved under the writer has another
                // writer: nothing more may be built on either chain.
                if let Ok(Some(head)) = self.store.head() {
                    if head != self.head {
                        self.journal.poison(format!(
                            "the audit store's head changed under the writer (event {}, expected {}): another                              process wrote to it",
                            head.seq, self.head.seq
                        ));
                    }
                }
                return;
            }
            if let Some(Journaled { event: last, .. }) = self.pending[..take].last() {
                self.head = ChainHead {
                    seq: last.seq,
                    hash: last.hash.clone(),
                };
                if let Ok(t) = DateTime::parse_from_rfc3339(&last.ts) {
                    self.head_ts = t.with_timezone(&Utc);
                }
            }
            self.pending.drain(..take);
            self.journal.set_indexed(self.head.seq);
            self.checkpoint_if_due();
        }
        let rotations = self.journal.rotations();
        if rotations != self.pruned_at {
            match self.store.make_durable() {
                Ok(()) => {
                    self.journal.prune(self.head.seq);
                    self.pruned_at = rotations;
                }
                Err(e) => {
                    tracing::error!(store = %self.location, error = %e, "cannot make the audit store durable; its journal segments are kept")
                }
            }
        }
    }

    /// A checkpoint's time: now, but never earlier than the event it covers.
    fn checkpoint_ts(&self) -> String {
        format_ts(Utc::now().max(self.head_ts))
    }

    fn unsigned(&self) -> u64 {
        self.head.seq - self.last_checkpoint.as_ref().map_or(0, |cp| cp.event_seq)
    }

    /// The policy to keep: this writer's own, or, until it has signed its
    /// first checkpoint, the stricter of its own and the one the last
    /// checkpoint signed (so a relaxed configuration never leaves a tail the
    /// trail's last promise does not allow).
    fn policy(&self) -> CheckpointPolicy {
        match self.last_checkpoint.as_ref().and_then(Checkpoint::policy) {
            Some(signed) => self.policy.strictest(CheckpointPolicy::from_signed(signed)),
            None => self.policy,
        }
    }

    fn checkpoint_if_due(&mut self) {
        let unsigned = self.unsigned();
        let policy = self.policy();
        let interval_passed = self.last_checkpoint_at.elapsed() >= policy.interval;
        if unsigned == 0 {
            if interval_passed {
                self.last_checkpoint_at = Instant::now();
            }
            return;
        }
        if unsigned >= policy.every || interval_passed {
            if let Err(e) = self.checkpoint() {
                // The events are committed; the next trigger retries.
                tracing::error!(store = %self.location, error = %e, "could not sign an audit checkpoint");
            }
        }
    }

    fn final_checkpoint(&mut self) -> Result<(), AuditError> {
        if self.unsigned() == 0 {
            return Ok(());
        }
        self.checkpoint()
    }

    /// Sign the store's head. Never over an event the journal has not put
    /// on disk: a checkpoint (and its anchor copy) must not outlive, across
    /// a power loss, the events it covers.
    fn checkpoint(&mut self) -> Result<(), AuditError> {
        self.last_checkpoint_at = Instant::now();
        if self.journal.synced() < self.head.seq {
            self.journal.sync().map_err(|e| AuditError::NotWritable {
                path: self.location.clone(),
                reason: format!("the journal cannot be synced before a checkpoint: {e}"),
            })?;
        }
        let ts = self.checkpoint_ts();
        let cp = Checkpoint::sign(
            &self.signer,
            self.last_checkpoint.as_ref(),
            self.head.seq,
            &self.head.hash,
            ts,
            self.policy.signed(),
        );
        self.store
            .append_checkpoint(&cp)
            .map_err(|e| AuditError::NotWritable {
                path: self.location.clone(),
                reason: e.0,
            })?;
        tracing::debug!(
            checkpoint = cp.seq,
            event_seq = cp.event_seq,
            "signed audit checkpoint"
        );
        if self.anchor.is_some() {
            self.anchor_pending.push(cp.clone());
        }
        self.last_checkpoint = Some(cp);
        // The anchor must never hold a checkpoint a power loss could take
        // from the store.
        self.store
            .make_durable()
            .map_err(|e| AuditError::NotWritable {
                path: self.location.clone(),
                reason: e.0,
            })?;
        self.flush_anchor();
        Ok(())
    }

    /// Append the checkpoints the anchor lacks. A failure is logged and
    /// retried with the next checkpoint: the store keeps the record, and
    /// verify reports the anchor as lagging.
    fn flush_anchor(&mut self) {
        let Some(path) = &self.anchor else {
            return;
        };
        if self.anchor_pending.is_empty() {
            return;
        }
        match crate::anchor::append(path, &self.anchor_pending) {
            Ok(()) => self.anchor_pending.clear(),
            Err(e) => tracing::error!(
                anchor = %path.display(),
                error = %e,
                pending = self.anchor_pending.len(),
                "could not append to the audit anchor file; retrying with the next checkpoint"
            ),
        }
    }
}
