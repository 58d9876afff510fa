//! JSONL export: the evidence handed to an examiner, one record per line, in
//! the exact form that was hashed and signed.

use crate::error::AuditError;
use crate::event::parse_time_bound;
use crate::store::{
    checkpoint_columns, decode_checkpoint_row, decode_event_row, open_read_only, read_error,
    EVENT_COLUMNS,
};
use std::io::Write;
use std::path::Path;

/// Which events to export. Empty means all of them, which is what
/// [`crate::verify_jsonl`] needs to check the chain from event 1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportFilter {
    /// Only events at or after this time (RFC 3339, or `YYYY-MM-DD`).
    pub from: Option<String>,
    /// Only events before this time (RFC 3339, or `YYYY-MM-DD`).
    pub to: Option<String>,
    /// Only this session's events.
    pub session_id: Option<String>,
}

/// SQL conditions and their parameters, built from optional filters so each
/// query only names the columns it filters on (and can use their index).
#[derive(Default)]
pub(crate) struct Conditions {
    clauses: Vec<String>,
    pub(crate) params: Vec<String>,
}

impl Conditions {
    pub(crate) fn add(&mut self, clause_with_placeholder: &str, value: String) {
        self.params.push(value);
        self.clauses
            .push(clause_with_placeholder.replace('?', &format!("?{}", self.params.len())));
    }

    pub(crate) fn time_bound(
        &mut self,
        clause: &str,
        text: &Option<String>,
        what: &str,
    ) -> Result<(), AuditError> {
        if let Some(text) = text {
            let bound = parse_time_bound(text).ok_or_else(|| {
                AuditError::InvalidFilter(format!(
                    "{what} \"{text}\" is not a time; use RFC 3339 (2025-01-31T09:00:00Z) or a date (2025-01-31)"
                ))
            })?;
            self.add(clause, bound);
        }
        Ok(())
    }

    pub(crate) fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// Write the events matching `filter` to `out` as JSON lines
/// ([`crate::AuditEvent`] serialization), in seq order. Returns how many were
/// written. Streams, so it runs in constant memory on any size of trail.
pub fn export_jsonl(
    path: &Path,
    out: &mut dyn Write,
    filter: &ExportFilter,
) -> Result<u64, AuditError> {
    let mut conditions = Conditions::default();
    conditions.time_bound("ts >= ?", &filter.from, "from")?;
    conditions.time_bound("ts < ?", &filter.to, "to")?;
    if let Some(session) = &filter.session_id {
        conditions.add("session_id = ?", session.clone());
    }
    let read_err = read_error(path);
    let conn = open_read_only(path)?;
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events{} ORDER BY seq",
        conditions.where_sql()
    );
    let mut stmt = conn.prepare(&sql).map_err(read_err)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(&conditions.params), |row| {
            Ok(decode_event_row(row))
        })
        .map_err(read_err)?;
    let mut written = 0;
    for row in rows {
        let event = row.map_err(read_err)??;
        write_line(out, &event)?;
        written += 1;
    }
    out.flush().map_err(AuditError::Output)?;
    Ok(written)
}

/// Write every checkpoint to `out` as JSON lines ([`crate::Checkpoint`]
/// serialization). Examiners should keep this file: a later copy of a
/// checkpoint is what exposes events deleted together with their
/// checkpoints.
pub fn export_checkpoints_jsonl(path: &Path, out: &mut dyn Write) -> Result<u64, AuditError> {
    let read_err = read_error(path);
    let conn = open_read_only(path)?;
    let columns = checkpoint_columns(&conn).map_err(read_err)?;
    let mut stmt = conn
        .prepare(&format!("SELECT {columns} FROM checkpoints ORDER BY seq"))
        .map_err(read_err)?;
    let rows = stmt
        .query_map([], |row| Ok(decode_checkpoint_row(row)))
        .map_err(read_err)?;
    let mut written = 0;
    for row in rows {
        let checkpoint = row.map_err(read_err)?.map_err(|reason| AuditError::Read {
            path: path.display().to_string(),
            reason: format!("a checkpoint cannot be read: {reason}; run `gatehouse audit verify`"),
        })?;
        write_line(out, &checkpoint)?;
        written += 1;
    }
    out.flush().map_err(AuditError::Output)?;
    Ok(written)
}

fn write_line<T: serde::Serialize>(out: &mut dyn Write, record: &T) -> Result<(), AuditError> {
    serde_json::to_writer(&mut *out, record).map_err(|e| AuditError::Output(e.into()))?;
    out.write_all(b"\n").map_err(AuditError::Output)
}

