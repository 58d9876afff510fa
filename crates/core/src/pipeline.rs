//! The pipeline every adapter runs, written once.
//!
//! authenticate → authorize → classify → decide → record → forward → mask →
//! record. Adapters own the wire format; this type owns the decisions and
//! the evidence, so PostgreSQL, MySQL, SSH and HTTP behave identically.
//! The authenticator and the recorder are traits so this crate stays free
//! of sockets, JWT libraries and storage engines.

use crate::approval::{AccessGrants, ApprovalBroker, GrantLease};
use crate::classify::{Classification, ClassifierCache, Dialect, StatementFacts, StatementKind};
use crate::deadline::{SessionDeadline, SessionEnd};
use crate::events::{self, AuthFailure, AuthFailureSummary, Event, SessionExpired};
use crate::identity::Identity;
use crate::mask::{MaskCounts, Masker, TrailKind};
use crate::policy::{AccessDenied, ConnectionConfig, Policy};
use crate::signin::{client_ip, Failure, SignInLimiter};
use crate::trail::OriginalsSealer;
use crate::verdict::Verdict;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// A boxed future, so the pipeline's collaborators can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a token was refused. The text is safe to show the client: it never
/// contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token is not valid: malformed, badly signed, from an untrusted
    /// issuer, for another audience, expired or not yet valid.
    #[error("{0}")]
    Invalid(String),
    /// The identity provider could not be asked (unreachable, or
    /// misconfigured), so the token could not be checked.
    #[error("{0}")]
    Unavailable(String),
    /// Too many failed sign-ins from the client's address: refused before
    /// the token was looked at (see [`crate::signin`]).
    #[error("too many failed sign-ins from {address}; try again in {retry_after_secs} s")]
    Limited {
        /// The address, as the client sees it.
        address: String,
        /// When it may try again.
        retry_after_secs: u64,
    },
}

/// Why the audit trail could not keep an event: the command it is about
/// must not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The store refused the write (disk full, I/O error, read-only).
    #[error("{0}")]
    Store(String),
    /// The trail is closed: the gateway is stopping.
    #[error("the audit trail is closed")]
    Closed,
}

/// Authenticate stage: turns a bearer token into an [`Identity`].
pub trait Authenticator: Send + Sync {
    /// Validate `token`.
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, AuthError>>;

    /// The clock skew tolerated past a token's `exp` when it is validated;
    /// a session ends when its token would stop being accepted, `exp` plus
    /// this (see [`crate::deadline`]).
    fn leeway(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// One audit event as the pipeline hands it to the recorder.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// `session.start`, `session.end`, `command`, `command.result`, `auth.failure`, …
    pub kind: &'static str,
    /// The session the event belongs to.
    pub session_id: Option<String>,
    /// The identity's subject.
    pub subject: Option<String>,
    /// The connection name.
    pub connection: Option<String>,
    /// Everything else, as JSON.
    pub data: serde_json::Value,
}

impl EventRecord {
    /// A typed event, for the session, subject and connection it concerns.
    pub fn of(
        event: Event,
        session_id: Option<&str>,
        subject: Option<&str>,
        connection: Option<&str>,
    ) -> EventRecord {
        EventRecord {
            kind: event.kind(),
            session_id: session_id.map(str::to_string),
            subject: subject.map(str::to_string),
            connection: connection.map(str::to_string),
            data: event.data(),
        }
    }
}

/// Record stage: durable, tamper-evident storage of events.
pub trait Recorder: Send + Sync {
    /// Store `event`; resolves only once it is durable. An error means the
    /// evidence could not be kept and the command must not run.
    fn record(&self, event: EventRecord) -> BoxFuture<'_, Result<u64, RecordError>>;
}

/// Counters of one database session, reported in its end event.
#[derive(Debug, Default)]
pub struct SessionStats {
    /// Bytes read from the client.
    pub bytes_from_client: u64,
    /// Bytes written to the client.
    pub bytes_to_client: u64,
    /// Commands seen.
    pub commands: u64,
    /// Commands blocked.
    pub blocked: u64,
    /// Why the session ended.
    pub end_reason: String,
    /// Set when the session ended because its deadline came (the token
    /// expired or the access grant ended); the end event says which.
    pub ended_by: Option<SessionEnd>,
}

/// A command with every SQL-level `EXECUTE` resolved to what it runs.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The statements to decide on: the command's own, each `EXECUTE`
    /// followed by the prepared body it runs (marked `nested`).
    pub decide_on: Classification,
    /// Per top-level statement (one per result), the facts its result's
    /// columns follow.
    pub outputs: Vec<Option<StatementFacts>>,
    /// A refusal found on the way (an unknown prepared statement, or one
    /// from the adapter's `output_of`).
    pub refusal: Option<Verdict>,
}

