//! What the events of a period say, gathered once for the report: who
//! connected, what was blocked, held, approved, masked and granted.
//!
//! Everything here is derived from the events alone (no other store is
//! read), so whoever holds the pack can recompute it.

use gatehouse_audit::AuditEvent;
use gatehouse_core::events::{read, CommandEvent};
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
    /// [`command_text`].
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

/// The text of a recorded command, whatever its protocol: PostgreSQL and
/// MySQL record `sql`; SSH records `command` (an exec request or a shell
/// line); HTTP records `request.summary` (method, path, model or
/// Kubernetes verb) and `text` (the prompt or tool call arguments, masked).
pub fn command_text(d: &Value) -> String {
    for key in ["sql", "command"] {
        if let Some(t) = d.get(key).and_then(Value::as_str).filter(|t| !t.is_empty()) {
            return t.to_string();
        }
    }
    let summary = d
        .get("request")
        .map(|r| s(r, "summary"))
        .unwrap_or_default();
    let text = s(d, "text");
    match (summary.is_empty(), text.is_empty()) {
        (false, false) => format!("{summary}\n{text}"),
        (false, true) => summary,
        (true, false) => text,
        (true, true) => String::new(),
    }
}

fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn opt_s(v: &Value, key: &str) -> Option<String> {
    Some(s(v, key)).filter(|t| !t.is_empty())
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
        let events: Vec<&AuditEvent> = events.into_iter().collect();
        let mut f = Facts::default();
        for e in &events {
            f.learn_names(e);
        }
        let mut session_index: BTreeMap<String, usize> = BTreeMap::new();
        for e in events {
            f.add(e, &mut session_index);
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

    /// Remember the email any serialized identity in `e` gives its
    /// (issuer, subject), so every mention of that person reads the same.
    fn learn_names(&mut self, e: &AuditEvent) {
        let d = &e.data;
        for key in [
            "approver",
            "requester",
            "holder",
            "revoked_by",
            "by",
            "identity",
        ] {
            if let Some(v) = d.get(key) {
                if let Some(email) = opt_s(v, "email") {
                    let who = (s(v, "issuer"), s(v, "subject"));
                    self.names.entry(who).or_insert(email);
                }
            }
        }
    }

    /// How a serialized identity is shown: its email, or one the period's
    /// events give its (issuer, subject), else its subject.
    fn display(&self, v: &Value) -> String {
        if let Some(email) = opt_s(v, "email") {
            return email;
        }
        let who = (s(v, "issuer"), s(v, "subject"));
        self.names.get(&who).cloned().unwrap_or(who.1)
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

    fn approval(&mut self, e: &AuditEvent) -> Option<&mut ApprovalFacts> {
        let id = e.data.get("request_id")?.as_u64()?;
        let a = self.approvals.entry(id).or_insert_with(|| ApprovalFacts {
            id,
            kind: s(&e.data, "request_kind"),
            requester: e.subject.clone().unwrap_or_default(),
            connection: e.connection.clone().unwrap_or_default(),
            session: e.session_id.clone(),
            ..ApprovalFacts::default()
        });
        Some(a)
    }

    fn count_masked(&mut self, e: &AuditEvent, session: Option<usize>, subject: &str, today: &str) {
        let Some(Value::Object(masked)) = e.data.get("masked") else {
            return;
        };
        let subject = subject.to_string();
        let today = today.to_string();
        let mut total = 0;
        for (entity, n) in masked {
            let n = n.as_u64().unwrap_or(0);
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
                *self.sessions[i].masked.entry(entity.clone()).or_default() += n;
            }
        }
        if total > 0 {
            self.days.entry(today).or_default().masked += total;
            self.identity(&subject, &e.ts).masked += total;
        }
    }

    fn add(&mut self, e: &AuditEvent, index: &mut BTreeMap<String, usize>) {
        self.events += 1;
        *self.kinds.entry(e.kind.clone()).or_default() += 1;
        let d = &e.data;
        let subject = e.subject.clone().unwrap_or_default();
        let connection = e.connection.clone().unwrap_or_default();
        let session = self.session(e, index);
        let today = day(&e.ts);
        match e.kind.as_str() {
            "session.start" => {
                if let Some(i) = session {
                    let sf = &mut self.sessions[i];
                    sf.started = Some(e.ts.clone());
                    sf.client_addr = s(d, "client_addr");
                    sf.protocol = s(d, "protocol");
                    sf.tls = d.get("tls").and_then(Value::as_bool);
                    sf.grant_id = d.get("grant_id").and_then(Value::as_u64);
                }
                self.days.entry(today).or_default().sessions += 1;
                let id = self.identity(&subject, &e.ts);
                id.sessions += 1;
                id.connections.insert(connection.clone());
                let grant = d
                    .get("grant_id")
                    .and_then(Value::as_u64)
                    .map(|g| format!(" under grant #{g}"))
                    .unwrap_or_default();
                self.trail(
                    &subject,
                    e,
                    "session",
                    format!(
                        "connected to {connection} from {}{}{grant}",
                        s(d, "client_addr"),
                        if d.get("tls").and_then(Value::as_bool) == Some(true) {
                            " over TLS"
                        } else {
                            ""
                        }
                    ),
                );
            }
            "session.end" => {
                if let Some(i) = session {
                    let sf = &mut self.sessions[i];
                    sf.ended = Some(e.ts.clone());
                    sf.duration_ms = d.get("duration_ms").and_then(Value::as_u64);
                    sf.end_reason = opt_s(d, "reason");
                }
                self.identity(&subject, &e.ts);
            }
            "command" => {
                self.commands += 1;
                // The typed event every adapter writes; a record it cannot
                // read still counts, by its raw fields.
                let typed = read::<CommandEvent>(d);
                let verdict = d.get("verdict").cloned().unwrap_or(Value::Null);
                let effect = match &typed {
                    Some(c) => c.verdict.effect().to_string(),
                    None => s(&verdict, "effect"),
                };
                let dayf = self.days.entry(today).or_default();
                dayf.commands += 1;
                if let Some(i) = session {
                    self.sessions[i].commands += 1;
                }
                let id = self.identity(&subject, &e.ts);
                id.commands += 1;
                id.connections.insert(connection.clone());
                let sql = typed
                    .as_ref()
                    .map(CommandEvent::text)
                    .unwrap_or_else(|| command_text(d));
                let protocol = s(d, "protocol");
                let written = typed
                    .as_ref()
                    .map(CommandEvent::tables_written)
                    .unwrap_or_default();
                let command_id = typed
                    .as_ref()
                    .map(|c| c.command_id)
                    .or_else(|| d.get("command_id").and_then(Value::as_u64));
                if let (false, Some(sid), Some(cid), "allow" | "hold") = (
                    written.is_empty(),
                    &e.session_id,
                    command_id,
                    effect.as_str(),
                ) {
                    let grant_id = session.and_then(|i| self.sessions[i].grant_id);
                    self.pending_writes.insert(
                        (sid.clone(), cid),
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
                                approval_request: d.get("approval_request").and_then(Value::as_u64),
                            },
                        ),
                    );
                }
                match effect.as_str() {
                    "block" => {
                        self.days.entry(day(&e.ts)).or_default().blocked += 1;
                        if let Some(i) = session {
                            self.sessions[i].blocked += 1;
                        }
                        self.identity(&subject, &e.ts).blocked += 1;
                        let rule = s(&verdict, "rule");
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
                            connection: connection.clone(),
                            session: e.session_id.clone().unwrap_or_default(),
                            rule,
                            message: s(&verdict, "message"),
                            command: sql,
                            protocol,
                        });
                    }
                    "hold" => {
                        self.held += 1;
                        // The request names the command in one line (an
                        // HTTP request line); the held command's own event
                        // has all of it (the prompt too).
                        if let Some(r) = d.get("approval_request").and_then(Value::as_u64) {
                            self.held_text.insert(r, sql.clone());
                        }
                        self.days.entry(day(&e.ts)).or_default().held += 1;
                        if let Some(i) = session {
                            self.sessions[i].held += 1;
                        }
                        self.identity(&subject, &e.ts).held += 1;
                        let request = d
                            .get("approval_request")
                            .and_then(Value::as_u64)
                            .map(|r| format!(" as request #{r}"))
                            .unwrap_or_default();
                        self.trail(
                            &subject,
                            e,
                            "held",
                            format!(
                                "held for approval{request} by rule {}: {}",
                                s(&verdict, "rule"),
                                short(&sql, 160)
                            ),
                        );
                    }
                    _ => {}
                }
            }
            "command.result" => {
                if let (Some(sid), Some(cid)) =
                    (&e.session_id, d.get("command_id").and_then(Value::as_u64))
                {
                    if let Some((who, w)) = self.pending_writes.remove(&(sid.clone(), cid)) {
                        let failed = d.get("error").is_some_and(|x| !x.is_null());
                        if !failed {
                            self.writes.entry(who).or_default().push(w);
                        }
                    }
                }
                if d.get("sealed_originals").is_some_and(Value::is_string) {
                    self.sealed_results += 1;
                }
                self.count_masked(e, session, &subject, &today);
            }
            // An SSH terminal's masked values are in its recording's event
            // (a `kubectl exec` recording's are already in its result).
            "recording" if s(d, "protocol") != "kubernetes-exec" => {
                self.recordings += 1;
                self.count_masked(e, session, &subject, &today);
            }
            "policy.loaded" => {
                self.policies.push(PolicyFacts {
                    seq: e.seq,
                    ts: e.ts.clone(),
                    reason: s(d, "reason"),
                    sha256: s(d, "sha256"),
                    path: opt_s(d, "path"),
                    excluded: d.get("excluded").and_then(Value::as_u64).unwrap_or(0),
                    text: s(d, "text"),
                });
            }
            "gateway.start" | "gateway.stop" => {
                self.gateway.push(GatewayFacts {
                    seq: e.seq,
                    ts: e.ts.clone(),
                    kind: e.kind.clone(),
                    version: opt_s(d, "version"),
                    key_fingerprint: opt_s(d, "signing_key_fingerprint"),
                });
            }
            "auth.failure" | "access.denied" => {
                self.days.entry(today).or_default().refused += 1;
                let who = if e.kind == "auth.failure" {
                    s(d, "user")
                } else {
                    subject.clone()
                };
                if e.kind == "access.denied" && !subject.is_empty() {
                    self.trail(
                        &subject,
                        e,
                        "denied",
                        format!("refused entry to {connection}: {}", s(d, "reason")),
                    );
                }
                self.refusals.push(RefusalFacts {
                    seq: e.seq,
                    ts: e.ts.clone(),
                    kind: e.kind.clone(),
                    who,
                    connection,
                    client_addr: s(d, "client_addr"),
                    reason: s(d, "reason"),
                });
            }
            "sealed.revealed" => {
                let event_seq = d.get("event_seq").and_then(Value::as_u64).unwrap_or(0);
                let reason = s(d, "reason");
                self.trail(
                    &subject,
                    e,
                    "reveal",
                    format!(
                        "took the sealed originals of event {event_seq}: \u{201c}{reason}\u{201d}"
                    ),
                );
                self.reveals.push(RevealFacts {
                    seq: e.seq,
                    ts: e.ts.clone(),
                    by: d
                        .get("by")
                        .map(|b| self.display(b))
                        .unwrap_or(subject.clone()),
                    event_seq,
                    reason,
                });
            }
            "approval.requested" => {
                let ts = e.ts.clone();
                let requester = d.get("requester").map(|r| self.display(r));
                if let Some(a) = self.approval(e) {
                    a.requested = Some(ts);
                    a.command = opt_s(d, "command");
                    a.rule = opt_s(d, "rule");
                    a.message = opt_s(d, "message");
                    a.access_secs = d.get("access_secs").and_then(Value::as_u64);
                    if let Some(r) = requester {
                        a.requester = r;
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
            }
            "approval.decision" => {
                let null = Value::Null;
                let who = d.get("approver").unwrap_or(&null);
                let approver = self.display(who);
                let approver_subject = s(who, "subject");
                let issuer = s(who, "issuer");
                let decision = s(d, "decision");
                let reason = s(d, "reason");
                let ts = e.ts.clone();
                let mut id = None;
                let mut requester = subject.clone();
                if let Some(a) = self.approval(e) {
                    a.decisions.push(DecisionFacts {
                        approver: approver.clone(),
                        subject: approver_subject.clone(),
                        issuer,
                        decision: decision.clone(),
                        reason: reason.clone(),
                        at: ts,
                    });
                    id = Some(a.id);
                    if !a.requester.is_empty() {
                        requester = a.requester.clone();
                    }
                }
                if !approver_subject.is_empty() {
                    self.identity(&approver_subject, &e.ts).decisions += 1;
                    let verb = if decision == "approve" {
                        "approved"
                    } else {
                        "denied"
                    };
                    self.trail(
                        &approver_subject,
                        e,
                        "decision",
                        format!(
                            "{approver} {verb} {requester}\u{2019}s request #{}: \u{201c}{reason}\u{201d}",
                            id.unwrap_or(0)
                        ),
                    );
                }
            }
            "approval.approved" | "approval.denied" | "approval.expired" | "approval.withdrawn"
            | "approval.executed" => {
                let outcome = e.kind.trim_start_matches("approval.").to_string();
                let ts = e.ts.clone();
                let grant = d.get("grant_id").and_then(Value::as_u64);
                if let Some(a) = self.approval(e) {
                    a.outcome = Some(outcome);
                    a.outcome_at = Some(ts);
                    if grant.is_some() {
                        a.grant_id = grant;
                    }
                }
            }
            "grant.created" => {
                let Some(id) = d.get("grant_id").and_then(Value::as_u64) else {
                    return;
                };
                let holder = d
                    .get("holder")
                    .map(|h| self.display(h))
                    .unwrap_or(subject.clone());
                let g = self.grants.entry(id).or_default();
                g.id = id;
                g.holder = holder;
                g.connection = connection.clone();
                g.request_id = d.get("request_id").and_then(Value::as_u64);
                g.created = Some(e.ts.clone());
                g.expires_at = opt_s(d, "expires_at");
                let text = format!(
                    "granted access to {connection} until {} (grant #{id})",
                    s(d, "expires_at")
                );
                self.trail(&subject, e, "grant", text);
            }
            "grant.revoked" | "grant.expired" => {
                let Some(id) = d.get("grant_id").and_then(Value::as_u64) else {
                    return;
                };
                let by = d
                    .get("revoked_by")
                    .map(|b| self.display(b))
                    .unwrap_or_default();
                let g = self.grants.entry(id).or_default();
                g.id = id;
                if g.connection.is_empty() {
                    g.connection = connection.clone();
                    g.holder = subject.clone();
                }
                if e.kind == "grant.revoked" {
                    g.revoked = Some((e.ts.clone(), by.clone(), s(d, "reason")));
                    let text = format!("grant #{id} revoked by {by}: {}", s(d, "reason"));
                    self.trail(&subject, e, "grant", text);
                } else {
                    g.expired = Some(e.ts.clone());
                }
            }
            _ => {}
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
