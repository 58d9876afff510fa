//! The relying-party side of sign-in: discovery, the authorization URL and
//! the code exchange, against a real OIDC provider.

use crate::state::is_loopback_host;
use crate::ConsoleError;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// How long a fetched discovery document is used before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// Largest answer read from the provider.
const MAX_RESPONSE: usize = 256 * 1024;

/// The two endpoints sign-in needs.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Endpoints {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
}

/// A successful token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub id_token: Option<String>,
}

/// A token-endpoint error (RFC 6749 §5.2).
#[derive(Debug, Deserialize)]
struct TokenErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// One OIDC provider and its cached discovery document.
pub(crate) struct Provider {
    issuer: String,
    http: reqwest::Client,
    endpoints: tokio::sync::Mutex<Option<(Instant, Endpoints)>>,
}

impl Provider {
    pub(crate) fn new(issuer: &str) -> Result<Provider, ConsoleError> {
        let bad = |why: &str| ConsoleError::BadIssuer(issuer.to_string(), why.to_string());
        let url = reqwest::Url::parse(issuer).map_err(|e| bad(&e.to_string()))?;
        let host = url.host_str().ok_or_else(|| bad("it has no host"))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback_host(host) => {}
            _ => {
                return Err(bad(
                    "use https (plain http only to 127.0.0.1, ::1 or localhost)",
                ))
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| bad(&format!("cannot build an HTTP client: {e}")))?;
        Ok(Provider {
            issuer: issuer.to_string(),
            http,
            endpoints: tokio::sync::Mutex::new(None),
        })
    }

    /// The issuer identifier as configured.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The provider's endpoints, from its discovery document (cached).
    pub(crate) async fn endpoints(&self) -> Result<Endpoints, String> {
        let mut cached = self.endpoints.lock().await;
        if let Some((at, e)) = cached.as_ref() {
            if at.elapsed() < DISCOVERY_TTL {
                return Ok(e.clone());
            }
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let body = read_limited(
            self.http
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("cannot fetch {url}: {e}"))?,
        )
        .await
        .map_err(|e| format!("{url}: {e}"))?;
        let endpoints: Endpoints = serde_json::from_slice(&body)
            .map_err(|e| format!("{url} is not an OIDC discovery document: {e}"))?;
        if endpoints.issuer.trim_end_matches('/') != self.issuer.trim_end_matches('/') {
            return Err(format!(
                "{url} names issuer \"{}\", not \"{}\"",
                endpoints.issuer, self.issuer
            ));
        }
        for (what, u) in [
            ("authorization_endpoint", &endpoints.authorization_endpoint),
            ("token_endpoint", &endpoints.token_endpoint),
        ] {
            let parsed =
                reqwest::Url::parse(u).map_err(|e| format!("discovery {what} \"{u}\": {e}"))?;
            let local = parsed.host_str().is_some_and(is_loopback_host);
            if parsed.scheme() != "https" && !(parsed.scheme() == "http" && local) {
                return Err(format!("discovery {what} \"{u}\" is not https"));
            }
        }
        *cached = Some((Instant::now(), endpoints.clone()));
        Ok(endpoints)
    }

    /// Exchange an authorization code (with its PKCE verifier) for tokens.
    pub(crate) async fn exchange(
        &self,
        client_id: &str,
        client_secret: Option<&str>,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenResponse, String> {
        let endpoints = self.endpoints().await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        let mut req = self.http.post(&endpoints.token_endpoint);
        match client_secret {
            // client_secret_basic: both parts form-encoded first (RFC 6749 §2.3.1).
            Some(secret) => {
                req = req.basic_auth(form_encode(client_id), Some(form_encode(secret)));
            }
            None => form.push(("client_id", client_id)),
        }
        let resp = req
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("cannot reach the token endpoint: {e}"))?;
        let status = resp.status();
        let body = read_limited(resp).await?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<TokenErrorBody>(&body) {
                Ok(e) => format!(
                    "the provider refused the code ({}{})",
                    e.error,
                    e.error_description
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                ),
                Err(_) => format!("the token endpoint answered HTTP {status}"),
            });
        }
        serde_json::from_slice(&body)
            .map_err(|e| format!("the token endpoint's answer is not a token response: {e}"))
    }
}

/// Read a response body, refusing errors and oversized answers.
async fn read_limited(resp: reqwest::Response) -> Result<Vec<u8>, String> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE as u64)
    {
        return Err("the answer is too large".into());
    }
    let mut resp = resp;
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        out.extend_from_slice(&chunk);
        if out.len() > MAX_RESPONSE {
            return Err("the answer is too large".into());
        }
    }
    Ok(out)
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub(crate) fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The claims of an ID token received straight from the token endpoint.
///
/// Its signature is not checked: OIDC Core §3.1.3.7 lets a client rely on
/// the TLS connection to the token endpoint for tokens it receives there.
/// Only `nonce` and `sub` are read, to bind the response to this sign-in;
/// who the person is comes from the access token, which is fully validated.
pub(crate) fn id_token_claims(
    id_token: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut parts = id_token.split('.');
    let payload = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(p), Some(_), None) => p,
        _ => return Err("the ID token is not a JWT".into()),
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .or_else(|_| URL_SAFE.decode(payload))
        .map_err(|_| "the ID token's payload is not base64url".to_string())?;
    match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err("the ID token's payload is not a JSON object".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(form_encode("gatehouse-console"), "gatehouse-console");
    }

    #[test]
    fn id_token_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"nonce":"n1","sub":"omar"}"#);
        let claims = id_token_claims(&format!("h.{payload}.s")).unwrap();
        assert_eq!(claims["nonce"], "n1");
        assert!(id_token_claims("a.b").is_err());
        assert!(id_token_claims("a.!!.c").is_err());
        let array = URL_SAFE_NO_PAD.encode(b"[1]");
        assert!(id_token_claims(&format!("h.{array}.s")).is_err());
    }

    #[test]
    fn issuer_must_be_https_or_loopback() {
        assert!(Provider::new("https://login.example.com").is_ok());
        assert!(Provider::new("http://127.0.0.1:4444").is_ok());
        assert!(Provider::new("http://login.example.com").is_err());
        assert!(Provider::new("not a url").is_err());
    }
}
