//! Export, offline verification of an export, and the session views.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;
use gatehouse_audit::{
    export_checkpoints_jsonl, export_jsonl, list_sessions, session_events, verify, verify_jsonl,
    AuditError, AuditEvent, AuditLog, ExportFilter, NewEvent, SessionFilter,
};
use serde_json::json;
use std::io::Cursor;

fn event(kind: &str, session: &str, subject: &str, data: serde_json::Value) -> NewEvent {
    NewEvent {
        kind: kind.into(),
        session_id: Some(session.into()),
        subject: Some(subject.into()),
        connection: Some("pg-prod".into()),
        data,
    }
}

/// Two sessions: alice's (3 commands, 1 blocked, ended) and bob's (open).
fn sessions_trail() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path(), 1000)).unwrap();
    let rec = |e| log.record_blocking(e).unwrap();
    rec(event(
        "session.start",
        "a",
        "alice",
        json!({"client_addr": "10.0.0.5:5123", "protocol": "postgres"}),
    ));
    rec(event(
        "command",
        "a",
        "alice",
        json!({"sql": "select 1", "verdict": {"effect": "allow"}}),
    ));
    rec(event(
        "command",
        "a",
        "alice",
        json!({"sql": "drop table t", "verdict": {"effect": "block", "rule": "no-ddl"}}),
    ));
    rec(event("command.result", "a", "alice", json!({"rows": 1})));
    rec(event(
        "session.start",
        "b",
        "bob",
        json!({"client_addr": "10.0.0.6:6000", "protocol": "postgres"}),
    ));
    rec(event(
        "command",
        "a",
        "alice",
        json!({"sql": "select 2", "verdict": {"effect": "allow"}, "price": 0.1}),
    ));
    rec(event("session.end", "a", "alice", json!({"commands": 3})));
    rec(NewEvent::new("auth.failure"));
    log.shutdown_blocking().unwrap();
    dir
}

