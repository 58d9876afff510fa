//! What the events of a period say, gathered once for the report: who
//! connected, what was blocked, held, approved, masked and granted.
//!
//! Everything here is derived from the events alone (no other store is
//! read), so whoever holds the pack can recompute it.

use gatehouse_audit::AuditEvent;
use gatehouse_core::events::{kind, Choice, CommandEvent, Event, RequestKind};
use gatehouse_core::mask::MaskCounts;
use gatehouse_core::{Identity, Verdict};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One identity's activity in the period.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IdentityFacts {
    /// Sessions started.
    pub sessions: u64,
    /// Commands sent.
    pub commands: u64,
    /// Commands blocked.
    pub blocked: u64,
    /// Commands held for approval.
    pub held: u64,
    /// Values masked in their results.
    pub masked: u64,
    /// Decisions they made as an approver.
    pub decisions: u64,
    /// Connections they used or asked for.
    pub connections: BTreeSet<String>,
    /// First event naming them.
    pub first_seen: String,
    /// Last event naming them.
    pub last_seen: String,
    /// Notable events, in order (not every allowed command: those are in the
    /// session recordings).
    pub trail: Vec<TrailEntry>,
}

/// One line of an identity's access trail.
#[derive(Debug, Clone, Serialize)]
pub struct TrailEntry {
    /// Event seq.
    pub seq: u64,
    /// Event time.
    pub ts: String,
    /// A short label: "session", "blocked", "held", "approval", "grant", …
    pub label: &'static str,
    /// What happened, plain text (escaped when rendered).
    pub text: String,
    /// The session, when the entry belongs to one.
    pub session: Option<String>,
}

/// One session as the period's events show it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionFacts {
    /// Session id.
    pub id: String,
    /// Identity subject.
    pub subject: String,
    /// Connection.
    pub connection: String,
    /// Client address.
    pub client_addr: String,
    /// Protocol.
    pub protocol: String,
    /// Whether the client used TLS.
    pub tls: Option<bool>,
    /// `session.start` time, when in the period.
    pub started: Option<String>,
    /// `session.end` time, when in the period.
    pub ended: Option<String>,
    /// Duration (from `session.end`).
    pub duration_ms: Option<u64>,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// The grant it ran under, if any.
    pub grant_id: Option<u64>,
    /// Commands.
    pub commands: u64,
    /// Blocked commands.
    pub blocked: u64,
    /// Held commands.
    pub held: u64,
    /// Masked values by entity type.
    pub masked: BTreeMap<String, u64>,
    /// Events of this session in the pack.
    pub events: u64,
}

impl SessionFacts {
    /// Masked values, all types.
    pub fn masked_total(&self) -> u64 {
        self.masked.values().sum()
    }
}

/// One approval request (held command or access request).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApprovalFacts {
    /// Request number.
    pub id: u64,
    /// `command` or `access`.
    pub kind: String,
    /// Requester subject.
    pub requester: String,
    /// Connection.
    pub connection: String,
    /// The held statement (command requests).
    pub command: Option<String>,
    /// The rule that held it (command requests).
    pub rule: Option<String>,
    /// The rule's message, or the requester's reason (access requests).
    pub message: Option<String>,
    /// Access asked for, seconds (access requests).
    pub access_secs: Option<u64>,
    /// When it was requested (None when before the period).
    pub requested: Option<String>,
    /// Decisions, in order.
    pub decisions: Vec<DecisionFacts>,
    /// Last outcome: approved, denied, expired, withdrawn, executed (None
    /// while pending at the end of the period).
    pub outcome: Option<String>,
    /// When the outcome was recorded.
    pub outcome_at: Option<String>,
    /// The session it was held in.
    pub session: Option<String>,
    /// The grant it created.
    pub grant_id: Option<u64>,
}

/// One approver's decision.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionFacts {
    /// The approver as shown to people: their email when any event of the
    /// period names one for this subject and issuer, else the subject, so
    /// a decision from the CLI and one from the console read the same.
    pub approver: String,
    /// The approver's token subject (`sub`).
    pub subject: String,
    /// The approver's token issuer (`iss`).
    pub issuer: String,
    /// `approve` or `deny`.
    pub decision: String,
    /// Justification.
    pub reason: String,
    /// When.
    pub at: String,
}

