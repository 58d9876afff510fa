//! From a signed token to an [`Identity`].
//!
//! Signature and the registered claims (`iss`, `aud`, `exp`, `nbf`) are
//! checked by `jsonwebtoken`; this module configures it strictly, adds the
//! checks it does not do (`iat`, non-empty `sub`), turns its errors into
//! messages a user can act on, and reads the groups claim, whose shape
//! differs between identity providers.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use gatehouse_core::Identity;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::error::{untrusted, AuthError};

/// What a token must satisfy besides its signature.
pub(crate) struct Expectations<'a> {
    /// Exact `iss`.
    pub(crate) issuer: &'a str,
    /// `aud` must contain one of these.
    pub(crate) audiences: &'a [String],
    /// Path of the groups claim.
    pub(crate) groups_claim: &'a str,
    /// Allowed clock skew.
    pub(crate) leeway: Duration,
}

/// Verifies signature and claims, then builds the identity.
///
/// `unverified` is the token's payload as read before verification; it is
/// used only to word errors (the `exp` of an expired token, say).
pub(crate) fn verify(
    compact: &str,
    alg: Algorithm,
    key: &DecodingKey,
    expect: &Expectations<'_>,
    unverified: &Map<String, Value>,
) -> Result<Identity, AuthError> {
    let mut validation = Validation::new(alg);
    validation.leeway = expect.leeway.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.set_audience(expect.audiences);
    validation.set_issuer(&[expect.issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);

    let claims = jsonwebtoken::decode::<Map<String, Value>>(compact, key, &validation)
        .map_err(|e| explain(e.into_kind(), expect, unverified))?
        .claims;
    check_issued_at(&claims, expect.leeway)?;
    identity(&claims, expect)
}

/// Turns a `jsonwebtoken` failure into a message for the client.
fn explain(
    kind: ErrorKind,
    expect: &Expectations<'_>,
    unverified: &Map<String, Value>,
) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired(time_claim(unverified, "exp")),
        ErrorKind::ImmatureSignature => AuthError::NotYetValid(time_claim(unverified, "nbf")),
        ErrorKind::InvalidAudience => AuthError::WrongAudience {
            expected: expect.audiences.join(", "),
        },
        ErrorKind::InvalidIssuer => AuthError::UntrustedIssuer(
            unverified
                .get("iss")
                .and_then(Value::as_str)
                .map_or_else(|| "(not a string)".to_owned(), untrusted),
        ),
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(registered(&claim)),
        ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim(registered(&claim)),
        ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::InvalidToken => AuthError::Malformed("it could not be decoded"),
        // Wrong signature, a signature of the wrong length, or a key that
        // cannot verify this algorithm: all mean "not signed by the issuer".
        _ => AuthError::BadSignature,
    }
}

/// Registered claim names as `'static` for [`AuthError`].
fn registered(claim: &str) -> &'static str {
    match claim {
        "exp" => "exp",
        "nbf" => "nbf",
        "iss" => "iss",
        "aud" => "aud",
        "sub" => "sub",
        _ => "registered claim",
    }
}

/// An `exp`/`nbf` claim as RFC 3339 UTC, for messages.
fn time_claim(claims: &Map<String, Value>, name: &str) -> String {
    claims
        .get(name)
        .and_then(unix_seconds)
        .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0))
        .map_or_else(
            || format!("the time in its `{name}` claim"),
            |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
}

/// A NumericDate (RFC 7519 §2) as whole seconds; fractions are truncated.
fn unix_seconds(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f as i64)
    })
}

/// `jsonwebtoken` ignores `iat`; a token "issued" in the future means a
/// wrong clock or a forged lifetime, so it is refused beyond the leeway.
fn check_issued_at(claims: &Map<String, Value>, leeway: Duration) -> Result<(), AuthError> {
    let Some(iat) = claims.get("iat") else {
        return Ok(());
    };
    let iat = unix_seconds(iat).ok_or(AuthError::InvalidClaim("iat"))?;
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
    if iat > Utc::now().timestamp().saturating_add(leeway) {
        return Err(AuthError::IssuedInFuture(time_claim(claims, "iat")));
    }
    Ok(())
}

