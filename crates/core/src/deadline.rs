//! When a session must end, whatever its protocol.
//!
//! A session lives no longer than what let it in:
//!
//! - the caller's **token**: its `exp` claim as the identity stage
//!   validated it, plus the clock-skew leeway that stage allows, so a
//!   session ends at the instant its token would stop being accepted at
//!   login (ending it earlier would refuse a token the gateway has just
//!   accepted; ending it later would let it outlive its token);
//! - the time-bound **access grant** that admitted the caller, when their
//!   groups alone would not: its end or its revocation.
//!
//! [`SessionDeadline`] is the earlier of the two. Every adapter waits on it
//! the same way (alongside its client and target) and, when it comes, tells
//! the client [`SessionEnd::message`] in its own protocol, withdraws any
//! held command, ends the session, and reports the [`SessionEnd`] in
//! [`SessionStats::ended_by`](crate::pipeline::SessionStats::ended_by) so
//! the end event says why (and a token expiry gets its own
//! `session.expired` event an examiner can list). A deadline with neither
//! a token expiry nor a grant never comes.
//!
//! The gateway's own stop is a third: when it drains
//! ([`GatewayStop::stop`]), every session reaches its deadline and ends
//! the same way, so each one's end is recorded before the trail closes.
//!
//! A deadline can be waited on by several tasks at once (an SSH
//! connection's channels, say); all of them see the same [`SessionEnd`],
//! the first one observed.

use crate::approval::GrantLease;
use crate::pipeline::BoxFuture;
use futures_util::future::{FutureExt, Shared};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Why a session reached its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The caller's token expired.
    TokenExpired {
        /// The token's `exp` claim (Unix seconds).
        expires_at: i64,
    },
    /// The access grant that admitted the caller ended or was revoked.
    GrantEnded {
        /// The grant's number.
        grant_id: u64,
        /// The broker's words ("access grant #3 was revoked by omar: …").
        reason: String,
    },
    /// The gateway is stopping (draining its sessions).
    GatewayStopping,
}

/// The gateway's stop, shared by every session's deadline.
#[derive(Clone)]
pub struct GatewayStop(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for GatewayStop {
    fn default() -> Self {
        GatewayStop(Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl GatewayStop {
    /// Stop: every session's deadline comes now.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once the gateway stops.
    pub fn stopped(&self) -> BoxFuture<'static, ()> {
        let mut rx = self.0.subscribe();
        Box::pin(async move {
            // An error means the sender is gone: the gateway is gone too.
            let _ = rx.wait_for(|stopped| *stopped).await;
        })
    }
}

impl SessionEnd {
    /// What the client is told, in words that say what to do next.
    pub fn message(&self) -> String {
        match self {
            SessionEnd::TokenExpired { expires_at } => format!(
                "your token expired at {}; sign in again and reconnect",
                rfc3339(*expires_at)
            ),
            SessionEnd::GrantEnded { reason, .. } => reason.clone(),
            SessionEnd::GatewayStopping => {
                "the gateway is shutting down; reconnect in a moment".into()
            }
        }
    }

    /// A short name of the cause, as recorded (`token_expired`, `grant_ended`).
    pub fn cause(&self) -> &'static str {
        match self {
            SessionEnd::TokenExpired { .. } => "token_expired",
            SessionEnd::GrantEnded { .. } => "grant_ended",
            SessionEnd::GatewayStopping => "gateway_stopped",
        }
    }

    /// Whether the token (rather than a grant) ran out.
    pub fn is_token_expiry(&self) -> bool {
        matches!(self, SessionEnd::TokenExpired { .. })
    }

    /// The fields the session's end event carries about it.
    pub fn audit_fields(&self) -> serde_json::Value {
        match self {
            SessionEnd::TokenExpired { expires_at } => serde_json::json!({
                "ended_by": self.cause(),
                "token_expires_at": rfc3339(*expires_at),
            }),
            SessionEnd::GrantEnded { grant_id, .. } => serde_json::json!({
                "ended_by": self.cause(),
                "grant_id": grant_id,
            }),
            SessionEnd::GatewayStopping => serde_json::json!({"ended_by": self.cause()}),
        }
    }
}

/// Unix seconds as RFC 3339 UTC (`2026-12-07T10:15:00Z`).
pub fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| secs.to_string())
}