/// A command the gateway refused.
#[derive(Debug, Clone, Serialize)]
pub struct BlockedFacts {
    /// Event seq.
    pub seq: u64,
    /// When.
    pub ts: String,
    /// Who.
    pub subject: String,
    /// Where.
    pub connection: String,
    /// In which session.
    pub session: String,
    /// The rule.
    pub rule: String,
    /// The message the client got.
    pub message: String,
    /// The command as recorded (SQL with secrets redacted, the SSH exec or
    /// shell line, the HTTP request line and the prompt): see
    /// [`CommandEvent::text`].
    pub command: String,
    /// The protocol (`postgres`, `mysql`, `ssh`, `http`).
    pub protocol: String,
}

/// A command that changed data (a statement writing tables, allowed or run
/// after approval, whose result reported no error).
#[derive(Debug, Clone, Serialize)]
pub struct WriteFacts {
    /// Event seq of the command.
    pub seq: u64,
    /// When it was sent.
    pub ts: String,
    /// Connection.
    pub connection: String,
    /// Session.
    pub session: String,
    /// Tables it wrote.
    pub tables: Vec<String>,
    /// The statement.
    pub command: String,
    /// The access grant its session ran under.
    pub grant_id: Option<u64>,
    /// The approval request it ran after.
    pub approval_request: Option<u64>,
}

/// A `policy.loaded` event: the policy in force from then on.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyFacts {
    /// Event seq.
    pub seq: u64,
    /// When it was loaded.
    pub ts: String,
    /// `start` or `reload`.
    pub reason: String,
    /// SHA-256 of the configuration text as the gateway loaded it.
    pub sha256: String,
    /// The file it came from, when known.
    pub path: Option<String>,
    /// Inline secret values excluded from the text.
    pub excluded: u64,
    /// The configuration text as recorded (inline secrets excluded).
    pub text: String,
}

/// A `gateway.start` or `gateway.stop` event.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayFacts {
    /// Event seq.
    pub seq: u64,
    /// When.
    pub ts: String,
    /// `gateway.start` or `gateway.stop`.
    pub kind: String,
    /// The gateway's version.
    pub version: Option<String>,
    /// The checkpoint signing key's fingerprint it announced.
    pub key_fingerprint: Option<String>,
}

/// Masking of one entity type.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MaskingFacts {
    /// Values masked.
    pub values: u64,
    /// Results in which at least one was masked.
    pub results: u64,
    /// Sessions in which at least one was masked.
    pub sessions: BTreeSet<String>,
    /// Identities who received masked values.
    pub identities: BTreeSet<String>,
}

/// One access grant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GrantFacts {
    /// Grant number.
    pub id: u64,
    /// Holder subject.
    pub holder: String,
    /// Connection.
    pub connection: String,
    /// The access request that created it.
    pub request_id: Option<u64>,
    /// When it was created (None when before the period).
    pub created: Option<String>,
    /// When it expires (as granted).
    pub expires_at: Option<String>,
    /// When it was revoked, by whom and why.
    pub revoked: Option<(String, String, String)>,
    /// When its expiry was recorded.
    pub expired: Option<String>,
    /// Sessions opened under it.
    pub sessions: u64,
}

/// A refused sign-in or connection.
#[derive(Debug, Clone, Serialize)]
pub struct RefusalFacts {
    /// Event seq.
    pub seq: u64,
    /// When.
    pub ts: String,
    /// `auth.failure` or `access.denied`.
    pub kind: String,
    /// Who (the verified subject for access.denied; the claimed user otherwise).
    pub who: String,
    /// Connection asked for.
    pub connection: String,
    /// From where.
    pub client_addr: String,
    /// Why.
    pub reason: String,
}

/// An investigator taking an event's sealed originals.
#[derive(Debug, Clone, Serialize)]
pub struct RevealFacts {
    /// Event seq of the reveal.
    pub seq: u64,
    /// When.
    pub ts: String,
    /// Who (auditor subject).
    pub by: String,
    /// Which event's originals.
    pub event_seq: u64,
    /// Why.
    pub reason: String,
}

