//! The tamper-evident audit trail: the record an examiner relies on.
//!
//! Every auditable thing the gateway does (a session starting, a command and
//! its verdict, a result, a failed login) becomes one [`AuditEvent`]. Events
//! are appended to a store, never updated, and each one carries the hash of
//! the one before it. At intervals the writer appends a [`Checkpoint`]: a
//! statement, signed with the gateway's Ed25519 key, that "event N has hash
//! H". Anyone holding the public key can then check the whole record offline
//! ([`verify`], [`verify_jsonl`]) without trusting the gateway or its store.
//!
//! # What the chain proves, and what it does not
//!
//! * Editing any field of any event, deleting, inserting or reordering events
//!   breaks the hash chain at the first affected event.
//! * Rewriting events *and* recomputing every later hash is caught by the
//!   next signed checkpoint, whose signed head hash no longer matches.
//! * Deleting events from the end is caught when a checkpoint covers them.
//! * Events after the last checkpoint (the *unsigned tail*, reported by
//!   [`verify`]) are protected by the chain only. So verify also holds the
//!   tail to the checkpoint policy the newest checkpoint signed: on a
//!   stopped trail there must be none (a gateway signs a final checkpoint
//!   when it stops); on a live one (the writer holds its lock, see
//!   [`verify_with`]) at most `checkpoint_every` events, the oldest at most
//!   the checkpoint interval plus [`LIVE_GRACE`] old. Deleting checkpoints
//!   therefore fails verify, and the writer refuses to sign such a tail.
//! * Someone who deletes the newest checkpoint *and* every event after the
//!   one before it leaves a store that is consistent on its own. The writer
//!   also appends every checkpoint to an *anchor file* outside the store
//!   ([`AuditConfig::anchor_file`]); verify with the anchor fails when the
//!   store is behind it. Examiners should also keep the checkpoints they
//!   were given ([`export_checkpoints_jsonl`]).

//! # Event hash (format version 1)
//!
//! All integers are unsigned 64-bit big-endian (8 bytes). Every string field
//! is length-prefixed: `str(s) = u64(byte length of s) || UTF-8 bytes of s`.
//! An optional string is `0x00` when absent and `0x01 || str(s)` when present,
//! so "absent" and "empty" differ. Hashes are written as 64 lowercase hex
//! characters and hashed in that text form.
//!
//! ```text
//! hash(event) = hex(SHA-256(
//!     str("gatehouse.audit.event.v1")
//!     u64(seq)                  1 for the first event, then +1 without gaps
//!     str(prev_hash)            hash of event seq-1; 64 "0"s for event 1
//!     str(ts)                   e.g. "2025-01-31T09:15:02.123Z"
//!     str(kind)
//!     opt(session_id)
//!     opt(subject)
//!     opt(connection)
//!     str(canonical_json(data))
//! ))
//! ```
//!
//! `canonical_json` is RFC 8785 (JSON Canonicalization Scheme): no
//! whitespace, object keys sorted by UTF-16 code units, strings escaped only
//! where JSON requires it (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other
//! characters below U+0020 as `\u00XX` with lowercase hex; everything else
//! as raw UTF-8), non-integer numbers as ECMAScript prints them (`0.1`,
//! `1.5e-7`, `1e+21`, `2.0` becomes `2`). One extension: integers that fit
//! in 64 bits are written exactly in decimal (JCS agrees up to 2^53). See
//! [`canonical_json`]. The store keeps `data` in this canonical text, so the
//! stored bytes are exactly the hashed bytes.
//!
//! # Checkpoint (format version 2; version 1 still verifies)
//!
//! ```text
//! payload = str("gatehouse.audit.checkpoint.v2")
//!           u64(seq)            1 for the first checkpoint, then +1 without gaps
//!           u64(event_seq)      the last event this checkpoint covers
//!           str(event_hash)     that event's hash
//!           str(ts)
//!           str(prev_hash)      hash of checkpoint seq-1; 64 "0"s for the first
//!           u64(checkpoint_every)        the writer's policy: a checkpoint after
//!           u64(checkpoint_interval_ms)  at most this many events / this long
//! hash      = hex(SHA-256(payload))
//! signature = hex(Ed25519-sign(secret key, payload))   (RFC 8032, 64 bytes)
//! ```
//!
//! A version 1 checkpoint (written before gatehouse signed its policy) has
//! the domain `gatehouse.audit.checkpoint.v1` and stops after `prev_hash`;
//! its JSON form has no `checkpoint_every` / `checkpoint_interval_ms`.
//!
//! Checkpoints form their own chain through `prev_hash`, so deleting or
//! reordering a checkpoint is detected too. Each covers a strictly later event
//! than the one before it.

//! # Writing
//!
//! [`AuditLog::record`] puts the event in the chain and appends it to the
//! journal on the caller's task (one `write(2)` under a short lock), so it is
//! on record before the caller goes on and survives a gateway crash; in
//! [`Durability::Full`] the caller also waits for the fsync, which the
//! writes of every session waiting at that moment share. A failed write
//! (disk full) leaves the chain exactly as it was, so the caller can refuse
//! the command (fail closed). A writer thread indexes the journal into the
//! store in groups and signs checkpoints; a start indexes whatever a crash
//! left in the journal only. See the `journal` module for the design.

mod anchor;
mod canonical;
mod chain;
mod checkpoint;
mod error;
mod event;
mod export;
mod journal;
mod retention;
mod segment;
mod sessions;
mod signer;
mod store;
mod verify;
mod writer;

pub use canonical::canonical_json;
pub use chain::GENESIS_HASH;
pub use checkpoint::{Checkpoint, SignedPolicy};
pub use error::AuditError;
pub use event::{parse_time_bound, AuditEvent, NewEvent};
pub use export::{
    export_checkpoints_jsonl, export_jsonl, export_range_jsonl, last_checkpoint, last_event_seq,
    period_seq_range, read_checkpoints, ExportFilter, TrailReader,
};
pub use journal::{journal_dir, Recovery, DEFAULT_SYNC_WINDOW};
pub use retention::{prune, prune_records, PruneOutcome, PruneRecord, RetentionPolicy};
pub use segment::{
    verify_segment, verify_segment_jsonl, SegmentReport, SegmentStart, MAX_PROBLEMS,
};
pub use sessions::{list_sessions, session_events, SessionFilter, SessionSummary};
pub use signer::{
    key_fingerprint, load_verifying_key, parse_verifying_key, public_key_path,
    verify_manifest_signature, AuditSigner,
};
pub use store::{AuditStore, ChainHead, Durability, Journaled, SqliteStore, StoreError};
pub use verify::{
    verify, verify_jsonl, verify_with, AnchorReport, BadEvent, PolicyInForce, VerifyOptions,
    VerifyReport, LIVE_GRACE,
};
pub use writer::{AuditConfig, AuditLog, CheckpointPolicy, JournalOptions};

/// Re-exported so callers can name the key type [`verify`] takes without
/// depending on `ed25519-dalek` themselves.
pub use ed25519_dalek::VerifyingKey;
