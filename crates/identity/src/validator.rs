//! Access-token validation: the gateway's `authenticate` stage.
//!
//! The order of checks matters. Cheap, key-independent refusals come first
//! (size, shape, `alg` allow-list, `crit`), then the unverified `iss` picks
//! which issuer's keys to use, then the signature and the claims are
//! verified. Nothing read before the signature check is trusted.

use std::collections::HashMap;
use std::time::Duration;

use gatehouse_core::Identity;

use crate::algorithm;
use crate::claims::{self, Expectations};
use crate::config::IssuerConfig;
use crate::dev::{DevIssuer, DEV_AUDIENCE};
use crate::error::{untrusted, AuthError, IdentityError};
use crate::jwks::KeySet;
use crate::remote::RemoteIssuer;
use crate::token::UnverifiedToken;

/// Clock skew tolerated on `exp`, `nbf` and `iat` unless configured.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Least time between two JWKS fetches triggered by unknown key ids.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// Turns presented access tokens into [`Identity`]s, for every configured
/// issuer. Build once at startup and share it (`Arc<TokenValidator>`).
pub struct TokenValidator {
    issuers: HashMap<String, TrustedIssuer>,
    leeway: Duration,
    accepted: Accepted,
}

/// Tokens this validator accepted, by the SHA-256 of their text, until they
/// expire: a client that presents the same token on every request (an HTTP
/// client, an agent) pays for the signature check once. The key is a digest,
/// so the cache holds no token; a token rejected once is checked again in
/// full each time. A key the issuer rotates out does not end the tokens it
/// signed before their `exp` (as with any validator that trusts `exp`).
#[derive(Default)]
struct Accepted(parking_lot::Mutex<HashMap<[u8; 32], Identity>>);

/// Most tokens remembered; past it, expired ones are dropped, then all.
const ACCEPTED_CAPACITY: usize = 4096;

impl Accepted {
    fn get(&self, digest: &[u8; 32], leeway: Duration) -> Option<Identity> {
        let entries = self.0.lock();
        let identity = entries.get(digest)?;
        still_valid(identity, leeway).then(|| identity.clone())
    }

    fn put(&self, digest: [u8; 32], identity: &Identity, leeway: Duration) {
        let mut entries = self.0.lock();
        if entries.len() >= ACCEPTED_CAPACITY {
            entries.retain(|_, id| still_valid(id, leeway));
            if entries.len() >= ACCEPTED_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(digest, identity.clone());
    }
}

fn still_valid(identity: &Identity, leeway: Duration) -> bool {
    let now = chrono::Utc::now().timestamp();
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
    now < identity.expires_at.saturating_add(leeway)
}

/// What the validator knows about one issuer.
struct TrustedIssuer {
    audiences: Vec<String>,
    groups_claim: String,
    keys: Keys,
}

/// Where an issuer's keys come from.
enum Keys {
    /// Fetched over HTTP(S) and cached.
    Remote(Box<RemoteIssuer>),
    /// Held in-process (the dev issuer).
    Local(KeySet),
}

impl std::fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut issuers: Vec<&String> = self.issuers.keys().collect();
        issuers.sort();
        f.debug_struct("TokenValidator")
            .field("issuers", &issuers)
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl TokenValidator {
    /// Checks every issuer's config and prepares its key cache; fetches
    /// nothing yet, so the gateway starts even if an IdP is briefly down.
    /// `dev`, when given, is trusted for tokens whose `iss` is its URL and
    /// whose audience is [`DEV_AUDIENCE`].
    pub fn new(
        issuers: Vec<IssuerConfig>,
        dev: Option<DevIssuer>,
        leeway: Duration,
    ) -> Result<Self, IdentityError> {
        crate::ensure_crypto_provider();
        let mut trusted = HashMap::new();
        for config in issuers {
            config.check()?;
            let issuer = config.issuer.clone();
            let entry = TrustedIssuer {
                audiences: config.audiences.clone(),
                groups_claim: config.groups_claim.clone(),
                keys: Keys::Remote(Box::new(RemoteIssuer::new(
                    config,
                    DEFAULT_REFETCH_INTERVAL,
                )?)),
            };
            if trusted.insert(issuer.clone(), entry).is_some() {
                return Err(IdentityError::DuplicateIssuer { issuer });
            }
        }
        if let Some(dev) = dev {
            let keys = dev
                .key_set()
                .ok_or_else(|| IdentityError::Signing("the dev issuer key is unusable".into()))?;
            let entry = TrustedIssuer {
                audiences: vec![DEV_AUDIENCE.to_owned()],
                groups_claim: "groups".to_owned(),
                keys: Keys::Local(keys),
            };
            let issuer = dev.issuer().to_owned();
            if trusted.insert(issuer.clone(), entry).is_some() {
                return Err(IdentityError::DuplicateIssuer { issuer });
            }
        }
        Ok(TokenValidator {
            issuers: trusted,
            leeway,
            accepted: Accepted::default(),
        })
    }

    /// Sets the least time between JWKS refetches caused by unknown key ids
    /// (default [`DEFAULT_REFETCH_INTERVAL`]).
    pub fn with_refetch_interval(mut self, interval: Duration) -> Self {
        for entry in self.issuers.values_mut() {
            if let Keys::Remote(remote) = &mut entry.keys {
                remote.set_refetch_interval(interval);
            }
        }
        self
    }

    /// The issuers this validator trusts, for startup logs and `/status`.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.issuers.keys().map(String::as_str)
    }

