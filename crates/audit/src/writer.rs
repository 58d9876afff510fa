//! The writer: one dedicated thread owns the store, assigns order, time and
//! hashes, commits in groups, and signs checkpoints. Async callers never
//! block on disk I/O; they await an acknowledgement sent after the commit.

use crate::chain::{ChainCursor, GENESIS_HASH};
use crate::checkpoint::Checkpoint;
use crate::error::AuditError;
use crate::event::{format_ts, AuditEvent, NewEvent};
use crate::signer::AuditSigner;
use crate::store::{AuditStore, ChainHead, Durability, SqliteStore, StoreError};
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use std::path::PathBuf;
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
    fn sane(self) -> Self {
        CheckpointPolicy {
            every: self.every.max(1),
            interval: self.interval.max(Duration::from_millis(10)),
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
    /// on first start), check its tail, and start the writer thread.
    pub fn open(config: AuditConfig) -> Result<AuditLog, AuditError> {
        let signer = AuditSigner::load_or_create(&config.signing_key_path)?;
        let store = SqliteStore::open(&config.path, config.durability)?;
        let policy = CheckpointPolicy {
            every: config.checkpoint_every,
            interval: config.checkpoint_interval,
        };
        AuditLog::start(Box::new(store), signer, policy)
    }

    /// Start a writer over any store (PostgreSQL, or a test double).
    ///
    /// Before accepting events it checks, cheaply, that the trail it is about
    /// to extend is sound: the last checkpoint must carry this key's valid
    /// signature and match the event it covers, and every event after it
    /// must chain correctly. Older history is left to [`crate::verify`]. A
    /// broken tail is refused ([`AuditError::Broken`]) rather than signed
    /// over, and so is a trail last signed by a different key.
    pub fn start(
        mut store: Box<dyn AuditStore>,
        signer: AuditSigner,
        policy: CheckpointPolicy,
    ) -> Result<AuditLog, AuditError> {
        let location = store.location();
        let resumed = resume(store.as_mut(), &signer.verifying_key())?;
        let public_key_pem = signer.public_key_pem();
        let writer = Writer {
            store,
            signer,
            policy: policy.sane(),
            head: resumed.head,
            last_ts: resumed.last_ts,
            last_checkpoint: resumed.last_checkpoint,
            last_checkpoint_at: Instant::now(),
            location: location.clone(),
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
fn resume(store: &mut dyn AuditStore, key: &VerifyingKey) -> Result<Resumed, AuditError> {
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
    if head.seq > last_checkpoint.as_ref().map_or(0, |cp| cp.event_seq) {
        tracing::info!(
            store = %location,
            unsigned = head.seq - last_checkpoint.as_ref().map_or(0, |cp| cp.event_seq),
            "audit trail has events after its last checkpoint (the gateway stopped without closing); they will be signed with the next checkpoint"
        );
    }
    Ok(Resumed {
        head,
        last_ts,
        last_checkpoint,
    })
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
}

impl Writer {
    fn run(mut self, inbox: Receiver<Request>) {
        loop {
            let wait = (self.last_checkpoint_at + self.policy.interval)
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
            self.commit(records);
            self.checkpoint_if_due();
            if let Some(reply) = close {
                reply.send(self.final_checkpoint());
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

    fn checkpoint_if_due(&mut self) {
        let unsigned = self.unsigned();
        let interval_passed = self.last_checkpoint_at.elapsed() >= self.policy.interval;
        if unsigned == 0 {
            if interval_passed {
                self.last_checkpoint_at = Instant::now();
            }
            return;
        }
        if unsigned >= self.policy.every || interval_passed {
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
        self.last_checkpoint = Some(cp);
        Ok(())
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
