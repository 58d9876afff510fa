//! A first, untrusting look at a presented token.
//!
//! Before any key lookup the gateway needs the header's `alg` and `kid` and
//! the payload's `iss` to know which issuer and key to verify against.
//! Nothing read here is trusted: it only routes the token, and everything is
//! verified again after the signature check. Size and shape are checked
//! first so garbage is refused cheaply.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::AuthError;

/// Largest token accepted. Real access tokens are 1-4 KiB; this bounds the
/// work a hostile client can cause before any signature check.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The decoded, not yet verified, parts of a compact JWS.
#[derive(Debug)]
pub(crate) struct UnverifiedToken<'a> {
    /// The token with surrounding whitespace removed, as it will be verified.
    pub(crate) compact: &'a str,
    header: Map<String, Value>,
    payload: Map<String, Value>,
    has_signature: bool,
}

impl<'a> UnverifiedToken<'a> {
    /// Splits and decodes `token`, refusing anything that is not a JWS with
    /// JSON-object header and payload.
    pub(crate) fn parse(token: &'a str) -> Result<Self, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed("it is larger than 16 KiB"));
        }
        let compact = token.trim();
        if compact.is_empty() {
            return Err(AuthError::Malformed("it is empty"));
        }
        let mut segments = compact.split('.');
        let (Some(header), Some(payload), Some(signature), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(AuthError::Malformed("a JWT has three dot-separated parts"));
        };
        Ok(UnverifiedToken {
            compact,
            header: decode_object(header, "its header is not base64url-encoded JSON")?,
            payload: decode_object(payload, "its payload is not base64url-encoded JSON")?,
            has_signature: !signature.is_empty(),
        })
    }

    /// The header's `alg`, as written.
    pub(crate) fn alg(&self) -> Result<&str, AuthError> {
        match self.header.get("alg") {
            Some(Value::String(alg)) => Ok(alg),
            _ => Err(AuthError::Malformed("its header has no algorithm (alg)")),
        }
    }

    /// The header's `kid`, when present.
    pub(crate) fn kid(&self) -> Result<Option<&str>, AuthError> {
        match self.header.get("kid") {
            None => Ok(None),
            Some(Value::String(kid)) => Ok(Some(kid)),
            Some(_) => Err(AuthError::Malformed("its key id (kid) is not a string")),
        }
    }

    /// Whether the header marks any extension critical; none are supported.
    pub(crate) fn has_critical_extensions(&self) -> bool {
        self.header.contains_key("crit")
    }

    /// The payload's `iss`, which picks the issuer to verify against.
    pub(crate) fn issuer(&self) -> Result<&str, AuthError> {
        match self.payload.get("iss") {
            Some(Value::String(iss)) if !iss.is_empty() => Ok(iss),
            _ => Err(AuthError::MissingIssuer),
        }
    }

    /// Whether the third part is non-empty (an `alg: none` token has none).
    pub(crate) fn has_signature(&self) -> bool {
        self.has_signature
    }

    /// The unverified payload, used only to word error messages (for
    /// example the `exp` of an expired token).
    pub(crate) fn payload(&self) -> &Map<String, Value> {
        &self.payload
    }
}

fn decode_object(segment: &str, problem: &'static str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthError::Malformed(problem))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AuthError::Malformed(problem)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn token(header: &str, payload: &str, sig: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), sig)
    }

    #[test]
    fn reads_routing_fields_without_trusting_them() {
        let t = token(
            r#"{"alg":"ES256","kid":"k1"}"#,
            r#"{"iss":"https://idp","sub":"alice"}"#,
            "c2ln",
        );
        let padded = format!("  {t}\n");
        let parsed = UnverifiedToken::parse(&padded).unwrap();
        assert_eq!(parsed.compact, t, "surrounding whitespace is trimmed");
        assert_eq!(parsed.alg().unwrap(), "ES256");
        assert_eq!(parsed.kid().unwrap(), Some("k1"));
        assert_eq!(parsed.issuer().unwrap(), "https://idp");
        assert!(parsed.has_signature());
        assert!(!parsed.has_critical_extensions());
    }

    #[test]
    fn refuses_wrong_shapes() {
        let cases = [
            String::new(),
            "abc".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            "!!!.###.$$$".to_owned(),
            token("[1,2]", "{}", "x"),
            token("{}", "\"just a string\"", "x"),
            format!("{}.{}=.x", b64("{}"), b64("{}")),
        ];
        for case in cases {
            assert!(
                matches!(UnverifiedToken::parse(&case), Err(AuthError::Malformed(_))),
                "{case:?}"
            );
        }
    }

    #[test]
    fn refuses_oversized_input_before_decoding() {
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            UnverifiedToken::parse(&huge).unwrap_err(),
            AuthError::Malformed("it is larger than 16 KiB")
        );
    }

    #[test]
    fn missing_or_odd_fields_are_reported() {
        let t = token(r#"{"kid":5}"#, r#"{"iss":7}"#, "");
        let parsed = UnverifiedToken::parse(&t).unwrap();
        assert!(parsed.alg().is_err());
        assert!(parsed.kid().is_err());
        assert_eq!(parsed.issuer().unwrap_err(), AuthError::MissingIssuer);
        assert!(!parsed.has_signature());
    }
}
