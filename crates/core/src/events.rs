//! The audit events of a session, as types.
//!
//! Every adapter writes its `session.start`, `command`, `command.result`
//! and `session.end` events from these types, so one kind of event has one
//! shape whatever protocol produced it, and readers (SIEM formats,
//! evidence facts, the console, the CLI) can read them back with
//! [`serde_json::from_value`]. The field names are those trails have
//! always carried: events written before these types existed read back
//! into them (missing optional fields are `None`), and their hashes are
//! over the stored JSON, so old trails verify unchanged.

use crate::classify::shell::ShellKind;
use crate::deadline::SessionEnd;
use crate::identity::Identity;
use crate::mask::MaskCounts;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};

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
}

/// `session.start`: who, from where, over what.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// `command`: one command as decided, before it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandEvent {
    /// Its number in the session (results name it).
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
