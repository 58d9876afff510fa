//! `gatehouse sessions`: list, show and replay the sessions recorded in the
//! audit trail.

use super::to_stdout;
use crate::config::GatewayConfig;
use anyhow::{Context, Result};
use clap::Subcommand;
use gatehouse_audit::SessionFilter;
use gatehouse_core::events::{
    kind, read, Choice, CommandDetail, Event, RecordingEvent, SessionStart,
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
        /// Write the recording as it is. By default, control sequences
        /// that act on your terminal rather than draw (title, clipboard,
        /// hyperlinks, status reports) are shown as text.
        #[arg(long)]
        raw: bool,
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
            raw,
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
            let anchored = chain_anchors(&cfg, &db, *seq)?;
            // Played from the bytes whose digest was checked.
            let text = String::from_utf8(bytes)
                .map_err(|_| anyhow::anyhow!("recording {} is not UTF-8", path.display()))?;
            let (_, frames) =
                gatehouse_core::recording::parse(&text, &path).map_err(anyhow::Error::msg)?;
            eprintln!(
                "replaying {} (SHA-256 verified against audit event #{seq}, {anchored}); {} recording(s) in this session{}",
                file,
                recordings.len(),
                if raw {
                    ""
                } else {
                    "; control sequences that act on the terminal are shown as text (--raw writes them)"
                }
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
                let data = if raw {
                    data
                } else {
                    gatehouse_core::terminal::safe(&data)
                };
                to_stdout(out.write_all(data.as_bytes()))?;
                to_stdout(out.flush())?;
            }
            if !raw {
                // Leave the terminal as it was: attributes, cursor, main
                // screen, scroll region, character set, key modes.
                to_stdout(out.write_all(gatehouse_core::terminal::RESET.as_bytes()))?;
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
                    // What clients and targets wrote is text here: no
                    // control character reaches the terminal.
                    outln!("{}", gatehouse_core::terminal::visible(&describe_event(&e)))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Check the trail up to the recording's event `seq` before it is
/// replayed: the hash chain and checkpoint signatures must hold through
/// it. Says how it is anchored (a signed checkpoint, or the unsigned tail).
fn chain_anchors(cfg: &GatewayConfig, db: &std::path::Path, seq: u64) -> Result<String> {
    let pub_path = gatehouse_audit::public_key_path(&cfg.state_path(&cfg.audit.signing_key));
    let key = gatehouse_audit::load_verifying_key(&pub_path)
        .with_context(|| format!("reading the public key {}", pub_path.display()))?;
    let options = gatehouse_audit::VerifyOptions {
        configured_policy: Some(cfg.audit.checkpoint_policy()),
        anchor_file: Some(cfg.state_path(&cfg.audit.anchor_file)),
        ..Default::default()
    };
    let report = gatehouse_audit::verify_with(db, &key, &options)?;
    let signed = report.last_checkpoint_seq.filter(|s| *s >= seq);
    match (&report.first_bad, signed) {
        (None, Some(signed)) => Ok(format!(
            "its chain verified and signed by a checkpoint through event #{signed}"
        )),
        (None, None) => Ok(
            "its chain verified; the event is in the unsigned tail, not yet signed by a checkpoint"
                .to_string(),
        ),
        // A problem later in the trail leaves this event standing only when
        // a checkpoint that verified signs it (a rewrite or a cut can be
        // reported at a later event than the one it changed).
        (Some(bad), Some(signed)) => {
            eprintln!(
                "warning: the audit trail does not verify after event #{signed} ({bad}); run `gatehouse audit verify`"
            );
            Ok(format!(
                "signed by a checkpoint through event #{signed} that verified"
            ))
        }
        (Some(bad), None) => anyhow::bail!(
            "the audit trail does not verify ({bad}) and no checkpoint that verified signs the recording's event #{seq}; \
             the recording is not replayed. Run `gatehouse audit verify` for the details"
        ),
    }
}

/// One line per event for people, from the event's type
/// (`core::events::Event`); a kind without one, or an event without its
/// kind's shape, is shown as its fields.
fn describe_event(e: &gatehouse_audit::AuditEvent) -> String {
    let head = format!("#{} {}", e.seq, e.ts);
    let Some(event) = Event::read(&e.kind, &e.data) else {
        return format!("{head} {}: {}", e.kind, fields(&e.data));
    };
    let request = event
        .request_id()
        .map(|r| format!("#{r}"))
        .unwrap_or_default();
    match event {
        Event::SessionStart(start) => format!(
            "{head} session start: {} on {} from {} ({})",
            e.subject.clone().unwrap_or_default(),
            e.connection.clone().unwrap_or_default(),
            start.client_addr,
            transport(&start)
        ),
        Event::Command(c) => {
            let (effect, rule) = match &c.verdict {
                Verdict::Allow { rule } => ("allow", rule.clone()),
                Verdict::Hold { rule, .. } => ("hold", Some(rule.clone())),
                Verdict::Block { rule, .. } => ("block", Some(rule.clone())),
            };
            let rule = rule.map(|r| format!(" (rule {r})")).unwrap_or_default();
            let what = match &c.detail {
                CommandDetail::Sql(sql) => sql.sql.clone(),
                CommandDetail::Shell(sh) => format!("{} {}", sh.kind.as_str(), sh.command),
                CommandDetail::Http(h) => h
                    .request
                    .get("summary")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string(),
            };
            format!(
                "{head} command {} [{effect}{rule}]: {what}",
                c.command_id
            )
        }
        Event::CommandResult(r) => {
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
                "{head} result of command {}: {outcome}, masked {}{}",
                r.command_id,
                serde_json::to_value(&r.masked).unwrap_or_default(),
                r.error
                    .as_ref()
                    .filter(|v| !v.is_null())
                    .map(|v| format!(", error {v}"))
                    .unwrap_or_default()
            )
        }
        Event::Recording(r) => format!(
            "{head} recording of channel {}: {} ({} bytes, SHA-256 {}); replay with `gatehouse sessions replay {}`",
            r.channel,
            r.recording.file,
            r.recording.size,
            r.recording.sha256,
            e.session_id.clone().unwrap_or_default()
        ),
        Event::FileTransfer(t) => format!(
            "{head} {} {} ({} bytes over {}){}",
            t.direction,
            t.path,
            t.bytes,
            t.protocol,
            t.masking
                .map(|m| format!(
                    "; {}, {} values masked{}",
                    m.result,
                    m.masked.total(),
                    m.reason.map(|r| format!(": {r}")).unwrap_or_default()
                ))
                .unwrap_or_default()
        ),
        Event::SessionExpired(x) => format!(
            "{head} session expired: token expired at {} ({})",
            x.token_expires_at, x.reason
        ),
        Event::SessionEnd(end) => format!(
            "{head} session end: {} commands, {} blocked, {} ms{}",
            end.commands,
            end.blocked,
            end.duration_ms,
            Some(end.reason)
                .filter(|r| !r.is_empty())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        Event::ApprovalRequested(r) => format!(
            "{head} approval request {request} opened{}{}{}",
            r.event
                .rule
                .as_ref()
                .map(|r| format!(" by rule {r}"))
                .unwrap_or_default(),
            r.event
                .requirement
                .as_ref()
                .map(|r| format!("; needs {}", r.describe()))
                .unwrap_or_default(),
            r.event
                .expires_at
                .as_ref()
                .map(|x| format!("; expires {x}"))
                .unwrap_or_default()
        ),
        Event::ApprovalDecision(d) => format!(
            "{head} request {request} {} by {}: {}",
            match d.event.decision {
                Choice::Approve => "approved",
                Choice::Deny => "denied",
            },
            person(&d.event.approver),
            d.event.reason
        ),
        Event::ApprovalEnded(end, a) => format!(
            "{head} request {request} {}{}",
            end.describe(),
            a.event
                .why
                .as_ref()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        ),
        Event::GrantCreated(g) => format!(
            "{head} access grant #{} created for {} until {} (request {request})",
            g.event.grant_id,
            person(&g.event.holder),
            g.event.expires_at
        ),
        Event::GrantRevoked(g) => format!(
            "{head} access grant #{} revoked by {} (request {request}){}",
            g.event.grant_id,
            g.event.revoked_by.as_ref().map_or("?", person),
            g.event
                .reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        Event::GrantExpired(g) => format!(
            "{head} access grant #{} expired (request {request})",
            g.event.grant_id
        ),
        _ => format!("{head} {}: {}", e.kind, fields(&e.data)),
    }
}

/// How a session's client reached the gateway, for `sessions show`.
fn transport(start: &SessionStart) -> String {
    match start.protocol.as_str() {
        // SSH is its own encrypted transport; it carries no `tls` flag.
        "ssh" => "ssh, encrypted".to_string(),
        protocol => {
            let tls = if start.tls == Some(true) {
                "TLS"
            } else {
                "no TLS"
            };
            match protocol {
                "" => tls.to_string(),
                p => format!("{p}, {tls}"),
            }
        }
    }
}

/// An identity as people name it: the email, else the subject.
fn person(who: &gatehouse_core::Identity) -> &str {
    who.email.as_deref().unwrap_or(&who.subject)
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
