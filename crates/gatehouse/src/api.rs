//! The HTTPS API listener.
//!
//! Today it serves the dev issuer's OIDC discovery document and JWKS, so
//! anything that verifies our dev tokens can do it like for any provider,
//! and a health check. The approvals API and console (issue on approvals)
//! will mount here.

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

/// The API's routes.
pub fn router(dev: Option<Arc<DevIssuer>>) -> Router {
    let mut app = Router::new().route("/healthz", get(|| async { "ok" }));
    if let Some(dev) = dev {
        let d1 = dev.clone();
        let d2 = dev;
        app = app
            .route(
                "/dev/.well-known/openid-configuration",
                get(move || {
                    let d = d1.clone();
                    async move { Json(d.discovery()) }
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
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let app = router(dev);
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
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
