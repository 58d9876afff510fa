//! The HTTP adapter: HTTPS in, the pipeline in the middle, HTTP(S) out.
//!
//! One listener serves every HTTP connection (OpenAI-compatible LLM
//! endpoints, JSON/function-calling APIs and the Kubernetes API), reached by
//! host name or path prefix. The caller's bearer token is checked and
//! stripped; the gateway adds the upstream credential it holds. Requests
//! are decided, held or blocked like SQL statements; responses are masked
//! as they stream back.

mod admission;
mod exec;
mod execmask;
mod facts;
mod idle;
pub mod jsonmask;
pub mod kube;
mod kubefacts;
pub mod llm;
pub mod openai;
mod proxy;
pub mod respond;
mod response;
pub mod route;
pub mod sessions;
mod splice;
pub mod sse;
mod textstream;
mod toolgate;
pub mod upstream;
pub mod wsframes;

use gatehouse_core::pipeline::Pipeline;
use gatehouse_core::serve::{self, ConnectionFuture, Handshake, ListenerLimits, ProtocolServer};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How often idle HTTP sessions are ended.
const SWEEP_EVERY: Duration = Duration::from_secs(15);

/// How long a client has to send a request's headers (slow clients hold
/// connections open without authenticating).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// A kept-alive connection with no request in flight and no byte either
/// way for this long is closed, so idle clients cannot hold the
/// listener's connection slots.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Most concurrent HTTP/2 streams per connection.
const MAX_STREAMS: u32 = 256;

/// The adapter's settings (the `[http]` section).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest request body accepted; larger ones get 413.
    pub max_request_bytes: usize,
    /// Largest JSON response masked whole; larger ones get 502 rather
    /// than going out unmasked.
    pub max_response_bytes: usize,
    /// A session ends after this long without requests.
    pub session_idle: Duration,
    /// Where exec recordings are written.
    pub recordings_dir: PathBuf,
}

/// The HTTP adapter; one per gateway.
pub struct HttpAdapter {
    pipeline: Arc<Pipeline>,
    settings: HttpSettings,
    routes: route::Routes,
    upstreams: HashMap<String, upstream::Upstream>,
    sessions: sessions::HttpSessions,
}

impl HttpAdapter {
    /// Build the adapter for the policy's HTTP connections.
    pub fn new(pipeline: Arc<Pipeline>, settings: HttpSettings) -> Result<HttpAdapter, String> {
        let routes = route::Routes::new(pipeline.policy.connections());
        let mut upstreams = HashMap::new();
        for conn in routes.connections() {
            upstreams.insert(conn.name.clone(), upstream::Upstream::build(conn)?);
        }
        let sessions = sessions::HttpSessions::new(pipeline.clone(), settings.session_idle);
        Ok(HttpAdapter {
            pipeline,
            settings,
            routes,
            upstreams,
            sessions,
        })
    }

    /// Accept HTTPS connections (HTTP/1.1 and HTTP/2 by ALPN) until
    /// `shutdown`, within `limits` (see [`gatehouse_core::serve`]: the
    /// handshake is TLS); then end the open sessions.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: tokio_rustls::TlsAcceptor,
        limits: ListenerLimits,
        shutdown: watch::Receiver<bool>,
    ) {
        let sweeper = {
            let adapter = self.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut sweep = tokio::time::interval(SWEEP_EVERY);
                loop {
                    tokio::select! {
                        _ = shutdown.changed() => break,
                        _ = sweep.tick() => adapter.sessions.sweep().await,
                    }
                }
            })
        };
        let server = Arc::new(HttpsServer {
            adapter: self.clone(),
            tls,
        });
        serve::serve(server, listener, limits, shutdown).await;
        sweeper.abort();
        self.sessions.end_all().await;
    }
}

/// The HTTPS listener: TLS, then hyper serving the adapter.
struct HttpsServer {
    adapter: Arc<HttpAdapter>,
    tls: tokio_rustls::TlsAcceptor,
}

impl ProtocolServer for HttpsServer {
    fn protocol(&self) -> &'static str {
        "http"
    }

    fn connection(
        self: Arc<Self>,
        tcp: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
        handshake: Handshake,
    ) -> ConnectionFuture {
        Box::pin(async move {
            let stream = match self.tls.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "HTTP TLS handshake failed");
                    return;
                }
            };
            // The handshake ends with the first request (each request
            // authenticates itself): a client that completes TLS and sends
            // nothing is closed at the listener's handshake timeout.
            let handshake = Arc::new(std::sync::Mutex::new(Some(handshake)));
            let idle = idle::IdleWatch::new();
            let stream = idle.wrap(stream);
            let adapter = self.adapter.clone();
            let watch = idle.clone();
            let service = hyper::service::service_fn(move |req| {
                let adapter = adapter.clone();
                let handshake = handshake.clone();
                let watch = watch.clone();
                async move {
                    if let Some(mut h) = handshake.lock().ok().and_then(|mut h| h.take()) {
                        h.established();
                    }
                    let _busy = watch.request();
                    let response = adapter.handle(req, peer).await;
                    if response.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
                        // kubectl exec and port-forward: idle for as long
                        // as the person at the terminal is.
                        watch.upgraded();
                    }
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(MAX_STREAMS)
                .keep_alive_interval(Some(Duration::from_secs(30)));
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(conn);
            // When the gateway stops, requests in flight finish (their
            // deadlines end streams and holds) and idle keep-alive
            // connections close at once.
            let stopping = self.adapter.pipeline.stop.stopped();
            tokio::pin!(stopping);
            let mut draining = false;
            let result = loop {
                tokio::select! {
                    r = &mut conn => break r,
                    _ = &mut stopping, if !draining => {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    _ = idle.expired(IDLE_TIMEOUT) => {
                        tracing::debug!(%peer, "idle HTTP connection closed");
                        return;
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        })
    }
}
