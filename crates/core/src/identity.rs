//! The verified caller.

use serde::{Deserialize, Serialize};

/// Who is on the other end of a session, as proven by a validated token.
///
/// Built only by the identity crate after signature, issuer, audience and
/// lifetime checks, so holding one means the caller was authenticated.
///
/// Read back from the trail leniently (a field an older trail lacks takes
/// its default), so old events still read as their types.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Identity {
    /// The token's `sub` claim: the stable id the issuer gives this caller.
    pub subject: String,
    /// The `email` claim when the issuer provides one; shown to people.
    pub email: Option<String>,
    /// Groups from the configured groups claim; policy is written against these.
    pub groups: Vec<String>,
    /// The `iss` claim, so two issuers' subjects never collide in the audit trail.
    pub issuer: String,
    /// The `jti` claim, so one token's use can be traced across sessions.
    pub token_id: Option<String>,
    /// Token expiry (Unix seconds); sessions outliving it are recorded as such.
    pub expires_at: i64,
}

impl Identity {
    /// Whether the caller belongs to `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}
