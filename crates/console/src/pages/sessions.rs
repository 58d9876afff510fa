//! Sessions as the audit trail recorded them: a searchable list and one
//! session's timeline. Everything shown comes from the trail, which holds
//! only masked data.

use super::blocking;
use crate::auth::Viewer;
use crate::html::{error_page, forbidden, layout, not_found, respond, url_part, when_text};
use crate::roles::{may_view_request, may_view_session};
use crate::state::App;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_audit::{list_sessions, session_events, AuditEvent, SessionFilter, SessionSummary};
use gatehouse_core::events::{
    kind, Choice, CommandDetail, CommandEvent, CommandResult, Event, SessionEndEvent, SessionStart,
    SqlCommand,
};
use gatehouse_core::{Identity, Verdict};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Sessions shown at most.
const LIST_LIMIT: usize = 200;
/// Events shown at most on one session's page.
const EVENT_LIMIT: usize = 5000;
/// Sample rows shown per result.
const SAMPLE_ROWS: usize = 20;

#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    subject: Option<String>,
    connection: Option<String>,
    since: Option<String>,
    until: Option<String>,
    verdict: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// A time bound from a form: `datetime-local` values (no zone) are UTC.
fn time_bound(s: &Option<String>) -> Option<String> {
    let s = nonempty(s)?;
    let b = s.as_bytes();
    if s.len() == 16 && b.get(10) == Some(&b'T') && !s.contains('Z') {
        Some(format!("{s}:00Z"))
    } else {
        Some(s)
    }
}

/// `GET /sessions`.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> Response {
    // Non-auditors see their own sessions only.
    let subject = if viewer.auditor {
        nonempty(&q.subject)
    } else {
        Some(viewer.identity.subject.clone())
    };
    let verdict = q.verdict.as_deref().unwrap_or("any");
    let filtered = matches!(verdict, "blocked" | "clean");
    let filter = SessionFilter {
        subject: subject.clone(),
        connection: nonempty(&q.connection),
        since: time_bound(&q.since),
        until: time_bound(&q.until),
        limit: Some(if filtered { 2000 } else { LIST_LIMIT as u32 }),
    };
    let path = app.audit_db.clone();
    let found = blocking(move || list_sessions(&path, &filter).map_err(|e| e.to_string())).await;
    let sessions: Vec<SessionSummary> = match found {
        Ok(s) => s
            .into_iter()
            .filter(|s| match verdict {
                "blocked" => s.blocked > 0,
                "clean" => s.blocked == 0,
                _ => true,
            })
            .take(LIST_LIMIT)
            .collect(),
        Err(e) => {
            return error_page(
                Some(&viewer),
                if e.contains("is not a time") {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                "Sessions unavailable",
                &e,
                Some(("/sessions", "Clear the filters")),
            )
        }
    };
    let body = html! {
        div.page-head { h1 { "Sessions" } }
        form.filters.wide method="get" action="/sessions" {
            @if viewer.auditor {
                label { "Identity" input name="subject" value=[subject.as_deref()] placeholder="subject"; }
            } @else {
                span.muted.own { "Your sessions" }
            }
            label { "Connection" input name="connection" value=[nonempty(&q.connection)] placeholder="any"; }
            label { "From (UTC)" input type="datetime-local" name="since" value=[nonempty(&q.since)]; }
            label { "To (UTC)" input type="datetime-local" name="until" value=[nonempty(&q.until)]; }
            label { "Commands"
                select name="verdict" {
                    option value="any" selected[verdict == "any"] { "any" }
                    option value="blocked" selected[verdict == "blocked"] { "had blocked commands" }
                    option value="clean" selected[verdict == "clean"] { "nothing blocked" }
                }
            }
            button type="submit" { "Search" }
        }
        @if sessions.is_empty() {
            section.card.empty { p { "No sessions match." } }
        } @else {
            div.table-wrap {
                table.grid.sessions {
                    thead { tr { th { "Started" } th { "Identity" } th { "Connection" } th { "From" } th { "Ended" } th.num { "Commands" } th.num { "Blocked" } } }
                    tbody {
                        @for s in &sessions {
                            tr class=[(s.blocked > 0).then_some("flagged")] {
                                td { a href={ "/sessions/" (url_part(&s.id)) } { (when_text(&s.started_at)) } }
                                td { (s.subject.as_deref().unwrap_or("?")) }
                                td { (s.connection.as_deref().unwrap_or("?")) span.muted { " " (s.protocol.as_deref().unwrap_or("")) } }
                                td.mono { (s.client_addr.as_deref().unwrap_or("")) }
                                td { @if let Some(e) = &s.ended_at { (when_text(e)) } @else { span.muted { "open (or the gateway stopped)" } } }
                                td.num { (s.commands) }
                                td.num { @if s.blocked > 0 { span.badge.st-denied { (s.blocked) } } @else { "0" } }
                            }
                        }
                    }
                }
            }
            @if sessions.len() == LIST_LIMIT { p.muted { "Showing the newest " (LIST_LIMIT) "; narrow the search to see older ones." } }
        }
    };
    respond(
        StatusCode::OK,
        layout(&viewer, "sessions", "Sessions", body),
    )
}

