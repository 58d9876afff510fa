//! HTTP sessions: stateless requests grouped by identity and connection
//! over time, so the audit trail reads like the other adapters' (a start,
//! commands, an end with counters) and the console lists them the same way.

use gatehouse_core::deadline::SessionDeadline;
use gatehouse_core::events::SessionStart;
use gatehouse_core::lifecycle::CommandScope;
use gatehouse_core::pipeline::{Pipeline, SessionStats};
use gatehouse_core::Identity;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One identity's use of one connection, from its first request until it
/// has been idle for the configured time.
pub struct HttpSession {
    /// The session id recorded on every event.
    pub id: String,
    /// Who.
    pub identity: Identity,
    /// Which connection.
    pub connection: String,
    started: Instant,
    last_seen: Mutex<Instant>,
    next_command: AtomicU64,
    stats: Mutex<SessionStats>,
    /// Requests in flight (streams, upgrades): a busy session is never idle.
    in_flight: AtomicU64,
}

impl HttpSession {
    /// What a command of this session shares with the others, for core's
    /// lifecycle. Each request is signed in on its own token, so its
    /// command carries the request's identity (the requester approvers
    /// see) and `deadline`, the request's token expiry or grant end;
    /// `None` uses the session's first identity (its start and end).
    pub fn scope(&self, request: Option<(&Identity, &SessionDeadline)>) -> CommandScope {
        CommandScope {
            session_id: self.id.clone(),
            identity: request.map_or_else(|| self.identity.clone(), |(i, _)| i.clone()),
            connection: self.connection.clone(),
            protocol: "http",
            deadline: request.map(|(_, d)| d.clone()),
        }
    }

    /// The next command id in this session.
    pub fn next_command(&self) -> u64 {
        self.next_command.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Count a finished request.
    pub fn count(&self, from_client: u64, to_client: u64, blocked: bool) {
        let mut s = self.stats.lock();
        s.commands += 1;
        s.bytes_from_client += from_client;
        s.bytes_to_client += to_client;
        if blocked {
            s.blocked += 1;
        }
    }

    /// Requests (and streams) of this session running now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Mark a request (or stream) as running; the guard ends it.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }
}

/// A request in flight; dropping it marks the session's last activity.
pub struct Busy(Arc<HttpSession>);

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.last_seen.lock() = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

type Key = (String, String, String);

/// The live HTTP sessions of a gateway.
pub struct HttpSessions {
    pipeline: Arc<Pipeline>,
    idle: Duration,
    live: tokio::sync::Mutex<HashMap<Key, Arc<HttpSession>>>,
}

/// What a new session's start event says about the caller.
pub struct Arrival<'a> {
    /// Peer address.
    pub client_addr: &'a str,
    /// The access grant that admitted the caller, if any.
    pub grant_id: Option<u64>,
    /// The client's `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// The connection's type (`openai`, `kubernetes`, `http`).
    pub connection_type: &'a str,
}

impl HttpSessions {
    /// Sessions end after `idle` without requests.
    pub fn new(pipeline: Arc<Pipeline>, idle: Duration) -> HttpSessions {
        HttpSessions {
            pipeline,
            idle,
            live: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The caller's session on `connection`, starting one (and recording
    /// its start) when there is none. An error means the start could not
    /// be recorded, so the request must be refused.
    pub async fn enter(
        &self,
        identity: &Identity,
        connection: &str,
        arrival: Arrival<'_>,
    ) -> Result<Arc<HttpSession>, gatehouse_core::pipeline::RecordError> {
        let key = (
            identity.issuer.clone(),
            identity.subject.clone(),
            connection.to_string(),
        );
        let mut live = self.live.lock().await;
        if let Some(s) = live.get(&key) {
            *s.last_seen.lock() = Instant::now();
            return Ok(s.clone());
        }
        let session = Arc::new(HttpSession {
            id: gatehouse_core::pipeline::new_session_id(),
            identity: identity.clone(),
            connection: connection.to_string(),
            started: Instant::now(),
            last_seen: Mutex::new(Instant::now()),
            next_command: AtomicU64::new(0),
            stats: Mutex::new(SessionStats::default()),
            in_flight: AtomicU64::new(0),
        });
        let start = SessionStart {
            protocol: "http".into(),
            client_addr: arrival.client_addr.to_string(),
            tls: Some(true),
            user: None,
            identity: identity.clone(),
            grant_id: arrival.grant_id,
            detail: serde_json::json!({
                "connection_type": arrival.connection_type,
                "user_agent": arrival.user_agent,
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        };
        let event = session
            .scope(None)
            .event(gatehouse_core::events::Event::SessionStart(start));
        self.pipeline.recorder.record(event).await?;
        live.insert(key, session.clone());
        Ok(session)
    }

    /// End sessions idle for longer than the configured time.
    pub async fn sweep(&self) {
        let now = Instant::now();
        let ended: Vec<Arc<HttpSession>> = {
            let mut live = self.live.lock().await;
            let idle: Vec<Key> = live
                .iter()
                .filter(|(_, s)| {
                    s.in_flight.load(Ordering::Relaxed) == 0
                        && now.duration_since(*s.last_seen.lock()) >= self.idle
                })
                .map(|(k, _)| k.clone())
                .collect();
            idle.iter().filter_map(|k| live.remove(k)).collect()
        };
        for s in ended {
            self.end(&s, "idle").await;
        }
    }

    /// End every session (the gateway is stopping).
    pub async fn end_all(&self) {
        let all: Vec<Arc<HttpSession>> = self.live.lock().await.drain().map(|(_, s)| s).collect();
        for s in all {
            self.end(&s, "gateway stopped").await;
        }
    }

    async fn end(&self, s: &HttpSession, reason: &str) {
        let stats = {
            let mut st = s.stats.lock();
            st.end_reason = reason.to_string();
            std::mem::take(&mut *st)
        };
        self.pipeline
            .end_session(&s.scope(None), s.started, &stats, Default::default())
            .await;
    }
}
