//! One client connection: the handshake, TLS, the caller's token as the
//! password (`mysql_clear_password`), authorization, and the gateway's own
//! login to the target.

use crate::codec::packets::{self, cap, status, Handshake};
use crate::codec::{encode_packet, frame};
use crate::io::PacketReader;
use crate::proxy;
use crate::target;
use bytes::BytesMut;
use gatehouse_core::events::SessionStart;
use gatehouse_core::lifecycle::CommandScope;
use gatehouse_core::pipeline::Pipeline;
use gatehouse_core::policy::ConnectionKind;
use gatehouse_core::serve::{self, ConnectionFuture, ProtocolServer};
use gatehouse_core::session::{DatabaseClient, Entry, Turned};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// Collation ids of multi-byte character sets whose later bytes can be a
/// backslash or quote (big5, sjis, gbk, cp932, gb18030): a statement in
/// them can read differently to the gateway and the server.
const UNSAFE_CHARSETS: [u8; 11] = [1, 13, 28, 84, 87, 88, 95, 96, 248, 249, 250];

/// Settings of the MySQL listener.
#[derive(Debug, Clone)]
pub struct AdapterSettings {
    /// Accept tokens without TLS from loopback clients (raw-protocol tests).
    pub allow_plaintext_loopback: bool,
    /// Refuse a token whose subject (or email) differs from the user name.
    pub require_subject_match: bool,
    /// Largest logical packet accepted from a client or target.
    pub max_packet_len: usize,
    /// Masked result rows kept in each command's audit event (0: none).
    pub result_capture_rows: usize,
    /// Version string in the greeting.
    pub server_version: String,
}

impl Default for AdapterSettings {
    fn default() -> Self {
        AdapterSettings {
            allow_plaintext_loopback: false,
            require_subject_match: false,
            max_packet_len: frame::DEFAULT_MAX_PACKET_LEN,
            result_capture_rows: 0,
            server_version: DEFAULT_SERVER_VERSION.into(),
        }
    }
}

/// The greeting's version: MariaDB's `5.5.5-` prefix, so MySQL clients and
/// MariaDB clients alike read it as a MariaDB 10.11 server.
pub const DEFAULT_SERVER_VERSION: &str = "5.5.5-10.11.0-MariaDB-gatehouse";

/// A byte stream to the client, plain or TLS.
pub trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ClientIo for T {}

/// A live session, as `KILL` sees it: the id the client was given maps to
/// the target's own connection id (never exposed).
#[derive(Clone)]
pub struct KillTarget {
    /// Whose session it is.
    pub subject: String,
    /// The connection it is on.
    pub connection: String,
    /// The target's connection id.
    pub target_id: u32,
    /// Woken to withdraw a held statement.
    pub held: Arc<tokio::sync::Notify>,
    /// True while the session waits for an approval (nothing runs on the
    /// target then, so a KILL QUERY only withdraws the request).
    pub holding: Arc<std::sync::atomic::AtomicBool>,
}

/// The sessions `KILL` may name, by the id the gateway gave the client.
#[derive(Default, Clone)]
pub struct KillRegistry(Arc<Mutex<HashMap<u32, KillTarget>>>);

impl KillRegistry {
    /// The session with gateway id `id`.
    pub fn get(&self, id: u32) -> Option<KillTarget> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }
    fn insert(&self, id: u32, t: KillTarget) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, t);
    }
    fn remove(&self, id: u32) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }
}

/// The MySQL adapter: accepts clients and runs their sessions.
pub struct MySqlAdapter {
    /// The shared pipeline.
    pub pipeline: Arc<Pipeline>,
    /// TLS for clients; `None` only where plaintext is allowed.
    pub tls: Option<TlsAcceptor>,
    /// Listener settings.
    pub settings: AdapterSettings,
    next_id: AtomicU32,
    kills: KillRegistry,
}