/// `GET /sessions/{id}`: one session's timeline.
pub(crate) async fn show(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    let events = match visible_events(&app, &viewer, &id).await {
        Ok(events) => events,
        Err(refused) => return refused,
    };
    let start = events.iter().find(|e| e.kind == kind::SESSION_START);
    let started: Option<SessionStart> = start.and_then(typed);
    let subject = session_subject(start, &events);
    let decided: Vec<CommandEvent> = events
        .iter()
        .filter(|e| e.kind == kind::COMMAND)
        .filter_map(typed)
        .collect();
    let decided_ids: BTreeSet<u64> = decided.iter().map(|c| c.command_id).collect();
    // A result is shown under its command, not again on its own: `folded`
    // holds the event numbers of those results.
    let mut results: HashMap<u64, CommandResult> = HashMap::new();
    let mut folded: BTreeSet<u64> = BTreeSet::new();
    for e in events.iter().filter(|e| e.kind == kind::COMMAND_RESULT) {
        if let Some(r) = typed::<CommandResult>(e) {
            if decided_ids.contains(&r.command_id) {
                folded.insert(e.seq);
            }
            results.insert(r.command_id, r);
        }
    }
    let end = events.iter().find(|e| e.kind == kind::SESSION_END);
    let ended: Option<SessionEndEvent> = end.and_then(typed);
    let commands = events.iter().filter(|e| e.kind == kind::COMMAND).count();
    let with_effect = |effect: &str| {
        decided
            .iter()
            .filter(|c| c.verdict.effect() == effect)
            .count()
    };
    let (blocked, held) = (with_effect("block"), with_effect("hold"));
    let body = html! {
        p.crumbs { a href="/sessions" { "← Sessions" } }
        section.card {
            h1 { "Session " code { (id) } }
            dl.facts {
                dt { "Identity" }
                dd {
                    (subject.unwrap_or("?"))
                    @if let Some(s) = &started {
                        @if let Some(e) = &s.identity.email { span.muted { " · " (e) } }
                        @if !s.identity.groups.is_empty() {
                            span.muted { " · groups: " (s.identity.groups.join(", ")) }
                        }
                    }
                }
                dt { "Connection" }
                dd { (start.and_then(|s| s.connection.as_deref()).unwrap_or("?")) }
                @if let (Some(e), Some(s)) = (start, &started) {
                    dt { "From" }
                    dd {
                        span.mono { (s.client_addr) }
                        " over " (s.protocol)
                        @if s.protocol == "ssh" { " (encrypted)" }
                        @else if s.tls == Some(true) { " (TLS)" } @else { " (no TLS)" }
                        @if let Some(a) = s.detail.get("application_name").and_then(Value::as_str) { span.muted { " · " (a) } }
                    }
                    dt { "Started" }
                    dd { (when_text(&e.ts)) }
                }
                dt { "Ended" }
                dd {
                    @if let Some(e) = end {
                        (when_text(&e.ts))
                        @if let Some(r) = ended.as_ref().map(|s| s.reason.as_str()).filter(|r| !r.is_empty()) { span.muted { " · " (r) } }
                    } @else { span.muted { "still open, or the gateway stopped first" } }
                }
                dt { "Commands" }
                dd {
                    (commands)
                    @if blocked > 0 { " · " span.badge.st-denied { (blocked) " blocked" } }
                    @if held > 0 { " · " span.badge.st-pending { (held) " held for approval" } }
                }
            }
            p.muted.small { "As recorded in the audit trail: results are masked exactly as the client received them." }
        }
        ol.timeline {
            @for e in events.iter().take(EVENT_LIMIT) {
                @if folded.contains(&e.seq) {
                } @else {
                    (event_item(e, &results))
                }
            }
        }
        @if events.len() > EVENT_LIMIT { p.muted { "Showing the first " (EVENT_LIMIT) " events of " (events.len()) "; export the session for the rest." } }
    };
    respond(StatusCode::OK, layout(&viewer, "sessions", "Session", body))
}

