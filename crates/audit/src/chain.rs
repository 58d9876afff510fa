//! The hash chain: the byte encoding every event hash covers, and the rule
//! that links each event to the one before it.

use crate::canonical::canonical_json;
use crate::event::AuditEvent;
use crate::verify::BadEvent;
use sha2::{Digest, Sha256};

/// The `prev_hash` of event 1 (and of checkpoint 1): 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const EVENT_DOMAIN: &str = "gatehouse.audit.event.v1";

/// Builds the length-prefixed encoding described in the crate docs. Every
/// variable-length field carries its length, so no two different field
/// tuples can produce the same bytes.
pub(crate) struct Encoding(Vec<u8>);

impl Encoding {
    /// Start an encoding with its domain tag, so an event encoding can never
    /// be mistaken for a checkpoint encoding.
    pub(crate) fn new(domain: &str) -> Self {
        let mut e = Encoding(Vec::with_capacity(256));
        e.str(domain);
        e
    }

    pub(crate) fn u64(&mut self, n: u64) -> &mut Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }

    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    pub(crate) fn opt(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
        }
        self
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The hash of `event`'s fields, ignoring its stored `hash`.
pub(crate) fn event_hash(event: &AuditEvent) -> String {
    event_hash_with_data(event, &canonical_json(&event.data))
}

/// [`event_hash`] with `event.data` already in canonical text, for a
/// caller that needs that text anyway (the journal writes it).
pub(crate) fn event_hash_with_data(event: &AuditEvent, data_text: &str) -> String {
    let mut enc = Encoding::new(EVENT_DOMAIN);
    enc.u64(event.seq)
        .str(&event.prev_hash)
        .str(&event.ts)
        .str(&event.kind)
        .opt(event.session_id.as_deref())
        .opt(event.subject.as_deref())
        .opt(event.connection.as_deref())
        .str(data_text);
    sha256_hex(enc.bytes())
}

/// Walks events in order and names the first one that breaks the chain.
/// Shared by [`crate::verify`] and by the writer's check on open.
#[derive(Debug, Clone)]
pub(crate) struct ChainCursor {
    next_seq: u64,
    prev_hash: String,
}

impl ChainCursor {
    /// Expect event 1.
    pub(crate) fn genesis() -> Self {
        ChainCursor {
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
        }
    }

    /// Expect the event after `seq`, whose hash is `hash` (already trusted).
    pub(crate) fn after(seq: u64, hash: &str) -> Self {
        ChainCursor {
            next_seq: seq + 1,
            prev_hash: hash.to_string(),
        }
    }

    /// The seq the next event must have.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Accept `event` as the next link, or say in plain words why not.
    pub(crate) fn check(&mut self, event: &AuditEvent) -> Result<(), BadEvent> {
        self.check_hashed(event, &event.compute_hash())
    }

    /// [`check`](Self::check) with the event's hash already computed from
    /// its fields (by a reader that had its canonical data text at hand).
    pub(crate) fn check_hashed(
        &mut self,
        event: &AuditEvent,
        computed: &str,
    ) -> Result<(), BadEvent> {
        let expected = self.next_seq;
        if event.seq > expected {
            let reason = if expected == 1 {
                format!(
                    "the trail starts at event {} instead of 1: events 1 to {} were deleted",
                    event.seq,
                    event.seq - 1
                )
            } else {
                format!(
                    "event {expected} is missing: event {} is followed by event {}; events were deleted",
                    expected - 1,
                    event.seq
                )
            };
            return Err(BadEvent::event(expected, reason));
        }
        if event.seq < expected {
            return Err(BadEvent::event(
                expected,
                format!("event {} appears again where event {expected} should be: events were duplicated or reordered", event.seq),
            ));
        }
        if event.prev_hash != self.prev_hash {
            let reason = if expected == 1 {
                "its prev_hash is not the genesis value (64 zeros): events before it were deleted or it was inserted".to_string()
            } else {
                format!(
                    "its prev_hash does not match the hash of event {}: an event was inserted, deleted or moved here",
                    expected - 1
                )
            };
            return Err(BadEvent::event(expected, reason));
        }
        if computed != event.hash {
            return Err(BadEvent::event(
                expected,
                "its content does not match its hash: a field of this event was edited".to_string(),
            ));
        }
        self.next_seq = expected + 1;
        self.prev_hash.clone_from(&event.hash);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(seq: u64, prev: &str) -> AuditEvent {
        let mut e = AuditEvent {
            seq,
            ts: "2025-01-31T09:15:02.123Z".into(),
            kind: "command".into(),
            session_id: Some("s1".into()),
            subject: None,
            connection: Some("".into()),
            data: json!({"sql": "select 1"}),
            prev_hash: prev.into(),
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        e
    }

    #[test]
    fn absent_and_empty_fields_hash_differently() {
        let a = event(1, GENESIS_HASH);
        let mut b = a.clone();
        b.connection = None;
        assert_ne!(a.compute_hash(), b.compute_hash());
        let mut c = a.clone();
        c.subject = Some(String::new());
        assert_ne!(a.compute_hash(), c.compute_hash());
    }

    #[test]
    fn moving_bytes_between_fields_changes_the_hash() {
        let mut a = event(1, GENESIS_HASH);
        a.kind = "ab".into();
        a.session_id = Some("c".into());
        let mut b = a.clone();
        b.kind = "a".into();
        b.session_id = Some("bc".into());
        assert_ne!(a.compute_hash(), b.compute_hash());
    }

    /// Pins the encoding: if this changes, every stored trail stops verifying.
    #[test]
    fn known_vector() {
        let e = event(1, GENESIS_HASH);
        let mut expected = Vec::new();
        let s = |v: &mut Vec<u8>, t: &str| {
            v.extend_from_slice(&(t.len() as u64).to_be_bytes());
            v.extend_from_slice(t.as_bytes());
        };
        s(&mut expected, "gatehouse.audit.event.v1");
        expected.extend_from_slice(&1u64.to_be_bytes());
        s(&mut expected, GENESIS_HASH);
        s(&mut expected, "2025-01-31T09:15:02.123Z");
        s(&mut expected, "command");
        expected.push(1);
        s(&mut expected, "s1");
        expected.push(0);
        expected.push(1);
        s(&mut expected, "");
        s(&mut expected, r#"{"sql":"select 1"}"#);
        assert_eq!(e.hash, sha256_hex(&expected));
    }

    #[test]
    fn cursor_accepts_a_chain_and_names_the_break() {
        let e1 = event(1, GENESIS_HASH);
        let e2 = event(2, &e1.hash);
        let e3 = event(3, &e2.hash);
        let mut c = ChainCursor::genesis();
        c.check(&e1).unwrap();
        let bad = c.check(&e3).unwrap_err();
        assert_eq!(bad.seq, 2);
        assert!(bad.reason.contains("event 2 is missing"), "{}", bad.reason);

        let mut c = ChainCursor::after(1, &e1.hash);
        let mut edited = e2.clone();
        edited.kind = "session.end".into();
        let bad = c.check(&edited).unwrap_err();
        assert_eq!(bad.seq, 2);
        assert!(bad.reason.contains("edited"));
    }
}
