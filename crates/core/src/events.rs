//! The audit events, as types.
//!
//! Every producer writes its events from these types (the adapters their
//! `session.start`, `command`, `command.result` and `session.end`, the
//! approval broker its requests and grants, the gateway its start and
//! stop), so one kind of event has one shape whatever produced it, and
//! readers (SIEM formats, evidence facts, the console, the CLI) read them
//! back as one [`Event`]. The field names are those trails have always
//! carried: events written before these types existed read back into them
//! (missing optional fields are `None`), and their hashes are over the
//! stored JSON, so old trails verify unchanged.

use crate::classify::shell::ShellKind;
use crate::deadline::SessionEnd;
use crate::identity::Identity;
use crate::mask::MaskCounts;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};

mod access;
mod approval;
mod gateway;
mod ssh;

pub use access::{AccessDenied, AuthFailure, AuthFailureSummary, Refused, SessionExpired};
pub use approval::{
    About, ApprovalDecision, ApprovalEnded, ApprovalRequested, Choice, GrantCreated, GrantEnded,
    GrantTerms, RequestEnd, RequestKind,
};
pub use gateway::{AuditRecovered, GatewayStart, GatewayStop, PolicyLoaded, SealedRevealed};
pub use ssh::{FileTransfer, Forward, Pty, ShellOpened, TransferMasking};

/// Event kinds, named once.
pub mod kind {
    /// A session began (after authenticate and authorize).
    pub const SESSION_START: &str = "session.start";
    /// A session ended, however it ended.
    pub const SESSION_END: &str = "session.end";
    /// A command, recorded before it is forwarded or refused.
    pub const COMMAND: &str = "command";
    /// How a forwarded command ended.
    pub const COMMAND_RESULT: &str = "command.result";
    /// A terminal recording was closed and chained.
    pub const RECORDING: &str = "recording";
    /// A file sent over SFTP or scp.
    pub const FILE_TRANSFER: &str = "file.transfer";
    /// An interactive SSH shell opened.
    pub const SSH_SHELL: &str = "ssh.shell";
    /// An SSH forwarding asked for.
    pub const SSH_FORWARD: &str = "ssh.forward";
    /// A session ended because its token expired.
    pub const SESSION_EXPIRED: &str = "session.expired";
    /// A credential that proved no identity.
    pub const AUTH_FAILURE: &str = "auth.failure";
    /// Failed sign-ins counted, not recorded one by one.
    pub const AUTH_FAILURE_SUMMARY: &str = "auth.failure.summary";
    /// An identity refused a connection.
    pub const ACCESS_DENIED: &str = "access.denied";
    /// A command held, or access asked for.
    pub const APPROVAL_REQUESTED: &str = "approval.requested";
    /// One approver's decision.
    pub const APPROVAL_DECISION: &str = "approval.decision";
    /// An approved access request became a grant.
    pub const GRANT_CREATED: &str = "grant.created";
    /// A grant revoked before its end.
    pub const GRANT_REVOKED: &str = "grant.revoked";
    /// A grant reached its end.
    pub const GRANT_EXPIRED: &str = "grant.expired";
    /// The gateway started.
    pub const GATEWAY_START: &str = "gateway.start";
    /// The gateway stopped.
    pub const GATEWAY_STOP: &str = "gateway.stop";
    /// The configuration in force.
    pub const POLICY_LOADED: &str = "policy.loaded";
    /// A start after a crash.
    pub const AUDIT_RECOVERED: &str = "audit.recovered";
    /// Sealed originals handed to an auditor.
    pub const SEALED_REVEALED: &str = "sealed.revealed";

