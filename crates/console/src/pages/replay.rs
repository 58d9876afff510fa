//! Replay of an SSH session's terminal recording (asciicast v2) with
//! asciinema-player, vendored under `/static/asciinema-player/` so the
//! console needs no network; the commands of the channel are listed beside
//! the player, each a link that seeks to the moment it was typed.
//!
//! The recording file is served only if its SHA-256 still matches the
//! digest chained in the audit trail, so a replay never shows an altered
//! recording.

use super::blocking;
use crate::auth::Viewer;
use crate::html::{error_page, forbidden, layout, not_found, respond, when_text};
use crate::roles::{may_view_request, may_view_session};
use crate::state::App;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_audit::{session_events, AuditEvent};
use maud::html;
use serde_json::Value;
use sha2::Digest;
use std::sync::Arc;

const PLAYER_JS: &str = include_str!("../../static/asciinema-player/asciinema-player.min.js");
const PLAYER_CSS: &str = include_str!("../../static/asciinema-player/asciinema-player.css");

/// `GET /static/asciinema-player/asciinema-player.min.js`.
pub(crate) async fn player_js() -> Response {
    static_asset("text/javascript; charset=utf-8", PLAYER_JS)
}

/// `GET /static/asciinema-player/asciinema-player.css`.
pub(crate) async fn player_css() -> Response {
    static_asset("text/css; charset=utf-8", PLAYER_CSS)
}

fn static_asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The session's events, if the viewer may see the session.
async fn visible_events(
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
    let start = events.iter().find(|e| e.kind == "session.start");
    let subject = start
        .and_then(|e| e.subject.as_deref())
        .or_else(|| events.iter().find_map(|e| e.subject.as_deref()));
    let issuer = start
        .and_then(|e| e.data.pointer("/identity/issuer"))
        .and_then(Value::as_str);
    let mut visible_requests = 0;
    if !viewer.auditor {
        for e in events.iter().filter(|e| e.kind.starts_with("approval.")) {
            if let Some(rid) = e.data.get("request_id").and_then(Value::as_u64) {
                if let Ok(r) = app.broker.request(rid).await {
                    if r.session_id.as_deref() == Some(id) && may_view_request(&r, viewer) {
                        visible_requests += 1;
                    }
                }
            }
        }
    }
    if !may_view_session(subject, issuer, viewer, visible_requests) {
        return Err(forbidden(
            viewer,
            "This session is not yours, and it raised no request you may decide.",
        ));
    }
    Ok(events)
}

fn recording_of(events: &[AuditEvent], channel: u64) -> Option<&AuditEvent> {
    events
        .iter()
        .find(|e| e.kind == "recording" && e.data["channel"].as_u64() == Some(channel))
}

/// `GET /sessions/{id}/replay/{channel}`: the player and the commands.
pub(crate) async fn page(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path((id, channel)): Path<(String, u64)>,
) -> Response {
    let events = match visible_events(&app, &viewer, &id).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let Some(rec) = recording_of(&events, channel) else {
        return not_found(
            Some(&viewer),
            "This session has no terminal recording for that channel.",
        );
    };
    let commands: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| e.kind == "command" && e.data["channel"].as_u64() == Some(channel))
        .collect();
    let (cols, rows) = match (&app.recordings_dir, rec.data["file"].as_str()) {
        (Some(dir), Some(file)) if !file.contains('/') && !file.contains("..") => {
            let path = dir.join(file);
            blocking(move || Ok(player_size(&path)))
                .await
                .unwrap_or_default()
        }
        _ => (None, None),
    };
    let body = html! {
        p.crumbs { a href={ "/sessions/" (id) } { "← Session " (id) } }
        section.card {
            h1 { "Terminal replay · channel " (channel) }
            p.muted.small {
                "Recorded by the gateway as asciicast v2, with the content detectors applied to the output. "
                "SHA-256 " code { (rec.data["sha256"].as_str().unwrap_or("")) }
                " is chained in audit event #" (rec.seq) "; the file is served only while it still matches."
            }
        }
        div.replay {
            div #player data-cast={ "/sessions/" (id) "/replay/" (channel) "/cast" } data-cols=[cols] data-rows=[rows] {}
            aside.replay-commands {
                h2 { "Commands" }
                @if commands.is_empty() { p.muted { "No commands were recorded on this channel." } }
                ol.replay-list {
                    @for c in &commands {
                        @let eff = c.data.pointer("/verdict/effect").and_then(Value::as_str).unwrap_or("?");
                        li class={ "cmd v-" (eff) } {
                            @if let Some(t) = c.data.get("recording_offset").and_then(Value::as_f64) {
                                a.seek href={ "#t=" (format!("{t:.1}")) } data-t=(format!("{t:.3}")) { (format!("{t:.1}s")) }
                                " "
                            }
                            span.badge.{ "v-" (eff) } { (eff) }
                            " "
                            code { (c.data["command"].as_str().unwrap_or("")) }
                            @if let Some(r) = c.data.pointer("/verdict/rule").and_then(Value::as_str) {
                                span.muted.small { " rule " (r) }
                            }
                            br;
                            span.muted.small { (when_text(&c.ts)) }
                        }
                    }
                }
            }
        }
        link rel="stylesheet" href="/static/asciinema-player/asciinema-player.css";
        script src="/static/asciinema-player/asciinema-player.min.js" {}
    };
    let mut r = respond(StatusCode::OK, layout(&viewer, "sessions", "Replay", body));
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(crate::security::REPLAY_CSP),
    );
    r
}

