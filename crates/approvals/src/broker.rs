//! The approval broker: opens requests, collects decisions, wakes the
//! sessions waiting on them, and keeps access grants.
//!
//! Every change is written to the audit trail before it takes effect, so
//! the trail can never show less than what happened: if the trail cannot
//! take a decision, the decision is refused. All changes go through one
//! async lock, so "approve" and "claim for execution" cannot interleave and
//! an approved command runs exactly once.

use crate::model::{display_name, Grant, Request, RequestKind, Status};
use crate::store::{RequestFilter, Store, StoreError};
use gatehouse_core::approval::{
    same_person, AccessGrants, ApprovalBroker, Decision, GrantLease, HeldCommand, HoldError,
    OpenedRequest, Outcome, Settlement,
};
use gatehouse_core::events::{
    About, ApprovalDecision, ApprovalEnded, ApprovalRequested, Choice, Event, GrantCreated,
    GrantEnded, GrantTerms, RequestEnd,
};
use gatehouse_core::pipeline::{BoxFuture, EventRecord, Recorder};
use gatehouse_core::policy::Policy;
use gatehouse_core::Identity;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Why a broker call was refused; the text is safe to show the caller.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No such request or grant.
    #[error("{0} not found")]
    NotFound(String),
    /// The request is no longer open.
    #[error("request #{0} is already {1}; it can no longer be decided")]
    Settled(u64, &'static str),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The caller already decided this request.
    #[error("you already decided request #{0}")]
    AlreadyDecided(u64),
    /// The input is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit trail could not take the event, so nothing changed.
    #[error("the audit trail could not record this, so it did not take effect: {0}")]
    Audit(String),
}

/// A grant in force and the sender that tells its sessions why it ended.
type LiveGrant = (Grant, watch::Sender<Option<String>>);

impl BrokerError {
    /// The HTTP status that says this to a client (API and console alike).
    pub fn http_status(&self) -> u16 {
        match self {
            BrokerError::NotFound(_) => 404,
            BrokerError::Settled(..) | BrokerError::AlreadyDecided(_) => 409,
            BrokerError::Forbidden(_) => 403,
            BrokerError::Invalid(_) => 400,
            BrokerError::Store(_) => 500,
            BrokerError::Audit(_) => 503,
        }
    }
}

/// Told of every new request and every settlement (for notifications).
pub type Announcer = Arc<dyn Fn(&str, &Request) + Send + Sync>;

/// Shared handle; cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Mutex<Store>>,
    recorder: Arc<dyn Recorder>,
    policy: Arc<Policy>,
    console_url: String,
    announcer: Mutex<Option<Announcer>>,
    /// Bumped whenever a request changes, so its waiter re-reads it.
    waiters: Mutex<HashMap<u64, watch::Sender<u64>>>,
    /// Grants in force, by id, with the channel that tells their sessions
    /// they were revoked.
    live_grants: Mutex<HashMap<u64, LiveGrant>>,
    changes: tokio::sync::Mutex<()>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

impl Broker {
    /// Open the broker on its database; `console_url` is the base of the
    /// links sent to clients and approvers.
    pub fn open(
        path: &Path,
        recorder: Arc<dyn Recorder>,
        policy: Arc<Policy>,
        console_url: &str,
    ) -> Result<Broker, BrokerError> {
        Self::with_store(Store::open(path)?, recorder, policy, console_url)
    }