    /// Whether `kind` has a type ([`super::Event`]): an event of such a
    /// kind that does not read as it has another version's shape.
    pub fn is_typed(kind: &str) -> bool {
        [
            SESSION_START,
            SESSION_END,
            COMMAND,
            COMMAND_RESULT,
            RECORDING,
            FILE_TRANSFER,
            SSH_SHELL,
            SSH_FORWARD,
            SESSION_EXPIRED,
            AUTH_FAILURE,
            AUTH_FAILURE_SUMMARY,
            ACCESS_DENIED,
            APPROVAL_REQUESTED,
            APPROVAL_DECISION,
            GRANT_CREATED,
            GRANT_REVOKED,
            GRANT_EXPIRED,
            GATEWAY_START,
            GATEWAY_STOP,
            POLICY_LOADED,
            AUDIT_RECOVERED,
            SEALED_REVEALED,
        ]
        .contains(&kind)
            || super::RequestEnd::of_kind(kind).is_some()
    }
}

/// An audit event's body as its type: what readers match on instead of
/// field names.
#[derive(Debug, Clone)]
pub enum Event {
    /// `session.start`.
    SessionStart(SessionStart),
    /// `session.end`.
    SessionEnd(SessionEndEvent),
    /// `session.expired`.
    SessionExpired(SessionExpired),
    /// `command`.
    Command(Box<CommandEvent>),
    /// `command.result`.
    CommandResult(Box<CommandResult>),
    /// `recording`.
    Recording(RecordingEvent),
    /// `file.transfer`.
    FileTransfer(FileTransfer),
    /// `ssh.shell`.
    SshShell(ShellOpened),
    /// `ssh.forward`.
    SshForward(Forward),
    /// `auth.failure`.
    AuthFailure(AuthFailure),
    /// `auth.failure.summary`.
    AuthFailureSummary(AuthFailureSummary),
    /// `access.denied`.
    AccessDenied(AccessDenied),
    /// `approval.requested`.
    ApprovalRequested(Box<About<ApprovalRequested>>),
    /// `approval.decision`.
    ApprovalDecision(Box<About<ApprovalDecision>>),
    /// `approval.approved`, `.denied`, `.expired`, `.executed`, `.withdrawn`.
    ApprovalEnded(RequestEnd, Box<About<ApprovalEnded>>),
    /// `grant.created`.
    GrantCreated(Box<About<GrantCreated>>),
    /// `grant.revoked`.
    GrantRevoked(Box<About<GrantEnded>>),
    /// `grant.expired`.
    GrantExpired(About<GrantEnded>),
    /// `gateway.start`.
    GatewayStart(GatewayStart),
    /// `gateway.stop`.
    GatewayStop(GatewayStop),
    /// `policy.loaded`.
    PolicyLoaded(PolicyLoaded),
    /// `audit.recovered`.
    AuditRecovered(AuditRecovered),
    /// `sealed.revealed`.
    SealedRevealed(Box<SealedRevealed>),
}

impl Event {
    /// The event of `kind` with body `data`, as its type; `None` for a
    /// kind without a type, or a body without its kind's shape (a record
    /// by another version or by hand), which readers show as JSON.
    pub fn read(kind_: &str, data: &serde_json::Value) -> Option<Event> {
        use kind::*;
        Some(match kind_ {
            SESSION_START => Event::SessionStart(read(data)?),
            SESSION_END => Event::SessionEnd(read(data)?),
            SESSION_EXPIRED => Event::SessionExpired(read(data)?),
            COMMAND => Event::Command(read(data)?),
            COMMAND_RESULT => Event::CommandResult(read(data)?),
            RECORDING => Event::Recording(read(data)?),
            FILE_TRANSFER => Event::FileTransfer(read(data)?),
            SSH_SHELL => Event::SshShell(read(data)?),
            SSH_FORWARD => Event::SshForward(read(data)?),
            AUTH_FAILURE => Event::AuthFailure(read(data)?),
            AUTH_FAILURE_SUMMARY => Event::AuthFailureSummary(read(data)?),
            ACCESS_DENIED => Event::AccessDenied(read(data)?),
            APPROVAL_REQUESTED => Event::ApprovalRequested(read(data)?),
            APPROVAL_DECISION => Event::ApprovalDecision(read(data)?),
            GRANT_CREATED => Event::GrantCreated(read(data)?),
            GRANT_REVOKED => Event::GrantRevoked(read(data)?),
            GRANT_EXPIRED => Event::GrantExpired(read(data)?),
            GATEWAY_START => Event::GatewayStart(read(data)?),
            GATEWAY_STOP => Event::GatewayStop(read(data)?),
            POLICY_LOADED => Event::PolicyLoaded(read(data)?),
            AUDIT_RECOVERED => Event::AuditRecovered(read(data)?),
            SEALED_REVEALED => Event::SealedRevealed(read(data)?),
            other => Event::ApprovalEnded(RequestEnd::of_kind(other)?, read(data)?),
        })
    }

