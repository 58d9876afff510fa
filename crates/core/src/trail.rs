//! The audit trail's text: what may be stored, and where the originals go.
//!
//! Principle 3 says the log never holds what the client was not allowed to
//! see, and PCI DSS says a card number is unreadable wherever it is stored.
//! Two layers keep clear values out of the trail, written once here so
//! every adapter gets them:
//!
//! - [`crate::pipeline::Pipeline::mask_for_trail`] masks a command's text
//!   knowing who sent it: column rules on SQL literals for that caller, then
//!   the content detectors (see `mask::trail`). `record_command` uses it.
//! - [`TrailRecorder`] wraps the recorder and runs the content detectors
//!   over every string of every event before it is stored: SSH exec
//!   commands and typed lines, SFTP paths, HTTP request lines, queries and
//!   bodies, LLM prompts and messages, error texts of `command.result`,
//!   whatever a new producer adds. Identity fields (who did what) are left
//!   readable: they are the point of an audit trail.
//! - [`TrailApprovals`] wraps the approval broker so approvers see the same
//!   masked text as the trail: an approver is not necessarily allowed to
//!   see the PII in the command either. The adapter keeps the original and
//!   runs it once approved; only the text shown and stored is masked.
//!
//! Where the trail changed a text and `[audit] seal_originals_to` is set,
//! the originals are sealed to the investigator's key in the same event
//! (`sealed_originals`, or `sealed_text_originals` when the event already
//! seals result cells), so an investigation can still read what was typed.
//! The gateway cannot open them.

use crate::approval::{ApprovalBroker, HeldCommand, HoldError, OpenedRequest, Outcome};
use crate::mask::{MaskCounts, Masker, TrailKind};
use crate::pipeline::{BoxFuture, EventRecord, Recorder};
use crate::policy::Policy;
use std::sync::Arc;

/// Encrypts originals to an investigator's public key (see
/// `gatehouse-seal`): plaintext in, sealed (armored) text out.
#[derive(Clone)]
pub struct OriginalsSealer(pub Arc<SealFn>);

/// Plaintext in, sealed text out.
pub type SealFn = dyn Fn(&[u8]) -> String + Send + Sync;

impl std::fmt::Debug for OriginalsSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OriginalsSealer")
    }
}

/// Event data keys the trail guard leaves alone: sealed envelopes, its own
/// tally, and identities (subjects and work emails of requesters, approvers
/// and grant holders, which an audit trail exists to show).
pub const UNMASKED_KEYS: &[&str] = &[
    "sealed_originals",
    "sealed_text_originals",
    "trail_masked",
    "identity",
    "requester",
    "approver",
    "decisions",
    "holder",
    "revoked_by",
    "by",
    "user",
    "client_addr",
];

/// Mask every string of `event.data` with the detectors (see the module
/// doc); returns what was masked. With a sealer, the changed strings'
/// originals are sealed into the event.
pub fn guard_event(
    masker: &Masker,
    sealer: Option<&OriginalsSealer>,
    event: &mut EventRecord,
) -> MaskCounts {
    let mut counts = MaskCounts::default();
    let mut originals = Vec::new();
    masker.mask_json_for_trail(&mut event.data, UNMASKED_KEYS, &mut counts, &mut originals);
    if originals.is_empty() {
        return counts;
    }
    if let Some(obj) = event.data.as_object_mut() {
        let mut total = obj
            .get("trail_masked")
            .and_then(|v| serde_json::from_value::<MaskCounts>(v.clone()).ok())
            .unwrap_or_default();
        total.merge(&counts);
        obj.insert(
            "trail_masked".into(),
            serde_json::to_value(&total).unwrap_or_default(),
        );
        if let Some(sealer) = sealer {
            let fields: serde_json::Map<String, serde_json::Value> = originals
                .into_iter()
                .map(|(pointer, original)| (pointer, original.into()))
                .collect();
            let plain = serde_json::json!({"event": event.kind, "fields": fields});
            let key = if obj.contains_key("sealed_originals") {
                "sealed_text_originals"
            } else {
                "sealed_originals"
            };
            obj.insert(key.into(), (sealer.0)(plain.to_string().as_bytes()).into());
        }
    }
    counts
}

/// A recorder that masks every event's text before the inner recorder
/// stores it (see the module doc).
pub struct TrailRecorder {
    inner: Arc<dyn Recorder>,
    masker: Arc<Masker>,
    sealer: Option<OriginalsSealer>,
}

impl TrailRecorder {
    /// Guard `inner` with `masker`'s detectors, sealing originals with
    /// `sealer` when set.
    pub fn new(
        inner: Arc<dyn Recorder>,
        masker: Arc<Masker>,
        sealer: Option<OriginalsSealer>,
    ) -> TrailRecorder {
        TrailRecorder {
            inner,
            masker,
            sealer,
        }
    }
}

