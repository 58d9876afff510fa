//! The audit trail's health: the full chain verification and the last
//! signed checkpoint. Verification reads the whole trail, so its result is
//! cached for a few seconds and computed by one request at a time.

use super::blocking;
use crate::auth::Viewer;
use crate::html::{forbidden, layout, respond, when_text};
use crate::state::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_audit::{
    load_verifying_key, verify_with, Checkpoint, VerifyOptions, VerifyReport, VerifyingKey,
};
use maud::html;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one verification result is shown before the chain is checked again.
const CACHE_FOR: Duration = Duration::from_secs(10);

/// A checkpoint and whether its signature verifies.
type CheckedCheckpoint = (Checkpoint, Result<(), String>);

/// One look at the trail.
pub(crate) struct AuditStatus {
    checked_at: chrono::DateTime<chrono::Utc>,
    took: Duration,
    report: Result<VerifyReport, String>,
    /// The newest checkpoint and whether its signature verifies.
    last: Result<Option<CheckedCheckpoint>, String>,
}

/// The newest checkpoint, read through a read-only connection (whatever
/// the store's format: a format 2 checkpoint signs its policy too).
fn last_checkpoint(path: &Path) -> Result<Option<Checkpoint>, String> {
    if !path.exists() {
        return Err(format!("there is no audit trail at {}", path.display()));
    }
    gatehouse_audit::last_checkpoint(path).map_err(|e| e.to_string())
}

fn check(db: &Path, key_path: &Path, options: &VerifyOptions) -> AuditStatus {
    let started = Instant::now();
    let key: Result<VerifyingKey, String> = load_verifying_key(key_path).map_err(|e| e.to_string());
    let report = key
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|k| verify_with(db, k, options).map_err(|e| e.to_string()));
    let last = last_checkpoint(db).map(|cp| {
        cp.map(|cp| {
            let sig = match &key {
                Ok(k) => cp.check_signature(k),
                Err(e) => Err(e.clone()),
            };
            (cp, sig)
        })
    });
    AuditStatus {
        checked_at: chrono::Utc::now(),
        took: started.elapsed(),
        report,
        last,
    }
}

/// The cached status, recomputed when older than [`CACHE_FOR`].
async fn status(app: &App) -> Arc<AuditStatus> {
    let mut cache = app.audit_cache.lock().await;
    if let Some((at, s)) = cache.as_ref() {
        if at.elapsed() < CACHE_FOR {
            return s.clone();
        }
    }
    let db = app.audit_db.clone();
    let key = app.audit_public_key.clone();
    let options = app.audit_verify.clone();
    let s = match blocking(move || Ok(check(&db, &key, &options))).await {
        Ok(s) => Arc::new(s),
        Err(e) => Arc::new(AuditStatus {
            checked_at: chrono::Utc::now(),
            took: Duration::ZERO,
            report: Err(e.clone()),
            last: Err(e),
        }),
    };
    *cache = Some((Instant::now(), s.clone()));
    s
}

/// `GET /audit`: auditors only.
pub(crate) async fn page(State(app): State<Arc<App>>, viewer: Viewer) -> Response {
    if !viewer.auditor {
        return forbidden(&viewer, "The audit trail's status is for auditors.");
    }
    let s = status(&app).await;
    let body = html! {
        div.page-head { h1 { "Audit trail" } }
        @match &s.report {
            Ok(r) if r.is_intact() => {
                section.card.verdict-ok #chain data-intact="true" {
                    h2 { "✔ The chain verifies" }
                    p {
                        (r.events) " events and " (r.checkpoints) " signed checkpoints checked: every hash recomputes and every signature verifies with the public key."
                    }
                    @if r.unsigned_tail > 0 {
                        p.muted {
                            (r.unsigned_tail) " newest events are not yet covered by a checkpoint"
                            @if let Some(age) = r.unsigned_age_ms { " (the oldest written " (age / 1000) " s ago)" }
                            "; they are protected by the hash chain and will be signed at the next checkpoint, within the policy the trail signed."
                        }
                    }
                    @if let Some(a) = &r.anchor {
                        p.muted { "The store agrees with its anchor file " code { (a.path) } " (" (a.entries) " checkpoints)." }
                    }
                    @for note in &r.notes {
                        p.muted { (note) }
                    }
                    @if let Some(n) = r.pruned_through {
                        p.muted { "Events 1–" (n) " were removed under the retention policy; a signed prune record anchors what remains on the checkpoint that covered event " (n) "." }
                    }
                }
            }
            Ok(r) => {
                section.card.verdict-bad #chain data-intact="false" {
                    h2 { "✘ The trail does not verify" }
                    @if let Some(b) = &r.first_bad {
                        p { "First problem at event " strong { (b.seq) } ": " (b.reason) }
                    }
                    @for b in &r.other_problems {
                        p { "Also at event " strong { (b.seq) } ": " (b.reason) }
                    }
                    p { "Checked " (r.events) " events and " (r.checkpoints) " checkpoints. Preserve the database file, the anchor file and an export, and tell your security team: the record may have been altered, or is not signed where its policy says it is." }
                }
            }
            Err(e) => {
                section.card.verdict-bad #chain data-intact="unknown" {
                    h2 { "The chain could not be checked" }
                    p { (e) }
                }
            }
        }
        section.card {
            h2 { "Last signed checkpoint" }
            @match &s.last {
                Ok(Some((cp, sig))) => {
                    dl.facts {
                        dt { "Checkpoint" } dd { "#" (cp.seq) }
                        dt { "Covers events" } dd { "1 to " (cp.event_seq) }
                        dt { "Signed" } dd { (when_text(&cp.ts)) }
                        dt { "Head hash" } dd { code.hash { (cp.event_hash) } }
                        dt { "Checkpoint hash" } dd { code.hash { (cp.hash) } }
                        dt { "Signature" }
                        dd {
                            @match sig {
                                Ok(()) => { span.badge.st-approved { "valid" } " Ed25519, verified with " code { (app.audit_public_key.display()) } }
                                Err(e) => { span.badge.st-denied { "invalid" } " " (e) }
                            }
                        }
                    }
                }
                Ok(None) => { p.muted { "No checkpoint has been signed yet." } }
                Err(e) => { p { (e) } }
            }
        }
        @if let Ok(r) = &s.report {
            section.card {
                h2 { "Totals" }
                dl.facts {
                    dt { "Events" } dd { (r.events) }
                    dt { "Checkpoints" } dd { (r.checkpoints) }
                    dt { "Last verified checkpoint covers" } dd { @if let Some(n) = r.last_checkpoint_seq { "event " (n) } @else { "nothing yet" } }
                    dt { "Unsigned tail" } dd { (r.unsigned_tail) " events" }
                }
            }
        }
        p.muted.small {
            "Checked " (s.checked_at.format("%Y-%m-%d %H:%M:%S UTC")) " in " (s.took.as_millis()) " ms; the result is reused for " (CACHE_FOR.as_secs()) " s. "
            "Examiners can check the same offline: " code { "gatehouse audit verify" } " with an export and the public key."
        }
    };
    respond(
        StatusCode::OK,
        layout(&viewer, "audit", "Audit trail", body),
    )
}
