//! Offline verification: recompute every hash, check every signature, and
//! name the first thing that does not add up. Streams rows, so memory stays
//! flat however long the trail is.
//!
//! # A trail must be signed where its policy says it is
//!
//! A valid chain is not enough: someone with write access to the store can
//! delete checkpoints, then rewrite and re-chain the events they covered.
//! So beyond the chain and the signatures, [`verify_with`] checks the
//! *unsigned tail* (the events after the last verified checkpoint) against
//! the checkpoint policy, and the store against its external anchor:
//!
//! * **Stopped trail.** A gateway that stops cleanly signs a final
//!   checkpoint, so when no writer holds the store's writer lock, any
//!   unsigned event is a failure (a crash leaves one too: starting the
//!   gateway signs it at once).
//! * **Live trail.** The writer signs after `checkpoint_every` events and
//!   within `checkpoint_interval` of the first unsigned one, so the tail may
//!   be at most that long, and its oldest event at most the interval plus
//!   [`LIVE_GRACE`] old.
//! * **The policy is the signed one.** Format 2 checkpoints sign the
//!   writer's `checkpoint_every` and interval; the newest verified one sets
//!   the limits, so editing the configuration cannot relax them. A trail
//!   whose newest checkpoint is format 1 (or that has none yet) is held to
//!   the configured policy, and the report says so.
//! * **Gaps.** Checkpoints are numbered without gaps and each signs the
//!   previous one's hash, so deleting one in the middle breaks the walk.
//! * **Anchor.** Every checkpoint is also appended to an anchor file outside
//!   the store; the store fails when the anchor holds a checkpoint the store
//!   lacks (and no signed prune record removed) or holds differently. This
//!   is what catches deleting the newest checkpoint together with the events
//!   after the one before it.

use crate::chain::{ChainCursor, GENESIS_HASH};
use crate::checkpoint::Checkpoint;
use crate::error::AuditError;
use crate::event::AuditEvent;
use crate::store::{
    checkpoint_columns, decode_checkpoint_row, open_read_only, read_error, read_event_row,
    StoredEvent, EVENT_COLUMNS,
};
use crate::writer::CheckpointPolicy;
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How much longer than the checkpoint interval a live trail's oldest
/// unsigned event may be: the writer's timer, a busy machine, and clock
/// skew between the gateway and the verifying host.
pub const LIVE_GRACE: Duration = Duration::from_secs(10);

/// What [`verify_with`] holds the trail to, beyond its chain and signatures.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The checkpoint policy of the configuration: applied when the trail
    /// signs none (its newest checkpoint is format 1, or it has none yet).
    /// None: the defaults (1000 events, 60 s).
    pub configured_policy: Option<CheckpointPolicy>,
    /// The external anchor file to compare the store with. None: no anchor
    /// check.
    pub anchor_file: Option<PathBuf>,
    /// Allowance over the interval for a live trail (default [`LIVE_GRACE`]).
    pub grace: Option<Duration>,
    /// The time to measure the tail's age against (default: now).
    pub now: Option<DateTime<Utc>>,
    /// Whether a gateway is writing the store. None: tell from the writer
    /// lock next to the store.
    pub writer_running: Option<bool>,
}

