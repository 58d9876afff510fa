//! The gateway's side of an HTTP connection: one pooled client per
//! connection, its TLS trust and the credential it presents upstream.

use gatehouse_core::policy::{ConnectionConfig, ConnectionKind, TargetTls};
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::Uri;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Request bodies the gateway forwards: always read (and bounded) first,
/// since the decide stage has to see them.
pub type UpstreamBody = Full<bytes::Bytes>;

/// How the gateway's credential travels upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAuth {
    /// Nothing is added (the upstream trusts the network or the client
    /// certificate).
    None,
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `<name>: <secret>` (e.g. `X-Api-Key`).
    Header(HeaderName),
}

/// One connection's upstream.
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, UpstreamBody>,
    scheme: &'static str,
    authority: String,
    base_path: String,
    auth: UpstreamAuth,
    conn: ConnectionConfig,
}

impl Upstream {
    /// Build the client for `conn`; TLS trust comes from `ca_file` or the
    /// system roots. Kubernetes connections speak HTTP/1.1 upstream so
    /// `exec`, `attach` and `port-forward` upgrades work.
    pub fn build(conn: &ConnectionConfig) -> Result<Upstream, String> {
        let auth = match conn.upstream_auth.as_deref() {
            Some("none") => UpstreamAuth::None,
            Some(h) if h.starts_with("header:") => {
                let name = h["header:".len()..].trim();
                UpstreamAuth::Header(HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    format!("connection \"{}\": upstream_auth header name \"{name}\" is not a valid header name", conn.name)
                })?)
            }
            Some("bearer") => UpstreamAuth::Bearer,
            _ if conn.password_env.is_some() || conn.password_file.is_some() => {
                UpstreamAuth::Bearer
            }
            _ => UpstreamAuth::None,
        };
        let tls = tls_config(conn)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let connector = if conn.kind == ConnectionKind::Kubernetes {
            builder.enable_http1().wrap_connector(http)
        } else {
            builder.enable_http1().enable_http2().wrap_connector(http)
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .build(connector);
        let base_path = conn
            .base_path
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string();
        Ok(Upstream {
            client,
            scheme: if conn.tls == TargetTls::Require {
                "https"
            } else {
                "http"
            },
            authority: format!("{}:{}", conn.host, conn.port),
            base_path,
            auth,
            conn: conn.clone(),
        })
    }

    /// The upstream URI for a path (below the connection's prefix) and query.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, String> {
        let mut pq = format!("{}{}", self.base_path, path);
        if pq.is_empty() {
            pq.push('/');
        }
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        Uri::builder()
            .scheme(self.scheme)
            .authority(self.authority.as_str())
            .path_and_query(pq)
            .build()
            .map_err(|e| format!("cannot build the upstream address: {e}"))
    }

    /// The host header value for the upstream.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The header carrying the gateway's credential, read from its
    /// reference at each request so a rotated secret applies at once.
    pub fn credential(&self) -> Result<Option<(HeaderName, HeaderValue)>, String> {
        let name = match &self.auth {
            UpstreamAuth::None => return Ok(None),
            UpstreamAuth::Bearer => AUTHORIZATION,
            UpstreamAuth::Header(h) => h.clone(),
        };
        let secret = self.conn.credential()?.ok_or_else(|| {
            format!(
                "connection \"{}\": no upstream secret is configured (password_env or password_file)",
                self.conn.name
            )
        })?;
        let text = match self.auth {
            UpstreamAuth::Bearer => format!("Bearer {}", secret.expose()),
            _ => secret.expose().to_string(),
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            format!(
                "connection \"{}\": the upstream secret holds characters a header cannot carry",
                self.conn.name
            )
        })?;
        value.set_sensitive(true);
        Ok(Some((name, value)))
    }

    /// Send a request upstream.
    pub async fn send(
        &self,
        req: http::Request<UpstreamBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        self.client.request(req).await.map_err(|e| {
            format!(
                "upstream {} did not answer: {}",
                self.authority,
                error_chain(&e)
            )
        })
    }
}

/// An error with its causes, for a message a person can act on.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn tls_config(conn: &ConnectionConfig) -> Result<rustls::ClientConfig, String> {
    let tls = gatehouse_tls::ClientTls {
        ca_file: conn.ca_file.as_deref(),
        client_cert: conn.client_cert.as_deref().zip(conn.client_key.as_deref()),
        // ALPN is set by the connector builder (HTTP/1.1 only for Kubernetes).
        ..Default::default()
    };
    gatehouse_tls::client_config(&tls).map_err(|e| format!("connection \"{}\": {e}", conn.name))
}
