//! The SSH adapter: terminate the client's SSH, re-originate the gateway's
//! own, and run every command through the pipeline.
//!
//! `ssh -p 2222 CONNECTION@gateway` — the user name selects the connection
//! and the caller's OIDC token is the password (or the answer to the
//! keyboard-interactive prompt). The gateway logs in to the target with the
//! credential only it holds, checking the target's pinned host key, and
//! relays each session channel ([`channel`]): PTY and window changes,
//! environment, shell, exec, SFTP, signals and exit status. Exec requests
//! are commands decided before they reach the target; interactive lines are
//! recorded and checked as typed (see the README for what that can and
//! cannot guarantee); terminal output is recorded as asciicast v2 with the
//! content detectors applied ([`recording`]), and each recording's SHA-256
//! is chained into the audit trail.

pub mod channel;
pub mod download;
pub mod hostkey;
mod line;
pub use gatehouse_core::recording;
pub mod sftp;
pub mod target;

use gatehouse_core::deadline::SessionDeadline;
use gatehouse_core::events::{Event, Forward, SessionStart};
use gatehouse_core::lifecycle::CommandScope;
use gatehouse_core::pipeline::{Pipeline, SessionStats};
use gatehouse_core::policy::{ConnectionConfig, ConnectionKind};
use gatehouse_core::serve::{ConnectionFuture, Handshake, ProtocolServer};
use gatehouse_core::session::{Arrival, SessionGuard, Turned};
use russh::keys::PrivateKey;
use russh::server::{self, Auth, Msg, Session};
use russh::{Channel, ChannelOpenFailure, MethodKind, MethodSet};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;

/// Settings of the SSH listener.
pub struct SshSettings {
    /// The gateway's host key (see [`hostkey::load_or_create`]).
    pub host_key: PrivateKey,
    /// Where asciicast recordings are written.
    pub recordings_dir: PathBuf,
}

/// The SSH adapter: accepts clients and runs their sessions.
pub struct SshAdapter {
    /// The shared pipeline.
    pub pipeline: Arc<Pipeline>,
    settings: SshSettings,
    config: Arc<server::Config>,
}

impl SshAdapter {
    /// Build an adapter.
    pub fn new(pipeline: Arc<Pipeline>, settings: SshSettings) -> SshAdapter {
        let config = server::Config {
            methods: MethodSet::from(&[MethodKind::Password, MethodKind::KeyboardInteractive][..]),
            auth_rejection_time: Duration::from_secs(1),
            auth_rejection_time_initial: Some(Duration::from_secs(0)),
            keys: vec![settings.host_key.clone()],
            keepalive_interval: Some(Duration::from_secs(60)),
            nodelay: true,
            ..Default::default()
        };
        SshAdapter {
            pipeline,
            settings,
            config: Arc::new(config),
        }
    }

    async fn run(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, handshake: Handshake) {
        let live: Arc<Mutex<Option<Arc<Live>>>> = Arc::default();
        let handler = ClientHandler {
            adapter: self.clone(),
            peer,
            live: live.clone(),
            handshake: Some(handshake),
        };
        let reason = match server::run_stream(self.config.clone(), tcp, handler).await {
            Ok(session) => match session.await {
                Ok(()) => "the client disconnected".to_string(),
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "ssh session ended with an error");
                    format!("the connection failed: {e}")
                }
            },
            Err(e) => {
                tracing::debug!(%peer, error = %e, "ssh handshake failed");
                format!("the handshake failed: {e}")
            }
        };
        let ended = live.lock().ok().and_then(|mut l| l.take());
        if let Some(live) = ended {
            if let Some(task) = live.deadline_task.lock().ok().and_then(|mut t| t.take()) {
                task.abort();
            }
            live.end(&reason).await;
        }
    }
}

