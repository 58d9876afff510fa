//! Verifying a *segment* of the chain: the events an evidence pack carries
//! for a period, with the signed checkpoints that anchor both of its ends.
//!
//! A segment `a..=b` verifies offline from nothing but its events, its
//! checkpoints and the public key when:
//!
//! * its start is anchored: `a` is event 1 (whose `prev_hash` is the genesis
//!   value), or a signed checkpoint in the segment's checkpoint list covers
//!   event `a - 1` and signed exactly the hash event `a` links to;
//! * every event links to the one before it and its content matches its hash;
//! * every checkpoint's signature verifies, checkpoints are numbered without
//!   gaps and each links to the one before it, and each signed the stored
//!   hash of the event it covers;
//! * its end is anchored: a signed checkpoint covers event `b`. Events after
//!   the last checkpoint are reported as an *unsigned tail*: protected by the
//!   hash chain only.
//!
//! Unlike [`crate::verify`], which stops at the first break, this reports
//! every problem it can tell apart (up to [`MAX_PROBLEMS`]), each checked on
//! its own: an edited field, a missing event and a forged checkpoint in the
//! same segment each get their own line.

use crate::chain::GENESIS_HASH;
use crate::checkpoint::Checkpoint;
use crate::error::AuditError;
use crate::event::AuditEvent;
use crate::verify::BadEvent;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::BufRead;

/// Problems listed before the report stops adding more.
pub const MAX_PROBLEMS: usize = 50;

/// What anchors the first event of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SegmentStart {
    /// The segment starts at event 1, whose `prev_hash` is the genesis value.
    Genesis,
    /// A signed checkpoint covers the event just before the segment.
    Checkpoint {
        /// The checkpoint's number.
        checkpoint: u64,
        /// The event it covers (the segment's first event minus one).
        event_seq: u64,
    },
    /// Nothing anchors the start (reported as a problem too).
    Unanchored,
    /// The segment holds no events.
    Empty,
}

/// The outcome of [`verify_segment`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentReport {
    /// The first event's seq, if any event was read.
    pub first_seq: Option<u64>,
    /// The last event's seq, if any event was read.
    pub last_seq: Option<u64>,
    /// Event records read.
    pub events: u64,
    /// Checkpoint records read.
    pub checkpoints: u64,
    /// What anchors the start.
    pub start: SegmentStart,
    /// The last checkpoint that verified and covers an event of the segment:
    /// (checkpoint number, event it covers).
    pub closing_checkpoint: Option<(u64, u64)>,
    /// Events after the closing checkpoint: protected by the hash chain only.
    pub unsigned_tail: u64,
    /// Every problem found, in the order found; empty means intact.
    pub problems: Vec<BadEvent>,
    /// True when more problems were found than [`MAX_PROBLEMS`].
    pub truncated: bool,
}

impl SegmentReport {
    /// True when nothing was found wrong.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, bad: BadEvent) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(bad);
        } else {
            self.truncated = true;
        }
    }
}

fn at_event(seq: u64, reason: String) -> BadEvent {
    BadEvent {
        seq,
        reason,
        checkpoint: None,
    }
}

fn at_checkpoint(seq: u64, checkpoint: u64, reason: String) -> BadEvent {
    BadEvent {
        seq,
        reason: format!("checkpoint {checkpoint}: {reason}"),
        checkpoint: Some(checkpoint),
    }
}

/// Verify a segment read from JSON lines: `events` as written by
/// [`crate::export_range_jsonl`], `checkpoints` as written by
/// [`crate::export_checkpoints_jsonl`] (or the subset anchoring the
/// segment). A line that is not a record is reported with its line number.
pub fn verify_segment_jsonl(
    events: &mut dyn BufRead,
    checkpoints: &mut dyn BufRead,
    key: &VerifyingKey,
) -> Result<SegmentReport, AuditError> {
    verify_segment(
        lines(events, "events"),
        lines(checkpoints, "checkpoints"),
        key,
    )
}