    /// Its kind, as stored.
    pub fn kind(&self) -> &'static str {
        use kind::*;
        match self {
            Event::SessionStart(_) => SESSION_START,
            Event::SessionEnd(_) => SESSION_END,
            Event::SessionExpired(_) => SESSION_EXPIRED,
            Event::Command(_) => COMMAND,
            Event::CommandResult(_) => COMMAND_RESULT,
            Event::Recording(_) => RECORDING,
            Event::FileTransfer(_) => FILE_TRANSFER,
            Event::SshShell(_) => SSH_SHELL,
            Event::SshForward(_) => SSH_FORWARD,
            Event::AuthFailure(_) => AUTH_FAILURE,
            Event::AuthFailureSummary(_) => AUTH_FAILURE_SUMMARY,
            Event::AccessDenied(_) => ACCESS_DENIED,
            Event::ApprovalRequested(_) => APPROVAL_REQUESTED,
            Event::ApprovalDecision(_) => APPROVAL_DECISION,
            Event::ApprovalEnded(o, _) => o.kind(),
            Event::GrantCreated(_) => GRANT_CREATED,
            Event::GrantRevoked(_) => GRANT_REVOKED,
            Event::GrantExpired(_) => GRANT_EXPIRED,
            Event::GatewayStart(_) => GATEWAY_START,
            Event::GatewayStop(_) => GATEWAY_STOP,
            Event::PolicyLoaded(_) => POLICY_LOADED,
            Event::AuditRecovered(_) => AUDIT_RECOVERED,
            Event::SealedRevealed(_) => SEALED_REVEALED,
        }
    }

    /// Its body, as stored.
    pub fn data(&self) -> serde_json::Value {
        match self {
            Event::SessionStart(e) => to_data(e),
            Event::SessionEnd(e) => to_data(e),
            Event::SessionExpired(e) => to_data(e),
            Event::Command(e) => to_data(e),
            Event::CommandResult(e) => to_data(e),
            Event::Recording(e) => to_data(e),
            Event::FileTransfer(e) => to_data(e),
            Event::SshShell(e) => to_data(e),
            Event::SshForward(e) => to_data(e),
            Event::AuthFailure(e) => to_data(e),
            Event::AuthFailureSummary(e) => to_data(e),
            Event::AccessDenied(e) => to_data(e),
            Event::ApprovalRequested(e) => to_data(e),
            Event::ApprovalDecision(e) => to_data(e),
            Event::ApprovalEnded(_, e) => to_data(e),
            Event::GrantCreated(e) => to_data(e),
            Event::GrantRevoked(e) => to_data(e),
            Event::GrantExpired(e) => to_data(e),
            Event::GatewayStart(e) => to_data(e),
            Event::GatewayStop(e) => to_data(e),
            Event::PolicyLoaded(e) => to_data(e),
            Event::AuditRecovered(e) => to_data(e),
            Event::SealedRevealed(e) => to_data(e),
        }
    }

    /// The approval request it concerns, for approval and grant events.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            Event::ApprovalRequested(e) => Some(e.request_id),
            Event::ApprovalDecision(e) => Some(e.request_id),
            Event::ApprovalEnded(_, e) => Some(e.request_id),
            Event::GrantCreated(e) => Some(e.request_id),
            Event::GrantRevoked(e) => Some(e.request_id),
            Event::GrantExpired(e) => Some(e.request_id),
            _ => None,
        }
    }

    /// The people an event names (the caller, a requester, approvers, a
    /// grant's holder, whoever revoked or revealed), so readers can show
    /// each person the same way everywhere.
    pub fn people(&self) -> Vec<&Identity> {
        match self {
            Event::SessionStart(e) => vec![&e.identity],
            Event::ApprovalRequested(e) => vec![&e.event.requester],
            Event::ApprovalDecision(e) => vec![&e.event.approver],
            Event::ApprovalEnded(_, e) => e
                .event
                .decisions
                .iter()
                .map(|d| &d.approver)
                .chain(e.event.grant.as_ref().map(|g| &g.holder))
                .collect(),
            Event::GrantCreated(e) => vec![&e.event.holder],
            Event::GrantRevoked(e) => e.event.revoked_by.iter().collect(),
            Event::SealedRevealed(e) => vec![&e.by],
            _ => Vec::new(),
        }
    }

    /// The client's address, for the events that carry one.
    pub fn client_addr(&self) -> Option<&str> {
        match self {
            Event::SessionStart(e) => Some(e.client_addr.as_str()),
            Event::AuthFailure(e) => Some(e.refused.client_addr.as_str()),
            Event::AccessDenied(e) => Some(e.client_addr.as_str()),
            _ => None,
        }
        .filter(|a| !a.is_empty())
    }

    /// The protocol the client spoke, for the events that name it.
    pub fn protocol(&self) -> Option<&str> {
        match self {
            Event::SessionStart(e) => Some(e.protocol.as_str()),
            Event::SessionEnd(e) => Some(e.protocol.as_str()),
            Event::AuthFailure(e) => Some(e.refused.protocol.as_str()),
            Event::AccessDenied(e) => Some(e.protocol.as_str()),
            Event::FileTransfer(e) => Some(e.protocol.as_str()),
            Event::SshShell(e) => Some(e.protocol.as_str()),
            _ => None,
        }
        .filter(|p| !p.is_empty())
    }
}

