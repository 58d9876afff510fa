//! An issuer's public signing keys, ready to verify with.
//!
//! A JWKS document is parsed key by key: keys the gateway cannot use
//! (encryption keys, symmetric keys, unknown types) are dropped instead of
//! failing the whole set, because real identity providers publish them side
//! by side with their signing keys.

use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::algorithm::{self, key_fits};
use crate::error::{untrusted, AuthError};

/// One usable public key and its id.
pub(crate) struct TrustedKey {
    /// `kid`, when the issuer names its keys.
    pub(crate) kid: Option<String>,
    /// The key as published, for type/alg checks.
    pub(crate) jwk: Jwk,
    /// The same key prepared for verification.
    pub(crate) decoding: DecodingKey,
}

/// The asymmetric keys of one JWKS document.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: Vec<Arc<TrustedKey>>,
}

impl KeySet {
    /// Parses a JWKS document, keeping the asymmetric keys that decode.
    pub(crate) fn from_jwks(doc: &Value) -> Result<Self, String> {
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| "the JWKS document has no `keys` array".to_owned())?;
        let mut keys = Vec::new();
        for entry in entries {
            let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
                tracing::debug!("skipping a JWKS entry that is not a recognised JWK");
                continue;
            };
            if let Some(key) = TrustedKey::from_jwk(jwk) {
                keys.push(Arc::new(key));
            }
        }
        Ok(KeySet { keys })
    }

    /// A set holding exactly one key (the dev issuer's).
    pub(crate) fn single(jwk: Jwk) -> Option<Self> {
        TrustedKey::from_jwk(jwk).map(|key| KeySet {
            keys: vec![Arc::new(key)],
        })
    }

    /// Number of usable keys.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no usable key was found.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Picks the key for a token.
    ///
    /// `Ok(None)` means "not here" (a refetch may help); `Err` means the set
    /// has an answer and it is no: the named key has the wrong type, or a
    /// token without `kid` cannot be matched to a single key.
    pub(crate) fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Option<Arc<TrustedKey>>, AuthError> {
        match kid {
            Some(kid) => {
                let mut named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid));
                let Some(first) = named.next() else {
                    return Ok(None);
                };
                if key_fits(&first.jwk, alg) {
                    return Ok(Some(Arc::clone(first)));
                }
                match named.find(|k| key_fits(&k.jwk, alg)) {
                    Some(key) => Ok(Some(Arc::clone(key))),
                    None => Err(AuthError::KeyMismatch {
                        alg: algorithm::name(alg),
                        kid: untrusted(kid),
                    }),
                }
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| key_fits(&k.jwk, alg));
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Ok(Some(Arc::clone(only))),
                    (None, _) => Ok(None),
                    (Some(_), Some(_)) => Err(AuthError::AmbiguousKey),
                }
            }
        }
    }
}

impl TrustedKey {
    /// Keeps RSA, EC and OKP keys that decode; refuses symmetric keys, which
    /// must never verify a token.
    fn from_jwk(jwk: Jwk) -> Option<Self> {
        match jwk.algorithm {
            AlgorithmParameters::RSA(_)
            | AlgorithmParameters::EllipticCurve(_)
            | AlgorithmParameters::OctetKeyPair(_) => {}
            // Symmetric (`oct`) and unrecognised key types.
            _ => return None,
        }
        let decoding = DecodingKey::from_jwk(&jwk).ok()?;
        Some(TrustedKey {
            kid: jwk.common.key_id.clone(),
            jwk,
            decoding,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rsa(kid: Option<&str>) -> Value {
        let mut v = json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "use": "sig"});
        if let Some(kid) = kid {
            v["kid"] = json!(kid);
        }
        v
    }

    fn ec(kid: &str) -> Value {
        json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": kid})
    }

    #[test]
    fn unusable_entries_are_skipped_not_fatal() {
        let doc = json!({"keys": [
            rsa(Some("a")),
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "weird", "kid": "w"},
            "not an object",
            ec("b"),
        ]});
        let set = KeySet::from_jwks(&doc).unwrap();
        assert_eq!(set.len(), 2);
        assert!(KeySet::from_jwks(&json!({"nokeys": []})).is_err());
    }

    #[test]
    fn select_by_kid_checks_the_key_type() {
        let set = KeySet::from_jwks(&json!({"keys": [rsa(Some("a")), ec("b")]})).unwrap();
        assert_eq!(
            set.select(Some("a"), Algorithm::RS256)
                .unwrap()
                .unwrap()
                .kid
                .as_deref(),
            Some("a")
        );
        assert!(set.select(Some("zzz"), Algorithm::RS256).unwrap().is_none());
        assert!(matches!(
            set.select(Some("a"), Algorithm::ES256),
            Err(AuthError::KeyMismatch { .. })
        ));
    }

    #[test]
    fn token_without_kid_needs_exactly_one_fitting_key() {
        let one_each = KeySet::from_jwks(&json!({"keys": [rsa(Some("a")), ec("b")]})).unwrap();
        assert_eq!(
            one_each
                .select(None, Algorithm::ES256)
                .unwrap()
                .unwrap()
                .kid
                .as_deref(),
            Some("b")
        );
        assert!(one_each.select(None, Algorithm::EdDSA).unwrap().is_none());

        let two_rsa = KeySet::from_jwks(&json!({"keys": [rsa(Some("a")), rsa(None)]})).unwrap();
        assert!(matches!(
            two_rsa.select(None, Algorithm::RS256),
            Err(AuthError::AmbiguousKey)
        ));
    }
}
