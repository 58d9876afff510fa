//! The approvals queue and one request's page, with the decision form.

use super::broker_status;
use crate::auth::{redirect, Viewer};
use crate::html::{error_page, forbidden, layout, not_found, relative, respond, url_part, when};
use crate::roles::{in_approver_groups, may_view_request};
use crate::state::{now, App};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use gatehouse_approvals::model::{display_name, human_secs};
use gatehouse_approvals::{Request, RequestFilter, RequestKind, Status};
use gatehouse_core::approval::Settlement;
use maud::{html, Markup};
use serde::Deserialize;
use std::sync::Arc;

/// Status filters offered, in order.
const FILTERS: &[&str] = &[
    "pending",
    "approved",
    "executed",
    "denied",
    "expired",
    "withdrawn",
    "all",
];
/// Longest justification accepted.
const MAX_REASON: usize = 2000;

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    status: Option<String>,
    connection: Option<String>,
}

/// `GET /approvals`: the queue.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> Response {
    let filter = q.status.as_deref().unwrap_or("pending");
    let statuses = match filter {
        "all" => Vec::new(),
        s => match Status::parse(s) {
            Some(s) => vec![s],
            None => {
                return error_page(
                    Some(&viewer),
                    StatusCode::BAD_REQUEST,
                    "Unknown filter",
                    &format!(
                        "There is no status \"{s}\"; use one of {}.",
                        FILTERS.join(", ")
                    ),
                    Some(("/approvals", "Show pending requests")),
                )
            }
        },
    };
    let connection = q
        .connection
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from);
    let requests = match app
        .broker
        .requests(RequestFilter {
            statuses,
            connection: connection.clone(),
            limit: 1000,
        })
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return error_page(
                Some(&viewer),
                broker_status(&e),
                "Approvals unavailable",
                &e.to_string(),
                None,
            )
        }
    };
    let visible: Vec<Request> = requests
        .into_iter()
        .filter(|r| may_view_request(r, &viewer))
        .take(200)
        .collect();
    let t = now();
    let conn_q = connection
        .as_deref()
        .map(|c| format!("&connection={}", url_part(c)))
        .unwrap_or_default();
    let body = html! {
        div.page-head {
            h1 { "Approvals" }
            form.filters method="get" action="/approvals" {
                input type="hidden" name="status" value=(filter);
                input name="connection" placeholder="connection" value=[connection.as_deref()] aria-label="Connection";
                button type="submit" { "Filter" }
            }
        }
        nav.tabs {
            @for f in FILTERS {
                a href={ "/approvals?status=" (f) (conn_q) } class=[(filter == *f).then_some("active")] { (f) }
            }
        }
        @if visible.is_empty() {
            section.card.empty {
                @if filter == "pending" {
                    p { strong { "Nothing is waiting for you." } }
                    p.muted {
                        "Held commands and access requests you may decide appear here, with your own requests. "
                        "Approvers are told of new requests by their notifications."
                    }
                } @else {
                    p { "No " (filter) " requests you may see." }
                }
            }
        }
        @for r in &visible {
            (request_card(&app, r, &viewer, t, true, None, ""))
        }
        @if visible.len() == 200 { p.muted { "Showing the newest 200." } }
    };
    respond(
        StatusCode::OK,
        layout(&viewer, "approvals", "Approvals", body),
    )
}

#[derive(Deserialize)]
pub(crate) struct ShowQuery {
    decided: Option<String>,
}

fn parse_id(raw: &str) -> Option<u64> {
    raw.trim_start_matches('#').parse().ok()
}

