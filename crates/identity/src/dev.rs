//! The embedded dev issuer: a local stand-in for an identity provider.
//!
//! For demos and first runs the gateway mints its own tokens (`gatehouse
//! token issue`) with an Ed25519 key kept next to its data. The validator
//! trusts that key in-process, with the same checks as for any issuer; the
//! discovery and JWKS documents exist so other tools can verify the tokens
//! the standard way.

use std::fs;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore as _;
use serde_json::{json, Value};

use crate::config::{check_url, UrlProblem};
use crate::error::IdentityError;
use crate::jwks::KeySet;

/// The audience dev tokens are minted for and checked against.
pub const DEV_AUDIENCE: &str = "gatehouse";

/// File name of the dev issuer's private key inside its directory.
pub const DEV_KEY_FILE: &str = "dev-issuer.key";

/// A local issuer with a persistent Ed25519 signing key.
pub struct DevIssuer {
    issuer: String,
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl std::fmt::Debug for DevIssuer {
    /// Shows the issuer and key id only; the private key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl DevIssuer {
    /// Loads `dir/dev-issuer.key`, creating the directory and a new key
    /// (mode 0600) on first run, so tokens survive gateway restarts.
    pub fn load_or_create(dir: &Path, issuer_url: &str) -> Result<DevIssuer, IdentityError> {
        crate::ensure_crypto_provider();
        // Any http(s) URL will do: the validator trusts this key in-process,
        // so the URL is an identifier, never fetched by the gateway itself.
        if let Err(UrlProblem::Invalid(reason)) = check_url("issuer", issuer_url, true) {
            return Err(IdentityError::InvalidIssuerUrl {
                issuer: issuer_url.to_owned(),
                reason,
            });
        }
        fs::create_dir_all(dir).map_err(|source| IdentityError::DevKeyIo {
            path: dir.to_owned(),
            action: "creating the directory",
            source,
        })?;
        let path = dir.join(DEV_KEY_FILE);
        let signing = match read_key(&path)? {
            Some(key) => key,
            None => create_key(&path)?,
        };
        DevIssuer::from_signing_key(&signing, issuer_url, &path)
    }

    fn from_signing_key(
        signing: &SigningKey,
        issuer: &str,
        path: &Path,
    ) -> Result<DevIssuer, IdentityError> {
        let der = signing
            .to_pkcs8_der()
            .map_err(|_| IdentityError::DevKeyInvalid {
                path: path.to_owned(),
            })?;
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
        let public: Jwk = serde_json::from_value(json!({"kty": "OKP", "crv": "Ed25519", "x": x}))
            .map_err(|e| IdentityError::Signing(e.to_string()))?;
        // RFC 7638 thumbprint: stable for the key, different for any other.
        let kid = public
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| IdentityError::Signing(e.to_string()))?;
        let jwk = json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": x,
            "kid": kid,
            "alg": "EdDSA",
            "use": "sig",
        });
        Ok(DevIssuer {
            issuer: issuer.to_owned(),
            kid,
            encoding,
            jwk,
        })
    }

    /// The issuer URL, which is the `iss` of every token minted here.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key id (`kid`) in token headers and the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Mints an access token for `subject`, valid for `ttl` from now, with
    /// a random `jti` so each token's use can be traced.
    pub fn issue(
        &self,
        subject: &str,
        groups: &[String],
        email: Option<&str>,
        ttl: Duration,
        audience: &str,
    ) -> Result<String, IdentityError> {
        let now = Utc::now().timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let mut claims = json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(ttl),
            "jti": random_jti(),
            "groups": groups,
        });
        if let Some(email) = email {
            claims["email"] = json!(email);
        }
        self.sign_claims(&claims)
    }

    /// Signs arbitrary claims with this issuer's key, unchecked. For tests
    /// and tooling that need unusual tokens (already expired, odd claims);
    /// normal callers want [`DevIssuer::issue`].
    pub fn sign_claims(&self, claims: &Value) -> Result<String, IdentityError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| IdentityError::Signing(e.to_string()))
    }

    /// The JWKS document (`/.well-known/jwks.json`) with the public key.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// The OIDC discovery document for this issuer.
    pub fn discovery(&self) -> Value {
        let base = self.issuer.trim_end_matches('/');
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["token"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "groups", "email"],
        })
    }

    /// The public key as the validator's trusted key set.
    pub(crate) fn key_set(&self) -> Option<KeySet> {
        serde_json::from_value(self.jwk.clone())
            .ok()
            .and_then(KeySet::single)
    }
}

fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Reads the key if the file exists; refuses one others can read.
fn read_key(path: &Path) -> Result<Option<SigningKey>, IdentityError> {
    let pem = match fs::read_to_string(path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(IdentityError::DevKeyIo {
                path: path.to_owned(),
                action: "reading",
                source,
            })
        }
    };
    check_private(path)?;
    SigningKey::from_pkcs8_pem(&pem)
        .map(Some)
        .map_err(|_| IdentityError::DevKeyInvalid {
            path: path.to_owned(),
        })
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(path)
        .map_err(|source| IdentityError::DevKeyIo {
            path: path.to_owned(),
            action: "reading permissions of",
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(IdentityError::DevKeyPermissions {
            path: path.to_owned(),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), IdentityError> {
    Ok(())
}

/// Writes a fresh key with `create_new`, so two gateways starting at once
/// cannot overwrite each other's key; the loser reads the winner's.
fn create_key(path: &Path) -> Result<SigningKey, IdentityError> {
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    let pem = signing
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|_| IdentityError::DevKeyInvalid {
            path: path.to_owned(),
        })?;
    let io_error = |action: &'static str| {
        let path: PathBuf = path.to_owned();
        move |source| IdentityError::DevKeyIo {
            path,
            action,
            source,
        }
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            return read_key(path)?.ok_or_else(|| IdentityError::DevKeyInvalid {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(io_error("creating")(e)),
    };
    file.write_all(pem.as_bytes())
        .map_err(io_error("writing"))?;
    file.sync_all().map_err(io_error("writing"))?;
    tracing::info!(path = %path.display(), "created a new dev issuer key");
    Ok(signing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("nested/keys");
        let first = DevIssuer::load_or_create(&keys, "http://127.0.0.1:7000").unwrap();
        let second = DevIssuer::load_or_create(&keys, "http://127.0.0.1:7000").unwrap();
        assert_eq!(first.kid(), second.kid(), "same key after restart");
        assert_eq!(first.kid().len(), 43, "base64url SHA-256 thumbprint");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(keys.join(DEV_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other =
            DevIssuer::load_or_create(&dir.path().join("other"), "http://127.0.0.1:7000").unwrap();
        assert_ne!(first.kid(), other.kid());
    }

    #[cfg(unix)]
    #[test]
    fn world_readable_key_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        DevIssuer::load_or_create(dir.path(), "https://dev.local").unwrap();
        let path = dir.path().join(DEV_KEY_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = DevIssuer::load_or_create(dir.path(), "https://dev.local").unwrap_err();
        assert!(matches!(err, IdentityError::DevKeyPermissions { .. }));
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn garbage_key_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEV_KEY_FILE);
        fs::write(&path, "not a key").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let err = DevIssuer::load_or_create(dir.path(), "https://dev.local").unwrap_err();
        assert!(matches!(err, IdentityError::DevKeyInvalid { .. }), "{err}");
    }

    #[test]
    fn documents_describe_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let dev = DevIssuer::load_or_create(dir.path(), "http://localhost:8080/").unwrap();
        let jwks = dev.jwks();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], dev.kid());
        assert!(key.get("d").is_none(), "no private part in the JWKS");
        let discovery = dev.discovery();
        assert_eq!(discovery["issuer"], "http://localhost:8080/");
        assert_eq!(
            discovery["jwks_uri"],
            "http://localhost:8080/.well-known/jwks.json"
        );
        assert!(format!("{dev:?}").contains("kid"));
    }

    #[test]
    fn issuer_must_be_an_http_url() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DevIssuer::load_or_create(dir.path(), "not a url").is_err());
        assert!(DevIssuer::load_or_create(dir.path(), "ftp://example.com").is_err());
        assert!(DevIssuer::load_or_create(dir.path(), "http://gatehouse.internal:8080").is_ok());
    }
}