/// One authenticated client connection, shared by its channels.
pub struct Live {
    /// The connection (`None` when access was denied).
    pub connection: Option<ConnectionConfig>,
    /// Why access was denied, shown on every channel.
    pub denied: Option<String>,
    /// The shared pipeline.
    pub pipeline: Arc<Pipeline>,
    /// What every command of the session shares, for core's lifecycle.
    pub scope: CommandScope,
    /// Records the session's end; `None` for a session refused access.
    guard: Mutex<Option<SessionGuard>>,
    /// Where recordings go.
    pub recordings_dir: PathBuf,
    /// When the session must end (token expiry or grant end); every
    /// channel waits on it, and so does the connection.
    pub deadline: SessionDeadline,
    /// The task closing the connection at the deadline; stopped when the
    /// connection ends first.
    deadline_task: Mutex<Option<tokio::task::AbortHandle>>,
    target: tokio::sync::OnceCell<Result<Arc<target::Target>, String>>,
    channels: AtomicU32,
    /// Channels still relaying; the session's end waits for them.
    active: AtomicU32,
    idle: tokio::sync::Notify,
    commands: AtomicU64,
    blocked: AtomicU64,
    recordings: Mutex<Vec<serde_json::Value>>,
}

impl Live {
    /// Record an event of this session.
    pub async fn record(&self, event: Event) -> Result<u64, gatehouse_core::pipeline::RecordError> {
        self.pipeline.recorder.record(self.scope.event(event)).await
    }

    /// The logged-in target connection, opened on first use.
    pub async fn target(&self) -> Result<Arc<target::Target>, String> {
        let Some(conn) = &self.connection else {
            return Err(self.denied.clone().unwrap_or_default());
        };
        self.target
            .get_or_init(|| async {
                target::connect(conn).await.map(Arc::new).map_err(|e| {
                    tracing::warn!(connection = %conn.name, error = %e, "ssh target login failed");
                    format!("gatehouse could not open connection \"{}\": {e}", conn.name)
                })
            })
            .await
            .clone()
    }

