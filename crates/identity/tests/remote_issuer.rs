//! Validation against a remote issuer served by a tiny in-test HTTP server:
//! discovery, JWKS caching, key rotation, the refetch rate limit, and the
//! ways a provider can be misconfigured or unreachable.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use gatehouse_identity::{AuthError, IdentityError, IssuerConfig, TokenValidator, DEFAULT_LEEWAY};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const AUDIENCE: &str = "gatehouse-test";
const DISCOVERY: &str = "/.well-known/openid-configuration";
const JWKS: &str = "/keys";

/// An ES256 signing key and its public JWK.
struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl SigningKey {
    fn generate(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = pair.public_key_raw(); // 0x04 || x || y
        assert_eq!(raw.len(), 65);
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&raw[33..]),
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        });
        SigningKey {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
            jwk,
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    fn sign_with_kid(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// A minimal OIDC provider: discovery and JWKS over HTTP/1.1, counting hits.
struct FakeIdp {
    issuer: String,
    /// What discovery claims the issuer is (normally `issuer`).
    announced_issuer: Mutex<String>,
    jwks: Mutex<Value>,
    hits: Mutex<HashMap<String, usize>>,
    connections: AtomicUsize,
    /// When set, every request gets a 503.
    down: AtomicBool,
}

impl FakeIdp {
    async fn start(keys: &[&SigningKey]) -> Arc<FakeIdp> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let idp = Arc::new(FakeIdp {
            announced_issuer: Mutex::new(issuer.clone()),
            issuer,
            jwks: Mutex::new(Value::Null),
            hits: Mutex::new(HashMap::new()),
            connections: AtomicUsize::new(0),
            down: AtomicBool::new(false),
        });
        idp.publish(keys);
        let server = Arc::clone(&idp);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let server = Arc::clone(&server);
                tokio::spawn(async move { server.serve(stream).await });
            }
        });
        idp
    }

    fn publish(&self, keys: &[&SigningKey]) {
        let keys: Vec<Value> = keys.iter().map(|k| k.jwk.clone()).collect();
        *self.jwks.lock() = json!({ "keys": keys });
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().get(path).copied().unwrap_or(0)
    }

    async fn serve(&self, mut stream: tokio::net::TcpStream) {
        self.connections.fetch_add(1, Ordering::SeqCst);
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let request = String::from_utf8_lossy(&request);
        let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
        *self.hits.lock().entry(path.clone()).or_default() += 1;
        let (status, body) = match path.as_str() {
            _ if self.down.load(Ordering::SeqCst) => ("503 Service Unavailable", "{}".to_owned()),
            DISCOVERY => (
                "200 OK",
                json!({
                    "issuer": *self.announced_issuer.lock(),
                    "jwks_uri": format!("{}{JWKS}", self.issuer),
                })
                .to_string(),
            ),
            JWKS => ("200 OK", self.jwks.lock().to_string()),
            _ => ("404 Not Found", "{}".to_owned()),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    fn config(&self) -> IssuerConfig {
        IssuerConfig {
            allow_insecure_http: true,
            ..IssuerConfig::new(self.issuer.clone(), vec![AUDIENCE.to_owned()])
        }
    }

    fn claims(&self, sub: &str) -> Value {
        let now = Utc::now().timestamp();
        json!({
            "iss": self.issuer,
            "sub": sub,
            "aud": [AUDIENCE, "account"],
            "iat": now,
            "exp": now + 300,
            "email": format!("{sub}@bank.example"),
            "realm_access": {"roles": ["teller", "auditor"]},
            "groups": "ops oncall",
        })
    }
}

fn validator(idp: &FakeIdp, refetch: Duration) -> Arc<TokenValidator> {
    Arc::new(
        TokenValidator::new(vec![idp.config()], None, DEFAULT_LEEWAY)
            .unwrap()
            .with_refetch_interval(refetch),
    )
}

#[tokio::test]
async fn discovery_then_jwks_then_cache() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let v = validator(&idp, Duration::from_secs(10));

    // Nothing is fetched until the first token arrives.
    assert_eq!(idp.connections.load(Ordering::SeqCst), 0);
    let id = v.validate(&key.sign(&idp.claims("alice"))).await.unwrap();
    assert_eq!(id.subject, "alice");
    assert_eq!(id.issuer, idp.issuer);
    assert_eq!(id.email.as_deref(), Some("alice@bank.example"));
    assert_eq!(id.groups, ["ops", "oncall"], "space-separated groups");
    assert_eq!((idp.hits(DISCOVERY), idp.hits(JWKS)), (1, 1));

    for _ in 0..5 {
        v.validate(&key.sign(&idp.claims("bob"))).await.unwrap();
    }
    assert_eq!(
        (idp.hits(DISCOVERY), idp.hits(JWKS)),
        (1, 1),
        "served from cache"
    );
}

