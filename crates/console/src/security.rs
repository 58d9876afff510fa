//! Response headers every console answer carries, and the static files.
//!
//! The policy allows only this origin's own stylesheet and script (no
//! inline script or style at all), no framing, no referrer (request pages
//! carry ids), and no caching of pages, which hold audit data.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The Content-Security-Policy of every console response.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The replay page's policy: the console's, plus `'wasm-unsafe-eval'`,
/// which lets asciinema-player compile its WebAssembly terminal emulator
/// and nothing else (JavaScript `eval` stays forbidden).
pub(crate) const REPLAY_CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Add the security headers (middleware for every route).
pub(crate) async fn headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    // A page may narrow or extend the policy for itself (the replay page).
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

const CSS: &str = include_str!("../static/console.css");
const FAVICON_SVG: &str = include_str!("../static/favicon.svg");
/// The same gate as a 16×16 32-bit ICO, for browsers that ask for
/// `/favicon.ico` on their own.
const FAVICON_ICO: &[u8] = include_bytes!("../static/favicon.ico");
const JS: &str = include_str!("../static/console.js");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// `GET /static/console.css`.
pub(crate) async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

/// `GET /favicon.ico`.
pub(crate) async fn favicon_ico() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "image/x-icon"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        FAVICON_ICO,
    )
        .into_response()
}

/// `GET /static/favicon.svg`.
pub(crate) async fn favicon_svg() -> Response {
    asset("image/svg+xml", FAVICON_SVG)
}

/// `GET /static/console.js`.
pub(crate) async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}
