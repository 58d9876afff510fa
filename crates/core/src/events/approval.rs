//! Events of approval requests and access grants: the broker writes them,
//! the console, the CLI, evidence packs and SIEM exports read them.

use crate::approval::{Decision, Requirement};
use crate::identity::Identity;
use serde::{Deserialize, Serialize};

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// Run one held command, once.
    Command,
    /// Use a connection for a while (an access grant).
    Access,
}

/// Every approval and grant event names its request; `T` is what the
/// event itself says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct About<T> {
    /// The request's number ("#42").
    pub request_id: u64,
    /// Command or access (absent in trails older than access requests).
    #[serde(default)]
    pub request_kind: Option<RequestKind>,
    /// The event's own fields.
    #[serde(flatten)]
    pub event: T,
}

/// `approval.requested`: a command held, or access asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalRequested {
    /// Who asked (the event's subject also names them).
    #[serde(default)]
    pub requester: Identity,
    /// The held command, secrets redacted and PII masked (command requests).
    #[serde(default)]
    pub command: Option<String>,
    /// The rule that held it (command requests).
    #[serde(default)]
    pub rule: Option<String>,
    /// The rule's message, or the requester's reason for access.
    #[serde(default)]
    pub message: Option<String>,
    /// Seconds of access asked for (access requests).
    #[serde(default)]
    pub access_secs: Option<u64>,
    /// The groups the access would act as (access requests).
    #[serde(default)]
    pub access_as: Vec<String>,
    /// Who must approve (`None` also for a shape older versions wrote).
    #[serde(default, deserialize_with = "super::lenient")]
    pub requirement: Option<Requirement>,
    /// When it expires if nobody decides, RFC 3339.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// An approver's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    /// Let it run (or grant the access).
    Approve,
    /// Refuse it.
    Deny,
}

/// `approval.decision`: one approver's decision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalDecision {
    /// Approve or deny.
    pub decision: Choice,
    /// Who decided.
    pub approver: Identity,
    /// Their justification.
    #[serde(default)]
    pub reason: String,
    /// Whether this decision settled the request.
    #[serde(default)]
    pub settles: bool,
}

/// How a request ended; each is an event kind of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestEnd {
    /// `approval.approved`.
    Approved,
    /// `approval.denied`.
    Denied,
    /// `approval.expired`: nobody decided in time.
    Expired,
    /// `approval.executed`: the approved command was forwarded, once.
    Executed,
    /// `approval.withdrawn`: the client left, cancelled, or the trail
    /// could not record it.
    Withdrawn,
}

impl RequestEnd {
    /// Every outcome, for parsing.
    pub const ALL: [RequestEnd; 5] = [
        RequestEnd::Approved,
        RequestEnd::Denied,
        RequestEnd::Expired,
        RequestEnd::Executed,
        RequestEnd::Withdrawn,
    ];

    /// Its event kind.
    pub fn kind(self) -> &'static str {
        match self {
            RequestEnd::Approved => "approval.approved",
            RequestEnd::Denied => "approval.denied",
            RequestEnd::Expired => "approval.expired",
            RequestEnd::Executed => "approval.executed",
            RequestEnd::Withdrawn => "approval.withdrawn",
        }
    }

    /// The word after `approval.` (`approved`, `withdrawn`).
    pub fn word(self) -> &'static str {
        self.kind().trim_start_matches("approval.")
    }

    /// What happened to the request, for people.
    pub fn describe(self) -> &'static str {
        match self {
            RequestEnd::Approved => "was approved",
            RequestEnd::Denied => "was denied",
            RequestEnd::Expired => "expired: nobody decided in time",
            RequestEnd::Executed => "ran: the approved command was forwarded, once",
            RequestEnd::Withdrawn => "was withdrawn",
        }
    }

    /// The outcome an event kind names.
    pub fn of_kind(kind: &str) -> Option<RequestEnd> {
        RequestEnd::ALL.into_iter().find(|o| o.kind() == kind)
    }
}

/// The end of a request (`approval.approved`, `.denied`, `.expired`,
/// `.executed`, `.withdrawn`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApprovalEnded {
    /// The decisions that settled it (approved, denied, expired).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<Decision>,
    /// The grant an approved access request creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantTerms>,
    /// Why it was withdrawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// What an access grant allows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantTerms {
    /// Who may use it.
    pub holder: Identity,
    /// The connection.
    #[serde(default)]
    pub connection: String,
    /// The groups the holder acts as while it lasts.
    #[serde(default)]
    pub acting_as: Vec<String>,
    /// When it ends, RFC 3339.
    #[serde(default)]
    pub expires_at: String,
}

/// `grant.created`: an approved access request became a live grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantCreated {
    /// The grant's number.
    pub grant_id: u64,
    /// Who may use it.
    pub holder: Identity,
    /// The groups the holder acts as.
    #[serde(default)]
    pub acting_as: Vec<String>,
    /// When it ends, RFC 3339.
    #[serde(default)]
    pub expires_at: String,
}

/// `grant.revoked` (with who and why) or `grant.expired`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GrantEnded {
    /// The grant's number.
    pub grant_id: u64,
    /// Who revoked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<Identity>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
