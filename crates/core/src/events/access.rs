//! Events of the gate itself: a sign-in refused, a connection refused, a
//! session cut off because its token expired.

use serde::{Deserialize, Serialize};

/// `auth.failure`: a client's credential did not prove an identity. The
/// token itself is never recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthFailure {
    /// The user name the client gave (it is not an identity: nothing
    /// proved it).
    #[serde(default)]
    pub user: String,
    /// From where, over what, and why the credential was refused.
    #[serde(flatten)]
    pub refused: Refused,
}

/// `auth.failure.summary`: the failed sign-ins of a window that were not
/// recorded one by one (see [`crate::signin`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthFailureSummary {
    /// The window's length.
    #[serde(default)]
    pub window_secs: u64,
    /// When it began, RFC 3339.
    #[serde(default)]
    pub from: String,
    /// When it was summed up, RFC 3339.
    #[serde(default)]
    pub to: String,
    /// Attempts refused before their token was checked (their address
    /// was past its limit).
    #[serde(default)]
    pub refused_unchecked: u64,
    /// Tokens refused and counted here rather than recorded one by one.
    #[serde(default)]
    pub failed_unrecorded: u64,
    /// The addresses with the most of both, most first.
    #[serde(default)]
    pub addresses: Vec<(String, u64)>,
    /// The user names with the most of both, most first.
    #[serde(default)]
    pub users: Vec<(String, u64)>,
}

impl AuthFailureSummary {
    /// Every attempt it stands for.
    pub fn total(&self) -> u64 {
        self.refused_unchecked + self.failed_unrecorded
    }
}

/// A client turned away: from where, over what, and why.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Refused {
    /// The client's address.
    #[serde(default)]
    pub client_addr: String,
    /// `postgres`, `mysql`, `ssh`, `http`, `api`.
    #[serde(default)]
    pub protocol: String,
    /// Why, for people.
    #[serde(default)]
    pub reason: String,
}

/// `access.denied`: an identity that may not use the connection (no
/// group, no live grant, wrong kind of client).
pub type AccessDenied = Refused;

/// `session.expired`: the caller's token expired while the session was
/// open, so the gateway ended it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionExpired {
    /// The token's `exp`, RFC 3339.
    #[serde(default)]
    pub token_expires_at: String,
    /// The token's `jti`, when it had one.
    #[serde(default)]
    pub token_id: Option<String>,
    /// The clock-skew leeway the gateway allowed past `exp`.
    #[serde(default)]
    pub leeway_secs: u64,
    /// What the client was told.
    #[serde(default)]
    pub reason: String,
    /// Protocol-specific facts (the protocol, the HTTP command cut off).
    #[serde(flatten)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}
