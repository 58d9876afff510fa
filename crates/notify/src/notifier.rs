//! The notifier: a cheap handle the gateway calls, and one delivery worker
//! per receiver.
//!
//! `notify` only records the delivery and pushes it on the receiver's queue;
//! it takes no lock across an await and never touches the network, so a
//! dead receiver cannot slow the gateway. Each worker sends one attempt at a
//! time (a struggling receiver is not hammered) and parks failed deliveries
//! in a retry schedule instead of sleeping on them, so a delivery waiting for
//! its backoff does not hold up newer ones to the same receiver.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use reqwest::StatusCode;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backoff::{backoff_delay, parse_retry_after, random_u64};
use crate::config::{NotifyConfig, Receiver, Target};
use crate::delivery::{Delivery, DeliveryState, History};
use crate::error::NotifyError;
use crate::notification::Notification;
use crate::payload::{slack_body, webhook_body};
use crate::signature::{sign, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER};

/// How much of an error response body is kept for the console.
const ERROR_BODY_BYTES: usize = 512;
const ERROR_BODY_CHARS: usize = 200;

/// Sends notifications to the configured receivers in the background.
///
/// Cheap to clone (an `Arc` inside); every clone feeds the same workers and
/// sees the same delivery history. Dropping the last clone stops the
/// workers after their current attempt; call [`Notifier::shutdown`] to wait
/// for that.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    receivers: Vec<Handle>,
    history: Arc<Mutex<History>>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
}

/// The gateway-side end of one receiver's worker.
struct Handle {
    receiver: Arc<Receiver>,
    tx: mpsc::UnboundedSender<Job>,
    /// Deliveries queued or waiting for a retry; bounded by `capacity`.
    outstanding: Arc<AtomicUsize>,
    capacity: usize,
}

