//! The report for people: one self-contained, printable page for the period
//! and one timeline page per session. Every value taken from the trail goes
//! through [`esc`]; links are built with [`href`].

use crate::charts::{grouped_bars, horizontal_bars, Series};
use crate::facts::{human_secs, Facts, SessionFacts};
use crate::html::{esc, href, num, page, tag};
use crate::pack::{KeyInfo, Period, RecordingEntry, Segment, SessionEntry};
use gatehouse_audit::{AuditEvent, Checkpoint, SegmentReport, SegmentStart};
use gatehouse_core::events::{
    kind, read, CommandEvent, CommandResult, RecordingEvent, SessionEndEvent, SessionStart,
};
use gatehouse_core::mask::MaskCounts;
use gatehouse_core::verdict::Verdict;
use serde_json::Value;
use std::fmt::Write;

/// Trail entries shown per identity; the rest are in `summary.json`.
const TRAIL_ROWS: usize = 200;

/// What the report needs besides the facts.
pub struct ReportContext<'a> {
    /// When the pack was written.
    pub created_at: &'a str,
    /// Which program wrote it.
    pub generator: &'a str,
    /// The period.
    pub period: &'a Period,
    /// The segment.
    pub segment: &'a Segment,
    /// The signing key.
    pub key: &'a KeyInfo,
    /// The verification of the segment at export.
    pub verification: &'a SegmentReport,
    /// The checkpoints in the pack.
    pub checkpoints: &'a [Checkpoint],
    /// The session recordings.
    pub sessions: &'a [SessionEntry],
    /// The terminal recordings in the pack.
    pub recordings: &'a [RecordingEntry],
    /// Terminal recordings of the period left out, and why.
    pub left_out: &'a [(String, String)],
}

/// "2025-01-01 00:00 UTC to 2025-02-01 00:00 UTC".
pub fn period_text(p: &Period) -> String {
    let show = |t: &Option<String>, none: &str| match t {
        Some(t) => short_ts(t),
        None => none.to_string(),
    };
    format!(
        "{} to {}",
        show(&p.from, "the first event"),
        show(&p.to, "the time of export")
    )
}

/// "2025-01-31T09:15:02.123Z" → "2025-01-31 09:15:02 UTC".
fn short_ts(ts: &str) -> String {
    match (ts.get(..10), ts.get(11..19)) {
        (Some(d), Some(t)) if ts.len() >= 19 => format!("{d} {t} UTC"),
        _ => ts.to_string(),
    }
}

/// Time of day only, for tables within a day-heavy page.
fn ts_cell(ts: &str) -> String {
    format!(
        "<span class=\"mono ts\" title=\"{}\">{}</span>",
        esc(ts),
        esc(&short_ts(ts).replace(" UTC", ""))
    )
}

fn entity_label(entity: &str) -> String {
    match entity {
        "ssn" => "SSN".into(),
        "card_number" => "Card number (PAN)".into(),
        "iban" => "IBAN".into(),
        "aba_routing" => "ABA routing no.".into(),
        "email" => "Email address".into(),
        "phone" => "Phone number".into(),
        "account_number" => "Account number".into(),
        "column" => "Column rule".into(),
        other => other.to_string(),
    }
}

