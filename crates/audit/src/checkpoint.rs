//! Signed checkpoints: the writer's signed statement that "event N has hash
//! H", which makes rewriting history (even with recomputed hashes) and
//! truncating the trail detectable.

use crate::chain::{sha256_hex, Encoding, GENESIS_HASH};
use crate::signer::AuditSigner;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

const CHECKPOINT_DOMAIN: &str = "gatehouse.audit.checkpoint.v1";

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
}

impl Checkpoint {
    /// Sign a checkpoint covering event `event_seq` whose hash is
    /// `event_hash`, linked to `previous` (None for the first checkpoint).
    pub(crate) fn sign(
        signer: &AuditSigner,
        previous: Option<&Checkpoint>,
        event_seq: u64,
        event_hash: &str,
        ts: String,
    ) -> Checkpoint {
        let mut cp = Checkpoint {
            seq: previous.map_or(1, |p| p.seq + 1),
            event_seq,
            event_hash: event_hash.to_string(),
            ts,
            prev_hash: previous.map_or_else(|| GENESIS_HASH.to_string(), |p| p.hash.clone()),
            hash: String::new(),
            signature: String::new(),
        };
        let payload = cp.payload();
        cp.hash = sha256_hex(&payload);
        cp.signature = hex::encode(signer.sign(&payload).to_bytes());
        cp
    }

    /// The exact bytes that are hashed and signed (see the crate docs).
    pub fn payload(&self) -> Vec<u8> {
        let mut enc = Encoding::new(CHECKPOINT_DOMAIN);
        enc.u64(self.seq)
            .u64(self.event_seq)
            .str(&self.event_hash)
            .str(&self.ts)
            .str(&self.prev_hash);
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

    #[test]
    fn signed_checkpoints_verify_and_chain() {
        let signer = AuditSigner::ephemeral();
        let first = Checkpoint::sign(
            &signer,
            None,
            10,
            &"a".repeat(64),
            "2025-01-01T00:00:00.000Z".into(),
        );
        let second = Checkpoint::sign(
            &signer,
            Some(&first),
            20,
            &"b".repeat(64),
            "2025-01-01T00:01:00.000Z".into(),
        );
        assert_eq!((first.seq, first.prev_hash.as_str()), (1, GENESIS_HASH));
        assert_eq!((second.seq, &second.prev_hash), (2, &first.hash));
        first.check_signature(&signer.verifying_key()).unwrap();
        second.check_signature(&signer.verifying_key()).unwrap();
    }

    #[test]
    fn any_edit_or_other_key_fails() {
        let signer = AuditSigner::ephemeral();
        let cp = Checkpoint::sign(
            &signer,
            None,
            10,
            &"a".repeat(64),
            "2025-01-01T00:00:00.000Z".into(),
        );
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
}