/// The instant a session must end; cheap to clone, and every clone waits
/// for the same end. See the module documentation.
#[derive(Clone)]
pub struct SessionDeadline {
    /// The token's `exp` and when, on this machine's monotonic clock, the
    /// session must end for it.
    token: Option<(i64, tokio::time::Instant)>,
    /// The grant's number and its end, shared by every waiter.
    grant: Option<(u64, Shared<BoxFuture<'static, String>>)>,
    /// The gateway's stop, once [`SessionDeadline::until_stop`] joined it.
    stop: Option<Shared<BoxFuture<'static, ()>>>,
    /// The first end observed, so every waiter reports the same one.
    reached: Arc<OnceLock<SessionEnd>>,
}

impl std::fmt::Debug for SessionDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionDeadline")
            .field("token_expires_at", &self.token.map(|(exp, _)| exp))
            .field("grant", &self.grant.as_ref().map(|(id, _)| *id))
            .field("reached", &self.reached.get())
            .finish()
    }
}

impl SessionDeadline {
    /// A deadline that never comes.
    pub fn never() -> SessionDeadline {
        SessionDeadline {
            token: None,
            grant: None,
            stop: None,
            reached: Arc::default(),
        }
    }

    /// The earlier of the token's end (`exp` plus `leeway`, when the token
    /// has an `exp`) and the grant's end (when a grant admitted the caller).
    pub fn new(
        token_expires_at: Option<i64>,
        leeway: Duration,
        grant: Option<GrantLease>,
    ) -> SessionDeadline {
        let token = token_expires_at.map(|exp| {
            let leeway_ms = i64::try_from(leeway.as_millis()).unwrap_or(i64::MAX);
            let end_ms = exp.saturating_mul(1000).saturating_add(leeway_ms);
            let left_ms = end_ms.saturating_sub(chrono::Utc::now().timestamp_millis());
            let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
            let now = tokio::time::Instant::now();
            // A lifetime too long for the clock to represent is as good as
            // none (a century from now).
            let at = now
                .checked_add(left)
                .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
            (exp, at)
        });
        SessionDeadline {
            token,
            grant: grant.map(|g| (g.id, g.ended.shared())),
            stop: None,
            reached: Arc::default(),
        }
    }

    /// This deadline, coming also when the gateway stops.
    pub fn until_stop(mut self, stop: &GatewayStop) -> SessionDeadline {
        self.stop = Some(stop.stopped().shared());
        self
    }

    /// The token's `exp` (Unix seconds), when it has one.
    pub fn token_expires_at(&self) -> Option<i64> {
        self.token.map(|(exp, _)| exp)
    }

    /// Resolves when the session must end, with why; never, if there is
    /// no deadline. Cancel-safe: dropping it and waiting again is fine.
    pub async fn reached(&self) -> SessionEnd {
        if let Some(end) = self.reached.get() {
            return end.clone();
        }
        let token = async {
            match self.token {
                Some((expires_at, at)) => {
                    tokio::time::sleep_until(at).await;
                    SessionEnd::TokenExpired { expires_at }
                }
                None => std::future::pending().await,
            }
        };
        let grant = async {
            match &self.grant {
                Some((grant_id, ended)) => SessionEnd::GrantEnded {
                    grant_id: *grant_id,
                    reason: ended.clone().await,
                },
                None => std::future::pending().await,
            }
        };
        let stop = async {
            match &self.stop {
                Some(stopped) => {
                    stopped.clone().await;
                    SessionEnd::GatewayStopping
                }
                None => std::future::pending().await,
            }
        };
        let end = tokio::select! {
            biased;
            end = token => end,
            end = grant => end,
            end = stop => end,
        };
        self.reached.get_or_init(|| end).clone()
    }

