//! End-to-end deliveries to real HTTP receivers (axum on 127.0.0.1:0).
//!
//! No sleeps as assertions: every wait polls with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use gatehouse_notify::{
    verify_signature, Delivery, DeliveryState, Notification, Notifier, NotifyConfig, NotifyError,
    ReceiverKind, SignatureError, SlackConfig, WebhookConfig,
};
use serde_json::{json, Value};

const SECRET: &str = "test-hmac-secret-0123456789";
const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
struct Captured {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A receiver answering from a script of (status, Retry-After), then 200.
#[derive(Default)]
struct Receiver {
    requests: Mutex<Vec<Captured>>,
    script: Mutex<VecDeque<(u16, Option<&'static str>, &'static str)>>,
}

impl Receiver {
    fn requests(&self) -> Vec<Captured> {
        self.requests.lock().expect("lock").clone()
    }
}

async fn handle(
    State(r): State<Arc<Receiver>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    r.requests.lock().expect("lock").push(Captured {
        path: uri.path().to_string(),
        headers,
        body,
    });
    let next = r.script.lock().expect("lock").pop_front();
    match next {
        None => (StatusCode::OK, "ok").into_response(),
        Some((status, retry_after, body)) => {
            let status = StatusCode::from_u16(status).expect("status");
            match retry_after {
                Some(ra) => (status, [("retry-after", ra)], body).into_response(),
                None => (status, body).into_response(),
            }
        }
    }
}

async fn spawn_receiver(
    script: Vec<(u16, Option<&'static str>, &'static str)>,
) -> (SocketAddr, Arc<Receiver>) {
    let state = Arc::new(Receiver {
        requests: Mutex::new(Vec::new()),
        script: Mutex::new(script.into()),
    });
    let app = Router::new().fallback(handle).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, state)
}

/// An address where nothing listens: bind, note the port, drop the listener.
async fn dead_addr() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr")
}

async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn secrets_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hook.secret"), format!("{SECRET}\n")).expect("write");
    dir
}

fn webhook(name: &str, addr: SocketAddr) -> WebhookConfig {
    WebhookConfig {
        name: name.into(),
        url: format!("http://{addr}/hooks/gatehouse"),
        secret_file: Some("hook.secret".into()),
        ..Default::default()
    }
}

/// Test timing: tiny backoffs, short attempts.
fn fast(webhooks: Vec<WebhookConfig>) -> NotifyConfig {
    NotifyConfig {
        webhooks,
        max_attempts: 5,
        initial_backoff_ms: 10,
        max_backoff_secs: 1,
        timeout_secs: 5,
        ..Default::default()
    }
}

fn approval(id: &str) -> Notification {
    Notification {
        event: "approval.requested".into(),
        id: id.into(),
        title: "dba alice@bank wants to run DELETE on prod-db (rule dba-writes)".into(),
        link: Some(format!("https://gatehouse.example.com/approvals/{id}")),
        data: json!({"id": id, "sql": "DELETE FROM accounts WHERE id = 7", "user": "alice@bank"}),
    }
}

fn delivery_for(n: &Notifier, receiver: &str) -> Option<Delivery> {
    n.deliveries().into_iter().find(|d| d.receiver == receiver)
}

