//! The destinations. Each takes a batch of events and either delivers all of
//! it or fails; the runner retries a failed batch from its cursor, so a
//! batch is never half-acknowledged.

use crate::config::{Format, SinkKind};
use crate::format::{hec_event, json_line, octet_counted, syslog_message, SyslogHeader};
use crate::SiemError;
use gatehouse_audit::AuditEvent;
use rustls::pki_types::ServerName;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A configured destination, ready to deliver.
pub(crate) enum Sink {
    File(FileSink),
    Syslog(Box<SyslogSink>),
    Hec(HecSink),
}

impl Sink {
    /// Build a sink; `state_dir` resolves relative output paths and
    /// `base_dir` relative CA and token files.
    pub(crate) fn new(
        name: &str,
        kind: &SinkKind,
        format: Format,
        timeout: Duration,
        state_dir: &Path,
        base_dir: &Path,
    ) -> Result<Sink, SiemError> {
        let bad =
            |reason: String| SiemError::Config(format!("[[siem.sinks]] \"{name}\": {reason}"));
        Ok(match kind {
            SinkKind::File {
                path,
                rotate_bytes,
                keep,
            } => Sink::File(FileSink {
                path: state_dir.join(path),
                rotate_bytes: *rotate_bytes,
                keep: *keep,
                format,
            }),
            SinkKind::Syslog {
                address,
                tls,
                ca_file,
                server_name,
                app_name,
                facility,
                hostname,
            } => {
                let tls = if *tls {
                    let host = server_name.clone().unwrap_or_else(|| {
                        address.rsplit_once(':').map_or(address.clone(), |(h, _)| {
                            h.trim_matches(['[', ']']).to_string()
                        })
                    });
                    let name = ServerName::try_from(host.clone())
                        .map_err(|_| bad(format!("\"{host}\" is not a valid TLS server name")))?;
                    let ca_file = ca_file.as_deref().map(|p| base_dir.join(p));
                    let cfg = gatehouse_tls::client_config(&gatehouse_tls::ClientTls {
                        ca_file: ca_file.as_deref(),
                        require_roots: true,
                        ..Default::default()
                    })
                    .map_err(|e| bad(tls_error(e)))?;
                    Some((tokio_rustls::TlsConnector::from(Arc::new(cfg)), name))
                } else {
                    None
                };
                Sink::Syslog(Box::new(SyslogSink {
                    address: address.clone(),
                    tls,
                    app_name: app_name.clone(),
                    facility: *facility,
                    hostname: hostname.clone().unwrap_or_else(local_hostname),
                    format,
                    timeout,
                    conn: None,
                }))
            }
            SinkKind::SplunkHec {
                url,
                token_env,
                token_file,
                ca_file,
                index,
                sourcetype,
                source,
            } => {
                let token = match (token_env, token_file) {
                    (Some(var), _) => std::env::var(var).map_err(|_| {
                        bad(format!("environment variable {var} (token_env) is not set"))
                    })?,
                    (None, Some(file)) => std::fs::read_to_string(base_dir.join(file))
                        .map_err(|e| bad(format!("token_file {}: {e}", file.display())))?,
                    (None, None) => return Err(bad("set token_env or token_file".into())),
                };
                let mut builder = reqwest::Client::builder().timeout(timeout);
                if let Some(ca) = ca_file {
                    let pem = std::fs::read(base_dir.join(ca))
                        .map_err(|e| bad(format!("ca_file {}: {e}", ca.display())))?;
                    for cert in reqwest::Certificate::from_pem_bundle(&pem)
                        .map_err(|e| bad(format!("ca_file {}: {e}", ca.display())))?
                    {
                        builder = builder.add_root_certificate(cert);
                    }
                }
                Sink::Hec(HecSink {
                    client: builder
                        .build()
                        .map_err(|e| bad(format!("HTTP client: {e}")))?,
                    url: url.clone(),
                    token: token.trim().to_string(),
                    index: index.clone(),
                    sourcetype: sourcetype.clone(),
                    source: source.clone(),
                    host: local_hostname(),
                    format,
                })
            }
        })
    }

    /// Deliver every event of `batch`, or fail.
    pub(crate) async fn deliver(&mut self, batch: &[AuditEvent]) -> Result<(), String> {
        match self {
            Sink::File(s) => s.deliver(batch).await,
            Sink::Syslog(s) => s.deliver(batch).await,
            Sink::Hec(s) => s.deliver(batch).await,
        }
    }
}

/// A TLS configuration error in this module's words ("ca_file PATH: why").
fn tls_error(e: gatehouse_tls::ClientTlsError) -> String {
    use gatehouse_tls::ClientTlsError::{BadCaFile, ReadCaFile};
    match e {
        ReadCaFile { path, reason } | BadCaFile { path, reason } => {
            format!("ca_file {}: {reason}", path.display())
        }
        other => other.to_string(),
    }
}

fn local_hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "-".into())
}

/// JSON lines in a file, rotated by size: `path` is written, `path.1` is the
/// newest rotated file, `path.N` the oldest kept.
pub(crate) struct FileSink {
    path: PathBuf,
    rotate_bytes: u64,
    keep: u32,
    format: Format,
}

