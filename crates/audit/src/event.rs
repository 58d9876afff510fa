//! The event model: what callers submit and what the trail stores.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// An event as the gateway submits it; the writer adds order, time and hashes
/// so no caller can choose them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// What happened: `session.start`, `session.end`, `command`,
    /// `command.result`, `auth.failure`, …
    pub kind: String,
    /// The session the event belongs to, if any.
    pub session_id: Option<String>,
    /// The identity's subject, if known.
    pub subject: Option<String>,
    /// The connection (target) name, if any.
    pub connection: Option<String>,
    /// Everything else. Must already be masked: the trail never holds what
    /// the client was not allowed to see.
    pub data: serde_json::Value,
}

impl NewEvent {
    /// An event of `kind` with no session, subject or connection and empty
    /// data; set the fields that apply.
    pub fn new(kind: impl Into<String>) -> Self {
        NewEvent {
            kind: kind.into(),
            session_id: None,
            subject: None,
            connection: None,
            data: serde_json::Value::Object(serde_json::Map::new()),
        }
    }
}

/// One committed event, exactly as hashed. Also the JSONL export format, so
/// an examiner can recompute every hash from an export alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the trail: 1 for the first event, then +1 with no gaps.
    pub seq: u64,
    /// When the writer committed it: RFC 3339 UTC with milliseconds. Never
    /// earlier than the previous event's.
    pub ts: String,
    /// See [`NewEvent::kind`].
    pub kind: String,
    /// See [`NewEvent::session_id`].
    pub session_id: Option<String>,
    /// See [`NewEvent::subject`].
    pub subject: Option<String>,
    /// See [`NewEvent::connection`].
    pub connection: Option<String>,
    /// See [`NewEvent::data`].
    pub data: serde_json::Value,
    /// Hash of event `seq - 1` (64 zeros for event 1), hex.
    pub prev_hash: String,
    /// This event's hash, hex; see the crate docs for what it covers.
    pub hash: String,
}

impl AuditEvent {
    /// Recompute this event's hash from its fields (ignoring `self.hash`), so
    /// a reader can compare it with the stored one.
    pub fn compute_hash(&self) -> String {
        crate::chain::event_hash(self)
    }
}

/// The trail's one timestamp format: fixed width, so text order is time order
/// and SQL range filters can compare strings.
pub(crate) fn format_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parse a user-supplied time bound: RFC 3339 with any offset, or a bare
/// `YYYY-MM-DD` meaning midnight UTC. Returns it in the trail's format.
pub fn parse_time_bound(text: &str) -> Option<String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(format_ts(t.with_timezone(&Utc)));
    }
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(format_ts(day.and_hms_opt(0, 0, 0)?.and_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_utc_millis() {
        let t = DateTime::parse_from_rfc3339("2025-01-31T10:15:02+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_ts(t), "2025-01-31T09:15:02.000Z");
    }

    #[test]
    fn time_bounds_accept_offsets_and_dates() {
        assert_eq!(
            parse_time_bound("2025-01-31T10:15:02.5+01:00").as_deref(),
            Some("2025-01-31T09:15:02.500Z")
        );
        assert_eq!(
            parse_time_bound("2025-01-31").as_deref(),
            Some("2025-01-31T00:00:00.000Z")
        );
        assert_eq!(parse_time_bound("yesterday"), None);
    }
}