    /// Validates `token` and returns who presented it.
    ///
    /// Fails closed: if keys cannot be fetched the token is refused with a
    /// server-side error ([`AuthError::is_server_side`]). Error messages
    /// never contain the token.
    pub async fn validate(&self, token: &str) -> Result<Identity, AuthError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some(identity) = self.accepted.get(&digest, self.leeway) {
            return Ok(identity);
        }
        let identity = self.validate_fully(token).await?;
        self.accepted.put(digest, &identity, self.leeway);
        Ok(identity)
    }

    async fn validate_fully(&self, token: &str) -> Result<Identity, AuthError> {
        let token = UnverifiedToken::parse(token)?;
        let alg = algorithm::accepted(token.alg()?)?;
        if token.has_critical_extensions() {
            return Err(AuthError::UnsupportedCritical);
        }
        if !token.has_signature() {
            return Err(AuthError::Malformed("it has no signature"));
        }
        let kid = token.kid()?;
        let issuer = token.issuer()?;
        let (issuer, trusted) = self
            .issuers
            .get_key_value(issuer)
            .ok_or_else(|| AuthError::UntrustedIssuer(untrusted(issuer)))?;

        let key = match &trusted.keys {
            Keys::Remote(remote) => remote.key(kid, alg).await?,
            Keys::Local(keys) => keys.select(kid, alg)?.ok_or_else(|| {
                AuthError::UnknownKey(
                    "not the dev issuer's key; the dev key may have been replaced, issue a new \
                     token"
                        .to_owned(),
                )
            })?,
        };
        let expect = Expectations {
            issuer,
            audiences: &trusted.audiences,
            groups_claim: &trusted.groups_claim,
            leeway: self.leeway,
        };
        let identity = claims::verify(token.compact, alg, &key.decoding, &expect, token.payload())?;
        tracing::debug!(
            issuer = %identity.issuer,
            subject = %identity.subject,
            "token accepted"
        );
        Ok(identity)
    }
}

/// Checks the PostgreSQL startup `user` against the token, for gateways
/// configured to require that they match: `user` must equal the token's
/// subject or its email, exactly (no case folding, no email local-part
/// matching, so one caller can never pass as another with a similar name).
pub fn check_subject(identity: &Identity, user: &str) -> Result<(), AuthError> {
    if user == identity.subject || identity.email.as_deref() == Some(user) {
        return Ok(());
    }
    Err(AuthError::SubjectMismatch {
        user: untrusted(user),
        expected: identity
            .email
            .clone()
            .unwrap_or_else(|| identity.subject.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accepted_token_is_remembered_only_until_it_expires() {
        let cache = Accepted::default();
        let now = chrono::Utc::now().timestamp();
        let mut id = alice();
        id.expires_at = now + 60;
        cache.put([1; 32], &id, Duration::ZERO);
        assert_eq!(
            cache.get(&[1; 32], Duration::ZERO).map(|i| i.subject),
            Some("u-123".into())
        );
        assert!(
            cache.get(&[2; 32], Duration::ZERO).is_none(),
            "another token is not"
        );
        id.expires_at = now - 1;
        cache.put([3; 32], &id, Duration::ZERO);
        assert!(cache.get(&[3; 32], Duration::ZERO).is_none(), "expired");
        assert!(
            cache.get(&[3; 32], Duration::from_secs(30)).is_some(),
            "within the leeway"
        );
    }

    fn alice() -> Identity {
        Identity {
            subject: "u-123".into(),
            email: Some("alice@bank.example".into()),
            groups: vec![],
            issuer: "https://idp".into(),
            token_id: None,
            expires_at: 0,
        }
    }

    #[test]
    fn subject_or_email_must_match_exactly() {
        assert!(check_subject(&alice(), "u-123").is_ok());
        assert!(check_subject(&alice(), "alice@bank.example").is_ok());
        for other in ["alice", "ALICE@bank.example", "u-1234", ""] {
            let err = check_subject(&alice(), other).unwrap_err();
            assert!(err.to_string().contains("alice@bank.example"), "{err}");
        }
    }

    #[test]
    fn config_problems_stop_construction() {
        let http = IssuerConfig::new("http://idp.example.com", vec!["gh".into()]);
        assert!(matches!(
            TokenValidator::new(vec![http], None, DEFAULT_LEEWAY),
            Err(IdentityError::InsecureUrl { .. })
        ));
        let twice = IssuerConfig::new("https://idp.example.com", vec!["gh".into()]);
        assert!(matches!(
            TokenValidator::new(vec![twice.clone(), twice], None, DEFAULT_LEEWAY),
            Err(IdentityError::DuplicateIssuer { .. })
        ));
    }

    #[test]
    fn validator_is_shareable_and_its_future_is_send() {
        fn assert_send_sync<T: Send + Sync>(_: &T) {}
        fn assert_send<T: Send>(_: T) {}
        let v = TokenValidator::new(vec![], None, DEFAULT_LEEWAY).unwrap();
        assert_send_sync(&v);
        assert_send(v.validate("x"));
    }
}
