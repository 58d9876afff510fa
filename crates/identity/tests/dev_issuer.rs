//! Validation against the embedded dev issuer: the happy path and every
//! way a token can be wrong, expired, misdirected or forged.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use gatehouse_identity::{
    AuthError, DevIssuer, TokenValidator, DEFAULT_LEEWAY, DEV_AUDIENCE, DEV_KEY_FILE,
    MAX_TOKEN_BYTES,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{json, Value};

const ISSUER: &str = "http://127.0.0.1:7474/dev";

struct Fixture {
    _dir: tempfile::TempDir,
    dev: DevIssuer,
    validator: TokenValidator,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let dev = DevIssuer::load_or_create(dir.path(), ISSUER).unwrap();
    // A second handle on the same key file: one goes to the validator.
    let trusted = DevIssuer::load_or_create(dir.path(), ISSUER).unwrap();
    let validator = TokenValidator::new(vec![], Some(trusted), DEFAULT_LEEWAY).unwrap();
    Fixture {
        _dir: dir,
        dev,
        validator,
    }
}

fn now() -> i64 {
    Utc::now().timestamp()
}

fn claims(sub: &str) -> Value {
    json!({
        "iss": ISSUER,
        "sub": sub,
        "aud": DEV_AUDIENCE,
        "iat": now(),
        "exp": now() + 600,
    })
}

