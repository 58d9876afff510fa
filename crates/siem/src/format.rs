//! How an audit event looks to a SIEM: Gatehouse's own schema or OCSF, and
//! the framing of each sink (a JSON line, an RFC 5424 syslog message, a
//! Splunk HEC envelope).
//!
//! # OCSF mapping (schema 1.3.0)
//!
//! | Gatehouse event | OCSF class (class_uid) | activity | status / disposition |
//! |---|---|---|---|
//! | `session.start` | Authentication (3002) | Logon (1) | Success |
//! | `session.end` | Authentication (3002) | Logoff (2) | Success |
//! | `auth.failure` | Authentication (3002) | Logon (1) | Failure, `status_detail` = reason |
//! | `access.denied` | Authentication (3002) | Logon (1) | Failure, `status_detail` = reason |
//! | `auth.failure.summary` | Authentication (3002) | Logon (1) | Failure, `count` = attempts it stands for |
//! | `command` | Datastore Activity (6005) | Query (4) | allow: Success / Allowed (1); block: Failure / Blocked (2); hold: Other / Delayed (14) |
//! | `command.result` | Datastore Activity (6005) | Query (4) | Success, or Failure with the SQLSTATE |
//! | anything else (`approval.*`, `grant.*`) | Base Event (0) | Other (99) | — |
//!
//! Every OCSF event carries `metadata.uid` = the event's hash,
//! `metadata.sequence` = its seq, `actor.user.uid` = the identity subject,
//! `src_endpoint` from the client address, and the whole Gatehouse event in
//! `unmapped.gatehouse`, so nothing is lost and the chain can still be
//! checked from the SIEM's copy. Times are epoch milliseconds (`time`).

use crate::config::Format;
use gatehouse_audit::AuditEvent;
use gatehouse_core::events::{kind, CommandDetail, Event};
use serde_json::{json, Value};
use std::net::SocketAddr;

/// The OCSF schema version the mapping follows.
pub const OCSF_VERSION: &str = "1.3.0";

/// RFC 5424 structured-data ID. 32473 is the private enterprise number
/// reserved for documentation (RFC 5612); replace it with your own with
/// [`crate::config::SinkKind::Syslog`] receivers that key on it.
pub const SD_ID: &str = "gatehouse@32473";

fn epoch_ms(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts).map_or(0, |t| t.timestamp_millis())
}

fn endpoint(addr: Option<&str>) -> Option<Value> {
    let addr = addr?;
    match addr.parse::<SocketAddr>() {
        Ok(sa) => Some(json!({"ip": sa.ip().to_string(), "port": sa.port()})),
        Err(_) => Some(json!({"ip": addr})),
    }
}

/// The event in the requested schema.
pub fn render(event: &AuditEvent, format: Format) -> Value {
    match format {
        Format::Gatehouse => serde_json::to_value(event).unwrap_or(Value::Null),
        Format::Ocsf => ocsf(event),
    }
}

/// Whether the event is one a SOC would want to see flagged.
pub fn is_notable(event: &AuditEvent) -> bool {
    notable(event, Event::read(&event.kind, &event.data).as_ref())
}

/// A refused sign-in or connection, or a blocked command. An event that
/// does not read as its type (another version's shape) is judged by its
/// kind and its verdict's effect, so it is not quietly demoted.
fn notable(e: &AuditEvent, event: Option<&Event>) -> bool {
    match event {
        Some(Event::AuthFailure(_) | Event::AuthFailureSummary(_) | Event::AccessDenied(_)) => true,
        Some(Event::Command(c)) => c.verdict.effect() == "block",
        Some(_) => false,
        None => {
            matches!(
                e.kind.as_str(),
                kind::AUTH_FAILURE | kind::AUTH_FAILURE_SUMMARY | kind::ACCESS_DENIED
            ) || (e.kind == kind::COMMAND && e.data["verdict"]["effect"] == "block")
        }
    }
}