fn header<'a>(c: &'a Captured, name: &str) -> &'a str {
    c.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn webhook_is_received_once_signed_with_headers_and_body() {
    let (addr, rx) = spawn_receiver(vec![]).await;
    let dir = secrets_dir();
    let notifier = Notifier::start(&fast(vec![webhook("siem", addr)]), dir.path()).expect("start");
    assert!(notifier.is_enabled());

    notifier.notify(approval("42"));
    let d = wait_for("delivered", || {
        delivery_for(&notifier, "siem").filter(|d| d.state == DeliveryState::Delivered)
    })
    .await;
    assert_eq!(d.attempts, 1);
    assert_eq!(d.last_status, Some(200));
    assert_eq!(d.kind, ReceiverKind::Webhook);
    assert_eq!(d.event, "approval.requested");
    assert_eq!(d.notification_id, "42");

    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1, "received exactly once");
    let c = &reqs[0];
    assert_eq!(c.path, "/hooks/gatehouse");
    assert_eq!(header(c, "content-type"), "application/json");
    assert_eq!(header(c, "gatehouse-event"), "approval.requested");
    assert_eq!(header(c, "gatehouse-delivery"), d.delivery_id);

    let sig = header(c, "gatehouse-signature");
    assert!(sig.starts_with("t="), "{sig}");
    verify_signature(SECRET.as_bytes(), sig, &c.body, now_unix(), 300).expect("valid signature");

    let body: Value = serde_json::from_slice(&c.body).expect("json body");
    assert_eq!(body["event"], "approval.requested");
    assert_eq!(body["id"], "42");
    assert_eq!(
        body["title"],
        "dba alice@bank wants to run DELETE on prod-db (rule dba-writes)"
    );
    assert_eq!(body["link"], "https://gatehouse.example.com/approvals/42");
    assert_eq!(body["data"]["sql"], "DELETE FROM accounts WHERE id = 7");
    assert_eq!(body["delivery"], d.delivery_id.as_str());
    let sent_at = body["sent_at"].as_str().expect("sent_at");
    chrono::DateTime::parse_from_rfc3339(sent_at).expect("RFC3339 sent_at");

    // A tampered body, a wrong secret, or a stale/future timestamp is refused.
    let mut tampered = c.body.to_vec();
    tampered.extend_from_slice(b" ");
    assert_eq!(
        verify_signature(SECRET.as_bytes(), sig, &tampered, now_unix(), 300),
        Err(SignatureError::Mismatch)
    );
    let swapped = String::from_utf8_lossy(&c.body).replace("\"42\"", "\"43\"");
    assert_eq!(
        verify_signature(SECRET.as_bytes(), sig, swapped.as_bytes(), now_unix(), 300),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(b"not-the-secret", sig, &c.body, now_unix(), 300),
        Err(SignatureError::Mismatch)
    );
    assert!(matches!(
        verify_signature(SECRET.as_bytes(), sig, &c.body, now_unix() + 3600, 300),
        Err(SignatureError::OutsideTolerance { .. })
    ));
    assert!(matches!(
        verify_signature(SECRET.as_bytes(), sig, &c.body, now_unix() - 3600, 300),
        Err(SignatureError::OutsideTolerance { .. })
    ));

    notifier.shutdown(Duration::from_secs(2)).await;
    assert_eq!(rx.requests().len(), 1, "still exactly once after shutdown");
}

