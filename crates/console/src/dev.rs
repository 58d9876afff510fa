//! A minimal authorization server in front of the gateway's dev issuer, so
//! demo sign-ins take the same authorization-code + PKCE path as real ones.
//!
//! `/dev/authorize` shows a page to pick a demo identity (or type one) and
//! redirects back with a one-time code; `/dev/token` exchanges that code
//! and its PKCE verifier for an access token minted by [`DevIssuer`] for
//! [`DEV_AUDIENCE`], plus an ID token carrying the nonce. Anyone who can
//! reach these pages can be anyone: they exist only while the dev issuer
//! is on, which is never in production.

use crate::auth::redirect;
use crate::html::{document, error_page, respond, top_bar};
use crate::pkce::{challenge_s256, ct_eq, random_token, valid_verifier};
use crate::state::{now, App, SignIn, Table};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use gatehouse_identity::{DevIssuer, DEV_AUDIENCE};
use maud::html;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// How long a dev access token (and so a dev console session) lasts.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(8 * 3600);
/// How long a code waits to be exchanged.
const CODE_TTL_SECS: i64 = 60;
/// Most codes outstanding at once.
const MAX_CODES: usize = 1000;

/// The endpoints to add to the dev issuer's discovery document
/// (`DevIssuer::discovery()`), so OIDC clients can find the dev
/// authorization-code flow the console serves under `public_url`.
pub fn dev_discovery_endpoints(public_url: &str) -> serde_json::Value {
    let base = public_url.trim_end_matches('/');
    json!({
        "authorization_endpoint": format!("{base}/dev/authorize"),
        "token_endpoint": format!("{base}/dev/token"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
    })
}

/// A code between `/dev/authorize` and `/dev/token`.
#[derive(Clone)]
struct DevCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    subject: String,
    email: Option<String>,
    groups: Vec<String>,
}

/// Tokens as the token endpoint returns them.
pub(crate) type Tokens = crate::oidc::TokenResponse;

/// A token-endpoint refusal (RFC 6749 §5.2).
#[derive(Debug)]
pub(crate) struct TokenError {
    pub error: &'static str,
    pub description: String,
}

fn refuse(error: &'static str, description: impl Into<String>) -> TokenError {
    TokenError {
        error,
        description: description.into(),
    }
}

/// The dev authorization server.
pub(crate) struct DevAuthority {
    issuer: Arc<DevIssuer>,
    client_id: String,
    redirect_uri: String,
    codes: Table<DevCode>,
}

impl DevAuthority {
    pub(crate) fn new(issuer: Arc<DevIssuer>, client_id: String, redirect_uri: String) -> Self {
        DevAuthority {
            issuer,
            client_id,
            redirect_uri,
            codes: Table::new(MAX_CODES),
        }
    }

    /// The dev issuer's URL.
    pub(crate) fn issuer(&self) -> &str {
        self.issuer.issuer()
    }

    /// Check an authorization request; the error is shown on the page
    /// (never redirected, since the redirect URI may be the problem).
    fn check(&self, p: &AuthorizeParams) -> Result<(), String> {
        if p.client_id != self.client_id {
            return Err(format!("unknown client \"{}\"", p.client_id));
        }
        if p.redirect_uri != self.redirect_uri {
            return Err(format!(
                "redirect_uri \"{}\" is not registered (expected {})",
                p.redirect_uri, self.redirect_uri
            ));
        }
        if p.response_type != "code" {
            return Err("only response_type=code is supported".into());
        }
        if p.code_challenge_method != "S256" || p.code_challenge.len() != 43 {
            return Err("a PKCE code_challenge with code_challenge_method=S256 is required".into());
        }
        if p.state.is_empty() || p.state.len() > 512 {
            return Err("a state parameter is required".into());
        }
        if p.nonce.len() > 512 {
            return Err("the nonce is too long".into());
        }
        Ok(())
    }