/// `session.start`: who, from where, over what.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionStart {
    /// `postgres`, `mysql`, `ssh`, `http`.
    pub protocol: String,
    /// The client's address.
    pub client_addr: String,
    /// Whether the client's connection is TLS (absent for SSH, its own
    /// encrypted transport).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// The user name the client gave, when its protocol has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The authenticated caller.
    pub identity: Identity,
    /// The access grant that admitted the caller, if any.
    #[serde(default)]
    pub grant_id: Option<u64>,
    /// Protocol-specific facts (application name, target version, user
    /// agent, connection type).
    #[serde(flatten)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl SessionStart {
    /// A database client's start (the protocol and identity are filled in
    /// by [`crate::pipeline::Pipeline::start_session`]).
    pub fn database(
        client_addr: String,
        tls: bool,
        user: String,
        detail: serde_json::Map<String, serde_json::Value>,
    ) -> SessionStart {
        SessionStart {
            client_addr,
            tls: Some(tls),
            user: Some(user),
            detail,
            ..SessionStart::default()
        }
    }
}

/// `command`: one command as decided, before it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandEvent {
    /// Its number in the session (results name it).
    #[serde(default)]
    pub command_id: u64,
    /// How it arrived: `simple`/`extended` (PostgreSQL), `text`/`binary`
    /// (MySQL), `ssh`, `http`.
    #[serde(default)]
    pub protocol: String,
    /// What the command is, per kind of protocol.
    #[serde(flatten)]
    pub detail: CommandDetail,
    /// The decision.
    pub verdict: Verdict,
    /// The approval request it waits on, when held.
    #[serde(default)]
    pub approval_request: Option<u64>,
}

impl CommandEvent {
    /// The command as people read it: the SQL, the shell line, or an HTTP
    /// request's summary with the text it was judged on.
    pub fn text(&self) -> String {
        match &self.detail {
            CommandDetail::Sql(sql) => sql.sql.clone(),
            CommandDetail::Shell(sh) => sh.command.clone(),
            CommandDetail::Http(h) => {
                let summary = h
                    .request
                    .get("summary")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default();
                match (summary, h.text.as_deref().unwrap_or_default()) {
                    (s, "") => s.to_string(),
                    ("", t) => t.to_string(),
                    (s, t) => format!("{s}\n{t}"),
                }
            }
        }
    }