/// Resolve every SQL-level `EXECUTE name` in `base` to the prepared body
/// it runs, wherever it appears: at the top level, under `EXPLAIN
/// ANALYZE`, in `CREATE TABLE … AS EXECUTE`, at any depth. The body's
/// statements are placed right after the `EXECUTE` (marked `nested`), so
/// policy decides on what really runs; a top-level `EXECUTE`'s result
/// follows the body's first statement. An unknown body is refused, since
/// nothing could be checked.
///
/// `body_of` looks a prepared statement up by name; `output_of` gives the
/// result facts of any other top-level statement (the adapter may refuse
/// one, e.g. a FETCH from a cursor it has not seen declared).
pub fn resolve_executes(
    base: &Classification,
    mut body_of: impl FnMut(&str) -> Option<Classification>,
    mut output_of: impl FnMut(&StatementFacts) -> Result<Option<StatementFacts>, Verdict>,
) -> Resolved {
    let mut statements = Vec::with_capacity(base.statements.len());
    let mut outputs = Vec::new();
    let mut refusal: Option<Verdict> = None;
    for f in &base.statements {
        statements.push(f.clone());
        if f.kind == StatementKind::Execute {
            let name = f.prepared_name.clone().unwrap_or_default();
            match body_of(&name) {
                Some(body) => {
                    if !f.nested {
                        outputs.push(body.statements.first().cloned());
                    }
                    inline_body(body, &mut body_of, &mut statements, &mut refusal, 0);
                }
                None => {
                    if !f.nested {
                        outputs.push(None);
                    }
                    refuse(&mut refusal, unknown_prepared(&name));
                }
            }
        } else if !f.nested {
            match output_of(f) {
                Ok(o) => outputs.push(o),
                Err(v) => {
                    outputs.push(None);
                    refuse(&mut refusal, v);
                }
            }
        }
    }
    Resolved {
        decide_on: Classification {
            statements,
            parse_error: base.parse_error.clone(),
        },
        outputs,
        refusal,
    }
}

/// Add a prepared body's statements (marked `nested`), resolving any
/// `EXECUTE` inside it too, up to a fixed depth (deeper is refused).
fn inline_body(
    body: Classification,
    body_of: &mut impl FnMut(&str) -> Option<Classification>,
    statements: &mut Vec<StatementFacts>,
    refusal: &mut Option<Verdict>,
    depth: usize,
) {
    for mut b in body.statements {
        b.nested = true;
        let name =
            (b.kind == StatementKind::Execute).then(|| b.prepared_name.clone().unwrap_or_default());
        statements.push(b);
        let Some(name) = name else { continue };
        match body_of(&name).filter(|_| depth < 8) {
            Some(inner) => inline_body(inner, body_of, statements, refusal, depth + 1),
            None => refuse(refusal, unknown_prepared(&name)),
        }
    }
}

fn unknown_prepared(name: &str) -> Verdict {
    Verdict::Block {
        rule: "unknown-prepared-statement".into(),
        message: format!(
            "EXECUTE {name}: gatehouse has not seen this statement prepared, so it cannot check it"
        ),
    }
}

/// Keep the stricter of a refusal found so far and a new one.
fn refuse(r: &mut Option<Verdict>, v: Verdict) {
    *r = Some(match r.take() {
        Some(before) => before.stricter(v),
        None => v,
    });
}