fn ocsf(e: &AuditEvent) -> Value {
    // The event read once as its type; a kind without one (or a body
    // without its kind's shape) is a Base Event, whole in `unmapped`.
    let typed = Event::read(&e.kind, &e.data);
    let (class_uid, class_name, category_uid, category_name, activity_id, activity_name) =
        match &typed {
            Some(
                Event::SessionStart(_)
                | Event::AuthFailure(_)
                | Event::AuthFailureSummary(_)
                | Event::AccessDenied(_),
            ) => (
                3002,
                "Authentication",
                3,
                "Identity & Access Management",
                1,
                "Logon",
            ),
            Some(Event::SessionEnd(_)) => (
                3002,
                "Authentication",
                3,
                "Identity & Access Management",
                2,
                "Logoff",
            ),
            Some(t @ (Event::Command(_) | Event::CommandResult(_))) => match activity(t) {
                Activity::Datastore => (
                    6005,
                    "Datastore Activity",
                    6,
                    "Application Activity",
                    4,
                    "Query",
                ),
                Activity::Api(id, name) => {
                    (6003, "API Activity", 6, "Application Activity", id, name)
                }
                Activity::Process => (1007, "Process Activity", 1, "System Activity", 1, "Launch"),
            },
            _ => (0, "Base Event", 0, "Uncategorized", 99, "Other"),
        };
    let effect = match &typed {
        Some(Event::Command(c)) => c.verdict.effect(),
        _ => "",
    };
    let (status_id, status) = match &typed {
        Some(Event::AuthFailure(_) | Event::AuthFailureSummary(_) | Event::AccessDenied(_)) => {
            (2, "Failure")
        }
        Some(Event::Command(_)) if effect == "block" => (2, "Failure"),
        Some(Event::Command(_)) if effect == "hold" => (99, "Held for approval"),
        Some(Event::CommandResult(r)) if r.error.as_ref().is_some_and(|x| !x.is_null()) => {
            (2, "Failure")
        }
        _ if class_uid == 0 => (0, "Unknown"),
        _ => (1, "Success"),
    };
    let severity_id = if notable(e, typed.as_ref()) { 3 } else { 1 };
    let mut out = json!({
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "time": epoch_ms(&e.ts),
        "severity_id": severity_id,
        "severity": if severity_id == 3 { "Medium" } else { "Informational" },
        "status_id": status_id,
        "status": status,
        "message": e.kind,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "Gatehouse", "vendor_name": "Gatehouse", "version": env!("CARGO_PKG_VERSION")},
            "uid": e.hash,
            "sequence": e.seq,
            "original_time": e.ts,
            "log_name": "gatehouse.audit",
            "correlation_uid": e.session_id,
        },
        "unmapped": {"gatehouse": e},
    });
    // The fields that depend on the event, added to `out` at the end.
    let mut obj = serde_json::Map::new();
    let user = e.subject.as_ref().map(|s| {
        let mut u = json!({"uid": s, "name": s});
        if let Some(Event::SessionStart(start)) = &typed {
            if let Some(email) = &start.identity.email {
                u["email_addr"] = email.as_str().into();
            }
        }
        u
    });
    if let Some(u) = &user {
        obj.insert("actor".into(), json!({"user": u}));
    }
    if let Some(ep) = endpoint(typed.as_ref().and_then(Event::client_addr)) {
        obj.insert("src_endpoint".into(), ep);
    }
    if let Some(sid) = &e.session_id {
        obj.insert("session".into(), json!({"uid": sid}));
    }
    if let Some(c) = &e.connection {
        let protocol = match &typed {
            Some(Event::Command(c)) => Some(c.protocol.as_str()).filter(|p| !p.is_empty()),
            Some(t) => t.protocol(),
            None => None,
        };
        obj.insert(
            "dst_endpoint".into(),
            json!({"name": c, "svc_name": protocol.unwrap_or("postgres")}),
        );
    }
    match typed {
        Some(Event::SessionStart(_)) => {
            if let Some(u) = user {
                obj.insert("user".into(), u);
            }
            obj.insert("service".into(), json!({"name": e.connection}));
        }
        Some(Event::SessionEnd(end)) => {
            if let Some(u) = user {
                obj.insert("user".into(), u);
            }
            obj.insert("service".into(), json!({"name": e.connection}));
            obj.insert("status_detail".into(), end.reason.into());
        }
        Some(Event::AccessDenied(denied)) => {
            if let Some(u) = user {
                obj.insert("user".into(), u);
            }
            obj.insert("service".into(), json!({"name": e.connection}));
            obj.insert("status_detail".into(), denied.reason.into());
        }
        Some(Event::AuthFailure(failed)) => {
            obj.insert("user".into(), json!({"name": failed.user}));
            obj.insert("service".into(), json!({"name": e.connection}));
            obj.insert("status_detail".into(), failed.refused.reason.into());
        }
        Some(Event::AuthFailureSummary(summary)) => {
            obj.insert("count".into(), summary.total().into());
            obj.insert(
                "status_detail".into(),
                format!(
                    "{} failed sign-ins in {} s counted, not recorded one by one",
                    summary.total(),
                    summary.window_secs
                )
                .into(),
            );
        }
        Some(Event::Command(c)) => {
            match &c.detail {
                CommandDetail::Http(h) => {
                    obj.insert(
                        "api".into(),
                        json!({"operation": h.request.get("method"), "service": {"name": e.connection}}),
                    );
                    obj.insert(
                        "http_request".into(),
                        json!({"http_method": h.request.get("method"), "url": {"path": h.request.get("path")}}),
                    );
                }
                CommandDetail::Shell(sh) => {
                    obj.insert("process".into(), json!({"cmd_line": sh.command}));
                }
                CommandDetail::Sql(sql) => {
                    obj.insert(
                        "database".into(),
                        json!({"name": e.connection, "type": database_type(&c.protocol), "type_id": 99}),
                    );
                    obj.insert("query_info".into(), json!({"query_string": sql.sql}));
                }
            }
            let (disposition_id, disposition) = match effect {
                "block" => (2, "Blocked"),
                "hold" => (14, "Delayed"),
                _ => (1, "Allowed"),
            };
            obj.insert("disposition_id".into(), disposition_id.into());
            obj.insert("disposition".into(), disposition.into());
            if let Some(rule) = c.verdict.rule() {
                obj.insert("status_detail".into(), format!("rule {rule}").into());
            }
        }
        Some(t @ Event::CommandResult(_)) => {
            if activity(&t) == Activity::Datastore {
                obj.insert(
                    "database".into(),
                    json!({"name": e.connection, "type": database_type(""), "type_id": 99}),
                );
            }
            if let Event::CommandResult(r) = t {
                if let Some(err) = r.error.filter(|v| !v.is_null()) {
                    obj.insert("status_code".into(), err["sqlstate"].clone());
                    obj.insert("status_detail".into(), err["message"].clone());
                }
            }
        }
        _ => {}
    }
    if let Value::Object(fields) = &mut out {
        fields.append(&mut obj);
    }
    out
}