/// Write events `first_seq..=last_seq` to `out` as JSON lines, in seq order:
/// a segment of the chain for an evidence pack. Returns how many were
/// written.
pub fn export_range_jsonl(
    path: &Path,
    out: &mut dyn Write,
    first_seq: u64,
    last_seq: u64,
) -> Result<u64, AuditError> {
    let read_err = read_error(path);
    let conn = open_read_only(path)?;
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq"
        ))
        .map_err(read_err)?;
    let bound = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map([bound(first_seq), bound(last_seq)], |row| {
            Ok(decode_event_row(row))
        })
        .map_err(read_err)?;
    let mut written = 0;
    for row in rows {
        let event = row.map_err(read_err)??;
        write_line(out, &event)?;
        written += 1;
    }
    out.flush().map_err(AuditError::Output)?;
    Ok(written)
}

/// The first and last seq of the events at or after `from` and before `to`
/// (RFC 3339 or `YYYY-MM-DD`; None means unbounded), or None when no event
/// falls in the period.
pub fn period_seq_range(
    path: &Path,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Option<(u64, u64)>, AuditError> {
    let mut conditions = Conditions::default();
    conditions.time_bound("ts >= ?", &from.map(str::to_string), "from")?;
    conditions.time_bound("ts < ?", &to.map(str::to_string), "to")?;
    let read_err = read_error(path);
    let conn = open_read_only(path)?;
    let sql = format!(
        "SELECT min(seq), max(seq) FROM events{}",
        conditions.where_sql()
    );
    let (min, max): (Option<i64>, Option<i64>) = conn
        .query_row(
            &sql,
            rusqlite::params_from_iter(&conditions.params),
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(read_err)?;
    Ok(match (min, max) {
        (Some(a), Some(b)) => Some((u64::try_from(a).unwrap_or(0), u64::try_from(b).unwrap_or(0))),
        _ => None,
    })
}

/// The seq of the last event in the trail (0 when empty).
pub fn last_event_seq(path: &Path) -> Result<u64, AuditError> {
    let read_err = read_error(path);
    let conn = open_read_only(path)?;
    let max: Option<i64> = conn
        .query_row("SELECT max(seq) FROM events", [], |row| row.get(0))
        .map_err(read_err)?;
    Ok(max.and_then(|m| u64::try_from(m).ok()).unwrap_or(0))
}

/// Every checkpoint, in order.
pub fn read_checkpoints(path: &Path) -> Result<Vec<crate::Checkpoint>, AuditError> {
    let mut buf = Vec::new();
    export_checkpoints_jsonl(path, &mut buf)?;
    buf.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l).map_err(|e| AuditError::Read {
                path: path.display().to_string(),
                reason: format!("a checkpoint cannot be read: {e}"),
            })
        })
        .collect()
}

/// A read-only follower of the trail, for consumers that deliver events
/// elsewhere (SIEM export) off the data path: it holds one read-only
/// connection and never takes the writer's lock.
pub struct TrailReader {
    conn: rusqlite::Connection,
    path: std::path::PathBuf,
}

impl TrailReader {
    /// Open the trail at `path` for reading.
    pub fn open(path: &Path) -> Result<TrailReader, AuditError> {
        Ok(TrailReader {
            conn: open_read_only(path)?,
            path: path.to_path_buf(),
        })
    }

    /// Up to `limit` events with seq greater than `after`, in order.
    pub fn after(&self, after: u64, limit: usize) -> Result<Vec<crate::AuditEvent>, AuditError> {
        let read_err = read_error(&self.path);
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))
            .map_err(read_err)?;
        let bound = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map([bound(after), bound(limit as u64)], |row| {
                Ok(decode_event_row(row))
            })
            .map_err(read_err)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.map_err(read_err)??);
        }
        Ok(out)
    }
}

/// The newest checkpoint of the store at `path`, if any, read through a
/// read-only connection (whatever the store's format).
pub fn last_checkpoint(path: &Path) -> Result<Option<crate::Checkpoint>, AuditError> {
    use rusqlite::OptionalExtension;
    let read_err = read_error(path);
    let conn = open_read_only(path)?;
    let columns = checkpoint_columns(&conn).map_err(read_err)?;
    conn.query_row(
        &format!("SELECT {columns} FROM checkpoints ORDER BY seq DESC LIMIT 1"),
        [],
        |row| Ok(decode_checkpoint_row(row)),
    )
    .optional()
    .map_err(read_err)?
    .transpose()
    .map_err(|reason| AuditError::Read {
        path: path.display().to_string(),
        reason: format!(
            "the newest checkpoint cannot be read: {reason}; run `gatehouse audit verify`"
        ),
    })
}
