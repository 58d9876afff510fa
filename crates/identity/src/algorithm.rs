//! Which signature algorithms are acceptable, and for which keys.
//!
//! The header's `alg` is chosen by whoever made the token, so it is checked
//! twice: against a fixed allow-list of asymmetric algorithms (no `none`, no
//! HMAC, where a public key could be abused as a shared secret), and against
//! the key it claims to use, so an RSA key is never used to check an EC
//! signature or the other way round (algorithm confusion).

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::Algorithm;

use crate::error::{untrusted, AuthError};

/// The algorithms a token may be signed with, as their JOSE names.
pub const ACCEPTED_ALGORITHMS: [&str; 7] = [
    "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA",
];

/// Maps a header `alg` to an accepted algorithm, or refuses it.
pub(crate) fn accepted(alg: &str) -> Result<Algorithm, AuthError> {
    let algorithm = match alg {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        other => return Err(AuthError::AlgorithmNotAccepted(untrusted_alg(other))),
    };
    Ok(algorithm)
}

/// Algorithm names are short; anything else is shown sanitized.
fn untrusted_alg(alg: &str) -> String {
    if !alg.is_empty() && alg.len() <= 16 && alg.chars().all(|c| c.is_ascii_alphanumeric()) {
        alg.to_owned()
    } else {
        untrusted(alg)
    }
}

/// Whether `jwk` may verify a signature made with `alg`: right key type and
/// curve, and if the key declares an `alg`, `use` or `key_ops`, they agree.
pub(crate) fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    let common = &jwk.common;
    if let Some(declared) = common.key_algorithm {
        if declared != KeyAlgorithm::from(alg) {
            return false;
        }
    }
    if let Some(usage) = &common.public_key_use {
        if *usage != PublicKeyUse::Signature {
            return false;
        }
    }
    if let Some(ops) = &common.key_operations {
        if !ops.contains(&KeyOperations::Verify) {
            return false;
        }
    }
    match (&jwk.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256,
        ) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
        }
        _ => false,
    }
}

/// The JOSE name of an algorithm, for messages.
pub(crate) fn name(alg: Algorithm) -> String {
    KeyAlgorithm::from(alg).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwk(value: serde_json::Value) -> Jwk {
        serde_json::from_value(value).unwrap()
    }

    fn rsa() -> serde_json::Value {
        json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})
    }

    #[test]
    fn none_and_hmac_are_refused() {
        for alg in [
            "none", "None", "HS256", "HS384", "HS512", "", "ES512", "PS512x",
        ] {
            assert!(
                matches!(accepted(alg), Err(AuthError::AlgorithmNotAccepted(_))),
                "{alg}"
            );
        }
        for alg in ACCEPTED_ALGORITHMS {
            let parsed = accepted(alg).unwrap();
            assert_eq!(name(parsed), alg);
        }
    }

    #[test]
    fn hostile_alg_names_are_sanitized() {
        let Err(AuthError::AlgorithmNotAccepted(shown)) = accepted("HS256\n\u{7}evil") else {
            panic!("must be refused");
        };
        assert!(!shown.contains('\n'));
    }

    #[test]
    fn key_type_must_match_algorithm_family() {
        let rsa_key = jwk(rsa());
        assert!(key_fits(&rsa_key, Algorithm::RS256));
        assert!(key_fits(&rsa_key, Algorithm::PS256));
        assert!(!key_fits(&rsa_key, Algorithm::ES256));
        assert!(!key_fits(&rsa_key, Algorithm::EdDSA));

        let p256 = jwk(json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}));
        assert!(key_fits(&p256, Algorithm::ES256));
        assert!(!key_fits(&p256, Algorithm::ES384), "curve must match");
        assert!(!key_fits(&p256, Algorithm::RS256));

        let ed = jwk(json!({"kty": "OKP", "crv": "Ed25519", "x": "AA"}));
        assert!(key_fits(&ed, Algorithm::EdDSA));
        assert!(!key_fits(&ed, Algorithm::ES256));

        let oct = jwk(json!({"kty": "oct", "k": "c2VjcmV0"}));
        for alg in ACCEPTED_ALGORITHMS {
            assert!(!key_fits(&oct, accepted(alg).unwrap()));
        }
    }

    #[test]
    fn declared_key_alg_use_and_ops_must_agree() {
        let mut v = rsa();
        v["alg"] = json!("RS256");
        assert!(key_fits(&jwk(v.clone()), Algorithm::RS256));
        assert!(!key_fits(&jwk(v), Algorithm::RS384));

        let mut v = rsa();
        v["use"] = json!("enc");
        assert!(!key_fits(&jwk(v), Algorithm::RS256));

        let mut v = rsa();
        v["key_ops"] = json!(["encrypt"]);
        assert!(!key_fits(&jwk(v), Algorithm::RS256));
        let mut v = rsa();
        v["key_ops"] = json!(["verify"]);
        assert!(key_fits(&jwk(v), Algorithm::RS256));
    }
}
