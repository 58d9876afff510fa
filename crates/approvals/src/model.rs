//! Approval requests and access grants as stored and shown.

use gatehouse_core::approval::{Decision, Requirement};
use gatehouse_core::Identity;
use serde::{Deserialize, Serialize};

pub use gatehouse_core::events::RequestKind;

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for decisions.
    Pending,
    /// Approved; a command request not yet claimed by its session.
    Approved,
    /// A command request whose command was forwarded (it can never run again).
    Executed,
    /// Denied by an approver.
    Denied,
    /// Nobody decided in time.
    Expired,
    /// The requester went away or gave up before it ran.
    Withdrawn,
}

impl Status {
    /// Lower-case name, as in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Executed => "executed",
            Status::Denied => "denied",
            Status::Expired => "expired",
            Status::Withdrawn => "withdrawn",
        }
    }

    /// Parse a name from a query string.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "approved" => Status::Approved,
            "executed" => Status::Executed,
            "denied" => Status::Denied,
            "expired" => Status::Expired,
            "withdrawn" => Status::Withdrawn,
            _ => return None,
        })
    }
}

/// One approval request: a held command or an access request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// The number people quote ("#42").
    pub id: u64,
    /// Command or access.
    pub kind: RequestKind,
    /// Where it stands.
    pub status: Status,
    /// Who asked.
    pub requester: Identity,
    /// The connection concerned.
    pub connection: String,
    /// The session holding the command (command requests).
    pub session_id: Option<String>,
    /// The protocol the command came by (command requests).
    pub protocol: Option<String>,
    /// The exact command, secrets redacted (command requests).
    pub command: Option<String>,
    /// The rule that held it (command requests).
    pub rule: Option<String>,
    /// The rule's message, or the requester's reason for access.
    pub message: String,
    /// Seconds of access asked for (access requests).
    pub access_secs: Option<u64>,
    /// The groups the asked-for access acts as (access requests).
    #[serde(default)]
    pub access_as: Vec<String>,
    /// Who must approve.
    pub requirement: Requirement,
    /// Decisions so far, in order.
    pub decisions: Vec<Decision>,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// Expires if undecided (Unix seconds).
    pub expires_at: i64,
    /// When it left `pending` (Unix seconds).
    pub settled_at: Option<i64>,
    /// Why it was withdrawn or expired, for people.
    pub note: Option<String>,
    /// The grant an approved access request created.
    pub grant_id: Option<u64>,
}

impl Request {
    /// Whether `identity` asked for this.
    pub fn is_requester(&self, identity: &Identity) -> bool {
        self.requester.issuer == identity.issuer && self.requester.subject == identity.subject
    }

    /// Whether `who` may see this request: auditors see all, approvers
    /// what they could decide, everyone their own.
    pub fn visible_to(&self, who: &Identity, auditor_groups: &[String]) -> bool {
        auditor_groups.iter().any(|g| who.in_group(g))
            || self.is_requester(who)
            || self.requirement.eligible(&self.requester, who).is_ok()
    }

    /// A one-line summary for notifications and lists.
    pub fn title(&self) -> String {
        let who = display_name(&self.requester);
        match self.kind {
            RequestKind::Command => format!(
                "{who} wants to run on {}: {} (rule {})",
                self.connection,
                one_line(self.command.as_deref().unwrap_or_default(), 120),
                self.rule.as_deref().unwrap_or("?")
            ),
            RequestKind::Access => format!(
                "{who} asks for {} of access to {} {}: {}",
                human_secs(self.access_secs.unwrap_or(0)),
                self.connection,
                scope_words(&self.access_as),
                one_line(&self.message, 120)
            ),
        }
    }
}

/// Access to one connection for one identity until a time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    /// The grant's number.
    pub id: u64,
    /// The approved access request that created it.
    pub request_id: u64,
    /// Who holds it.
    pub holder: Identity,
    /// The connection.
    pub connection: String,
    /// The groups the holder acts as under this grant (its scope).
    #[serde(default)]
    pub access_as: Vec<String>,
    /// Start (Unix seconds).
    pub starts_at: i64,
    /// End (Unix seconds).
    pub expires_at: i64,
    /// Revoked at (Unix seconds).
    pub revoked_at: Option<i64>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
    /// Their reason.
    pub revoke_reason: Option<String>,
}

impl Grant {
    /// In force at `now`.
    pub fn active_at(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.starts_at <= now && now < self.expires_at
    }
}

/// A grant's scope in words: `as analysts`, or `with no group's rules`.
pub fn scope_words(groups: &[String]) -> String {
    if groups.is_empty() {
        "with no group's rules (the policy's defaults only)".to_string()
    } else {
        format!("as {}", groups.join(", "))
    }
}

/// The name people know someone by: email, else subject.
pub fn display_name(identity: &Identity) -> String {
    identity
        .email
        .clone()
        .unwrap_or_else(|| identity.subject.clone())
}

/// Collapse whitespace and cut to `max` characters, for one-line summaries.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// `7200` → `2h`, `90` → `1m30s`.
pub fn human_secs(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let mut out = String::new();
    for (n, unit) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() {
        "0s".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human_secs(7200), "2h");
        assert_eq!(human_secs(90), "1m30s");
        assert_eq!(human_secs(0), "0s");
    }

    #[test]
    fn one_line_cuts() {
        assert_eq!(one_line("a\n  b", 10), "a b");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
