//! Sign-in, the console session, and CSRF.
//!
//! `/login` starts the OIDC authorization-code flow with PKCE (S256),
//! `state` and `nonce`, all kept server-side under a random, short-lived
//! cookie; `/callback` checks `state` in constant time, exchanges the code,
//! validates the access token with the gateway's [`TokenValidator`] (the
//! same checks as a database login) and opens a console session under
//! another random cookie, ending when the token expires. Forms carry a
//! per-session CSRF token.
//!
//! [`TokenValidator`]: gatehouse_identity::TokenValidator

use crate::html::{document, error_page, respond, top_bar};
use crate::pkce::{challenge_s256, ct_eq, random_token};
use crate::state::{now, App, ConsoleSession, PendingLogin, SignIn, LOGIN_TTL_SECS};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use gatehouse_core::Identity;
use maud::html;
use serde::Deserialize;
use std::sync::Arc;

/// Cookie naming the console session.
pub(crate) const SESSION_COOKIE: &str = "gatehouse_console";
/// Cookie naming a sign-in in progress.
pub(crate) const LOGIN_COOKIE: &str = "gatehouse_signin";

/// The signed-in person looking at a page.
#[derive(Clone)]
pub(crate) struct Viewer {
    pub identity: Identity,
    pub csrf: String,
    pub auditor: bool,
    /// The session cookie's value (to end it on sign-out).
    pub sid: String,
}

impl Viewer {
    /// Email, else subject.
    pub(crate) fn name(&self) -> String {
        gatehouse_approvals::model::display_name(&self.identity)
    }

    /// Whether `token` is this session's CSRF token.
    pub(crate) fn csrf_ok(&self, token: &str) -> bool {
        ct_eq(&self.csrf, token)
    }
}

/// The value of cookie `name`, if the request carries it.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn set_cookie(app: &App, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if app.secure_cookies { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        max_age.max(0)
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("x=; Max-Age=0"))
}

impl App {
    /// The viewer behind the request's session cookie, if it is live.
    pub(crate) fn viewer(&self, headers: &HeaderMap) -> Option<Viewer> {
        let sid = cookie(headers, SESSION_COOKIE)?;
        let s = self.sessions.get(sid)?;
        Some(Viewer {
            auditor: self.is_auditor(&s.identity),
            identity: s.identity,
            csrf: s.csrf,
            sid: sid.to_string(),
        })
    }
}

impl FromRequestParts<Arc<App>> for Viewer {
    type Rejection = Response;

    /// Pages need a signed-in viewer: a GET without one is sent to sign in
    /// and brought back; anything else gets a page saying to sign in again.
    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        if let Some(v) = app.viewer(&parts.headers) {
            return Ok(v);
        }
        if parts.method == Method::GET || parts.method == Method::HEAD {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            return Err(redirect(&format!(
                "/login?next={}",
                crate::html::url_part(next)
            )));
        }
        Err(error_page(
            None,
            StatusCode::UNAUTHORIZED,
            "Signed out",
            "Your console session has ended (it lasts as long as your sign-in token), so nothing was changed. Sign in again and repeat the action.",
            Some(("/login", "Sign in")),
        ))
    }
}

/// A 303 redirect.
pub(crate) fn redirect(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Keep only local paths as the page to return to after sign-in, so the
/// sign-in flow cannot be used to send people elsewhere.
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.len() <= 2048
                && !n.chars().any(char::is_control)
                && !n.starts_with("/login")
                && !n.starts_with("/callback") =>
        {
            n.to_string()
        }
        _ => "/approvals".to_string(),
    }
}

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    /// Set when already sent to `public_url` once, so a proxy that rewrites
    /// `Host` cannot cause a redirect loop.
    moved: Option<String>,
}