/// Which OCSF class a command (or its result) belongs to, read off the
/// typed event: SQL is Datastore Activity, an HTTP request (or a model's
/// tool call) API Activity, a shell command Process Activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    Datastore,
    Api(u64, &'static str),
    Process,
}

fn activity(event: &Event) -> Activity {
    match event {
        Event::Command(c) => match &c.detail {
            CommandDetail::Http(h) => {
                match h
                    .request
                    .get("method")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                {
                    "POST" => Activity::Api(1, "Create"),
                    "GET" | "HEAD" => Activity::Api(2, "Read"),
                    "PUT" | "PATCH" => Activity::Api(3, "Update"),
                    "DELETE" => Activity::Api(4, "Delete"),
                    _ => Activity::Api(99, "Other"),
                }
            }
            CommandDetail::Shell(_) => Activity::Process,
            CommandDetail::Sql(_) => Activity::Datastore,
        },
        Event::CommandResult(r) if r.status.is_some() => Activity::Api(99, "Other"),
        Event::CommandResult(r) if r.detail.contains_key("exit_status") => Activity::Process,
        _ => Activity::Datastore,
    }
}

/// The database product a SQL command went to, by how it arrived.
fn database_type(protocol: &str) -> &'static str {
    match protocol {
        "text" | "binary" | "prepared" | "prepare" | "init_db" | "field_list" => "MySQL",
        _ => "PostgreSQL",
    }
}

/// One JSON line (no newline).
pub fn json_line(event: &AuditEvent, format: Format) -> String {
    render(event, format).to_string()
}

fn sd_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The RFC 5424 header fields a syslog sink fills in.
pub struct SyslogHeader<'a> {
    /// Facility number (0–23).
    pub facility: u8,
    /// HOSTNAME.
    pub hostname: &'a str,
    /// APP-NAME.
    pub app_name: &'a str,
    /// PROCID.
    pub proc_id: u32,
}

/// One RFC 5424 message (without framing): header, structured data naming
/// the event's seq, hash and kind, and the event as UTF-8 JSON (with BOM).
pub fn syslog_message(event: &AuditEvent, format: Format, h: &SyslogHeader<'_>) -> String {
    let severity = if is_notable(event) {
        4
    } else if event.kind.starts_with("approval.") || event.kind.starts_with("grant.") {
        5
    } else {
        6
    };
    let pri = u32::from(h.facility) * 8 + severity;
    let field = |s: &str, max: usize| -> String {
        let cleaned: String = s
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(max)
            .collect();
        if cleaned.is_empty() {
            "-".into()
        } else {
            cleaned
        }
    };
    format!(
        "<{pri}>1 {ts} {host} {app} {pid} {msgid} [{SD_ID} seq=\"{seq}\" hash=\"{hash}\" kind=\"{kind}\"] \u{feff}{msg}",
        ts = field(&event.ts, 64),
        host = field(h.hostname, 255),
        app = field(h.app_name, 48),
        pid = h.proc_id,
        msgid = field(&event.kind, 32),
        seq = event.seq,
        hash = sd_escape(&event.hash),
        kind = sd_escape(&event.kind),
        msg = json_line(event, format)
    )
}

/// RFC 6587 octet-counting framing: `LEN SP MSG`.
pub fn octet_counted(message: &str) -> String {
    format!("{} {message}", message.len())
}