#[tokio::test]
async fn dotted_groups_claim_reads_nested_roles() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let mut config = idp.config();
    config.groups_claim = "realm_access.roles".into();
    let v = TokenValidator::new(vec![config], None, DEFAULT_LEEWAY).unwrap();
    let id = v.validate(&key.sign(&idp.claims("alice"))).await.unwrap();
    assert_eq!(id.groups, ["teller", "auditor"]);
}

#[tokio::test]
async fn explicit_jwks_uri_skips_discovery() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let mut config = idp.config();
    config.jwks_uri = Some(format!("{}{JWKS}", idp.issuer));
    let v = TokenValidator::new(vec![config], None, DEFAULT_LEEWAY).unwrap();
    v.validate(&key.sign(&idp.claims("alice"))).await.unwrap();
    assert_eq!((idp.hits(DISCOVERY), idp.hits(JWKS)), (0, 1));
}

#[tokio::test]
async fn key_rotation_triggers_exactly_one_refetch() {
    let old = SigningKey::generate("2024-old");
    let new = SigningKey::generate("2025-new");
    let idp = FakeIdp::start(&[&old]).await;
    let v = validator(&idp, Duration::from_millis(200));
    v.validate(&old.sign(&idp.claims("alice"))).await.unwrap();
    assert_eq!(idp.hits(JWKS), 1);

    idp.publish(&[&old, &new]);
    tokio::time::sleep(Duration::from_millis(250)).await;

    // A burst of tokens signed with the new key: one fetch serves them all.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let v = Arc::clone(&v);
        let token = new.sign(&idp.claims(&format!("user{i}")));
        tasks.push(tokio::spawn(async move { v.validate(&token).await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(idp.hits(JWKS), 2, "exactly one refetch for the new kid");
    assert_eq!(idp.hits(DISCOVERY), 1, "discovery is cached");
    // Old tokens still work; nothing more is fetched.
    v.validate(&old.sign(&idp.claims("alice"))).await.unwrap();
    assert_eq!(idp.hits(JWKS), 2);
}

#[tokio::test]
async fn unknown_kid_after_refetch_is_rejected() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let v = validator(&idp, Duration::ZERO);
    v.validate(&key.sign(&idp.claims("alice"))).await.unwrap();

    let err = v
        .validate(&key.sign_with_kid("made-up", &idp.claims("alice")))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::UnknownKey(_)), "{err:?}");
    assert!(err.to_string().contains("made-up"));
    assert!(!err.is_server_side());
    assert_eq!(idp.hits(JWKS), 2, "the unknown kid caused one refetch");
}

#[tokio::test]
async fn refetches_for_unknown_kids_are_rate_limited() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let v = validator(&idp, Duration::from_secs(10));
    v.validate(&key.sign(&idp.claims("alice"))).await.unwrap();
    assert_eq!(idp.hits(JWKS), 1);

    // A flood of forged kids, sequential and concurrent.
    for i in 0..25 {
        let token = key.sign_with_kid(&format!("forged-{i}"), &idp.claims("mallory"));
        assert!(matches!(
            v.validate(&token).await,
            Err(AuthError::UnknownKey(_))
        ));
    }
    let mut tasks = Vec::new();
    for i in 0..25 {
        let v = Arc::clone(&v);
        let token = key.sign_with_kid(&format!("burst-{i}"), &idp.claims("mallory"));
        tasks.push(tokio::spawn(async move { v.validate(&token).await }));
    }
    for task in tasks {
        assert!(matches!(task.await.unwrap(), Err(AuthError::UnknownKey(_))));
    }
    assert_eq!(idp.hits(JWKS), 1, "no refetch within the interval");
    // The legitimate key keeps working throughout.
    v.validate(&key.sign(&idp.claims("alice"))).await.unwrap();
}