    /// [`SessionDeadline::reached`] as an owned future, for a task or a
    /// `select!` that outlives this borrow.
    pub fn until(&self) -> BoxFuture<'static, SessionEnd> {
        let me = self.clone();
        Box::pin(async move { me.reached().await })
    }

    /// The client's message when the deadline comes, as an owned future:
    /// for session loops that take "a reason to end" (the PostgreSQL and
    /// MySQL proxies).
    pub fn message_when_reached(&self) -> BoxFuture<'static, String> {
        let me = self.clone();
        Box::pin(async move { me.reached().await.message() })
    }

    /// The end, once some waiter has seen the deadline come; `None` while
    /// the session may go on (or if it ended for another reason first).
    pub fn ended(&self) -> Option<SessionEnd> {
        self.reached.get().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: u64, after: Duration, reason: &str) -> GrantLease {
        let reason = reason.to_string();
        GrantLease {
            id,
            expires_at: 0,
            acting_as: Vec::new(),
            ended: Box::pin(async move {
                tokio::time::sleep(after).await;
                reason
            }),
        }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[tokio::test]
    async fn a_token_ends_the_session_at_exp_plus_leeway() {
        // exp is in the past but within the leeway: the token would still
        // be accepted for up to a second more, and the session lasts as long.
        let exp = now() - 30;
        let d = SessionDeadline::new(Some(exp), Duration::from_secs(31), None);
        assert_eq!(d.ended(), None);
        let end = d.reached().await;
        let ended_ms = chrono::Utc::now().timestamp_millis();
        assert!(
            ended_ms >= (exp + 31) * 1000 - 20,
            "not before exp + leeway"
        );
        assert_eq!(end, SessionEnd::TokenExpired { expires_at: exp });
        assert_eq!(d.ended(), Some(end.clone()));
        assert!(end.message().starts_with("your token expired at "));
        assert!(end.message().ends_with("; sign in again and reconnect"));
        assert_eq!(end.audit_fields()["ended_by"], "token_expired");
    }

    #[tokio::test]
    async fn the_earlier_of_token_and_grant_wins() {
        let d = SessionDeadline::new(
            Some(now() + 3600),
            Duration::ZERO,
            Some(lease(
                7,
                Duration::from_millis(20),
                "access grant #7 expired",
            )),
        );
        let end = d.until().await;
        assert_eq!(
            end,
            SessionEnd::GrantEnded {
                grant_id: 7,
                reason: "access grant #7 expired".into()
            }
        );
        assert_eq!(end.message(), "access grant #7 expired");
        assert_eq!(end.audit_fields()["grant_id"], 7);

        let d = SessionDeadline::new(
            Some(now() - 5),
            Duration::ZERO,
            Some(lease(8, Duration::from_secs(3600), "later")),
        );
        assert!(d.reached().await.is_token_expiry());
    }

    #[tokio::test]
    async fn every_waiter_sees_the_same_end() {
        let d = SessionDeadline::new(
            None,
            Duration::ZERO,
            Some(lease(1, Duration::from_millis(20), "revoked")),
        );
        let a = tokio::spawn(d.until());
        let b = tokio::spawn(d.message_when_reached());
        assert_eq!(a.await.unwrap().cause(), "grant_ended");
        assert_eq!(b.await.unwrap(), "revoked");
        // A waiter arriving late gets the end at once.
        assert_eq!(d.clone().reached().await.message(), "revoked");
    }

    #[tokio::test]
    async fn no_exp_and_no_grant_never_ends() {
        let d = SessionDeadline::new(None, Duration::from_secs(30), None);
        let waited = tokio::time::timeout(Duration::from_millis(100), d.reached()).await;
        assert!(waited.is_err());
        assert_eq!(d.ended(), None);
        let never = SessionDeadline::never();
        assert!(
            tokio::time::timeout(Duration::from_millis(10), never.reached())
                .await
                .is_err()
        );
        // A lifetime past what the clock can hold is no deadline either.
        let far = SessionDeadline::new(Some(i64::MAX), Duration::from_secs(30), None);
        assert!(
            tokio::time::timeout(Duration::from_millis(10), far.reached())
                .await
                .is_err()
        );
    }

    #[test]
    fn times_read_as_rfc3339() {
        assert_eq!(rfc3339(1_796_638_500), "2026-12-07T10:15:00Z");
    }
}
