//! The protocol listeners a configuration turns on, each bound and paired
//! with the adapter that serves it.
//!
//! One builder per protocol reads its `[section]` and returns a
//! [`Listener`]; [`RunningGateway::start`](super::RunningGateway::start)
//! starts them all the same way. Adding a protocol means one more builder
//! here and one more entry in [`protocol_listeners`].

use crate::config::{GatewayConfig, HttpListener, MySqlListener};
use crate::tls;
use anyhow::{Context, Result};
use gatehouse_core::pipeline::{BoxFuture, Pipeline};
use gatehouse_core::policy::ConnectionKind;
use gatehouse_core::serve;
use gatehouse_mysql::{AdapterSettings as MySqlSettings, MySqlAdapter};
use gatehouse_postgres::{AdapterSettings, OriginalsSealer, PostgresAdapter};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The wire protocols a gateway serves on listeners of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Postgres,
    Mysql,
    Ssh,
    Http,
}

/// Serves one listener until the gateway stops (the receiver turns true).
type Serve = Box<dyn FnOnce(watch::Receiver<bool>) -> BoxFuture<'static, ()> + Send>;

/// A bound listener and how it is served.
pub struct Listener {
    pub protocol: Protocol,
    pub addr: SocketAddr,
    pub serve: Serve,
}

/// The server TLS material listeners share unless their section names its
/// own certificate.
pub struct ServerTls {
    /// Database protocols (no ALPN).
    pub database: Arc<rustls::ServerConfig>,
    /// HTTPS (h2 and http/1.1 by ALPN).
    pub https: Arc<rustls::ServerConfig>,
}

/// What every builder needs: the configuration, the pipeline its adapter
/// hands commands to, and the shared TLS material.
pub struct Wiring<'a> {
    pub cfg: &'a GatewayConfig,
    pub pipeline: &'a Arc<Pipeline>,
    pub tls: &'a ServerTls,
    /// Seals masked originals of captured result rows, when configured.
    pub seal_originals: Option<OriginalsSealer>,
}

/// Bind `listen` or say which setting names it.
pub async fn bind(listen: &str, setting: &str) -> Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} ({setting})"))
}

/// Every protocol listener the configuration turns on, bound.
pub async fn protocol_listeners(w: Wiring<'_>) -> Result<Vec<Listener>> {
    let mut listeners = vec![postgres(&w).await?];
    listeners.extend(mysql(&w).await?);
    listeners.extend(ssh(&w).await?);
    listeners.extend(http(&w).await?);
    Ok(listeners)
}

/// PostgreSQL is always served.
async fn postgres(w: &Wiring<'_>) -> Result<Listener> {
    let cfg = &w.cfg.postgres;
    let listener = bind(&cfg.listen, "[postgres] listen").await?;
    let settings = AdapterSettings {
        allow_plaintext_loopback: cfg.allow_plaintext_loopback,
        require_subject_match: cfg.require_subject_match,
        max_message_len: cfg.max_message_bytes,
        result_capture_rows: cfg.result_capture_rows,
        seal_originals: w.seal_originals.clone(),
    };
    let adapter = Arc::new(PostgresAdapter::new(
        w.pipeline.clone(),
        Some(tokio_rustls::TlsAcceptor::from(w.tls.database.clone())),
        settings,
    ));
    let limits = cfg.limits();
    Ok(Listener {
        protocol: Protocol::Postgres,
        addr: listener.local_addr()?,
        serve: Box::new(move |stop| Box::pin(serve::serve(adapter, listener, limits, stop))),
    })
}