/// The session's events, if the viewer may see the session: their own,
/// or one that raised a request they may decide (approvers judge a held
/// command in the context of its session); auditors see every session.
pub(super) async fn visible_events(
    app: &Arc<App>,
    viewer: &Viewer,
    id: &str,
) -> Result<Vec<AuditEvent>, Response> {
    let path = app.audit_db.clone();
    let sid = id.to_string();
    let events = blocking(move || session_events(&path, &sid).map_err(|e| e.to_string()))
        .await
        .map_err(|e| {
            error_page(
                Some(viewer),
                StatusCode::SERVICE_UNAVAILABLE,
                "Session unavailable",
                &e,
                None,
            )
        })?;
    if events.is_empty() {
        return Err(not_found(
            Some(viewer),
            "The audit trail has no session with that id.",
        ));
    }
    let start = events.iter().find(|e| e.kind == kind::SESSION_START);
    let subject = session_subject(start, &events);
    let issuer = start
        .and_then(typed::<SessionStart>)
        .map(|s| s.identity.issuer);
    let request_ids: BTreeSet<u64> = events
        .iter()
        .filter_map(|e| Event::read(&e.kind, &e.data)?.request_id())
        .collect();
    let mut visible_requests = 0;
    if !viewer.auditor {
        for rid in &request_ids {
            if let Ok(r) = app.broker.request(*rid).await {
                if r.session_id.as_deref() == Some(id) && may_view_request(&r, viewer) {
                    visible_requests += 1;
                }
            }
        }
    }
    if !may_view_session(subject, issuer.as_deref(), viewer, visible_requests) {
        return Err(forbidden(
            viewer,
            "This session is not yours, and it raised no request you may decide.",
        ));
    }
    Ok(events)
}

/// Whose session it is: its start's subject, else any event's.
fn session_subject<'a>(start: Option<&'a AuditEvent>, events: &'a [AuditEvent]) -> Option<&'a str> {
    start
        .and_then(|e| e.subject.as_deref())
        .or_else(|| events.iter().find_map(|e| e.subject.as_deref()))
}

/// An event's body as its type (`core::events`), when it has that shape.
pub(super) fn typed<T: serde::de::DeserializeOwned>(e: &AuditEvent) -> Option<T> {
    gatehouse_core::events::read(&e.data)
}

/// A JSON value as a cell: strings as they are, null as an empty cell.
fn cell(v: &Value) -> Markup {
    match v {
        Value::Null => html! { span.null { "NULL" } },
        Value::String(s) => html! { (s) },
        other => html! { (other.to_string()) },
    }
}

/// A string field of a free-form part of an event (an HTTP request's
/// facts, a target's error).
fn text<'a>(data: &'a Value, key: &str) -> &'a str {
    data.get(key).and_then(Value::as_str).unwrap_or("")
}

/// How a person is shown: their email, else their subject.
fn person(who: &Identity) -> &str {
    who.email.as_deref().unwrap_or(&who.subject)
}