    /// Exchange a code for tokens: the `/dev/token` logic, also called
    /// in-process by the console's callback (the gateway's certificate may
    /// be self-signed, so the console does not call itself over HTTPS).
    pub(crate) fn exchange(
        &self,
        client_id: &str,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<Tokens, TokenError> {
        let c = self.codes.take(code).ok_or_else(|| {
            refuse(
                "invalid_grant",
                "the code is unknown, expired or already used",
            )
        })?;
        if c.client_id != client_id {
            return Err(refuse(
                "invalid_grant",
                "the code was issued to another client",
            ));
        }
        if c.redirect_uri != redirect_uri {
            return Err(refuse(
                "invalid_grant",
                "redirect_uri does not match the authorization request",
            ));
        }
        if !valid_verifier(verifier) || !ct_eq(&challenge_s256(verifier), &c.challenge) {
            return Err(refuse(
                "invalid_grant",
                "the PKCE code_verifier does not match the code_challenge",
            ));
        }
        let access_token = self
            .issuer
            .issue(
                &c.subject,
                &c.groups,
                c.email.as_deref(),
                DEV_TOKEN_TTL,
                DEV_AUDIENCE,
            )
            .map_err(|e| refuse("server_error", e.to_string()))?;
        let t = now();
        let mut claims = json!({
            "iss": self.issuer.issuer(),
            "sub": c.subject,
            "aud": c.client_id,
            "azp": c.client_id,
            "iat": t,
            "exp": t + DEV_TOKEN_TTL.as_secs() as i64,
            "groups": c.groups,
        });
        if let Some(nonce) = &c.nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Some(email) = &c.email {
            claims["email"] = json!(email);
        }
        let id_token = self
            .issuer
            .sign_claims(&claims)
            .map_err(|e| refuse("server_error", e.to_string()))?;
        Ok(Tokens {
            access_token,
            id_token: Some(id_token),
        })
    }
}

/// The parameters of an authorization request, also carried through the
/// page's form.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AuthorizeParams {
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    response_type: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    nonce: String,
    #[serde(default)]
    code_challenge: String,
    #[serde(default)]
    code_challenge_method: String,
}

/// What the page posts back: the request plus the chosen identity.
#[derive(Debug, Deserialize)]
pub(crate) struct AuthorizeForm {
    #[serde(flatten)]
    params: AuthorizeParams,
    /// A configured identity's subject, or empty for the typed one.
    #[serde(default)]
    pick: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    groups: String,
}

fn authority(app: &App) -> Option<&DevAuthority> {
    match &app.signin {
        SignIn::Dev(d) => Some(d),
        SignIn::Oidc(_) => None,
    }
}

fn bad_request(message: &str) -> Response {
    error_page(
        None,
        StatusCode::BAD_REQUEST,
        "Dev sign-in refused",
        message,
        Some(("/login", "Start sign-in again")),
    )
}

