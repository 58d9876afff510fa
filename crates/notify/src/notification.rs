//! What the gateway tells the notifier, and the event names it uses.

use serde::Serialize;

/// Something that happened and that people should hear about. The gateway
/// builds one and hands it to [`crate::Notifier::notify`]; each receiver
/// renders it in its own format.
#[derive(Clone, Debug, Serialize)]
pub struct Notification {
    /// What happened, e.g. `"approval.requested"` (see [`events`]); receivers
    /// filter on it.
    pub event: String,
    /// The subject's id, e.g. the approval request id `"42"`.
    pub id: String,
    /// One human line: `"dba alice@bank wants to run DELETE on prod-db (rule dba-writes)"`.
    pub title: String,
    /// Console URL of the request, so a reader can act on it in one click.
    pub link: Option<String>,
    /// The full request as JSON, passed through in the webhook body.
    pub data: serde_json::Value,
}

/// Event names the gateway emits, shared so sender and config filters agree.
pub mod events {
    /// A command is held and waits for an approver.
    pub const APPROVAL_REQUESTED: &str = "approval.requested";
    /// An approver let a held command run.
    pub const APPROVAL_APPROVED: &str = "approval.approved";
    /// An approver refused a held command.
    pub const APPROVAL_DENIED: &str = "approval.denied";
    /// Nobody decided before the request's deadline.
    pub const APPROVAL_EXPIRED: &str = "approval.expired";
    /// Someone asked for a time-bound grant.
    pub const GRANT_REQUESTED: &str = "grant.requested";
    /// A grant was approved.
    pub const GRANT_APPROVED: &str = "grant.approved";
    /// A grant was revoked before its end.
    pub const GRANT_REVOKED: &str = "grant.revoked";
}
