//! The gateway's own login to the target server.
//!
//! The caller never sees this credential: the gateway opens a fresh
//! connection per session (over TLS when the connection says
//! `tls = "require"`, verified against `ca_file` or the system's roots) and
//! answers whatever plugin the target asks for: `mysql_native_password`,
//! `caching_sha2_password` (the fast path, and the full path by sending the
//! password over TLS; without TLS the full path would need RSA, which the
//! gateway does not do), `mysql_clear_password` (over TLS only), or
//! MariaDB's `client_ed25519`.

use crate::auth;
use crate::codec::packets::{self, cap, HandshakeResponse};
use crate::codec::{encode_packet, Packet};
use crate::io::PacketReader;
use crate::session::ClientIo;
use bytes::BytesMut;
use gatehouse_core::policy::{ConnectionConfig, TargetTls};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// A logged-in target connection.
pub struct TargetSession {
    /// The stream (TCP or TLS), positioned after the login's OK.
    pub stream: Box<dyn ClientIo>,
    /// Whether the gateway reached the target over TLS.
    pub tls: bool,
    /// Bytes already read past the OK.
    pub leftover: BytesMut,
    /// The target's version string.
    pub server_version: String,
    /// Capabilities in force between gateway and target.
    pub capabilities: u32,
    /// The target's connection id (for KILL).
    pub connection_id: u32,
}

pub use gatehouse_core::target::TargetError;

/// Answer `plugin`'s challenge with `password`.
fn respond(
    plugin: &str,
    password: &[u8],
    scramble: &[u8],
    tls: bool,
) -> Result<Vec<u8>, TargetError> {
    match plugin {
        "mysql_native_password" | "" => Ok(auth::native_password(password, scramble)),
        "caching_sha2_password" => Ok(auth::caching_sha2(password, scramble)),
        "client_ed25519" => Ok(auth::ed25519(password, scramble)),
        "mysql_clear_password" if tls => Ok(nul_terminated(password)),
        "mysql_clear_password" => Err(TargetError::Refused(
            "the target asks for the cleartext password, which the gateway only sends over TLS; set tls = \"require\" on the connection".into(),
        )),
        other => Err(TargetError::Refused(format!(
            "the target asks for authentication plugin \"{other}\", which the gateway does not speak (it speaks mysql_native_password, caching_sha2_password and client_ed25519)"
        ))),
    }
}

fn nul_terminated(password: &[u8]) -> Vec<u8> {
    let mut v = password.to_vec();
    v.push(0);
    v
}