/// What a session knows once the caller is authenticated and authorized.
pub struct SessionContext {
    /// The session as its commands share it: id, caller, connection and
    /// deadline (core's lifecycle reads it too).
    pub scope: CommandScope,
    /// The database on the target.
    pub database: String,
    /// The shared pipeline.
    pub pipeline: Arc<Pipeline>,
    /// Listener settings.
    pub settings: AdapterSettings,
    /// Woken by `KILL QUERY` on this session, to withdraw a held statement.
    pub held_cancel: Arc<tokio::sync::Notify>,
    /// Set while a statement waits for approval.
    pub holding: Arc<std::sync::atomic::AtomicBool>,
    /// Sessions `KILL` may name.
    pub kills: KillRegistry,
    /// The target server, for the executable comments it runs.
    pub server: gatehouse_core::classify::syntax::MySqlServer,
    /// When the session must end (token expiry or grant end).
    pub deadline: gatehouse_core::deadline::SessionDeadline,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl MySqlAdapter {
    /// Build an adapter.
    pub fn new(
        pipeline: Arc<Pipeline>,
        tls: Option<TlsAcceptor>,
        settings: AdapterSettings,
    ) -> Self {
        MySqlAdapter {
            pipeline,
            tls,
            settings,
            next_id: AtomicU32::new(rand::random::<u16>() as u32 + 1),
            kills: KillRegistry::default(),
        }
    }

    async fn run(
        &self,
        mut tcp: TcpStream,
        peer: SocketAddr,
        hs: &mut serve::Handshake,
    ) -> Result<(), BoxError> {
        let gateway_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let scramble: Vec<u8> = (0..20).map(|_| rand::random::<u8>() % 94 + 33).collect();
        let mut caps = cap::GATEWAY;
        if self.tls.is_none() {
            caps &= !cap::SSL;
        }
        let hello = packets::handshake(&Handshake {
            server_version: self.settings.server_version.clone(),
            connection_id: gateway_id,
            scramble: scramble.clone(),
            capabilities: caps,
            charset: packets::UTF8MB4_GENERAL_CI as u8,
            status: status::AUTOCOMMIT,
            auth_plugin: CLEAR_PASSWORD.into(),
        });
        let mut out = Vec::new();
        let mut seq = 0;
        encode_packet(&mut out, &mut seq, &hello);
        tcp.write_all(&out).await?;
        let mut reader = PacketReader::new(tcp, BytesMut::new(), 64 * 1024);
        let Some(first) = reader.next().await? else {
            return Ok(());
        };
        let mut seq = first.last_seq.wrapping_add(1);
        let resp = match packets::parse_handshake_response(&first.payload) {
            Ok(r) => r,
            Err(e) => {
                let (mut tcp, _) = reader.into_parts();
                return refuse(&mut tcp, seq, 1043, "08S01", &format!("bad handshake: {e}")).await;
            }
        };
        let (mut client, resp, tls, mut leftover): (Box<dyn ClientIo>, _, bool, BytesMut) =
            if resp.ssl_request {
                let (tcp, rest) = reader.into_parts();
                let Some(acceptor) = &self.tls else {
                    return Ok(());
                };
                let tls_stream = acceptor.accept(crate::io::Prefixed::new(rest, tcp)).await?;
                let mut reader = PacketReader::new(
                    Box::new(tls_stream) as Box<dyn ClientIo>,
                    BytesMut::new(),
                    64 * 1024,
                );
                let Some(p) = reader.next().await? else {
                    return Ok(());
                };
                seq = p.last_seq.wrapping_add(1);
                let (mut client, rest) = reader.into_parts();
                match packets::parse_handshake_response(&p.payload) {
                    Ok(r) if !r.ssl_request => (client, r, true, rest),
                    Ok(_) => {
                        return refuse(&mut client, seq, 1043, "08S01", "TLS requested twice").await
                    }
                    Err(e) => {
                        return refuse(
                            &mut client,
                            seq,
                            1043,
                            "08S01",
                            &format!("bad handshake: {e}"),
                        )
                        .await
                    }
                }
            } else {
                let (tcp, rest) = reader.into_parts();
                (Box::new(tcp) as Box<dyn ClientIo>, resp, false, rest)
            };
        let plaintext_ok = self.settings.allow_plaintext_loopback && peer.ip().is_loopback();
        if !tls && !plaintext_ok {
            return refuse(
                &mut client,
                seq,
                1045,
                "28000",
                "gatehouse requires TLS because your token is sent as the password; connect with --ssl (mysql/mariadb) or ssl options in your driver",
            )
            .await;
        }
        if resp.capabilities & cap::COMPRESS != 0 && caps & cap::COMPRESS == 0 {
            // A client asking for what was not offered: refuse rather than
            // guess at the framing it will use.
            return refuse(
                &mut client,
                seq,
                1043,
                "08S01",
                "compression is not supported by gatehouse; connect without --compress",
            )
            .await;
        }
        // The caller's token travels as the password, in the clear inside TLS.
        let token = if resp.auth_plugin.as_deref() == Some(CLEAR_PASSWORD) && !resp.auth.is_empty()
        {
            trim_nul(&resp.auth).to_vec()
        } else {
            let mut data = scramble.clone();
            data.push(0);
            let mut out = Vec::new();
            encode_packet(
                &mut out,
                &mut seq,
                &packets::auth_switch(CLEAR_PASSWORD, &data),
            );
            client.write_all(&out).await?;
            let mut reader = PacketReader::new(client, std::mem::take(&mut leftover), 64 * 1024);
            let Some(p) = reader.next().await? else {
                return Ok(());
            };
            seq = p.last_seq.wrapping_add(1);
            let (c, rest) = reader.into_parts();
            client = c;
            leftover = rest;
            trim_nul(&p.payload).to_vec()
        };
        let token = String::from_utf8_lossy(&token).into_owned();
        let user = resp.user.clone();
        let connection = match resp.database.clone() {
            Some(db) => db,
            None => {
                let mysql: Vec<&str> = self
                    .pipeline
                    .policy
                    .connections()
                    .iter()
                    .filter(|c| c.kind == ConnectionKind::Mysql)
                    .map(|c| c.name.as_str())
                    .collect();
                match mysql.as_slice() {
                    [only] => only.to_string(),
                    _ => {
                        return refuse(
                            &mut client,
                            seq,
                            1046,
                            "3D000",
                            &format!(
                                "no connection chosen: give the connection name as the database (mysql -D NAME); MySQL connections here: {}",
                                mysql.join(", ")
                            ),
                        )
                        .await
                    }
                }
            }
        };
        let client_addr = peer.to_string();
        let pipeline = &self.pipeline;
        let caller = DatabaseClient {
            token: &token,
            connection: &connection,
            user: &user,
            peer,
            require_subject_match: self.settings.require_subject_match,
        };
        let entry = pipeline.enter_database(caller, ConnectionKind::Mysql).await;
        drop(token);
        let Entry {
            identity,
            connection: conn,
            grant,
        } = match entry {
            Ok(entry) => entry,
            Err(turned) => {
                let (code, sqlstate, message) = match turned {
                    Turned::Unauthenticated(reason) => {
                        (1045, "28000", format!("authentication failed: {reason}"))
                    }
                    Turned::WrongUser { identity } => (1045, "28000", format!("the token is for \"{s}\" but you connected as user \"{user}\"; connect with -u {s}", s = identity.subject)),
                    Turned::WrongKind { .. } => (1044, "42000", format!("connection \"{connection}\" is not a MySQL connection; connect to it with its own client")),
                    Turned::Denied { reason, .. } => (1044, "42000", reason),
                };
                return refuse(&mut client, seq, code, sqlstate, &message).await;
            }
        };
        if UNSAFE_CHARSETS.contains(&resp.charset) {
            return refuse(
                &mut client,
                seq,
                1115,
                "42000",
                "your client's character set (big5, sjis, cp932, gbk or gb18030) can hide a quote from the gateway, so it is not supported; connect with utf8mb4",
            )
            .await;
        }
        let client_caps = resp.capabilities & caps;
        let target = match target::connect(
            &conn,
            client_caps,
            resp.charset,
            self.settings.max_packet_len,
        )
        .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(connection = %conn.name, error = %e, "target login failed");
                return refuse(
                    &mut client,
                    seq,
                    ER_TARGET_UNREACHABLE,
                    "08S01",
                    &format!("gatehouse could not open connection \"{}\": {e}", conn.name),
                )
                .await;
            }
        };
        let program = resp
            .attributes
            .iter()
            .find(|(k, _)| k == "program_name")
            .map(|(_, v)| v.clone());
        let detail = serde_json::json!({
            "application_name": program,
            "target_version": target.server_version,
            "thread_id": gateway_id,
            "target_tls": target.tls,
        });
        let start = SessionStart::database(
            client_addr.clone(),
            tls,
            user.clone(),
            detail.as_object().cloned().unwrap_or_default(),
        );
        let guard = match pipeline
            .start_session(identity.clone(), &conn.name, "mysql", grant, start)
            .await
        {
            Ok(g) => g,
            Err(e) => {
                return refuse(
                    &mut client,
                    seq,
                    1105,
                    "HY000",
                    &format!("gatehouse could not record this session in the audit trail, so it is refused: {e}"),
                )
                .await
            }
        };
        let held_cancel = Arc::new(tokio::sync::Notify::new());
        let holding = Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.kills.insert(
            gateway_id,
            KillTarget {
                subject: identity.subject.clone(),
                connection: conn.name.clone(),
                target_id: target.connection_id,
                held: held_cancel.clone(),
                holding: holding.clone(),
            },
        );
        let mut out = Vec::new();
        encode_packet(
            &mut out,
            &mut seq,
            &packets::ok(&packets::Ok {
                status: status::AUTOCOMMIT,
                ..Default::default()
            }),
        );
        if let Err(e) = client.write_all(&out).await {
            self.kills.remove(gateway_id);
            return Err(e.into());
        }
        // The session ends at its deadline (the token's expiry or the
        // grant's end), with an ERR packet, even while the client is idle;
        // a statement waiting for approval is withdrawn then.
        let deadline = guard.deadline.clone();
        let ctx = Arc::new(SessionContext {
            scope: guard.scope.clone(),
            database: conn.database_name().to_string(),
            pipeline: pipeline.clone(),
            settings: self.settings.clone(),
            held_cancel,
            holding,
            kills: self.kills.clone(),
            server: gatehouse_core::classify::syntax::MySqlServer::from_greeting(
                &target.server_version,
            ),
            deadline,
        });
        let deadline = ctx.deadline.clone();
        hs.established();
        let mut stats = proxy::run(
            ctx.clone(),
            client,
            leftover,
            target.stream,
            target.leftover,
            Some(deadline.message_when_reached()),
        )
        .await;
        stats.ended_by = deadline.ended();
        self.kills.remove(gateway_id);
        guard.end(stats, Default::default()).await;
        Ok(())
    }
}

