//! Where events and checkpoints are kept, behind one trait so the embedded
//! SQLite store and a shared PostgreSQL store look the same to the writer.

mod sqlite;

pub(crate) use sqlite::{
    checkpoint_columns, decode_checkpoint_row, decode_event_row, open_read_only, read_error,
    EVENT_COLUMNS,
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
/// events or none) and durable when it returns (the writer deletes journal
/// segments on the strength of it), and must refuse a batch that does not
/// continue their current head, so two writers can never fork the chain.
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

    /// Commit one checkpoint.
    fn append_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), StoreError>;

    /// Up to `limit` events with `seq >= from_seq`, in seq order.
    fn read_events(&mut self, from_seq: u64, limit: usize) -> Result<Vec<AuditEvent>, StoreError>;

    /// Up to `limit` checkpoints with `seq >= from_seq`, in seq order.
    fn read_checkpoints(
        &mut self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Checkpoint>, StoreError>;
}