    /// The tables a SQL command writes, each once, in order.
    pub fn tables_written(&self) -> Vec<String> {
        let CommandDetail::Sql(sql) = &self.detail else {
            return Vec::new();
        };
        let tables: std::collections::BTreeSet<&String> = sql
            .statements
            .iter()
            .flat_map(|st| &st.tables_written)
            .collect();
        tables.into_iter().cloned().collect()
    }
}

/// What a command is, in the words of its kind of protocol.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CommandDetail {
    /// A SQL command (PostgreSQL, MySQL).
    Sql(SqlCommand),
    /// A shell command, transfer or SFTP operation (SSH).
    Shell(ShellCommand),
    /// An HTTP request or a model's tool call.
    Http(HttpCommand),
}

/// A SQL command as the trail keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SqlCommand {
    /// The text, secrets redacted and PII masked (see [`crate::trail`]).
    pub sql: String,
    /// What the classifier saw, one entry per statement.
    #[serde(default)]
    pub statements: Vec<StatementRecord>,
    /// Why the parser could not read it, if it could not.
    #[serde(default)]
    pub parse_error: Option<String>,
    /// What was masked in `sql`, by entity type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail_masked: Option<MaskCounts>,
    /// The unmasked text, sealed to the configured recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_originals: Option<String>,
}

/// One statement of a SQL command, as the classifier saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementRecord {
    /// `select`, `update`, `ddl`, ….
    #[serde(default)]
    pub kind: String,
    /// The statement's leading keyword(s) as written.
    #[serde(default)]
    pub keyword: String,
    /// Tables it reads.
    #[serde(default)]
    pub tables_read: Vec<String>,
    /// Tables it writes.
    #[serde(default)]
    pub tables_written: Vec<String>,
    /// Whether it has a WHERE clause.
    #[serde(default)]
    pub has_where: bool,
    /// Whether it has a LIMIT.
    #[serde(default)]
    pub has_limit: bool,
    /// Whether a parser read it (else keywords classified it).
    #[serde(default)]
    pub parsed: bool,
    /// Part of a prepared body an EXECUTE runs.
    #[serde(default)]
    pub nested: bool,
}

/// A shell command (exec, a line of a shell, a transfer, an SFTP request).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShellCommand {
    /// The SSH channel it ran on.
    #[serde(default)]
    pub channel: u32,
    /// Exec, line, upload, download, SFTP operation.
    pub kind: ShellKind,
    /// Its text.
    pub command: String,
    /// Its leading program.
    #[serde(default)]
    pub program: String,
    /// The path transferred, for transfers.
    #[serde(default)]
    pub path: Option<String>,
    /// Seconds into the channel's recording.
    #[serde(default)]
    pub recording_offset: Option<f64>,
    /// A shell line the user edited (cursor keys, history) before Enter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<bool>,
}

/// An HTTP request (or a model's tool calls, `tool_call`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpCommand {
    /// `http`, `kubernetes`, `openai`, ….
    #[serde(default)]
    pub connection_type: String,
    /// The request's facts (method, path, query and summary masked).
    pub request: serde_json::Value,
    /// The command's channel, for a `kubectl exec` (its recording).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u64>,
    /// Kind-specific facts (the Kubernetes resource, the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    /// The text judged (a prompt, a tool call's arguments), PII masked.
    #[serde(default)]
    pub text: Option<String>,
    /// What was masked in `text`.
    #[serde(default)]
    pub text_masked: MaskCounts,
    /// The request body's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_bytes: Option<usize>,
    /// Set for a model's tool calls, judged in its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call: Option<bool>,
    /// For tool calls: the command whose answer carried them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_to: Option<u64>,
}

