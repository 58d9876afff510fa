//! Retention: removing the oldest events while what remains stays
//! verifiable.
//!
//! Events are pruned as a *prefix* of the chain, up to and including the
//! event covered by a signed checkpoint `K`. `K` itself is kept, and a
//! **prune record** signed with the gateway's key states what was removed:
//!
//! ```text
//! payload = str("gatehouse.audit.prune.v1")
//!           u64(seq)                 1 for the first prune, then +1
//!           u64(through_event_seq)   last event removed (= K.event_seq)
//!           str(event_hash)          its hash (= K.event_hash)
//!           u64(checkpoint_seq)      K.seq
//!           str(checkpoint_hash)     K.hash
//!           u64(pruned_events)       events removed by this prune
//!           str(ts)
//!           str(prev_hash)           hash of prune seq-1; 64 "0"s for the first
//! hash      = hex(SHA-256(payload))
//! signature = hex(Ed25519-sign(secret key, payload))
//! ```
//!
//! [`crate::verify`] then starts from the latest prune record: the first
//! remaining event must link to the hash `K` signed, and the checkpoint
//! chain resumes at `K`. Evidence packs exported before a prune carry their
//! own segment and checkpoints, so they keep verifying.
//!
//! Retention is configured per kind of event; because the chain is pruned
//! as a prefix, an event is removed only once it *and every event before
//! it* are past their retention. The newest checkpoint is never pruned
//! through, so the writer can always resume.

use crate::chain::{sha256_hex, Encoding, GENESIS_HASH};
use crate::checkpoint::Checkpoint;
use crate::error::AuditError;
use crate::event::format_ts;
use crate::signer::AuditSigner;
use crate::store::{checkpoint_columns, decode_checkpoint_row, read_error};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const PRUNE_DOMAIN: &str = "gatehouse.audit.prune.v1";

pub(crate) const PRUNES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS prunes (
    seq               INTEGER PRIMARY KEY,
    through_event_seq INTEGER NOT NULL,
    event_hash        TEXT NOT NULL,
    checkpoint_seq    INTEGER NOT NULL,
    checkpoint_hash   TEXT NOT NULL,
    pruned_events     INTEGER NOT NULL,
    ts                TEXT NOT NULL,
    prev_hash         TEXT NOT NULL,
    hash              TEXT NOT NULL,
    signature         TEXT NOT NULL
) STRICT;
";

/// How long each kind of event is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// For kinds not listed; None keeps them forever.
    pub default: Option<Duration>,
    /// Per event kind (`command.result`, `auth.failure`, …).
    pub by_kind: BTreeMap<String, Duration>,
}

/// A signed statement that events up to a checkpoint were removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneRecord {
    /// 1 for the first prune, then +1.
    pub seq: u64,
    /// The last event removed.
    pub through_event_seq: u64,
    /// Its hash, as the checkpoint signed it.
    pub event_hash: String,
    /// The checkpoint kept as the anchor.
    pub checkpoint_seq: u64,
    /// Its hash.
    pub checkpoint_hash: String,
    /// Events removed by this prune.
    pub pruned_events: u64,
    /// When.
    pub ts: String,
    /// Hash of the previous prune record (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 of the payload.
    pub hash: String,
    /// Ed25519 signature over the payload, hex.
    pub signature: String,
}

impl PruneRecord {
    fn payload(&self) -> Vec<u8> {
        let mut enc = Encoding::new(PRUNE_DOMAIN);
        enc.u64(self.seq)
            .u64(self.through_event_seq)
            .str(&self.event_hash)
            .u64(self.checkpoint_seq)
            .str(&self.checkpoint_hash)
            .u64(self.pruned_events)
            .str(&self.ts)
            .str(&self.prev_hash);
        enc.bytes().to_vec()
    }

    /// Check the signature and stored hash.
    pub fn check_signature(&self, key: &VerifyingKey) -> Result<(), String> {
        let payload = self.payload();
        let signature = hex::decode(&self.signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or_else(|| {
                format!(
                    "prune record {}: its signature is not a 64-byte hex Ed25519 signature",
                    self.seq
                )
            })?;
        key.verify(&payload, &signature).map_err(|_| {
            format!(
                "prune record {}: its signature does not verify with the given public key: it was forged or edited",
                self.seq
            )
        })?;
        if sha256_hex(&payload) != self.hash {
            return Err(format!(
                "prune record {}: its stored hash does not match its content",
                self.seq
            ));
        }
        Ok(())
    }
}

/// What a prune would remove (or removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneOutcome {
    /// The checkpoint kept as the new anchor; None when nothing is due.
    pub anchor: Option<Checkpoint>,
    /// Events removed (or that would be).
    pub events: u64,
    /// Checkpoints removed (those before the anchor).
    pub checkpoints: u64,
    /// The first event that stays.
    pub first_kept: Option<u64>,
    /// The signed record, when the prune was carried out.
    pub record: Option<PruneRecord>,
}