/// `GET /login`: start the authorization-code flow.
pub(crate) async fn login(
    State(app): State<Arc<App>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if app.viewer(&headers).is_some() {
        return redirect(&next);
    }
    // The callback comes back to public_url; sign-in state must be under
    // that host's cookie, so start there.
    // HTTP/1.1 names the host in `Host`, HTTP/2 in the `:authority` the URI carries.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(String::from)
        .or_else(|| uri.authority().map(|a| a.as_str().to_string()));
    if let (Some(host), None) = (host, &q.moved) {
        if !host.eq_ignore_ascii_case(&app.public_authority) {
            return redirect(&format!(
                "{}/login?moved=1&next={}",
                app.public_url,
                crate::html::url_part(&next)
            ));
        }
    }
    let authorization_endpoint = match &app.signin {
        SignIn::Oidc(p) => match p.endpoints().await {
            Ok(e) => e.authorization_endpoint,
            Err(e) => {
                tracing::warn!(error = %e, "console sign-in: provider discovery failed");
                return error_page(
                    None,
                    StatusCode::BAD_GATEWAY,
                    "Sign-in provider unreachable",
                    &format!("The console could not read the sign-in provider's configuration: {e}. Try again in a minute; if it persists, ask an administrator to check [console] issuer."),
                    Some((&format!("/login?next={}", crate::html::url_part(&next)), "Try again")),
                );
            }
        },
        SignIn::Dev(_) => format!("{}/dev/authorize", app.public_url),
    };
    let login = PendingLogin {
        verifier: random_token(),
        state: random_token(),
        nonce: random_token(),
        next,
    };
    let Ok(mut url) = reqwest::Url::parse(&authorization_endpoint) else {
        return error_page(
            None,
            StatusCode::BAD_GATEWAY,
            "Sign-in provider misconfigured",
            "The provider's authorization endpoint is not a URL.",
            None,
        );
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", &app.redirect_uri)
        .append_pair("scope", &app.scopes.join(" "))
        .append_pair("state", &login.state)
        .append_pair("nonce", &login.nonce)
        .append_pair("code_challenge", &challenge_s256(&login.verifier))
        .append_pair("code_challenge_method", "S256");
    let cookie_value = random_token();
    app.logins
        .insert(&cookie_value, now() + LOGIN_TTL_SECS, login);
    let mut r = redirect(url.as_str());
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&app, LOGIN_COOKIE, &cookie_value, LOGIN_TTL_SECS),
    );
    r
}

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// RFC 9207: which issuer sent this response (checked when present).
    iss: Option<String>,
}

fn signin_failed(status: StatusCode, message: &str) -> Response {
    error_page(
        None,
        status,
        "Sign-in failed",
        message,
        Some(("/login", "Start again")),
    )
}

