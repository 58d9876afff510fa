//! Time-bound access grants: who holds access to what until when, and
//! revocation by the holder or the connection's access approvers.

use super::broker_status;
use crate::auth::{redirect, Viewer};
use crate::html::{error_page, layout, relative, respond, when};
use crate::roles::{may_revoke, may_view_grant};
use crate::state::{now, App};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use gatehouse_approvals::model::display_name;
use gatehouse_approvals::{Grant, Request, RequestFilter, Status};
use maud::html;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    show: Option<String>,
    revoked: Option<String>,
}

/// The requests behind `grants`, by id.
async fn requests_of(app: &App, grants: &[Grant]) -> HashMap<u64, Request> {
    let mut by_id: HashMap<u64, Request> = app
        .broker
        .requests(RequestFilter {
            statuses: vec![Status::Approved],
            connection: None,
            limit: 2000,
        })
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    for g in grants {
        if !by_id.contains_key(&g.request_id) {
            if let Ok(r) = app.broker.request(g.request_id).await {
                by_id.insert(r.id, r);
            }
        }
    }
    by_id
}

/// `GET /grants`.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> Response {
    let all = q.show.as_deref() == Some("all");
    let grants = match app.broker.grants(!all).await {
        Ok(g) => g,
        Err(e) => {
            return error_page(
                Some(&viewer),
                broker_status(&e),
                "Grants unavailable",
                &e.to_string(),
                None,
            )
        }
    };
    let requests = requests_of(&app, &grants).await;
    let visible: Vec<(&Grant, Option<&Request>)> = grants
        .iter()
        .map(|g| (g, requests.get(&g.request_id)))
        .filter(|(g, r)| may_view_grant(g, *r, &viewer))
        .collect();
    let t = now();
    let body = html! {
        div.page-head { h1 { "Access grants" } }
        nav.tabs {
            a href="/grants" class=[(!all).then_some("active")] { "active" }
            a href="/grants?show=all" class=[all.then_some("active")] { "all" }
        }
        @if let Some(id) = q.revoked.as_deref().and_then(|r| r.parse::<u64>().ok()) {
            div.flash.ok role="status" { "Grant #" (id) " was revoked; its holder's sessions on it have been ended." }
        }
        @if visible.is_empty() {
            section.card.empty {
                p { @if all { "No grants you may see." } @else { "No access grants are in force that you may see." } }
                p.muted { "Grants are created when an access request is approved. Holders see their own; access approvers see those of their connections." }
            }
        } @else {
            div.table-wrap {
                table.grid {
                    thead { tr { th { "Grant" } th { "Holder" } th { "Connection" } th { "Window" } th { "State" } th { "Request" } th { "" } } }
                    tbody {
                        @for (g, r) in &visible {
                            tr {
                                td { "#" (g.id) }
                                td { (display_name(&g.holder)) }
                                td { (g.connection) }
                                td { (when(g.starts_at)) br; span.muted { "until " } (when(g.expires_at)) }
                                td {
                                    @if let Some(at) = g.revoked_at {
                                        span.badge.st-denied { "revoked" }
                                        " " span.muted { (relative(at, t)) " by " (g.revoked_by.as_deref().unwrap_or("?")) }
                                        @if let Some(why) = &g.revoke_reason { blockquote.reason { (why) } }
                                    } @else if g.active_at(t) {
                                        span.badge.st-approved { "active" }
                                        " " span.muted { "ends " (relative(g.expires_at, t)) }
                                    } @else {
                                        span.badge.st-expired { "expired" }
                                        " " span.muted { (relative(g.expires_at, t)) }
                                    }
                                }
                                td {
                                    a href={ "/approvals/" (g.request_id) } { "#" (g.request_id) }
                                    @if let Some(r) = r { br; span.muted { (gatehouse_approvals::model::one_line(&r.message, 80)) } }
                                }
                                td {
                                    @if g.active_at(t) && may_revoke(g, *r, &viewer) {
                                        form.revoke method="post" action={ "/grants/" (g.id) "/revoke" } {
                                            input type="hidden" name="csrf" value=(viewer.csrf);
                                            input name="reason" required maxlength="1000" placeholder="Reason" aria-label="Reason for revoking";
                                            button.deny type="submit" { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, layout(&viewer, "grants", "Grants", body))
}

#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// `POST /grants/{id}/revoke`.
pub(crate) async fn revoke(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path(raw): Path<String>,
    Form(f): Form<RevokeForm>,
) -> Response {
    if !viewer.csrf_ok(&f.csrf) {
        return error_page(
            Some(&viewer),
            StatusCode::FORBIDDEN,
            "Refused",
            "The form did not carry this session's security token, so nothing was revoked. Reload the grants page and try again.",
            None,
        );
    }
    let Ok(id) = raw.parse::<u64>() else {
        return crate::html::not_found(Some(&viewer), "Grant numbers are digits.");
    };
    match app
        .broker
        .revoke(id, &viewer.identity, f.reason.trim())
        .await
    {
        Ok(_) => {
            tracing::info!(grant = id, subject = %viewer.identity.subject, "console revoked a grant");
            redirect(&format!("/grants?revoked={id}"))
        }
        Err(e) => error_page(
            Some(&viewer),
            broker_status(&e),
            "Not revoked",
            &e.to_string(),
            Some(("/grants", "Back to grants")),
        ),
    }
}
