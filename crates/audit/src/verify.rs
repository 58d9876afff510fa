//! Offline verification: recompute every hash, check every signature, and
//! name the first thing that does not add up. Streams rows, so memory stays
//! flat however long the trail is.

use crate::chain::{ChainCursor, GENESIS_HASH};
use crate::checkpoint::Checkpoint;
use crate::error::AuditError;
use crate::event::AuditEvent;
use crate::store::{
    decode_checkpoint_row, decode_event_row, open_read_only, read_error, CHECKPOINT_COLUMNS,
    EVENT_COLUMNS,
};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::BufRead;
use std::path::Path;

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

/// Verify the SQLite trail at `path` against the checkpoint public key.
///
/// Reads through a read-only connection inside one read transaction, so it
/// sees a consistent snapshot while the gateway keeps writing. Returns `Err`
/// only when the store cannot be read; tampering is reported in
/// [`VerifyReport::first_bad`].
pub fn verify(path: &Path, key: &VerifyingKey) -> Result<VerifyReport, AuditError> {
    let read_err = read_error(path);
    let conn = open_read_only(path)?;
    let snapshot = conn.unchecked_transaction().map_err(read_err)?;
    let anchor = crate::retention::latest_prune(&snapshot).map_err(read_err)?;
    let mut event_stmt = snapshot
        .prepare(&format!("SELECT {EVENT_COLUMNS} FROM events ORDER BY seq"))
        .map_err(read_err)?;
    let mut checkpoint_stmt = snapshot
        .prepare(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY seq"
        ))
        .map_err(read_err)?;
    let events = event_stmt
        .query_map([], |row| Ok(decode_event_row(row)))
        .map_err(read_err)?
        .map(|row| row.map_err(read_err).and_then(|decoded| decoded));
    let checkpoints = checkpoint_stmt
        .query_map([], |row| Ok(decode_checkpoint_row(row)))
        .map_err(read_err)?
        .map(|row| {
            row.map_err(read_err).and_then(|decoded| {
                decoded.map_err(|reason| AuditError::CorruptRow { seq: 0, reason })
            })
        });
    verify_streams(events, checkpoints, key, anchor.as_ref())
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
    verify_streams(
        jsonl_rows(events, "events"),
        jsonl_rows(checkpoints, "checkpoints"),
        key,
        None,
    )
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

/// The one verification algorithm, over any source of events and checkpoints
/// in seq order.
pub(crate) fn verify_streams<E, C>(
    events: E,
    checkpoints: C,
    key: &VerifyingKey,
    pruned: Option<&crate::retention::PruneRecord>,
) -> Result<VerifyReport, AuditError>
where
    E: Iterator<Item = Result<AuditEvent, AuditError>>,
    C: Iterator<Item = Result<Checkpoint, AuditError>>,
{
    let mut chain = ChainCursor::genesis();
    let mut walk = CheckpointWalk::new(checkpoints, key);
    let mut count = 0u64;
    let mut last_checkpoint_seq = None;
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
        let event = match row {
            Ok(event) => event,
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
        if let Err(bad) = chain.check(&event) {
            first_bad = Some(bad);
            continue;
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
    Ok(VerifyReport {
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
    })
}