/// `command.result`: how a forwarded command ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CommandResult {
    /// The command it ends.
    #[serde(default)]
    pub command_id: u64,
    /// What was masked on the way to the client.
    #[serde(default)]
    pub masked: MaskCounts,
    /// The error the target (or the gateway) answered with: its text, or
    /// its fields (SQLSTATE, message) for SQL.
    #[serde(default)]
    pub error: Option<serde_json::Value>,
    /// Rows returned (SQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Time from forwarding to the end of the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// The result's column names, when a sample is kept (SQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// The first rows as the client saw them (masked; SQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_sample: Option<Vec<serde_json::Value>>,
    /// The unmasked cells, sealed to the configured recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_originals: Option<String>,
    /// The HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Bytes sent to the client (HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_to_client: Option<u64>,
    /// A summary of the response (HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<serde_json::Value>,
    /// Protocol-specific facts (an SSH exit status and channel, a
    /// transfer's size).
    #[serde(flatten)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl CommandResult {
    /// A SQL command's result: rows streamed, what was masked, the error
    /// the target answered with, and a sample of the rows when one was
    /// kept (with their column names, when known).
    pub fn sql(
        command_id: u64,
        rows: u64,
        duration_us: u64,
        masked: MaskCounts,
        error: Option<serde_json::Value>,
        columns: Vec<String>,
        sample: Vec<serde_json::Value>,
    ) -> CommandResult {
        let sampled = !sample.is_empty();
        CommandResult {
            command_id,
            rows: Some(rows),
            duration_us: Some(duration_us),
            masked,
            error,
            columns: (sampled && !columns.is_empty()).then_some(columns),
            result_sample: sampled.then_some(sample),
            ..CommandResult::default()
        }
    }
}

/// `session.end`: one schema for every protocol.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionEndEvent {
    /// `postgres`, `mysql`, `ssh`, `http`.
    #[serde(default)]
    pub protocol: String,
    /// How the session ended, for people.
    pub reason: String,
    /// How long it lasted.
    pub duration_ms: u64,
    /// Bytes read from the client.
    #[serde(default)]
    pub bytes_from_client: u64,
    /// Bytes written to the client.
    #[serde(default)]
    pub bytes_to_client: u64,
    /// Commands seen.
    #[serde(default)]
    pub commands: u64,
    /// Commands refused.
    #[serde(default)]
    pub blocked: u64,
    /// When its deadline ended it: which (`token_expired`, `grant_ended`)
    /// and the deadline's facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
    /// Protocol-specific facts (SSH channels and recordings).
    #[serde(flatten)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl SessionEndEvent {
    /// Fold in the deadline that ended the session, if one did: the reason
    /// becomes the deadline's message and its facts are added.
    pub fn ended_by(&mut self, end: Option<&SessionEnd>) {
        let Some(end) = end else { return };
        self.reason = end.message();
        if let serde_json::Value::Object(fields) = end.audit_fields() {
            for (k, v) in fields {
                if k == "ended_by" {
                    self.ended_by = v.as_str().map(str::to_string);
                } else {
                    self.detail.insert(k, v);
                }
            }
        }
    }
}

/// `recording`: a closed terminal recording (an SSH channel, a Kubernetes
/// exec), chained so replay and evidence packs can check the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordingEvent {
    /// The file, its digest, size and what was masked in it.
    #[serde(flatten)]
    pub recording: crate::recording::Closed,
    /// The channel (SSH) or command (Kubernetes exec) it recorded.
    #[serde(default)]
    pub channel: u64,
    /// `ssh` or `kubernetes-exec`.
    #[serde(default)]
    pub protocol: String,
    /// `asciicast-v2`.
    #[serde(default)]
    pub format: String,
}

/// A part of an event that older versions wrote in another shape: read
/// when it has today's, else `None`, so the rest of the event still reads.
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    Ok(T::deserialize(value).ok())
}

/// An event's body as its type, when it has that shape (read in place,
/// without copying the JSON); `None` for a body written before the type or
/// by something else, which readers show as it is.
pub fn read<T: serde::de::DeserializeOwned>(data: &serde_json::Value) -> Option<T> {
    T::deserialize(data).ok()
}