impl ProtocolServer for MySqlAdapter {
    fn protocol(&self) -> &'static str {
        "mysql"
    }

    fn connection(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        mut handshake: serve::Handshake,
    ) -> ConnectionFuture {
        Box::pin(async move {
            if let Err(e) = self.run(tcp, peer, &mut handshake).await {
                tracing::debug!(%peer, error = %e, "mysql session ended with an error");
            }
        })
    }

    /// MySQL's own answer when it has no slot: ERR 1040 in place of the
    /// greeting.
    fn refuse_busy(&self, mut tcp: TcpStream) -> ConnectionFuture {
        Box::pin(async move {
            let _ = refuse(
                &mut tcp,
                0,
                1040,
                "08004",
                "Too many connections (gatehouse's connection limit)",
            )
            .await;
        })
    }
}

/// The error number for "the gateway could not log in to the target".
/// Client-range numbers (2003 `CR_CONN_HOST_ERROR`) make MariaDB's client
/// report a malformed packet, so a server-range one is used.
const ER_TARGET_UNREACHABLE: u16 = 1105;

/// The plugin whose response is the password itself: the caller's token.
pub const CLEAR_PASSWORD: &str = "mysql_clear_password";

fn trim_nul(b: &[u8]) -> &[u8] {
    b.strip_suffix(&[0]).unwrap_or(b)
}

/// Send an ERR packet and end the connection.
async fn refuse<W: AsyncWrite + Unpin + ?Sized>(
    client: &mut W,
    mut seq: u8,
    code: u16,
    sqlstate: &str,
    message: &str,
) -> Result<(), BoxError> {
    let mut out = Vec::new();
    encode_packet(&mut out, &mut seq, &packets::err(code, sqlstate, message));
    let _ = client.write_all(&out).await;
    let _ = client.shutdown().await;
    Ok(())
}