/// Shared, read-only state of the pipeline; one per gateway process.
pub struct Pipeline {
    /// Compiled policy.
    pub policy: Arc<Policy>,
    /// Classification cache keyed by normalized statement.
    pub classifier: ClassifierCache,
    /// Masking engine (detectors, strategies, tokenization key).
    pub masker: Arc<Masker>,
    /// Token validation.
    pub authenticator: Arc<dyn Authenticator>,
    /// Audit trail.
    pub recorder: Arc<dyn Recorder>,
    /// Where held commands wait for people; `None` refuses held commands.
    pub approvals: Option<Arc<dyn ApprovalBroker>>,
    /// Time-bound access grants; `None` means group membership alone decides.
    pub grants: Option<Arc<dyn AccessGrants>>,
    /// Seals the originals of command texts the trail stores masked
    /// (`[audit] seal_originals_to`); `None` keeps no originals at all.
    pub sealer: Option<OriginalsSealer>,
    /// The gateway's stop: every session's deadline comes with it, so a
    /// stopping gateway ends (and records) its sessions before the trail
    /// closes.
    pub stop: crate::deadline::GatewayStop,
    /// Records written off the data path (results, a withdrawal or a
    /// session's end from a task that stopped): a stopping gateway waits
    /// for them before it signs the trail's closing checkpoint.
    pub background: tokio_util::task::TaskTracker,
    /// Failed sign-ins, limited per address and user name and summed up
    /// per window, so bad tokens cannot grow the trail without bound.
    pub sign_ins: SignInLimiter,
}

impl Authorized<'_> {
    /// The identity policy sees on this connection: the caller, except
    /// that a caller let in by an access grant acts in the grant's groups
    /// only, so the grant gives what it names and nothing the holder's own
    /// groups carry.
    pub fn acting(&self, caller: &Identity) -> Identity {
        let mut identity = caller.clone();
        if let Some(grant) = &self.grant {
            identity.groups = grant.acting_as.clone();
        }
        identity
    }
}

/// A caller allowed onto a connection, and on what grounds.
pub struct Authorized<'a> {
    /// The connection.
    pub connection: &'a ConnectionConfig,
    /// The access grant that let them in, when their groups alone would not;
    /// the session must end when it does.
    pub grant: Option<GrantLease>,
}

impl Pipeline {
    /// Authenticate stage. Failures are recorded (without the token).
    pub async fn authenticate(
        &self,
        token: &str,
        connection: &str,
        user: &str,
        client_addr: &str,
        protocol: &str,
    ) -> Result<Identity, AuthError> {
        let now = Instant::now();
        let address = client_ip(client_addr);
        // A client may send kilobytes as its user name.
        let user = crate::signin::user_name(user);
        self.record_sign_in_summary(self.sign_ins.take_summary(now))
            .await;
        if let Err(limited) = self.sign_ins.admit(address, now) {
            return Err(AuthError::Limited {
                address: address.map(|a| a.to_string()).unwrap_or_default(),
                retry_after_secs: limited.retry_after.as_secs(),
            });
        }
        match self.authenticator.authenticate(token).await {
            Ok(identity) => Ok(identity),
            // Only a token that did not validate counts: an identity
            // provider that cannot be asked is not the client's failure.
            Err(reason @ AuthError::Invalid(_))
                if self.sign_ins.failed(address, user, now) == Failure::Count =>
            {
                Err(reason)
            }
            Err(reason) => {
                let event = EventRecord::of(
                    Event::AuthFailure(AuthFailure {
                        user: user.to_string(),
                        refused: events::Refused {
                            client_addr: client_addr.to_string(),
                            protocol: protocol.to_string(),
                            reason: reason.to_string(),
                        },
                    }),
                    None,
                    None,
                    Some(connection),
                );
                // The client is refused either way; a failure to record it is
                // logged by the recorder itself.
                let _ = self.recorder.record(event).await;
                Err(reason)
            }
        }
    }

    /// Record a window's summary of failed sign-ins, if there is one (the
    /// gateway calls this as windows end, and with the last one as it
    /// stops).
    pub async fn record_sign_in_summary(&self, summary: Option<AuthFailureSummary>) {
        let Some(summary) = summary else { return };
        let event = EventRecord::of(Event::AuthFailureSummary(summary), None, None, None);
        if let Err(e) = self.recorder.record(event).await {
            tracing::error!(error = %e, "could not record a summary of failed sign-ins");
        }
    }