/// `GET /dev/authorize`: the identity picker.
pub(crate) async fn authorize_page(
    State(app): State<Arc<App>>,
    Query(p): Query<AuthorizeParams>,
) -> Response {
    let Some(dev) = authority(&app) else {
        return crate::html::not_found(None, "Dev sign-in is off on this gateway.");
    };
    if let Err(e) = dev.check(&p) {
        return bad_request(&e);
    }
    let hidden = html! {
        input type="hidden" name="client_id" value=(p.client_id);
        input type="hidden" name="redirect_uri" value=(p.redirect_uri);
        input type="hidden" name="response_type" value=(p.response_type);
        input type="hidden" name="scope" value=(p.scope);
        input type="hidden" name="state" value=(p.state);
        input type="hidden" name="nonce" value=(p.nonce);
        input type="hidden" name="code_challenge" value=(p.code_challenge);
        input type="hidden" name="code_challenge_method" value=(p.code_challenge_method);
    };
    let body = html! {
        section.card.narrow #dev-signin {
            h1 { "Dev sign-in" }
            p.warning {
                "This gateway runs its built-in dev issuer: anyone who reaches this page can sign in as anyone. "
                "Use it for demos only; production gateways sign in with your identity provider."
            }
            @if !app.dev_identities.is_empty() {
                h2 { "Demo identities" }
                form.picks method="post" action="/dev/authorize" {
                    (hidden)
                    @for id in &app.dev_identities {
                        button.pick type="submit" name="pick" value=(id.subject) {
                            strong { (id.subject) }
                            @if let Some(e) = &id.email { span.muted { " · " (e) } }
                            br;
                            span.groups {
                                @if id.groups.is_empty() { "no groups" } @else { (id.groups.join(", ")) }
                            }
                        }
                    }
                }
            }
            h2 { "Someone else" }
            form.stack method="post" action="/dev/authorize" {
                (hidden)
                input type="hidden" name="pick" value="";
                label { "Subject" input name="subject" required maxlength="200" autocomplete="off" placeholder="e.g. zoe"; }
                label { "Email (optional)" input name="email" type="email" maxlength="200" autocomplete="off"; }
                label { "Groups (comma-separated)" input name="groups" maxlength="1000" autocomplete="off" placeholder="e.g. approvers, dba"; }
                button.primary type="submit" { "Sign in" }
            }
        }
    };
    respond(
        StatusCode::OK,
        document("Dev sign-in", top_bar(None, ""), body),
    )
}

/// `POST /dev/authorize`: issue a one-time code and send the browser back.
pub(crate) async fn authorize_submit(
    State(app): State<Arc<App>>,
    Form(f): Form<AuthorizeForm>,
) -> Response {
    let Some(dev) = authority(&app) else {
        return crate::html::not_found(None, "Dev sign-in is off on this gateway.");
    };
    if let Err(e) = dev.check(&f.params) {
        return bad_request(&e);
    }
    let (subject, email, groups) = if f.pick.is_empty() {
        let groups: Vec<String> = f
            .groups
            .split([',', ' '])
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(String::from)
            .collect();
        let email = Some(f.email.trim().to_string()).filter(|e| !e.is_empty());
        (f.subject.trim().to_string(), email, groups)
    } else {
        match app.dev_identities.iter().find(|i| i.subject == f.pick) {
            Some(i) => (i.subject.clone(), i.email.clone(), i.groups.clone()),
            None => return bad_request("that demo identity is not configured"),
        }
    };
    if subject.is_empty()
        || subject.len() > 200
        || subject.chars().any(char::is_control)
        || groups.iter().any(|g| g.len() > 200)
        || email.as_ref().is_some_and(|e| e.len() > 200)
    {
        return bad_request("give a subject of at most 200 characters (and short groups)");
    }
    let code = random_token();
    dev.codes.insert(
        &code,
        now() + CODE_TTL_SECS,
        DevCode {
            client_id: f.params.client_id.clone(),
            redirect_uri: f.params.redirect_uri.clone(),
            challenge: f.params.code_challenge.clone(),
            nonce: Some(f.params.nonce.clone()).filter(|n| !n.is_empty()),
            subject,
            email,
            groups,
        },
    );
    let Ok(mut url) = reqwest::Url::parse(&f.params.redirect_uri) else {
        return bad_request("the redirect URI is not a URL");
    };
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &f.params.state);
    redirect(url.as_str())
}

/// The token request (RFC 6749 §4.1.3 with RFC 7636's verifier).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    code_verifier: String,
}

