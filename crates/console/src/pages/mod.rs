//! The console's pages and its route table.

pub(crate) mod approvals;
pub(crate) mod audit;
pub(crate) mod deliveries;
pub(crate) mod grants;
pub(crate) mod replay;
pub(crate) mod sessions;

use crate::auth::{self, redirect};
use crate::state::{App, SignIn};
use crate::{dev, security};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use gatehouse_approvals::BrokerError;
use std::sync::Arc;

/// Every route the console claims, with the security headers on all.
pub(crate) fn routes(app: Arc<App>) -> Router {
    let mut r = Router::new()
        .route("/", get(|| async { redirect("/approvals") }))
        .route("/login", get(auth::login))
        .route("/callback", get(auth::callback))
        .route("/logout", post(auth::logout))
        .route("/signed-out", get(auth::signed_out))
        .route("/approvals", get(approvals::list))
        .route("/approvals/{id}", get(approvals::show))
        .route("/approvals/{id}/decide", post(approvals::decide))
        .route("/grants", get(grants::list))
        .route("/grants/{id}/revoke", post(grants::revoke))
        .route("/sessions", get(sessions::list))
        .route("/sessions/{id}", get(sessions::show))
        .route("/sessions/{id}/replay/{channel}", get(replay::page))
        .route("/sessions/{id}/replay/{channel}/cast", get(replay::cast))
        .route(
            "/static/asciinema-player/asciinema-player.min.js",
            get(replay::player_js),
        )
        .route(
            "/static/asciinema-player/asciinema-player.css",
            get(replay::player_css),
        )
        .route("/audit", get(audit::page))
        .route("/deliveries", get(deliveries::page))
        .route("/static/console.css", get(security::css))
        .route("/static/console.js", get(security::js))
        .route("/static/favicon.svg", get(security::favicon_svg))
        .route("/favicon.ico", get(security::favicon_ico));
    if matches!(app.signin, SignIn::Dev(_)) {
        r = r
            .route(
                "/dev/authorize",
                get(dev::authorize_page).post(dev::authorize_submit),
            )
            .route("/dev/token", post(dev::token));
    }
    r.layer(axum::middleware::map_response(security::headers))
        .with_state(app)
}

/// The HTTP status for a broker refusal.
pub(crate) fn broker_status(e: &BrokerError) -> StatusCode {
    StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Run a blocking audit-store read off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("the audit read failed: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_errors_map_to_statuses() {
        assert_eq!(
            broker_status(&BrokerError::NotFound("x".into())),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            broker_status(&BrokerError::Settled(1, "denied")),
            StatusCode::CONFLICT
        );
        assert_eq!(
            broker_status(&BrokerError::AlreadyDecided(1)),
            StatusCode::CONFLICT
        );
        assert_eq!(
            broker_status(&BrokerError::Forbidden("x".into())),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            broker_status(&BrokerError::Invalid("x".into())),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            broker_status(&BrokerError::Audit("x".into())),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