    /// Authorize stage: the connection's groups, else an active access grant.
    pub fn authorize(
        &self,
        identity: &Identity,
        connection: &str,
    ) -> Result<Authorized<'_>, AccessDenied> {
        match self.policy.authorize(identity, connection) {
            Ok(conn) => Ok(Authorized {
                connection: conn,
                grant: None,
            }),
            Err(denied @ AccessDenied::NotInAllowedGroups { .. }) => {
                let lease = self
                    .grants
                    .as_ref()
                    .and_then(|g| g.active(identity, connection));
                match (lease, self.policy.connection(connection)) {
                    (Some(lease), Some(conn)) => Ok(Authorized {
                        connection: conn,
                        grant: Some(lease),
                    }),
                    _ => Err(denied),
                }
            }
            Err(other) => Err(other),
        }
    }

    /// When a session of `identity`, admitted with `grant`, must end: its
    /// token's expiry (as validated, leeway included) or the grant's end,
    /// whichever comes first. Every adapter waits on this alongside its
    /// client and target; see [`crate::deadline`].
    pub fn session_deadline(
        &self,
        identity: &Identity,
        grant: Option<GrantLease>,
    ) -> SessionDeadline {
        // The identity stage requires `exp`; an identity without one (0,
        // never set) has no token deadline.
        let exp = (identity.expires_at > 0).then_some(identity.expires_at);
        SessionDeadline::new(exp, self.authenticator.leeway(), grant).until_stop(&self.stop)
    }

    /// Record that a session reached its deadline because the caller's
    /// token expired: a `session.expired` event, so an examiner can list
    /// the sessions (and streams) a token's expiry ended. `extra` adds
    /// fields (the protocol, the HTTP command cut off). A grant's end is
    /// already in the trail as a grant event, so nothing is recorded for
    /// it here. A recording failure is logged (the session ends anyway).
    pub async fn record_deadline(
        &self,
        session_id: &str,
        identity: &Identity,
        connection: &str,
        end: &SessionEnd,
        extra: serde_json::Value,
    ) {
        let SessionEnd::TokenExpired { expires_at } = end else {
            return;
        };
        let detail = match extra {
            serde_json::Value::Object(fields) => fields,
            _ => serde_json::Map::new(),
        };
        let event = EventRecord::of(
            Event::SessionExpired(SessionExpired {
                token_expires_at: crate::deadline::rfc3339(*expires_at),
                token_id: identity.token_id.clone(),
                leeway_secs: self.authenticator.leeway().as_secs(),
                reason: end.message(),
                detail,
            }),
            Some(session_id),
            Some(&identity.subject),
            Some(connection),
        );
        if let Err(e) = self.recorder.record(event).await {
            tracing::error!(error = %e, "could not record a session's token expiry");
        }
    }

    /// Classify stage (cached by normalized statement).
    pub fn classify(&self, sql: &str, dialect: Dialect) -> Arc<Classification> {
        self.classifier.classify(sql, dialect)
    }

    /// Record that `identity` was refused `connection` (authorize stage);
    /// the caller is refused either way, so a recording failure is only
    /// logged by the recorder.
    pub async fn record_access_denied(
        &self,
        identity: &Identity,
        connection: &str,
        client_addr: &str,
        protocol: &str,
        reason: &str,
    ) {
        let _ = self
            .recorder
            .record(EventRecord::of(
                Event::AccessDenied(events::AccessDenied {
                    client_addr: client_addr.to_string(),
                    protocol: protocol.to_string(),
                    reason: reason.to_string(),
                }),
                None,
                Some(&identity.subject),
                Some(connection),
            ))
            .await;
    }

    /// A command's text as the audit trail may keep it (see [`crate::trail`]):
    /// secrets redacted (SQL), column rules active for `identity` applied
    /// to SQL literals, and content detectors on the rest. The same text
    /// is what approvers see.
    pub fn mask_for_trail(
        &self,
        identity: &Identity,
        connection: &str,
        text: &str,
        kind: TrailKind,
    ) -> (String, MaskCounts) {
        let text = match kind {
            TrailKind::Sql(_) => redact_secrets(text),
            TrailKind::Text => std::borrow::Cow::Borrowed(text),
        };
        crate::trail::mask_text(
            &self.masker,
            &self.policy,
            identity,
            connection,
            &text,
            kind,
        )
    }

    /// A SQL command as the trail keeps it: its text with secrets
    /// redacted and PII masked (see [`Pipeline::mask_for_trail`]; with a
    /// sealer, the unmasked text is sealed into the event) and what the
    /// classifier saw. The `command` event's detail for PostgreSQL and
    /// MySQL.
    pub fn sql_detail(
        &self,
        identity: &Identity,
        connection: &str,
        sql: &str,
        classification: &Classification,
    ) -> crate::events::CommandDetail {
        let dialect = match self.policy.connection(connection).map(|c| c.kind) {
            Some(crate::policy::ConnectionKind::Mysql) => Dialect::MySql,
            _ => Dialect::Postgres,
        };
        let (shown, masked) =
            self.mask_for_trail(identity, connection, sql, TrailKind::Sql(dialect));
        let sealed_originals = match &self.sealer {
            Some(sealer) if !masked.is_empty() => {
                let plain = serde_json::json!({
                    "event": "command",
                    "fields": {"/sql": redact_secrets(sql)},
                });
                Some((sealer.0)(plain.to_string().as_bytes()))
            }
            _ => None,
        };
        crate::events::CommandDetail::Sql(crate::events::SqlCommand {
            sql: shown,
            statements: classification.statement_records(),
            parse_error: classification.parse_error.clone(),
            trail_masked: (!masked.is_empty()).then_some(masked),
            sealed_originals,
        })
    }

    /// A decided SQL command of `scope`'s session, ready for
    /// [`Pipeline::admit`] (approvers' text still to be set when held).
    pub fn sql_command(
        &self,
        scope: &crate::lifecycle::CommandScope,
        command_id: u64,
        protocol: &str,
        sql: &str,
        classification: &Classification,
        verdict: Verdict,
    ) -> crate::lifecycle::Command {
        crate::lifecycle::Command {
            event: crate::events::CommandEvent {
                command_id,
                protocol: protocol.into(),
                detail: self.sql_detail(&scope.identity, &scope.connection, sql, classification),
                verdict,
                approval_request: None,
            },
            shown: String::new(),
        }
    }

    /// Record a session's end with its counters, in the one
    /// `session.end` schema of every protocol (and, when its deadline
    /// ended it, why: a `session.expired` event first for a token expiry,
    /// and `ended_by` in the end event); a failure is logged (the session
    /// is over either way). `detail` adds protocol facts (SSH channels
    /// and recordings).
    pub async fn end_session(
        &self,
        scope: &crate::lifecycle::CommandScope,
        started: std::time::Instant,
        stats: &SessionStats,
        detail: serde_json::Map<String, serde_json::Value>,
    ) {
        let mut end = crate::events::SessionEndEvent {
            protocol: scope.protocol.to_string(),
            reason: stats.end_reason.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
            bytes_from_client: stats.bytes_from_client,
            bytes_to_client: stats.bytes_to_client,
            commands: stats.commands,
            blocked: stats.blocked,
            ended_by: None,
            detail,
        };
        if let Some(ended_by) = &stats.ended_by {
            self.record_deadline(
                &scope.session_id,
                &scope.identity,
                &scope.connection,
                ended_by,
                serde_json::json!({"protocol": scope.protocol}),
            )
            .await;
        }
        end.ended_by(stats.ended_by.as_ref());
        let event = scope.event(Event::SessionEnd(end));
        if let Err(e) = self.recorder.record(event).await {
            tracing::error!(error = %e, "could not record session end");
        }
    }

    /// Decide stage for a SQL command of a session, with a refusal the
    /// adapter found on the way (an unknown prepared statement, a cursor it
    /// has not seen): the stricter of the two.
    pub fn decide_in(
        &self,
        scope: &crate::lifecycle::CommandScope,
        sql: &str,
        classification: &Classification,
        found: Option<Verdict>,
    ) -> Verdict {
        let verdict = self.decide(&scope.identity, &scope.connection, sql, classification);
        match found {
            Some(r) => verdict.stricter(r),
            None => verdict,
        }
    }

    /// Decide stage.
    pub fn decide(
        &self,
        identity: &Identity,
        connection: &str,
        sql: &str,
        classification: &Classification,
    ) -> Verdict {
        self.policy
            .decide(identity, connection, sql, classification)
    }
}

