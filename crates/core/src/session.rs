//! The session lifecycle, written once for every protocol.
//!
//! ```text
//!   adapter: handshake, read the token ─▶ Pipeline::enter
//!       authenticate (auth.failure recorded, without the token)
//!       the user name names the token's subject (when required)
//!       authorize: the connection's groups, else an access grant
//!       the connection is of the listener's kind
//!       (every refusal after authentication is recorded: access.denied)
//!   adapter: reach the target ─▶ Pipeline::start_session
//!       session.start recorded (a session the trail cannot hold is refused)
//!       ─▶ a SessionGuard: the session's CommandScope and deadline
//!   … commands (see crate::lifecycle) …
//!   SessionGuard::end ─▶ session.end, one schema for every protocol; a
//!       guard dropped without it (a task that stopped early) records it too
//! ```

use crate::approval::GrantLease;
use crate::deadline::SessionDeadline;
use crate::events::{Event, SessionStart};
use crate::identity::Identity;
use crate::lifecycle::CommandScope;
use crate::pipeline::{new_session_id, AuthError, Pipeline, RecordError, SessionStats};
use crate::policy::{ConnectionConfig, ConnectionKind};
use std::sync::Arc;
use std::time::Instant;

/// A caller asking for a session, as the adapter read them off its
/// handshake.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    /// Their bearer token (never recorded).
    pub token: &'a str,
    /// The connection they asked for.
    pub connection: &'a str,
    /// The user name they gave, when the protocol has one (else "").
    pub user: &'a str,
    /// Their address.
    pub client_addr: &'a str,
    /// `postgres`, `mysql`, `ssh`, `http`.
    pub protocol: &'static str,
    /// The kinds of connection this listener serves.
    pub serves: fn(ConnectionKind) -> bool,
    /// The user name must name the token's subject (or its email).
    pub require_subject_match: bool,
}

/// Why a caller does not get a session; adapters word it in their protocol.
/// Past authentication the refusal names who was refused (SSH keeps the
/// caller signed in to tell them why on every channel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turned {
    /// The token did not validate (the reason is safe to show).
    Unauthenticated(AuthError),
    /// The user name does not name the token's subject.
    WrongUser {
        /// Who the token is for.
        identity: Box<Identity>,
    },
    /// The connection is of a kind another listener serves.
    WrongKind {
        /// The caller.
        identity: Box<Identity>,
    },
    /// Policy refuses the caller this connection.
    Denied {
        /// The caller.
        identity: Box<Identity>,
        /// Why, for the caller.
        reason: String,
    },
}

/// A caller let onto a connection.
pub struct Entry {
    /// The caller as policy sees them on this connection (a grant's
    /// holder acts in the grant's groups only).
    pub identity: Identity,
    /// The connection.
    pub connection: ConnectionConfig,
    /// The access grant that let them in, when their groups would not.
    pub grant: Option<GrantLease>,
}

/// A live session: what its commands share, and the promise that its end
/// is recorded however it ends.
pub struct SessionGuard {
    /// What every command of the session shares (for
    /// [`Pipeline::admit`]).
    pub scope: CommandScope,
    /// When the session must end (token expiry, grant end).
    pub deadline: SessionDeadline,
    /// When it started.
    pub started: Instant,
    pipeline: Arc<Pipeline>,
    ended: bool,
}

/// A database listener's client (PostgreSQL, MySQL): its token, the
/// connection and user name it gave, and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseClient<'a> {
    /// The token (never recorded).
    pub token: &'a str,
    /// The connection asked for (the database name).
    pub connection: &'a str,
    /// The user name given.
    pub user: &'a str,
    /// The client's address.
    pub peer: std::net::SocketAddr,
    /// The user name must name the token's subject.
    pub require_subject_match: bool,
}

impl Pipeline {
    /// [`Self::enter`] for a database listener, which serves connections
    /// of its own kind only (`Postgres` or `Mysql`).
    pub async fn enter_database(
        &self,
        client: DatabaseClient<'_>,
        kind: ConnectionKind,
    ) -> Result<Entry, Turned> {
        let (protocol, serves): (&'static str, fn(ConnectionKind) -> bool) = match kind {
            ConnectionKind::Mysql => ("mysql", |k| k == ConnectionKind::Mysql),
            ConnectionKind::Postgres => ("postgres", |k| k == ConnectionKind::Postgres),
            // Not a database listener's kind: it serves nothing.
            _ => ("unknown", |_| false),
        };
        let client_addr = client.peer.to_string();
        self.enter(&Arrival {
            token: client.token,
            connection: client.connection,
            user: client.user,
            client_addr: &client_addr,
            protocol,
            serves,
            require_subject_match: client.require_subject_match,
        })
        .await
    }