impl FileSink {
    async fn deliver(&mut self, batch: &[AuditEvent]) -> Result<(), String> {
        let mut text = String::new();
        for e in batch {
            text.push_str(&json_line(e, self.format));
            text.push('\n');
        }
        let path = self.path.clone();
        let (rotate_bytes, keep) = (self.rotate_bytes, self.keep);
        tokio::task::spawn_blocking(move || {
            append_and_rotate(&path, text.as_bytes(), rotate_bytes, keep)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

fn append_and_rotate(
    path: &Path,
    bytes: &[u8],
    rotate_bytes: u64,
    keep: u32,
) -> std::io::Result<()> {
    // A copy of the trail: its owner's alone, like the trail.
    let mut file =
        gatehouse_core::private::open(path, std::fs::OpenOptions::new().create(true).append(true))?;
    file.write_all(bytes)?;
    file.sync_data()?;
    let size = file.metadata()?.len();
    drop(file);
    if rotate_bytes > 0 && size >= rotate_bytes {
        let numbered = |n: u32| {
            let mut p = path.as_os_str().to_owned();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if keep == 0 {
            std::fs::remove_file(path)?;
            return Ok(());
        }
        let _ = std::fs::remove_file(numbered(keep));
        for n in (1..keep).rev() {
            if numbered(n).exists() {
                std::fs::rename(numbered(n), numbered(n + 1))?;
            }
        }
        std::fs::rename(path, numbered(1))?;
    }
    Ok(())
}

/// RFC 5424 over TCP with octet counting, optionally TLS.
pub(crate) struct SyslogSink {
    address: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    app_name: String,
    facility: u8,
    hostname: String,
    format: Format,
    timeout: Duration,
    conn: Option<Box<dyn Stream>>,
}

impl SyslogSink {
    async fn connect(
        address: &str,
        timeout: Duration,
        tls: Option<&(tokio_rustls::TlsConnector, ServerName<'static>)>,
    ) -> Result<Box<dyn Stream>, String> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| format!("connecting to {address} timed out"))?
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        match tls {
            None => Ok(Box::new(tcp)),
            Some((connector, name)) => {
                let tls = tokio::time::timeout(timeout, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| format!("TLS handshake with {address} timed out"))?
                    .map_err(|e| format!("TLS handshake with {address} failed: {e}"))?;
                Ok(Box::new(tls))
            }
        }
    }

    /// Whether the receiver has closed the connection: a syslog receiver
    /// never sends, so a read that completes at once means end of stream
    /// (or an error). Checked before each batch, so a batch is not written
    /// into a connection the receiver already closed.
    async fn peer_closed(conn: &mut Box<dyn Stream>) -> bool {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::ZERO, conn.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    async fn deliver(&mut self, batch: &[AuditEvent]) -> Result<(), String> {
        if let Some(conn) = self.conn.as_mut() {
            if Self::peer_closed(conn).await {
                self.conn = None;
            }
        }
        if self.conn.is_none() {
            self.conn = Some(Self::connect(&self.address, self.timeout, self.tls.as_ref()).await?);
        }
        let header = SyslogHeader {
            facility: self.facility,
            hostname: &self.hostname,
            app_name: &self.app_name,
            proc_id: std::process::id(),
        };
        let mut out = String::new();
        for e in batch {
            out.push_str(&octet_counted(&syslog_message(e, self.format, &header)));
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err("not connected".into());
        };
        let written = tokio::time::timeout(self.timeout, async {
            conn.write_all(out.as_bytes()).await?;
            conn.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.conn = None;
                Err(format!("writing to {} failed: {e}", self.address))
            }
            Err(_) => {
                self.conn = None;
                Err(format!("writing to {} timed out", self.address))
            }
        }
    }
}

/// Splunk HTTP Event Collector: one POST per batch, acknowledged by a 2xx.
pub(crate) struct HecSink {
    client: reqwest::Client,
    url: String,
    token: String,
    index: Option<String>,
    sourcetype: String,
    source: String,
    host: String,
    format: Format,
}

impl HecSink {
    async fn deliver(&mut self, batch: &[AuditEvent]) -> Result<(), String> {
        let mut body = String::new();
        for e in batch {
            body.push_str(
                &hec_event(
                    e,
                    self.format,
                    &self.host,
                    &self.source,
                    &self.sourcetype,
                    self.index.as_deref(),
                )
                .to_string(),
            );
            body.push('\n');
        }
        let resp = self
            .client
            .post(&self.url)
            .header("Authorization", format!("Splunk {}", self.token))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST {} failed: {e}", self.url))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(format!(
            "POST {} answered {status}: {}",
            self.url,
            text.chars().take(200).collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_rotate_and_keep_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/events.jsonl");
        for i in 0..10 {
            append_and_rotate(&path, format!("{i:0>40}\n").as_bytes(), 80, 3).unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let mut p1 = path.as_os_str().to_owned();
        p1.push(".1");
        assert_eq!(read(Path::new(&p1)).lines().count(), 2);
        let mut p4 = path.as_os_str().to_owned();
        p4.push(".4");
        assert!(!Path::new(&p4).exists(), "only 3 rotated files are kept");
    }
}
