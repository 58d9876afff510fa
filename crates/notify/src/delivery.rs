//! Delivery records: what the console shows about each notification sent to
//! each receiver, kept in a bounded in-memory history.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::ReceiverKind;

/// Where a delivery stands. Serialised flat into [`Delivery`] as
/// `"state": "retrying", "next_attempt_at": "…"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum DeliveryState {
    /// Queued; the first attempt has not finished yet.
    Pending,
    /// An attempt failed with a retryable error; the next one is scheduled.
    Retrying {
        /// When the next attempt is due (it may start a little later if the
        /// receiver's worker is busy with another delivery).
        next_attempt_at: DateTime<Utc>,
    },
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: a permanent error, attempts exhausted, queue full, or
    /// shutdown. See [`Delivery::last_error`].
    Failed,
}

impl DeliveryState {
    /// The state's name as shown in the console.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Retrying { .. } => "retrying",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    /// True once nothing more will happen to the delivery.
    pub fn is_final(&self) -> bool {
        matches!(self, DeliveryState::Delivered | DeliveryState::Failed)
    }
}

/// One notification to one receiver, as the console lists it. Contains no
/// secret and no receiver URL.
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    /// Unique id, sent as `Gatehouse-Delivery` and kept across retries.
    pub delivery_id: String,
    /// The receiver's configured name.
    pub receiver: String,
    /// `"webhook"` or `"slack"`.
    pub kind: ReceiverKind,
    /// The notification's event, e.g. `"approval.requested"`.
    pub event: String,
    /// The notification's id, e.g. the approval request id.
    pub notification_id: String,
    /// HTTP attempts made so far.
    pub attempts: u32,
    /// Where it stands (flattened: `state`, and `next_attempt_at` when retrying).
    #[serde(flatten)]
    pub state: DeliveryState,
    /// HTTP status of the last answer, if the receiver answered at all.
    pub last_status: Option<u16>,
    /// Why the last attempt did not deliver (never a secret or URL).
    pub last_error: Option<String>,
    /// When `notify` was called.
    pub created_at: DateTime<Utc>,
    /// When the last attempt finished, if any.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When this record last changed.
    pub updated_at: DateTime<Utc>,
}

/// A bounded history keyed by insertion order. When full, the oldest
/// finished delivery is dropped first, so deliveries still in progress stay
/// visible as long as possible.
#[derive(Debug)]
pub(crate) struct History {
    capacity: usize,
    next_seq: u64,
    records: BTreeMap<u64, Delivery>,
}

impl History {
    pub(crate) fn new(capacity: usize) -> Self {
        History {
            capacity,
            next_seq: 0,
            records: BTreeMap::new(),
        }
    }

    /// Adds a record and returns its key for later updates.
    pub(crate) fn insert(&mut self, d: Delivery) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.capacity == 0 {
            return seq;
        }
        self.records.insert(seq, d);
        while self.records.len() > self.capacity {
            let victim = self
                .records
                .iter()
                .find(|(_, d)| d.state.is_final())
                .map(|(k, _)| *k)
                .or_else(|| self.records.keys().next().copied());
            match victim {
                Some(k) => {
                    self.records.remove(&k);
                }
                None => break,
            }
        }
        seq
    }

    /// Applies `f` to the record, if it is still kept.
    pub(crate) fn update(&mut self, seq: u64, f: impl FnOnce(&mut Delivery)) {
        if let Some(d) = self.records.get_mut(&seq) {
            f(d);
            d.updated_at = Utc::now();
        }
    }

    /// Marks every unfinished record failed with `reason`.
    pub(crate) fn fail_unfinished(&mut self, reason: &str) {
        let now = Utc::now();
        for d in self.records.values_mut() {
            if !d.state.is_final() {
                d.last_error = Some(match d.last_error.take() {
                    Some(prev) => format!("{reason} (last error: {prev})"),
                    None => reason.to_string(),
                });
                d.state = DeliveryState::Failed;
                d.updated_at = now;
            }
        }
    }

    /// Newest first.
    pub(crate) fn list(&self) -> Vec<Delivery> {
        self.records.values().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, state: DeliveryState) -> Delivery {
        let now = Utc::now();
        Delivery {
            delivery_id: id.into(),
            receiver: "r".into(),
            kind: ReceiverKind::Webhook,
            event: "e".into(),
            notification_id: "1".into(),
            attempts: 0,
            state,
            last_status: None,
            last_error: None,
            created_at: now,
            last_attempt_at: None,
            updated_at: now,
        }
    }

    #[test]
    fn newest_first_and_bounded_preferring_finished() {
        let mut h = History::new(3);
        h.insert(rec("a", DeliveryState::Pending));
        h.insert(rec("b", DeliveryState::Delivered));
        h.insert(rec("c", DeliveryState::Pending));
        h.insert(rec("d", DeliveryState::Pending));
        let ids: Vec<_> = h.list().into_iter().map(|d| d.delivery_id).collect();
        assert_eq!(ids, ["d", "c", "a"]);
        h.insert(rec("e", DeliveryState::Pending));
        let ids: Vec<_> = h.list().into_iter().map(|d| d.delivery_id).collect();
        assert_eq!(ids, ["e", "d", "c"]);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut h = History::new(0);
        let s = h.insert(rec("a", DeliveryState::Pending));
        h.update(s, |d| d.attempts = 1);
        assert!(h.list().is_empty());
    }

    #[test]
    fn serialises_flat_state() {
        let at = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .expect("date")
            .with_timezone(&Utc);
        let v = serde_json::to_value(rec(
            "a",
            DeliveryState::Retrying {
                next_attempt_at: at,
            },
        ))
        .expect("json");
        assert_eq!(v["state"], "retrying");
        assert_eq!(v["next_attempt_at"], "2025-01-01T00:00:00Z");
        assert_eq!(v["kind"], "webhook");
        let v = serde_json::to_value(rec("a", DeliveryState::Delivered)).expect("json");
        assert_eq!(v["state"], "delivered");
        assert!(v.get("next_attempt_at").is_none());
    }

    #[test]
    fn fail_unfinished_keeps_finished() {
        let mut h = History::new(10);
        h.insert(rec("a", DeliveryState::Delivered));
        let s = h.insert(rec("b", DeliveryState::Pending));
        h.update(s, |d| d.last_error = Some("boom".into()));
        h.fail_unfinished("shut down");
        let l = h.list();
        assert_eq!(l[0].state, DeliveryState::Failed);
        assert_eq!(
            l[0].last_error.as_deref(),
            Some("shut down (last error: boom)")
        );
        assert_eq!(l[1].state, DeliveryState::Delivered);
    }
}