/// The outcome of [`verify`]: what was checked, and the first problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Events in the trail.
    pub events: u64,
    /// Checkpoints in the trail.
    pub checkpoints: u64,
    /// The last event covered by a checkpoint that verified (None when no
    /// checkpoint verified).
    pub last_checkpoint_seq: Option<u64>,
    /// The first problem, in trail order; None means intact.
    pub first_bad: Option<BadEvent>,
    /// Events after the last verified checkpoint: protected by the hash chain
    /// only, not yet by a signature.
    pub unsigned_tail: u64,
    /// Events up to this seq were removed under the retention policy, as a
    /// signed prune record states; verification starts after them.
    #[serde(default)]
    pub pruned_through: Option<u64>,
    /// When the oldest unsigned event was written (None: no unsigned tail).
    #[serde(default)]
    pub unsigned_since: Option<String>,
    /// How old the oldest unsigned event was when verified, in milliseconds
    /// (None: no unsigned tail, or not measured, as for an export).
    #[serde(default)]
    pub unsigned_age_ms: Option<u64>,
    /// The checkpoint policy the unsigned tail was held to.
    #[serde(default)]
    pub policy: Option<PolicyInForce>,
    /// Whether a gateway was writing the store (None: unknown, or an export).
    #[serde(default)]
    pub writer_running: Option<bool>,
    /// The comparison with the external anchor, when one was given.
    #[serde(default)]
    pub anchor: Option<AnchorReport>,
    /// Problems found besides [`first_bad`](Self::first_bad) (an unsigned
    /// tail, a store behind its anchor), in that order.
    #[serde(default)]
    pub other_problems: Vec<BadEvent>,
    /// What an examiner should know that is not a failure (old format, an
    /// anchor lagging behind the store).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// The checkpoint policy verify held the unsigned tail to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInForce {
    /// A checkpoint after at most this many events.
    pub every: u64,
    /// …and within this many milliseconds of the first unsigned event.
    pub interval_ms: u64,
    /// The checkpoint that signed it; None when the policy is the
    /// configured one (format 1 trail, or no checkpoint yet).
    pub signed_by_checkpoint: Option<u64>,
}

/// What the external anchor showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorReport {
    /// The anchor file.
    pub path: String,
    /// Checkpoint records in it.
    pub entries: u64,
    /// The newest checkpoint it holds.
    pub newest: Option<u64>,
    /// Entries for checkpoints a signed prune record removed.
    pub pruned: u64,
    /// The store's checkpoints newer than the anchor's newest (the anchor
    /// lags; not a failure).
    pub not_anchored: u64,
}

impl VerifyReport {
    /// True when nothing was found wrong.
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Where the trail first stops adding up, in words an examiner can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadEvent {
    /// The event at which the problem shows (for a missing event, its seq).
    pub seq: u64,
    /// What is wrong, in plain words.
    pub reason: String,
    /// The checkpoint involved, when the problem is a checkpoint's.
    pub checkpoint: Option<u64>,
}

impl BadEvent {
    pub(crate) fn event(seq: u64, reason: String) -> BadEvent {
        BadEvent {
            seq,
            reason,
            checkpoint: None,
        }
    }

    fn checkpoint(seq: u64, checkpoint: u64, reason: String) -> BadEvent {
        BadEvent {
            seq,
            reason: format!("checkpoint {checkpoint}: {reason}"),
            checkpoint: Some(checkpoint),
        }
    }
}

impl fmt::Display for BadEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event {}: {}", self.seq, self.reason)
    }
}

/// Verify the SQLite trail at `path` against the checkpoint public key, with
/// the default [`VerifyOptions`]: the default policy where the trail signs
/// none, liveness from the writer lock, no anchor.
pub fn verify(path: &Path, key: &VerifyingKey) -> Result<VerifyReport, AuditError> {
    verify_with(path, key, &VerifyOptions::default())
}

