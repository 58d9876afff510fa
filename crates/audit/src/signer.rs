//! The checkpoint signing key: kept in one 0600 file next to the store, with
//! its public half written beside it for examiners.

use crate::error::AuditError;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The gateway's checkpoint signing key. Its secret never leaves this struct
/// (not in `Debug`, not in errors).
pub struct AuditSigner {
    key: SigningKey,
}

impl fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSigner")
            .field(
                "public_key",
                &hex::encode(self.key.verifying_key().as_bytes()),
            )
            .finish()
    }
}

/// Where the public key of the signing key at `signing_key_path` lives:
/// the same path with `.pub` appended (`audit.key` → `audit.key.pub`).
pub fn public_key_path(signing_key_path: &Path) -> PathBuf {
    let mut name = signing_key_path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

impl AuditSigner {
    /// Load the key at `path` (PKCS#8 PEM), or create one there with mode
    /// 0600 on first start. Either way, (re)write the public key to
    /// [`public_key_path`] as SPKI PEM (`-----BEGIN PUBLIC KEY-----`) so it
    /// always matches the secret.
    pub fn load_or_create(path: &Path) -> Result<AuditSigner, AuditError> {
        let fail = |reason: String| AuditError::SigningKey {
            path: path.display().to_string(),
            reason,
        };
        let signer = if path.exists() {
            warn_if_shared(path);
            let pem = std::fs::read_to_string(path).map_err(|e| {
                fail(format!(
                    "cannot be read ({e}); check its owner and permissions"
                ))
            })?;
            let key = SigningKey::from_pkcs8_pem(&pem).map_err(|_| {
                fail("is not an Ed25519 PKCS#8 PEM private key; restore it from backup (a new key cannot sign \
                      for the existing trail)"
                    .to_string())
            })?;
            AuditSigner { key }
        } else {
            let signer = AuditSigner::ephemeral();
            let pem = signer
                .key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| fail(format!("cannot be encoded: {e}")))?;
            write_private(path, pem.as_bytes()).map_err(|e| {
                fail(format!(
                    "cannot be created ({e}); check that its folder exists and is writable"
                ))
            })?;
            tracing::info!(path = %path.display(), "created a new audit signing key");
            signer
        };
        signer.write_public_key(&public_key_path(path))?;
        Ok(signer)
    }

    /// Load an existing key (PKCS#8 PEM) without ever creating one: for
    /// tools that sign on the trail's behalf (evidence packs), where a new
    /// key would be worthless.
    pub fn load(path: &Path) -> Result<AuditSigner, AuditError> {
        let fail = |reason: String| AuditError::SigningKey {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read_to_string(path).map_err(|e| {
            fail(format!(
                "cannot be read ({e}); run this on the gateway's host with the configuration it runs with                  ([audit] signing_key), as a user that may read the key"
            ))
        })?;
        let key = SigningKey::from_pkcs8_pem(&pem)
            .map_err(|_| fail("is not an Ed25519 PKCS#8 PEM private key".to_string()))?;
        Ok(AuditSigner { key })
    }

    /// Sign an evidence pack's manifest (its exact bytes). The signed
    /// message is domain-separated from checkpoints, so a manifest
    /// signature can never pass as a checkpoint signature or the reverse:
    ///
    /// ```text
    /// message   = str("gatehouse.evidence.manifest.v1") || str(manifest bytes)
    /// signature = hex(Ed25519-sign(secret key, message))
    /// ```
    pub fn sign_manifest(&self, manifest: &[u8]) -> String {
        hex::encode(self.key.sign(&manifest_message(manifest)).to_bytes())
    }

    /// A fresh key that lives only in memory: for tests and for stores whose
    /// key is managed elsewhere.
    pub fn ephemeral() -> AuditSigner {
        AuditSigner {
            key: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// The key checkpoints verify with.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The public key as SPKI PEM, for handing to an examiner.
    pub fn public_key_pem(&self) -> String {
        // Encoding a valid 32-byte key into SPKI cannot fail; fall back to
        // hex (which `load_verifying_key` also accepts) rather than panic.
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_else(|_| hex::encode(self.key.verifying_key().as_bytes()))
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        self.key.sign(message)
    }

    fn write_public_key(&self, pub_path: &Path) -> Result<(), AuditError> {
        let pem = self.public_key_pem();
        if std::fs::read_to_string(pub_path).is_ok_and(|existing| existing == pem) {
            return Ok(());
        }
        // Public, but kept owner-only like the rest of the state folder;
        // whoever needs it (an examiner) is given a copy.
        write_private(pub_path, pem.as_bytes()).map_err(|e| AuditError::PublicKey {
            path: pub_path.display().to_string(),
            reason: format!("cannot be written ({e}); check that its folder is writable"),
        })
    }
}

/// Load the key that verifies checkpoints: the `.pub` file (SPKI PEM), or 64
/// hex characters (the raw 32-byte key).
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, AuditError> {
    let fail = |reason: &str| AuditError::PublicKey {
        path: path.display().to_string(),
        reason: reason.to_string(),
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(&format!("cannot be read ({e}); pass the public key file the gateway wrote next to its signing key"))
    })?;
    parse_verifying_key(&text).ok_or_else(|| {
        fail("is not an Ed25519 public key: expected a PEM `PUBLIC KEY` block or 64 hex characters")
    })
}

/// Check a manifest signature made by [`AuditSigner::sign_manifest`]; the
/// error says in plain words what is wrong.
pub fn verify_manifest_signature(
    key: &VerifyingKey,
    manifest: &[u8],
    signature_hex: &str,
) -> Result<(), String> {
    let signature = hex::decode(signature_hex.trim())
        .ok()
        .and_then(|bytes| Signature::from_slice(&bytes).ok())
        .ok_or_else(|| {
            "the signature file does not hold a 64-byte hex Ed25519 signature".to_string()
        })?;
    key.verify_strict(&manifest_message(manifest), &signature)
        .map_err(|_| {
            "the manifest's signature does not verify with the given public key: the manifest or its signature \
             was altered, or this is not the gateway's key"
                .to_string()
        })
}

fn manifest_message(manifest: &[u8]) -> Vec<u8> {
    let mut enc = crate::chain::Encoding::new("gatehouse.evidence.manifest.v1");
    enc.u64(manifest.len() as u64);
    let mut out = enc.bytes().to_vec();
    out.extend_from_slice(manifest);
    out
}

/// The public key's fingerprint, for people to compare keys by eye:
/// `SHA256:` and the hex SHA-256 of the raw 32-byte key.
pub fn key_fingerprint(key: &VerifyingKey) -> String {
    format!("SHA256:{}", crate::chain::sha256_hex(key.as_bytes()))
}

/// Parse a public key given as text: a PEM `PUBLIC KEY` block or 64 hex
/// characters.
pub fn parse_verifying_key(text: &str) -> Option<VerifyingKey> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return VerifyingKey::from_public_key_pem(text).ok();
    }
    let bytes: [u8; 32] = hex::decode(text).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// Write a secret atomically with owner-only permissions: a temporary file
/// created 0600, synced, then renamed into place, so a crash never leaves a
/// half-written key.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = public_key_path(path).with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "the audit signing key is readable by other users; run chmod 600 on it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_loads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/audit.key");
        let first = AuditSigner::load_or_create(&path).unwrap();
        let second = AuditSigner::load_or_create(&path).unwrap();
        assert_eq!(first.verifying_key(), second.verifying_key());
        let from_pub = load_verifying_key(&public_key_path(&path)).unwrap();
        assert_eq!(from_pub, first.verifying_key());
        assert_eq!(
            public_key_path(&path),
            dir.path().join("keys/audit.key.pub")
        );
    }

    #[cfg(unix)]
    #[test]
    fn secret_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        AuditSigner::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn public_key_accepts_pem_and_hex_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let signer = AuditSigner::ephemeral();
        let hex_path = dir.path().join("k.hex");
        std::fs::write(
            &hex_path,
            format!("{}\n", hex::encode(signer.verifying_key().as_bytes())),
        )
        .unwrap();
        assert_eq!(
            load_verifying_key(&hex_path).unwrap(),
            signer.verifying_key()
        );

        let bad = dir.path().join("k.bad");
        std::fs::write(&bad, "not a key").unwrap();
        let err = load_verifying_key(&bad).unwrap_err().to_string();
        assert!(err.contains("PUBLIC KEY"), "{err}");

        let missing = load_verifying_key(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("cannot be read"), "{missing}");
    }

    #[test]
    fn a_corrupt_secret_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        std::fs::write(&path, "garbage").unwrap();
        let err = AuditSigner::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("restore it from backup"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "garbage");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let signer = AuditSigner::ephemeral();
        let shown = format!("{signer:?}");
        assert!(!shown.contains(&hex::encode(signer.key.to_bytes())));
    }
}