    /// A broker over an already-open store.
    pub fn with_store(
        store: Store,
        recorder: Arc<dyn Recorder>,
        policy: Arc<Policy>,
        console_url: &str,
    ) -> Result<Broker, BrokerError> {
        let live: HashMap<u64, LiveGrant> = store
            .grants(Some(now()))?
            .into_iter()
            .map(|g| (g.id, (g, watch::channel(None).0)))
            .collect();
        Ok(Broker {
            inner: Arc::new(Inner {
                store: Arc::new(Mutex::new(store)),
                recorder,
                policy,
                console_url: console_url.trim_end_matches('/').to_string(),
                announcer: Mutex::new(None),
                waiters: Mutex::new(HashMap::new()),
                live_grants: Mutex::new(live),
                changes: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Tell `announcer` about new requests and settlements from now on.
    pub fn set_announcer(&self, announcer: Announcer) {
        *self.inner.announcer.lock() = Some(announcer);
    }

    /// The console page of request `id`.
    pub fn link(&self, id: u64) -> String {
        format!("{}/approvals/{id}", self.inner.console_url)
    }

    /// Run `f` on the store off the async threads.
    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, BrokerError> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || f(&mut store.lock()))
            .await
            .map_err(|e| BrokerError::Invalid(format!("approvals store task failed: {e}")))?
            .map_err(BrokerError::from)
    }

    /// Record `event` about request `r` (in its session, under its
    /// requester and connection).
    async fn record(&self, r: &Request, event: Event) -> Result<(), BrokerError> {
        self.inner
            .recorder
            .record(EventRecord::of(
                event,
                r.session_id.as_deref(),
                Some(&r.requester.subject),
                Some(&r.connection),
            ))
            .await
            .map(|_| ())
            .map_err(|e| BrokerError::Audit(e.to_string()))
    }

    fn announce(&self, event: &str, r: &Request) {
        let announcer = self.inner.announcer.lock().clone();
        if let Some(a) = announcer {
            a(event, r);
        }
    }

    fn wake(&self, id: u64) {
        if let Some(tx) = self.inner.waiters.lock().get(&id) {
            tx.send_modify(|n| *n += 1);
        }
    }

    fn subscribe(&self, id: u64) -> watch::Receiver<u64> {
        self.inner
            .waiters
            .lock()
            .entry(id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    async fn load(&self, id: u64) -> Result<Request, BrokerError> {
        self.db(move |s| s.request(id))
            .await?
            .ok_or_else(|| BrokerError::NotFound(format!("request #{id}")))
    }

    async fn save(&self, r: &Request) -> Result<(), BrokerError> {
        let copy = r.clone();
        self.db(move |s| s.save_request(&copy)).await
    }

    async fn insert(&self, mut r: Request) -> Result<Request, BrokerError> {
        self.db(move |s| s.insert_request(&mut r).map(|_| r)).await
    }

    /// One request.
    pub async fn request(&self, id: u64) -> Result<Request, BrokerError> {
        self.load(id).await
    }

    /// Requests matching `filter`, newest first.
    pub async fn requests(&self, filter: RequestFilter) -> Result<Vec<Request>, BrokerError> {
        self.db(move |s| s.requests(&filter)).await
    }

    /// Whether `who` could decide `r` now (for queues and buttons).
    pub fn can_decide(&self, r: &Request, who: &Identity) -> bool {
        r.status == Status::Pending
            && r.requirement.eligible(&r.requester, who).is_ok()
            && !r.decisions.iter().any(|d| same_person(&d.approver, who))
    }

    /// Record `approver`'s decision on request `id`.
    pub async fn decide(
        &self,
        id: u64,
        approver: &Identity,
        approve: bool,
        reason: &str,
    ) -> Result<Request, BrokerError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(BrokerError::Invalid(
                "a decision needs a justification (--reason)".into(),
            ));
        }
        let _guard = self.inner.changes.lock().await;
        let mut r = self.load(id).await?;
        if r.status == Status::Pending && now() >= r.expires_at {
            self.settle_expired(&mut r).await?;
        }
        if r.status != Status::Pending {
            return Err(BrokerError::Settled(id, r.status.as_str()));
        }
        r.requirement
            .eligible(&r.requester, approver)
            .map_err(BrokerError::Forbidden)?;
        if r.decisions
            .iter()
            .any(|d| same_person(&d.approver, approver))
        {
            return Err(BrokerError::AlreadyDecided(id));
        }
        let decision = Decision {
            approver: approver.clone(),
            approve,
            reason: reason.to_string(),
            at: rfc3339(now()),
        };
        r.decisions.push(decision.clone());
        let settlement = r.requirement.settle(&r.decisions);
        let decided = Event::ApprovalDecision(Box::new(about(
            &r,
            ApprovalDecision {
                decision: if approve {
                    Choice::Approve
                } else {
                    Choice::Deny
                },
                approver: approver.clone(),
                reason: reason.to_string(),
                settles: !matches!(settlement, Settlement::Waiting { .. }),
            },
        )));
        self.record(&r, decided).await?;
        let outcome = match settlement {
            Settlement::Waiting { .. } => None,
            Settlement::Approved => Some(RequestEnd::Approved),
            Settlement::Denied(_) => Some(RequestEnd::Denied),
        };
        let mut grant = None;
        if let Some(outcome) = outcome {
            // The settlement is in the trail before it takes effect; for an
            // access request the event carries the grant it creates.
            if r.kind == RequestKind::Access && outcome == RequestEnd::Approved {
                grant = Some(self.new_grant(&r));
            }
            let ended = ApprovalEnded {
                decisions: r.decisions.clone(),
                grant: grant.as_ref().map(|g: &Grant| GrantTerms {
                    holder: g.holder.clone(),
                    connection: g.connection.clone(),
                    acting_as: g.access_as.clone(),
                    expires_at: rfc3339(g.expires_at),
                }),
                why: None,
            };
            self.record(
                &r,
                Event::ApprovalEnded(outcome, Box::new(about(&r, ended))),
            )
            .await?;
            r.status = if outcome == RequestEnd::Approved {
                Status::Approved
            } else {
                Status::Denied
            };
            r.settled_at = Some(now());
        }
        match grant {
            Some(g) => {
                // Request and grant are saved together, then the grant goes live.
                let mut saved = r.clone();
                let g = self
                    .db(move |s| s.save_request_with_grant(&mut saved, g).map(|g| (saved, g)))
                    .await?;
                r = g.0;
                let g = g.1;
                self.inner
                    .live_grants
                    .lock()
                    .insert(g.id, (g.clone(), watch::channel(None).0));
                let created = GrantCreated {
                    grant_id: g.id,
                    holder: g.holder.clone(),
                    acting_as: g.access_as.clone(),
                    expires_at: rfc3339(g.expires_at),
                };
                if let Err(e) = self
                    .record(&r, Event::GrantCreated(Box::new(about(&r, created))))
                    .await
                {
                    tracing::error!(grant = g.id, error = %e, "grant created but its id could not be recorded (its approval is)");
                }
            }
            None => self.save(&r).await?,
        }
        if let Some(outcome) = outcome {
            self.announce(outcome.kind(), &r);
        }
        self.wake(id);
        Ok(r)
    }

    /// The grant an approved access request creates (not yet stored).
    fn new_grant(&self, r: &Request) -> Grant {
        let start = now();
        Grant {
            id: 0,
            request_id: r.id,
            holder: r.requester.clone(),
            connection: r.connection.clone(),
            access_as: r.access_as.clone(),
            starts_at: start,
            expires_at: start + r.access_secs.unwrap_or(0) as i64,
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
        }
    }

    async fn settle_expired(&self, r: &mut Request) -> Result<(), BrokerError> {
        r.status = Status::Expired;
        r.settled_at = Some(now());
        r.note = Some("nobody decided before it expired".into());
        let ended = ApprovalEnded {
            decisions: r.decisions.clone(),
            ..ApprovalEnded::default()
        };
        self.record(
            r,
            Event::ApprovalEnded(RequestEnd::Expired, Box::new(about(r, ended))),
        )
        .await?;
        self.save(r).await?;
        self.announce("approval.expired", r);
        self.wake(r.id);
        Ok(())
    }

    /// Ask for time-bound access to `connection` for `secs` seconds, acting
    /// as `as_group` (one of the connection's `access_as`; the first when
    /// `None`).
    pub async fn request_access(
        &self,
        requester: &Identity,
        connection: &str,
        secs: u64,
        reason: &str,
        as_group: Option<&str>,
    ) -> Result<Request, BrokerError> {
        let policy = &self.inner.policy;
        let conn = policy
            .connection(connection)
            .ok_or_else(|| BrokerError::NotFound(format!("connection \"{connection}\"")))?;
        if policy.authorize(requester, connection).is_ok() {
            return Err(BrokerError::Invalid(format!(
                "your groups already reach \"{connection}\"; no grant is needed"
            )));
        }
        let (requirement, max) = conn
            .access_policy()
            .map_err(BrokerError::Invalid)?
            .ok_or_else(|| {
                BrokerError::Forbidden(format!(
                    "connection \"{connection}\" does not take access requests (it has no access_approvers)"
                ))
            })?;
        if secs == 0 || secs > max.as_secs() {
            return Err(BrokerError::Invalid(format!(
                "access to \"{connection}\" may be asked for up to {}",
                crate::model::human_secs(max.as_secs())
            )));
        }
        if reason.trim().is_empty() {
            return Err(BrokerError::Invalid(
                "say why you need access (--reason)".into(),
            ));
        }
        let access_as = match (as_group, conn.access_as.first()) {
            (Some(g), _) if conn.access_as.iter().any(|a| a == g) => vec![g.to_string()],
            (Some(g), _) => {
                return Err(BrokerError::Invalid(format!(
                    "a grant on \"{connection}\" cannot act as \"{g}\"; it may act as: {}",
                    if conn.access_as.is_empty() {
                        "no group (the connection sets no access_as)".to_string()
                    } else {
                        conn.access_as.join(", ")
                    }
                )))
            }
            (None, Some(first)) => vec![first.clone()],
            (None, None) => Vec::new(),
        };
        let created = now();
        let r = Request {
            id: 0,
            kind: RequestKind::Access,
            status: Status::Pending,
            requester: requester.clone(),
            connection: connection.to_string(),
            session_id: None,
            protocol: None,
            command: None,
            rule: None,
            message: reason.trim().to_string(),
            access_secs: Some(secs),
            access_as,
            expires_at: created + requirement.timeout_secs as i64,
            requirement,
            decisions: Vec::new(),
            created_at: created,
            settled_at: None,
            note: None,
            grant_id: None,
        };
        self.open_request(r).await
    }

    async fn open_request(&self, r: Request) -> Result<Request, BrokerError> {
        let _guard = self.inner.changes.lock().await;
        let mut r = self.insert(r).await?;
        let requested = ApprovalRequested {
            requester: r.requester.clone(),
            command: r.command.clone(),
            rule: r.rule.clone(),
            message: Some(r.message.clone()),
            access_secs: r.access_secs,
            access_as: r.access_as.clone(),
            requirement: Some(r.requirement.clone()),
            expires_at: Some(rfc3339(r.expires_at)),
        };
        let recorded = self
            .record(&r, Event::ApprovalRequested(Box::new(about(&r, requested))))
            .await;
        if let Err(e) = recorded {
            r.status = Status::Withdrawn;
            r.note = Some("the audit trail could not record the request".into());
            let _ = self.save(&r).await;
            return Err(e);
        }
        self.announce("approval.requested", &r);
        Ok(r)
    }

    /// After a restart, or once a stopping gateway has drained its
    /// sessions: command requests still open belong to sessions that no
    /// longer exist, so they are withdrawn (recorded, `why`) and can never
    /// run.
    pub async fn withdraw_orphans(&self, why: &str) -> Result<usize, BrokerError> {
        let open = self
            .requests(RequestFilter {
                statuses: vec![Status::Pending, Status::Approved],
                connection: None,
                limit: 100_000,
            })
            .await?;
        let mut n = 0;
        for r in open.iter().filter(|r| r.kind == RequestKind::Command) {
            self.withdraw_request(r.id, why).await;
            n += 1;
        }
        Ok(n)
    }

    /// Revoke grant `id`; the holder's live sessions on it end.
    pub async fn revoke(&self, id: u64, by: &Identity, reason: &str) -> Result<Grant, BrokerError> {
        if reason.trim().is_empty() {
            return Err(BrokerError::Invalid("say why (--reason)".into()));
        }
        let _guard = self.inner.changes.lock().await;
        let mut grant = self
            .db(move |s| s.grant(id))
            .await?
            .ok_or_else(|| BrokerError::NotFound(format!("grant #{id}")))?;
        if grant.revoked_at.is_some() {
            return Err(BrokerError::Invalid(format!(
                "grant #{id} is already revoked"
            )));
        }
        if !self.may_revoke(&grant, by) {
            return Err(BrokerError::Forbidden(
                "only the grant's holder or an access approver of its connection may revoke it"
                    .into(),
            ));
        }
        let request = self.load(grant.request_id).await?;
        grant.revoked_at = Some(now());
        grant.revoked_by = Some(display_name(by));
        grant.revoke_reason = Some(reason.trim().to_string());
        let revoked = GrantEnded {
            grant_id: id,
            revoked_by: Some(by.clone()),
            reason: Some(reason.trim().to_string()),
        };
        self.record(
            &request,
            Event::GrantRevoked(Box::new(about(&request, revoked))),
        )
        .await?;
        let saved = grant.clone();
        self.db(move |s| s.save_grant(&saved)).await?;
        if let Some((_, tx)) = self.inner.live_grants.lock().remove(&id) {
            let _ = tx.send(Some(format!(
                "access grant #{id} was revoked by {}: {}",
                display_name(by),
                reason.trim()
            )));
        }
        self.announce("grant.revoked", &request);
        Ok(grant)
    }

    /// Whether `who` may revoke `grant` (and so see it): its holder, or an
    /// access approver of its connection.
    pub fn may_revoke(&self, grant: &Grant, who: &Identity) -> bool {
        let holder = grant.holder.subject == who.subject && grant.holder.issuer == who.issuer;
        holder
            || self
                .inner
                .policy
                .connection(&grant.connection)
                .and_then(|c| c.access_policy().ok().flatten())
                .is_some_and(|(req, _)| req.any_of.iter().any(|g| who.in_group(g)))
    }

    /// Grants, newest first; `active_only` keeps those in force now.
    pub async fn grants(&self, active_only: bool) -> Result<Vec<Grant>, BrokerError> {
        let at = active_only.then(now);
        self.db(move |s| s.grants(at)).await
    }

    /// Expire overdue requests and grants; run periodically.
    pub async fn sweep(&self) {
        let overdue = self
            .requests(RequestFilter {
                statuses: vec![Status::Pending],
                connection: None,
                limit: 10_000,
            })
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| now() >= r.expires_at);
        for r in overdue {
            let _guard = self.inner.changes.lock().await;
            if let Ok(mut fresh) = self.load(r.id).await {
                if fresh.status == Status::Pending {
                    if let Err(e) = self.settle_expired(&mut fresh).await {
                        tracing::error!(request = r.id, error = %e, "could not expire request");
                    }
                }
            }
        }
        let ended: Vec<Grant> = {
            let mut live = self.inner.live_grants.lock();
            let ids: Vec<u64> = live
                .values()
                .filter(|(g, _)| !g.active_at(now()))
                .map(|(g, _)| g.id)
                .collect();
            ids.iter()
                .filter_map(|id| live.remove(id))
                .map(|(g, _)| g)
                .collect()
        };
        for g in ended {
            if let Ok(r) = self.load(g.request_id).await {
                let _ = self
                    .record(
                        &r,
                        Event::GrantExpired(about(
                            &r,
                            GrantEnded {
                                grant_id: g.id,
                                ..GrantEnded::default()
                            },
                        )),
                    )
                    .await;
            }
        }
    }

    /// Sweep every `every` until `shutdown` flips.
    pub async fn run_sweeper(self, every: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => self.sweep().await,
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn claim(&self, id: u64) -> Outcome {
        let _guard = self.inner.changes.lock().await;
        let mut r = match self.load(id).await {
            Ok(r) => r,
            Err(e) => return Outcome::Cancelled(e.to_string()),
        };
        if r.status != Status::Approved {
            return Outcome::Cancelled(format!("request #{id} is {}", r.status.as_str()));
        }
        r.status = Status::Executed;
        if let Err(e) = self
            .record(
                &r,
                Event::ApprovalEnded(
                    RequestEnd::Executed,
                    Box::new(about(&r, ApprovalEnded::default())),
                ),
            )
            .await
        {
            return Outcome::Cancelled(e.to_string());
        }
        if let Err(e) = self.save(&r).await {
            return Outcome::Cancelled(e.to_string());
        }
        Outcome::Approved {
            approvers: r
                .decisions
                .iter()
                .filter(|d| d.approve)
                .map(|d| display_name(&d.approver))
                .collect(),
        }
    }

    async fn wait_for(&self, id: u64) -> Outcome {
        let mut rx = self.subscribe(id);
        let outcome = loop {
            let r = match self.load(id).await {
                Ok(r) => r,
                Err(e) => break Outcome::Cancelled(e.to_string()),
            };
            match r.status {
                Status::Pending => {
                    let left = (r.expires_at - now()).max(0) as u64;
                    tokio::select! {
                        changed = rx.changed() => {
                            if changed.is_err() {
                                rx = self.subscribe(id);
                            }
                        }
                        _ = tokio::time::sleep(Duration::from_secs(left)) => {
                            let _guard = self.inner.changes.lock().await;
                            if let Ok(mut fresh) = self.load(id).await {
                                if fresh.status == Status::Pending && now() >= fresh.expires_at {
                                    if let Err(e) = self.settle_expired(&mut fresh).await {
                                        break Outcome::Cancelled(e.to_string());
                                    }
                                }
                            }
                        }
                    }
                }
                Status::Approved => break self.claim(id).await,
                Status::Denied => {
                    let d = r.decisions.iter().rev().find(|d| !d.approve);
                    break Outcome::Denied {
                        approver: d.map(|d| display_name(&d.approver)).unwrap_or_default(),
                        reason: d.map(|d| d.reason.clone()).unwrap_or_default(),
                    };
                }
                Status::Expired => break Outcome::Expired,
                Status::Executed | Status::Withdrawn => {
                    break Outcome::Cancelled(
                        r.note
                            .unwrap_or_else(|| format!("request #{id} is {}", r.status.as_str())),
                    )
                }
            }
        };
        self.inner.waiters.lock().remove(&id);
        outcome
    }

    async fn withdraw_request(&self, id: u64, why: &str) {
        let _guard = self.inner.changes.lock().await;
        let Ok(mut r) = self.load(id).await else {
            return;
        };
        if !matches!(r.status, Status::Pending | Status::Approved) {
            return;
        }
        r.status = Status::Withdrawn;
        r.settled_at = Some(now());
        r.note = Some(why.to_string());
        if let Err(e) = self
            .record(
                &r,
                Event::ApprovalEnded(
                    RequestEnd::Withdrawn,
                    Box::new(about(
                        &r,
                        ApprovalEnded {
                            why: Some(why.to_string()),
                            ..ApprovalEnded::default()
                        },
                    )),
                ),
            )
            .await
        {
            tracing::error!(request = id, error = %e, "could not record withdrawal");
        }
        if let Err(e) = self.save(&r).await {
            tracing::error!(request = id, error = %e, "could not withdraw request");
        }
        self.announce("approval.withdrawn", &r);
        self.wake(id);
    }
}

impl ApprovalBroker for Broker {
    fn open(&self, held: HeldCommand) -> BoxFuture<'_, Result<OpenedRequest, HoldError>> {
        Box::pin(async move {
            let created = now();
            let r = Request {
                id: 0,
                kind: RequestKind::Command,
                status: Status::Pending,
                requester: held.requester,
                connection: held.connection,
                session_id: Some(held.session_id),
                protocol: Some(held.protocol),
                command: Some(held.command),
                rule: Some(held.rule),
                message: held.message,
                access_secs: None,
                access_as: Vec::new(),
                expires_at: created + held.requirement.timeout_secs as i64,
                requirement: held.requirement,
                decisions: Vec::new(),
                created_at: created,
                settled_at: None,
                note: None,
                grant_id: None,
            };
            let r = self.open_request(r).await.map_err(|e| match e {
                BrokerError::Audit(why) => HoldError::NotRecorded(why),
                other => HoldError::Store(other.to_string()),
            })?;
            Ok(OpenedRequest {
                id: r.id,
                link: self.link(r.id),
            })
        })
    }

    fn wait(&self, id: u64) -> BoxFuture<'_, Outcome> {
        Box::pin(self.wait_for(id))
    }

    fn withdraw(&self, id: u64, why: &str) -> BoxFuture<'_, ()> {
        let why = why.to_string();
        Box::pin(async move { self.withdraw_request(id, &why).await })
    }
}

