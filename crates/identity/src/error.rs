//! What can go wrong, split by who can fix it.
//!
//! [`IdentityError`] is for the operator (bad configuration, unreadable dev
//! key) and surfaces at startup. [`AuthError`] is for one presented token and
//! is shown to the client, so its messages say what to do next and never
//! contain the token, a signature or key material. Claim values copied from
//! an untrusted token (issuer, key id, algorithm name) go through
//! [`untrusted`] first so a hostile token cannot inject control characters or
//! megabytes of text into a client error or a log line.

use std::path::PathBuf;

/// A setup problem: the validator or the dev issuer cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The issuer URL does not parse or is not http(s).
    #[error("issuer `{issuer}` is not a valid http(s) URL: {reason}")]
    InvalidIssuerUrl {
        /// The configured issuer, as written.
        issuer: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Plain http was configured where the gateway requires https.
    #[error(
        "{what} `{url}` uses plain http; use https, or for a local test identity provider on \
         127.0.0.1, ::1 or localhost set allow_insecure_http = true"
    )]
    InsecureUrl {
        /// Which setting holds the URL (issuer or jwks_uri).
        what: &'static str,
        /// The offending URL.
        url: String,
    },
    /// An issuer without audiences would accept tokens minted for any service.
    #[error(
        "issuer `{issuer}` has no audiences; set audiences = [\"<your gateway's client id>\"] so \
         tokens minted for other services are rejected"
    )]
    NoAudiences {
        /// The configured issuer.
        issuer: String,
    },
    /// The same issuer appears twice (or collides with the dev issuer).
    #[error("issuer `{issuer}` is configured more than once; keep a single entry per issuer")]
    DuplicateIssuer {
        /// The repeated issuer.
        issuer: String,
    },
    /// The groups claim path is empty or has empty segments.
    #[error(
        "issuer `{issuer}` has an invalid groups_claim `{claim}`; use a claim name such as \
         \"groups\" or a dotted path such as \"realm_access.roles\""
    )]
    InvalidGroupsClaim {
        /// The configured issuer.
        issuer: String,
        /// The configured claim path.
        claim: String,
    },
    /// The HTTP client for JWKS and discovery could not be built.
    #[error("could not build the HTTP client for identity provider requests: {0}")]
    HttpClient(String),
    /// Reading, writing or creating the dev issuer's key failed.
    #[error("dev issuer key {path}: {action} failed: {source}")]
    DevKeyIo {
        /// The key file (or its directory).
        path: PathBuf,
        /// What was being attempted.
        action: &'static str,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The dev issuer's key file exists but is not a PKCS#8 Ed25519 key.
    #[error(
        "dev issuer key {path} is not a PKCS#8 PEM Ed25519 private key; move it away and a new \
         one will be created"
    )]
    DevKeyInvalid {
        /// The key file.
        path: PathBuf,
    },
    /// The dev issuer's key file can be read by other users.
    #[error("dev issuer key {path} is readable by other users; run `chmod 600 {path}`")]
    DevKeyPermissions {
        /// The key file.
        path: PathBuf,
    },
    /// Signing a dev token failed.
    #[error("could not sign the dev token: {0}")]
    Signing(String),
}