/// Serialize an event's body (these types cannot fail to serialize; a
/// failure would be a bug, recorded as an empty object rather than lost).
pub fn to_data<T: Serialize>(event: &T) -> serde_json::Value {
    serde_json::to_value(event).unwrap_or_else(|_| serde_json::json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_events_of_every_kind_read_back() {
        let sql = serde_json::json!({
            "command_id": 3, "protocol": "simple", "sql": "select 1",
            "statements": [], "parse_error": null,
            "verdict": {"effect": "allow", "rule": null}, "approval_request": null,
        });
        let e: CommandEvent = serde_json::from_value(sql.clone()).unwrap();
        assert!(matches!(e.detail, CommandDetail::Sql(_)));
        assert_eq!(to_data(&e), sql, "a SQL command's shape is unchanged");

        let shell = serde_json::json!({
            "command_id": 1, "protocol": "ssh", "channel": 0, "kind": "exec",
            "command": "ls", "program": "ls", "path": null,
            "verdict": {"effect": "allow", "rule": null}, "approval_request": null,
            "recording_offset": null,
        });
        let e: CommandEvent = serde_json::from_value(shell.clone()).unwrap();
        assert!(matches!(e.detail, CommandDetail::Shell(_)));
        assert_eq!(to_data(&e), shell);

        let http = serde_json::json!({
            "command_id": 2, "protocol": "http", "connection_type": "http",
            "request": {"method": "GET"}, "text": null, "text_masked": {},
            "body_bytes": 0,
            "verdict": {"effect": "allow", "rule": null}, "approval_request": null,
        });
        let e: CommandEvent = serde_json::from_value(http.clone()).unwrap();
        assert!(matches!(e.detail, CommandDetail::Http(_)));
        assert_eq!(to_data(&e), http);
    }

    fn identity(subject: &str) -> serde_json::Value {
        serde_json::json!({
            "subject": subject, "email": format!("{subject}@bank.example"),
            "groups": ["dba"], "issuer": "https://idp", "token_id": null, "expires_at": 0,
        })
    }

    /// Approval and grant events as the broker wrote them before they had
    /// types read back into them, whole.
    #[test]
    fn approval_and_grant_events_of_older_trails_read_back() {
        let requested = serde_json::json!({
            "request_id": 7, "request_kind": "command", "requester": identity("ana"),
            "command": "delete from t", "rule": "writes", "message": "needs a DBA",
            "access_secs": null, "access_as": [],
            "requirement": {"any_of": ["dba"], "count": 1, "each_of": [], "timeout_secs": 60},
            "expires_at": "2026-12-08T00:00:00Z",
        });
        let Some(Event::ApprovalRequested(r)) = Event::read("approval.requested", &requested)
        else {
            panic!("approval.requested did not read")
        };
        assert_eq!(
            (r.request_id, r.request_kind),
            (7, Some(RequestKind::Command))
        );
        assert_eq!(r.event.requirement.unwrap().count, 1);

        let decision = serde_json::json!({
            "request_id": 7, "request_kind": "command", "decision": "deny",
            "approver": identity("omar"), "reason": "not today", "settles": true,
        });
        let Some(Event::ApprovalDecision(d)) = Event::read("approval.decision", &decision) else {
            panic!("approval.decision did not read")
        };
        assert_eq!(d.event.decision, Choice::Deny);
        assert_eq!(d.event.approver.subject, "omar");

        let approved = serde_json::json!({
            "request_id": 8, "request_kind": "access",
            "decisions": [{"approver": identity("omar"), "approve": true, "reason": "ok", "at": "x"}],
            "grant": {"holder": identity("ana"), "connection": "bank", "acting_as": ["dba"],
                      "expires_at": "2026-12-08T01:00:00Z"},
        });
        let e = Event::read("approval.approved", &approved).expect("approval.approved");
        let Event::ApprovalEnded(RequestEnd::Approved, a) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(a.event.grant.as_ref().unwrap().acting_as, ["dba"]);
        let people: Vec<&str> = e.people().iter().map(|p| p.subject.as_str()).collect();
        assert_eq!(people, ["omar", "ana"]);
        // An older approval without a grant wrote `"grant": null`.
        let denied = serde_json::json!({"request_id": 9, "decisions": [], "grant": null});
        assert!(matches!(
            Event::read("approval.denied", &denied),
            Some(Event::ApprovalEnded(RequestEnd::Denied, _))
        ));
        for (kind, data) in [
            (
                "approval.executed",
                serde_json::json!({"request_id": 9, "request_kind": "command"}),
            ),
            (
                "approval.withdrawn",
                serde_json::json!({"request_id": 9, "why": "client left"}),
            ),
            (
                "approval.expired",
                serde_json::json!({"request_id": 9, "decisions": []}),
            ),
        ] {
            let e = Event::read(kind, &data).unwrap_or_else(|| panic!("{kind} did not read"));
            assert_eq!(e.kind(), kind);
            assert_eq!(e.request_id(), Some(9));
        }

        let revoked = serde_json::json!({
            "request_id": 8, "request_kind": "access", "grant_id": 3,
            "revoked_by": identity("omar"), "reason": "done",
        });
        let Some(Event::GrantRevoked(g)) = Event::read("grant.revoked", &revoked) else {
            panic!("grant.revoked did not read")
        };
        assert_eq!(
            (g.event.grant_id, g.event.reason.as_deref()),
            (3, Some("done"))
        );
    }

    /// Every typed kind writes what it reads: a producer's event is read
    /// back by every reader as the same kind.
    #[test]
    fn typed_events_read_back_as_their_kind() {
        let person: Identity = serde_json::from_value(identity("ana")).unwrap();
        let events = [
            Event::AuthFailure(AuthFailure {
                user: "ana".into(),
                refused: Refused {
                    client_addr: "10.0.0.9:5555".into(),
                    protocol: "postgres".into(),
                    reason: "bad token".into(),
                },
            }),
            Event::AccessDenied(AccessDenied::default()),
            Event::AuthFailureSummary(AuthFailureSummary {
                addresses: vec![("10.0.0.9".into(), 3)],
                ..AuthFailureSummary::default()
            }),
            Event::SessionExpired(SessionExpired::default()),
            Event::FileTransfer(FileTransfer::default()),
            Event::SshShell(ShellOpened::default()),
            Event::SshForward(Forward::default()),
            Event::GrantCreated(Box::new(About {
                request_id: 1,
                request_kind: Some(RequestKind::Access),
                event: GrantCreated {
                    grant_id: 2,
                    holder: person.clone(),
                    acting_as: vec![],
                    expires_at: String::new(),
                },
            })),
            Event::GrantExpired(About {
                request_id: 1,
                request_kind: None,
                event: GrantEnded {
                    grant_id: 2,
                    ..GrantEnded::default()
                },
            }),
            Event::GatewayStart(GatewayStart::default()),
            Event::GatewayStop(GatewayStop::default()),
            Event::PolicyLoaded(PolicyLoaded::default()),
            Event::AuditRecovered(AuditRecovered::default()),
            Event::SealedRevealed(Box::new(SealedRevealed {
                event_seq: 4,
                reason: "subpoena".into(),
                by: person,
            })),
        ];
        for e in events {
            let back = Event::read(e.kind(), &e.data())
                .unwrap_or_else(|| panic!("{} did not read back", e.kind()));
            assert_eq!(back.kind(), e.kind());
            assert_eq!(back.data(), e.data());
        }
        assert!(Event::read("no.such.kind", &serde_json::json!({})).is_none());
        assert!(
            Event::read("grant.created", &serde_json::json!({"grant_id": 1})).is_none(),
            "a body without its kind's shape is not that kind"
        );
    }

    #[test]
    fn an_old_ssh_session_end_reads_into_the_one_schema() {
        let old = serde_json::json!({
            "protocol": "ssh", "reason": "client closed", "duration_ms": 5,
            "channels": 2, "commands": 3, "blocked": 1, "recordings": [],
        });
        let e: SessionEndEvent = serde_json::from_value(old).unwrap();
        assert_eq!((e.commands, e.blocked, e.bytes_from_client), (3, 1, 0));
        assert_eq!(e.detail["channels"], 2);
    }
}