fn request_link(id: Option<u64>) -> Markup {
    match id {
        Some(id) => html! { a href={ "/approvals/" (id) } { "request #" (id) } },
        None => html! { "a request" },
    }
}

/// One timeline entry: an event read as its type (`core::events::Event`);
/// an event without its kind's shape is shown as its JSON, so nothing is
/// hidden.
fn event_item(e: &AuditEvent, results: &HashMap<u64, CommandResult>) -> Markup {
    let typed = Event::read(&e.kind, &e.data);
    let class = match &typed {
        Some(Event::Command(c)) => match c.verdict.effect() {
            "block" => "event command blocked",
            "hold" => "event command held",
            _ => "event command",
        },
        Some(t) if t.request_id().is_some() => "event approval",
        Some(Event::SessionStart(_) | Event::SessionEnd(_)) => "event lifecycle",
        _ if e.kind == kind::COMMAND => "event command",
        _ => "event other",
    };
    let link = request_link(typed.as_ref().and_then(Event::request_id));
    html! {
        li class=(class) id={ "ev-" (e.seq) } {
            div.ev-head {
                span.ev-time { (when_text(&e.ts)) }
                span.ev-kind { (e.kind) }
                a.ev-seq href={ "#ev-" (e.seq) } title="audit event sequence number" { "#" (e.seq) }
            }
            @match typed {
                Some(Event::Command(c)) => { (command(&c, results)) }
                Some(Event::CommandResult(r)) => { (result_body(&r)) }
                Some(Event::SessionStart(s)) => {
                    p { "Connected as " strong { (s.user.as_deref().unwrap_or("")) } " from " span.mono { (s.client_addr) } " over " (s.protocol) "." }
                }
                Some(Event::SessionEnd(s)) => {
                    p {
                        "Ended after " (crate::html::span((s.duration_ms / 1000) as i64))
                        " · " (s.commands) " commands · " (s.blocked) " blocked"
                        @if !s.reason.is_empty() { " · " (s.reason) }
                    }
                }
                Some(Event::Recording(r)) => {
                    p {
                        "Terminal recording of channel " (r.channel)
                        " · " (r.recording.size) " bytes · SHA-256 "
                        code { (r.recording.sha256.chars().take(16).collect::<String>()) "…" }
                        " · "
                        @if let Some(sid) = e.session_id.as_deref() {
                            a.replay-link href={ "/sessions/" (sid) "/replay/" (r.channel) } { "Replay" }
                        }
                    }
                }
                Some(Event::FileTransfer(t)) => {
                    p {
                        (t.direction) " " code { (t.path) } " · " (t.bytes) " bytes over " (t.protocol)
                        @if let Some(m) = &t.masking {
                            " · " (m.result)
                            @if !m.masked.is_empty() { " (" (m.masked.total()) " values masked)" }
                            @if let Some(r) = &m.reason { span.muted { " — " (r) } }
                        }
                    }
                }
                Some(Event::ApprovalRequested(r)) => {
                    p {
                        "Approval requested: " (link)
                        @if let Some(req) = &r.event.requirement { " · needs " (req.describe()) }
                        @if let Some(x) = &r.event.expires_at { " · expires " (when_text(x)) }
                    }
                }
                Some(Event::ApprovalDecision(d)) => {
                    p {
                        strong { (person(&d.event.approver)) }
                        @if d.event.decision == Choice::Approve { " approved " } @else { " denied " }
                        (link)
                    }
                    @if !d.event.reason.is_empty() { blockquote.reason { (d.event.reason) } }
                }
                Some(Event::ApprovalEnded(end, a)) => {
                    p {
                        (link) " " (end.describe())
                        @if let Some(w) = &a.event.why { ": " (w) }
                        "."
                    }
                }
                Some(Event::GrantCreated(g)) => {
                    p { "Access grant #" (g.event.grant_id) " created for " (person(&g.event.holder)) " until " (when_text(&g.event.expires_at)) " (" (link) ")." }
                }
                Some(Event::GrantRevoked(g)) => {
                    p {
                        "Access grant #" (g.event.grant_id) " revoked"
                        @if let Some(by) = &g.event.revoked_by { " by " (person(by)) }
                        " (" (link) ")."
                    }
                    @if let Some(r) = &g.event.reason { blockquote.reason { (r) } }
                }
                Some(Event::GrantExpired(g)) => {
                    p { "Access grant #" (g.event.grant_id) " expired (" (link) ")." }
                }
                _ => {
                    pre.data { (serde_json::to_string_pretty(&e.data).unwrap_or_default()) }
                }
            }
        }
    }
}