/// Why a presented token was not accepted.
///
/// `Display` is the message sent to the client. Every variant except
/// [`AuthError::ProviderUnreachable`] and [`AuthError::ProviderMisconfigured`]
/// is the caller's problem (see [`AuthError::is_server_side`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not a JWT at all (wrong shape, bad base64 or JSON, too large).
    #[error(
        "the password is not a well-formed access token ({0}); pass an OIDC access token (a JWT) \
         as the password"
    )]
    Malformed(&'static str),
    /// `none`, HMAC or any algorithm outside the accepted asymmetric set.
    #[error(
        "token algorithm `{0}` is not accepted (alg none and HMAC are never accepted); the \
         gateway accepts RS256, RS384, RS512, PS256, ES256, ES384 and EdDSA"
    )]
    AlgorithmNotAccepted(String),
    /// The header lists critical extensions the gateway does not implement.
    #[error("token header marks extensions as critical (crit) that this gateway does not support")]
    UnsupportedCritical,
    /// The token has no `iss` claim or it is not a string.
    #[error("token has no issuer (iss) claim; use an access token from your identity provider")]
    MissingIssuer,
    /// `iss` names an issuer that is not configured.
    #[error(
        "token issuer {0} is not trusted by this gateway; use a token from a configured identity \
         provider or ask an administrator to add the issuer"
    )]
    UntrustedIssuer(String),
    /// No key in the issuer's JWKS matches the token's `kid`.
    #[error(
        "token signed with an unknown key ({0}); if your identity provider rotated its keys, \
         retry in a few seconds, otherwise get a new token"
    )]
    UnknownKey(String),
    /// The token has no `kid` and the JWKS has several candidate keys.
    #[error(
        "token has no key id (kid) and its issuer publishes several signing keys; use a token \
         that names its key"
    )]
    AmbiguousKey,
    /// The key named by `kid` does not fit the header's algorithm.
    #[error("token algorithm {alg} does not match the type or algorithm of its signing key {kid}")]
    KeyMismatch {
        /// The header's algorithm.
        alg: String,
        /// The key id (sanitized).
        kid: String,
    },
    /// Signature verification failed.
    #[error("token signature is not valid; get a new token from your identity provider")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error(
        "token expired at {0}; get a new one with `gatehouse token issue` or your identity \
         provider"
    )]
    Expired(String),
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid before {0}; check this machine's clock or wait until then")]
    NotYetValid(String),
    /// `iat` is in the future (beyond the leeway).
    #[error("token claims to be issued in the future ({0}); check the clocks of the client and identity provider")]
    IssuedInFuture(String),
    /// `aud` does not contain any configured audience.
    #[error(
        "token audience does not include {expected}; request a token for that audience from \
         your identity provider"
    )]
    WrongAudience {
        /// The accepted audiences, comma-separated.
        expected: String,
    },
    /// A required claim is absent.
    #[error("token has no `{0}` claim; use an access token from your identity provider")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or an empty value.
    #[error("token claim `{0}` has an invalid value")]
    InvalidClaim(&'static str),
    /// The startup user does not match the token's subject or email.
    #[error(
        "database user `{user}` does not match this token; connect as `{expected}` (the token's \
         subject or email)"
    )]
    SubjectMismatch {
        /// The user the client asked for (sanitized).
        user: String,
        /// What the client should connect as.
        expected: String,
    },
    /// The identity provider could not be reached; fails closed.
    #[error("identity provider unreachable: {0}; try again shortly")]
    ProviderUnreachable(String),
    /// The identity provider answered with something unusable; fails closed.
    #[error(
        "identity provider misconfigured: {0}; ask an administrator to check the issuer settings"
    )]
    ProviderMisconfigured(String),
}

impl AuthError {
    /// Whether the gateway (not the caller) is at fault, so adapters can log
    /// it loudly and pick a "try again" error code instead of "bad password".
    pub fn is_server_side(&self) -> bool {
        matches!(
            self,
            AuthError::ProviderUnreachable(_) | AuthError::ProviderMisconfigured(_)
        )
    }
}

/// Longest run of an untrusted value copied into a message.
const UNTRUSTED_MAX_CHARS: usize = 64;

/// Renders a value taken from an unverified token for a message: quoted,
/// control characters replaced and truncated, so hostile input stays inert.
pub(crate) fn untrusted(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(UNTRUSTED_MAX_CHARS) + 4);
    out.push('`');
    for (i, c) in value.chars().enumerate() {
        if i == UNTRUSTED_MAX_CHARS {
            out.push('…');
            break;
        }
        out.push(if c.is_control() || c == '`' { '?' } else { c });
    }
    out.push('`');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_values_are_quoted_cleaned_and_bounded() {
        assert_eq!(untrusted("https://idp"), "`https://idp`");
        assert_eq!(untrusted("a\nb`c"), "`a?b?c`");
        let long = "x".repeat(1000);
        let shown = untrusted(&long);
        assert!(shown.chars().count() < 70, "{shown}");
        assert!(shown.ends_with("…`"));
    }

    #[test]
    fn only_provider_failures_are_server_side() {
        assert!(AuthError::ProviderUnreachable("timeout".into()).is_server_side());
        assert!(AuthError::ProviderMisconfigured("x".into()).is_server_side());
        assert!(!AuthError::BadSignature.is_server_side());
        assert!(!AuthError::Expired("t".into()).is_server_side());
    }

    #[test]
    fn expiry_message_tells_the_user_what_to_do() {
        let msg = AuthError::Expired("2026-11-22T10:00:00Z".into()).to_string();
        assert!(msg.contains("2026-11-22T10:00:00Z"));
        assert!(msg.contains("gatehouse token issue"));
    }
}