#[test]
fn export_round_trips_and_verifies_offline() {
    let dir = sessions_trail();
    let mut events = Vec::new();
    assert_eq!(
        export_jsonl(&db(dir.path()), &mut events, &ExportFilter::default()).unwrap(),
        8
    );
    let mut checkpoints = Vec::new();
    assert_eq!(
        export_checkpoints_jsonl(&db(dir.path()), &mut checkpoints).unwrap(),
        1
    );

    let parsed: Vec<AuditEvent> = String::from_utf8(events.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        parsed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    assert_eq!(
        parsed[0..7]
            .iter()
            .filter(|e| e.session_id.as_deref() == Some("a"))
            .count(),
        6
    );
    for e in &parsed {
        assert_eq!(
            e.compute_hash(),
            e.hash,
            "an export alone lets anyone recompute the hash"
        );
    }

    let key = public_key(dir.path());
    let offline = verify_jsonl(
        &mut Cursor::new(&events),
        &mut Cursor::new(&checkpoints),
        &key,
    )
    .unwrap();
    let online = verify(&db(dir.path()), &key).unwrap();
    assert_eq!(
        online.writer_running,
        Some(false),
        "the store knows no gateway writes it"
    );
    assert_eq!(
        offline,
        gatehouse_audit::VerifyReport {
            writer_running: None,
            ..online
        },
        "an export verifies as the store does"
    );
    assert!(
        offline.is_intact() && offline.unsigned_tail == 0,
        "{offline:?}"
    );

    // An edit to the exported file is caught too.
    let text = String::from_utf8(events)
        .unwrap()
        .replace("drop table t", "select 3");
    let report =
        verify_jsonl(&mut Cursor::new(text), &mut Cursor::new(&checkpoints), &key).unwrap();
    assert_eq!(report.first_bad.unwrap().seq, 3);
}

#[test]
fn export_filters_by_session_and_time() {
    let dir = sessions_trail();
    let path = db(dir.path());
    let mut out = Vec::new();
    let only_b = ExportFilter {
        session_id: Some("b".into()),
        ..Default::default()
    };
    assert_eq!(export_jsonl(&path, &mut out, &only_b).unwrap(), 1);
    assert!(String::from_utf8(out).unwrap().contains("10.0.0.6:6000"));

    let future = ExportFilter {
        from: Some("2999-01-01".into()),
        ..Default::default()
    };
    assert_eq!(export_jsonl(&path, &mut Vec::new(), &future).unwrap(), 0);
    let past = ExportFilter {
        to: Some("2000-01-01T00:00:00Z".into()),
        ..Default::default()
    };
    assert_eq!(export_jsonl(&path, &mut Vec::new(), &past).unwrap(), 0);
    let all = ExportFilter {
        from: Some("2000-01-01".into()),
        to: Some("2999-01-01T00:00:00+02:00".into()),
        ..Default::default()
    };
    assert_eq!(export_jsonl(&path, &mut Vec::new(), &all).unwrap(), 8);

    let bad = ExportFilter {
        from: Some("last week".into()),
        ..Default::default()
    };
    let err = export_jsonl(&path, &mut Vec::new(), &bad).unwrap_err();
    assert!(
        matches!(err, AuditError::InvalidFilter(_)) && err.to_string().contains("RFC 3339"),
        "{err}"
    );
}

#[test]
fn lists_sessions_newest_first_with_counts() {
    let dir = sessions_trail();
    let path = db(dir.path());
    let list = list_sessions(&path, &SessionFilter::default()).unwrap();
    assert_eq!(
        list.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["b", "a"]
    );
    let (b, a) = (&list[0], &list[1]);
    assert_eq!((a.commands, a.blocked), (3, 1));
    assert_eq!(a.client_addr.as_deref(), Some("10.0.0.5:5123"));
    assert_eq!(a.protocol.as_deref(), Some("postgres"));
    assert_eq!(a.subject.as_deref(), Some("alice"));
    assert!(a
        .ended_at
        .as_deref()
        .is_some_and(|end| end >= a.started_at.as_str()));
    assert_eq!((b.commands, b.blocked, b.ended_at.clone()), (0, 0, None));

    let alice = SessionFilter {
        subject: Some("alice".into()),
        ..Default::default()
    };
    assert_eq!(list_sessions(&path, &alice).unwrap().len(), 1);
    let other_conn = SessionFilter {
        connection: Some("mysql".into()),
        ..Default::default()
    };
    assert!(list_sessions(&path, &other_conn).unwrap().is_empty());
    let one = SessionFilter {
        limit: Some(1),
        ..Default::default()
    };
    assert_eq!(list_sessions(&path, &one).unwrap()[0].id, "b");
    let later = SessionFilter {
        since: Some("2999-01-01".into()),
        ..Default::default()
    };
    assert!(list_sessions(&path, &later).unwrap().is_empty());
    let bad = SessionFilter {
        until: Some("soon".into()),
        ..Default::default()
    };
    assert!(matches!(
        list_sessions(&path, &bad),
        Err(AuditError::InvalidFilter(_))
    ));
}

#[test]
fn session_events_are_that_sessions_in_order() {
    let dir = sessions_trail();
    let events = session_events(&db(dir.path()), "a").unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 6, 7]
    );
    assert_eq!(events[5].kind, "session.end");
    assert_eq!(events[4].data["price"], json!(0.1));
    assert!(session_events(&db(dir.path()), "nope").unwrap().is_empty());
}

#[test]
fn readers_explain_a_missing_or_foreign_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.db");
    let err = verify(
        &missing,
        &gatehouse_audit::AuditSigner::ephemeral().verifying_key(),
    )
    .unwrap_err();
    assert!(matches!(err, AuditError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("[audit] path"), "{err}");

    let foreign = dir.path().join("other.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE x (y)")
        .unwrap();
    let err = list_sessions(&foreign, &SessionFilter::default()).unwrap_err();
    assert!(
        err.to_string().contains("not a gatehouse audit store"),
        "{err}"
    );
}