fn command(c: &CommandEvent, results: &HashMap<u64, CommandResult>) -> Markup {
    let eff = c.verdict.effect();
    let (rule, message) = match &c.verdict {
        Verdict::Allow { rule } => (rule.as_deref(), None),
        Verdict::Hold { rule, message, .. } | Verdict::Block { rule, message } => {
            (Some(rule.as_str()), Some(message.as_str()))
        }
    };
    let result = results.get(&c.command_id);
    html! {
        div.verdict {
            span.badge.{ "v-" (eff) } { (eff) }
            @if let Some(r) = rule { " rule " code { (r) } }
            @if let Some(m) = message { span.muted { " — " (m) } }
        }
        @match &c.detail {
            CommandDetail::Sql(sql) => {
                pre.command { code { (sql.sql) } }
                (statements(sql))
            }
            CommandDetail::Http(h) => {
                pre.command { code { (text(&h.request, "summary")) } }
                @if let Some(t) = &h.text {
                    pre.command { code { (t) } }
                }
                p.muted.small {
                    (c.protocol) " · " (h.connection_type)
                    @if h.tool_call == Some(true) { " · a tool call in the model's answer" }
                }
            }
            CommandDetail::Shell(sh) => {
                pre.command { code { (sh.command) } }
                p.muted.small {
                    (c.protocol) " " (serde_json::to_value(sh.kind).ok().and_then(|k| k.as_str().map(str::to_string)).unwrap_or_default())
                    @if let Some(p) = &sh.path { " · " (p) }
                    @if sh.edited == Some(true) { " · edited with keys the gateway cannot follow; see the recording" }
                }
            }
        }
        @if let Some(r) = result { (result_body(r)) }
    }
}

/// The statement kinds and tables of a SQL command, and why it was not
/// parsed when it was not.
fn statements(sql: &SqlCommand) -> Markup {
    let kinds: Vec<&str> = sql.statements.iter().map(|s| s.kind.as_str()).collect();
    let tables: BTreeSet<&str> = sql
        .statements
        .iter()
        .flat_map(|s| s.tables_read.iter().chain(&s.tables_written))
        .map(String::as_str)
        .collect();
    html! {
        p.muted.small {
            @if !kinds.is_empty() { (kinds.join(", ")) }
            @if !tables.is_empty() { " · tables: " (tables.into_iter().collect::<Vec<_>>().join(", ")) }
            @if let Some(p) = &sql.parse_error { " · not parsed: " (p) }
        }
    }
}

