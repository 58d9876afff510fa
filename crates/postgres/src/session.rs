//! One client connection: TLS, start-up, the token as the password,
//! authorization, and the gateway's own login to the target.

use crate::cancel::{CancelRegistry, CancelTarget};
use crate::codec::backend::{self, Notice};
use crate::codec::frontend::{self, StartupPacket};
use crate::io::FrameReader;
use crate::proxy;
use crate::target;
use bytes::BytesMut;
use gatehouse_core::events::SessionStart;
use gatehouse_core::lifecycle::CommandScope;
use gatehouse_core::pipeline::Pipeline;
use gatehouse_core::policy::ConnectionKind;
use gatehouse_core::serve::{ConnectionFuture, Handshake, ProtocolServer};
use gatehouse_core::session::{DatabaseClient, Entry, Turned};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// Settings of the PostgreSQL listener.
#[derive(Debug, Clone)]
pub struct AdapterSettings {
    /// Accept tokens without TLS from loopback clients (the demo and tests).
    pub allow_plaintext_loopback: bool,
    /// Refuse a token whose subject (or email) differs from the start-up user.
    pub require_subject_match: bool,
    /// Largest message accepted from a client or target.
    pub max_message_len: usize,
    /// Masked result rows kept in each command's audit event (0: none).
    pub result_capture_rows: usize,
    /// When set, the original values behind masked cells of those sample
    /// rows are sealed (encrypted to an investigator's public key) into the
    /// result's audit event. The gateway cannot open them.
    pub seal_originals: Option<OriginalsSealer>,
}

/// Encrypts the originals of masked sample values to an investigator's key
/// (see `gatehouse-seal`); returns the sealed text.
#[derive(Clone)]
pub struct OriginalsSealer(pub std::sync::Arc<SealFn>);

/// Plaintext in, sealed text out.
pub type SealFn = dyn Fn(&[u8]) -> String + Send + Sync;

impl std::fmt::Debug for OriginalsSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OriginalsSealer")
    }
}

impl Default for AdapterSettings {
    fn default() -> Self {
        AdapterSettings {
            allow_plaintext_loopback: false,
            require_subject_match: false,
            max_message_len: crate::codec::frame::DEFAULT_MAX_MESSAGE_LEN,
            result_capture_rows: 0,
            seal_originals: None,
        }
    }
}

/// A byte stream to the client, plain or TLS.
pub trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ClientIo for T {}

/// The PostgreSQL adapter: accepts clients and runs their sessions.
pub struct PostgresAdapter {
    /// The shared pipeline.
    pub pipeline: Arc<Pipeline>,
    /// TLS for clients; `None` only where plaintext is allowed.
    pub tls: Option<TlsAcceptor>,
    /// Listener settings.
    pub settings: AdapterSettings,
    cancels: CancelRegistry,
}

/// What a session knows once the caller is authenticated and authorized.
pub struct SessionContext {
    /// The session as its commands share it: id, caller, connection and
    /// deadline (core's lifecycle reads it too).
    pub scope: CommandScope,
    /// The shared pipeline.
    pub pipeline: Arc<Pipeline>,
    /// Listener settings.
    pub settings: AdapterSettings,
    /// Woken when the client cancels, to withdraw a held statement.
    pub held_cancel: Arc<tokio::sync::Notify>,
    /// How the target lexes this session's text, as it reports it.
    pub syntax: crate::syntax::SessionSyntax,
    /// The transaction status of the target's last ReadyForQuery (`I`
    /// idle, `T` in a transaction block, `E` in a failed one).
    pub transaction: std::sync::atomic::AtomicU8,
}

impl PostgresAdapter {
    /// Build an adapter.
    pub fn new(
        pipeline: Arc<Pipeline>,
        tls: Option<TlsAcceptor>,
        settings: AdapterSettings,
    ) -> Self {
        PostgresAdapter {
            pipeline,
            tls,
            settings,
            cancels: CancelRegistry::default(),
        }
    }

    async fn handle(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, mut hs: Handshake) {
        if let Err(e) = self.run(tcp, peer, &mut hs).await {
            tracing::debug!(%peer, error = %e, "session ended with an error");
        }
    }