/// The terminal size to give the player when the recording's header has
/// none: a channel without a PTY (an exec, kubectl exec without `-t`) says
/// 0×0 (or 1×1), which the player would draw as a sliver. `None` keeps the
/// header's own size.
fn player_size(path: &std::path::Path) -> (Option<u32>, Option<u32>) {
    use std::io::{BufRead, Read};
    let header: Value = std::fs::File::open(path)
        .ok()
        .and_then(|f| {
            let mut line = String::new();
            std::io::BufReader::new(f)
                .take(64 * 1024)
                .read_line(&mut line)
                .ok()?;
            serde_json::from_str(&line).ok()
        })
        .unwrap_or(Value::Null);
    let unknown = |k: &str| header[k].as_u64().is_none_or(|v| v < 2);
    (
        unknown("width").then_some(80),
        unknown("height").then_some(24),
    )
}

/// `GET /sessions/{id}/replay/{channel}/cast`: the recording itself.
pub(crate) async fn cast(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path((id, channel)): Path<(String, u64)>,
) -> Response {
    let events = match visible_events(&app, &viewer, &id).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let Some(rec) = recording_of(&events, channel) else {
        return not_found(Some(&viewer), "No recording for that channel.");
    };
    let Some(dir) = app.recordings_dir.clone() else {
        return not_found(
            Some(&viewer),
            "Recordings are not available on this console.",
        );
    };
    let file = rec.data["file"].as_str().unwrap_or("").to_string();
    if file.is_empty() || file.contains('/') || file.contains("..") {
        return not_found(Some(&viewer), "No recording for that channel.");
    }
    let bytes =
        match blocking(move || std::fs::read(dir.join(&file)).map_err(|e| e.to_string())).await {
            Ok(b) => b,
            Err(e) => {
                return error_page(
                    Some(&viewer),
                    StatusCode::NOT_FOUND,
                    "Recording missing",
                    &format!("The recording file could not be read: {e}"),
                    None,
                )
            }
        };
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    if Some(digest.as_str()) != rec.data["sha256"].as_str() {
        return error_page(
            Some(&viewer),
            StatusCode::CONFLICT,
            "Recording altered",
            &format!(
                "The recording no longer matches the SHA-256 chained in audit event #{}; it was changed after the session, so it is not shown.",
                rec.seq
            ),
            None,
        );
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-asciicast")],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::player_size;

    #[test]
    fn sizeless_recordings_play_in_80_by_24() {
        let dir = tempfile::tempdir().unwrap();
        let cast = |name: &str, header: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("{header}\n[0.1, \"o\", \"hi\"]\n")).unwrap();
            p
        };
        let zero = cast("a.cast", r#"{"version":2,"width":0,"height":0}"#);
        assert_eq!(player_size(&zero), (Some(80), Some(24)));
        let one = cast("b.cast", r#"{"version":2,"width":1,"height":1}"#);
        assert_eq!(player_size(&one), (Some(80), Some(24)));
        let real = cast("c.cast", r#"{"version":2,"width":132,"height":40}"#);
        assert_eq!(player_size(&real), (None, None));
        assert_eq!(
            player_size(&dir.path().join("missing.cast")),
            (Some(80), Some(24))
        );
    }
}