    /// The next channel number of this session; the channel counts as
    /// active until [`Live::channel_done`].
    pub fn next_channel(&self) -> u32 {
        self.active.fetch_add(1, Ordering::SeqCst);
        self.channels.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A channel finished recording its evidence.
    pub fn channel_done(&self) {
        if self.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Count one command (and whether it was blocked); its number in the session.
    pub fn count_command(&self, blocked: bool) -> u64 {
        if blocked {
            self.count_refusal();
        }
        self.commands.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Count a command refused after it was recorded (a held command denied,
    /// expired or withdrawn), for the session's `blocked` count.
    pub fn count_refusal(&self) {
        self.blocked.fetch_add(1, Ordering::Relaxed);
    }

    /// Remember a closed recording for the session's end event.
    pub fn add_recording(&self, r: serde_json::Value) {
        if let Ok(mut v) = self.recordings.lock() {
            v.push(r);
        }
    }

    /// Wait (at most `within`) until no channel is relaying.
    async fn channels_closed(&self, within: Duration) {
        let until = tokio::time::Instant::now() + within;
        while self.active.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < until {
            let idle = self.idle.notified();
            if self.active.load(Ordering::SeqCst) == 0 {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), idle).await;
        }
    }

    /// Record the session's end; `reason` says how the connection ended
    /// (replaced by the deadline's message when the deadline ended it).
    async fn end(&self, reason: &str) {
        // Channels record their results and recordings as they close, just
        // after the connection ends: let them finish first (bounded).
        self.channels_closed(Duration::from_secs(10)).await;
        if let Some(Ok(t)) = self.target.get() {
            let _ = t
                .disconnect(russh::Disconnect::ByApplication, "session ended", "en")
                .await;
        }
        if self.denied.is_some() {
            return;
        }
        let recordings = self
            .recordings
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        let stats = SessionStats {
            commands: self.commands.load(Ordering::Relaxed),
            blocked: self.blocked.load(Ordering::Relaxed),
            end_reason: reason.to_string(),
            ended_by: self.deadline.ended(),
            ..SessionStats::default()
        };
        let mut detail = serde_json::Map::new();
        detail.insert(
            "channels".into(),
            self.channels.load(Ordering::Relaxed).into(),
        );
        detail.insert("recordings".into(), recordings.into());
        let guard = self.guard.lock().ok().and_then(|mut g| g.take());
        if let Some(guard) = guard {
            guard.end(stats, detail).await;
        }
    }
}

struct ClientHandler {
    adapter: Arc<SshAdapter>,
    peer: SocketAddr,
    live: Arc<Mutex<Option<Arc<Live>>>>,
    /// Told when the client has signed in (the listener's handshake
    /// timeout covers key exchange and sign-in, like sshd's LoginGraceTime).
    handshake: Option<Handshake>,
}

impl ClientHandler {
    fn live(&self) -> Option<Arc<Live>> {
        self.live.lock().ok().and_then(|l| l.clone())
    }

    /// Authenticate the token, authorize the connection and open the
    /// audit session. Access denials still log the user in, so every
    /// channel can tell them why in words (SSH has no other place to).
    async fn login(&mut self, user: &str, token: &str) -> Result<Auth, russh::Error> {
        if self.live().is_some() {
            return Ok(Auth::Accept);
        }
        let pipeline = self.adapter.pipeline.clone();
        let client_addr = self.peer.to_string();
        let connection = user.to_string();
        let arrival = Arrival {
            token: token.trim(),
            connection: &connection,
            user,
            client_addr: &client_addr,
            protocol: "ssh",
            serves: |kind| kind == ConnectionKind::Ssh,
            require_subject_match: false,
        };
        // A caller refused the connection is still let in, so every channel
        // can tell them why; such a session runs nothing and records
        // nothing (its refusal is recorded as access.denied).
        let (guard, conn, refused) = match pipeline.enter(&arrival).await {
            Ok(entry) => {
                let start = SessionStart {
                    client_addr: client_addr.clone(),
                    user: Some(user.to_string()),
                    ..SessionStart::default()
                };
                let started = pipeline
                    .start_session(entry.identity, &connection, "ssh", entry.grant, start)
                    .await;
                match started {
                    Ok(guard) => (Some(guard), Some(entry.connection), None),
                    Err(e) => {
                        tracing::error!(error = %e, "could not record ssh session start; refusing the login");
                        return Ok(Auth::reject());
                    }
                }
            }
            Err(Turned::Unauthenticated(reason)) => {
                tracing::info!(peer = %self.peer, %reason, "ssh token refused");
                return Ok(Auth::reject());
            }
            Err(Turned::WrongKind { identity }) => (None, None, Some((identity, format!(
                "connection \"{connection}\" is not an SSH connection; use its own client (psql for PostgreSQL)"
            )))),
            Err(Turned::Denied { identity, reason }) => (None, None, Some((identity, reason))),
            Err(Turned::WrongUser { identity }) => {
                let why = format!("the token is for \"{}\"", identity.subject);
                (None, None, Some((identity, why)))
            }
        };
        let (scope, deadline, denied) = match (&guard, refused) {
            (Some(g), _) => (g.scope.clone(), g.deadline.clone(), None),
            (None, Some((identity, why))) => {
                // Refused, the caller still stays no longer than their token.
                let deadline = pipeline.session_deadline(&identity, None);
                let scope = CommandScope {
                    session_id: gatehouse_core::pipeline::new_session_id(),
                    identity: *identity,
                    connection: connection.clone(),
                    protocol: "ssh",
                    deadline: Some(deadline.clone()),
                };
                (scope, deadline, Some(why))
            }
            (None, None) => return Ok(Auth::reject()),
        };
        let live = Arc::new(Live {
            scope,
            guard: Mutex::new(guard),
            connection: conn,
            denied,
            pipeline,
            recordings_dir: self.adapter.settings.recordings_dir.clone(),
            deadline,
            deadline_task: Mutex::new(None),
            target: tokio::sync::OnceCell::new(),
            channels: AtomicU32::new(0),
            active: AtomicU32::new(0),
            idle: tokio::sync::Notify::new(),
            commands: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
            recordings: Mutex::new(Vec::new()),
        });
        if let Ok(mut l) = self.live.lock() {
            *l = Some(live);
        }
        if let Some(mut h) = self.handshake.take() {
            h.established();
        }
        Ok(Auth::Accept)
    }
}

impl ProtocolServer for SshAdapter {
    fn protocol(&self) -> &'static str {
        "ssh"
    }

    fn connection(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        handshake: Handshake,
    ) -> ConnectionFuture {
        Box::pin(self.run(tcp, peer, handshake))
    }
}

/// Contains "password" so tools that answer password prompts (sshpass) answer it too.
const TOKEN_PROMPT: &str = "Gatehouse token (your password here): ";

impl server::Handler for ClientHandler {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        self.login(user, password).await
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let answer = response.and_then(|mut r| r.next());
        match answer {
            None => Ok(Auth::Partial {
                name: Cow::Borrowed("Gatehouse"),
                instructions: Cow::Borrowed(
                    "Paste your Gatehouse access token (from your identity provider, or `gatehouse token issue` with the dev issuer).",
                ),
                prompts: Cow::Owned(vec![(Cow::Borrowed(TOKEN_PROMPT), false)]),
            }),
            Some(bytes) => {
                let token = String::from_utf8_lossy(&bytes).into_owned();
                self.login(user, &token).await
            }
        }
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        // At the session's deadline every channel tells its user why and
        // closes, recording its evidence; then the connection is closed.
        if let Some(live) = self.live() {
            let handle = session.handle();
            let deadline = live.deadline.clone();
            let task_live = live.clone();
            let task = tokio::spawn(async move {
                let live = task_live;
                let end = deadline.reached().await;
                live.channels_closed(Duration::from_secs(5)).await;
                // A client whose channels all closed leaves on its own; the
                // grace also lets what the channels last sent (the reason on
                // stderr) reach it before the disconnect does.
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = handle
                    .disconnect(
                        russh::Disconnect::ByApplication,
                        format!("gatehouse: {}", end.message()),
                        "en".into(),
                    )
                    .await;
            });
            if let Ok(mut t) = live.deadline_task.lock() {
                *t = Some(task.abort_handle());
            }
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(live) = self.live() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        reply.accept().await;
        let handle = session.handle();
        tokio::spawn(channel::run(live, channel, handle));
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(live) = self.live() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let allowed = live
            .connection
            .as_ref()
            .is_some_and(|c| c.allow_port_forwarding);
        let _ = live
            .record(Event::SshForward(Forward {
                kind: "direct-tcpip".into(),
                to: Some(format!("{host_to_connect}:{port_to_connect}")),
                allowed,
            }))
            .await;
        if !allowed {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let target = match live.target().await {
            Ok(t) => t,
            Err(_) => {
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
                return Ok(());
            }
        };
        match target
            .channel_open_direct_tcpip(
                host_to_connect,
                port_to_connect,
                originator_address,
                originator_port,
            )
            .await
        {
            Ok(far) => {
                reply.accept().await;
                tokio::spawn(async move {
                    let mut near = channel.into_stream();
                    let mut far = far.into_stream();
                    let _ = tokio::io::copy_bidirectional(&mut near, &mut far).await;
                });
            }
            Err(_) => reply.reject(ChannelOpenFailure::ConnectFailed).await,
        }
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if let Some(live) = self.live() {
            let _ = live
                .record(Event::SshForward(Forward {
                    kind: "tcpip-forward".into(),
                    to: Some(format!("{address}:{port}")),
                    allowed: false,
                }))
                .await;
        }
        Ok(false)
    }

    async fn agent_request(
        &mut self,
        _channel: russh::ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if let Some(live) = self.live() {
            let _ = live
                .record(Event::SshForward(Forward {
                    kind: "agent".into(),
                    to: None,
                    allowed: false,
                }))
                .await;
        }
        Ok(false)
    }
}
