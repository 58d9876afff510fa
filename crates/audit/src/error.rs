//! Everything that can go wrong with the audit trail, worded for the operator
//! who has to fix it.

use thiserror::Error;

/// An audit trail failure. Writers treat every one as "do not run the
/// command" (fail closed).
#[derive(Debug, Error)]
pub enum AuditError {
    /// A commit failed; the events of that transaction were not recorded and
    /// the chain is unchanged.
    #[error(
        "audit store at {path} is not writable: {reason}; the gateway refuses commands until it is"
    )]
    NotWritable {
        /// The store.
        path: String,
        /// What the store reported (disk full, I/O error, …).
        reason: String,
    },

    /// The store could not be opened or set up.
    #[error("cannot open the audit store at {path}: {reason}; check that its folder exists and this user may write to it")]
    Open {
        /// The store.
        path: String,
        /// What went wrong.
        reason: String,
    },

    /// There is no store at the path (reading only).
    #[error("there is no audit store at {path}; check the [audit] path, or start the gateway once to create it")]
    NotFound {
        /// The path looked at.
        path: String,
    },

    /// Reading the store failed.
    #[error("reading the audit store at {path} failed: {reason}")]
    Read {
        /// The store.
        path: String,
        /// What went wrong.
        reason: String,
    },

    /// A stored row cannot be decoded (wrong type, invalid JSON): the store
    /// was edited by hand or is corrupt.
    #[error("audit event {seq} cannot be read: {reason}; run `gatehouse audit verify`")]
    CorruptRow {
        /// The row's seq (or the expected one when unknown).
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// The writer found the chain broken when opening it and will not append
    /// to it: appending would sign over tampered history.
    #[error(
        "the audit trail at {path} is broken at event {seq}: {reason}; run `gatehouse audit verify`, \
         investigate, and move the store aside before starting the gateway again"
    )]
    Broken {
        /// The store.
        path: String,
        /// The first bad event.
        seq: u64,
        /// What is wrong.
        reason: String,
    },

    /// The log was closed (or its writer stopped); nothing more is recorded.
    #[error("the audit log is closed; the gateway refuses commands until it is reopened")]
    Closed,

    /// The signing key file is unusable.
    #[error("audit signing key {path}: {reason}")]
    SigningKey {
        /// The key file.
        path: String,
        /// What is wrong and what to do.
        reason: String,
    },

    /// The public key file is unusable.
    #[error("audit public key {path}: {reason}")]
    PublicKey {
        /// The key file.
        path: String,
        /// What is wrong and what to do.
        reason: String,
    },

    /// A filter value (time bound) is not understood.
    #[error("{0}")]
    InvalidFilter(String),

    /// Writing an export failed.
    #[error("writing the export failed: {0}")]
    Output(#[source] std::io::Error),
}