    async fn run(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        hs: &mut Handshake,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        // Start-up: SSLRequest/GSSENCRequest may come first.
        let mut reader = FrameReader::new(tcp, BytesMut::new(), self.settings.max_message_len);
        let packet = loop {
            let Some(frame) = crate::io::next_startup(&mut reader).await? else {
                return Ok(());
            };
            let packet = match frontend::parse_startup(&frame.body) {
                Ok(p) => p,
                Err(e) => {
                    let (mut tcp, _) = reader.into_parts();
                    return fatal(&mut tcp, "08P01", &format!("invalid start-up packet: {e}"))
                        .await;
                }
            };
            match packet {
                StartupPacket::SslRequest => {
                    let (mut tcp, rest) = reader.into_parts();
                    if !rest.is_empty() {
                        return fatal(&mut tcp, "08P01", "data received before the TLS handshake")
                            .await;
                    }
                    let (client, tls): (Box<dyn ClientIo>, bool) = match &self.tls {
                        Some(acceptor) => {
                            tcp.write_all(b"S").await?;
                            (Box::new(acceptor.accept(tcp).await?), true)
                        }
                        None => {
                            tcp.write_all(b"N").await?;
                            (Box::new(tcp), false)
                        }
                    };
                    return self.after_tls(client, tls, peer, hs).await;
                }
                StartupPacket::GssEncRequest => {
                    let (mut tcp, rest) = reader.into_parts();
                    tcp.write_all(b"N").await?;
                    reader = FrameReader::new(tcp, rest, self.settings.max_message_len);
                }
                other => break other,
            }
        };
        let (tcp, rest) = reader.into_parts();
        // Plaintext: the start-up came without an SSLRequest.
        self.startup(Box::new(tcp), rest, packet, false, peer, hs)
            .await
    }

    async fn after_tls(
        &self,
        client: Box<dyn ClientIo>,
        tls: bool,
        peer: SocketAddr,
        hs: &mut Handshake,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut reader = FrameReader::new(client, BytesMut::new(), self.settings.max_message_len);
        let Some(frame) = crate::io::next_startup(&mut reader).await? else {
            return Ok(());
        };
        let (mut client, rest) = reader.into_parts();
        match frontend::parse_startup(&frame.body) {
            Ok(packet) => self.startup(client, rest, packet, tls, peer, hs).await,
            Err(e) => {
                fatal(
                    &mut client,
                    "08P01",
                    &format!("invalid start-up packet: {e}"),
                )
                .await
            }
        }
    }

