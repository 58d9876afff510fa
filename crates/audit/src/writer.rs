//! The writer: one dedicated thread owns the store, assigns order, time and
//! hashes, commits in groups, and signs checkpoints. Async callers never
//! block on disk I/O; they await an acknowledgement sent after the commit.

use crate::chain::{ChainCursor, GENESIS_HASH};
use crate::checkpoint::{Checkpoint, SignedPolicy};
use crate::error::AuditError;
use crate::event::{format_ts, AuditEvent, NewEvent};
use crate::signer::AuditSigner;
use crate::store::{AuditStore, ChainHead, Durability, SqliteStore, StoreError};
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most events committed in one transaction. Large enough that a burst is
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
    /// Commit durability.
    pub durability: Durability,
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
            durability: Durability::Full,
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

/// Handle to the audit trail. Cheap to clone; every clone talks to the same
/// writer thread. Closing one closes them all.
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
    thread: Mutex<Option<JoinHandle<()>>>,
    public_key_pem: String,
    location: String,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let handle = self
            .thread
            .get_mut()
            .map(Option::take)
            .unwrap_or_else(|poisoned| poisoned.into_inner().take());
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!(store = %self.location, "the audit writer thread panicked");
            }
        }
    }
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

enum Request {
    Record { event: NewEvent, reply: Reply<u64> },
    Close { reply: Reply<()> },
}

impl AuditLog {
    /// Open the SQLite trail `config` names (creating it and the signing key
    /// on first start), check its tail (and that it is not behind its
    /// anchor), take the writer lock, and start the writer thread.
    pub fn open(config: AuditConfig) -> Result<AuditLog, AuditError> {
        let signer = AuditSigner::load_or_create(&config.signing_key_path)?;
        let store = SqliteStore::open(&config.path, config.durability)?;
        let lock = crate::anchor::lock_writer(&config.path);
        let policy = CheckpointPolicy {
            every: config.checkpoint_every,
            interval: config.checkpoint_interval,
        };
        AuditLog::start_inner(
            Box::new(store),
            signer,
            policy,
            config.anchor_file.as_deref(),
            lock,
        )
    }

    /// Start a writer over any store (PostgreSQL, or a test double).
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
    ) -> Result<AuditLog, AuditError> {
        AuditLog::start_inner(store, signer, policy, None, None)
    }

    /// [`start`](Self::start) with an external anchor file (see
    /// [`AuditConfig::anchor_file`]): the store must not be behind it.
    pub fn start_anchored(
        store: Box<dyn AuditStore>,
        signer: AuditSigner,
        policy: CheckpointPolicy,
        anchor_file: &Path,
    ) -> Result<AuditLog, AuditError> {
        AuditLog::start_inner(store, signer, policy, Some(anchor_file), None)
    }

    fn start_inner(
        mut store: Box<dyn AuditStore>,
        signer: AuditSigner,
        policy: CheckpointPolicy,
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
        let public_key_pem = signer.public_key_pem();
        let writer = Writer {
            store,
            signer,
            policy,
            head: resumed.head,
            last_ts: resumed.last_ts,
            last_checkpoint: resumed.last_checkpoint,
            last_checkpoint_at: Instant::now(),
            location: location.clone(),
            anchor: anchor_file.map(Path::to_path_buf),
            anchor_pending,
            lock,
        };
        let (requests, inbox) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("gatehouse-audit-writer".to_string())
            .spawn(move || writer.run(inbox))
            .map_err(|e| AuditError::Open {
                path: location.clone(),
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(AuditLog {
            requests,
            shared: Arc::new(Shared {
                closed: AtomicBool::new(false),
                thread: Mutex::new(Some(thread)),
                public_key_pem,
                location,
            }),
        })
    }

    /// Record `event` and return its seq once it is committed to the store.
    ///
    /// `Err` means the event is not on record (store failure, log closed):
    /// the caller must not run the command. Dropping the future after the
    /// call does not withdraw the event.
    pub async fn record(&self, event: NewEvent) -> Result<u64, AuditError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Request::Record {
            event,
            reply: Reply::Async(tx),
        })?;
        rx.await.unwrap_or(Err(AuditError::Closed))
    }

    /// [`record`](Self::record) for callers without an async runtime (the
    /// CLI). Blocks the calling thread until the commit.
    pub fn record_blocking(&self, event: NewEvent) -> Result<u64, AuditError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(Request::Record {
            event,
            reply: Reply::Blocking(tx),
        })?;
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
        if self.shared.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        if self
            .requests
            .send(Request::Close {
                reply: Reply::Async(tx),
            })
            .is_err()
        {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }

    /// [`shutdown`](Self::shutdown) for callers without an async runtime.
    pub fn shutdown_blocking(&self) -> Result<(), AuditError> {
        if self.shared.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let (tx, rx) = mpsc::sync_channel(1);
        if self
            .requests
            .send(Request::Close {
                reply: Reply::Blocking(tx),
            })
            .is_err()
        {
            return Ok(());
        }
        rx.recv().unwrap_or(Ok(()))
    }

    /// The public key that verifies this trail's checkpoints (SPKI PEM), for
    /// the evidence bundle.
    pub fn public_key_pem(&self) -> &str {
        &self.shared.public_key_pem
    }

    fn submit(&self, request: Request) -> Result<(), AuditError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(AuditError::Closed);
        }
        self.requests.send(request).map_err(|_| AuditError::Closed)
    }
}