fn lines<'a, T: serde::de::DeserializeOwned + 'a>(
    input: &'a mut dyn BufRead,
    what: &'static str,
) -> impl Iterator<Item = Result<T, AuditError>> + 'a {
    input
        .lines()
        .enumerate()
        .filter_map(move |(i, line)| match line {
            Err(e) => Some(Err(AuditError::Read {
                path: format!("the {what} file"),
                reason: e.to_string(),
            })),
            Ok(line) if line.trim().is_empty() => None,
            Ok(line) => Some(
                serde_json::from_str(&line).map_err(|e| AuditError::CorruptRow {
                    seq: 0,
                    reason: format!(
                        "line {} of the {what} file is not a valid record ({e})",
                        i + 1
                    ),
                }),
            ),
        })
}

/// Verify the events of one segment against the checkpoints that anchor it.
/// Streams the events (checkpoints, one per many events, are held in
/// memory). Returns `Err` only when the input cannot be read; tampering is
/// reported in [`SegmentReport::problems`].
pub fn verify_segment<E, C>(
    events: E,
    checkpoints: C,
    key: &VerifyingKey,
) -> Result<SegmentReport, AuditError>
where
    E: Iterator<Item = Result<AuditEvent, AuditError>>,
    C: Iterator<Item = Result<Checkpoint, AuditError>>,
{
    let mut report = SegmentReport {
        first_seq: None,
        last_seq: None,
        events: 0,
        checkpoints: 0,
        start: SegmentStart::Empty,
        closing_checkpoint: None,
        unsigned_tail: 0,
        problems: Vec::new(),
        truncated: false,
    };

    // Checkpoints on their own: signature, numbering, linkage, order.
    let mut good: Vec<Checkpoint> = Vec::new();
    let mut previous: Option<Checkpoint> = None;
    for row in checkpoints {
        report.checkpoints += 1;
        let cp = match row {
            Ok(cp) => cp,
            Err(AuditError::CorruptRow { reason, .. }) => {
                report.problem(at_event(
                    0,
                    format!("a checkpoint cannot be read: {reason}"),
                ));
                previous = None;
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut ok = true;
        if let Err(reason) = cp.check_signature(key) {
            report.problem(at_checkpoint(cp.event_seq, cp.seq, reason));
            ok = false;
        }
        match &previous {
            None if cp.seq == 1 && cp.prev_hash != GENESIS_HASH => {
                report.problem(at_checkpoint(
                    cp.event_seq,
                    cp.seq,
                    "it is checkpoint 1 but does not link to the genesis value".to_string(),
                ));
                ok = false;
            }
            None => {}
            Some(prev) => {
                if cp.seq != prev.seq + 1 {
                    report.problem(at_checkpoint(
                        cp.event_seq,
                        cp.seq,
                        format!(
                            "it follows checkpoint {} in the checkpoint list: checkpoints were deleted, duplicated or reordered",
                            prev.seq
                        ),
                    ));
                    ok = false;
                } else if cp.prev_hash != prev.hash {
                    report.problem(at_checkpoint(
                        cp.event_seq,
                        cp.seq,
                        format!(
                            "it does not link to checkpoint {}: a checkpoint was replaced",
                            prev.seq
                        ),
                    ));
                    ok = false;
                }
                if cp.event_seq <= prev.event_seq {
                    report.problem(at_checkpoint(
                        cp.event_seq,
                        cp.seq,
                        format!(
                            "it covers event {} which is not after event {} covered by checkpoint {}",
                            cp.event_seq, prev.event_seq, prev.seq
                        ),
                    ));
                    ok = false;
                }
            }
        }
        if ok {
            good.push(cp.clone());
        }
        previous = Some(cp);
    }
    let by_event: HashMap<u64, &Checkpoint> = good.iter().map(|cp| (cp.event_seq, cp)).collect();

    // Events: each on its own, then linked to the one before it.
    let mut prev: Option<(u64, String)> = None;
    let mut resync = false;
    for row in events {
        report.events += 1;
        let event = match row {
            Ok(event) => event,
            Err(AuditError::CorruptRow { seq, reason }) => {
                let seq = if seq == 0 {
                    prev.as_ref().map_or(0, |(s, _)| s + 1)
                } else {
                    seq
                };
                report.problem(at_event(seq, reason));
                resync = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        match (&prev, resync) {
            (None, false) => {
                report.first_seq = Some(event.seq);
                report.start = anchor_start(&event, &by_event, &good, &mut report);
            }
            (Some((pseq, phash)), false) => {
                if event.seq != pseq + 1 {
                    let reason = if event.seq > pseq + 1 {
                        if event.seq == pseq + 2 {
                            format!("event {} is missing: event {pseq} is followed by event {}; an event was deleted", pseq + 1, event.seq)
                        } else {
                            format!(
                                "events {} to {} are missing: event {pseq} is followed by event {}; events were deleted",
                                pseq + 1,
                                event.seq - 1,
                                event.seq
                            )
                        }
                    } else {
                        format!(
                            "event {} appears after event {pseq}: events were duplicated or reordered",
                            event.seq
                        )
                    };
                    report.problem(at_event(pseq + 1, reason));
                } else if &event.prev_hash != phash {
                    report.problem(at_event(
                        event.seq,
                        format!(
                            "its prev_hash does not match the hash of event {pseq}: an event was inserted, replaced or rewritten here"
                        ),
                    ));
                }
            }
            (_, true) => {
                if report.first_seq.is_none() {
                    report.first_seq = Some(event.seq);
                    report.start = SegmentStart::Unanchored;
                }
                resync = false;
            }
        }
        if event.compute_hash() != event.hash {
            report.problem(at_event(
                event.seq,
                "its content does not match its hash: a field of this event was edited".to_string(),
            ));
        }
        if let Some(cp) = by_event.get(&event.seq) {
            if cp.event_hash == event.hash {
                report.closing_checkpoint = Some((cp.seq, cp.event_seq));
            } else {
                report.problem(at_checkpoint(
                    event.seq,
                    cp.seq,
                    format!(
                        "event {}'s hash differs from the one this checkpoint signed: this event or an earlier one was \
                         rewritten and the hashes after it recomputed",
                        event.seq
                    ),
                ));
            }
        }
        report.last_seq = Some(event.seq);
        prev = Some((event.seq, event.hash));
    }

    // Checkpoints that point outside the segment.
    if let (Some(first), Some(last)) = (report.first_seq, report.last_seq) {
        for cp in &good {
            if cp.event_seq > last {
                report.problem(at_checkpoint(
                    last + 1,
                    cp.seq,
                    format!(
                        "it covers event {}, but the segment ends at event {last}: events {} to {} were removed",
                        cp.event_seq,
                        last + 1,
                        cp.event_seq
                    ),
                ));
            } else if cp.event_seq + 1 < first {
                report.problem(at_checkpoint(
                    first,
                    cp.seq,
                    format!(
                        "it covers event {}, before the segment (which starts at event {first}); it does not belong to it",
                        cp.event_seq
                    ),
                ));
            }
        }
    } else if report.checkpoints > 0 {
        report.problem(at_event(
            0,
            "the segment has checkpoints but no events: its events were removed".to_string(),
        ));
    }
    if let Some(last) = report.last_seq {
        let covered = report.closing_checkpoint.map_or_else(
            || report.first_seq.map_or(0, |f| f.saturating_sub(1)),
            |(_, e)| e,
        );
        report.unsigned_tail = last.saturating_sub(covered);
        // A live writer signs after `checkpoint_every` events: a longer
        // tail after a checkpoint that signed its policy means the
        // checkpoints covering it were deleted before the segment was
        // exported.
        let closing = report
            .closing_checkpoint
            .and_then(|(seq, _)| good.iter().find(|cp| cp.seq == seq));
        if let Some((cp, policy)) = closing.and_then(|cp| cp.policy().map(|p| (cp, p))) {
            if report.unsigned_tail > policy.every {
                report.problem(at_checkpoint(
                    covered + 1,
                    cp.seq,
                    format!(
                        "events {} to {last} ({}) follow it unsigned, more than the {} after which it promised the \
                         next checkpoint: the checkpoints covering them were deleted before the export",
                        covered + 1,
                        report.unsigned_tail,
                        policy.every
                    ),
                ));
            }
        }
    }
    Ok(report)
}

/// Decide what anchors a segment whose first event is `event`.
fn anchor_start(
    event: &AuditEvent,
    by_event: &HashMap<u64, &Checkpoint>,
    good: &[Checkpoint],
    report: &mut SegmentReport,
) -> SegmentStart {
    if event.seq == 1 {
        if event.prev_hash == GENESIS_HASH {
            return SegmentStart::Genesis;
        }
        report.problem(at_event(
            1,
            "its prev_hash is not the genesis value (64 zeros): it was rewritten".to_string(),
        ));
        return SegmentStart::Unanchored;
    }
    match by_event.get(&(event.seq - 1)) {
        Some(cp) if cp.event_hash == event.prev_hash => SegmentStart::Checkpoint {
            checkpoint: cp.seq,
            event_seq: cp.event_seq,
        },
        Some(cp) => {
            report.problem(at_checkpoint(
                event.seq,
                cp.seq,
                format!(
                    "it signed event {}'s hash, but the segment's first event (event {}) links to a different hash: \
                     the first event was replaced or rewritten",
                    cp.event_seq, event.seq
                ),
            ));
            SegmentStart::Unanchored
        }
        None => {
            let earlier = good
                .iter()
                .map(|cp| cp.event_seq)
                .filter(|&s| s < event.seq)
                .max();
            report.problem(at_event(
                event.seq,
                format!(
                    "the segment starts at event {} but no signed checkpoint covers event {}{}: its start is not \
                     anchored, so events before it may have been removed",
                    event.seq,
                    event.seq - 1,
                    earlier.map_or(String::new(), |e| format!(" (the nearest earlier one covers event {e})"))
                ),
            ));
            SegmentStart::Unanchored
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::AuditSigner;
    use serde_json::json;

    fn chain(n: u64) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for seq in 1..=n {
            let mut e = AuditEvent {
                seq,
                ts: format!("2025-01-31T09:15:{:02}.000Z", seq % 60),
                kind: "command".into(),
                session_id: Some("s1".into()),
                subject: Some("alice".into()),
                connection: Some("bank".into()),
                data: json!({"sql": format!("select {seq}")}),
                prev_hash: out
                    .last()
                    .map_or(GENESIS_HASH.to_string(), |p| p.hash.clone()),
                hash: String::new(),
            };
            e.hash = e.compute_hash();
            out.push(e);
        }
        out
    }

    fn checkpoints(signer: &AuditSigner, events: &[AuditEvent], at: &[u64]) -> Vec<Checkpoint> {
        let mut out: Vec<Checkpoint> = Vec::new();
        for &seq in at {
            let e = &events[(seq - 1) as usize];
            let cp = Checkpoint::sign(
                signer,
                out.last(),
                seq,
                &e.hash,
                "2025-01-31T10:00:00.000Z".into(),
                crate::checkpoint::SignedPolicy {
                    every: 1000,
                    interval_ms: 60_000,
                },
            );
            out.push(cp);
        }
        out
    }

    fn run(events: &[AuditEvent], cps: &[Checkpoint], key: &VerifyingKey) -> SegmentReport {
        verify_segment(
            events.iter().cloned().map(Ok),
            cps.iter().cloned().map(Ok),
            key,
        )
        .unwrap()
    }

    #[test]
    fn a_segment_anchored_at_both_ends_verifies() {
        let signer = AuditSigner::ephemeral();
        let events = chain(30);
        let cps = checkpoints(&signer, &events, &[10, 20, 30]);
        // Events 11..=30 with checkpoints 1 (opening), 2 and 3.
        let r = run(&events[10..], &cps, &signer.verifying_key());
        assert!(r.is_intact(), "{:?}", r.problems);
        assert_eq!(
            r.start,
            SegmentStart::Checkpoint {
                checkpoint: 1,
                event_seq: 10
            }
        );
        assert_eq!(r.closing_checkpoint, Some((3, 30)));
        assert_eq!(
            (r.first_seq, r.last_seq, r.unsigned_tail),
            (Some(11), Some(30), 0)
        );

        // From genesis, with an unsigned tail.
        let r = run(&events[..25], &cps[..2], &signer.verifying_key());
        assert!(r.is_intact(), "{:?}", r.problems);
        assert_eq!(r.start, SegmentStart::Genesis);
        assert_eq!(r.unsigned_tail, 5);
    }

    #[test]
    fn every_independent_problem_is_reported() {
        let signer = AuditSigner::ephemeral();
        let events = chain(30);
        let mut cps = checkpoints(&signer, &events, &[10, 20, 30]);
        let mut seg: Vec<AuditEvent> = events[10..].to_vec();
        seg[2].data = json!({"sql": "drop table x"}); // event 13 edited
        seg.remove(10); // event 21 deleted
        cps[2].signature = "00".repeat(64); // checkpoint 3 forged
        let r = run(&seg, &cps, &signer.verifying_key());
        let text: Vec<String> = r.problems.iter().map(|p| p.to_string()).collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("event 13: its content does not match")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains("event 21 is missing")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("checkpoint 3: its signature does not verify")),
            "{text:?}"
        );
        assert_eq!(r.closing_checkpoint, Some((2, 20)));
    }

    #[test]
    fn an_unsigned_tail_longer_than_the_signed_policy_is_named() {
        let signer = AuditSigner::ephemeral();
        let events = chain(40);
        let mut out: Vec<Checkpoint> = Vec::new();
        let policy = crate::checkpoint::SignedPolicy {
            every: 10,
            interval_ms: 60_000,
        };
        for seq in [10u64, 20] {
            let cp = Checkpoint::sign(
                &signer,
                out.last(),
                seq,
                &events[(seq - 1) as usize].hash,
                "2025-01-31T10:00:00.000Z".into(),
                policy,
            );
            out.push(cp);
        }
        // 5 unsigned events after checkpoint 2: within its policy.
        let r = run(&events[10..25], &out, &signer.verifying_key());
        assert!(r.is_intact(), "{:?}", r.problems);
        assert_eq!(r.unsigned_tail, 5);
        // 20: the checkpoints at 30 and 40 were deleted.
        let r = run(&events[10..40], &out, &signer.verifying_key());
        assert!(
            r.problems.iter().any(|p| p
                .reason
                .contains("more than the 10 after which it promised")),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn unanchored_starts_and_truncated_ends_are_named() {
        let signer = AuditSigner::ephemeral();
        let events = chain(30);
        let cps = checkpoints(&signer, &events, &[10, 20, 30]);
        // Start at 12: nothing covers 11.
        let r = run(&events[11..], &cps[1..], &signer.verifying_key());
        assert_eq!(r.start, SegmentStart::Unanchored);
        assert!(
            r.problems[0]
                .reason
                .contains("no signed checkpoint covers event 11"),
            "{:?}",
            r.problems
        );
        // Drop the last two events: checkpoint 3 names the cut.
        let r = run(&events[10..28], &cps, &signer.verifying_key());
        assert!(
            r.problems
                .iter()
                .any(|p| p.reason.contains("events 29 to 30 were removed")),
            "{:?}",
            r.problems
        );
        // Another key: every checkpoint fails.
        let other = AuditSigner::ephemeral().verifying_key();
        let r = run(&events[10..], &cps, &other);
        assert!(
            r.problems
                .iter()
                .filter(|p| p.reason.contains("not the key"))
                .count()
                == 3
        );
    }
}