/// The Splunk HEC envelope for one event.
pub fn hec_event(
    event: &AuditEvent,
    format: Format,
    host: &str,
    source: &str,
    sourcetype: &str,
    index: Option<&str>,
) -> Value {
    let mut v = json!({
        "time": epoch_ms(&event.ts) as f64 / 1000.0,
        "host": host,
        "source": source,
        "sourcetype": sourcetype,
        "event": render(event, format),
    });
    if let Some(i) = index {
        v["index"] = i.into();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: Value) -> AuditEvent {
        AuditEvent {
            seq: 7,
            ts: "2025-01-31T09:15:02.123Z".into(),
            kind: kind.into(),
            session_id: Some("s1".into()),
            subject: Some("alice".into()),
            connection: Some("bank".into()),
            data,
            prev_hash: "0".repeat(64),
            hash: "ab".repeat(32),
        }
    }

    #[test]
    fn ocsf_classes_fit_the_events() {
        let blocked = ocsf(&event(
            "command",
            json!({"sql": "delete from t", "verdict": {"effect": "block", "rule": "ro"}}),
        ));
        assert_eq!(blocked["class_uid"], 6005);
        assert_eq!(blocked["type_uid"], 600504);
        assert_eq!(blocked["disposition_id"], 2);
        assert_eq!(blocked["status_id"], 2);
        assert_eq!(blocked["query_info"]["query_string"], "delete from t");
        assert_eq!(blocked["actor"]["user"]["uid"], "alice");
        assert_eq!(blocked["metadata"]["sequence"], 7);
        assert_eq!(blocked["time"], 1738314902123i64);
        assert_eq!(blocked["unmapped"]["gatehouse"]["hash"], "ab".repeat(32));

        let failed = ocsf(&event(
            "auth.failure",
            json!({"user": "mallory", "client_addr": "10.0.0.9:5555", "reason": "bad token"}),
        ));
        assert_eq!(failed["class_uid"], 3002);
        assert_eq!(failed["status_id"], 2);
        assert_eq!(failed["src_endpoint"]["ip"], "10.0.0.9");
        assert_eq!(failed["src_endpoint"]["port"], 5555);
        assert_eq!(failed["status_detail"], "bad token");

        let other = ocsf(&event("grant.created", json!({})));
        assert_eq!(
            (other["class_uid"].as_i64(), other["type_uid"].as_i64()),
            (Some(0), Some(99))
        );
    }

    #[test]
    fn each_kind_of_command_gets_its_ocsf_class() {
        let allow = json!({"effect": "allow", "rule": null});
        let http = ocsf(&event(
            "command",
            json!({"command_id": 1, "protocol": "http", "connection_type": "http",
                   "request": {"method": "DELETE", "path": "/accounts/7"},
                   "text": null, "text_masked": {}, "verdict": allow}),
        ));
        assert_eq!(
            (http["class_uid"].as_u64(), http["activity_id"].as_u64()),
            (Some(6003), Some(4))
        );
        assert_eq!(http["http_request"]["url"]["path"], "/accounts/7");
        let shell = ocsf(&event(
            "command",
            json!({"command_id": 2, "protocol": "ssh", "channel": 1, "kind": "exec",
                   "command": "uptime", "program": "uptime", "path": null, "verdict": allow}),
        ));
        assert_eq!(shell["class_uid"], 1007);
        assert_eq!(shell["process"]["cmd_line"], "uptime");
        let mysql = ocsf(&event(
            "command",
            json!({"command_id": 3, "protocol": "text", "sql": "select 1",
                   "statements": [], "verdict": allow}),
        ));
        assert_eq!(mysql["class_uid"], 6005);
        assert_eq!(mysql["database"]["type"], "MySQL");
        let exit = ocsf(&event(
            "command.result",
            json!({"command_id": 2, "channel": 1, "exit_status": 0, "masked": {}}),
        ));
        assert_eq!(exit["class_uid"], 1007);
    }

    #[test]
    fn syslog_messages_follow_rfc_5424() {
        let e = event(
            "command",
            json!({"verdict": {"effect": "block"}, "sql": "x]\"y"}),
        );
        let h = SyslogHeader {
            facility: 13,
            hostname: "gw 1",
            app_name: "gatehouse",
            proc_id: 42,
        };
        let m = syslog_message(&e, Format::Gatehouse, &h);
        assert!(
            m.starts_with(&format!(
                "<108>1 2025-01-31T09:15:02.123Z gw1 gatehouse 42 command [gatehouse@32473 seq=\"7\" hash=\"{}\" kind=\"command\"] \u{feff}{{",
                "ab".repeat(32)
            )),
            "{m}"
        );
        let framed = octet_counted(&m);
        let (len, rest) = framed.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rest.len());
    }
}