    async fn startup(
        &self,
        mut client: Box<dyn ClientIo>,
        rest: BytesMut,
        packet: StartupPacket,
        tls: bool,
        peer: SocketAddr,
        hs: &mut Handshake,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let params = match packet {
            StartupPacket::Cancel { pid, secret } => {
                if let Some(t) = self.cancels.lookup(pid, secret) {
                    t.held.notify_waiters();
                    let _ = target::cancel(&t.conn, t.key).await;
                }
                return Ok(());
            }
            StartupPacket::Startup { version, params } if version >> 16 == 3 => params,
            StartupPacket::Startup { version, .. } => {
                return fatal(
                    &mut client,
                    "0A000",
                    &format!(
                        "unsupported protocol version {}.{}",
                        version >> 16,
                        version & 0xffff
                    ),
                )
                .await
            }
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                return fatal(&mut client, "08P01", "encryption requested twice").await
            }
        };
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let user = param("user").unwrap_or_default();
        let connection = param("database").unwrap_or_else(|| user.clone());
        if param("replication").is_some_and(|v| v != "false" && v != "0") {
            return fatal(
                &mut client,
                "28000",
                "replication connections are not allowed through gatehouse",
            )
            .await;
        }
        let plaintext_ok = self.settings.allow_plaintext_loopback && peer.ip().is_loopback();
        if !tls && !plaintext_ok {
            return fatal(
                &mut client,
                "28000",
                "gatehouse requires TLS because your token is sent as the password; connect with sslmode=require",
            )
            .await;
        }
        // The caller's token travels as the password.
        client.write_all(&backend::auth_cleartext()).await?;
        let mut reader = FrameReader::new(client, rest, 64 * 1024);
        let frame = reader.next().await?;
        let (mut client, rest) = reader.into_parts();
        let token = match frame {
            Some(f) if f.tag == b'p' => match frontend::parse_password(&f.body) {
                Ok(t) => t.to_string(),
                Err(_) => return fatal(&mut client, "08P01", "malformed password message").await,
            },
            Some(_) => return fatal(&mut client, "08P01", "expected a password message").await,
            None => return Ok(()),
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
        let entry = pipeline
            .enter_database(caller, ConnectionKind::Postgres)
            .await;
        drop(token);
        let Entry {
            identity,
            connection: conn,
            grant,
        } = match entry {
            Ok(entry) => entry,
            Err(turned) => {
                let (sqlstate, message) = match turned {
                    Turned::Unauthenticated(reason) => {
                        ("28P01", format!("authentication failed: {reason}"))
                    }
                    Turned::WrongUser { identity } => ("28000", format!("the token is for \"{s}\" but you connected as user \"{user}\"; connect with user={s}", s = identity.subject)),
                    Turned::WrongKind { .. } => ("28000", format!("connection \"{connection}\" is not a PostgreSQL connection; connect to it with its own client")),
                    Turned::Denied { reason, .. } => ("28000", reason),
                };
                return fatal(&mut client, sqlstate, &message).await;
            }
        };
        let target = match target::connect(&conn, &params).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(connection = %conn.name, error = %e, "target login failed");
                return fatal(
                    &mut client,
                    "08001",
                    &format!("gatehouse could not open connection \"{}\": {e}", conn.name),
                )
                .await;
            }
        };
        let syntax = match crate::syntax::SessionSyntax::from_login(&target.parameter_status) {
            Ok(s) => s,
            Err(why) => {
                pipeline
                    .record_access_denied(&identity, &conn.name, &client_addr, "postgres", &why)
                    .await;
                return fatal(&mut client, "22023", &why).await;
            }
        };
        let detail = [(
            "application_name".to_string(),
            param("application_name").into(),
        )];
        let start = SessionStart::database(
            client_addr.clone(),
            tls,
            user.clone(),
            detail.into_iter().collect(),
        );
        let guard = match pipeline
            .start_session(identity.clone(), &conn.name, "postgres", grant, start)
            .await
        {
            Ok(g) => g,
            Err(e) => return fatal(&mut client, "58000", &format!("gatehouse could not record this session in the audit trail, so it is refused: {e}")).await,
        };
        // Hand the client our own cancel key, mapped to the target's.
        let held_cancel = Arc::new(tokio::sync::Notify::new());
        let gateway_key = target.backend_key.map(|key| {
            self.cancels.register(CancelTarget {
                conn: conn.clone(),
                key,
                held: held_cancel.clone(),
            })
        });
        let mut hello = backend::auth_ok();
        for ps in &target.parameter_status {
            hello.extend_from_slice(ps);
        }
        if let Some((pid, secret)) = gateway_key {
            hello.extend_from_slice(&backend::backend_key(pid, secret));
        }
        hello.extend_from_slice(&backend::ready_for_query(b'I'));
        client.write_all(&hello).await?;
        // The session ends at its deadline (the token's expiry or the
        // grant's end) even while the client is idle: the proxy sends a
        // FATAL with the reason and withdraws a held statement.
        let deadline = guard.deadline.clone();
        let ctx = Arc::new(SessionContext {
            scope: guard.scope.clone(),
            pipeline: pipeline.clone(),
            settings: self.settings.clone(),
            held_cancel,
            syntax,
            transaction: std::sync::atomic::AtomicU8::new(b'I'),
        });
        hs.established();
        let mut stats = proxy::run(
            ctx.clone(),
            client,
            rest,
            target.stream,
            target.leftover,
            Some(deadline.message_when_reached()),
        )
        .await;
        stats.ended_by = deadline.ended();
        if let Some((pid, _)) = gateway_key {
            self.cancels.remove(pid);
        }
        guard.end(stats, Default::default()).await;
        Ok(())
    }
}

/// Send a FATAL ErrorResponse and end the connection.
async fn fatal<W: AsyncWrite + Unpin + ?Sized>(
    client: &mut W,
    sqlstate: &str,
    message: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let msg = Notice::new("FATAL", sqlstate, message, None).encode(b'E');
    let _ = client.write_all(&msg).await;
    let _ = client.shutdown().await;
    Ok(())
}

impl ProtocolServer for PostgresAdapter {
    fn protocol(&self) -> &'static str {
        "postgres"
    }

    fn connection(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        handshake: Handshake,
    ) -> ConnectionFuture {
        Box::pin(self.handle(tcp, peer, handshake))
    }

    /// PostgreSQL's own answer when it has no slot: FATAL 53300.
    fn refuse_busy(&self, mut tcp: TcpStream) -> ConnectionFuture {
        Box::pin(async move {
            let _ = fatal(
                &mut tcp,
                "53300",
                "sorry, too many clients already (gatehouse's connection limit)",
            )
            .await;
        })
    }
}
