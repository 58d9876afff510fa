//! `gatehouse sessions`: list, show and replay the sessions recorded in the
//! audit trail.

use super::to_stdout;
use crate::config::GatewayConfig;
use anyhow::{Context, Result};
use clap::Subcommand;
use gatehouse_audit::SessionFilter;
use gatehouse_core::events::{
    kind, read, CommandDetail, CommandEvent, CommandResult, RecordingEvent, SessionEndEvent,
};
use gatehouse_core::Verdict;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum SessionsCommand {
    /// Recent sessions, newest first.
    List {
        /// Only this identity (subject).
        #[arg(long)]
        subject: Option<String>,
        /// Only this connection.
        #[arg(long)]
        connection: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
    /// One session with its commands.
    Show {
        /// Session id.
        id: String,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Play an SSH session's recording in this terminal, with its timing.
    Replay {
        /// Session id.
        id: String,
        /// Playback speed (2 plays twice as fast).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Longest pause between two events, in seconds.
        #[arg(long, default_value_t = 2.0)]
        max_wait: f64,
        /// Which channel's recording, when the session has several (1, 2, …).
        #[arg(long)]
        channel: Option<u64>,
    },
}

pub(super) fn run(cfg: GatewayConfig, command: SessionsCommand) -> Result<ExitCode> {
    let db = cfg.state_path(&cfg.audit.path);
    match command {
        SessionsCommand::List {
            subject,
            connection,
            limit,
            json,
        } => {
            let filter = SessionFilter {
                subject,
                connection,
                since: None,
                until: None,
                limit: Some(limit),
            };
            let list = gatehouse_audit::list_sessions(&db, &filter)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                outln!(
                    "{:<24}  {:<12}  {:<10}  {:<24}  {:>8}  {:>7}",
                    "SESSION",
                    "IDENTITY",
                    "CONNECTION",
                    "STARTED",
                    "COMMANDS",
                    "BLOCKED"
                )?;
                for s in list {
                    outln!(
                        "{:<24}  {:<12}  {:<10}  {:<24}  {:>8}  {:>7}",
                        s.id,
                        s.subject.unwrap_or_default(),
                        s.connection.unwrap_or_default(),
                        s.started_at,
                        s.commands,
                        s.blocked
                    )?;
                }
            }
        }
        SessionsCommand::Replay {
            id,
            speed,
            max_wait,
            channel,
        } => {
            let events = gatehouse_audit::session_events(&db, &id)?;
            anyhow::ensure!(
                !events.is_empty(),
                "no session {id} in the audit trail; see `gatehouse sessions list`"
            );
            let recordings: Vec<(u64, RecordingEvent)> = events
                .iter()
                .filter(|e| e.kind == kind::RECORDING)
                .filter_map(|e| Some((e.seq, read::<RecordingEvent>(&e.data)?)))
                .filter(|(_, r)| channel.is_none_or(|c| r.channel == c))
                .collect();
            let Some((seq, rec)) = recordings.first() else {
                anyhow::bail!(
                    "session {id} has no terminal recording{} (SSH shell and exec channels and kubectl exec/attach streams are recorded; a recording is chained when it closes)",
                    channel.map(|c| format!(" for channel {c}")).unwrap_or_default()
                );
            };
            let file = rec.recording.file.as_str();
            let path = cfg.recordings_dir().join(file);
            let bytes = std::fs::read(&path)
                .with_context(|| format!("reading recording {}", path.display()))?;
            let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            anyhow::ensure!(
                digest == rec.recording.sha256,
                "recording {} does not match the SHA-256 chained in audit event #{seq}: it was altered after the session",
                path.display(),
            );
            anyhow::ensure!(speed > 0.0, "--speed must be above 0");
            let (_, frames) = gatehouse_core::recording::read(&path).map_err(anyhow::Error::msg)?;
            eprintln!(
                "replaying {} (SHA-256 verified against audit event #{seq}); {} recording(s) in this session",
                file,
                recordings.len()
            );
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let mut last = 0.0f64;
            for (t, code, data) in frames {
                let wait = ((t - last).max(0.0) / speed).min(max_wait);
                last = t;
                if code != "o" {
                    continue;
                }
                std::thread::sleep(std::time::Duration::from_secs_f64(wait));
                to_stdout(out.write_all(data.as_bytes()))?;
                to_stdout(out.flush())?;
            }
            eprintln!("\n[end of recording]");
        }
        SessionsCommand::Show { id, json } => {
            let events = gatehouse_audit::session_events(&db, &id)?;
            anyhow::ensure!(
                !events.is_empty(),
                "no session {id} in the audit trail; see `gatehouse sessions list`"
            );
            if json {
                outln!("{}", serde_json::to_string_pretty(&events)?)?;
            } else {
                for e in events {
                    outln!("{}", describe_event(&e))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per event for people.
fn describe_event(e: &gatehouse_audit::AuditEvent) -> String {
    let d = &e.data;
    let s = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    match e.kind.as_str() {
        "session.start" => format!(
            "#{} {} session start: {} on {} from {} ({})",
            e.seq,
            e.ts,
            e.subject.clone().unwrap_or_default(),
            e.connection.clone().unwrap_or_default(),
            s("client_addr"),
            transport(d)
        ),
        "command" => match read::<CommandEvent>(d) {
            Some(c) => {
                let (effect, rule) = match &c.verdict {
                    Verdict::Allow { rule } => ("allow", rule.clone()),
                    Verdict::Hold { rule, .. } => ("hold", Some(rule.clone())),
                    Verdict::Block { rule, .. } => ("block", Some(rule.clone())),
                };
                let rule = rule.map(|r| format!(" (rule {r})")).unwrap_or_default();
                let what = match &c.detail {
                    CommandDetail::Sql(sql) => sql.sql.clone(),
                    CommandDetail::Shell(sh) => format!(
                        "{} {}",
                        serde_json::to_value(sh.kind)
                            .ok()
                            .and_then(|k| k.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        sh.command
                    ),
                    CommandDetail::Http(h) => h
                        .request
                        .get("summary")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string(),
                };
                format!(
                    "#{} {} command {} [{effect}{rule}]: {what}",
                    e.seq, e.ts, c.command_id
                )
            }
            // An event written by another version (or by hand): its fields
            // by name.
            None => {
                let verdict = &d["verdict"];
                let effect = verdict["effect"].as_str().unwrap_or("?");
                let rule = verdict["rule"]
                    .as_str()
                    .map(|r| format!(" (rule {r})"))
                    .unwrap_or_default();
                let what = match d.get("sql") {
                    Some(_) => s("sql"),
                    None => format!("{} {}", s("kind"), s("command")),
                };
                format!(
                    "#{} {} command {} [{effect}{rule}]: {what}",
                    e.seq,
                    e.ts,
                    d.get("command_id").cloned().unwrap_or_default()
                )
            }
        },
        "command.result" => match read::<CommandResult>(d) {
            Some(r) => {
                let exit = r.detail.get("exit_status").filter(|x| !x.is_null());
                let outcome = match (exit, r.status, r.rows) {
                    (Some(x), _, _) => format!(
                        "exit status {x}{}",
                        r.detail
                            .get("transfer")
                            .filter(|t| !t.is_null())
                            .map(|t| format!(", {} {} bytes", t["direction"], t["bytes"]))
                            .unwrap_or_default()
                    ),
                    (None, Some(status), _) => format!("HTTP {status}"),
                    (None, None, rows) => format!("{} rows", rows.unwrap_or_default()),
                };
                format!(
                    "#{} {} result of command {}: {outcome}, masked {}{}",
                    e.seq,
                    e.ts,
                    r.command_id,
                    serde_json::to_value(&r.masked).unwrap_or_default(),
                    r.error
                        .filter(|v| !v.is_null())
                        .map(|v| format!(", error {v}"))
                        .unwrap_or_default()
                )
            }
            None => format!("#{} {} result: {d}", e.seq, e.ts),
        },
        "recording" => format!(
            "#{} {} recording of channel {}: {} ({} bytes, SHA-256 {}); replay with `gatehouse sessions replay {}`",
            e.seq,
            e.ts,
            d.get("channel").cloned().unwrap_or_default(),
            s("file"),
            d.get("size").cloned().unwrap_or_default(),
            s("sha256"),
            e.session_id.clone().unwrap_or_default()
        ),
        "file.transfer" => format!(
            "#{} {} {} {} ({} bytes over {})",
            e.seq,
            e.ts,
            s("direction"),
            s("path"),
            d.get("bytes").cloned().unwrap_or_default(),
            s("protocol")
        ),
        "session.expired" => format!(
            "#{} {} session expired: token expired at {} ({})",
            e.seq,
            e.ts,
            s("token_expires_at"),
            s("reason")
        ),
        "session.end" => match read::<SessionEndEvent>(d) {
            Some(end) => format!(
                "#{} {} session end: {} commands, {} blocked, {} ms{}",
                e.seq,
                e.ts,
                end.commands,
                end.blocked,
                end.duration_ms,
                Some(end.reason)
                    .filter(|r| !r.is_empty())
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
            None => format!("#{} {} session end: {d}", e.seq, e.ts),
        },
        "approval.requested" => format!(
            "#{} {} approval request #{} opened{}{}{}",
            e.seq,
            e.ts,
            d.get("request_id").cloned().unwrap_or_default(),
            d.get("rule")
                .and_then(|v| v.as_str())
                .map(|r| format!(" by rule {r}"))
                .unwrap_or_default(),
            d.get("requirement")
                .cloned()
                .and_then(|r| serde_json::from_value::<gatehouse_core::approval::Requirement>(r).ok())
                .map(|r| format!("; needs {}", r.describe()))
                .unwrap_or_default(),
            d.get("expires_at")
                .and_then(|v| v.as_str())
                .map(|x| format!("; expires {x}"))
                .unwrap_or_default()
        ),
        "approval.decision" => format!(
            "#{} {} request #{} {} by {}: {}",
            e.seq,
            e.ts,
            d.get("request_id").cloned().unwrap_or_default(),
            if s("decision") == "approve" {
                "approved"
            } else {
                "denied"
            },
            person(d.get("approver")),
            s("reason")
        ),
        "approval.approved" | "approval.denied" | "approval.expired" | "approval.executed"
        | "approval.withdrawn" => format!(
            "#{} {} request #{} {}{}",
            e.seq,
            e.ts,
            d.get("request_id").cloned().unwrap_or_default(),
            match e.kind.as_str() {
                "approval.approved" => "was approved",
                "approval.denied" => "was denied",
                "approval.expired" => "expired: nobody decided in time",
                "approval.executed" => "ran: the approved command was forwarded, once",
                _ => "was withdrawn",
            },
            d.get("why")
                .and_then(|v| v.as_str())
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        ),
        "grant.created" | "grant.revoked" | "grant.expired" => format!(
            "#{} {} access grant #{} {} (request #{}){}",
            e.seq,
            e.ts,
            d.get("grant_id").cloned().unwrap_or_default(),
            match e.kind.as_str() {
                "grant.created" => "created".to_string(),
                "grant.revoked" => format!("revoked by {}", person(d.get("revoked_by"))),
                _ => "expired".to_string(),
            },
            d.get("request_id").cloned().unwrap_or_default(),
            d.get("reason")
                .and_then(|v| v.as_str())
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        other => format!("#{} {} {other}: {}", e.seq, e.ts, fields(d)),
    }
}

/// How a session's client reached the gateway, for `sessions show`.
fn transport(d: &serde_json::Value) -> String {
    match d.get("protocol").and_then(|v| v.as_str()) {
        // SSH is its own encrypted transport; it carries no `tls` flag.
        Some("ssh") => "ssh, encrypted".to_string(),
        protocol => {
            let tls = if d.get("tls").and_then(|v| v.as_bool()) == Some(true) {
                "TLS"
            } else {
                "no TLS"
            };
            match protocol {
                Some(p) => format!("{p}, {tls}"),
                None => tls.to_string(),
            }
        }
    }
}

/// An identity as people name it: the email, else the subject.
fn person(v: Option<&serde_json::Value>) -> String {
    v.and_then(|v| {
        v.get("email")
            .and_then(|x| x.as_str())
            .or_else(|| v.get("subject").and_then(|x| x.as_str()))
            .or_else(|| v.as_str())
    })
    .unwrap_or("?")
    .to_string()
}

/// An event's fields as `key=value` pairs (nested values as compact JSON),
/// for kinds without a sentence of their own.
fn fields(d: &serde_json::Value) -> String {
    match d.as_object() {
        Some(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => d.to_string(),
    }
}