/// What the writer continues from.
struct Resumed {
    head: ChainHead,
    last_ts: DateTime<Utc>,
    last_checkpoint: Option<Checkpoint>,
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
    loop {
        let events = store.read_events(from, TAIL_CHUNK).map_err(read)?;
        for event in &events {
            cursor
                .check(event)
                .map_err(|bad| broken(bad.seq, bad.reason))?;
            last_ts = Some(event.ts.clone());
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

/// State owned by the writer thread.
struct Writer {
    store: Box<dyn AuditStore>,
    signer: AuditSigner,
    policy: CheckpointPolicy,
    head: ChainHead,
    last_ts: DateTime<Utc>,
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

impl Writer {
    fn run(mut self, inbox: Receiver<Request>) {
        // A tail left by a crash is signed at once, and a trail from before
        // anchors is copied to its anchor.
        if self.unsigned() > 0 {
            if let Err(e) = self.checkpoint() {
                tracing::error!(store = %self.location, error = %e, "could not sign the audit trail's unsigned tail");
            }
        } else {
            self.flush_anchor();
        }
        loop {
            let wait = (self.last_checkpoint_at + self.policy().interval)
                .saturating_duration_since(Instant::now());
            let first = match inbox.recv_timeout(wait) {
                Ok(request) => request,
                Err(RecvTimeoutError::Timeout) => {
                    self.checkpoint_if_due();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Every handle was dropped without close().
                    if let Err(e) = self.final_checkpoint() {
                        tracing::error!(store = %self.location, error = %e, "could not sign the final audit checkpoint");
                    }
                    return;
                }
            };
            let (records, close) = drain(first, &inbox);
            self.commit_in_steps(records);
            if let Some(reply) = close {
                let signed = self.final_checkpoint();
                // Stopped: from now on verify requires the trail to be
                // signed to its end (it is, unless signing failed).
                drop(self.lock.take());
                reply.send(signed);
                // Refuse whatever was queued behind the close.
                while let Ok(request) = inbox.try_recv() {
                    match request {
                        Request::Record { reply, .. } => reply.send(Err(AuditError::Closed)),
                        Request::Close { reply } => reply.send(Ok(())),
                    }
                }
                return;
            }
        }
    }

    /// Commit `records` in as few transactions as the policy allows: a
    /// transaction never takes the unsigned tail past `checkpoint_every`,
    /// and the checkpoint follows it at once, so a live trail's unsigned
    /// tail is never longer than the policy it signs (what verify checks).
    fn commit_in_steps(&mut self, mut records: Records) {
        while !records.is_empty() {
            let room = self.policy().every.saturating_sub(self.unsigned()).max(1);
            let take = records
                .len()
                .min(usize::try_from(room).unwrap_or(usize::MAX));
            let rest = records.split_off(take);
            self.commit(records);
            self.checkpoint_if_due();
            records = rest;
        }
    }

    /// Assign seq, time and hashes to `records` and commit them in one
    /// transaction. On failure nothing changes and every caller gets the
    /// error: no gap, no fork.
    fn commit(&mut self, records: Vec<(NewEvent, Reply<u64>)>) {
        if records.is_empty() {
            return;
        }
        let mut events = Vec::with_capacity(records.len());
        let mut replies = Vec::with_capacity(records.len());
        let mut prev_hash = self.head.hash.clone();
        for (i, (new, reply)) in records.into_iter().enumerate() {
            let mut event = AuditEvent {
                seq: self.head.seq + 1 + i as u64,
                ts: self.next_ts(),
                kind: new.kind,
                session_id: new.session_id,
                subject: new.subject,
                connection: new.connection,
                data: new.data,
                prev_hash,
                hash: String::new(),
            };
            event.hash = event.compute_hash();
            prev_hash = event.hash.clone();
            events.push(event);
            replies.push(reply);
        }
        match self.store.append_batch(&events) {
            Ok(()) => {
                if let Some(last) = events.last() {
                    self.head = ChainHead {
                        seq: last.seq,
                        hash: last.hash.clone(),
                    };
                }
                for (event, reply) in events.iter().zip(replies) {
                    reply.send(Ok(event.seq));
                }
            }
            Err(e) => {
                tracing::error!(store = %self.location, error = %e, events = events.len(), "audit commit failed; the events were not recorded");
                for reply in replies {
                    reply.send(Err(AuditError::NotWritable {
                        path: self.location.clone(),
                        reason: e.0.clone(),
                    }));
                }
            }
        }
    }

    /// Writer-assigned time, never earlier than the previous event's, so
    /// time order and seq order agree even if the clock steps back.
    fn next_ts(&mut self) -> String {
        let now = Utc::now().max(self.last_ts);
        self.last_ts = now;
        format_ts(now)
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

    fn checkpoint(&mut self) -> Result<(), AuditError> {
        self.last_checkpoint_at = Instant::now();
        let ts = self.next_ts();
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

type Records = Vec<(NewEvent, Reply<u64>)>;

/// Take `first` and whatever else is already queued (up to [`MAX_BATCH`]
/// events), stopping at a close request: the group in group commit.
fn drain(first: Request, inbox: &Receiver<Request>) -> (Records, Option<Reply<()>>) {
    let mut records = Vec::new();
    let mut next = Some(first);
    while let Some(request) = next.take() {
        match request {
            Request::Record { event, reply } => records.push((event, reply)),
            Request::Close { reply } => return (records, Some(reply)),
        }
        if records.len() < MAX_BATCH {
            next = inbox.try_recv().ok();
        }
    }
    (records, None)
}
