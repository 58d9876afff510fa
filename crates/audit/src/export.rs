//! JSONL export: the evidence handed to an examiner, one record per line, in
//! the exact form that was hashed and signed.

use crate::error::AuditError;
use crate::event::parse_time_bound;
use crate::store::{
    decode_checkpoint_row, decode_event_row, open_read_only, read_error, CHECKPOINT_COLUMNS,
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
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY seq"
        ))
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