struct Job {
    seq: u64,
    delivery_id: String,
    notification: Arc<Notification>,
    attempts: u32,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self
            .inner
            .receivers
            .iter()
            .map(|h| format!("{} ({})", h.receiver.name, h.receiver.kind))
            .collect();
        f.debug_struct("Notifier")
            .field("receivers", &names)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind;
    // keep serving it rather than poisoning the gateway.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh delivery id: `dlv_` and 32 hex digits.
fn new_delivery_id() -> String {
    format!("dlv_{:016x}{:016x}", random_u64(), random_u64())
}

impl Notifier {
    /// Loads the receivers' secrets and starts one delivery worker per
    /// receiver, so a slow receiver never delays another. Relative secret
    /// files resolve against `base_dir` (the config file's directory).
    ///
    /// Must be called inside a tokio runtime ([`NotifyError::NoRuntime`]
    /// otherwise). With no receivers configured this is [`Notifier::disabled`].
    pub fn start(cfg: &NotifyConfig, base_dir: &Path) -> Result<Notifier, NotifyError> {
        let receivers = cfg.resolve(base_dir)?;
        if receivers.is_empty() {
            return Ok(Notifier::disabled());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NotifyError::NoRuntime)?;
        let timeout = Duration::from_secs(cfg.timeout_secs);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect would re-send a signed body to an address nobody
            // configured; point the URL at the final address instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NotifyError::Client(e.without_url().to_string()))?;

        let history = Arc::new(Mutex::new(History::new(cfg.history)));
        let (shutdown_tx, _) = watch::channel(false);
        let policy = RetryPolicy {
            max_attempts: cfg.max_attempts,
            initial: Duration::from_millis(cfg.initial_backoff_ms),
            max: Duration::from_secs(cfg.max_backoff_secs),
            timeout,
        };
        let mut handles = Vec::with_capacity(receivers.len());
        let mut tasks = Vec::with_capacity(receivers.len());
        for receiver in receivers {
            let receiver = Arc::new(receiver);
            let (tx, rx) = mpsc::unbounded_channel();
            let outstanding = Arc::new(AtomicUsize::new(0));
            let worker = Worker {
                receiver: receiver.clone(),
                client: client.clone(),
                history: history.clone(),
                outstanding: outstanding.clone(),
                policy,
            };
            tasks.push(runtime.spawn(worker.run(rx, shutdown_tx.subscribe())));
            handles.push(Handle {
                receiver,
                tx,
                outstanding,
                capacity: cfg.queue_capacity,
            });
        }
        tracing::info!(
            receivers = handles.len(),
            "notifications enabled for {}",
            handles
                .iter()
                .map(|h| format!("{} ({})", h.receiver.name, h.receiver.kind))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Notifier {
            inner: Arc::new(Inner {
                receivers: handles,
                history,
                shutdown_tx,
                tasks: Mutex::new(tasks),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// A notifier with no receivers, for when `[notify]` is absent: the
    /// gateway calls it unconditionally and it does nothing.
    pub fn disabled() -> Notifier {
        let (shutdown_tx, _) = watch::channel(false);
        Notifier {
            inner: Arc::new(Inner {
                receivers: Vec::new(),
                history: Arc::new(Mutex::new(History::new(0))),
                shutdown_tx,
                tasks: Mutex::new(Vec::new()),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// True when at least one receiver is configured (the console can hide
    /// its deliveries page otherwise).
    pub fn is_enabled(&self) -> bool {
        !self.inner.receivers.is_empty()
    }

    /// Queues `n` for every receiver whose `events` filter matches. Returns
    /// immediately: it never awaits the network, and a full queue or a
    /// stopped notifier becomes a failed delivery record, not an error.
    pub fn notify(&self, n: Notification) {
        let inner = &self.inner;
        if inner.receivers.is_empty() {
            return;
        }
        let n = Arc::new(n);
        let closed = inner.closed.load(Ordering::Acquire);
        for h in &inner.receivers {
            let r = &h.receiver;
            if !r.events.matches(&n.event) {
                continue;
            }
            let delivery_id = new_delivery_id();
            let now = Utc::now();
            let mut record = Delivery {
                delivery_id: delivery_id.clone(),
                receiver: r.name.clone(),
                kind: r.kind,
                event: n.event.clone(),
                notification_id: n.id.clone(),
                attempts: 0,
                state: DeliveryState::Pending,
                last_status: None,
                last_error: None,
                created_at: now,
                last_attempt_at: None,
                updated_at: now,
            };

            let refused = if closed {
                Some("not sent: the notifier is shut down".to_string())
            } else if h.outstanding.fetch_add(1, Ordering::AcqRel) >= h.capacity {
                h.outstanding.fetch_sub(1, Ordering::AcqRel);
                Some(format!(
                    "queue full: {} deliveries already waiting for this receiver \
                     (it is down or too slow); this one was dropped",
                    h.capacity
                ))
            } else {
                None
            };
            if let Some(reason) = refused {
                tracing::warn!(
                    receiver = %r.name,
                    kind = %r.kind,
                    event = %n.event,
                    id = %n.id,
                    delivery = %delivery_id,
                    "notification not delivered: {reason}"
                );
                record.state = DeliveryState::Failed;
                record.last_error = Some(reason);
                lock(&inner.history).insert(record);
                continue;
            }

            let seq = lock(&inner.history).insert(record);
            let job = Job {
                seq,
                delivery_id,
                notification: n.clone(),
                attempts: 0,
            };
            if h.tx.send(job).is_err() {
                // The worker is gone (shutdown raced with this call).
                h.outstanding.fetch_sub(1, Ordering::AcqRel);
                lock(&inner.history).update(seq, |d| {
                    d.state = DeliveryState::Failed;
                    d.last_error = Some("not sent: the notifier is shut down".into());
                });
            }
        }
    }

    /// Recent deliveries, newest first, for the console. Holds no secret and
    /// no receiver URL.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.inner.history).list()
    }

    /// Stops the workers: no new attempt starts, an attempt in flight gets
    /// up to `grace` to finish, then workers are aborted. Deliveries left
    /// unfinished are recorded as failed. Later `notify` calls record a
    /// failed delivery. Idempotent.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::Release);
        inner.shutdown_tx.send_replace(true);
        let tasks: Vec<_> = std::mem::take(&mut *lock(&inner.tasks));
        let deadline = Instant::now() + grace;
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                // Wait for the abort to land so no attempt outlives shutdown.
                let _ = task.await;
            }
        }
        lock(&inner.history).fail_unfinished("not delivered: the notifier shut down");
    }
}

#[derive(Clone, Copy, Debug)]
struct RetryPolicy {
    max_attempts: u32,
    initial: Duration,
    max: Duration,
    timeout: Duration,
}

/// Result of one HTTP attempt.
#[derive(Debug)]
enum Outcome {
    Delivered {
        status: u16,
    },
    /// Do not retry: the receiver refused the request as such.
    Permanent {
        status: Option<u16>,
        error: String,
    },
    /// Try again later (server error, 408/429, timeout, connection error).
    Retry {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
}

struct Worker {
    receiver: Arc<Receiver>,
    client: reqwest::Client,
    history: Arc<Mutex<History>>,
    outstanding: Arc<AtomicUsize>,
    policy: RetryPolicy,
}

impl Worker {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Job>, mut shutdown: watch::Receiver<bool>) {
        // Deliveries waiting for their backoff, by due time (seq breaks ties).
        let mut retries: BTreeMap<(Instant, u64), Job> = BTreeMap::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let next_due = retries.keys().next().map(|k| k.0);
            if let Some(due) = next_due {
                if due <= Instant::now() {
                    if let Some((_, job)) = retries.pop_first() {
                        self.attempt(job, &mut retries).await;
                    }
                    continue;
                }
            }
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    // Err: every Notifier handle was dropped.
                    if changed.is_err() {
                        break;
                    }
                }
                () = sleep_until_opt(next_due) => {}
                job = rx.recv() => match job {
                    Some(job) => self.attempt(job, &mut retries).await,
                    None => break,
                },
            }
        }
        // Whatever is still queued is reported by `shutdown`.
        rx.close();
    }

    /// Makes one attempt and records its outcome; a retryable failure goes
    /// back into `retries`.
    async fn attempt(&self, mut job: Job, retries: &mut BTreeMap<(Instant, u64), Job>) {
        job.attempts += 1;
        let outcome = self.send(&job).await;
        let r = &self.receiver;
        let n = &job.notification;
        let now = Utc::now();
        match outcome {
            Outcome::Delivered { status } => {
                self.outstanding.fetch_sub(1, Ordering::AcqRel);
                lock(&self.history).update(job.seq, |d| {
                    d.attempts = job.attempts;
                    d.state = DeliveryState::Delivered;
                    d.last_status = Some(status);
                    d.last_error = None;
                    d.last_attempt_at = Some(now);
                });
                tracing::debug!(
                    receiver = %r.name, kind = %r.kind, event = %n.event, id = %n.id,
                    delivery = %job.delivery_id, attempts = job.attempts, status,
                    "notification delivered"
                );
            }
            Outcome::Permanent { status, error } => {
                lock(&self.history).update(job.seq, |d| {
                    d.attempts = job.attempts;
                    d.state = DeliveryState::Failed;
                    d.last_status = status;
                    d.last_error = Some(error.clone());
                    d.last_attempt_at = Some(now);
                });
                self.outstanding.fetch_sub(1, Ordering::AcqRel);
                tracing::warn!(
                    receiver = %r.name, kind = %r.kind, event = %n.event, id = %n.id,
                    delivery = %job.delivery_id, attempts = job.attempts, status,
                    "notification failed permanently, not retrying: {error}"
                );
            }
            Outcome::Retry {
                status,
                error,
                retry_after,
            } => {
                if job.attempts >= self.policy.max_attempts {
                    let error = format!("gave up after {} attempts: {error}", job.attempts);
                    lock(&self.history).update(job.seq, |d| {
                        d.attempts = job.attempts;
                        d.state = DeliveryState::Failed;
                        d.last_status = status;
                        d.last_error = Some(error.clone());
                        d.last_attempt_at = Some(now);
                    });
                    self.outstanding.fetch_sub(1, Ordering::AcqRel);
                    tracing::warn!(
                        receiver = %r.name, kind = %r.kind, event = %n.event, id = %n.id,
                        delivery = %job.delivery_id, attempts = job.attempts, status,
                        "notification failed: {error}"
                    );
                    return;
                }
                let delay = match retry_after {
                    Some(d) => d.min(self.policy.max),
                    None => backoff_delay(
                        job.attempts,
                        self.policy.initial,
                        self.policy.max,
                        random_u64(),
                    ),
                };
                let next_attempt_at = now
                    + chrono::Duration::from_std(delay)
                        .unwrap_or_else(|_| chrono::Duration::zero());
                lock(&self.history).update(job.seq, |d| {
                    d.attempts = job.attempts;
                    d.state = DeliveryState::Retrying { next_attempt_at };
                    d.last_status = status;
                    d.last_error = Some(error.clone());
                    d.last_attempt_at = Some(now);
                });
                tracing::warn!(
                    receiver = %r.name, kind = %r.kind, event = %n.event, id = %n.id,
                    delivery = %job.delivery_id, attempts = job.attempts, status,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "notification attempt failed, will retry: {error}"
                );
                retries.insert((Instant::now() + delay, job.seq), job);
            }
        }
    }

    /// One HTTP attempt. Never panics on what the receiver sends back.
    async fn send(&self, job: &Job) -> Outcome {
        let n = &job.notification;
        let request = match &self.receiver.target {
            Target::Webhook { url, secret } => {
                // Body and signature are rebuilt per attempt: `sent_at` and
                // `t=` are this attempt's, the delivery id is the same.
                let now = Utc::now();
                let body = match webhook_body(n, &job.delivery_id, now) {
                    Ok(b) => b,
                    Err(e) => {
                        return Outcome::Permanent {
                            status: None,
                            error: format!("cannot encode the notification as JSON: {e}"),
                        }
                    }
                };
                let signature = sign(secret.expose().as_bytes(), now.timestamp(), &body);
                let event = match HeaderValue::from_str(&n.event) {
                    Ok(v) => v,
                    Err(_) => {
                        return Outcome::Permanent {
                            status: None,
                            error: "the event name cannot be sent as an HTTP header".into(),
                        }
                    }
                };
                self.client
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .header(USER_AGENT, user_agent())
                    .header(EVENT_HEADER, event)
                    .header(DELIVERY_HEADER, job.delivery_id.as_str())
                    .header(SIGNATURE_HEADER, signature)
                    .body(body)
            }
            Target::Slack { url, .. } => {
                let body = match serde_json::to_vec(&slack_body(n)) {
                    Ok(b) => b,
                    Err(e) => {
                        return Outcome::Permanent {
                            status: None,
                            error: format!("cannot encode the Slack message as JSON: {e}"),
                        }
                    }
                };
                self.client
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .header(USER_AGENT, user_agent())
                    .body(body)
            }
        };

        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let permanent = e.is_builder();
                let error = self.describe(e);
                return if permanent {
                    Outcome::Permanent {
                        status: None,
                        error,
                    }
                } else {
                    Outcome::Retry {
                        status: None,
                        error,
                        retry_after: None,
                    }
                };
            }
        };

        let status = response.status();
        if status.is_success() {
            return Outcome::Delivered {
                status: status.as_u16(),
            };
        }
        let retry_after = if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::SERVICE_UNAVAILABLE
        {
            response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, Utc::now()))
        } else {
            None
        };
        let excerpt = read_excerpt(response).await;
        let mut error = format!("HTTP {}", status.as_u16());
        if let Some(reason) = status.canonical_reason() {
            error.push(' ');
            error.push_str(reason);
        }
        if !excerpt.is_empty() {
            error.push_str(": ");
            error.push_str(&excerpt);
        }
        let error = self.receiver.redact(&error);
        let code = Some(status.as_u16());

