//! Reaching a target: why the gateway could not log in, in words safe to
//! show the client (no secrets), the same for every protocol.

/// Why the gateway could not log in to a target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// TCP connect failed.
    #[error("cannot reach target {addr}: {source}")]
    Connect {
        /// host:port.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The target refused the gateway's credential or asked for something unsupported.
    #[error("target refused the gateway's login: {0}")]
    Refused(String),
    /// The credential could not be read from its reference.
    #[error("{0}")]
    Credential(String),
    /// The target broke the protocol.
    #[error("target protocol error: {0}")]
    Protocol(String),
    /// I/O during login.
    #[error("target connection lost during login: {0}")]
    Io(#[from] std::io::Error),
}

impl<E: std::error::Error + 'static> From<crate::framed::StreamError<E>> for TargetError {
    fn from(e: crate::framed::StreamError<E>) -> Self {
        match e {
            crate::framed::StreamError::Io(e) => TargetError::Io(e),
            crate::framed::StreamError::Frame(e) => TargetError::Protocol(e.to_string()),
        }
    }
}

/// Open a TCP connection to `conn`'s target, with Nagle off (every
/// protocol here is request/response).
pub async fn dial(
    conn: &crate::policy::ConnectionConfig,
) -> Result<tokio::net::TcpStream, TargetError> {
    let addr = format!("{}:{}", conn.host, conn.port);
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|source| TargetError::Connect { addr, source })?;
    stream.set_nodelay(true)?;
    Ok(stream)
}
