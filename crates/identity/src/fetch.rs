//! Bounded HTTP GETs of JSON documents from an identity provider.
//!
//! Discovery and JWKS fetches sit on the login path, so they are short
//! (3 s to connect, 5 s in all), size-capped, and https-only unless the
//! issuer is a loopback test provider.

use std::error::Error as _;
use std::time::Duration;

use serde_json::Value;

use crate::error::{AuthError, IdentityError};

/// Time allowed to open a connection to the identity provider.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed for a whole request, body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery or JWKS document accepted; real ones are a few KiB.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// A GET-JSON client for one issuer.
pub(crate) struct Fetcher {
    client: reqwest::Client,
}

impl Fetcher {
    /// `https_only` forbids plain http for every request and redirect.
    pub(crate) fn new(https_only: bool) -> Result<Self, IdentityError> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .https_only(https_only)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| IdentityError::HttpClient(error_chain(e)))?;
        Ok(Fetcher { client })
    }

    /// Fetches `url` and parses it as a JSON object.
    ///
    /// Network failures and 5xx map to [`AuthError::ProviderUnreachable`];
    /// other statuses and unusable bodies to
    /// [`AuthError::ProviderMisconfigured`]. Both fail closed.
    pub(crate) async fn json(&self, url: &str) -> Result<Value, AuthError> {
        let mut response = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                AuthError::ProviderUnreachable(format!("GET {url}: {}", error_chain(e)))
            })?;
        let status = response.status();
        if status.is_server_error() {
            return Err(AuthError::ProviderUnreachable(format!(
                "GET {url} answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(AuthError::ProviderMisconfigured(format!(
                "GET {url} answered {status}"
            )));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(too_large(url));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| AuthError::ProviderUnreachable(format!("GET {url}: {}", error_chain(e))))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(too_large(url));
            }
            body.extend_from_slice(&chunk);
        }
        let doc: Value = serde_json::from_slice(&body).map_err(|e| {
            AuthError::ProviderMisconfigured(format!("GET {url} did not return JSON: {e}"))
        })?;
        if !doc.is_object() {
            return Err(AuthError::ProviderMisconfigured(format!(
                "GET {url} did not return a JSON object"
            )));
        }
        Ok(doc)
    }
}

fn too_large(url: &str) -> AuthError {
    AuthError::ProviderMisconfigured(format!(
        "GET {url} returned more than {} KiB",
        MAX_DOCUMENT_BYTES / 1024
    ))
}

/// An error and its causes on one line ("error sending request: connection
/// refused"), since reqwest's top-level message alone is rarely enough.
fn error_chain(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
