//! The gateway's own login to the target server.
//!
//! The caller never sees this credential: the gateway opens a fresh
//! connection per session and answers whatever plugin the target asks for:
//! `mysql_native_password`, `caching_sha2_password` (fast path; its full
//! path needs TLS or RSA to the target and is refused with a clear error),
//! or MariaDB's `client_ed25519`.

use crate::auth;
use crate::codec::packets::{self, cap, HandshakeResponse};
use crate::codec::{encode_packet, Packet};
use crate::io::{PacketReader, StreamError};
use bytes::BytesMut;
use gatehouse_core::policy::{ConnectionConfig, TargetTls};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A logged-in target connection.
pub struct TargetSession {
    /// The socket, positioned after the login's OK.
    pub stream: TcpStream,
    /// Bytes already read past the OK.
    pub leftover: BytesMut,
    /// The target's version string.
    pub server_version: String,
    /// Capabilities in force between gateway and target.
    pub capabilities: u32,
    /// The target's connection id (for KILL).
    pub connection_id: u32,
}

/// Why the gateway could not log in; safe to show the client (no secrets).
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
    Io(#[from] StreamError),
}

impl From<std::io::Error> for TargetError {
    fn from(e: std::io::Error) -> Self {
        TargetError::Io(StreamError::Io(e))
    }
}

/// Answer `plugin`'s challenge with `password`.
fn respond(plugin: &str, password: &[u8], scramble: &[u8]) -> Result<Vec<u8>, TargetError> {
    match plugin {
        "mysql_native_password" | "" => Ok(auth::native_password(password, scramble)),
        "caching_sha2_password" => Ok(auth::caching_sha2(password, scramble)),
        "client_ed25519" => Ok(auth::ed25519(password, scramble)),
        "mysql_clear_password" => Err(TargetError::Refused(
            "the target asks for the cleartext password, which the gateway only sends over TLS; TLS to MySQL targets is not supported yet".into(),
        )),
        other => Err(TargetError::Refused(format!(
            "the target asks for authentication plugin \"{other}\", which the gateway does not speak (it speaks mysql_native_password, caching_sha2_password and client_ed25519)"
        ))),
    }
}

/// Connect and log in to `conn` with the gateway's credential. `client_caps`
/// are the client's capabilities, so the target's answers can be relayed
/// to the client as they are.
pub async fn connect(
    conn: &ConnectionConfig,
    client_caps: u32,
    charset: u8,
    max_packet: usize,
) -> Result<TargetSession, TargetError> {
    if conn.tls == TargetTls::Require {
        return Err(TargetError::Refused(format!(
            "connection \"{}\" asks for TLS to the target, which the MySQL adapter does not support yet; use tls = \"disable\" on a trusted network segment",
            conn.name
        )));
    }
    let addr = format!("{}:{}", conn.host, conn.port);
    let stream = TcpStream::connect(&addr)
        .await
        .map_err(|source| TargetError::Connect {
            addr: addr.clone(),
            source,
        })?;
    stream.set_nodelay(true)?;
    let credential = conn.credential().map_err(TargetError::Credential)?;
    let password = credential
        .as_ref()
        .map(|c| c.expose().as_bytes().to_vec())
        .unwrap_or_default();
    let mut reader = PacketReader::new(stream, BytesMut::new(), max_packet);
    let first = reader.expect().await?;
    if first.payload.first() == Some(&0xff) {
        let e =
            packets::parse_err(&first.payload).map_err(|e| TargetError::Protocol(e.to_string()))?;
        return Err(TargetError::Refused(e.message));
    }
    let hello = packets::parse_handshake(&first.payload)
        .map_err(|e| TargetError::Protocol(e.to_string()))?;
    let needed = cap::PROTOCOL_41 | cap::SECURE_CONNECTION | cap::PLUGIN_AUTH;
    if hello.capabilities & needed != needed {
        return Err(TargetError::Protocol(
            "the target does not speak the 4.1 protocol with authentication plugins".into(),
        ));
    }
    let capabilities = (client_caps & cap::GATEWAY & hello.capabilities & !cap::SSL)
        | needed
        | cap::LONG_PASSWORD
        | (hello.capabilities & cap::PLUGIN_AUTH_LENENC_DATA);
    let plugin = hello.auth_plugin.clone();
    let response = HandshakeResponse {
        capabilities,
        max_packet: 1 << 24,
        charset: if charset == 0 { 45 } else { charset },
        ssl_request: false,
        user: conn.user.clone(),
        auth: respond(&plugin, &password, &hello.scramble)?,
        database: Some(conn.database_name().to_string()),
        auth_plugin: Some(if plugin.is_empty() {
            "mysql_native_password".into()
        } else {
            plugin
        }),
        attributes: Vec::new(),
    };
    let mut out = Vec::new();
    let mut seq = first.last_seq.wrapping_add(1);
    encode_packet(&mut out, &mut seq, &packets::handshake_response(&response));
    reader.get_mut().write_all(&out).await?;
    let mut current_plugin = response.auth_plugin.clone().unwrap_or_default();
    loop {
        let p: Packet = reader.expect().await?;
        let mut seq = p.last_seq.wrapping_add(1);
        match p.payload.first() {
            Some(0x00) => break,
            Some(0xff) => {
                let e = packets::parse_err(&p.payload)
                    .map_err(|e| TargetError::Protocol(e.to_string()))?;
                return Err(TargetError::Refused(format!(
                    "{} (error {})",
                    e.message, e.code
                )));
            }
            Some(0xfe) => {
                let (plugin, data) = packets::parse_auth_switch(&p.payload)
                    .map_err(|e| TargetError::Protocol(e.to_string()))?;
                let answer = respond(&plugin, &password, &data)?;
                current_plugin = plugin;
                let mut out = Vec::new();
                encode_packet(&mut out, &mut seq, &answer);
                reader.get_mut().write_all(&out).await?;
            }
            Some(0x01) if current_plugin == "caching_sha2_password" => {
                match p.payload.get(1) {
                    // Fast authentication succeeded; the OK follows.
                    Some(3) => continue,
                    _ => {
                        return Err(TargetError::Refused(
                            "the target needs caching_sha2_password's full authentication (its cache does not hold the gateway's account yet), which requires TLS or RSA to the target; the MySQL adapter does not do that yet. Log in once as that account with the mysql client to fill the cache, or use mysql_native_password for the gateway's account".into(),
                        ))
                    }
                }
            }
            _ => {
                return Err(TargetError::Protocol(
                    "unexpected packet during login".into(),
                ))
            }
        }
    }
    let (stream, leftover) = reader.into_parts();
    Ok(TargetSession {
        stream,
        leftover,
        server_version: hello.server_version,
        capabilities,
        connection_id: hello.connection_id,
    })
}