/// A new session id: 96 random bits as hex, the same shape for every
/// adapter so the console and exports treat them alike.
pub fn new_session_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Replace secret literals in statement text before it is recorded
/// (`PASSWORD 'x'`, `IDENTIFIED BY 'x'`), so the audit trail never holds a
/// credential that passed through the gateway.
pub fn redact_secrets(sql: &str) -> std::borrow::Cow<'_, str> {
    use std::sync::OnceLock;
    static SECRET: OnceLock<regex::Regex> = OnceLock::new();
    let re = SECRET.get_or_init(|| {
        crate::static_regex(
            r"(?is)\b(password|identified\s+by|identified\s+with\s+\S+\s+(?:by|as)|secret|connection\s+'[^']*'\s+password)\s*(=\s*)?('(?:[^']|'')*'|E'(?:[^'\\]|\\.|'')*'|\$[A-Za-z_]*\$.*?\$[A-Za-z_]*\$)",
        )
    });
    re.replace_all(sql, "$1 $2'***'")
}

#[cfg(test)]
mod tests {
    use super::{redact_secrets, resolve_executes};
    use crate::classify::{classify, Dialect, StatementKind};

    #[test]
    fn execute_is_resolved_wherever_it_appears() {
        let body = classify(
            "prepare p as update customers set notes = 'x' where id = 8",
            Dialect::Postgres,
        );
        let body_of = |name: &str| {
            (name == "p").then(|| crate::classify::Classification {
                statements: body.statements[1..].to_vec(),
                parse_error: None,
            })
        };
        for sql in [
            "execute p",
            "explain analyze execute p",
            "explain (analyze) execute p",
            "create table t as execute p",
            "select 1; explain analyze execute p",
        ] {
            let base = classify(sql, Dialect::Postgres);
            let r = resolve_executes(&base, body_of, |f| Ok(Some(f.clone())));
            assert!(r.refusal.is_none(), "{sql}: {:?}", r.refusal);
            let at = r
                .decide_on
                .statements
                .iter()
                .position(|f| f.kind == StatementKind::Execute)
                .unwrap();
            let next = &r.decide_on.statements[at + 1];
            assert_eq!(
                (next.kind, next.nested),
                (StatementKind::Update, true),
                "{sql}"
            );
            assert!(next.tables_written.contains("customers"));
            let top = base.statements.iter().filter(|f| !f.nested).count();
            assert_eq!(r.outputs.len(), top, "{sql}: one output per result");
        }
        let base = classify("explain analyze execute q", Dialect::Postgres);
        let r = resolve_executes(&base, body_of, |f| Ok(Some(f.clone())));
        assert_eq!(
            r.refusal.as_ref().and_then(|v| v.rule()),
            Some("unknown-prepared-statement")
        );
    }

    #[test]
    fn secret_literals_are_redacted() {
        assert_eq!(
            redact_secrets("CREATE ROLE bob LOGIN PASSWORD 'hunter2'"),
            "CREATE ROLE bob LOGIN PASSWORD '***'"
        );
        assert_eq!(
            redact_secrets("alter user x with password 'it''s'"),
            "alter user x with password '***'"
        );
        assert_eq!(
            redact_secrets("CREATE USER u IDENTIFIED BY 'pw'"),
            "CREATE USER u IDENTIFIED BY '***'"
        );
        assert!(!redact_secrets("ALTER ROLE a PASSWORD $q$s3cret$q$").contains("s3cret"));
        assert_eq!(redact_secrets("select 'password'"), "select 'password'");
    }
}
