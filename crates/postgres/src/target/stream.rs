//! The gateway's socket to the target: plain TCP, or TLS negotiated with
//! an SSLRequest (`tls = "require"`).
//!
//! Plain TCP splits into the socket's own halves (no lock between the two
//! pumps); TLS splits through tokio's lock, as one TLS session has one
//! state for both directions.

use crate::codec::frontend;
use gatehouse_core::policy::{ConnectionConfig, TargetTls};
use gatehouse_core::target::TargetError;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A connection to the target.
pub enum TargetStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP, the target's certificate verified.
    Tls(Box<TlsStream<TcpStream>>),
}

/// The half the server pump reads from.
pub enum TargetReader {
    /// Plain TCP's own read half.
    Plain(OwnedReadHalf),
    /// A TLS session's read side.
    Tls(tokio::io::ReadHalf<Box<TlsStream<TcpStream>>>),
}

/// The half the client pump writes to.
pub enum TargetWriter {
    /// Plain TCP's own write half.
    Plain(OwnedWriteHalf),
    /// A TLS session's write side.
    Tls(tokio::io::WriteHalf<Box<TlsStream<TcpStream>>>),
}

impl TargetStream {
    /// Open the connection to `conn`'s target: TCP, then TLS when the
    /// connection requires it (the target must accept the SSLRequest, and
    /// its certificate must verify against `ca_file` or the system's roots
    /// for `host`; the gateway presents `client_cert` when set).
    pub async fn open(conn: &ConnectionConfig) -> Result<TargetStream, TargetError> {
        let mut tcp = gatehouse_core::target::dial(conn).await?;
        if conn.tls == TargetTls::Disable {
            return Ok(TargetStream::Plain(tcp));
        }
        let config = client_config(conn)?;
        tcp.write_all(&frontend::ssl_request()).await?;
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).await?;
        if answer[0] != b'S' {
            return Err(TargetError::Refused(format!(
                "connection \"{}\" requires TLS (tls = \"require\") but the target does not offer it; turn on ssl in its postgresql.conf",
                conn.name
            )));
        }
        let name = rustls::pki_types::ServerName::try_from(conn.host.clone()).map_err(|e| {
            TargetError::Refused(format!(
                "connection \"{}\": host {}: {e}",
                conn.name, conn.host
            ))
        })?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| {
                TargetError::Refused(format!(
                    "connection \"{}\": TLS to the target failed: {e}",
                    conn.name
                ))
            })?;
        Ok(TargetStream::Tls(Box::new(tls)))
    }

    /// The two directions, for the two pumps.
    pub fn split(self) -> (TargetReader, TargetWriter) {
        match self {
            TargetStream::Plain(tcp) => {
                let (r, w) = tcp.into_split();
                (TargetReader::Plain(r), TargetWriter::Plain(w))
            }
            TargetStream::Tls(tls) => {
                let (r, w) = tokio::io::split(tls);
                (TargetReader::Tls(r), TargetWriter::Tls(w))
            }
        }
    }
}

/// The TLS client configuration of `conn`.
fn client_config(conn: &ConnectionConfig) -> Result<Arc<rustls::ClientConfig>, TargetError> {
    let tls = gatehouse_tls::ClientTls {
        ca_file: conn.ca_file.as_deref(),
        require_roots: true,
        client_cert: conn.client_cert.as_deref().zip(conn.client_key.as_deref()),
        ..Default::default()
    };
    gatehouse_tls::client_config(&tls)
        .map(Arc::new)
        .map_err(|e| TargetError::Refused(format!("connection \"{}\": {e}", conn.name)))
}

impl AsyncRead for TargetStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TargetStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            TargetStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TargetStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TargetStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            TargetStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TargetStream::Plain(s) => Pin::new(s).poll_flush(cx),
            TargetStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TargetStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            TargetStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for TargetReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TargetReader::Plain(s) => Pin::new(s).poll_read(cx, buf),
            TargetReader::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TargetWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TargetWriter::Plain(s) => Pin::new(s).poll_write(cx, buf),
            TargetWriter::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TargetWriter::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            TargetWriter::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            TargetWriter::Plain(s) => s.is_write_vectored(),
            TargetWriter::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TargetWriter::Plain(s) => Pin::new(s).poll_flush(cx),
            TargetWriter::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TargetWriter::Plain(s) => Pin::new(s).poll_shutdown(cx),
            TargetWriter::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