fn groups(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[tokio::test]
async fn valid_token_yields_the_identity() {
    let f = fixture();
    let token = f
        .dev
        .issue(
            "alice",
            &groups(&["dba", "analysts"]),
            Some("alice@bank.example"),
            Duration::from_secs(300),
            DEV_AUDIENCE,
        )
        .unwrap();
    let id = f.validator.validate(&token).await.unwrap();
    assert_eq!(id.subject, "alice");
    assert_eq!(id.email.as_deref(), Some("alice@bank.example"));
    assert_eq!(id.groups, ["dba", "analysts"]);
    assert_eq!(id.issuer, ISSUER);
    assert!(id.token_id.as_deref().is_some_and(|j| j.len() >= 16));
    assert!((id.expires_at - (now() + 300)).abs() <= 2);
    assert!(id.in_group("dba"));

    // A trailing newline (token pasted from a file) is tolerated.
    let id = f.validator.validate(&format!("{token}\n")).await.unwrap();
    assert_eq!(id.subject, "alice");
}

#[tokio::test]
async fn each_token_gets_its_own_jti() {
    let f = fixture();
    let issue = || {
        f.dev
            .issue("bob", &[], None, Duration::from_secs(60), DEV_AUDIENCE)
            .unwrap()
    };
    let a = f.validator.validate(&issue()).await.unwrap();
    let b = f.validator.validate(&issue()).await.unwrap();
    assert_ne!(a.token_id, b.token_id);
    assert_eq!(a.email, None);
    assert!(a.groups.is_empty());
}

#[tokio::test]
async fn expired_token_names_its_expiry_and_the_fix() {
    let f = fixture();
    let mut c = claims("alice");
    c["exp"] = json!(1_795_341_600i64 - 400 * 24 * 3600); // long past
    c["iat"] = json!(1_700_000_000);
    let token = f.dev.sign_claims(&c).unwrap();
    let err = f.validator.validate(&token).await.unwrap_err();
    assert!(matches!(err, AuthError::Expired(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("2025-10-18T10:00:00Z"), "{msg}");
    assert!(msg.contains("gatehouse token issue"), "{msg}");
    assert!(!msg.contains(&token));
}

#[tokio::test]
async fn leeway_covers_small_clock_skew_only() {
    let f = fixture();
    let mut c = claims("alice");
    c["exp"] = json!(now() - 10); // within the 30 s leeway
    assert!(f
        .validator
        .validate(&f.dev.sign_claims(&c).unwrap())
        .await
        .is_ok());
    c["exp"] = json!(now() - 120);
    assert!(matches!(
        f.validator.validate(&f.dev.sign_claims(&c).unwrap()).await,
        Err(AuthError::Expired(_))
    ));
}

#[tokio::test]
async fn not_yet_valid_and_future_iat_are_refused() {
    let f = fixture();
    let mut c = claims("alice");
    c["nbf"] = json!(now() + 3600);
    let err = f
        .validator
        .validate(&f.dev.sign_claims(&c).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::NotYetValid(_)), "{err:?}");

    let mut c = claims("alice");
    c["iat"] = json!(now() + 3600);
    let err = f
        .validator
        .validate(&f.dev.sign_claims(&c).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::IssuedInFuture(_)), "{err:?}");
}

#[tokio::test]
async fn wrong_audience_is_refused_and_audience_arrays_work() {
    let f = fixture();
    let token = f
        .dev
        .issue(
            "alice",
            &[],
            None,
            Duration::from_secs(60),
            "some-other-app",
        )
        .unwrap();
    let err = f.validator.validate(&token).await.unwrap_err();
    assert_eq!(
        err,
        AuthError::WrongAudience {
            expected: DEV_AUDIENCE.to_owned()
        }
    );

    let mut c = claims("alice");
    c["aud"] = json!(["other", DEV_AUDIENCE]);
    assert!(f
        .validator
        .validate(&f.dev.sign_claims(&c).unwrap())
        .await
        .is_ok());
    c["aud"] = json!(["other", "another"]);
    assert!(f
        .validator
        .validate(&f.dev.sign_claims(&c).unwrap())
        .await
        .is_err());
}

#[tokio::test]
async fn required_claims_are_enforced() {
    let f = fixture();
    for (claim, expected) in [
        ("exp", AuthError::MissingClaim("exp")),
        ("sub", AuthError::MissingClaim("sub")),
        ("aud", AuthError::MissingClaim("aud")),
    ] {
        let mut c = claims("alice");
        c.as_object_mut().unwrap().remove(claim);
        let err = f
            .validator
            .validate(&f.dev.sign_claims(&c).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err, expected, "without {claim}");
    }
    let mut c = claims("alice");
    c["sub"] = json!("");
    assert_eq!(
        f.validator
            .validate(&f.dev.sign_claims(&c).unwrap())
            .await
            .unwrap_err(),
        AuthError::InvalidClaim("sub")
    );
    let mut c = claims("alice");
    c["exp"] = json!("tomorrow");
    assert!(f
        .validator
        .validate(&f.dev.sign_claims(&c).unwrap())
        .await
        .is_err());
}

#[tokio::test]
async fn unknown_issuer_is_refused_before_any_key_lookup() {
    let f = fixture();
    let mut c = claims("alice");
    c["iss"] = json!("https://evil.example");
    let err = f
        .validator
        .validate(&f.dev.sign_claims(&c).unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AuthError::UntrustedIssuer("`https://evil.example`".into())
    );
    assert!(err.to_string().contains("not trusted by this gateway"));

    // Near-misses are different issuers.
    for iss in [format!("{ISSUER}/"), ISSUER.to_uppercase()] {
        let mut c = claims("alice");
        c["iss"] = json!(iss);
        assert!(matches!(
            f.validator.validate(&f.dev.sign_claims(&c).unwrap()).await,
            Err(AuthError::UntrustedIssuer(_))
        ));
    }
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(
        f.validator
            .validate(&f.dev.sign_claims(&c).unwrap())
            .await
            .unwrap_err(),
        AuthError::MissingIssuer
    );
}

#[tokio::test]
async fn tampered_payload_breaks_the_signature() {
    let f = fixture();
    let token = f
        .dev
        .issue(
            "alice",
            &groups(&["analysts"]),
            None,
            Duration::from_secs(60),
            DEV_AUDIENCE,
        )
        .unwrap();
    let parts: Vec<&str> = token.split('.').collect();

    // Re-encode the payload with an extra group: valid JSON, bad signature.
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["groups"] = json!(["analysts", "dba"]);
    let escalated = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    assert_eq!(
        f.validator.validate(&escalated).await.unwrap_err(),
        AuthError::BadSignature
    );

    // Flip one character in the middle of the payload segment.
    let mut middle = parts[1].as_bytes().to_vec();
    let i = middle.len() / 2;
    middle[i] = if middle[i] == b'A' { b'B' } else { b'A' };
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        String::from_utf8(middle).unwrap(),
        parts[2]
    );
    // Depending on which claim the flip lands in, the token no longer
    // decodes, names another issuer, or fails its signature; never accepted.
    let err = f.validator.validate(&flipped).await.unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::BadSignature | AuthError::Malformed(_) | AuthError::UntrustedIssuer(_)
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains(parts[2]), "no signature echo");
}

#[tokio::test]
async fn another_key_claiming_the_same_kid_is_a_forgery() {
    let f = fixture();
    let other_dir = tempfile::tempdir().unwrap();
    // Same issuer URL, different key: an attacker's own "dev issuer".
    DevIssuer::load_or_create(other_dir.path(), ISSUER).unwrap();
    let pem = std::fs::read(other_dir.path().join(DEV_KEY_FILE)).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(f.dev.kid().to_owned());
    let forged = jsonwebtoken::encode(
        &header,
        &claims("mallory"),
        &EncodingKey::from_ed_pem(&pem).unwrap(),
    )
    .unwrap();
    assert_eq!(
        f.validator.validate(&forged).await.unwrap_err(),
        AuthError::BadSignature
    );

    // With its own kid it is simply an unknown key.
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("attacker-key".to_owned());
    let forged = jsonwebtoken::encode(
        &header,
        &claims("mallory"),
        &EncodingKey::from_ed_pem(&pem).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        f.validator.validate(&forged).await,
        Err(AuthError::UnknownKey(_))
    ));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let f = fixture();
    let payload = b64(&claims("mallory"));
    for header in [
        "eyJhbGciOiJub25lIn0".to_owned(), // {"alg":"none"}
        b64(&json!({"alg": "none", "kid": f.dev.kid()})),
        b64(&json!({"alg": "NONE"})),
    ] {
        for signature in ["", "AAAA"] {
            let token = format!("{header}.{payload}.{signature}");
            let err = f.validator.validate(&token).await.unwrap_err();
            assert!(
                matches!(err, AuthError::AlgorithmNotAccepted(_)),
                "{token}: {err:?}"
            );
        }
    }
}

