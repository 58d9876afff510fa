//! Events of the gateway's own life: start, stop, the policy in force, a
//! recovery after a crash, a reveal of sealed originals.

use crate::identity::Identity;
use serde::{Deserialize, Serialize};

/// `gateway.start`: recorded before any listener takes a connection.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GatewayStart {
    /// The gateway's version.
    #[serde(default)]
    pub version: Option<String>,
    /// The fingerprint of the key that signs checkpoints.
    #[serde(default)]
    pub signing_key_fingerprint: Option<String>,
    /// Where the chain's head is anchored.
    #[serde(default)]
    pub anchor_file: Option<String>,
    /// A checkpoint is signed every this many events...
    #[serde(default)]
    pub checkpoint_every: Option<u64>,
    /// ...or this many seconds.
    #[serde(default)]
    pub checkpoint_interval_secs: Option<u64>,
}

/// `gateway.stop`: recorded before the closing checkpoint signs it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GatewayStop {
    /// The gateway's version.
    #[serde(default)]
    pub version: Option<String>,
    /// Why it stopped.
    #[serde(default)]
    pub reason: String,
}

/// `policy.loaded`: the configuration in force from then on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PolicyLoaded {
    /// `start`, `reload`.
    #[serde(default)]
    pub reason: String,
    /// SHA-256 of the configuration file as read.
    #[serde(default)]
    pub sha256: String,
    /// SHA-256 of `text`.
    #[serde(default)]
    pub text_sha256: Option<String>,
    /// How many inline secrets `text` leaves out.
    #[serde(default)]
    pub excluded: u64,
    /// The configuration, inline secrets excluded.
    #[serde(default)]
    pub text: String,
    /// The file it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `audit.recovered`: the trail was not closed last time (a crash); what
/// the start-up found and signed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditRecovered {
    /// Events the store held unsigned or the journal held beyond it.
    #[serde(default)]
    pub unsigned_events: u64,
    /// Of those, events replayed from the journal into the store.
    #[serde(default)]
    pub replayed_from_journal: u64,
    /// Bytes of a torn last write that were cut.
    #[serde(default)]
    pub torn_bytes_cut: u64,
}

/// `sealed.revealed`: an auditor took the sealed originals of an event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedRevealed {
    /// The event whose originals were handed out.
    pub event_seq: u64,
    /// The auditor's justification.
    #[serde(default)]
    pub reason: String,
    /// Who took them.
    pub by: Identity,
}