/// Verify the SQLite trail at `path`: its hash chain, every checkpoint
/// signature, the unsigned tail against the checkpoint policy, and (when
/// `options` names one) the store against its external anchor. See the
/// module docs for the rules.
///
/// Reads through a read-only connection inside one read transaction, so it
/// sees a consistent snapshot while the gateway keeps writing. Returns `Err`
/// only when the store cannot be read; tampering is reported in
/// [`VerifyReport::first_bad`] (and [`VerifyReport::other_problems`]).
pub fn verify_with(
    path: &Path,
    key: &VerifyingKey,
    options: &VerifyOptions,
) -> Result<VerifyReport, AuditError> {
    let read_err = read_error(path);
    let conn = open_read_only(path)?;
    // The writer commits a checkpoint to the store before the anchor: the
    // anchor's length taken before the snapshot covers only checkpoints the
    // snapshot holds.
    let anchor_len = options
        .anchor_file
        .as_ref()
        .map(|anchor| std::fs::metadata(anchor).map(|m| m.len()).ok());
    // Live if a writer holds the lock before or after the snapshot: one
    // that starts or stops meanwhile must not make a live tail look
    // abandoned.
    let running_before = options
        .writer_running
        .or_else(|| crate::anchor::writer_running(path));
    let snapshot = conn.unchecked_transaction().map_err(read_err)?;
    let pruned = crate::retention::latest_prune(&snapshot).map_err(read_err)?;
    let columns = checkpoint_columns(&snapshot).map_err(read_err)?;
    let (mut report, tail) = {
        let mut event_stmt = snapshot
            .prepare(&format!("SELECT {EVENT_COLUMNS} FROM events ORDER BY seq"))
            .map_err(read_err)?;
        let mut checkpoint_stmt = snapshot
            .prepare(&format!("SELECT {columns} FROM checkpoints ORDER BY seq"))
            .map_err(read_err)?;
        let rows = event_stmt
            .query_map([], |row| Ok(read_event_row(row)))
            .map_err(read_err)?
            .map(|row| row.map_err(read_err).and_then(|read| read));
        let checkpoints = checkpoint_stmt
            .query_map([], |row| Ok(decode_checkpoint_row(row)))
            .map_err(read_err)?
            .map(|row| {
                row.map_err(read_err).and_then(|decoded| {
                    decoded.map_err(|reason| AuditError::CorruptRow { seq: 0, reason })
                })
            });
        // The chain needs each event's hash, not its data: a text the fast
        // check vouches for is hashed as it is, without being parsed.
        let events = rows.map(|row| {
            row.and_then(StoredEvent::hashed)
                .map(|(event, hash)| (event, Some(hash)))
        });
        verify_walk(events, checkpoints, key, pruned.as_ref())?
    };
    let running_after = options
        .writer_running
        .or_else(|| crate::anchor::writer_running(path));
    let running = match (running_before, running_after) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    };
    if running == Some(false) {
        // A gateway that crashed left events in its journal that only its
        // next start indexes: say so, so the store is not taken for all.
        let head: i64 = snapshot
            .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |row| {
                row.get(0)
            })
            .map_err(read_err)?;
        let head = u64::try_from(head).unwrap_or(0);
        if let Ok(Some((n, first, last))) =
            crate::journal::journal_beyond(&crate::journal::journal_dir(path), head)
        {
            report.notes.push(format!(
                "the journal ({}) holds {n} events after the store's last (events {first} to {last}): the gateway \
                 stopped before indexing them, and its next start indexes, checks and signs them; verify again then",
                crate::journal::journal_dir(path).display()
            ));
        }
    }
    let mut problems = Vec::new();
    if let (Some(anchor), Some(len)) = (&options.anchor_file, anchor_len) {
        let (anchor_report, problem) = check_anchor(
            &snapshot,
            anchor,
            len,
            key,
            pruned.as_ref(),
            &mut report.notes,
        )
        .map_err(|e| match e {
            AnchorError::Store(e) => read_err(e),
            AnchorError::File(e) => AuditError::Read {
                path: anchor.display().to_string(),
                reason: format!("the anchor file cannot be read: {e}"),
            },
        })?;
        report.anchor = Some(anchor_report);
        problems.extend(problem);
    }
    let rules = TailRules {
        configured: options.configured_policy.unwrap_or_default(),
        writer_running: running,
        now: Some(options.now.unwrap_or_else(Utc::now)),
        grace: options.grace.unwrap_or(LIVE_GRACE),
    };
    problems.extend(check_tail(&mut report, &tail, &rules));
    report.writer_running = running;
    fold_problems(&mut report, problems);
    Ok(report)
}

/// Add `problems` after whatever the walk found.
fn fold_problems(report: &mut VerifyReport, problems: Vec<BadEvent>) {
    for bad in problems {
        if report.first_bad.is_none() {
            report.first_bad = Some(bad);
        } else {
            report.other_problems.push(bad);
        }
    }
}

