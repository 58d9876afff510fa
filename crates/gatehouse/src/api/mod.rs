//! The HTTPS API listener.
//!
//! Serves the JSON API for approvals and grants ([`approvals`]), the web
//! console, the dev issuer's OIDC discovery document and JWKS (so anything
//! that verifies our dev tokens can do it like for any provider), and a
//! health check.

pub mod approvals;

use axum::routing::get;
use axum::{Json, Router};
use gatehouse_identity::DevIssuer;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// The API's routes, with `extra` (the JSON API and the console) merged in.
pub fn router(
    dev: Option<Arc<DevIssuer>>,
    dev_endpoints: Option<serde_json::Value>,
    extra: Router,
) -> Router {
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(extra);
    if let Some(dev) = dev {
        let d1 = dev.clone();
        let d2 = dev;
        app = app
            .route(
                "/dev/.well-known/openid-configuration",
                get(move || {
                    let d = d1.clone();
                    let endpoints = dev_endpoints.clone();
                    async move {
                        // The console's dev sign-in endpoints, when it serves them.
                        let mut doc = d.discovery();
                        if let (Some(obj), Some(serde_json::Value::Object(more))) =
                            (doc.as_object_mut(), endpoints)
                        {
                            obj.extend(more);
                        }
                        Json(doc)
                    }
                }),
            )
            .route(
                "/dev/.well-known/jwks.json",
                get(move || {
                    let d = d2.clone();
                    async move { Json(d.jwks()) }
                }),
            );
    }
    app
}

/// Serve the API over TLS until `shutdown` flips.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    dev: Option<Arc<DevIssuer>>,
    dev_endpoints: Option<serde_json::Value>,
    extra: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let app = router(dev, dev_endpoints, extra);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let acceptor = acceptor.clone();
        // The peer's address, for the sign-in limits of API callers.
        let service = TowerToHyperService::new(
            app.clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
        );
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
