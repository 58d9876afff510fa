//! Signed checkpoints: the writer's signed statement that "event N has hash
//! H", which makes rewriting history (even with recomputed hashes) and
//! truncating the trail detectable.

use crate::chain::{sha256_hex, Encoding, GENESIS_HASH};
use crate::signer::AuditSigner;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

const CHECKPOINT_DOMAIN_V1: &str = "gatehouse.audit.checkpoint.v1";
const CHECKPOINT_DOMAIN_V2: &str = "gatehouse.audit.checkpoint.v2";

/// The checkpoint policy a writer worked under, as a format 2 checkpoint
/// signs it: verify holds the unsigned tail to it, so editing the
/// configuration cannot relax what the trail promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPolicy {
    /// A checkpoint after at most this many events.
    pub every: u64,
    /// …and at most this long (milliseconds) after the first unsigned event.
    pub interval_ms: u64,
}

/// One signed checkpoint; also the JSONL format of
/// [`crate::export_checkpoints_jsonl`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// 1 for the first checkpoint, then +1 with no gaps.
    pub seq: u64,
    /// The last event this checkpoint covers.
    pub event_seq: u64,
    /// That event's hash, hex.
    pub event_hash: String,
    /// When it was signed (RFC 3339 UTC, milliseconds).
    pub ts: String,
    /// Hash of checkpoint `seq - 1` (64 zeros for the first), hex.
    pub prev_hash: String,
    /// SHA-256 of the signed payload, hex; the next checkpoint links to it.
    pub hash: String,
    /// Ed25519 signature over the payload, hex (128 characters).
    pub signature: String,
    /// Format 2: `checkpoint_every` of the writer that signed it (signed).
    /// Absent in format 1 checkpoints (written before gatehouse signed its
    /// policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<u64>,
    /// Format 2: the writer's checkpoint interval in milliseconds (signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_interval_ms: Option<u64>,
}

impl Checkpoint {
    /// Sign a format 2 checkpoint covering event `event_seq` whose hash is
    /// `event_hash`, linked to `previous` (None for the first checkpoint),
    /// stating the writer's `policy`.
    pub(crate) fn sign(
        signer: &AuditSigner,
        previous: Option<&Checkpoint>,
        event_seq: u64,
        event_hash: &str,
        ts: String,
        policy: SignedPolicy,
    ) -> Checkpoint {
        Checkpoint::sign_with(signer, previous, event_seq, event_hash, ts, Some(policy))
    }

    /// [`sign`](Self::sign), or a format 1 checkpoint when `policy` is None
    /// (kept for tests that build trails in the old format).
    #[doc(hidden)]
    pub fn sign_with(
        signer: &AuditSigner,
        previous: Option<&Checkpoint>,
        event_seq: u64,
        event_hash: &str,
        ts: String,
        policy: Option<SignedPolicy>,
    ) -> Checkpoint {
        let mut cp = Checkpoint {
            seq: previous.map_or(1, |p| p.seq + 1),
            event_seq,
            event_hash: event_hash.to_string(),
            ts,
            prev_hash: previous.map_or_else(|| GENESIS_HASH.to_string(), |p| p.hash.clone()),
            hash: String::new(),
            signature: String::new(),
            checkpoint_every: policy.map(|p| p.every),
            checkpoint_interval_ms: policy.map(|p| p.interval_ms),
        };
        let payload = cp.payload();
        cp.hash = sha256_hex(&payload);
        cp.signature = hex::encode(signer.sign(&payload).to_bytes());
        cp
    }

    /// The policy this checkpoint signed: None for a format 1 checkpoint.
    pub fn policy(&self) -> Option<SignedPolicy> {
        match (self.checkpoint_every, self.checkpoint_interval_ms) {
            (Some(every), Some(interval_ms)) => Some(SignedPolicy { every, interval_ms }),
            _ => None,
        }
    }

    /// The exact bytes that are hashed and signed (see the crate docs):
    /// format 2 when the checkpoint carries a policy, format 1 otherwise.
    /// A checkpoint with only one of the two policy fields gets a format 2
    /// payload with the other as 0, so it can never verify.
    pub fn payload(&self) -> Vec<u8> {
        let v2 = self.checkpoint_every.is_some() || self.checkpoint_interval_ms.is_some();
        let mut enc = Encoding::new(if v2 {
            CHECKPOINT_DOMAIN_V2
        } else {
            CHECKPOINT_DOMAIN_V1
        });
        enc.u64(self.seq)
            .u64(self.event_seq)
            .str(&self.event_hash)
            .str(&self.ts)
            .str(&self.prev_hash);
        if v2 {
            enc.u64(self.checkpoint_every.unwrap_or(0))
                .u64(self.checkpoint_interval_ms.unwrap_or(0));
        }
        enc.bytes().to_vec()
    }