/// Verify an exported trail: `events` as written by
/// [`crate::export_jsonl`] with no filter, `checkpoints` as written by
/// [`crate::export_checkpoints_jsonl`]. This is what lets an examiner check
/// the evidence without access to the gateway.
pub fn verify_jsonl(
    events: &mut dyn BufRead,
    checkpoints: &mut dyn BufRead,
    key: &VerifyingKey,
) -> Result<VerifyReport, AuditError> {
    let (mut report, tail) = verify_walk(
        jsonl_rows(events, "events").map(|row| row.map(|event: AuditEvent| (event, None))),
        jsonl_rows(checkpoints, "checkpoints"),
        key,
        None,
    )?;
    // An export may be taken from a live trail at any time: its tail is
    // held to the policy's length, not to an age or to a final checkpoint.
    let rules = TailRules {
        configured: CheckpointPolicy::default(),
        writer_running: None,
        now: None,
        grace: LIVE_GRACE,
    };
    let problems = check_tail(&mut report, &tail, &rules);
    fold_problems(&mut report, problems.into_iter().collect());
    Ok(report)
}

fn jsonl_rows<'a, T: serde::de::DeserializeOwned + 'a>(
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

/// A checkpoint read ahead of the events, waiting for the event it covers.
enum Pending {
    Good(Checkpoint),
    /// A checkpoint that failed its own checks; reported when the events
    /// reach `at_event` (0: as soon as possible), so problems come out in
    /// trail order.
    Bad {
        at_event: u64,
        bad: BadEvent,
    },
}

/// Validates checkpoints on their own (numbering, linkage, signature, order)
/// as the event walk pulls them.
struct CheckpointWalk<'k, C> {
    rows: C,
    key: &'k VerifyingKey,
    count: u64,
    next_seq: u64,
    prev_hash: String,
    prev_event_seq: u64,
    stopped: bool,
    /// The first checkpoint's link to its predecessor is not checked: the
    /// predecessor was pruned, and a signed prune record names this one.
    trust_first_link: bool,
}

impl<'k, C: Iterator<Item = Result<Checkpoint, AuditError>>> CheckpointWalk<'k, C> {
    fn new(rows: C, key: &'k VerifyingKey) -> Self {
        CheckpointWalk {
            rows,
            key,
            count: 0,
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
            prev_event_seq: 0,
            stopped: false,
            trust_first_link: false,
        }
    }

    fn next(&mut self) -> Result<Option<Pending>, AuditError> {
        if self.stopped {
            return Ok(None);
        }
        let Some(row) = self.rows.next() else {
            return Ok(None);
        };
        self.count += 1;
        let cp = match row {
            Ok(cp) => cp,
            Err(AuditError::CorruptRow { reason, .. }) => {
                self.stopped = true;
                let bad =
                    BadEvent::checkpoint(0, self.next_seq, format!("cannot be read: {reason}"));
                return Ok(Some(Pending::Bad { at_event: 0, bad }));
            }
            Err(e) => return Err(e),
        };
        match self.check(&cp) {
            Ok(()) => {
                self.trust_first_link = false;
                self.next_seq = cp.seq + 1;
                self.prev_hash.clone_from(&cp.hash);
                self.prev_event_seq = cp.event_seq;
                Ok(Some(Pending::Good(cp)))
            }
            Err(reason) => {
                self.stopped = true;
                let at_event = cp.event_seq.max(self.prev_event_seq + 1);
                Ok(Some(Pending::Bad {
                    at_event,
                    bad: BadEvent::checkpoint(at_event, cp.seq, reason),
                }))
            }
        }
    }

    fn check(&self, cp: &Checkpoint) -> Result<(), String> {
        if cp.seq != self.next_seq {
            return Err(format!(
                "checkpoint {} is missing or out of order (found checkpoint {})",
                self.next_seq, cp.seq
            ));
        }
        cp.check_signature(self.key)?;
        if !self.trust_first_link && cp.prev_hash != self.prev_hash {
            return Err(format!(
                "it does not link to checkpoint {}: a checkpoint was deleted or replaced",
                self.next_seq - 1
            ));
        }
        if cp.event_seq <= self.prev_event_seq {
            return Err(format!(
                "it covers event {} which is not after event {} covered by the checkpoint before it",
                cp.event_seq, self.prev_event_seq
            ));
        }
        Ok(())
    }