fn duration_text(ms: Option<u64>) -> String {
    match ms {
        None => "—".into(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{}m {:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

fn session_link(ctx: &ReportContext<'_>, id: &str) -> String {
    match ctx.sessions.iter().find(|s| s.id == id) {
        Some(s) => format!(
            "<a class=\"mono\" href=\"{}\">{}</a>",
            href(&s.html_file),
            esc(&short_id(id))
        ),
        None if id.is_empty() => "—".into(),
        None => format!("<span class=\"mono\">{}</span>", esc(&short_id(id))),
    }
}

fn short_id(id: &str) -> String {
    if id.chars().count() > 14 {
        let cut: String = id.chars().take(12).collect();
        format!("{cut}…")
    } else {
        id.to_string()
    }
}

fn card(n: u64, label: &str, alert: bool) -> String {
    format!(
        "<div class=\"card{}\"><div class=\"n\">{}</div><div class=\"l\">{}</div></div>",
        if alert && n > 0 { " alert" } else { "" },
        num(n),
        esc(label)
    )
}

fn start_text(start: &SegmentStart) -> String {
    match start {
        SegmentStart::Genesis => "at event 1 (the first event of the trail)".into(),
        SegmentStart::Checkpoint {
            checkpoint,
            event_seq,
        } => format!("right after signed checkpoint {checkpoint}, which covers event {event_seq}"),
        SegmentStart::Unanchored => "NOT anchored by a signed checkpoint".into(),
        SegmentStart::Empty => "no events".into(),
    }
}

/// The report page.
pub fn report_page(ctx: &ReportContext<'_>, f: &Facts) -> String {
    let mut b = String::new();
    let p = ctx.period;
    let _ = write!(
        b,
        "<header class=\"doc\"><div class=\"kicker\">Gatehouse evidence pack</div>\
         <h1>Access evidence report</h1>\
         <p class=\"muted\">Period: <strong>{period}</strong></p>\
         <dl class=\"meta\"><dt>Events in the period</dt><dd>{n} (events {a}–{z} of the audit trail)</dd>\
         <dt>Generated</dt><dd>{created} by {gen}</dd>\
         <dt>Signed with</dt><dd class=\"mono\">Ed25519 {fp}</dd>{unreadable}</dl></header>",
        period = esc(&period_text(p)),
        n = num(f.events),
        a = p.first_seq,
        z = p.last_seq,
        created = esc(&short_ts(ctx.created_at)),
        gen = esc(ctx.generator),
        fp = esc(&ctx.key.fingerprint),
        unreadable = if f.unreadable.is_empty() {
            String::new()
        } else {
            format!(
                "<dt>Not read</dt><dd class=\"bad\">{} event(s) of a known kind in a shape this version does not read ({}): \
                 counted, not reported on; they are in the pack's events and verify with the chain</dd>",
                num(f.unreadable.values().sum()),
                esc(&f.unreadable.iter().map(|(k, n)| format!("{k} × {n}")).collect::<Vec<_>>().join(", "))
            )
        }
    );

    // Verification verdict up top.
    let v = ctx.verification;
    let (class, headline) = if !v.is_intact() {
        ("bad", "Chain verification at export FAILED")
    } else if v.unsigned_tail > 0 {
        (
            "warn",
            "Chain verified at export; the last events are not yet covered by a checkpoint",
        )
    } else {
        ("ok", "Chain verified at export: intact")
    };
    let _ = write!(
        b,
        "<div class=\"verdict {class}\" id=\"verdict\"><strong>{}</strong><p>Events {}–{} ({} events) link \
         hash to hash; the segment starts {} and {}. {} checkpoint signature(s) checked with the key above.</p>",
        esc(headline),
        ctx.segment.first_seq,
        ctx.segment.last_seq,
        num(ctx.segment.events),
        esc(&start_text(&v.start)),
        match v.closing_checkpoint {
            Some((cp, e)) if v.unsigned_tail == 0 => format!("ends at signed checkpoint {cp}, which covers event {e}"),
            Some((cp, e)) => format!(
                "its last signed checkpoint is {cp} (event {e}); the {} event(s) after it are protected by the hash \
                 chain and this pack's signature only",
                v.unsigned_tail
            ),
            None => format!(
                "no checkpoint covers it: all {} event(s) are protected by the hash chain and this pack's signature only",
                v.unsigned_tail
            ),
        },
        v.checkpoints
    );
    if !v.problems.is_empty() {
        b.push_str("<ul class=\"problems\">");
        for pr in &v.problems {
            let _ = write!(b, "<li>{}</li>", esc(&pr.to_string()));
        }
        b.push_str("</ul>");
    }
    b.push_str(
        "<p class=\"note\">This is the result when the pack was written. Check it yourself, offline, with the \
         gateway's public key obtained from the institution: <code>gatehouse evidence verify THIS_FOLDER \
         --public-key gateway.pub</code>.</p></div>",
    );

    b.push_str(
        "<nav class=\"toc\"><a href=\"#summary\">Summary</a><a href=\"#identities\">Access by identity</a>\
         <a href=\"#sessions\">Sessions</a><a href=\"#approvals\">Approvals</a><a href=\"#blocked\">Blocked attempts</a>\
         <a href=\"#writes\">Data changes</a><a href=\"#masking\">Masking</a><a href=\"#reveals\">Reveals</a><a href=\"#grants\">Access grants</a>\
         <a href=\"#refusals\">Refused sign-ins</a><a href=\"#policy\">Policy in force</a>\
         <a href=\"#chain\">Chain verification</a><a href=\"#custody\">Key custody</a>\
         <a href=\"control-map.html\">Control map</a></nav>",
    );

    // Summary.
    let decided = f
        .approvals
        .values()
        .filter(|a| !a.decisions.is_empty())
        .count() as u64;
    let masked: u64 = f.masking.values().map(|m| m.values).sum();
    b.push_str("<section id=\"summary\"><h2>Summary</h2><div class=\"cards\">");
    b.push_str(&card(f.identities.len() as u64, "identities", false));
    b.push_str(&card(
        f.sessions.iter().filter(|s| s.started.is_some()).count() as u64,
        "sessions started",
        false,
    ));
    b.push_str(&card(f.commands, "commands", false));
    b.push_str(&card(f.blocked.len() as u64, "blocked attempts", true));
    b.push_str(&card(f.held, "held for approval", false));
    b.push_str(&card(decided, "requests decided", false));
    b.push_str(&card(masked, "values masked", false));
    b.push_str(&card(f.refusals.len() as u64, "refused sign-ins", true));
    b.push_str(&card(f.grants.len() as u64, "access grants", false));
    b.push_str("</div>");

    // Figures.
    let days: Vec<String> = f.days.keys().cloned().collect();
    let series = vec![
        Series {
            name: "Sessions",
            color: "#1f4e79",
            values: f.days.values().map(|d| d.sessions).collect(),
        },
        Series {
            name: "Blocked attempts",
            color: "#c0392b",
            values: f.days.values().map(|d| d.blocked).collect(),
        },
        Series {
            name: "Held for approval",
            color: "#d68910",
            values: f.days.values().map(|d| d.held).collect(),
        },
        Series {
            name: "Refused sign-ins",
            color: "#7d3c98",
            values: f.days.values().map(|d| d.refused).collect(),
        },
    ];
    let masking_rows: Vec<(String, u64, &str)> = {
        let mut rows: Vec<(String, u64, &str)> = f
            .masking
            .iter()
            .map(|(e, m)| (entity_label(e), m.values, "#2e7d5b"))
            .collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        rows
    };
    let allowed = f.commands - f.blocked.len() as u64 - f.held;
    let outcome_rows = vec![
        ("Allowed".to_string(), allowed, "#1f4e79"),
        ("Held for approval".to_string(), f.held, "#d68910"),
        ("Blocked".to_string(), f.blocked.len() as u64, "#c0392b"),
    ];
    let _ = write!(
        b,
        "<div class=\"figures\">\
         <figure id=\"fig-activity\">{}<figcaption>Figure 1. Sessions, blocked attempts, held statements and refused \
         sign-ins per day (UTC).</figcaption></figure>\
         <figure id=\"fig-masking\">{}<figcaption>Figure 2. Values masked in results, by type of sensitive data.\
         </figcaption></figure>\
         <figure id=\"fig-outcomes\">{}<figcaption>Figure 3. What happened to the {} commands sent.</figcaption></figure>\
         <figure id=\"fig-identities\">{}<figcaption>Figure 4. Commands per identity (top 8).</figcaption></figure>\
         </div>",
        grouped_bars("Activity per day", &days, &series),
        horizontal_bars("Values masked by type", &masking_rows),
        horizontal_bars("Command outcomes", &outcome_rows),
        num(f.commands),
        horizontal_bars("Commands per identity", &{
            let mut rows: Vec<(String, u64, &str)> = f
                .identities
                .iter()
                .filter(|(_, i)| i.commands > 0)
                .map(|(s, i)| (s.clone(), i.commands, "#5d7ea8"))
                .collect();
            rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            rows.truncate(8);
            rows
        })
    );
    b.push_str(
        "<table><thead><tr><th>Day (UTC)</th><th class=\"num\">Sessions</th><th class=\"num\">Commands</th>\
         <th class=\"num\">Blocked</th><th class=\"num\">Held</th><th class=\"num\">Refused sign-ins</th>\
         <th class=\"num\">Values masked</th></tr></thead><tbody>",
    );
    for (d, x) in &f.days {
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(d),
            num(x.sessions),
            num(x.commands),
            num(x.blocked),
            num(x.held),
            num(x.refused),
            num(x.masked)
        );
    }
    b.push_str("</tbody></table></section>");

    identities_section(&mut b, ctx, f);
    sessions_section(&mut b, ctx, f);
    approvals_section(&mut b, ctx, f);
    blocked_section(&mut b, ctx, f);
    writes_section(&mut b, ctx, f);
    masking_section(&mut b, f);
    reveals_section(&mut b, f);
    grants_section(&mut b, f);
    refusals_section(&mut b, f);
    policy_section(&mut b, f);
    chain_section(&mut b, ctx);
    custody_section(&mut b, ctx, f);

    let _ = write!(
        b,
        "<footer>Gatehouse evidence pack · {} · times are UTC · every value shown comes from the signed audit events in \
         <code>events.jsonl</code>; the figures are also in <code>summary.json</code>. See the \
         <a href=\"control-map.html\">control map</a> for what each part shows for FFIEC, NIST CSF 2.0 and PCI DSS 4.0.1 \
         requirement 10 (it does not claim compliance).</footer>",
        esc(&period_text(p))
    );
    page(&format!("Access evidence report — {}", period_text(p)), &b)
}

fn identities_section(b: &mut String, ctx: &ReportContext<'_>, f: &Facts) {
    b.push_str(
        "<section id=\"identities\" class=\"page\"><h2>Access by identity</h2>\
         <p class=\"muted\">Each verified identity (OIDC subject) seen in the period. The trail lists sessions, blocked and \
         held statements, approval requests and decisions, grants and refusals; every statement of a session is in its \
         recording.</p><table><thead><tr><th>Identity</th><th class=\"num\">Sessions</th><th class=\"num\">Commands</th>\
         <th class=\"num\">Blocked</th><th class=\"num\">Held</th><th class=\"num\">Masked values</th>\
         <th class=\"num\">Decisions made</th><th>Connections</th><th>First seen</th><th>Last seen</th></tr></thead><tbody>",
    );
    for (subject, i) in &f.identities {
        let _ = write!(
            b,
            "<tr><td><a href=\"#id-{anchor}\">{s}</a></td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            num(i.sessions),
            num(i.commands),
            num(i.blocked),
            num(i.held),
            num(i.masked),
            num(i.decisions),
            esc(&i.connections.iter().cloned().collect::<Vec<_>>().join(", ")),
            ts_cell(&i.first_seen),
            ts_cell(&i.last_seen),
            anchor = href(subject),
            s = if subject.is_empty() { "(none)".to_string() } else { esc(subject) },
        );
    }
    b.push_str("</tbody></table>");
    for (subject, i) in &f.identities {
        if i.trail.is_empty() {
            continue;
        }
        let _ = write!(
            b,
            "<div class=\"identity\" id=\"id-{}\"><h3>{}</h3><table><thead><tr><th style=\"width:150px\">Time</th>\
             <th style=\"width:90px\">What</th><th>Detail</th><th style=\"width:120px\">Session</th></tr></thead><tbody>",
            href(subject),
            esc(subject)
        );
        for t in i.trail.iter().take(TRAIL_ROWS) {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td class=\"sql\">{}</td><td>{}</td></tr>",
                ts_cell(&t.ts),
                tag(t.label, t.label),
                esc(&t.text),
                t.session
                    .as_deref()
                    .map_or("—".to_string(), |s| session_link(ctx, s))
            );
        }
        b.push_str("</tbody></table>");
        if i.trail.len() > TRAIL_ROWS {
            let _ = write!(
                b,
                "<p class=\"note\">The first {TRAIL_ROWS} of {} entries are shown; all of them are in \
                 <code>summary.json</code> and every event is in <code>events.jsonl</code>.</p>",
                num(i.trail.len() as u64)
            );
        }
        b.push_str("</div>");
    }
    b.push_str("</section>");
}

fn sessions_section(b: &mut String, ctx: &ReportContext<'_>, f: &Facts) {
    let _ = write!(
        b,
        "<section id=\"sessions\" class=\"page\"><h2>Sessions</h2><p class=\"muted\">{} session(s). Each links to its \
         recording: a timeline page and the session's events as JSON lines (byte for byte the lines of \
         <code>events.jsonl</code>).</p><table><thead><tr><th>Session</th><th>Identity</th><th>Connection</th>\
         <th>Client</th><th>Started</th><th>Ended</th><th class=\"num\">Duration</th><th class=\"num\">Commands</th>\
         <th class=\"num\">Blocked</th><th class=\"num\">Held</th><th class=\"num\">Masked</th></tr></thead><tbody>",
        f.sessions.len()
    );
    for s in &f.sessions {
        let raw = ctx
            .sessions
            .iter()
            .find(|e| e.id == s.id)
            .map_or(String::new(), |e| {
                format!(
                    "<br><a class=\"note\" href=\"{}\">events (jsonl)</a>",
                    href(&e.events_file)
                )
            });
        let _ = write!(
            b,
            "<tr><td>{}{raw}</td><td>{}</td><td>{}</td><td class=\"mono\">{}{}</td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            session_link(ctx, &s.id),
            esc(&s.subject),
            esc(&s.connection),
            esc(&s.client_addr),
            if s.tls == Some(true) { " · TLS" } else { "" },
            s.started.as_deref().map_or("before the period".to_string(), ts_cell),
            s.ended.as_deref().map_or("after the period".to_string(), ts_cell),
            duration_text(s.duration_ms),
            num(s.commands),
            num(s.blocked),
            num(s.held),
            num(s.masked_total()),
        );
    }
    b.push_str("</tbody></table>");
    let _ = write!(
        b,
        "<h3 id=\"recordings\">Terminal recordings</h3><p class=\"muted\">{} recording(s) of SSH terminals and \
         <code>kubectl exec</code> streams, masked as they were written, are in <code>recordings/</code>, each the very \
         file whose SHA-256 the audit trail recorded when it was closed. Each has a player page that works offline.</p>",
        ctx.recordings.len()
    );
    if !ctx.recordings.is_empty() {
        b.push_str(
            "<table><thead><tr><th>Recording</th><th>Session</th><th class=\"num\">Event</th>\
             <th class=\"num\">Size</th><th>SHA-256</th></tr></thead><tbody>",
        );
        for r in ctx.recordings {
            let _ = write!(
                b,
                "<tr><td><a class=\"mono\" href=\"{}\">{}</a> (<a href=\"{}\">file</a>)</td><td>{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"mono\">{}…</td></tr>",
                href(&r.player),
                esc(&r.file),
                href(&r.path),
                session_link(ctx, &r.session),
                r.event_seq,
                num(r.size),
                esc(r.sha256.get(..16).unwrap_or(&r.sha256))
            );
        }
        b.push_str("</tbody></table>");
    }
    for (file, why) in ctx.left_out {
        let _ = write!(
            b,
            "<p class=\"note\">{} recording <span class=\"mono\">{}</span> is not in this pack: {}.</p>",
            tag("warn", "left out"),
            esc(file),
            esc(why)
        );
    }
    b.push_str("</section>");
}

fn approvals_section(b: &mut String, ctx: &ReportContext<'_>, f: &Facts) {
    let _ = write!(
        b,
        "<section id=\"approvals\"><h2>Approvals</h2><p class=\"muted\">{} request(s): statements held for a person's \
         approval and requests for time-bound access. A held statement never reached the database before it was \
         approved; requesters cannot approve their own requests.</p>",
        f.approvals.len()
    );
    if f.approvals.is_empty() {
        b.push_str("<p>No approval requests in this period.</p></section>");
        return;
    }
    b.push_str(
        "<table><thead><tr><th>#</th><th>Requester</th><th>Connection</th><th>What</th><th>Rule / reason</th>\
         <th>Requested</th><th>Decisions (approver, time, justification)</th><th>Outcome</th></tr></thead><tbody>",
    );
    for a in f.approvals.values() {
        let what = match (&a.command, a.access_secs) {
            (Some(c), _) => format!("<pre>{}</pre>", esc(c)),
            (None, Some(secs)) => format!("access for {}", esc(&human_secs(secs))),
            _ => esc(&a.kind),
        };
        let why = match (&a.rule, &a.message) {
            (Some(r), Some(m)) => format!(
                "<span class=\"mono\">{}</span><br><span class=\"note\">{}</span>",
                esc(r),
                esc(m)
            ),
            (Some(r), None) => format!("<span class=\"mono\">{}</span>", esc(r)),
            (None, Some(m)) => format!("\u{201c}{}\u{201d}", esc(m)),
            (None, None) => "—".into(),
        };
        let mut decisions = String::new();
        for d in &a.decisions {
            let _ = write!(
                decisions,
                "<div>{} <strong>{}</strong> at {}<br><span class=\"note mono\">sub {} · iss {}</span><br>\u{201c}{}\u{201d}</div>",
                tag(
                    &d.decision,
                    if d.decision == "approve" {
                        "approved"
                    } else {
                        "denied"
                    }
                ),
                esc(&d.approver),
                ts_cell(&d.at),
                esc(&d.subject),
                esc(&d.issuer),
                esc(&d.reason)
            );
        }
        if decisions.is_empty() {
            decisions = "<span class=\"muted\">none</span>".into();
        }
        let outcome = match &a.outcome {
            Some(o) => format!(
                "{}<br>{}{}",
                tag(o, o),
                a.outcome_at.as_deref().map_or(String::new(), ts_cell),
                a.grant_id.map_or(String::new(), |g| format!(
                    "<br>created <a href=\"#grants\">grant #{g}</a>"
                ))
            ),
            None => tag("warn", "pending at end of period"),
        };
        let session = a
            .session
            .as_deref()
            .map_or(String::new(), |s| format!("<br>{}", session_link(ctx, s)));
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"sql\">{what}</td><td>{why}</td><td>{}{session}</td>\
             <td>{decisions}</td><td>{outcome}</td></tr>",
            a.id,
            esc(&a.requester),
            esc(&a.connection),
            a.requested
                .as_deref()
                .map_or("before the period".to_string(), ts_cell),
        );
    }
    b.push_str("</tbody></table></section>");
}

fn blocked_section(b: &mut String, ctx: &ReportContext<'_>, f: &Facts) {
    let _ = write!(
        b,
        "<section id=\"blocked\"><h2>Blocked attempts</h2><p class=\"muted\">{} command(s) refused by policy \
         (SQL statements, SSH commands, HTTP requests and prompts). None of them reached the target.</p>",
        f.blocked.len()
    );
    if f.blocked.is_empty() {
        b.push_str("<p>No statements were blocked in this period.</p></section>");
        return;
    }
    b.push_str(
        "<table><thead><tr><th>Time</th><th>Identity</th><th>Connection</th><th>Rule</th><th>Command</th>\
         <th>Message to the client</th><th>Session</th></tr></thead><tbody>",
    );
    for x in &f.blocked {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"sql\"><pre>{}</pre></td>\
             <td>{}</td><td>{}</td></tr>",
            ts_cell(&x.ts),
            esc(&x.subject),
            esc(&x.connection),
            esc(&x.rule),
            esc(&x.command),
            esc(&x.message),
            session_link(ctx, &x.session)
        );
    }
    b.push_str("</tbody></table></section>");
}