/// `GET /approvals/{id}`: one request (the link sent to requesters and
/// approvers).
pub(crate) async fn show(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path(raw): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Response {
    let Some(id) = parse_id(&raw) else {
        return not_found(
            Some(&viewer),
            "Request numbers are digits, like /approvals/42.",
        );
    };
    let r = match app.broker.request(id).await {
        Ok(r) => r,
        Err(e) => {
            return error_page(
                Some(&viewer),
                broker_status(&e),
                "Request unavailable",
                &e.to_string(),
                Some(("/approvals", "Back to approvals")),
            )
        }
    };
    if !may_view_request(&r, &viewer) {
        return forbidden(
            &viewer,
            &format!("Request #{id} is not one you asked for or may decide."),
        );
    }
    let flash = match q.decided.as_deref() {
        Some("approve") => Some(flash_text(&r, true)),
        Some("deny") => Some(flash_text(&r, false)),
        _ => None,
    };
    respond(
        StatusCode::OK,
        detail_page(&app, &r, &viewer, flash.as_deref(), None, ""),
    )
}

fn flash_text(r: &Request, approve: bool) -> String {
    let verb = if approve { "approved" } else { "denied" };
    match r.status {
        Status::Pending => format!(
            "You {verb} request #{}. It still needs more approvals.",
            r.id
        ),
        s => format!("You {verb} request #{}. It is now {}.", r.id, s.as_str()),
    }
}

fn detail_page(
    app: &App,
    r: &Request,
    viewer: &Viewer,
    flash: Option<&str>,
    error: Option<&str>,
    typed_reason: &str,
) -> Markup {
    let t = now();
    let body = html! {
        p.crumbs { a href="/approvals" { "← Approvals" } }
        @if let Some(f) = flash { div.flash.ok role="status" { (f) } }
        (request_card(app, r, viewer, t, false, error, typed_reason))
    };
    layout(viewer, "approvals", &format!("Request #{}", r.id), body)
}

fn status_badge(s: Status) -> Markup {
    html! { span.badge.{"st-" (s.as_str())} #status data-status=(s.as_str()) { (s.as_str()) } }
}

fn status_badge_plain(s: Status) -> Markup {
    html! { span.badge.{"st-" (s.as_str())} data-status=(s.as_str()) { (s.as_str()) } }
}

/// One request as a card; `compact` for the queue.
fn request_card(
    app: &App,
    r: &Request,
    viewer: &Viewer,
    t: i64,
    compact: bool,
    error: Option<&str>,
    typed_reason: &str,
) -> Markup {
    let can_decide = app.broker.can_decide(r, &viewer.identity);
    let kind = match r.kind {
        RequestKind::Command => "Held command",
        RequestKind::Access => "Access request",
    };
    let progress = match r.requirement.settle(&r.decisions) {
        Settlement::Waiting {
            approvals_needed,
            groups_needed,
        } if r.status == Status::Pending => {
            let mut s = String::new();
            if approvals_needed > 0 {
                s = format!(
                    "{approvals_needed} more approval{}",
                    if approvals_needed == 1 { "" } else { "s" }
                );
            }
            if !groups_needed.is_empty() {
                if !s.is_empty() {
                    s.push_str(", and ");
                }
                s.push_str(&format!("one from each of {}", groups_needed.join(", ")));
            }
            Some(s)
        }
        _ => None,
    };
    html! {
        article.card.request.{"st-" (r.status.as_str())} id={ "req-" (r.id) } {
            header.request-head {
                @if compact {
                    a.req-id href={ "/approvals/" (r.id) } { "#" (r.id) }
                    (status_badge_plain(r.status))
                } @else {
                    h1.req-id { "Request #" (r.id) }
                    (status_badge(r.status))
                }
                span.kind { (kind) }
                span.muted {
                    "by " strong { (display_name(&r.requester)) }
                    " on " strong { (r.connection) }
                    " · " span title=(crate::html::rfc3339(r.created_at)) { (relative(r.created_at, t)) }
                }
            }
            @match r.kind {
                RequestKind::Command => {
                    pre.command { code { (r.command.as_deref().unwrap_or("")) } }
                }
                RequestKind::Access => {
                    p.access {
                        "Asks for " strong { (human_secs(r.access_secs.unwrap_or(0))) }
                        " of access to " strong { (r.connection) } ", "
                        strong.scope { (gatehouse_approvals::model::scope_words(&r.access_as)) } "."
                    }
                    blockquote.reason { (r.message) }
                }
            }
            dl.facts {
                @if r.kind == RequestKind::Command {
                    dt { "Rule" }
                    dd { code { (r.rule.as_deref().unwrap_or("?")) } " — " (r.message) }
                }
                dt { "Needs" }
                dd {
                    (r.requirement.describe())
                    @if let Some(p) = &progress { " · " span.warn { "waiting for " (p) } }
                }
                dt { "Requester" }
                dd {
                    (display_name(&r.requester))
                    @if r.requester.email.is_some() { span.muted { " (" (r.requester.subject) ")" } }
                    @if !r.requester.groups.is_empty() { span.muted { " · groups: " (r.requester.groups.join(", ")) } }
                }
                @if let Some(sid) = &r.session_id {
                    dt { "Session" }
                    dd {
                        a href={ "/sessions/" (url_part(sid)) } { code { (sid) } }
                        @if let Some(p) = &r.protocol { span.muted { " · " (p) } }
                    }
                }
                @if !compact {
                    dt { "Opened" }
                    dd { (when(r.created_at)) }
                }
                @if r.status == Status::Pending {
                    dt { "Expires" }
                    dd class=[(r.expires_at - t < 300).then_some("warn")] { (relative(r.expires_at, t)) " · " (when(r.expires_at)) }
                } @else if let Some(s) = r.settled_at {
                    dt { "Settled" }
                    dd { (when(s)) " · " (relative(s, t)) }
                }
                @if let Some(g) = r.grant_id {
                    dt { "Grant" }
                    dd { a href="/grants?show=all" { "grant #" (g) } }
                }
                @if let Some(n) = &r.note {
                    dt { "Note" }
                    dd { (n) }
                }
            }
            @if !r.decisions.is_empty() || !compact {
                div.decisions {
                    h3 { "Decisions" }
                    @if r.decisions.is_empty() {
                        p.muted { "None yet." }
                    } @else {
                        ul {
                            @for d in &r.decisions {
                                li class=(if d.approve { "yes" } else { "no" }) {
                                    strong { (display_name(&d.approver)) }
                                    @if d.approve { " approved" } @else { " denied" }
                                    @if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&d.at) {
                                        span.muted { " · " (when(at.timestamp())) }
                                    }
                                    blockquote.reason { (d.reason) }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(e) = error { div.flash.bad role="alert" { (e) } }
            @if can_decide {
                form.decide method="post" action={ "/approvals/" (r.id) "/decide" } {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    label for={ "reason-" (r.id) } { "Justification " span.muted { "(required; recorded in the audit trail and shown to the requester)" } }
                    textarea id={ "reason-" (r.id) } name="reason" required maxlength=(MAX_REASON) rows="2" placeholder="Why you approve or deny" { (typed_reason) }
                    div.actions {
                        button.approve type="submit" name="decision" value="approve" { "Approve" }
                        button.deny type="submit" name="decision" value="deny" { "Deny" }
                    }
                }
            } @else if r.status == Status::Pending && !compact {
                p.muted.why-not { (why_not(r, viewer)) }
            }
        }
    }
}

/// Why the viewer sees no decision form on a pending request.
fn why_not(r: &Request, viewer: &Viewer) -> String {
    if r.is_requester(&viewer.identity) {
        "This is your request; another approver must decide it. This page updates when you reload it.".into()
    } else if r
        .decisions
        .iter()
        .any(|d| d.approver.subject == viewer.identity.subject)
    {
        "You have decided this request; it is waiting for other approvers.".into()
    } else if in_approver_groups(r, &viewer.identity) {
        "You cannot decide this request.".into()
    } else if viewer.auditor {
        "Read-only: you see this request as an auditor, not as one of its approvers.".into()
    } else {
        "You are not one of this request's approvers.".into()
    }
}

#[derive(Deserialize)]
pub(crate) struct DecideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
}

/// `POST /approvals/{id}/decide`: record the viewer's decision.
pub(crate) async fn decide(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path(raw): Path<String>,
    Form(f): Form<DecideForm>,
) -> Response {
    if !viewer.csrf_ok(&f.csrf) {
        return error_page(
            Some(&viewer),
            StatusCode::FORBIDDEN,
            "Refused",
            "The form did not carry this session's security token, so nothing was decided. Reload the request's page and decide again.",
            None,
        );
    }
    let Some(id) = parse_id(&raw) else {
        return not_found(
            Some(&viewer),
            "Request numbers are digits, like /approvals/42.",
        );
    };
    let approve = match f.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            return error_page(
                Some(&viewer),
                StatusCode::BAD_REQUEST,
                "Choose approve or deny",
                "The form carried no decision; use the Approve or Deny button.",
                Some((&format!("/approvals/{id}"), "Back to the request")),
            )
        }
    };
    let reason = f.reason.trim();
    let problem = if reason.is_empty() {
        Some((
            StatusCode::BAD_REQUEST,
            "A decision needs a justification: say why you approve or deny.".to_string(),
        ))
    } else if reason.chars().count() > MAX_REASON {
        Some((
            StatusCode::BAD_REQUEST,
            format!("Keep the justification under {MAX_REASON} characters."),
        ))
    } else {
        None
    };
    let result = match problem {
        Some(p) => Err(p),
        None => app
            .broker
            .decide(id, &viewer.identity, approve, reason)
            .await
            .map_err(|e| (broker_status(&e), e.to_string())),
    };
    match result {
        Ok(r) => {
            tracing::info!(request = r.id, subject = %viewer.identity.subject, approve, "console decision");
            redirect(&format!(
                "/approvals/{id}?decided={}",
                if approve { "approve" } else { "deny" }
            ))
        }
        Err((status, message)) => match app.broker.request(id).await {
            Ok(r) if may_view_request(&r, &viewer) => respond(
                status,
                detail_page(&app, &r, &viewer, None, Some(&message), &f.reason),
            ),
            _ => error_page(
                Some(&viewer),
                status,
                "Not decided",
                &message,
                Some(("/approvals", "Back to approvals")),
            ),
        },
    }
}