fn tables(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'prunes'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The latest prune record of the store, if any (read-only connections).
pub(crate) fn latest_prune(conn: &Connection) -> rusqlite::Result<Option<PruneRecord>> {
    if !tables(conn)? {
        return Ok(None);
    }
    conn.query_row(
        "SELECT seq, through_event_seq, event_hash, checkpoint_seq, checkpoint_hash, pruned_events, ts, prev_hash, \
         hash, signature FROM prunes ORDER BY seq DESC LIMIT 1",
        [],
        |r| {
            let n = |i: usize| -> rusqlite::Result<u64> { Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0)) };
            Ok(PruneRecord {
                seq: n(0)?,
                through_event_seq: n(1)?,
                event_hash: r.get(2)?,
                checkpoint_seq: n(3)?,
                checkpoint_hash: r.get(4)?,
                pruned_events: n(5)?,
                ts: r.get(6)?,
                prev_hash: r.get(7)?,
                hash: r.get(8)?,
                signature: r.get(9)?,
            })
        },
    )
    .optional()
}

/// Every prune record, oldest first.
pub fn prune_records(path: &Path) -> Result<Vec<PruneRecord>, AuditError> {
    let conn = crate::store::open_read_only(path)?;
    let read_err = read_error(path);
    if !tables(&conn).map_err(read_err)? {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare(
            "SELECT seq, through_event_seq, event_hash, checkpoint_seq, checkpoint_hash, pruned_events, ts, \
             prev_hash, hash, signature FROM prunes ORDER BY seq",
        )
        .map_err(read_err)?;
    let rows = stmt
        .query_map([], |r| {
            let n = |i: usize| -> rusqlite::Result<u64> {
                Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
            };
            Ok(PruneRecord {
                seq: n(0)?,
                through_event_seq: n(1)?,
                event_hash: r.get(2)?,
                checkpoint_seq: n(3)?,
                checkpoint_hash: r.get(4)?,
                pruned_events: n(5)?,
                ts: r.get(6)?,
                prev_hash: r.get(7)?,
                hash: r.get(8)?,
                signature: r.get(9)?,
            })
        })
        .map_err(read_err)?;
    rows.collect::<Result<_, _>>().map_err(read_err)
}

/// Work out, and unless `dry_run` carry out, the prune `policy` allows at
/// time `now`, signing the prune record with `signer`. Runs in one write
/// transaction, so it is safe while the gateway appends.
pub fn prune(
    path: &Path,
    policy: &RetentionPolicy,
    signer: &AuditSigner,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<PruneOutcome, AuditError> {
    let write_err = |e: rusqlite::Error| AuditError::NotWritable {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    if !path.exists() {
        return Err(AuditError::NotFound {
            path: path.display().to_string(),
        });
    }
    let mut conn = Connection::open(path).map_err(write_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(write_err)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(write_err)?;
    tx.execute_batch(PRUNES_SCHEMA).map_err(write_err)?;

    // The first event still inside its retention (or the head + 1).
    let cutoff = |d: &Duration| {
        let d = chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::MAX);
        format_ts(
            now.checked_sub_signed(d)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        )
    };
    let mut clauses = Vec::new();
    let mut params: Vec<String> = Vec::new();
    for (kind, d) in &policy.by_kind {
        params.push(kind.clone());
        params.push(cutoff(d));
        clauses.push(format!(
            "(kind = ?{} AND ts >= ?{})",
            params.len() - 1,
            params.len()
        ));
    }
    let listed: Vec<String> = (1..=policy.by_kind.len())
        .map(|i| format!("?{}", 2 * i - 1))
        .collect();
    let not_listed = if listed.is_empty() {
        "1".to_string()
    } else {
        format!("kind NOT IN ({})", listed.join(", "))
    };
    match &policy.default {
        Some(d) => {
            params.push(cutoff(d));
            clauses.push(format!("({not_listed} AND ts >= ?{})", params.len()));
        }
        None => clauses.push(format!("({not_listed})")),
    }
    let first_kept: Option<i64> = tx
        .query_row(
            &format!("SELECT min(seq) FROM events WHERE {}", clauses.join(" OR ")),
            rusqlite::params_from_iter(&params),
            |r| r.get(0),
        )
        .map_err(write_err)?;
    let head: Option<i64> = tx
        .query_row("SELECT max(seq) FROM events", [], |r| r.get(0))
        .map_err(write_err)?;
    let first_kept = first_kept
        .or(head.map(|h| h + 1))
        .and_then(|s| u64::try_from(s).ok());
    let nothing = PruneOutcome {
        anchor: None,
        events: 0,
        checkpoints: 0,
        first_kept,
        record: None,
    };
    let Some(first_kept) = first_kept else {
        return Ok(nothing);
    };
    // The newest checkpoint before it, but never the newest of all (the
    // writer resumes from that one's event).
    let last_cp: Option<i64> = tx
        .query_row("SELECT max(seq) FROM checkpoints", [], |r| r.get(0))
        .map_err(write_err)?;
    let columns = checkpoint_columns(&tx).map_err(write_err)?;
    let anchor = tx
        .query_row(
            &format!(
                "SELECT {columns} FROM checkpoints WHERE event_seq < ?1 AND seq < ?2 ORDER BY seq DESC LIMIT 1"
            ),
            [i64::try_from(first_kept).unwrap_or(i64::MAX), last_cp.unwrap_or(0)],
            |r| Ok(decode_checkpoint_row(r)),
        )
        .optional()
        .map_err(write_err)?
        .transpose()
        .map_err(|reason| AuditError::CorruptRow { seq: 0, reason })?;
    let previous = latest_prune(&tx).map_err(write_err)?;
    let Some(anchor) = anchor.filter(|a| {
        previous
            .as_ref()
            .is_none_or(|p| a.event_seq > p.through_event_seq)
    }) else {
        return Ok(nothing);
    };
    anchor
        .check_signature(&signer.verifying_key())
        .map_err(|reason| AuditError::Broken {
            path: path.display().to_string(),
            seq: anchor.event_seq,
            reason: format!("checkpoint {} cannot anchor a prune: {reason}", anchor.seq),
        })?;
    let bound = i64::try_from(anchor.event_seq).unwrap_or(i64::MAX);
    let events: i64 = tx
        .query_row(
            "SELECT count(*) FROM events WHERE seq <= ?1",
            [bound],
            |r| r.get(0),
        )
        .map_err(write_err)?;
    let checkpoints: i64 = tx
        .query_row(
            "SELECT count(*) FROM checkpoints WHERE seq < ?1",
            [i64::try_from(anchor.seq).unwrap_or(i64::MAX)],
            |r| r.get(0),
        )
        .map_err(write_err)?;
    let events = u64::try_from(events).unwrap_or(0);
    let checkpoints = u64::try_from(checkpoints).unwrap_or(0);
    if dry_run {
        return Ok(PruneOutcome {
            first_kept: Some(anchor.event_seq + 1),
            anchor: Some(anchor),
            events,
            checkpoints,
            record: None,
        });
    }
    let mut record = PruneRecord {
        seq: previous.as_ref().map_or(1, |p| p.seq + 1),
        through_event_seq: anchor.event_seq,
        event_hash: anchor.event_hash.clone(),
        checkpoint_seq: anchor.seq,
        checkpoint_hash: anchor.hash.clone(),
        pruned_events: events,
        ts: format_ts(now),
        prev_hash: previous
            .as_ref()
            .map_or_else(|| GENESIS_HASH.to_string(), |p| p.hash.clone()),
        hash: String::new(),
        signature: String::new(),
    };
    let payload = record.payload();
    record.hash = sha256_hex(&payload);
    record.signature = hex::encode(signer.sign(&payload).to_bytes());
    tx.execute("DELETE FROM events WHERE seq <= ?1", [bound])
        .map_err(write_err)?;
    tx.execute(
        "DELETE FROM checkpoints WHERE seq < ?1",
        [i64::try_from(anchor.seq).unwrap_or(i64::MAX)],
    )
    .map_err(write_err)?;
    tx.execute(
        "INSERT INTO prunes (seq, through_event_seq, event_hash, checkpoint_seq, checkpoint_hash, pruned_events, ts, \
         prev_hash, hash, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        rusqlite::params![
            i64::try_from(record.seq).unwrap_or(i64::MAX),
            bound,
            record.event_hash,
            i64::try_from(record.checkpoint_seq).unwrap_or(i64::MAX),
            record.checkpoint_hash,
            events as i64,
            record.ts,
            record.prev_hash,
            record.hash,
            record.signature
        ],
    )
    .map_err(write_err)?;
    tx.commit().map_err(write_err)?;
    Ok(PruneOutcome {
        first_kept: Some(anchor.event_seq + 1),
        anchor: Some(anchor),
        events,
        checkpoints,
        record: Some(record),
    })
}
