//! Evidence packs for examiners.
//!
//! `gatehouse evidence --from DATE --to DATE --out DIR` writes a folder an
//! examiner can check offline with nothing but the folder and the gateway's
//! public key:
//!
//! * `events.jsonl` and `checkpoints.jsonl`: the *segment* of the audit chain
//!   that covers the period, widened so that it starts right after a signed
//!   checkpoint (or at event 1) and ends at a signed checkpoint, so both ends
//!   are anchored by signatures ([`plan_segment`]);
//! * `sessions/<id>.jsonl` and `.html`: each session's events (byte for byte
//!   the lines of `events.jsonl`) and a readable timeline;
//! * `report.html`: the report for people (summary, charts, access trail by
//!   identity, sessions, approvals, blocked attempts, masking, grants,
//!   refused sign-ins, chain verification), self-contained and printable;
//! * `control-map.html` and `.json`: each artifact mapped to FFIEC, NIST CSF
//!   2.0 and PCI DSS 4.0.1 requirement 10, stating what it shows;
//! * `recordings/<file>` and `.html`: the period's terminal recordings
//!   (asciicast, masked, each bound to the chain by the SHA-256 its
//!   `recording` event carries) with an offline player page each;
//! * `summary.json`: the figures behind the report;
//! * `SPEC.md`: every format and check, to verify without Gatehouse;
//! * `manifest.json`, signed in `manifest.sig` with the same Ed25519 key that
//!   signs checkpoints: every file's size and SHA-256.
//!
//! [`verify_pack`] checks all of it and names every problem.

mod charts;
mod controls;
mod facts;
mod html;
mod pack;
mod report;
mod verify;

pub use controls::{artifacts, control_map_json, Artifact, Reference, DISCLAIMER};
pub use facts::Facts;
pub use pack::{
    files, plan_segment, write_pack, write_pack_with, FileEntry, KeyInfo, Manifest, PackOptions,
    PackSummary, Period, RecordingEntry, Segment, SegmentPlan, SessionEntry, FORMAT, SPEC_TEXT,
};
pub use report::period_text;
pub use verify::{verify_pack, Check, PackVerification};

/// What can stop a pack from being written or read.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The audit trail could not be read.
    #[error(transparent)]
    Audit(#[from] gatehouse_audit::AuditError),
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A request that cannot be met, with what to do instead.
    #[error("{0}")]
    Invalid(String),
    /// JSON (de)serialization failed.
    #[error("JSON: {0}")]
    Json(String),
}

impl EvidenceError {
    pub(crate) fn json(e: serde_json::Error) -> Self {
        EvidenceError::Json(e.to_string())
    }
}