/// Counts for one day (UTC).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DayFacts {
    /// Sessions started.
    pub sessions: u64,
    /// Commands.
    pub commands: u64,
    /// Blocked commands.
    pub blocked: u64,
    /// Held commands.
    pub held: u64,
    /// Auth failures and access denials.
    pub refused: u64,
    /// Masked values.
    pub masked: u64,
}

/// Everything the report shows about a period.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Facts {
    /// Events in the period.
    pub events: u64,
    /// Events by kind.
    pub kinds: BTreeMap<String, u64>,
    /// By identity subject.
    pub identities: BTreeMap<String, IdentityFacts>,
    /// By session id, in order of first appearance.
    pub sessions: Vec<SessionFacts>,
    /// By request number.
    pub approvals: BTreeMap<u64, ApprovalFacts>,
    /// Refused commands.
    pub blocked: Vec<BlockedFacts>,
    /// By entity type.
    pub masking: BTreeMap<String, MaskingFacts>,
    /// By grant number.
    pub grants: BTreeMap<u64, GrantFacts>,
    /// Failed sign-ins and refused connections.
    pub refusals: Vec<RefusalFacts>,
    /// Reveals of sealed originals.
    pub reveals: Vec<RevealFacts>,
    /// Results whose masked originals were sealed.
    pub sealed_results: u64,
    /// By day (`YYYY-MM-DD`, UTC).
    pub days: BTreeMap<String, DayFacts>,
    /// Commands in the period.
    pub commands: u64,
    /// Commands held for approval.
    pub held: u64,
    /// Commands that changed data, by identity subject.
    pub writes: BTreeMap<String, Vec<WriteFacts>>,
    /// Policies loaded, in order.
    pub policies: Vec<PolicyFacts>,
    /// Gateway starts and stops, in order.
    pub gateway: Vec<GatewayFacts>,
    /// Terminal recordings (SSH) whose masked values are counted here:
    /// their `recording` events, as the results do not carry them.
    pub recordings: u64,
    /// Events of a kind with a type whose body did not read as it
    /// (another version's shape): counted by kind only, and named in the
    /// report so nothing is silently left out.
    pub unreadable: BTreeMap<String, u64>,
    /// Canonical display name by (issuer, subject): see [`DecisionFacts`].
    #[serde(skip)]
    names: BTreeMap<(String, String), String>,
    /// The full text of each held command, by approval request.
    #[serde(skip)]
    held_text: BTreeMap<u64, String>,
    /// Write commands sent, waiting for their result, by (session, command id).
    #[serde(skip)]
    pending_writes: BTreeMap<(String, u64), (String, WriteFacts)>,
}

fn day(ts: &str) -> String {
    ts.get(..10).unwrap_or(ts).to_string()
}

fn short(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}…")
    }
}