fn result_body(r: &CommandResult) -> Markup {
    let masked: Vec<(&str, u64)> = r
        .masked
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(entity, n)| (entity.as_str(), *n))
        .collect();
    let sample = r.result_sample.as_ref();
    let columns: &[String] = r.columns.as_deref().unwrap_or_default();
    let usage = r
        .response
        .as_ref()
        .and_then(|v| v.get("usage"))
        .filter(|u| !u.is_null());
    let answer = r
        .response
        .as_ref()
        .and_then(|v| v.get("text"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    html! {
        div.result {
            p.small {
                @if let Some(rows) = r.rows { (rows) " row" @if rows != 1 { "s" } }
                @if let Some(us) = r.duration_us { " · " (format!("{:.1}", us as f64 / 1000.0)) " ms" }
                @if !masked.is_empty() {
                    " · masked: "
                    @for (i, (k, n)) in masked.iter().enumerate() {
                        @if i > 0 { ", " }
                        span.masked { (k) " ×" (n) }
                    }
                }
            }
            @if let Some(status) = r.status {
                p.small { "HTTP " (status)
                    @if let Some(b) = r.bytes_to_client { " · " (b) " bytes" }
                    @if let Some(u) = usage {
                        " · tokens: " (u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0)) " in, " (u.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0)) " out"
                    }
                }
                @if let Some(t) = answer {
                    pre.command { code { (t) } }
                }
            }
            @if let Some(err) = r.error.as_ref().filter(|e| !e.is_null()) {
                @if let Some(msg) = err.as_str() {
                    p.error { (msg) }
                } @else {
                    p.error { "Error " code { (text(err, "sqlstate")) } ": " (text(err, "message")) }
                }
            }
            @if let Some(rows) = sample.filter(|s| !s.is_empty()) {
                div.table-wrap {
                    table.sample {
                        @if !columns.is_empty() { thead { tr { @for c in columns { th { (c) } } } } }
                        tbody {
                            @for row in rows.iter().take(SAMPLE_ROWS) {
                                tr {
                                    @if let Some(cells) = row.as_array() {
                                        @for c in cells { td { (cell(c)) } }
                                    } @else {
                                        td { (cell(row)) }
                                    }
                                }
                            }
                        }
                    }
                }
                @if rows.len() > SAMPLE_ROWS { p.muted.small { "first " (SAMPLE_ROWS) " recorded rows shown" } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_local_is_utc() {
        assert_eq!(
            time_bound(&Some("2025-01-31T09:15".into())).as_deref(),
            Some("2025-01-31T09:15:00Z")
        );
        assert_eq!(
            time_bound(&Some("2025-01-31".into())).as_deref(),
            Some("2025-01-31")
        );
        assert_eq!(time_bound(&Some("  ".into())), None);
    }

    #[test]
    fn commands_render_escaped_with_their_results() {
        let cmd = AuditEvent {
            seq: 3,
            ts: "2025-01-31T09:15:02.123Z".into(),
            kind: "command".into(),
            session_id: Some("s".into()),
            subject: Some("alice".into()),
            connection: Some("bank".into()),
            data: serde_json::json!({
                "command_id": 1,
                "sql": "select '<b>' as x\nfrom t",
                "verdict": {"effect": "block", "rule": "no-<x>", "message": "m"},
                "statements": [{"kind": "select", "tables_read": ["t"], "tables_written": []}],
            }),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let res = AuditEvent {
            seq: 4,
            kind: "command.result".into(),
            data: serde_json::json!({
                "command_id": 1, "rows": 1, "duration_us": 1500,
                "masked": {"ssn": 1}, "error": null,
                "result_sample": [["***-**-1234", null]],
            }),
            ..cmd.clone()
        };
        let results = HashMap::from([(1u64, typed::<CommandResult>(&res).unwrap())]);
        let out = event_item(&cmd, &results).into_string();
        assert!(out.contains("&lt;b&gt;"), "{out}");
        assert!(out.contains("\nfrom t"), "newlines kept: {out}");
        assert!(out.contains("no-&lt;x&gt;"), "{out}");
        assert!(out.contains("event command blocked"), "{out}");
        assert!(out.contains("***-**-1234"), "{out}");
        assert!(out.contains("ssn ×1"), "{out}");
        assert!(
            !out.contains("<thead>"),
            "no names recorded, no header: {out}"
        );

        // Results recorded with their column names show them as headers.
        let named = AuditEvent {
            data: serde_json::json!({
                "command_id": 1, "rows": 1, "masked": {}, "error": null,
                "columns": ["name", "ssn"],
                "result_sample": [["Ada", "***-**-1234"]],
            }),
            ..res.clone()
        };
        let results = HashMap::from([(1u64, typed::<CommandResult>(&named).unwrap())]);
        let out = event_item(&cmd, &results).into_string();
        assert!(
            out.contains("<thead><tr><th>name</th><th>ssn</th></tr></thead>"),
            "{out}"
        );
    }
}