impl AccessGrants for Broker {
    fn active(&self, identity: &Identity, connection: &str) -> Option<GrantLease> {
        let live = self.inner.live_grants.lock();
        let t = now();
        let (grant, tx) = live.values().find(|(g, _)| {
            g.connection == connection
                && g.holder.subject == identity.subject
                && g.holder.issuer == identity.issuer
                && g.active_at(t)
        })?;
        let id = grant.id;
        let expires_at = grant.expires_at;
        let acting_as = grant.access_as.clone();
        let mut rx = tx.subscribe();
        let ended: BoxFuture<'static, String> = Box::pin(async move {
            let left = Duration::from_secs((expires_at - now()).max(0) as u64);
            let revoked = async {
                loop {
                    if let Some(reason) = rx.borrow_and_update().clone() {
                        return reason;
                    }
                    if rx.changed().await.is_err() {
                        // The grant left the live set without a revoke
                        // message: it expired.
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                reason = revoked => reason,
                _ = tokio::time::sleep(left) => format!("access grant #{id} expired"),
            }
        });
        Some(GrantLease {
            id,
            expires_at,
            acting_as,
            ended,
        })
    }
}

/// An approval or grant event about request `r`.
fn about<T>(r: &Request, event: T) -> About<T> {
    About {
        request_id: r.id,
        request_kind: Some(r.kind),
        event,
    }
}
