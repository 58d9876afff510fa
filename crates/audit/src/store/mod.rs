//! Where events and checkpoints are kept, behind one trait so the embedded
//! SQLite store and a shared PostgreSQL store look the same to the writer.

mod sqlite;

pub(crate) use sqlite::{
    checkpoint_columns, decode_checkpoint_row, decode_event_row, open_read_only, read_error,
    read_event_row, StoredEvent, EVENT_COLUMNS,
};
pub use sqlite::{Durability, SqliteStore};

use crate::checkpoint::Checkpoint;
use crate::event::AuditEvent;

/// A store's own failure, as text: the writer adds which store it was and
/// what that means for the gateway.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// An event as the journal wrote it, with its `data` in the canonical text
/// the hash covers, so the store need not build it again.
#[derive(Debug, Clone)]
pub struct Journaled {
    /// The event.
    pub event: AuditEvent,
    /// `canonical_json(&event.data)`.
    pub data_text: String,
}

impl Journaled {
    /// Wrap `event`, building its canonical text.
    pub fn new(event: AuditEvent) -> Journaled {
        let data_text = crate::canonical_json(&event.data);
        Journaled { event, data_text }
    }
}

/// The last committed event: what the next event links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// Its seq.
    pub seq: u64,
    /// Its hash, hex.
    pub hash: String,
}

/// Append-only storage for the trail. Only the writer thread calls it, so
/// implementations need `Send` but not `Sync`.
///
/// Implementations must make [`append_batch`](Self::append_batch) atomic (all
/// events or none), everything committed durable by
/// [`make_durable`](Self::make_durable) (the writer deletes journal segments
/// and copies checkpoints to the anchor on the strength of it), and must
/// refuse a batch that does not continue their current head, so two
/// writers can never fork the chain.
pub trait AuditStore: Send {
    /// Names the store in errors (a file path, a database URL without
    /// credentials).
    fn location(&self) -> String;

    /// The last committed event, or None when the trail is empty.
    fn head(&mut self) -> Result<Option<ChainHead>, StoreError>;

    /// The last committed checkpoint, if any.
    fn last_checkpoint(&mut self) -> Result<Option<Checkpoint>, StoreError>;

    /// Commit `events` (consecutive, already hashed) in one transaction, or
    /// none of them.
    fn append_batch(&mut self, events: &[AuditEvent]) -> Result<(), StoreError>;

    /// [`append_batch`](Self::append_batch) for events as the journal wrote
    /// them; a store that keeps `data` as canonical text uses it as is.
    fn append_journaled(&mut self, batch: &[Journaled]) -> Result<(), StoreError> {
        let events: Vec<AuditEvent> = batch.iter().map(|j| j.event.clone()).collect();
        self.append_batch(&events)
    }

    /// Commit one checkpoint.
    fn append_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), StoreError>;

    /// Make everything committed so far survive a power loss. A store that
    /// is durable at each commit has nothing to do.
    fn make_durable(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Up to `limit` events with `seq >= from_seq`, in seq order.
    fn read_events(&mut self, from_seq: u64, limit: usize) -> Result<Vec<AuditEvent>, StoreError>;

    /// Up to `limit` checkpoints with `seq >= from_seq`, in seq order.
    fn read_checkpoints(
        &mut self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Checkpoint>, StoreError>;
}