/// `POST /dev/token`: the token endpoint, for clients other than the
/// console itself.
pub(crate) async fn token(State(app): State<Arc<App>>, Form(f): Form<TokenForm>) -> Response {
    let Some(dev) = authority(&app) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let result = if f.grant_type != "authorization_code" {
        Err(refuse(
            "unsupported_grant_type",
            "only authorization_code is supported",
        ))
    } else {
        dev.exchange(&f.client_id, &f.code, &f.code_verifier, &f.redirect_uri)
    };
    match result {
        Ok(t) => Json(json!({
            "access_token": t.access_token,
            "id_token": t.id_token,
            "token_type": "Bearer",
            "expires_in": DEV_TOKEN_TTL.as_secs(),
        }))
        .into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": e.error, "error_description": e.description})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority() -> (tempfile::TempDir, DevAuthority) {
        let dir = tempfile::tempdir().unwrap();
        let issuer = DevIssuer::load_or_create(dir.path(), "https://127.0.0.1:9/dev").unwrap();
        (
            dir,
            DevAuthority::new(
                Arc::new(issuer),
                "gatehouse-console".into(),
                "https://127.0.0.1:9/callback".into(),
            ),
        )
    }

    fn code(dev: &DevAuthority, verifier: &str) -> String {
        let code = random_token();
        dev.codes.insert(
            &code,
            now() + 60,
            DevCode {
                client_id: "gatehouse-console".into(),
                redirect_uri: "https://127.0.0.1:9/callback".into(),
                challenge: challenge_s256(verifier),
                nonce: Some("n".into()),
                subject: "omar".into(),
                email: None,
                groups: vec!["approvers".into()],
            },
        );
        code
    }

    #[test]
    fn codes_need_the_verifier_and_work_once() {
        let (_dir, dev) = authority();
        let verifier = random_token();
        let c = code(&dev, &verifier);
        let wrong = dev.exchange(
            "gatehouse-console",
            &c,
            &random_token(),
            "https://127.0.0.1:9/callback",
        );
        assert_eq!(wrong.unwrap_err().error, "invalid_grant");
        // A failed attempt burns the code, so it cannot be guessed at.
        assert!(dev
            .exchange(
                "gatehouse-console",
                &c,
                &verifier,
                "https://127.0.0.1:9/callback"
            )
            .is_err());
        let c = code(&dev, &verifier);
        let t = dev
            .exchange(
                "gatehouse-console",
                &c,
                &verifier,
                "https://127.0.0.1:9/callback",
            )
            .unwrap();
        let claims = crate::oidc::id_token_claims(t.id_token.as_deref().unwrap()).unwrap();
        assert_eq!(claims["nonce"], "n");
        assert_eq!(claims["sub"], "omar");
        assert!(dev
            .exchange(
                "gatehouse-console",
                &c,
                &verifier,
                "https://127.0.0.1:9/callback"
            )
            .is_err());
    }

    #[test]
    fn redirect_uri_and_client_must_match() {
        let (_dir, dev) = authority();
        let verifier = random_token();
        let c = code(&dev, &verifier);
        assert!(dev
            .exchange("gatehouse-console", &c, &verifier, "https://evil/callback")
            .is_err());
        let c = code(&dev, &verifier);
        assert!(dev
            .exchange("other", &c, &verifier, "https://127.0.0.1:9/callback")
            .is_err());
        let p = AuthorizeParams {
            client_id: "gatehouse-console".into(),
            redirect_uri: "https://evil/callback".into(),
            response_type: "code".into(),
            scope: "openid".into(),
            state: "s".into(),
            nonce: "n".into(),
            code_challenge: challenge_s256(&verifier),
            code_challenge_method: "S256".into(),
        };
        assert!(dev.check(&p).is_err());
        let p = AuthorizeParams {
            redirect_uri: "https://127.0.0.1:9/callback".into(),
            ..p
        };
        assert!(dev.check(&p).is_ok());
        let p = AuthorizeParams {
            code_challenge_method: "plain".into(),
            ..p
        };
        assert!(dev.check(&p).is_err());
    }

    #[test]
    fn discovery_endpoints_point_here() {
        let d = dev_discovery_endpoints("https://gw:8443/");
        assert_eq!(d["authorization_endpoint"], "https://gw:8443/dev/authorize");
        assert_eq!(d["token_endpoint"], "https://gw:8443/dev/token");
    }
}