/// MySQL runs when `[mysql]` is set or a connection needs it.
async fn mysql(w: &Wiring<'_>) -> Result<Option<Listener>> {
    let needed = w
        .cfg
        .connections
        .iter()
        .any(|c| c.kind == ConnectionKind::Mysql);
    let Some(cfg) = w
        .cfg
        .mysql
        .clone()
        .or_else(|| needed.then(MySqlListener::default))
    else {
        return Ok(None);
    };
    let listener = bind(&cfg.listen, "[mysql] listen").await?;
    let tls = own_or_shared(&cfg.tls_cert, &cfg.tls_key, &w.tls.database, &[], "[mysql]")?;
    let adapter = Arc::new(MySqlAdapter::new(
        w.pipeline.clone(),
        Some(tokio_rustls::TlsAcceptor::from(tls)),
        MySqlSettings {
            allow_plaintext_loopback: cfg.allow_plaintext_loopback,
            require_subject_match: cfg.require_subject_match,
            max_packet_len: cfg.max_packet_bytes,
            result_capture_rows: cfg.result_capture_rows,
            server_version: cfg.server_version.clone(),
        },
    ));
    let limits = cfg.limits();
    Ok(Some(Listener {
        protocol: Protocol::Mysql,
        addr: listener.local_addr()?,
        serve: Box::new(move |stop| Box::pin(serve::serve(adapter, listener, limits, stop))),
    }))
}

/// SSH runs when `[ssh]` is set (it needs a host key of its own).
async fn ssh(w: &Wiring<'_>) -> Result<Option<Listener>> {
    let Some(cfg) = &w.cfg.ssh else {
        return Ok(None);
    };
    let listener = bind(&cfg.listen, "[ssh] listen").await?;
    let host_key = gatehouse_ssh::hostkey::load_or_create(&w.cfg.state_path(&cfg.host_key))
        .map_err(anyhow::Error::msg)?;
    let adapter = Arc::new(gatehouse_ssh::SshAdapter::new(
        w.pipeline.clone(),
        gatehouse_ssh::SshSettings {
            host_key,
            recordings_dir: w.cfg.recordings_dir(),
        },
    ));
    let limits = cfg.limits();
    Ok(Some(Listener {
        protocol: Protocol::Ssh,
        addr: listener.local_addr()?,
        serve: Box::new(move |stop| Box::pin(serve::serve(adapter, listener, limits, stop))),
    }))
}

/// HTTPS for HTTP connections runs when `[http]` is set or a connection
/// needs it.
async fn http(w: &Wiring<'_>) -> Result<Option<Listener>> {
    let needed = w.cfg.connections.iter().any(|c| c.kind.is_http());
    let Some(cfg) = w
        .cfg
        .http
        .clone()
        .or_else(|| needed.then(HttpListener::default))
    else {
        return Ok(None);
    };
    let listener = bind(&cfg.listen, "[http] listen").await?;
    let tls = own_or_shared(
        &cfg.tls_cert,
        &cfg.tls_key,
        &w.tls.https,
        &[b"h2", b"http/1.1"],
        "[http]",
    )?;
    let adapter = Arc::new(
        gatehouse_http::HttpAdapter::new(
            w.pipeline.clone(),
            gatehouse_http::HttpSettings {
                max_request_bytes: cfg.max_request_bytes,
                max_response_bytes: cfg.max_response_bytes,
                session_idle: Duration::from_secs(cfg.session_idle_secs),
                recordings_dir: w.cfg.recordings_dir(),
            },
        )
        .map_err(|e| anyhow::anyhow!("setting up the HTTP adapter: {e}"))?,
    );
    let limits = cfg.limits();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    Ok(Some(Listener {
        protocol: Protocol::Http,
        addr: listener.local_addr()?,
        serve: Box::new(move |stop| Box::pin(adapter.serve(listener, acceptor, limits, stop))),
    }))
}

/// A section's own certificate when it names one, else the shared one.
fn own_or_shared(
    cert: &Option<std::path::PathBuf>,
    key: &Option<std::path::PathBuf>,
    shared: &Arc<rustls::ServerConfig>,
    alpn: &[&[u8]],
    section: &str,
) -> Result<Arc<rustls::ServerConfig>> {
    match (cert, key) {
        (Some(c), Some(k)) => tls::server_config(c, k, alpn),
        (None, None) => Ok(shared.clone()),
        _ => anyhow::bail!("{section}: set both tls_cert and tls_key, or neither"),
    }
}
