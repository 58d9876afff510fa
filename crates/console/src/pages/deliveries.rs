//! Notification deliveries (webhooks, Slack): whether approvers were told.

use crate::auth::Viewer;
use crate::html::{forbidden, layout, respond, when_text};
use crate::state::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde_json::Value;
use std::sync::Arc;

/// Rows shown at most.
const LIMIT: usize = 500;

fn field<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|k| v.get(*k)).filter(|v| !v.is_null())
}

fn show(v: Option<&Value>) -> Markup {
    match v {
        None => html! { span.muted { "—" } },
        Some(Value::String(s)) => html! { (s) },
        Some(other) => html! { (other.to_string()) },
    }
}

fn time(v: Option<&Value>) -> Markup {
    match v.and_then(Value::as_str) {
        Some(t) => when_text(t),
        None => show(v),
    }
}

/// `GET /deliveries`: auditors only.
pub(crate) async fn page(State(app): State<Arc<App>>, viewer: Viewer) -> Response {
    if !viewer.auditor {
        return forbidden(&viewer, "Notification deliveries are for auditors.");
    }
    let rows = (app.deliveries)();
    let body = html! {
        div.page-head { h1 { "Notifications" } }
        @if rows.is_empty() {
            section.card.empty {
                p { "No notifications have been sent since the gateway started." }
                p.muted { "Receivers are configured under [notify]; each new request and each settlement is sent to them." }
            }
        } @else {
            div.table-wrap {
                table.grid {
                    thead { tr {
                        th { "Created" } th { "Receiver" } th { "Event" } th { "About" } th { "State" } th.num { "Attempts" } th { "Last answer" } th { "Updated" }
                    } }
                    tbody {
                        @for d in rows.iter().take(LIMIT) {
                            @let state = field(d, &["state"]).and_then(Value::as_str).unwrap_or("?");
                            @let event = field(d, &["event"]).and_then(Value::as_str).unwrap_or("");
                            @let about = field(d, &["notification_id", "id"]);
                            tr class=[(state == "failed").then_some("flagged")] {
                                td { (time(field(d, &["created_at"]))) }
                                td { (show(field(d, &["receiver"]))) span.muted { " " (show(field(d, &["kind"]))) } }
                                td { code { (event) } }
                                td {
                                    @match about.and_then(|a| a.as_str().map(String::from).or_else(|| a.as_u64().map(|n| n.to_string()))) {
                                        Some(id) if (event.starts_with("approval.") || event.starts_with("grant.")) && id.bytes().all(|b| b.is_ascii_digit()) && !id.is_empty() => {
                                            a href={ "/approvals/" (id) } { "#" (id) }
                                        }
                                        _ => { (show(about)) }
                                    }
                                }
                                td {
                                    span class={ "badge d-" (state) } { (state) }
                                    @if let Some(n) = field(d, &["next_attempt_at"]) { br; span.muted.small { "next " (time(Some(n))) } }
                                }
                                td.num { (show(field(d, &["attempts"]))) }
                                td {
                                    @if let Some(s) = field(d, &["last_status"]) { "HTTP " (show(Some(s))) }
                                    @if let Some(e) = field(d, &["last_error"]) { div.error.small { (show(Some(e))) } }
                                }
                                td { (time(field(d, &["updated_at", "last_attempt_at"]))) }
                            }
                        }
                    }
                }
            }
            @if rows.len() > LIMIT { p.muted { "Showing " (LIMIT) " of " (rows.len()) "." } }
        }
    };
    respond(
        StatusCode::OK,
        layout(&viewer, "deliveries", "Notifications", body),
    )
}
