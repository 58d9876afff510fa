//! Session views for the console and the CLI: who connected where, when,
//! and how many of their commands were blocked.

use crate::error::AuditError;
use crate::event::AuditEvent;
use crate::export::Conditions;
use crate::store::{decode_event_row, open_read_only, read_error, EVENT_COLUMNS};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Sessions returned when no limit is given.
const DEFAULT_LIMIT: u32 = 100;

/// Which sessions to list. Empty means the newest 100.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only this identity (subject).
    pub subject: Option<String>,
    /// Only this connection.
    pub connection: Option<String>,
    /// Only sessions started at or after this time (RFC 3339 or `YYYY-MM-DD`).
    pub since: Option<String>,
    /// Only sessions started before this time (RFC 3339 or `YYYY-MM-DD`).
    pub until: Option<String>,
    /// At most this many, newest first (default 100).
    pub limit: Option<u32>,
}

/// One session as the trail records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// The session id.
    pub id: String,
    /// Who (identity subject).
    pub subject: Option<String>,
    /// Which connection.
    pub connection: Option<String>,
    /// From where (`data.client_addr` of `session.start`).
    pub client_addr: Option<String>,
    /// Over which protocol (`data.protocol` of `session.start`).
    pub protocol: Option<String>,
    /// `session.start` time.
    pub started_at: String,
    /// `session.end` time; None while open (or if the gateway stopped first).
    pub ended_at: Option<String>,
    /// `command` events in the session.
    pub commands: u64,
    /// Commands refused: the `blocked` count of the session's `session.end`
    /// (which also counts held commands that were denied or expired, and
    /// requests refused by the protocol adapter), or, while the session is
    /// open, the `command` events whose `data.verdict.effect` is `"block"`,
    /// whichever is larger.
    pub blocked: u64,
}

/// Sessions matching `filter`, newest first.
pub fn list_sessions(
    path: &Path,
    filter: &SessionFilter,
) -> Result<Vec<SessionSummary>, AuditError> {
    let mut conditions = Conditions::default();
    if let Some(subject) = &filter.subject {
        conditions.add("s.subject = ?", subject.clone());
    }
    if let Some(connection) = &filter.connection {
        conditions.add("s.connection = ?", connection.clone());
    }
    conditions.time_bound("s.ts >= ?", &filter.since, "since")?;
    conditions.time_bound("s.ts < ?", &filter.until, "until")?;
    conditions.add("s.kind = ?", "session.start".to_string());
    let sql = format!(
        "SELECT s.session_id, s.subject, s.connection,
                CAST(json_extract(s.data, '$.client_addr') AS TEXT),
                CAST(json_extract(s.data, '$.protocol') AS TEXT),
                s.ts,
                (SELECT min(e.ts) FROM events e WHERE e.session_id = s.session_id AND e.kind = 'session.end'),
                (SELECT count(*) FROM events c WHERE c.session_id = s.session_id AND c.kind = 'command'),
                max((SELECT count(*) FROM events c WHERE c.session_id = s.session_id AND c.kind = 'command'
                        AND json_extract(c.data, '$.verdict.effect') = 'block'),
                    coalesce((SELECT max(CAST(json_extract(e.data, '$.blocked') AS INTEGER)) FROM events e
                        WHERE e.session_id = s.session_id AND e.kind = 'session.end'), 0))
         FROM events s{} AND s.session_id IS NOT NULL
         ORDER BY s.seq DESC
         LIMIT {}",
        conditions.where_sql(),
        filter.limit.unwrap_or(DEFAULT_LIMIT)
    );
    let read_err = read_error(path);
    let conn = open_read_only(path)?;
    let mut stmt = conn.prepare(&sql).map_err(read_err)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(&conditions.params), |row| {
            let count = |i: usize| -> rusqlite::Result<u64> {
                Ok(u64::try_from(row.get::<_, i64>(i)?).unwrap_or(0))
            };
            Ok(SessionSummary {
                id: row.get(0)?,
                subject: row.get(1)?,
                connection: row.get(2)?,
                client_addr: row.get(3)?,
                protocol: row.get(4)?,
                started_at: row.get(5)?,
                ended_at: row.get(6)?,
                commands: count(7)?,
                blocked: count(8)?,
            })
        })
        .map_err(read_err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(read_err)
}

/// Every event of one session, in order (empty if there is no such session).
pub fn session_events(path: &Path, session_id: &str) -> Result<Vec<AuditEvent>, AuditError> {
    let read_err = read_error(path);
    let conn = open_read_only(path)?;
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE session_id = ?1 ORDER BY seq"
        ))
        .map_err(read_err)?;
    let rows = stmt
        .query_map([session_id], |row| Ok(decode_event_row(row)))
        .map_err(read_err)?;
    let mut events = Vec::new();
    for row in rows {
        events.push(row.map_err(read_err)??);
    }
    Ok(events)
}