        if status.is_redirection() {
            return Outcome::Permanent {
                status: code,
                error: format!("{error} (redirects are not followed; configure the final URL)"),
            };
        }
        if status.is_client_error()
            && status != StatusCode::REQUEST_TIMEOUT
            && status != StatusCode::TOO_MANY_REQUESTS
        {
            return Outcome::Permanent {
                status: code,
                error,
            };
        }
        Outcome::Retry {
            status: code,
            error,
            retry_after,
        }
    }

    /// A one-line reason for a transport error, without the URL.
    fn describe(&self, e: reqwest::Error) -> String {
        let what = if e.is_timeout() {
            format!("timed out after {}s", self.policy.timeout.as_secs())
        } else if e.is_connect() {
            "connection failed".to_string()
        } else if e.is_builder() {
            "cannot build the request".to_string()
        } else {
            "request failed".to_string()
        };
        let e = e.without_url();
        // The innermost cause is the informative one ("Connection refused").
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        let cause = cause.to_string();
        let msg = if cause.is_empty() || what.contains(&cause) {
            what
        } else {
            format!("{what}: {cause}")
        };
        self.receiver.redact(&msg)
    }
}

fn user_agent() -> HeaderValue {
    HeaderValue::from_static(concat!("gatehouse-notify/", env!("CARGO_PKG_VERSION")))
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The start of an error response body, as one printable line, for the
/// console (Slack explains refusals there, e.g. `invalid_token`). Bounded:
/// a receiver cannot make us read or keep more than a few hundred bytes.
async fn read_excerpt(mut response: reqwest::Response) -> String {
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(ERROR_BODY_BYTES - buf.len());
                buf.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let mut out = String::new();
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        out.push(c);
        if out.chars().count() >= ERROR_BODY_CHARS {
            out.push('…');
            break;
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_unique_and_shaped() {
        let a = new_delivery_id();
        let b = new_delivery_id();
        assert_ne!(a, b);
        assert!(a.starts_with("dlv_"));
        assert_eq!(a.len(), 4 + 32);
    }

    #[tokio::test]
    async fn disabled_is_inert() {
        let n = Notifier::disabled();
        assert!(!n.is_enabled());
        n.notify(Notification {
            event: "approval.requested".into(),
            id: "1".into(),
            title: "t".into(),
            link: None,
            data: serde_json::Value::Null,
        });
        assert!(n.deliveries().is_empty());
        n.shutdown(Duration::from_millis(10)).await;
    }

    #[test]
    fn start_outside_runtime_is_an_error() {
        let dir = std::env::temp_dir();
        let cfg = NotifyConfig {
            webhooks: vec![crate::WebhookConfig {
                name: "a".into(),
                url: "http://127.0.0.1:9/".into(),
                secret_env: Some("PATH".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(matches!(
            Notifier::start(&cfg, &dir),
            Err(NotifyError::NoRuntime)
        ));
    }
}
