//! Helpers shared by the integration tests.
#![allow(dead_code)]

use gatehouse_audit::{
    load_verifying_key, public_key_path, AuditConfig, AuditLog, Durability, NewEvent, VerifyingKey,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn db(dir: &Path) -> PathBuf {
    dir.join("audit.db")
}

pub fn key_path(dir: &Path) -> PathBuf {
    dir.join("audit.key")
}

/// The external anchor the test writers append their checkpoints to.
pub fn anchor_path(dir: &Path) -> PathBuf {
    dir.join("anchor/audit-anchor.jsonl")
}

/// A config that only checkpoints every `every` events and at close.
pub fn config(dir: &Path, every: u64) -> AuditConfig {
    AuditConfig {
        path: db(dir),
        signing_key_path: key_path(dir),
        durability: Durability::Normal,
        sync_window: gatehouse_audit::DEFAULT_SYNC_WINDOW,
        checkpoint_every: every,
        checkpoint_interval: Duration::from_secs(3600),
        anchor_file: Some(anchor_path(dir)),
    }
}

pub fn public_key(dir: &Path) -> VerifyingKey {
    load_verifying_key(&public_key_path(&key_path(dir))).unwrap()
}

pub fn command(session: &str, n: u64) -> NewEvent {
    NewEvent {
        kind: "command".into(),
        session_id: Some(session.into()),
        subject: Some("alice".into()),
        connection: Some("pg-prod".into()),
        data: json!({"sql": format!("select {n}"), "verdict": {"effect": "allow"}}),
    }
}

/// `n` committed commands, then a clean close (one checkpoint covering all).
pub fn fill(dir: &Path, n: u64) {
    let log = AuditLog::open(config(dir, 1000)).unwrap();
    for i in 1..=n {
        assert_eq!(log.record_blocking(command("s1", i)).unwrap(), i);
    }
    log.shutdown_blocking().unwrap();
}

pub fn raw(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(db(dir)).unwrap()
}