#[tokio::test]
async fn hmac_with_the_public_key_as_secret_is_refused() {
    let f = fixture();
    let public_x = f.dev.jwks()["keys"][0]["x"].as_str().unwrap().to_owned();
    let public_raw = URL_SAFE_NO_PAD.decode(&public_x).unwrap();
    for (alg, secret) in [
        (Algorithm::HS256, public_raw.clone()),
        (Algorithm::HS384, public_x.as_bytes().to_vec()),
        (Algorithm::HS512, serde_json::to_vec(&f.dev.jwks()).unwrap()),
    ] {
        let mut header = Header::new(alg);
        header.kid = Some(f.dev.kid().to_owned());
        let token = jsonwebtoken::encode(
            &header,
            &claims("mallory"),
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        let err = f.validator.validate(&token).await.unwrap_err();
        assert!(
            matches!(&err, AuthError::AlgorithmNotAccepted(a) if a.starts_with("HS")),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn wrong_algorithm_for_the_key_is_refused() {
    // An ES256 token naming the dev issuer's Ed25519 key id.
    let f = fixture();
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(f.dev.kid().to_owned());
    let token = jsonwebtoken::encode(
        &header,
        &claims("mallory"),
        &EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        f.validator.validate(&token).await,
        Err(AuthError::KeyMismatch { .. })
    ));
}

#[tokio::test]
async fn critical_header_extensions_are_refused() {
    let f = fixture();
    let header = b64(&json!({"alg": "EdDSA", "kid": f.dev.kid(), "crit": ["exp"]}));
    let token = format!("{header}.{}.AAAA", b64(&claims("alice")));
    assert_eq!(
        f.validator.validate(&token).await.unwrap_err(),
        AuthError::UnsupportedCritical
    );
}

#[tokio::test]
async fn token_without_kid_uses_the_single_key() {
    let f = fixture();
    let pem = std::fs::read(f._dir.path().join(DEV_KEY_FILE)).unwrap();
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        &claims("alice"),
        &EncodingKey::from_ed_pem(&pem).unwrap(),
    )
    .unwrap();
    assert_eq!(f.validator.validate(&token).await.unwrap().subject, "alice");
}

#[tokio::test]
async fn oversized_and_malformed_input_is_refused_early() {
    let f = fixture();
    let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert!(matches!(
        f.validator.validate(&huge).await,
        Err(AuthError::Malformed(_))
    ));
    for garbage in ["", "password123", "a.b", "a.b.c", "....", "eyJ.eyJ.eyJ"] {
        let err = f.validator.validate(garbage).await.unwrap_err();
        assert!(matches!(err, AuthError::Malformed(_)), "{garbage}: {err:?}");
        if !garbage.is_empty() {
            assert!(!err.to_string().contains(garbage), "no echo of {garbage}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever a client sends as its password, validation returns an
    /// error (never panics) and never echoes the input.
    #[test]
    fn arbitrary_input_never_panics_or_echoes(input in "\\PC{0,200}") {
        let f = fixture();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let result = rt.block_on(f.validator.validate(&input));
        prop_assert!(result.is_err());
        if input.trim().len() >= 12 {
            prop_assert!(!result.unwrap_err().to_string().contains(input.trim()));
        }
    }

    /// Token-shaped input: three base64url segments of arbitrary bytes.
    #[test]
    fn arbitrary_segments_never_panic(
        a in proptest::collection::vec(any::<u8>(), 0..64),
        b in proptest::collection::vec(any::<u8>(), 0..64),
        c in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let f = fixture();
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(&a),
            URL_SAFE_NO_PAD.encode(&b),
            URL_SAFE_NO_PAD.encode(&c)
        );
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        prop_assert!(rt.block_on(f.validator.validate(&token)).is_err());
    }

    /// A real token with any one character changed is never accepted.
    #[test]
    fn single_character_mutations_are_never_accepted(pos in any::<prop::sample::Index>(), ch in "[A-Za-z0-9_.=-]") {
        let f = fixture();
        let token = f.dev.issue("alice", &["analysts".to_string()], None, Duration::from_secs(60), DEV_AUDIENCE).unwrap();
        let mut bytes = token.clone().into_bytes();
        let i = pos.index(bytes.len());
        bytes[i] = ch.as_bytes()[0];
        let mutated = String::from_utf8(bytes).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        // Only a no-op change may pass (base64 with non-canonical trailing
        // bits is refused), and then it is the original identity.
        if let Ok(id) = rt.block_on(f.validator.validate(&mutated)) {
            prop_assert_eq!(&mutated, &token);
            prop_assert_eq!(id.subject, "alice");
        }
    }
}