    /// Let a caller onto a connection, or say why not: authenticate,
    /// match the user name, authorize, check the connection's kind. Every
    /// refusal is recorded (`auth.failure` or `access.denied`).
    pub async fn enter(&self, arrival: &Arrival<'_>) -> Result<Entry, Turned> {
        let identity = self
            .authenticate(
                arrival.token,
                arrival.connection,
                arrival.user,
                arrival.client_addr,
                arrival.protocol,
            )
            .await
            .map_err(Turned::Unauthenticated)?;
        enum Why {
            WrongUser,
            WrongKind,
            Denied(String),
        }
        let user = arrival.user;
        let why = if arrival.require_subject_match
            && identity.subject != user
            && identity.email.as_deref() != Some(user)
        {
            Why::WrongUser
        } else {
            match self.authorize(&identity, arrival.connection) {
                Ok(a) if (arrival.serves)(a.connection.kind) => {
                    return Ok(Entry {
                        identity: a.acting(&identity),
                        connection: a.connection.clone(),
                        grant: a.grant,
                    })
                }
                Ok(_) => Why::WrongKind,
                Err(denied) => Why::Denied(denied.to_string()),
            }
        };
        let recorded = match &why {
            Why::WrongUser => format!(
                "the token is for \"{}\" but the client connected as user \"{user}\"",
                identity.subject
            ),
            Why::WrongKind => "the connection is of another kind".into(),
            Why::Denied(reason) => reason.clone(),
        };
        self.record_access_denied(
            &identity,
            arrival.connection,
            arrival.client_addr,
            arrival.protocol,
            &recorded,
        )
        .await;
        let identity = Box::new(identity);
        Err(match why {
            Why::WrongUser => Turned::WrongUser { identity },
            Why::WrongKind => Turned::WrongKind { identity },
            Why::Denied(reason) => Turned::Denied { identity, reason },
        })
    }

    /// Start a session of `identity` on `connection`: record its
    /// `session.start` (`start` gives the protocol's facts; the protocol,
    /// identity and grant are filled in here) and return the guard that
    /// records its end. `Err` (the recorder's) means the session must be
    /// refused: the trail could not hold it.
    pub async fn start_session(
        self: &Arc<Self>,
        identity: Identity,
        connection: &str,
        protocol: &'static str,
        grant: Option<GrantLease>,
        mut start: SessionStart,
    ) -> Result<SessionGuard, RecordError> {
        start.protocol = protocol.into();
        start.identity = identity.clone();
        start.grant_id = grant.as_ref().map(|g| g.id);
        let deadline = self.session_deadline(&identity, grant);
        let scope = CommandScope {
            session_id: new_session_id(),
            identity,
            connection: connection.to_string(),
            protocol,
            deadline: Some(deadline.clone()),
        };
        self.recorder
            .record(scope.event(Event::SessionStart(start)))
            .await?;
        Ok(SessionGuard {
            scope,
            deadline,
            started: Instant::now(),
            pipeline: self.clone(),
            ended: false,
        })
    }
}

impl SessionGuard {
    /// The session's id.
    pub fn id(&self) -> &str {
        &self.scope.session_id
    }

    /// Record the session's end with its counters (`stats.ended_by` is
    /// filled from the deadline when it ended the session) and
    /// protocol facts in `detail`.
    pub async fn end(
        mut self,
        mut stats: SessionStats,
        detail: serde_json::Map<String, serde_json::Value>,
    ) {
        self.ended = true;
        if stats.ended_by.is_none() {
            stats.ended_by = self.deadline.ended();
        }
        // As a task of its own: the end is recorded once, whole, even if
        // this future is dropped meanwhile.
        let (pipeline, scope, started) = (self.pipeline.clone(), self.scope.clone(), self.started);
        let done = self
            .pipeline
            .background
            .spawn(async move { pipeline.end_session(&scope, started, &stats, detail).await });
        let _ = done.await;
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // The adapter's task stopped without ending the session (an early
        // return, a panic): the trail still gets its end.
        let (pipeline, scope, started) = (self.pipeline.clone(), self.scope.clone(), self.started);
        let ended_by = self.deadline.ended();
        if tokio::runtime::Handle::try_current().is_ok() {
            self.pipeline.background.spawn(async move {
                let stats = SessionStats {
                    end_reason: "the session's task stopped".into(),
                    ended_by,
                    ..SessionStats::default()
                };
                pipeline
                    .end_session(&scope, started, &stats, Default::default())
                    .await;
            });
        }
    }
}