impl Facts {
    /// Gather the facts of `events` (those of the period, in seq order).
    pub fn gather<'a>(events: impl IntoIterator<Item = &'a AuditEvent>) -> Facts {
        // Each event read once as its type (`None`: a kind without one, or
        // a body without its kind's shape, counted by kind only).
        let events: Vec<(&AuditEvent, Option<Event>)> = events
            .into_iter()
            .map(|e| (e, Event::read(&e.kind, &e.data)))
            .collect();
        let mut f = Facts::default();
        for (_, typed) in &events {
            for who in typed.iter().flat_map(Event::people) {
                if let Some(email) = &who.email {
                    f.names
                        .entry((who.issuer.clone(), who.subject.clone()))
                        .or_insert_with(|| email.clone());
                }
            }
        }
        let mut session_index: BTreeMap<String, usize> = BTreeMap::new();
        for (e, typed) in events {
            f.add(e, typed, &mut session_index);
        }
        for (id, text) in std::mem::take(&mut f.held_text) {
            if let Some(a) = f.approvals.get_mut(&id) {
                if !text.is_empty() && a.command.as_ref().is_none_or(|c| c.len() < text.len()) {
                    a.command = Some(text);
                }
            }
        }
        for g in f.grants.values_mut() {
            g.sessions = f
                .sessions
                .iter()
                .filter(|s| s.grant_id == Some(g.id))
                .count() as u64;
        }
        f
    }

    /// How an identity is shown: its email, or one the period's events
    /// give its (issuer, subject), else its subject.
    fn display(&self, who: &Identity) -> String {
        if let Some(email) = &who.email {
            return email.clone();
        }
        let key = (who.issuer.clone(), who.subject.clone());
        self.names.get(&key).cloned().unwrap_or(key.1)
    }

    fn identity(&mut self, subject: &str, ts: &str) -> &mut IdentityFacts {
        let id = self.identities.entry(subject.to_string()).or_default();
        if id.first_seen.is_empty() {
            id.first_seen = ts.to_string();
        }
        id.last_seen = ts.to_string();
        id
    }

    fn trail(&mut self, subject: &str, e: &AuditEvent, label: &'static str, text: String) {
        let entry = TrailEntry {
            seq: e.seq,
            ts: e.ts.clone(),
            label,
            text,
            session: e.session_id.clone(),
        };
        self.identity(subject, &e.ts).trail.push(entry);
    }

    fn session(&mut self, e: &AuditEvent, index: &mut BTreeMap<String, usize>) -> Option<usize> {
        let id = e.session_id.as_ref()?;
        let i = *index.entry(id.clone()).or_insert_with(|| {
            self.sessions.push(SessionFacts {
                id: id.clone(),
                subject: e.subject.clone().unwrap_or_default(),
                connection: e.connection.clone().unwrap_or_default(),
                ..SessionFacts::default()
            });
            self.sessions.len() - 1
        });
        self.sessions[i].events += 1;
        Some(i)
    }

    /// The facts of request `id`, first seen in event `e`.
    fn approval(
        &mut self,
        e: &AuditEvent,
        id: u64,
        kind: Option<RequestKind>,
    ) -> &mut ApprovalFacts {
        self.approvals.entry(id).or_insert_with(|| ApprovalFacts {
            id,
            kind: match kind {
                Some(RequestKind::Access) => "access".into(),
                Some(RequestKind::Command) => "command".into(),
                None => String::new(),
            },
            requester: e.subject.clone().unwrap_or_default(),
            connection: e.connection.clone().unwrap_or_default(),
            session: e.session_id.clone(),
            ..ApprovalFacts::default()
        })
    }

    fn count_masked(
        &mut self,
        e: &AuditEvent,
        masked: &MaskCounts,
        session: Option<usize>,
        subject: &str,
        today: &str,
    ) {
        let subject = subject.to_string();
        let today = today.to_string();
        let mut total = 0;
        for (entity, &n) in masked.iter() {
            let entity = entity.as_str().to_string();
            if n == 0 {
                continue;
            }
            total += n;
            let m = self.masking.entry(entity.clone()).or_default();
            m.values += n;
            m.results += 1;
            if let Some(sid) = &e.session_id {
                m.sessions.insert(sid.clone());
            }
            m.identities.insert(subject.clone());
            if let Some(i) = session {
                *self.sessions[i].masked.entry(entity).or_default() += n;
            }
        }
        if total > 0 {
            self.days.entry(today).or_default().masked += total;
            self.identity(&subject, &e.ts).masked += total;
        }
    }

    fn add(&mut self, e: &AuditEvent, typed: Option<Event>, index: &mut BTreeMap<String, usize>) {
        self.events += 1;
        *self.kinds.entry(e.kind.clone()).or_default() += 1;
        let subject = e.subject.clone().unwrap_or_default();
        let connection = e.connection.clone().unwrap_or_default();
        let session = self.session(e, index);
        let today = day(&e.ts);
        let Some(typed) = typed else {
            if kind::is_typed(&e.kind) {
                *self.unreadable.entry(e.kind.clone()).or_default() += 1;
            }
            return;
        };
        match typed {
            Event::SessionStart(start) => {
                if let Some(i) = session {
                    let sf = &mut self.sessions[i];
                    sf.started = Some(e.ts.clone());
                    sf.client_addr = start.client_addr.clone();
                    sf.protocol = start.protocol.clone();
                    sf.tls = start.tls;
                    sf.grant_id = start.grant_id;
                }
                self.days.entry(today).or_default().sessions += 1;
                let id = self.identity(&subject, &e.ts);
                id.sessions += 1;
                id.connections.insert(connection.clone());
                let grant = start
                    .grant_id
                    .map(|g| format!(" under grant #{g}"))
                    .unwrap_or_default();
                self.trail(
                    &subject,
                    e,
                    "session",
                    format!(
                        "connected to {connection} from {}{}{grant}",
                        start.client_addr,
                        if start.tls == Some(true) {
                            " over TLS"
                        } else {
                            ""
                        }
                    ),
                );
            }
            Event::SessionEnd(end) => {
                if let Some(i) = session {
                    let sf = &mut self.sessions[i];
                    sf.ended = Some(e.ts.clone());
                    sf.duration_ms = Some(end.duration_ms);
                    sf.end_reason = Some(end.reason).filter(|r| !r.is_empty());
                }
                self.identity(&subject, &e.ts);
            }
            Event::Command(c) => self.add_command(e, &c, session, &subject, &connection),
            Event::CommandResult(r) => {
                if let Some(sid) = &e.session_id {
                    if let Some((who, w)) = self.pending_writes.remove(&(sid.clone(), r.command_id))
                    {
                        if r.error.as_ref().is_none_or(Value::is_null) {
                            self.writes.entry(who).or_default().push(w);
                        }
                    }
                }
                if r.sealed_originals.is_some() {
                    self.sealed_results += 1;
                }
                self.count_masked(e, &r.masked, session, &subject, &today);
            }
            // An SSH terminal's masked values are in its recording's event
            // (a `kubectl exec` recording's are already in its result).
            Event::Recording(r) if r.protocol != "kubernetes-exec" => {
                self.recordings += 1;
                self.count_masked(e, &r.recording.masked, session, &subject, &today);
            }
            // A download on a masking connection: what was masked in the
            // file on its way to the client.
            Event::FileTransfer(t) => {
                if let Some(m) = &t.masking {
                    self.count_masked(e, &m.masked, session, &subject, &today);
                }
            }
            Event::PolicyLoaded(p) => {
                self.policies.push(PolicyFacts {
                    seq: e.seq,
                    ts: e.ts.clone(),
                    reason: p.reason,
                    sha256: p.sha256,
                    path: p.path,
                    excluded: p.excluded,
                    text: p.text,
                });
            }
            Event::GatewayStart(g) => self.gateway.push(GatewayFacts {
                seq: e.seq,
                ts: e.ts.clone(),
                kind: e.kind.clone(),
                version: g.version,
                key_fingerprint: g.signing_key_fingerprint,
            }),
            Event::GatewayStop(g) => self.gateway.push(GatewayFacts {
                seq: e.seq,
                ts: e.ts.clone(),
                kind: e.kind.clone(),
                version: g.version,
                key_fingerprint: None,
            }),
            Event::AuthFailure(failed) => {
                self.days.entry(today).or_default().refused += 1;
                self.refusals.push(RefusalFacts {
                    seq: e.seq,
                    ts: e.ts.clone(),
                    kind: e.kind.clone(),
                    who: failed.user,
                    connection,
                    client_addr: failed.refused.client_addr,
                    reason: failed.refused.reason,
                });
            }
            Event::AuthFailureSummary(summary) => {
                self.days.entry(today).or_default().refused += summary.total();
                let names = |top: &[(String, u64)]| {
                    top.iter()
                        .map(|(k, n)| format!("{k} ({n})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                self.refusals.push(RefusalFacts {
                    seq: e.seq,
                    ts: e.ts.clone(),
                    kind: e.kind.clone(),
                    who: names(&summary.users),
                    connection,
                    client_addr: names(&summary.addresses),
                    reason: format!(
                        "{} failed sign-ins counted, not recorded one by one ({} refused unchecked past the per-address limit) between {} and {}",
                        summary.total(),
                        summary.refused_unchecked,
                        summary.from,
                        summary.to
                    ),
                });
            }
            Event::AccessDenied(denied) => {
                self.days.entry(today).or_default().refused += 1;
                if !subject.is_empty() {
                    self.trail(
                        &subject,
                        e,
                        "denied",
                        format!("refused entry to {connection}: {}", denied.reason),
                    );
                }
                self.refusals.push(RefusalFacts {
                    seq: e.seq,
                    ts: e.ts.clone(),
                    kind: e.kind.clone(),
                    who: subject.clone(),
                    connection,
                    client_addr: denied.client_addr,
                    reason: denied.reason,
                });
            }
            Event::SealedRevealed(r) => {
                self.trail(
                    &subject,
                    e,
                    "reveal",
                    format!(
                        "took the sealed originals of event {}: \u{201c}{}\u{201d}",
                        r.event_seq, r.reason
                    ),
                );
                self.reveals.push(RevealFacts {
                    seq: e.seq,
                    ts: e.ts.clone(),
                    by: self.display(&r.by),
                    event_seq: r.event_seq,
                    reason: r.reason,
                });
            }
            Event::ApprovalRequested(r) => {
                let requester = self.display(&r.event.requester);
                let a = self.approval(e, r.request_id, r.request_kind);
                a.requested = Some(e.ts.clone());
                a.command = r.event.command;
                a.rule = r.event.rule;
                a.message = r.event.message.filter(|m| !m.is_empty());
                a.access_secs = r.event.access_secs;
                if !r.event.requester.subject.is_empty() {
                    a.requester = requester;
                }
                let text = match (&a.command, a.access_secs) {
                    (Some(c), _) => format!("request #{} to run: {}", a.id, short(c, 140)),
                    (None, Some(secs)) => format!(
                        "request #{} for access to {} for {}: {}",
                        a.id,
                        a.connection,
                        human_secs(secs),
                        a.message.clone().unwrap_or_default()
                    ),
                    _ => format!("request #{}", a.id),
                };
                self.trail(&subject, e, "request", text);
            }
            Event::ApprovalDecision(d) => {
                let approver = self.display(&d.event.approver);
                let decision = match d.event.decision {
                    Choice::Approve => "approve",
                    Choice::Deny => "deny",
                };
                let a = self.approval(e, d.request_id, d.request_kind);
                a.decisions.push(DecisionFacts {
                    approver: approver.clone(),
                    subject: d.event.approver.subject.clone(),
                    issuer: d.event.approver.issuer.clone(),
                    decision: decision.to_string(),
                    reason: d.event.reason.clone(),
                    at: e.ts.clone(),
                });
                let requester = Some(a.requester.clone())
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| subject.clone());
                let approver_subject = &d.event.approver.subject;
                if !approver_subject.is_empty() {
                    self.identity(approver_subject, &e.ts).decisions += 1;
                    let verb = match d.event.decision {
                        Choice::Approve => "approved",
                        Choice::Deny => "denied",
                    };
                    self.trail(
                        approver_subject,
                        e,
                        "decision",
                        format!(
                            "{approver} {verb} {requester}\u{2019}s request #{}: \u{201c}{}\u{201d}",
                            d.request_id, d.event.reason
                        ),
                    );
                }
            }
            Event::ApprovalEnded(end, a) => {
                let facts = self.approval(e, a.request_id, a.request_kind);
                facts.outcome = Some(end.word().to_string());
                facts.outcome_at = Some(e.ts.clone());
            }
            Event::GrantCreated(g) => {
                let id = g.event.grant_id;
                let holder = self.display(&g.event.holder);
                self.approval(e, g.request_id, g.request_kind).grant_id = Some(id);
                let facts = self.grants.entry(id).or_default();
                facts.id = id;
                facts.holder = holder;
                facts.connection = connection.clone();
                facts.request_id = Some(g.request_id);
                facts.created = Some(e.ts.clone());
                facts.expires_at = Some(g.event.expires_at.clone()).filter(|x| !x.is_empty());
                let text = format!(
                    "granted access to {connection} until {} (grant #{id})",
                    g.event.expires_at
                );
                self.trail(&subject, e, "grant", text);
            }
            Event::GrantRevoked(g) => {
                let id = g.event.grant_id;
                let by = g
                    .event
                    .revoked_by
                    .as_ref()
                    .map(|b| self.display(b))
                    .unwrap_or_default();
                let reason = g.event.reason.clone().unwrap_or_default();
                self.grant_ended(id, &connection, &subject).revoked =
                    Some((e.ts.clone(), by.clone(), reason.clone()));
                let text = format!("grant #{id} revoked by {by}: {reason}");
                self.trail(&subject, e, "grant", text);
            }
            Event::GrantExpired(g) => {
                self.grant_ended(g.event.grant_id, &connection, &subject)
                    .expired = Some(e.ts.clone());
            }
            _ => {}
        }
    }

    /// The facts of grant `id` as an end event finds them (created, if
    /// its creation is before the period, with what the end event says).
    fn grant_ended(&mut self, id: u64, connection: &str, holder: &str) -> &mut GrantFacts {
        let g = self.grants.entry(id).or_default();
        g.id = id;
        if g.connection.is_empty() {
            g.connection = connection.to_string();
            g.holder = holder.to_string();
        }
        g
    }

    /// A `command` event: counted, written-to tables remembered until its
    /// result, blocked and held ones listed.
    fn add_command(
        &mut self,
        e: &AuditEvent,
        c: &CommandEvent,
        session: Option<usize>,
        subject: &str,
        connection: &str,
    ) {
        let subject = subject.to_string();
        let connection = connection.to_string();
        self.commands += 1;
        let effect = c.verdict.effect();
        let dayf = self.days.entry(day(&e.ts)).or_default();
        dayf.commands += 1;
        if let Some(i) = session {
            self.sessions[i].commands += 1;
        }
        let id = self.identity(&subject, &e.ts);
        id.commands += 1;
        id.connections.insert(connection.clone());
        let sql = c.text();
        let written = c.tables_written();
        if let (false, Some(sid), "allow" | "hold") = (written.is_empty(), &e.session_id, effect) {
            let grant_id = session.and_then(|i| self.sessions[i].grant_id);
            self.pending_writes.insert(
                (sid.clone(), c.command_id),
                (
                    subject.clone(),
                    WriteFacts {
                        seq: e.seq,
                        ts: e.ts.clone(),
                        connection: connection.clone(),
                        session: sid.clone(),
                        tables: written,
                        command: sql.clone(),
                        grant_id,
                        approval_request: c.approval_request,
                    },
                ),
            );
        }
        let rule = c.verdict.rule().unwrap_or_default().to_string();
        match &c.verdict {
            Verdict::Block { message, .. } => {
                self.days.entry(day(&e.ts)).or_default().blocked += 1;
                if let Some(i) = session {
                    self.sessions[i].blocked += 1;
                }
                self.identity(&subject, &e.ts).blocked += 1;
                self.trail(
                    &subject,
                    e,
                    "blocked",
                    format!("blocked by rule {rule}: {}", short(&sql, 160)),
                );
                self.blocked.push(BlockedFacts {
                    seq: e.seq,
                    ts: e.ts.clone(),
                    subject: subject.clone(),
                    connection,
                    session: e.session_id.clone().unwrap_or_default(),
                    rule,
                    message: message.clone(),
                    command: sql,
                    protocol: c.protocol.clone(),
                });
            }
            Verdict::Hold { .. } => {
                self.held += 1;
                // The request names the command in one line (an HTTP
                // request line); the held command's own event has all of
                // it (the prompt too).
                if let Some(r) = c.approval_request {
                    self.held_text.insert(r, sql.clone());
                }
                self.days.entry(day(&e.ts)).or_default().held += 1;
                if let Some(i) = session {
                    self.sessions[i].held += 1;
                }
                self.identity(&subject, &e.ts).held += 1;
                let request = c
                    .approval_request
                    .map(|r| format!(" as request #{r}"))
                    .unwrap_or_default();
                self.trail(
                    &subject,
                    e,
                    "held",
                    format!(
                        "held for approval{request} by rule {rule}: {}",
                        short(&sql, 160)
                    ),
                );
            }
            Verdict::Allow { .. } => {}
        }
    }
}

/// "2h", "30m", "45s".
pub fn human_secs(secs: u64) -> String {
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}