/// A TLS client configuration trusting `ca_file`, or the system's roots.
fn tls_config(conn: &ConnectionConfig) -> Result<Arc<rustls::ClientConfig>, TargetError> {
    let tls = gatehouse_tls::ClientTls {
        ca_file: conn.ca_file.as_deref(),
        ..Default::default()
    };
    gatehouse_tls::client_config(&tls)
        .map(Arc::new)
        .map_err(|e| TargetError::Refused(format!("connection \"{}\": {e}", conn.name)))
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
    let stream = gatehouse_core::target::dial(conn).await?;
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
    let tls = conn.tls == TargetTls::Require;
    let mut capabilities = (client_caps & cap::GATEWAY & hello.capabilities & !cap::SSL)
        | needed
        | cap::LONG_PASSWORD
        | (hello.capabilities & cap::PLUGIN_AUTH_LENENC_DATA);
    let mut seq = first.last_seq.wrapping_add(1);
    let (tcp, rest) = reader.into_parts();
    let stream: Box<dyn ClientIo> = if tls {
        if hello.capabilities & cap::SSL == 0 {
            return Err(TargetError::Refused(format!(
                "connection \"{}\" requires TLS but the target does not offer it",
                conn.name
            )));
        }
        capabilities |= cap::SSL;
        let mut out = Vec::new();
        encode_packet(
            &mut out,
            &mut seq,
            &packets::handshake_response(&HandshakeResponse {
                capabilities,
                max_packet: 1 << 24,
                charset: if charset == 0 { 45 } else { charset },
                ssl_request: true,
                ..Default::default()
            }),
        );
        let mut tcp = tcp;
        tcp.write_all(&out).await?;
        let name = rustls::pki_types::ServerName::try_from(conn.host.clone()).map_err(|e| {
            TargetError::Refused(format!(
                "connection \"{}\": host {}: {e}",
                conn.name, conn.host
            ))
        })?;
        let connector = tokio_rustls::TlsConnector::from(tls_config(conn)?);
        let tls_stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| TargetError::Refused(format!("TLS to the target failed: {e}")))?;
        Box::new(tls_stream)
    } else {
        Box::new(tcp)
    };
    let mut reader = PacketReader::new(stream, rest, max_packet);
    let plugin = hello.auth_plugin.clone();
    let response = HandshakeResponse {
        capabilities,
        max_packet: 1 << 24,
        charset: if charset == 0 { 45 } else { charset },
        ssl_request: false,
        user: conn.user.clone(),
        auth: respond(&plugin, &password, &hello.scramble, tls)?,
        database: Some(conn.database_name().to_string()),
        auth_plugin: Some(if plugin.is_empty() {
            "mysql_native_password".into()
        } else {
            plugin
        }),
        attributes: Vec::new(),
    };
    let mut out = Vec::new();
    encode_packet(&mut out, &mut seq, &packets::handshake_response(&response));
    reader.get_mut().write_all(&out).await?;
    let mut current_plugin = response.auth_plugin.clone().unwrap_or_default();
    loop {
        let p: Packet = reader.expect().await?;
        let mut seq = p.last_seq.wrapping_add(1);
        match p.payload.first() {
            Some(0x00) => {
                let ok = packets::parse_ok(&p.payload)
                    .map_err(|e| TargetError::Protocol(e.to_string()))?;
                if ok.status & packets::status::NO_BACKSLASH_ESCAPES != 0 {
                    // The gateway reads quotes with backslash escapes, as
                    // MySQL does by default; a session that does not would
                    // see different statements than the gateway judged.
                    return Err(TargetError::Refused(
                        "the target's sql_mode includes NO_BACKSLASH_ESCAPES, which gatehouse does not support; remove it from the server's global sql_mode".into(),
                    ));
                }
                break;
            }
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
                let answer = respond(&plugin, &password, &data, tls)?;
                current_plugin = plugin;
                let mut out = Vec::new();
                encode_packet(&mut out, &mut seq, &answer);
                reader.get_mut().write_all(&out).await?;
            }
            Some(0x01) if current_plugin == "caching_sha2_password" => {
                match p.payload.get(1) {
                    // Fast authentication succeeded; the OK follows.
                    Some(3) => continue,
                    // Full authentication: the password itself, over TLS.
                    Some(4) if tls => {
                        let mut out = Vec::new();
                        encode_packet(&mut out, &mut seq, &nul_terminated(&password));
                        reader.get_mut().write_all(&out).await?;
                    }
                    _ => {
                        return Err(TargetError::Refused(
                            "the target needs caching_sha2_password's full authentication (its cache does not hold the gateway's account yet), which needs TLS to the target (set tls = \"require\" and ca_file on the connection) or RSA, which the gateway does not do. Alternatively log in once as that account with the mysql client to fill the cache, or use mysql_native_password for the gateway's account".into(),
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
    let sql_mode = session_sql_mode(&mut reader, capabilities).await?;
    if let Some(mode) = lexing_sql_mode(&sql_mode) {
        return Err(TargetError::Refused(format!(
            "the target session's sql_mode includes {mode}, which changes how the server reads quotes, so gatehouse could read statements differently from it; remove it from the server's global sql_mode (and from the gateway account's init_connect)"
        )));
    }
    let (stream, leftover) = reader.into_parts();
    Ok(TargetSession {
        stream,
        tls,
        leftover,
        server_version: hello.server_version,
        capabilities,
        connection_id: hello.connection_id,
    })
}

/// The `sql_mode` parts that change where the server ends a string or a
/// quoted name (`ANSI_QUOTES` makes `"…"` a name; the combination modes
/// imply it; `NO_BACKSLASH_ESCAPES` makes `\` an ordinary character).
pub const LEXING_SQL_MODES: &[&str] = &[
    "ANSI_QUOTES",
    "ANSI",
    "ORACLE",
    "DB2",
    "MSSQL",
    "MAXDB",
    "POSTGRESQL",
    "NO_BACKSLASH_ESCAPES",
];

/// The first mode of a comma-separated `sql_mode` value that changes lexing.
pub fn lexing_sql_mode(sql_mode: &str) -> Option<&'static str> {
    sql_mode.split(',').find_map(|m| {
        LEXING_SQL_MODES
            .iter()
            .find(|l| l.eq_ignore_ascii_case(m.trim()))
            .copied()
    })
}

/// Ask the freshly logged-in target for its session `sql_mode`: no status
/// flag reports `ANSI_QUOTES` the way one reports `NO_BACKSLASH_ESCAPES`.
async fn session_sql_mode(
    reader: &mut PacketReader<Box<dyn ClientIo>>,
    capabilities: u32,
) -> Result<String, TargetError> {
    let protocol = |what: &str| TargetError::Protocol(format!("reading sql_mode: {what}"));
    let mut seq = 0u8;
    let mut out = Vec::new();
    let mut query = vec![0x03];
    query.extend_from_slice(b"SELECT @@SESSION.sql_mode");
    encode_packet(&mut out, &mut seq, &query);
    reader.get_mut().write_all(&out).await?;
    let head = reader.expect().await?;
    if head.payload.first() == Some(&0xff) {
        let e = packets::parse_err(&head.payload).map_err(|e| protocol(&e.to_string()))?;
        return Err(TargetError::Refused(format!(
            "the target refused to report its sql_mode: {} (error {})",
            e.message, e.code
        )));
    }
    let columns = packets::column_count(&head.payload).map_err(|e| protocol(&e.to_string()))?;
    for _ in 0..columns {
        reader.expect().await?;
    }
    if capabilities & cap::DEPRECATE_EOF == 0 {
        reader.expect().await?;
    }
    let mut mode = None;
    loop {
        let p = reader.expect().await?;
        match p.payload.first() {
            Some(0xff) => return Err(protocol("the target sent an error")),
            Some(0xfe) if p.payload.len() < 0xff_ffff => break,
            _ => {
                let row = crate::codec::rows::parse_text_row(&p.payload, 1)
                    .map_err(|e| protocol(&e.to_string()))?;
                mode = row
                    .first()
                    .copied()
                    .flatten()
                    .map(|v| String::from_utf8_lossy(v).into_owned());
            }
        }
    }
    mode.ok_or_else(|| protocol("no row"))
}