impl Recorder for TrailRecorder {
    fn record(
        &self,
        mut event: EventRecord,
    ) -> BoxFuture<'_, Result<u64, crate::pipeline::RecordError>> {
        guard_event(&self.masker, self.sealer.as_ref(), &mut event);
        self.inner.record(event)
    }
}

/// An approval broker whose requests show the command masked the way the
/// trail stores it (column rules for the requester, then detectors).
pub struct TrailApprovals {
    inner: Arc<dyn ApprovalBroker>,
    masker: Arc<Masker>,
    policy: Arc<Policy>,
}

impl TrailApprovals {
    /// Wrap `inner`.
    pub fn new(
        inner: Arc<dyn ApprovalBroker>,
        masker: Arc<Masker>,
        policy: Arc<Policy>,
    ) -> TrailApprovals {
        TrailApprovals {
            inner,
            masker,
            policy,
        }
    }
}

/// `text` as the trail keeps it for `identity` on `connection`: column
/// rules active for the caller on SQL literals, then the detectors.
pub fn mask_text(
    masker: &Masker,
    policy: &Policy,
    identity: &crate::Identity,
    connection: &str,
    text: &str,
    kind: TrailKind,
) -> (String, MaskCounts) {
    let lookup = |column: &str| {
        policy
            .trail_column_mask(identity, connection, column)
            .map(|m| (m.strategy, m.entity))
    };
    let masked = masker.mask_for_trail(text, kind, &lookup);
    (masked.text.into_owned(), masked.counts)
}

impl ApprovalBroker for TrailApprovals {
    fn open(&self, mut held: HeldCommand) -> BoxFuture<'_, Result<OpenedRequest, HoldError>> {
        let (command, _) = mask_text(
            &self.masker,
            &self.policy,
            &held.requester,
            &held.connection,
            &held.command,
            TrailKind::for_protocol(&held.protocol),
        );
        held.command = command;
        self.inner.open(held)
    }

    fn wait(&self, id: u64) -> BoxFuture<'_, Outcome> {
        self.inner.wait(id)
    }

    fn withdraw(&self, id: u64, why: &str) -> BoxFuture<'_, ()> {
        self.inner.withdraw(id, why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{MaskerConfig, Strategy, TokenizeKey, DETECTABLE};

    fn masker() -> Masker {
        let mut strategies = std::collections::HashMap::new();
        strategies.insert(
            crate::mask::EntityType::Ssn,
            Strategy::Partial { keep_last: 4 },
        );
        Masker::new(MaskerConfig {
            detectors: DETECTABLE.to_vec(),
            strategies,
            default_strategy: Strategy::Redact,
            tokenize_key: TokenizeKey::new(b"k".to_vec()),
        })
    }

    fn event(data: serde_json::Value) -> EventRecord {
        EventRecord {
            kind: "command",
            session_id: None,
            subject: Some("jo".into()),
            connection: Some("host".into()),
            data,
        }
    }

    #[test]
    fn the_guard_masks_text_keeps_identities_and_seals_originals() {
        let sealer = OriginalsSealer(Arc::new(|plain: &[u8]| {
            format!("SEALED[{}]", String::from_utf8_lossy(plain).len())
        }));
        let mut e = event(serde_json::json!({
            "command": "grep 536-22-1457 /srv/export.csv",
            "identity": {"subject": "jo", "email": "jo@example.com"},
            "error": "no card 4111 1111 1111 1111",
        }));
        let counts = guard_event(&masker(), Some(&sealer), &mut e);
        assert_eq!(counts.total(), 2);
        assert_eq!(e.data["command"], "grep ***-**-1457 /srv/export.csv");
        assert_eq!(e.data["error"], "no card [REDACTED:card_number]");
        assert_eq!(e.data["identity"]["email"], "jo@example.com");
        assert_eq!(e.data["trail_masked"]["ssn"], 1);
        assert!(e.data["sealed_originals"]
            .as_str()
            .is_some_and(|s| s.starts_with("SEALED[")));
        let stored = e.data.to_string();
        assert!(!stored.contains("536-22-1457") && !stored.contains("4111 1111"));

        // An event that already seals result cells keeps them; the text's
        // originals go beside them.
        let mut e = event(serde_json::json!({
            "sealed_originals": "CELLS",
            "error": "ssn 536-22-1457 exists",
        }));
        guard_event(&masker(), Some(&sealer), &mut e);
        assert_eq!(e.data["sealed_originals"], "CELLS");
        assert!(e.data["sealed_text_originals"].is_string());

        // Nothing to mask: the event is left exactly as it was.
        let data = serde_json::json!({"command": "ls -l", "n": 123456789012u64});
        let mut e = event(data.clone());
        assert!(guard_event(&masker(), Some(&sealer), &mut e).is_empty());
        assert_eq!(e.data, data);
    }
}