    /// Check the signature and the stored hash against the payload. The
    /// error says in plain words which one failed.
    pub fn check_signature(&self, key: &VerifyingKey) -> Result<(), String> {
        let payload = self.payload();
        let signature = hex::decode(&self.signature)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .ok_or_else(|| {
                "its signature is not a 64-byte hex Ed25519 signature: it was edited".to_string()
            })?;
        if key.verify(&payload, &signature).is_err() {
            return Err("its signature does not verify with the given public key: the checkpoint was forged or \
                        edited, or this is not the key the trail was signed with"
                .to_string());
        }
        if sha256_hex(&payload) != self.hash {
            return Err(
                "its stored hash does not match its signed content: the hash column was edited"
                    .to_string(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: SignedPolicy = SignedPolicy {
        every: 1000,
        interval_ms: 60_000,
    };

    /// The first checkpoint: event 10 (hash `a`×64), signed under `POLICY`.
    fn first(signer: &AuditSigner) -> Checkpoint {
        Checkpoint::sign(
            signer,
            None,
            10,
            &"a".repeat(64),
            "2025-01-01T00:00:00.000Z".into(),
            POLICY,
        )
    }

    #[test]
    fn signed_checkpoints_verify_and_chain() {
        let signer = AuditSigner::ephemeral();
        let first = first(&signer);
        let second = Checkpoint::sign(
            &signer,
            Some(&first),
            20,
            &"b".repeat(64),
            "2025-01-01T00:01:00.000Z".into(),
            POLICY,
        );
        assert_eq!((first.seq, first.prev_hash.as_str()), (1, GENESIS_HASH));
        assert_eq!((second.seq, &second.prev_hash), (2, &first.hash));
        first.check_signature(&signer.verifying_key()).unwrap();
        second.check_signature(&signer.verifying_key()).unwrap();
    }

    #[test]
    fn any_edit_or_other_key_fails() {
        let signer = AuditSigner::ephemeral();
        let cp = first(&signer);
        let key = signer.verifying_key();

        let mut edited = cp.clone();
        edited.event_seq = 9;
        assert!(edited
            .check_signature(&key)
            .unwrap_err()
            .contains("does not verify"));

        let mut edited = cp.clone();
        edited.hash = "c".repeat(64);
        assert!(edited
            .check_signature(&key)
            .unwrap_err()
            .contains("stored hash"));

        let mut edited = cp.clone();
        edited.signature = "zz".into();
        assert!(edited
            .check_signature(&key)
            .unwrap_err()
            .contains("not a 64-byte"));

        let other = AuditSigner::ephemeral().verifying_key();
        assert!(cp
            .check_signature(&other)
            .unwrap_err()
            .contains("not the key"));
    }

    #[test]
    fn the_policy_is_signed_and_format_1_still_verifies() {
        let signer = AuditSigner::ephemeral();
        let key = signer.verifying_key();
        let cp = first(&signer);
        assert_eq!(cp.policy(), Some(POLICY));
        let mut relaxed = cp.clone();
        relaxed.checkpoint_every = Some(1_000_000);
        assert!(relaxed.check_signature(&key).is_err());
        let mut stripped = cp.clone();
        stripped.checkpoint_every = None;
        stripped.checkpoint_interval_ms = None;
        assert!(
            stripped.check_signature(&key).is_err(),
            "a format 2 checkpoint cannot pass as format 1"
        );

        let old = Checkpoint::sign_with(
            &signer,
            None,
            10,
            &"a".repeat(64),
            "2025-01-01T00:00:00.000Z".into(),
            None,
        );
        old.check_signature(&key).unwrap();
        assert_eq!(old.policy(), None);
        let json = serde_json::to_string(&old).unwrap();
        assert!(!json.contains("checkpoint_every"), "{json}");
        let back: Checkpoint = serde_json::from_str(&json).unwrap();
        assert_eq!(back, old);
    }
}