/// `GET /callback`: finish the flow and open the console session.
pub(crate) async fn callback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let pending = cookie(&headers, LOGIN_COOKIE).and_then(|c| app.logins.take(c));
    let Some(login) = pending else {
        if app.viewer(&headers).is_some() {
            // A reload of a finished sign-in: nothing to do.
            return redirect("/approvals");
        }
        return signin_failed(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired or was already used, or your browser did not keep the console's cookie. Start again from the console.",
        );
    };
    let clear_login = set_cookie(&app, LOGIN_COOKIE, "", 0);
    let fail = |status: StatusCode, message: &str| {
        let mut r = signin_failed(status, message);
        r.headers_mut()
            .append(header::SET_COOKIE, clear_login.clone());
        r
    };
    let state_ok = q.state.as_deref().is_some_and(|s| ct_eq(s, &login.state));
    if !state_ok {
        return fail(
            StatusCode::BAD_REQUEST,
            "The sign-in response does not belong to the sign-in this browser started (state mismatch). Start again.",
        );
    }
    if let Some(iss) = &q.iss {
        if iss.trim_end_matches('/') != app.expected_issuer().trim_end_matches('/') {
            return fail(
                StatusCode::BAD_REQUEST,
                "The sign-in response came from a different issuer than the console signs in with.",
            );
        }
    }
    if let Some(error) = &q.error {
        return fail(
            StatusCode::UNAUTHORIZED,
            &format!(
                "The sign-in provider refused: {error}{}",
                q.error_description
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
        );
    }
    let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "The sign-in response carries no authorization code.",
        );
    };
    let tokens = match &app.signin {
        SignIn::Oidc(p) => {
            p.exchange(
                &app.client_id,
                app.client_secret.as_deref(),
                code,
                &login.verifier,
                &app.redirect_uri,
            )
            .await
        }
        SignIn::Dev(d) => d
            .exchange(&app.client_id, code, &login.verifier, &app.redirect_uri)
            .map_err(|e| e.description),
    };
    let tokens = match tokens {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in: code exchange failed");
            return fail(
                StatusCode::BAD_GATEWAY,
                &format!("Could not finish sign-in: {e}."),
            );
        }
    };
    let identity = match app.validator.validate(&tokens.access_token).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in: access token refused");
            return fail(
                StatusCode::UNAUTHORIZED,
                &format!("The access token from the sign-in provider was refused: {e}"),
            );
        }
    };
    if identity.issuer.trim_end_matches('/') != app.expected_issuer().trim_end_matches('/') {
        return fail(
            StatusCode::UNAUTHORIZED,
            "The access token was issued by a different issuer than the console signs in with.",
        );
    }
    if app.scopes.iter().any(|s| s == "openid") {
        let Some(id_token) = tokens.id_token.as_deref() else {
            return fail(
                StatusCode::BAD_GATEWAY,
                "The sign-in provider returned no ID token, so the sign-in cannot be tied to this browser.",
            );
        };
        let claims = match crate::oidc::id_token_claims(id_token) {
            Ok(c) => c,
            Err(e) => return fail(StatusCode::BAD_GATEWAY, &e),
        };
        let nonce_ok = claims
            .get("nonce")
            .and_then(|n| n.as_str())
            .is_some_and(|n| ct_eq(n, &login.nonce));
        if !nonce_ok {
            return fail(
                StatusCode::BAD_REQUEST,
                "The ID token does not carry this sign-in's nonce. Start again.",
            );
        }
        if claims.get("sub").and_then(|s| s.as_str()) != Some(identity.subject.as_str()) {
            return fail(
                StatusCode::UNAUTHORIZED,
                "The ID token and the access token name different people.",
            );
        }
    }
    let lifetime = identity.expires_at - now();
    if lifetime <= 0 {
        return fail(
            StatusCode::UNAUTHORIZED,
            "The access token has already expired; check the clocks of the gateway and the provider.",
        );
    }
    tracing::info!(subject = %identity.subject, "console sign-in");
    let sid = random_token();
    app.sessions.insert(
        &sid,
        identity.expires_at,
        ConsoleSession {
            identity,
            csrf: random_token(),
        },
    );
    let mut r = redirect(&login.next);
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&app, SESSION_COOKIE, &sid, lifetime),
    );
    r.headers_mut().append(header::SET_COOKIE, clear_login);
    r
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: end the console session.
pub(crate) async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(v) = app.viewer(&headers) {
        if !v.csrf_ok(&form.csrf) {
            return error_page(
                Some(&v),
                StatusCode::FORBIDDEN,
                "Refused",
                "The form did not carry this session's security token, so you were not signed out. Reload the page and try again.",
                None,
            );
        }
        app.sessions.remove(&v.sid);
    }
    let mut r = redirect("/signed-out");
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&app, SESSION_COOKIE, "", 0));
    r
}

/// `GET /signed-out`: a page with a way back in (no automatic sign-in, so
/// signing out sticks).
pub(crate) async fn signed_out() -> Response {
    respond(
        StatusCode::OK,
        document(
            "Signed out",
            top_bar(None, ""),
            html! {
                section.card.narrow {
                    h1 { "You are signed out" }
                    p { "Your console session has ended on this browser." }
                    p { a.button href="/login" { "Sign in" } }
                }
            },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_be_local() {
        assert_eq!(safe_next(Some("/approvals/4")), "/approvals/4");
        assert_eq!(safe_next(Some("/sessions?x=1")), "/sessions?x=1");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "evil",
            "/login?next=/x",
            "/a\nb",
        ] {
            assert_eq!(safe_next(Some(bad)), "/approvals", "{bad}");
        }
        assert_eq!(safe_next(None), "/approvals");
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; gatehouse_console=abc"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "gatehouse"), None);
    }

    #[test]
    fn csrf_is_compared_exactly() {
        let v = Viewer {
            identity: Identity {
                subject: "omar".into(),
                email: None,
                groups: vec![],
                issuer: "https://idp".into(),
                token_id: None,
                expires_at: 0,
            },
            csrf: "token-1".into(),
            auditor: false,
            sid: "s".into(),
        };
        assert!(v.csrf_ok("token-1"));
        assert!(!v.csrf_ok("token-2"));
        assert!(!v.csrf_ok(""));
    }
}
