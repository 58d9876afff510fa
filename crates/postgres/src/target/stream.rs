//! The gateway's socket to the target: plain TCP, or TLS negotiated with
//! an SSLRequest (`tls = "require"`).
//!
//! Plain TCP splits into the socket's own halves (no lock between the two
//! pumps); TLS splits through tokio's lock, as one TLS session has one
//! state for both directions. `Either` forwards reads and writes
//! (vectored ones too) to whichever side it holds.

use crate::codec::frontend;
use gatehouse_core::policy::{ConnectionConfig, TargetTls};
use gatehouse_core::target::TargetError;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

/// A connection to the target: plain TCP (left) or TLS over TCP with the
/// target's certificate verified (right).
pub type TargetStream = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// The half the server pump reads from.
pub type TargetReader = Either<OwnedReadHalf, ReadHalf<Box<TlsStream<TcpStream>>>>;

/// The half the client pump writes to.
pub type TargetWriter = Either<OwnedWriteHalf, WriteHalf<Box<TlsStream<TcpStream>>>>;

/// Open the connection to `conn`'s target: TCP, then TLS when the
/// connection requires it (the target must accept the SSLRequest, and its
/// certificate must verify against `ca_file` or the system's roots for
/// `host`; the gateway presents `client_cert` when set).
pub async fn open(conn: &ConnectionConfig) -> Result<TargetStream, TargetError> {
    let mut tcp = gatehouse_core::target::dial(conn).await?;
    if conn.tls == TargetTls::Disable {
        return Ok(Either::Left(tcp));
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
    Ok(Either::Right(Box::new(tls)))
}

/// The two directions of `stream`, for the two pumps.
pub fn split(stream: TargetStream) -> (TargetReader, TargetWriter) {
    match stream {
        Either::Left(tcp) => {
            let (r, w) = tcp.into_split();
            (Either::Left(r), Either::Left(w))
        }
        Either::Right(tls) => {
            let (r, w) = tokio::io::split(tls);
            (Either::Right(r), Either::Right(w))
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