fn identity(claims: &Map<String, Value>, expect: &Expectations<'_>) -> Result<Identity, AuthError> {
    let subject = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.trim().is_empty() => sub.clone(),
        Some(_) => return Err(AuthError::InvalidClaim("sub")),
        None => return Err(AuthError::MissingClaim("sub")),
    };
    let expires_at = claims
        .get("exp")
        .and_then(unix_seconds)
        .ok_or(AuthError::InvalidClaim("exp"))?;
    Ok(Identity {
        subject,
        email: string_claim(claims, "email"),
        groups: groups(claims, expect.groups_claim),
        issuer: expect.issuer.to_owned(),
        token_id: string_claim(claims, "jti"),
        expires_at,
    })
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Reads groups from `path`: an array of strings, one string, or a
/// space-separated string (the OAuth `scope` style). Missing means none.
///
/// A claim literally named `path` wins over walking it as a dotted path, so
/// namespaced claims like `https://example.com/groups` work.
pub(crate) fn groups(claims: &Map<String, Value>, path: &str) -> Vec<String> {
    let found = claims.get(path).or_else(|| {
        let mut segments = path.split('.');
        let first = claims.get(segments.next()?)?;
        segments.try_fold(first, |node, segment| node.get(segment))
    });
    match found {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn groups_come_in_several_shapes() {
        let claims = map(json!({
            "groups": ["dba", "", 7, "analysts"],
            "scope_groups": "read write  admin",
            "single": "ops",
            "realm_access": {"roles": ["teller"]},
            "https://example.com/groups": ["namespaced"],
            "not_groups": {"a": 1},
        }));
        assert_eq!(groups(&claims, "groups"), ["dba", "analysts"]);
        assert_eq!(groups(&claims, "scope_groups"), ["read", "write", "admin"]);
        assert_eq!(groups(&claims, "single"), ["ops"]);
        assert_eq!(groups(&claims, "realm_access.roles"), ["teller"]);
        assert_eq!(
            groups(&claims, "https://example.com/groups"),
            ["namespaced"]
        );
        assert!(groups(&claims, "missing").is_empty());
        assert!(groups(&claims, "realm_access.nope").is_empty());
        assert!(groups(&claims, "not_groups").is_empty());
    }

    #[test]
    fn time_claims_render_as_utc() {
        let claims = map(json!({"exp": 1_795_341_600, "nbf": 1.5e9, "bad": "soon"}));
        assert_eq!(time_claim(&claims, "exp"), "2026-11-22T10:00:00Z");
        assert_eq!(time_claim(&claims, "nbf"), "2017-07-14T02:40:00Z");
        assert_eq!(time_claim(&claims, "bad"), "the time in its `bad` claim");
    }

    #[test]
    fn issued_at_in_the_future_is_refused_beyond_leeway() {
        let now = Utc::now().timestamp();
        let leeway = Duration::from_secs(30);
        assert!(check_issued_at(&map(json!({"iat": now + 10})), leeway).is_ok());
        assert!(check_issued_at(&map(json!({})), leeway).is_ok());
        assert!(matches!(
            check_issued_at(&map(json!({"iat": now + 3600})), leeway),
            Err(AuthError::IssuedInFuture(_))
        ));
        assert_eq!(
            check_issued_at(&map(json!({"iat": "yesterday"})), leeway),
            Err(AuthError::InvalidClaim("iat"))
        );
    }

    #[test]
    fn identity_requires_a_non_empty_subject() {
        let expect = Expectations {
            issuer: "https://idp",
            audiences: &[],
            groups_claim: "groups",
            leeway: Duration::ZERO,
        };
        let ok = identity(
            &map(json!({"sub": "alice", "exp": 10, "email": "a@x", "jti": "j1"})),
            &expect,
        )
        .unwrap();
        assert_eq!(ok.subject, "alice");
        assert_eq!(ok.email.as_deref(), Some("a@x"));
        assert_eq!(ok.token_id.as_deref(), Some("j1"));
        assert_eq!(ok.issuer, "https://idp");
        assert_eq!(ok.expires_at, 10);
        assert_eq!(
            identity(&map(json!({"sub": "  ", "exp": 10})), &expect),
            Err(AuthError::InvalidClaim("sub"))
        );
        assert_eq!(
            identity(&map(json!({"exp": 10})), &expect),
            Err(AuthError::MissingClaim("sub"))
        );
    }
}