#[tokio::test]
async fn server_errors_are_retried_until_delivered_with_one_delivery_id() {
    let (addr, rx) = spawn_receiver(vec![(500, None, "boom"), (500, None, "boom")]).await;
    let dir = secrets_dir();
    let notifier = Notifier::start(&fast(vec![webhook("flaky", addr)]), dir.path()).expect("start");

    notifier.notify(approval("7"));
    let d = wait_for("delivered", || {
        delivery_for(&notifier, "flaky").filter(|d| d.state == DeliveryState::Delivered)
    })
    .await;
    assert_eq!(d.attempts, 3);
    assert_eq!(d.last_status, Some(200));
    assert_eq!(d.last_error, None);

    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3);
    for c in &reqs {
        assert_eq!(header(c, "gatehouse-delivery"), d.delivery_id);
        let body: Value = serde_json::from_slice(&c.body).expect("json");
        assert_eq!(body["delivery"], d.delivery_id.as_str());
        // Each attempt carries its own valid signature.
        verify_signature(
            SECRET.as_bytes(),
            header(c, "gatehouse-signature"),
            &c.body,
            now_unix(),
            300,
        )
        .expect("valid signature on every attempt");
    }
    notifier.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_dead_receiver_does_not_block_notify_or_other_receivers() {
    let dead = dead_addr().await;
    let (addr, rx) = spawn_receiver(vec![]).await;
    let dir = secrets_dir();
    let mut cfg = fast(vec![webhook("dead", dead), webhook("healthy", addr)]);
    cfg.max_attempts = 1000;
    cfg.initial_backoff_ms = 200;
    let notifier = Notifier::start(&cfg, dir.path()).expect("start");

    // `notify` is a plain fn: it cannot await the network. It also returns
    // without waiting for anything else.
    let t0 = Instant::now();
    for i in 0..20 {
        notifier.notify(approval(&i.to_string()));
    }
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "notify took {:?}",
        t0.elapsed()
    );

    wait_for("healthy receiver to get all 20", || {
        (rx.requests().len() == 20).then_some(())
    })
    .await;
    let d = wait_for("dead receiver retrying with an error", || {
        delivery_for(&notifier, "dead")
            .filter(|d| matches!(d.state, DeliveryState::Retrying { .. }) && d.last_error.is_some())
    })
    .await;
    let err = d.last_error.unwrap_or_default();
    assert!(err.contains("connection"), "{err}");
    assert!(!err.contains(&dead.port().to_string()), "no URL in {err}");
    assert_eq!(d.last_status, None);
    if let DeliveryState::Retrying { next_attempt_at } = d.state {
        assert!(next_attempt_at > d.created_at);
    }
    let all = notifier.deliveries();
    assert_eq!(all.len(), 40);
    assert_eq!(
        all.iter()
            .filter(|d| d.receiver == "healthy" && d.state == DeliveryState::Delivered)
            .count(),
        20
    );
    // Newest first.
    assert!(all.windows(2).all(|w| w[0].created_at >= w[1].created_at));

    notifier.shutdown(Duration::from_secs(2)).await;
    let d = delivery_for(&notifier, "dead").expect("record");
    assert_eq!(d.state, DeliveryState::Failed);
    assert!(
        d.last_error.unwrap_or_default().contains("shut down"),
        "unfinished deliveries are closed at shutdown"
    );
}

#[tokio::test]
async fn a_client_error_fails_without_retry() {
    let (addr, rx) = spawn_receiver(vec![(400, None, "{\"error\":\"bad signature\"}")]).await;
    let dir = secrets_dir();
    let notifier =
        Notifier::start(&fast(vec![webhook("strict", addr)]), dir.path()).expect("start");

    notifier.notify(approval("9"));
    let d = wait_for("failed", || {
        delivery_for(&notifier, "strict").filter(|d| d.state == DeliveryState::Failed)
    })
    .await;
    assert_eq!(d.attempts, 1);
    assert_eq!(d.last_status, Some(400));
    let err = d.last_error.unwrap_or_default();
    assert!(
        err.contains("400") && err.contains("bad signature"),
        "{err}"
    );
    notifier.shutdown(Duration::from_secs(2)).await;
    assert_eq!(rx.requests().len(), 1, "a 400 is not retried");
}