fn writes_section(b: &mut String, ctx: &ReportContext<'_>, f: &Facts) {
    let total: usize = f.writes.values().map(Vec::len).sum();
    let granted: usize = f
        .writes
        .values()
        .flatten()
        .filter(|w| w.grant_id.is_some())
        .count();
    let _ = write!(
        b,
        "<section id=\"writes\"><h2>Data changes by identity</h2><p class=\"muted\">{} command(s) changed data: \
         statements that write tables, allowed or run after approval, whose result reported no error. {} of them \
         ran in a session opened under a time-bound access grant (marked below).</p>",
        num(total as u64),
        num(granted as u64)
    );
    if total == 0 {
        b.push_str("<p>No command changed data in this period.</p></section>");
        return;
    }
    for (subject, writes) in &f.writes {
        let mut tables: std::collections::BTreeMap<&str, Vec<&crate::facts::WriteFacts>> =
            std::collections::BTreeMap::new();
        for w in writes {
            for t in &w.tables {
                tables.entry(t.as_str()).or_default().push(w);
            }
        }
        let _ = write!(
            b,
            "<h3>{}</h3><table><thead><tr><th>Table</th><th style=\"width:150px\">Time</th><th>Connection</th>\
             <th>Statement</th><th>Under</th><th>Session</th></tr></thead><tbody>",
            esc(subject)
        );
        for (table, ws) in tables {
            for w in ws {
                let mut under = Vec::new();
                if let Some(g) = w.grant_id {
                    under.push(tag("warn", &format!("access grant #{g}")));
                }
                if let Some(r) = w.approval_request {
                    under.push(format!("approval #{r}"));
                }
                let _ = write!(
                    b,
                    "<tr><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td class=\"sql\"><pre>{}</pre></td>\
                     <td>{}</td><td>{}</td></tr>",
                    esc(table),
                    ts_cell(&w.ts),
                    esc(&w.connection),
                    esc(&w.command),
                    if under.is_empty() {
                        "—".to_string()
                    } else {
                        under.join(" ")
                    },
                    session_link(ctx, &w.session)
                );
            }
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>");
}

fn policy_section(b: &mut String, f: &Facts) {
    b.push_str(
        "<section id=\"policy\"><h2>Policy in force</h2><p class=\"muted\">Each time the gateway starts it records a <code>policy.loaded</code> event with the SHA-256 of the \
         configuration text as loaded, and that text with any inline secret values excluded (secrets are \
         references such as <code>password_env</code>; the event's <code>text</code> field holds the file). \
         <code>gateway.start</code> and <code>gateway.stop</code> events bracket each run.</p>",
    );
    if f.policies.is_empty() && f.gateway.is_empty() {
        b.push_str(
            "<p>No policy was loaded and the gateway neither started nor stopped within this period: the policy in \
             force is the one recorded at the last start before it (see an earlier pack, or <code>gatehouse audit \
             export</code>).</p></section>",
        );
        return;
    }
    b.push_str(
        "<table><thead><tr><th class=\"num\">Event</th><th style=\"width:150px\">Time</th><th>What</th>\
         <th>Detail</th></tr></thead><tbody>",
    );
    let mut rows: Vec<(u64, String)> = Vec::new();
    for p in &f.policies {
        rows.push((
            p.seq,
            format!(
                "<tr><td class=\"num mono\">{}</td><td>{}</td><td>{}</td><td>SHA-256 <span class=\"mono\">{}</span>{}{}</td></tr>",
                p.seq,
                ts_cell(&p.ts),
                tag("", &format!("policy loaded ({})", p.reason)),
                esc(&p.sha256),
                p.path
                    .as_deref()
                    .map_or(String::new(), |x| format!("<br>from <span class=\"mono\">{}</span>", esc(x))),
                if p.excluded > 0 {
                    format!("<br>{} inline secret value(s) excluded from the recorded text", p.excluded)
                } else {
                    String::new()
                }
            ),
        ));
    }
    for g in &f.gateway {
        rows.push((
            g.seq,
            format!(
                "<tr><td class=\"num mono\">{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
                g.seq,
                ts_cell(&g.ts),
                tag(
                    if g.kind == "gateway.stop" {
                        "warn"
                    } else {
                        "ok"
                    },
                    if g.kind == "gateway.stop" {
                        "gateway stopped"
                    } else {
                        "gateway started"
                    }
                ),
                g.version
                    .as_deref()
                    .map_or(String::new(), |v| format!("version {}", esc(v))),
                g.key_fingerprint
                    .as_deref()
                    .map_or(String::new(), |k| format!(
                        "; signing key <span class=\"mono\">{}</span>",
                        esc(k)
                    ))
            ),
        ));
    }
    rows.sort_by_key(|r| r.0);
    for (_, row) in rows {
        b.push_str(&row);
    }
    b.push_str("</tbody></table>");
    let distinct: std::collections::BTreeSet<&str> =
        f.policies.iter().map(|p| p.sha256.as_str()).collect();
    if distinct.len() > 1 {
        let _ = write!(
            b,
            "<p class=\"note\">The policy changed during the period: {} different versions were loaded.</p>",
            distinct.len()
        );
    }
    for p in &f.policies {
        let _ = write!(
            b,
            "<details><summary>Configuration loaded at event {} (SHA-256 <span class=\"mono\">{}…</span>)</summary>\
             <pre>{}</pre></details>",
            p.seq,
            esc(p.sha256.get(..16).unwrap_or(&p.sha256)),
            esc(&p.text)
        );
    }
    b.push_str("</section>");
}

fn custody_section(b: &mut String, ctx: &ReportContext<'_>, f: &Facts) {
    let mut fingerprints: Vec<(String, String)> = Vec::new();
    for g in &f.gateway {
        if let Some(k) = &g.key_fingerprint {
            if fingerprints.last().map(|x| &x.0) != Some(k) {
                fingerprints.push((k.clone(), g.ts.clone()));
            }
        }
    }
    let _ = write!(
        b,
        "<section id=\"custody\"><h2>Signing key custody</h2>\
         <p>Checkpoints and this pack's manifest are signed with the gateway's Ed25519 key. Its private half is a file \
         on the gateway host (<code>[audit] signing_key</code>, by default <code>audit-signing.key</code> in the \
         gateway's state folder, readable only by the gateway's user); its public half is next to it \
         (<code>.pub</code>) and is printed by <code>gatehouse audit public-key</code>. The key's fingerprint is \
         SHA256 of the raw 32-byte public key.</p>\
         <dl class=\"meta\"><dt>Key of this pack</dt><dd class=\"mono\">{}</dd>\
         <dt>Checkpoints in the pack</dt><dd>{} — every one verified with this key (a checkpoint names no key: it \
         verifies with exactly one)</dd></dl>",
        esc(&ctx.key.fingerprint),
        ctx.checkpoints.len()
    );
    if fingerprints.is_empty() {
        b.push_str(
            "<p>No gateway start in this period announced its key; the key above signed every checkpoint in the \
             pack.</p>",
        );
    } else {
        b.push_str(
            "<table><thead><tr><th>Key fingerprint announced at gateway start</th><th>From</th></tr></thead><tbody>",
        );
        for (k, ts) in &fingerprints {
            let _ = write!(
                b,
                "<tr><td class=\"mono\">{}{}</td><td>{}</td></tr>",
                esc(k),
                if *k == ctx.key.fingerprint {
                    ""
                } else {
                    " (a different key: checkpoints it signed do not verify with this pack's key)"
                },
                ts_cell(ts)
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str(
        "<p><strong>Limits.</strong> Whoever holds the private key and the audit store could rewrite the whole store \
         and re-sign it: the chain and the checkpoints alone cannot show that. The external anchor file \
         (<code>[audit] anchor_file</code>) is the defence: after committing each checkpoint the gateway appends a \
         copy of it (one JSON line, the same form as <code>checkpoints.jsonl</code>) to that file, meant to live on \
         another volume or be shipped to write-once storage, so a rollback or rewrite of the store together with \
         its key leaves checkpoints the anchor holds and the store does not (<code>gatehouse audit verify</code> \
         reports it, and the gateway refuses to resume such a store). Ask the institution for the anchor's copy \
         and check that every checkpoint of this pack is in it, byte for byte.</p></section>",
    );
}

fn masking_section(b: &mut String, f: &Facts) {
    let total: u64 = f.masking.values().map(|m| m.values).sum();
    let _ = write!(
        b,
        "<section id=\"masking\"><h2>Masking</h2><p class=\"muted\">{} value(s) were masked in results and terminal \
         output before they left the gateway. The counts come from each result's audit event and, for SSH terminals, \
         from each recording's event ({} recording(s)); a <code>kubectl exec</code> stream's are in its result. The \
         audit trail itself holds only masked values (its result samples and recordings are masked too). \
         \u{201c}Results\u{201d} counts results and recordings.</p>",
        num(total),
        num(f.recordings)
    );
    if f.masking.is_empty() {
        b.push_str("<p>No values were masked in this period.</p></section>");
        return;
    }
    b.push_str(
        "<table><thead><tr><th>Type of data</th><th class=\"num\">Values masked</th><th class=\"num\">Results</th>\
         <th class=\"num\">Sessions</th><th>Received (masked) by</th></tr></thead><tbody>",
    );
    for (entity, m) in &f.masking {
        let _ = write!(
            b,
            "<tr><td>{} <span class=\"mono note\">{}</span></td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&entity_label(entity)),
            esc(entity),
            num(m.values),
            num(m.results),
            num(m.sessions.len() as u64),
            esc(&m.identities.iter().cloned().collect::<Vec<_>>().join(", "))
        );
    }
    b.push_str("</tbody></table></section>");
}

fn reveals_section(b: &mut String, f: &Facts) {
    if f.sealed_results == 0 && f.reveals.is_empty() {
        b.push_str(
            "<section id=\"reveals\"><h2>Sealed originals and reveals</h2><p>No result in this period carries sealed \
             originals (sealing to an investigator's key is off, or nothing masked was captured), and none were \
             revealed.</p></section>",
        );
        return;
    }
    let _ = write!(
        b,
        "<section id=\"reveals\"><h2>Sealed originals and reveals</h2><p class=\"muted\">{} result(s) in the \
         period carry the original values behind their masked sample cells, sealed to an investigator's public key: \
         the gateway cannot read them. Each time an auditor took them through the gateway it was recorded first, with \
         who and why.</p>",
        num(f.sealed_results)
    );
    if f.reveals.is_empty() {
        b.push_str("<p>No sealed originals were revealed in this period.</p></section>");
        return;
    }
    b.push_str(
        "<table><thead><tr><th>Time</th><th>By</th><th class=\"num\">Event</th><th>Reason</th></tr></thead><tbody>",
    );
    for r in &f.reveals {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            ts_cell(&r.ts),
            esc(&r.by),
            r.event_seq,
            esc(&r.reason)
        );
    }
    b.push_str("</tbody></table></section>");
}

fn grants_section(b: &mut String, f: &Facts) {
    let _ = write!(
        b,
        "<section id=\"grants\"><h2>Access grants</h2><p class=\"muted\">{} time-bound grant(s) to connections the \
         holder's groups do not reach, each created by an approved access request.</p>",
        f.grants.len()
    );
    if f.grants.is_empty() {
        b.push_str("<p>No access grants in this period.</p></section>");
        return;
    }
    b.push_str(
        "<table><thead><tr><th>Grant</th><th>Holder</th><th>Connection</th><th>Request</th><th>Created</th>\
         <th>Expires</th><th>Ended</th><th class=\"num\">Sessions</th></tr></thead><tbody>",
    );
    for g in f.grants.values() {
        let ended = match (&g.revoked, &g.expired) {
            (Some((at, by, why)), _) => format!(
                "{} {} by {}: \u{201c}{}\u{201d}",
                tag("bad", "revoked"),
                ts_cell(at),
                esc(by),
                esc(why)
            ),
            (None, Some(at)) => format!("{} {}", tag("expired", "expired"), ts_cell(at)),
            (None, None) => "<span class=\"muted\">not within the period</span>".into(),
        };
        let _ = write!(
            b,
            "<tr><td>#{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{ended}</td>\
             <td class=\"num\">{}</td></tr>",
            g.id,
            esc(&g.holder),
            esc(&g.connection),
            g.request_id.map_or("—".to_string(), |r| format!("#{r}")),
            g.created.as_deref().map_or("before the period".to_string(), ts_cell),
            g.expires_at.as_deref().map_or("—".to_string(), ts_cell),
            num(g.sessions)
        );
    }
    b.push_str("</tbody></table></section>");
}

fn refusals_section(b: &mut String, f: &Facts) {
    let _ = write!(
        b,
        "<section id=\"refusals\"><h2>Refused sign-ins and connections</h2><p class=\"muted\">{} attempt(s): tokens \
         that failed validation (<code>auth.failure</code>) and verified identities refused a connection \
         (<code>access.denied</code>). Past the sign-in limits, failures are counted in one \
         <code>auth.failure.summary</code> per window instead of one event each. Tokens themselves are never recorded.</p>",
        f.refusals.len()
    );
    if f.refusals.is_empty() {
        b.push_str("<p>No refused sign-ins in this period.</p></section>");
        return;
    }
    b.push_str(
        "<table><thead><tr><th>Time</th><th>Kind</th><th>User / identity</th><th>Connection</th><th>Client</th>\
         <th>Reason</th></tr></thead><tbody>",
    );
    for r in &f.refusals {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td></tr>",
            ts_cell(&r.ts),
            tag(
                "bad",
                match r.kind.as_str() {
                    "auth.failure" => "sign-in failed",
                    "auth.failure.summary" => "sign-ins failed (counted)",
                    _ => "access denied",
                }
            ),
            esc(&r.who),
            esc(&r.connection),
            esc(&r.client_addr),
            esc(&r.reason)
        );
    }
    b.push_str("</tbody></table></section>");
}

fn chain_section(b: &mut String, ctx: &ReportContext<'_>) {
    let s = ctx.segment;
    let _ = write!(
        b,
        "<section id=\"chain\" class=\"page\"><h2>Chain verification</h2>\
         <p>The period's events are a segment of the gateway's hash-chained audit trail. To be checked without the \
         gateway, the segment is widened so that it starts {} and ends at a signed checkpoint: events {}–{} are in \
         <code>events.jsonl</code> ({} in the period itself: events {}–{}), and the checkpoints anchoring them in \
         <code>checkpoints.jsonl</code>.</p>\
         <dl class=\"meta\"><dt>Segment</dt><dd>events {}–{} ({} events)</dd>\
         <dt>Start</dt><dd>{}</dd><dt>End</dt><dd>{}</dd>\
         <dt>Unsigned tail</dt><dd>{}</dd><dt>Key</dt><dd class=\"mono\">{}</dd></dl>",
        esc(&start_text(&s.start)),
        s.first_seq,
        s.last_seq,
        num(ctx.period.last_seq + 1 - ctx.period.first_seq),
        ctx.period.first_seq,
        ctx.period.last_seq,
        s.first_seq,
        s.last_seq,
        num(s.events),
        esc(&start_text(&s.start)),
        match s.closing_checkpoint {
            Some((cp, e)) => format!("signed checkpoint {cp}, covering event {e}"),
            None => "no signed checkpoint".into(),
        },
        if s.unsigned_tail == 0 {
            "none: every event is covered by a signed checkpoint".to_string()
        } else {
            format!(
                "{} event(s) after the last checkpoint, protected by the hash chain and this pack's signature only",
                s.unsigned_tail
            )
        },
        esc(&ctx.key.fingerprint)
    );
    b.push_str(
        "<table><thead><tr><th class=\"num\">Checkpoint</th><th class=\"num\">Covers event</th><th>Signed at</th>\
         <th>Event hash it signed</th><th>Signature (Ed25519, first bytes)</th></tr></thead><tbody>",
    );
    for cp in ctx.checkpoints {
        let _ = write!(
            b,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"mono\">{}…</td>\
             <td class=\"mono\">{}…</td></tr>",
            cp.seq,
            cp.event_seq,
            ts_cell(&cp.ts),
            esc(cp.event_hash.get(..16).unwrap_or(&cp.event_hash)),
            esc(cp.signature.get(..24).unwrap_or(&cp.signature))
        );
    }
    b.push_str("</tbody></table>");
    b.push_str(
        "<h3>How to verify this pack</h3><ol><li>Obtain the gateway's public key from the institution through a \
         separate channel (the operator prints it with <code>gatehouse audit public-key --config FILE</code>) and \
         compare its fingerprint with the one above.</li><li>Run <code>gatehouse evidence verify THIS_FOLDER \
         --public-key gateway.pub</code>. It checks the manifest's signature, every file's size and SHA-256, that no \
         file was added or removed, every event's hash and link, every checkpoint's signature and signed hash, both \
         anchors of the segment, and that each session recording is exactly its events. It names every problem.</li>\
         <li>Or check it without the vendor's binary: <code>SPEC.md</code> in this folder specifies every format \
         and check, and an independent verifier written from it ships with Gatehouse \
         (<code>python3 tools/verify_pack.py THIS_FOLDER --public-key gateway.pub</code>, Python 3 with the \
         <code>cryptography</code> package).</li></ol></section>",
    );
}

/// One session's timeline page (in `sessions/`).
pub fn session_page(
    id: &str,
    facts: Option<&SessionFacts>,
    events: &[&AuditEvent],
    raw_file: &str,
    recordings: &[RecordingEntry],
) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<header class=\"doc\"><div class=\"kicker\">Gatehouse evidence pack · session recording</div>\
         <h1>Session <span class=\"mono\">{}</span></h1>\
         <p><a href=\"../report.html#sessions\">&larr; Back to the report</a> · events as JSON lines: \
         <a href=\"{}\">{}</a></p>",
        esc(id),
        href(raw_file),
        esc(raw_file)
    );
    if let Some(s) = facts {
        let _ = write!(
            b,
            "<dl class=\"meta\"><dt>Identity</dt><dd>{}</dd><dt>Connection</dt><dd>{}</dd><dt>Client</dt><dd class=\"mono\">{}{}</dd>\
             <dt>Started</dt><dd>{}</dd><dt>Ended</dt><dd>{}</dd><dt>Duration</dt><dd>{}</dd>\
             <dt>Commands</dt><dd>{} ({} blocked, {} held)</dd><dt>Values masked</dt><dd>{}</dd></dl>",
            esc(&s.subject),
            esc(&s.connection),
            esc(&s.client_addr),
            if s.tls == Some(true) { " (TLS)" } else { "" },
            s.started.as_deref().map_or("before the period".into(), short_ts),
            s.ended.as_deref().map_or("after the period".into(), short_ts),
            duration_text(s.duration_ms),
            num(s.commands),
            num(s.blocked),
            num(s.held),
            if s.masked.is_empty() {
                "none".to_string()
            } else {
                esc(&s
                    .masked
                    .iter()
                    .map(|(k, v)| format!("{} {}", num(*v), entity_label(k)))
                    .collect::<Vec<_>>()
                    .join(", "))
            }
        );
    }
    b.push_str("</header>");
    b.push_str(
        "<table><thead><tr><th class=\"num\">Event</th><th style=\"width:150px\">Time</th><th style=\"width:110px\">Kind</th>\
         <th>Detail</th></tr></thead><tbody>",
    );
    for e in events {
        let _ = write!(
            b,
            "<tr id=\"e{seq}\"><td class=\"num mono\">{seq}</td><td>{}</td><td>{}</td><td class=\"sql\">{}</td></tr>",
            ts_cell(&e.ts),
            event_tag(e),
            event_detail(e, recordings),
            seq = e.seq
        );
    }
    b.push_str("</tbody></table>");
    b.push_str(
        "<footer>Every row is one signed audit event; its exact content is the matching line of the JSON-lines file \
         above, which <code>gatehouse evidence verify</code> checks against the chain. Result samples are masked.</footer>",
    );
    page(&format!("Session {id} — Gatehouse evidence pack"), &b)
}

fn event_tag(e: &AuditEvent) -> String {
    if e.kind == kind::COMMAND {
        let effect = read::<CommandEvent>(&e.data).map_or("?", |c| c.verdict.effect());
        return tag(effect, &format!("command · {effect}"));
    }
    let class = match e.kind.as_str() {
        "approval.denied" | "approval.expired" | "approval.withdrawn" => "warn",
        "approval.approved" | "approval.executed" => "ok",
        _ => "",
    };
    tag(class, &e.kind)
}

/// `2 SSN, 1 Email address`, or `None` when nothing was masked.
fn mask_list(counts: &MaskCounts) -> Option<String> {
    let list: Vec<String> = counts
        .iter()
        .map(|(entity, n)| format!("{n} {}", entity_label(entity.as_str())))
        .collect();
    (!list.is_empty()).then(|| list.join(", "))
}

/// `; masked 2 SSN, 1 Email address` (nothing when nothing was masked).
fn push_mask_counts(out: &mut String, counts: &MaskCounts) {
    if let Some(list) = mask_list(counts) {
        let _ = write!(out, "; masked {}", esc(&list));
    }
}

/// One row of a session's timeline. The session's own events are read as
/// their types (`core::events`); an event that does not have its kind's
/// shape, and every other kind, is shown as its JSON, so nothing is hidden.
fn event_detail(e: &AuditEvent, recordings: &[RecordingEntry]) -> String {
    let d = &e.data;
    let typed = match e.kind.as_str() {
        kind::SESSION_START => read(d).map(|s| session_start_detail(e, &s)),
        kind::SESSION_END => read(d).map(|s| session_end_detail(&s)),
        kind::COMMAND => read(d).map(|c| command_detail(&c)),
        kind::COMMAND_RESULT => read(d).map(|r| result_detail(&r)),
        kind::RECORDING => read(d).map(|r| recording_detail(e, &r, recordings)),
        _ => None,
    };
    typed.unwrap_or_else(|| {
        format!(
            "<pre>{}</pre>",
            esc(&serde_json::to_string(d).unwrap_or_default())
        )
    })
}

fn session_start_detail(e: &AuditEvent, s: &SessionStart) -> String {
    format!(
        "{} connected to {} from <span class=\"mono\">{}</span> ({}, TLS {}){}",
        esc(e.subject.as_deref().unwrap_or_default()),
        esc(e.connection.as_deref().unwrap_or_default()),
        esc(&s.client_addr),
        esc(&s.protocol),
        if s.tls == Some(true) { "on" } else { "off" },
        s.grant_id
            .map_or(String::new(), |g| format!(", under grant #{g}"))
    )
}

fn session_end_detail(s: &SessionEndEvent) -> String {
    format!(
        "ended ({}): {} commands, {} blocked, {}",
        esc(&s.reason),
        s.commands,
        s.blocked,
        duration_text(Some(s.duration_ms))
    )
}

fn command_detail(c: &CommandEvent) -> String {
    let mut out = format!("<pre>{}</pre>", esc(&c.text()));
    if let Some(rule) = c.verdict.rule() {
        let _ = write!(
            out,
            "<div class=\"note\">rule <span class=\"mono\">{}</span>",
            esc(rule)
        );
        if let Verdict::Hold { message, .. } | Verdict::Block { message, .. } = &c.verdict {
            let _ = write!(out, ": {}", esc(message));
        }
        out.push_str("</div>");
    }
    if let Some(r) = c.approval_request {
        let _ = write!(out, "<div class=\"note\">approval request #{r}</div>");
    }
    out
}

fn result_detail(r: &CommandResult) -> String {
    let mut out = format!(
        "result of command {}: {} row(s) in {}",
        r.command_id,
        r.rows.unwrap_or(0),
        duration_text(r.duration_us.map(|us| us / 1000))
    );
    push_mask_counts(&mut out, &r.masked);
    if let Some(err) = r.error.as_ref().filter(|v| !v.is_null()) {
        let field = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let _ = write!(
            out,
            "<div class=\"note\">error {}: {}</div>",
            esc(&field("sqlstate")),
            esc(&field("message"))
        );
    }
    if let Some(rows) = &r.result_sample {
        out.push_str("<table class=\"sample\">");
        if let Some(names) = &r.columns {
            out.push_str("<thead><tr>");
            for name in names {
                let _ = write!(out, "<th>{}</th>", esc(name));
            }
            out.push_str("</tr></thead>");
        }
        out.push_str("<tbody>");
        for row in rows {
            out.push_str("<tr>");
            for cell in row.as_array().into_iter().flatten() {
                let shown = match cell {
                    Value::Null => "NULL".to_string(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let _ = write!(out, "<td class=\"mono\">{}</td>", esc(&shown));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table><div class=\"note\">sample rows, as the client received them (masked)</div>");
    }
    out
}

fn recording_detail(e: &AuditEvent, r: &RecordingEvent, recordings: &[RecordingEntry]) -> String {
    let r = &r.recording;
    let mut out = format!(
        "terminal recording <span class=\"mono\">{}</span> ({} bytes, SHA-256 <span class=\"mono\">{}</span>)",
        esc(&r.file),
        r.size,
        esc(&r.sha256)
    );
    push_mask_counts(&mut out, &r.masked);
    match recordings.iter().find(|r| r.event_seq == e.seq) {
        Some(r) => {
            let _ = write!(
                out,
                "<div><a href=\"../{}\">play it</a> · <a href=\"../{}\">the file</a></div>",
                href(&r.player),
                href(&r.path)
            );
        }
        None => out.push_str("<div class=\"note\">not included in this pack</div>"),
    }
    out
}

/// A terminal recording's player page (in `recordings/`): the vendored
/// asciinema-player plays the recording embedded in the page (a page
/// opened from disk cannot fetch the file beside it), with no network.
pub fn player_page(file: &str, e: &AuditEvent, cast: &str) -> String {
    let recorded = read::<RecordingEvent>(&e.data).map(|r| r.recording);
    let masked = recorded
        .as_ref()
        .and_then(|r| mask_list(&r.masked))
        .unwrap_or_else(|| "none".into());
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'self' file: \
         'wasm-unsafe-eval'; style-src 'self' file: 'unsafe-inline'; img-src data:; font-src data:\">\n\
         <title>Recording {title} — Gatehouse evidence pack</title>\n\
         <link rel=\"stylesheet\" href=\"player/asciinema-player.css\">\n\
         <style>body{{font:14px/1.5 -apple-system,\"Segoe UI\",Arial,sans-serif;margin:0;color:#1c2430}}\
         main{{max-width:1100px;margin:0 auto;padding:24px 32px}}.mono{{font-family:monospace}}\
         .muted{{color:#5b6675}}</style>\n</head>\n<body>\n<main>\n\
         <p class=\"muted\">Gatehouse evidence pack · terminal recording</p>\n\
         <h1 class=\"mono\">{title}</h1>\n\
         <p><a href=\"../report.html#sessions\">&larr; Back to the report</a> · session <span class=\"mono\">{session}</span> \
         · {who} on {conn} · recorded as event {seq} (SHA-256 <span class=\"mono\">{sha}</span>) · values masked: {masked} · \
         <a href=\"{link}\">the file</a> (asciicast v2)</p>\n\
         <div id=\"player\"></div>\n\
         <noscript><p>The player needs JavaScript; the recording is the file above, plain JSON lines.</p></noscript>\n\
         <pre id=\"cast\" hidden>{cast}</pre>\n\
         <script src=\"player/asciinema-player.min.js\"></script>\n<script src=\"player/play.js\"></script>\n\
         </main>\n</body>\n</html>\n",
        title = esc(file),
        session = esc(e.session_id.as_deref().unwrap_or("")),
        who = esc(e.subject.as_deref().unwrap_or("")),
        conn = esc(e.connection.as_deref().unwrap_or("")),
        seq = e.seq,
        sha = esc(recorded.as_ref().map_or("", |r| r.sha256.as_str())),
        masked = esc(&masked),
        link = href(file),
        cast = esc(cast),
    )
}
