//! The `Gatehouse-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256>`
//! over `"<t>.<raw body>"`.
//!
//! The timestamp is inside the MAC so a receiver can refuse a captured
//! request replayed later; the body is the exact bytes sent, so receivers
//! must verify before parsing or re-serialising it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the signature (`t=…,v1=…`).
pub const SIGNATURE_HEADER: &str = "Gatehouse-Signature";
/// Header carrying the event name, so receivers can route without parsing.
pub const EVENT_HEADER: &str = "Gatehouse-Event";
/// Header carrying the delivery id, identical across retries, for dedupe.
pub const DELIVERY_HEADER: &str = "Gatehouse-Delivery";

/// Most `v1=` entries accepted in one header (several allow secret rotation;
/// a bound keeps a hostile header from costing many MACs).
const MAX_SIGNATURES: usize = 8;

/// Why a webhook signature was refused. Every variant means "do not act on
/// this request".
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// The header is not `t=<unix seconds>,v1=<hex>`.
    #[error("malformed {SIGNATURE_HEADER} header: {0}; expected t=<unix seconds>,v1=<hex>")]
    Malformed(&'static str),
    /// No `v1` signature matches the body: wrong secret or altered body.
    #[error(
        "signature does not match the body; refuse the request (wrong secret or altered body)"
    )]
    Mismatch,
    /// The signature is genuine but its timestamp is too far from now:
    /// possibly a replay, or a clock out of sync.
    #[error(
        "signature timestamp is {skew_secs}s from now, beyond the {tolerance_secs}s tolerated; \
         refuse it as a possible replay (or fix the clock of sender or receiver)"
    )]
    OutsideTolerance {
        /// `now - t` in seconds (positive: signed in the past).
        skew_secs: i64,
        /// The tolerance that was exceeded.
        tolerance_secs: i64,
    },
}

#[allow(
    clippy::expect_used,
    reason = "HMAC takes keys of any length (long ones are hashed)"
)]
fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Computes the `Gatehouse-Signature` header value for `body` sent at
/// `timestamp` (unix seconds). Public so receivers' tests can produce
/// signed requests.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// For receivers (and our tests): checks a `Gatehouse-Signature` header
/// against the raw request body, then refuses a timestamp more than
/// `tolerance_secs` away from `now_unix` in either direction.
///
/// Comparison is constant-time. Several `v1=` entries are accepted (any
/// match passes) so a secret can be rotated; unknown keys (e.g. a future
/// `v2=`) are ignored.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let mut timestamp: Option<i64> = None;
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed("an entry has no '='"))?;
        match key.trim() {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed("t= appears twice"));
                }
                let t = value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| SignatureError::Malformed("t= is not unix seconds"))?;
                timestamp = Some(t);
            }
            "v1" => {
                if candidates.len() >= MAX_SIGNATURES {
                    return Err(SignatureError::Malformed("too many v1= entries"));
                }
                let sig = hex::decode(value.trim())
                    .map_err(|_| SignatureError::Malformed("v1= is not hex"))?;
                candidates.push(sig);
            }
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed("t= is missing"))?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed("v1= is missing"));
    }

    let expected = mac(secret, t, body).finalize().into_bytes();
    let mut ok = Choice::from(0u8);
    for c in &candidates {
        ok |= expected.as_slice().ct_eq(c.as_slice());
    }
    if !bool::from(ok) {
        return Err(SignatureError::Mismatch);
    }

    let tolerance = tolerance_secs.max(0);
    let skew = now_unix.saturating_sub(t);
    if skew.unsigned_abs() > tolerance.unsigned_abs() {
        return Err(SignatureError::OutsideTolerance {
            skew_secs: skew,
            tolerance_secs: tolerance,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test";
    const BODY: &[u8] = br#"{"event":"approval.requested","id":"42"}"#;

    #[test]
    fn round_trip() {
        let h = sign(SECRET, 1_700_000_000, BODY);
        assert!(h.starts_with("t=1700000000,v1="));
        let hex_part = h.rsplit('=').next().unwrap_or_default();
        assert_eq!(hex_part.len(), 64);
        assert_eq!(hex_part, hex_part.to_lowercase());
        assert_eq!(
            verify_signature(SECRET, &h, BODY, 1_700_000_010, 300),
            Ok(())
        );
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256("key", "1.body"), computed independently.
        let h = sign(b"key", 1, b"body");
        let mut m = HmacSha256::new_from_slice(b"key").expect("key");
        m.update(b"1.body");
        let want = hex::encode(m.finalize().into_bytes());
        assert_eq!(h, format!("t=1,v1={want}"));
    }

    #[test]
    fn tampered_body_wrong_secret_and_changed_timestamp_are_refused() {
        let h = sign(SECRET, 1000, BODY);
        assert_eq!(
            verify_signature(SECRET, &h, b"{}", 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"other", &h, BODY, 1000, 300),
            Err(SignatureError::Mismatch)
        );
        // Moving the timestamp forward to dodge the tolerance breaks the MAC.
        let forged = h.replacen("t=1000", "t=5000", 1);
        assert_eq!(
            verify_signature(SECRET, &forged, BODY, 5000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn tolerance_both_directions() {
        let h = sign(SECRET, 1000, BODY);
        assert!(verify_signature(SECRET, &h, BODY, 1300, 300).is_ok());
        assert!(verify_signature(SECRET, &h, BODY, 700, 300).is_ok());
        assert_eq!(
            verify_signature(SECRET, &h, BODY, 1301, 300),
            Err(SignatureError::OutsideTolerance {
                skew_secs: 301,
                tolerance_secs: 300
            })
        );
        assert!(matches!(
            verify_signature(SECRET, &h, BODY, 699, 300),
            Err(SignatureError::OutsideTolerance {
                skew_secs: -301,
                ..
            })
        ));
        // Extreme values do not overflow.
        let h = sign(SECRET, i64::MIN, BODY);
        assert!(verify_signature(SECRET, &h, BODY, i64::MAX, 300).is_err());
    }

    #[test]
    fn rotation_and_unknown_keys() {
        let old = sign(b"old", 1000, BODY);
        let new = sign(SECRET, 1000, BODY);
        let v_old = old.split_once(",v1=").map(|x| x.1).unwrap_or_default();
        let v_new = new.split_once(",v1=").map(|x| x.1).unwrap_or_default();
        let header = format!("t=1000, v1={v_old}, v2=zzz, v1={v_new}");
        assert!(verify_signature(SECRET, &header, BODY, 1000, 300).is_ok());
    }

    #[test]
    fn malformed_headers() {
        for h in [
            "",
            "t=1",
            "v1=00",
            "t=abc,v1=00",
            "t=1,v1=nothex",
            "t=1,t=2,v1=00",
            "garbage",
        ] {
            assert!(
                matches!(
                    verify_signature(SECRET, h, BODY, 1, 300),
                    Err(SignatureError::Malformed(_))
                ),
                "{h:?}"
            );
        }
        // Right length matters only through the constant-time compare.
        assert_eq!(
            verify_signature(SECRET, "t=1,v1=00", BODY, 1, 300),
            Err(SignatureError::Mismatch)
        );
    }
}