#[tokio::test]
async fn rate_limit_reopens_after_the_interval() {
    let key = SigningKey::generate("k1");
    let late = SigningKey::generate("k2");
    let idp = FakeIdp::start(&[&key]).await;
    let v = validator(&idp, Duration::from_millis(300));
    v.validate(&key.sign(&idp.claims("alice"))).await.unwrap();
    idp.publish(&[&key, &late]);
    // Within the interval the new key is not yet fetched...
    assert!(matches!(
        v.validate(&late.sign(&idp.claims("alice"))).await,
        Err(AuthError::UnknownKey(_))
    ));
    assert_eq!(idp.hits(JWKS), 1);
    // ...after it, it is.
    tokio::time::sleep(Duration::from_millis(350)).await;
    v.validate(&late.sign(&idp.claims("alice"))).await.unwrap();
    assert_eq!(idp.hits(JWKS), 2);
}

#[tokio::test]
async fn discovery_issuer_mismatch_is_rejected() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    *idp.announced_issuer.lock() = "https://someone-else.example".into();
    let v = validator(&idp, Duration::ZERO);
    let err = v
        .validate(&key.sign(&idp.claims("alice")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AuthError::ProviderMisconfigured(_)),
        "{err:?}"
    );
    assert!(err.is_server_side());
    assert!(err.to_string().contains("someone-else.example"), "{err}");
    assert_eq!(idp.hits(JWKS), 0, "keys are never fetched from an impostor");

    // A trailing slash is a different issuer too.
    *idp.announced_issuer.lock() = format!("{}/", idp.issuer);
    assert!(matches!(
        v.validate(&key.sign(&idp.claims("alice"))).await,
        Err(AuthError::ProviderMisconfigured(_))
    ));
}

#[tokio::test]
async fn provider_outage_fails_closed_and_retries_are_rate_limited() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    idp.down.store(true, Ordering::SeqCst);
    let v = validator(&idp, Duration::from_millis(300));
    let token = key.sign(&idp.claims("alice"));
    let err = v.validate(&token).await.unwrap_err();
    assert!(matches!(err, AuthError::ProviderUnreachable(_)), "{err:?}");
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(idp.hits(DISCOVERY), 1);

    // Back up, but within the interval the gateway does not ask again.
    idp.down.store(false, Ordering::SeqCst);
    assert!(v.validate(&token).await.unwrap_err().is_server_side());
    assert_eq!(idp.hits(DISCOVERY), 1);

    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(v.validate(&token).await.unwrap().subject, "alice");
}

#[tokio::test]
async fn jwks_without_usable_keys_is_a_provider_problem() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[]).await;
    *idp.jwks.lock() = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k1"}]});
    let v = validator(&idp, Duration::ZERO);
    let err = v
        .validate(&key.sign(&idp.claims("alice")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AuthError::ProviderMisconfigured(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("no usable signing keys"), "{err}");
}

#[tokio::test]
async fn unreachable_provider_fails_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    drop(listener); // nothing listens there now
    let key = SigningKey::generate("k1");
    let config = IssuerConfig {
        allow_insecure_http: true,
        ..IssuerConfig::new(issuer.clone(), vec![AUDIENCE.to_owned()])
    };
    let v = TokenValidator::new(vec![config], None, DEFAULT_LEEWAY).unwrap();
    let now = Utc::now().timestamp();
    let token = key.sign(&json!({
        "iss": issuer, "sub": "alice", "aud": AUDIENCE, "exp": now + 60
    }));
    let err = v.validate(&token).await.unwrap_err();
    assert!(matches!(err, AuthError::ProviderUnreachable(_)), "{err:?}");
    assert!(err.is_server_side());
    assert!(err.to_string().starts_with("identity provider unreachable"));
    assert!(!err.to_string().contains(&token));
}

#[tokio::test]
async fn tokens_for_other_audiences_or_issuers_are_refused() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let v = validator(&idp, Duration::from_secs(10));
    let mut claims = idp.claims("alice");
    claims["aud"] = json!("account");
    assert!(matches!(
        v.validate(&key.sign(&claims)).await,
        Err(AuthError::WrongAudience { .. })
    ));
    let mut claims = idp.claims("alice");
    claims["iss"] = json!("http://127.0.0.1:1");
    assert!(matches!(
        v.validate(&key.sign(&claims)).await,
        Err(AuthError::UntrustedIssuer(_))
    ));
}

#[test]
fn plain_http_to_a_remote_issuer_is_refused_at_startup() {
    let config = IssuerConfig {
        allow_insecure_http: true,
        ..IssuerConfig::new("http://idp.bank.example", vec![AUDIENCE.to_owned()])
    };
    let err = TokenValidator::new(vec![config], None, DEFAULT_LEEWAY).unwrap_err();
    assert!(matches!(err, IdentityError::InsecureUrl { .. }), "{err}");
    assert!(err.to_string().contains("https"));
}
