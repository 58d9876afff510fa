//! Replay of an SSH session's terminal recording (asciicast v2) with
//! asciinema-player, vendored under `/static/asciinema-player/` so the
//! console needs no network; the commands of the channel are listed beside
//! the player, each a link that seeks to the moment it was typed.
//!
//! The recording file is served only if its SHA-256 still matches the
//! digest chained in the audit trail, so a replay never shows an altered
//! recording.

use super::blocking;
use super::sessions::{typed, visible_events};
use crate::auth::Viewer;
use crate::html::{error_page, layout, not_found, respond, when_text};
use crate::state::App;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_audit::AuditEvent;
use gatehouse_core::events::{kind, CommandDetail, CommandEvent, RecordingEvent, ShellCommand};
use gatehouse_core::recording::Closed;
use gatehouse_core::Verdict;
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

/// The recording of `channel`, if the session has one, with the number of
/// the event that chained it.
fn recording_of(events: &[AuditEvent], channel: u64) -> Option<(u64, Closed)> {
    events
        .iter()
        .filter(|e| e.kind == kind::RECORDING)
        .filter_map(|e| Some((e.seq, typed::<RecordingEvent>(e)?)))
        .find(|(_, r)| r.channel == channel)
        .map(|(seq, r)| (seq, r.recording))
}

/// A command typed on the recorded channel, as the list beside the player
/// shows it.
struct Typed<'a> {
    at: &'a str,
    verdict: Verdict,
    shell: ShellCommand,
}

/// The commands typed on `channel`.
fn commands_on(events: &[AuditEvent], channel: u64) -> Vec<Typed<'_>> {
    events
        .iter()
        .filter(|e| e.kind == kind::COMMAND)
        .filter_map(|e| {
            let c = typed::<CommandEvent>(e)?;
            match c.detail {
                CommandDetail::Shell(shell) if u64::from(shell.channel) == channel => Some(Typed {
                    at: &e.ts,
                    verdict: c.verdict,
                    shell,
                }),
                _ => None,
            }
        })
        .collect()
}

/// A recording's file name, when it names a file inside the folder.
fn file_name(rec: &Closed) -> Option<&str> {
    let file = rec.file.as_str();
    (!file.is_empty() && !file.contains('/') && !file.contains("..")).then_some(file)
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
    let Some((seq, rec)) = recording_of(&events, channel) else {
        return not_found(
            Some(&viewer),
            "This session has no terminal recording for that channel.",
        );
    };
    let commands = commands_on(&events, channel);
    let (cols, rows) = match (&app.recordings_dir, file_name(&rec)) {
        (Some(dir), Some(file)) => {
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
                "SHA-256 " code { (rec.sha256) }
                " is chained in audit event #" (seq) "; the file is served only while it still matches."
            }
        }
        div.replay {
            div #player data-cast={ "/sessions/" (id) "/replay/" (channel) "/cast" } data-cols=[cols] data-rows=[rows] {}
            aside.replay-commands {
                h2 { "Commands" }
                @if commands.is_empty() { p.muted { "No commands were recorded on this channel." } }
                ol.replay-list {
                    @for c in &commands {
                        @let eff = c.verdict.effect();
                        li class={ "cmd v-" (eff) } {
                            @if let Some(t) = c.shell.recording_offset {
                                a.seek href={ "#t=" (format!("{t:.1}")) } data-t=(format!("{t:.3}")) { (format!("{t:.1}s")) }
                                " "
                            }
                            span.badge.{ "v-" (eff) } { (eff) }
                            " "
                            code { (c.shell.command) }
                            @if let Some(r) = c.verdict.rule() {
                                span.muted.small { " rule " (r) }
                            }
                            br;
                            span.muted.small { (when_text(c.at)) }
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
    let Some((seq, rec)) = recording_of(&events, channel) else {
        return not_found(Some(&viewer), "No recording for that channel.");
    };
    let Some(dir) = app.recordings_dir.clone() else {
        return not_found(
            Some(&viewer),
            "Recordings are not available on this console.",
        );
    };
    let Some(file) = file_name(&rec).map(str::to_string) else {
        return not_found(Some(&viewer), "No recording for that channel.");
    };
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
    if digest != rec.sha256 {
        return error_page(
            Some(&viewer),
            StatusCode::CONFLICT,
            "Recording altered",
            &format!(
                "The recording no longer matches the SHA-256 chained in audit event #{}; it was changed after the session, so it is not shown.",
                seq
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