#[tokio::test]
async fn too_many_requests_is_retried_after_retry_after() {
    let (addr, rx) = spawn_receiver(vec![(429, Some("1"), "slow down")]).await;
    let dir = secrets_dir();
    let mut cfg = fast(vec![webhook("limited", addr)]);
    cfg.max_backoff_secs = 30;
    let notifier = Notifier::start(&cfg, dir.path()).expect("start");

    notifier.notify(approval("5"));
    let d = wait_for("retrying", || {
        delivery_for(&notifier, "limited")
            .filter(|d| matches!(d.state, DeliveryState::Retrying { .. }))
    })
    .await;
    assert_eq!(d.last_status, Some(429));
    // The computed backoff would be ~10 ms; Retry-After asked for 1 s.
    if let (DeliveryState::Retrying { next_attempt_at }, Some(at)) = (&d.state, d.last_attempt_at) {
        let wait = *next_attempt_at - at;
        assert!(wait >= chrono::Duration::milliseconds(990), "{wait}");
    }
    let d = wait_for("delivered", || {
        delivery_for(&notifier, "limited").filter(|d| d.state == DeliveryState::Delivered)
    })
    .await;
    assert_eq!(d.attempts, 2);
    assert_eq!(rx.requests().len(), 2);
    notifier.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn slack_message_has_title_and_link() {
    let (addr, rx) = spawn_receiver(vec![]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let slack_url = format!("http://{addr}/services/T000/B000/XXXXSLACKTOKEN");
    std::fs::write(dir.path().join("slack.url"), format!("{slack_url}\n")).expect("write");
    let cfg = NotifyConfig {
        slack: vec![SlackConfig {
            name: "dba-channel".into(),
            url_file: Some("slack.url".into()),
            ..Default::default()
        }],
        ..fast(vec![])
    };
    let notifier = Notifier::start(&cfg, dir.path()).expect("start");

    notifier.notify(approval("42"));
    let d = wait_for("delivered", || {
        delivery_for(&notifier, "dba-channel").filter(|d| d.state == DeliveryState::Delivered)
    })
    .await;
    assert_eq!(d.kind, ReceiverKind::Slack);
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    let c = &reqs[0];
    assert_eq!(c.path, "/services/T000/B000/XXXXSLACKTOKEN");
    assert_eq!(header(c, "content-type"), "application/json");
    assert!(c.headers.get("gatehouse-signature").is_none());
    let body: Value = serde_json::from_slice(&c.body).expect("json");
    let title = "dba alice@bank wants to run DELETE on prod-db (rule dba-writes)";
    let link = "https://gatehouse.example.com/approvals/42";
    assert_eq!(body["text"], format!("{title} {link}"));
    let section = body["blocks"][0]["text"]["text"].as_str().expect("section");
    assert_eq!(body["blocks"][0]["text"]["type"], "mrkdwn");
    assert!(section.contains(title), "{section}");
    assert!(
        section.contains(&format!("<{link}|Open request #42>")),
        "{section}"
    );

    // The serialised history (what the console gets) never shows the URL.
    let shown = serde_json::to_string(&notifier.deliveries()).expect("json");
    assert!(!shown.contains("XXXXSLACKTOKEN"));
    notifier.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn slack_refusal_is_shown_without_the_url() {
    let (addr, rx) = spawn_receiver(vec![(404, None, "no_service")]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let slack_url = format!("http://{addr}/services/T000/B000/XXXXSLACKTOKEN");
    std::fs::write(dir.path().join("slack.url"), &slack_url).expect("write");
    let cfg = NotifyConfig {
        slack: vec![SlackConfig {
            name: "gone".into(),
            url_file: Some(dir.path().join("slack.url")),
            ..Default::default()
        }],
        ..fast(vec![])
    };
    let notifier = Notifier::start(&cfg, Path::new("/nonexistent")).expect("absolute path");
    notifier.notify(approval("1"));
    let d = wait_for("failed", || {
        delivery_for(&notifier, "gone").filter(|d| d.state == DeliveryState::Failed)
    })
    .await;
    let err = d.last_error.unwrap_or_default();
    assert!(err.contains("404") && err.contains("no_service"), "{err}");
    assert!(!err.contains("XXXXSLACKTOKEN"), "{err}");
    assert_eq!(rx.requests().len(), 1);
    notifier.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn events_filter_selects_receivers() {
    let (a_addr, a) = spawn_receiver(vec![]).await;
    let (b_addr, b) = spawn_receiver(vec![]).await;
    let dir = secrets_dir();
    let mut only_grants = webhook("grants", b_addr);
    only_grants.events = vec!["grant.*".into()];
    let notifier = Notifier::start(&fast(vec![webhook("all", a_addr), only_grants]), dir.path())
        .expect("start");

    notifier.notify(approval("1"));
    notifier.notify(Notification {
        event: "grant.revoked".into(),
        ..approval("2")
    });
    wait_for("both delivered to all, one to grants", || {
        let ds = notifier.deliveries();
        (ds.len() == 3 && ds.iter().all(|d| d.state == DeliveryState::Delivered)).then_some(())
    })
    .await;
    assert_eq!(a.requests().len(), 2);
    let got = b.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(header(&got[0], "gatehouse-event"), "grant.revoked");
    notifier.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_full_queue_records_failures_instead_of_blocking() {
    let dead = dead_addr().await;
    let dir = secrets_dir();
    let mut cfg = fast(vec![webhook("dead", dead)]);
    cfg.queue_capacity = 2;
    cfg.max_attempts = 1000;
    cfg.initial_backoff_ms = 60_000;
    cfg.max_backoff_secs = 60;
    let notifier = Notifier::start(&cfg, dir.path()).expect("start");
    for i in 0..5 {
        notifier.notify(approval(&i.to_string()));
    }
    let ds = notifier.deliveries();
    assert_eq!(ds.len(), 5);
    let full: Vec<_> = ds
        .iter()
        .filter(|d| {
            d.state == DeliveryState::Failed
                && d.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("queue full"))
        })
        .collect();
    assert_eq!(full.len(), 3, "{ds:#?}");
    assert!(full.iter().all(|d| d.attempts == 0));
    notifier.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn notify_after_shutdown_is_recorded_as_failed() {
    let (addr, rx) = spawn_receiver(vec![]).await;
    let dir = secrets_dir();
    let notifier = Notifier::start(&fast(vec![webhook("late", addr)]), dir.path()).expect("start");
    let clone = notifier.clone();
    notifier.shutdown(Duration::from_secs(1)).await;
    clone.notify(approval("1"));
    let d = delivery_for(&notifier, "late").expect("record");
    assert_eq!(d.state, DeliveryState::Failed);
    assert!(d.last_error.unwrap_or_default().contains("shut down"));
    assert!(rx.requests().is_empty());
    notifier.shutdown(Duration::from_secs(1)).await; // idempotent
}

#[tokio::test]
async fn start_names_the_missing_secret_and_never_prints_one() {
    // An env var nobody sets.
    let var = "GATEHOUSE_NOTIFY_TEST_SECRET_THAT_IS_NEVER_SET_3F9A";
    assert!(std::env::var(var).is_err());
    let cfg = NotifyConfig {
        webhooks: vec![WebhookConfig {
            name: "siem".into(),
            url: "https://siem.example.com/hook".into(),
            secret_env: Some(var.into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let err = Notifier::start(&cfg, Path::new(".")).expect_err("missing secret");
    assert!(matches!(err, NotifyError::Config { .. }));
    let msg = err.to_string();
    assert!(msg.contains("notify.webhooks[siem].secret_env"), "{msg}");
    assert!(msg.contains(var), "{msg}");

    // A missing secret file names the setting and the path.
    let cfg = NotifyConfig {
        webhooks: vec![WebhookConfig {
            secret_env: None,
            secret_file: Some("missing.secret".into()),
            ..cfg.webhooks[0].clone()
        }],
        ..Default::default()
    };
    let msg = Notifier::start(&cfg, Path::new("/nonexistent-dir"))
        .expect_err("missing file")
        .to_string();
    assert!(
        msg.contains("secret_file") && msg.contains("/nonexistent-dir/missing.secret"),
        "{msg}"
    );

    // A Slack URL that is present but unusable: the error says which setting,
    // never the value (the URL is the credential).
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("slack.url"),
        "hooks.slack.com/services/T0/B0/SUPERSECRETTOKEN",
    )
    .expect("write");
    let cfg = NotifyConfig {
        slack: vec![SlackConfig {
            name: "team".into(),
            url_file: Some("slack.url".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let err = Notifier::start(&cfg, dir.path()).expect_err("bad url");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("notify.slack[team].url_file"), "{shown}");
    assert!(!shown.contains("SUPERSECRETTOKEN"), "{shown}");

    // An empty secret is refused too.
    std::fs::write(dir.path().join("empty.secret"), "\n").expect("write");
    let cfg = NotifyConfig {
        webhooks: vec![WebhookConfig {
            name: "siem".into(),
            url: "https://siem.example.com/hook".into(),
            secret_file: Some("empty.secret".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let msg = Notifier::start(&cfg, dir.path())
        .expect_err("empty")
        .to_string();
    assert!(msg.contains("empty"), "{msg}");
}

#[tokio::test]
async fn no_receivers_is_disabled() {
    let n = Notifier::start(&NotifyConfig::default(), Path::new(".")).expect("start");
    assert!(!n.is_enabled());
    n.notify(approval("1"));
    assert!(n.deliveries().is_empty());
}