    /// Count the rows not yet pulled.
    fn finish(mut self) -> Result<u64, AuditError> {
        for row in self.rows.by_ref() {
            match row {
                Ok(_) | Err(AuditError::CorruptRow { .. }) => self.count += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(self.count)
    }
}

/// What the walk learned about the end of the trail, for the tail rules.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    /// The newest checkpoint that verified and matched its event.
    newest: Option<Checkpoint>,
    /// The first event after it, and when it was written.
    first_unsigned: Option<(u64, String)>,
    /// The last event.
    last_event: u64,
}

/// The chain walk, over any source of events and checkpoints in seq order.
pub(crate) fn verify_walk<E, C>(
    events: E,
    checkpoints: C,
    key: &VerifyingKey,
    pruned: Option<&crate::retention::PruneRecord>,
) -> Result<(VerifyReport, Tail), AuditError>
where
    E: Iterator<Item = Result<(AuditEvent, Option<String>), AuditError>>,
    C: Iterator<Item = Result<Checkpoint, AuditError>>,
{
    let mut chain = ChainCursor::genesis();
    let mut walk = CheckpointWalk::new(checkpoints, key);
    let mut count = 0u64;
    let mut last_checkpoint_seq = None;
    let mut newest: Option<Checkpoint> = None;
    let mut first_unsigned: Option<(u64, String)> = None;
    let mut first_bad: Option<BadEvent> = None;
    if let Some(p) = pruned {
        // Events up to the prune record's checkpoint were removed on
        // purpose: start after them, from the hash that checkpoint signed.
        chain = ChainCursor::after(p.through_event_seq, &p.event_hash);
        walk.next_seq = p.checkpoint_seq;
        walk.trust_first_link = true;
        if let Err(reason) = p.check_signature(key) {
            first_bad = Some(BadEvent::event(p.through_event_seq + 1, reason));
        }
    }
    let mut pending = walk.next()?;
    if let (Some(p), None) = (pruned, &first_bad) {
        match pending.take() {
            Some(Pending::Good(cp))
                if cp.seq == p.checkpoint_seq
                    && cp.hash == p.checkpoint_hash
                    && cp.event_seq == p.through_event_seq
                    && cp.event_hash == p.event_hash =>
            {
                last_checkpoint_seq = Some(cp.event_seq);
                newest = Some(cp);
                pending = walk.next()?;
            }
            _ => {
                first_bad = Some(BadEvent::checkpoint(
                    p.through_event_seq + 1,
                    p.checkpoint_seq,
                    format!(
                        "prune record {} anchors the trail on this checkpoint, but it is missing or altered",
                        p.seq
                    ),
                ));
            }
        }
    }

    for row in events {
        count += 1;
        let (event, computed) = match row {
            Ok(row) => row,
            Err(AuditError::CorruptRow { seq, reason }) => {
                if first_bad.is_none() {
                    let seq = if seq == 0 { chain.next_seq() } else { seq };
                    first_bad = Some(BadEvent::event(seq, reason));
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        if first_bad.is_some() {
            continue;
        }
        let checked = match &computed {
            Some(hash) => chain.check_hashed(&event, hash),
            None => chain.check(&event),
        };
        if let Err(bad) = checked {
            first_bad = Some(bad);
            continue;
        }
        if first_unsigned.is_none() {
            first_unsigned = Some((event.seq, event.ts.clone()));
        }
        // Settle every checkpoint that concerns this event.
        loop {
            match pending.take() {
                Some(Pending::Bad { at_event, mut bad }) if at_event <= event.seq => {
                    if bad.seq == 0 {
                        bad.seq = event.seq;
                    }
                    first_bad = Some(bad);
                    break;
                }
                Some(Pending::Good(cp)) if cp.event_seq == event.seq => {
                    if cp.event_hash != event.hash {
                        first_bad = Some(BadEvent::checkpoint(
                            event.seq,
                            cp.seq,
                            format!(
                                "event {}'s hash differs from the one this checkpoint signed: this event or an earlier \
                                 one was rewritten and the hashes after it recomputed",
                                event.seq
                            ),
                        ));
                        break;
                    }
                    last_checkpoint_seq = Some(cp.event_seq);
                    first_unsigned = None;
                    newest = Some(cp);
                    pending = walk.next()?;
                }
                other => {
                    pending = other;
                    break;
                }
            }
        }
    }

    if first_bad.is_none() {
        let last_event = chain.next_seq() - 1;
        first_bad = match pending {
            None => None,
            Some(Pending::Bad { mut bad, .. }) => {
                if bad.seq == 0 {
                    bad.seq = last_event + 1;
                }
                Some(bad)
            }
            Some(Pending::Good(cp)) => Some(BadEvent::checkpoint(
                last_event + 1,
                cp.seq,
                format!(
                    "it covers events up to {}, but the trail ends at event {last_event}: events {} to {} were deleted",
                    cp.event_seq,
                    last_event + 1,
                    cp.event_seq
                ),
            )),
        };
    }

    let checkpoints = walk.finish()?;
    let last_event = chain.next_seq() - 1;
    let report = VerifyReport {
        events: count,
        checkpoints,
        last_checkpoint_seq,
        unsigned_tail: if pruned.is_some() {
            last_event.saturating_sub(last_checkpoint_seq.unwrap_or(0))
        } else {
            count.saturating_sub(last_checkpoint_seq.unwrap_or(0))
        },
        first_bad,
        pruned_through: pruned.map(|p| p.through_event_seq),
        unsigned_since: None,
        unsigned_age_ms: None,
        policy: None,
        writer_running: None,
        anchor: None,
        other_problems: Vec::new(),
        notes: Vec::new(),
    };
    Ok((
        report,
        Tail {
            newest,
            first_unsigned,
            last_event,
        },
    ))
}

/// How the unsigned tail is judged.
struct TailRules {
    /// The policy when the trail signs none.
    configured: CheckpointPolicy,
    /// Some(false): the trail must be signed to its end.
    writer_running: Option<bool>,
    /// Measure the tail's age against this time (None: do not).
    now: Option<DateTime<Utc>>,
    grace: Duration,
}

fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 10_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else if ms < 120_000 {
        format!("{} s", d.as_secs())
    } else if ms < 7_200_000 {
        format!("{} min", d.as_secs() / 60)
    } else if ms < 172_800_000 {
        format!("{} h", d.as_secs() / 3600)
    } else {
        format!("{} days", d.as_secs() / 86_400)
    }
}

/// Fill in the report's policy and tail age, and say what is wrong with the
/// unsigned tail, if anything. Only a trail whose chain verified is judged.
fn check_tail(report: &mut VerifyReport, tail: &Tail, rules: &TailRules) -> Option<BadEvent> {
    let signed = tail
        .newest
        .as_ref()
        .and_then(|cp| cp.policy().map(|p| (cp.seq, p)));
    let (policy, signed_by) = match signed {
        Some((seq, p)) => (CheckpointPolicy::from_signed(p), Some(seq)),
        None => (rules.configured, None),
    };
    report.policy = Some(PolicyInForce {
        every: policy.every,
        interval_ms: u64::try_from(policy.interval.as_millis()).unwrap_or(u64::MAX),
        signed_by_checkpoint: signed_by,
    });
    if signed_by.is_none() {
        report.notes.push(match &tail.newest {
            Some(cp) => format!(
                "checkpoint {} (the newest) is format 1, written before gatehouse signed its checkpoint policy: the \
                 unsigned tail is held to the configured policy (a checkpoint every {} events or {}), which the trail \
                 does not sign",
                cp.seq,
                policy.every,
                human(policy.interval)
            ),
            None => format!(
                "the trail has no signed checkpoint yet: the unsigned tail is held to the configured policy (a \
                 checkpoint every {} events or {})",
                policy.every,
                human(policy.interval)
            ),
        });
    }
    if report.first_bad.is_some() {
        return None;
    }
    let (first_seq, first_ts) = tail.first_unsigned.as_ref()?;
    let unsigned = tail.last_event.saturating_sub(first_seq - 1);
    report.unsigned_since = Some(first_ts.clone());
    let age = rules.now.map(|now| {
        let written = DateTime::parse_from_rfc3339(first_ts)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        (now - written).to_std().unwrap_or(Duration::ZERO)
    });
    report.unsigned_age_ms = age.map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX));
    let signed_part = match &tail.newest {
        Some(cp) => format!(
            "the last signed checkpoint ({}, covering event {})",
            cp.seq, cp.event_seq
        ),
        None => "the start of the trail (there is no signed checkpoint at all)".to_string(),
    };
    let range = if unsigned == 1 {
        format!("event {first_seq} comes")
    } else {
        format!(
            "events {first_seq} to {} ({unsigned}) come",
            tail.last_event
        )
    };
    let whose = if signed_by.is_some() {
        "the policy the trail signed"
    } else {
        "the configured policy"
    };
    if rules.writer_running == Some(false) {
        return Some(BadEvent::event(
            *first_seq,
            format!(
                "{range} after {signed_part}, and no gateway is writing this store: a gateway signs a final \
                 checkpoint when it stops, so the checkpoints covering them were deleted, or the gateway crashed \
                 (if it did, start it again: it signs the tail at once, and verify passes), or this is a copy of a \
                 live store taken between checkpoints (verify the live store, or copy it after it stops)"
            ),
        ));
    }
    if unsigned > policy.every {
        return Some(BadEvent::event(
            *first_seq,
            format!(
                "{range} after {signed_part}: more than the {} events after which {whose} requires a checkpoint; \
                 the checkpoints covering them were deleted, or the gateway cannot sign",
                policy.every
            ),
        ));
    }
    if let (Some(age), Some(now)) = (age, rules.now) {
        let limit = policy.interval + rules.grace;
        if age > limit {
            return Some(BadEvent::event(
                *first_seq,
                format!(
                    "{range} after {signed_part}, and the oldest was written {first_ts}, {} ago: longer than the {} \
                     within which {whose} requires a checkpoint (plus {} grace); the checkpoints covering them were \
                     deleted, or the gateway cannot sign",
                    human(age),
                    human(policy.interval),
                    human(rules.grace)
                ),
            ));
        }
        if first_ts.as_str() > crate::event::format_ts(now + rules.grace).as_str() {
            return Some(BadEvent::event(
                *first_seq,
                format!(
                    "{range} after {signed_part}, and the oldest is dated {first_ts}, in the future: the unsigned \
                     events were rewritten"
                ),
            ));
        }
    }
    None
}

/// Why the anchor check could not run.
enum AnchorError {
    Store(rusqlite::Error),
    File(std::io::Error),
}

impl From<rusqlite::Error> for AnchorError {
    fn from(e: rusqlite::Error) -> Self {
        AnchorError::Store(e)
    }
}

impl From<std::io::Error> for AnchorError {
    fn from(e: std::io::Error) -> Self {
        AnchorError::File(e)
    }
}

/// Compare the store (its `snapshot`) with the first `len` bytes of the
/// anchor (`len` None: the file does not exist). Returns what it saw and
/// the first problem.
fn check_anchor(
    snapshot: &rusqlite::Connection,
    path: &Path,
    len: Option<u64>,
    key: &VerifyingKey,
    pruned: Option<&crate::retention::PruneRecord>,
    notes: &mut Vec<String>,
) -> Result<(AnchorReport, Option<BadEvent>), AnchorError> {
    let shown = path.display().to_string();
    let mut report = AnchorReport {
        path: shown.clone(),
        entries: 0,
        newest: None,
        pruned: 0,
        not_anchored: 0,
    };
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let (store_newest, store_newest_v2): (Option<i64>, bool) = snapshot
        .query_row(
            &format!(
                "SELECT seq, {} FROM checkpoints ORDER BY seq DESC LIMIT 1",
                if checkpoint_columns(snapshot)?.ends_with("NULL, NULL") {
                    "NULL"
                } else {
                    "checkpoint_every"
                }
            ),
            [],
            |r| {
                Ok((
                    Some(r.get::<_, i64>(0)?),
                    r.get::<_, Option<i64>>(1)?.is_some(),
                ))
            },
        )
        .optional()?
        .unwrap_or((None, false));
    let store_newest = store_newest.and_then(|n| u64::try_from(n).ok());
    let Some(len) = len else {
        if store_newest_v2 {
            let bad = BadEvent {
                seq: 0,
                reason: format!(
                    "the anchor file {shown} does not exist, but the trail's newest checkpoint ({}) was signed by a \
                     gateway that anchors its checkpoints: the anchor was deleted, or this is not the trail's \
                     anchor (pass the right one with --anchor)",
                    store_newest.unwrap_or(0)
                ),
                checkpoint: store_newest,
            };
            return Ok((report, Some(bad)));
        }
        notes.push(format!(
            "there is no anchor file at {shown} yet (the trail's checkpoints predate anchoring; the gateway creates \
             it when it starts)"
        ));
        return Ok((report, None));
    };
    let mut problem = None;
    let mut lookup = snapshot.prepare("SELECT hash FROM checkpoints WHERE seq = ?1")?;
    let mut unreadable = 0u64;
    let mut reader = crate::anchor::Reader::open(path, len)?;
    while let Some(line) = reader.next() {
        let cp = match line? {
            crate::anchor::Line::Checkpoint(cp) => cp,
            crate::anchor::Line::Unreadable => {
                unreadable += 1;
                continue;
            }
        };
        report.entries += 1;
        report.newest = Some(report.newest.map_or(cp.seq, |n: u64| n.max(cp.seq)));
        if pruned.is_some_and(|p| cp.seq < p.checkpoint_seq) {
            report.pruned += 1;
            continue;
        }
        if problem.is_some() {
            continue;
        }
        let stored: Option<String> = lookup.query_row([int(cp.seq)], |r| r.get(0)).optional()?;
        if stored.as_deref() == Some(cp.hash.as_str()) {
            continue;
        }
        let line_no = reader.line_no;
        let reason = if let Err(why) = cp.check_signature(key) {
            format!(
                "line {line_no} of the anchor file {shown} is not a checkpoint signed with this key ({why}): the \
                 anchor file was edited"
            )
        } else if stored.is_some() {
            format!(
                "checkpoint {} in the store differs from the copy in the anchor file {shown} (line {line_no}): \
                 the store's checkpoints were replaced",
                cp.seq
            )
        } else {
            format!(
                "the store is behind its anchor: the anchor file {shown} holds checkpoint {} (covering event {}, \
                 signed {}), which the store does not have{}: checkpoints were deleted, and perhaps the events \
                 they covered",
                cp.seq,
                cp.event_seq,
                cp.ts,
                match store_newest {
                    Some(n) => format!(" (its newest checkpoint is {n})"),
                    None => " (it has no checkpoint at all)".to_string(),
                }
            )
        };
        problem = Some(BadEvent {
            seq: cp.event_seq,
            reason,
            checkpoint: Some(cp.seq),
        });
    }
    if unreadable > 0 {
        notes.push(format!(
            "{unreadable} line(s) of the anchor file {shown} are not checkpoint records (a torn write?) and were skipped"
        ));
    }
    if report.entries == 0 && store_newest_v2 && problem.is_none() {
        problem = Some(BadEvent {
            seq: 0,
            reason: format!(
                "the anchor file {shown} holds no checkpoint, but the trail's newest checkpoint ({}) was signed by a \
                 gateway that anchors its checkpoints: the anchor was emptied, or this is not the trail's anchor",
                store_newest.unwrap_or(0)
            ),
            checkpoint: store_newest,
        });
    }
    let newer: i64 = snapshot.query_row(
        "SELECT count(*) FROM checkpoints WHERE seq > ?1",
        [int(report.newest.unwrap_or(0))],
        |r| r.get(0),
    )?;
    report.not_anchored = u64::try_from(newer).unwrap_or(0);
    if report.not_anchored > 0 && report.entries > 0 {
        notes.push(format!(
            "the anchor file lags the store by {} checkpoint(s) (the newest is written there right after the store)",
            report.not_anchored
        ));
    }
    Ok((report, problem))
}
