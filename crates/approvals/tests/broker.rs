//! The broker's rules, with its real SQLite store. The recorder here keeps
//! events in memory and can be told to fail, to check that nothing takes
//! effect when the trail cannot take it (the real audit chain is exercised
//! end to end in crates/gatehouse/tests/approvals.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use gatehouse_approvals::{Broker, BrokerError, Status, Store};
use gatehouse_core::approval::{AccessGrants, ApprovalBroker, HeldCommand, Outcome, Requirement};
use gatehouse_core::pipeline::{BoxFuture, EventRecord, RecordError, Recorder};
use gatehouse_core::policy::{compile, PolicyConfig};
use gatehouse_core::Identity;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Trail {
    kinds: Mutex<Vec<String>>,
    broken: AtomicBool,
}

impl Recorder for Trail {
    fn record(&self, event: EventRecord) -> BoxFuture<'_, Result<u64, RecordError>> {
        Box::pin(async move {
            if self.broken.load(Ordering::SeqCst) {
                return Err(RecordError::Store("disk full".into()));
            }
            let mut k = self.kinds.lock().unwrap();
            k.push(event.kind.to_string());
            Ok(k.len() as u64)
        })
    }
}

const POLICY: &str = r#"
[[connections]]
name = "bank"
type = "postgres"
host = "127.0.0.1"
port = 5432
user = "app"
password_env = "BANK_PW"
allow_groups = ["dba"]
access_approvers = ["approvers"]
max_access = "2h"
"#;

fn who(sub: &str, groups: &[&str]) -> Identity {
    Identity {
        subject: sub.into(),
        email: Some(format!("{sub}@bank.test")),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        issuer: "https://idp.test".into(),
        token_id: None,
        expires_at: i64::MAX,
    }
}

fn broker() -> (Broker, Arc<Trail>) {
    let cfg: PolicyConfig = toml::from_str(POLICY).unwrap();
    let policy = Arc::new(compile(&cfg, POLICY).unwrap());
    let trail = Arc::new(Trail::default());
    let b = Broker::with_store(
        Store::in_memory().unwrap(),
        trail.clone(),
        policy,
        "https://gw.test",
    )
    .unwrap();
    (b, trail)
}

fn held(timeout_secs: u64, count: u32) -> HeldCommand {
    HeldCommand {
        requester: who("dana", &["dba"]),
        connection: "bank".into(),
        session_id: "s1".into(),
        protocol: "postgres".into(),
        command: "delete from customers where id = 1".into(),
        rule: "r".into(),
        message: "m".into(),
        requirement: Requirement {
            any_of: vec!["approvers".into()],
            count,
            each_of: vec![],
            timeout_secs,
        },
    }
}

#[tokio::test]
async fn two_of_m_then_claimed_once() {
    let (b, trail) = broker();
    let opened = b.open(held(60, 2)).await.unwrap();
    assert_eq!(
        opened.link,
        format!("https://gw.test/approvals/{}", opened.id)
    );
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.wait(opened.id).await })
    };
    let r = b
        .decide(opened.id, &who("omar", &["approvers"]), true, "ok")
        .await
        .unwrap();
    assert_eq!(r.status, Status::Pending, "one of two");
    assert!(matches!(
        b.decide(opened.id, &who("omar", &["approvers"]), true, "again")
            .await,
        Err(BrokerError::AlreadyDecided(_))
    ));
    b.decide(opened.id, &who("zoe", &["approvers"]), true, "ok too")
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(outcome, Outcome::Approved { ref approvers } if approvers.len() == 2));
    // A second wait cannot claim it again.
    assert!(matches!(b.wait(opened.id).await, Outcome::Cancelled(_)));
    assert_eq!(b.request(opened.id).await.unwrap().status, Status::Executed);
    let kinds = trail.kinds.lock().unwrap().clone();
    assert_eq!(
        kinds,
        [
            "approval.requested",
            "approval.decision",
            "approval.decision",
            "approval.approved",
            "approval.executed"
        ]
    );
}

#[tokio::test]
async fn nothing_changes_when_the_trail_cannot_record_it() {
    let (b, trail) = broker();
    let id = b.open(held(60, 1)).await.unwrap().id;
    trail.broken.store(true, Ordering::SeqCst);
    assert!(matches!(
        b.decide(id, &who("omar", &["approvers"]), true, "ok").await,
        Err(BrokerError::Audit(_))
    ));
    assert_eq!(b.request(id).await.unwrap().status, Status::Pending);
    assert!(
        b.open(held(60, 1)).await.is_err(),
        "no request without a record"
    );
}

#[tokio::test]
async fn expiry_and_restart_never_run_the_command() {
    let (b, _) = broker();
    let id = b.open(held(1, 1)).await.unwrap().id;
    let outcome = tokio::time::timeout(Duration::from_secs(5), b.wait(id))
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Expired);
    assert!(matches!(
        b.decide(id, &who("omar", &["approvers"]), true, "late")
            .await,
        Err(BrokerError::Settled(_, "expired"))
    ));
    let orphan = b.open(held(60, 1)).await.unwrap().id;
    assert_eq!(
        b.withdraw_orphans("the gateway restarted; the session that held it is gone")
            .await
            .unwrap(),
        1
    );
    assert_eq!(b.request(orphan).await.unwrap().status, Status::Withdrawn);
}

#[tokio::test]
async fn grants_are_bounded_and_end_their_sessions_on_revoke() {
    let (b, trail) = broker();
    let eve = who("eve", &["contractors"]);
    assert!(b
        .request_access(&eve, "bank", 3 * 3600, "x", None)
        .await
        .is_err());
    assert!(
        b.request_access(&who("dana", &["dba"]), "bank", 600, "x", None)
            .await
            .is_err(),
        "already allowed"
    );
    let r = b
        .request_access(&eve, "bank", 3600, "INC-1", None)
        .await
        .unwrap();
    assert!(b.active(&eve, "bank").is_none(), "not before approval");
    assert!(matches!(
        b.decide(r.id, &eve, true, "me").await,
        Err(BrokerError::Forbidden(_))
    ));
    let r = b
        .decide(r.id, &who("omar", &["approvers"]), true, "ok")
        .await
        .unwrap();
    let grant = r.grant_id.unwrap();
    let lease = b.active(&eve, "bank").expect("granted");
    assert_eq!(lease.id, grant);
    assert!(matches!(
        b.revoke(grant, &who("mallory", &["dba"]), "no").await,
        Err(BrokerError::Forbidden(_))
    ));
    let ended = tokio::spawn(lease.ended);
    b.revoke(grant, &who("omar", &["approvers"]), "done")
        .await
        .unwrap();
    let why = tokio::time::timeout(Duration::from_secs(5), ended)
        .await
        .unwrap()
        .unwrap();
    assert!(why.contains("revoked by omar@bank.test: done"), "{why}");
    assert!(b.active(&eve, "bank").is_none());
    let kinds = trail.kinds.lock().unwrap().clone();
    assert!(kinds.contains(&"grant.created".to_string()));
    assert!(kinds.contains(&"grant.revoked".to_string()));
}
