//! Notifications about approvals and grants, delivered off the data path.
//!
//! When a command is held for approval, or an approval is decided, the
//! gateway tells people: generic JSON webhooks signed with HMAC-SHA256, and
//! Slack-compatible incoming webhooks with a link to the request.
//!
//! A failing receiver never blocks the gateway: [`Notifier::notify`] records
//! the delivery, queues it and returns. One worker per receiver sends it,
//! retrying with backoff, and [`Notifier::deliveries`] shows where each
//! delivery stands for the console.
//!
//! # Configuration
//!
//! The `[notify]` section of the gateway config ([`NotifyConfig`]); every
//! field is optional. Secrets — the webhook HMAC secret and the Slack URL,
//! which is itself a credential — are referenced by environment variable
//! (`*_env`) or file (`*_file`, relative to the config's directory), exactly
//! one of the two, never inline.
//!
//! ```toml
//! [notify]
//! max_attempts = 8          # attempts per delivery, the first included
//! initial_backoff_ms = 500  # first retry delay; doubles each retry, with jitter
//! max_backoff_secs = 300    # cap on a retry delay (and on Retry-After)
//! timeout_secs = 10         # per HTTP attempt
//! history = 500             # deliveries kept for the console
//! queue_capacity = 10000    # deliveries waiting per receiver before "queue full"
//!
//! [[notify.webhooks]]
//! name = "siem"
//! url = "https://siem.example.com/hooks/gatehouse"
//! secret_env = "GATEHOUSE_SIEM_HOOK_SECRET"
//! events = ["approval.*", "grant.revoked"]   # empty or absent = all events
//!
//! [[notify.slack]]
//! name = "dba-channel"
//! url_file = "secrets/slack-dba.url"
//! events = ["approval.requested"]
//! ```
//!
//! Event patterns are exact names (see [`events`]), a prefix ending in `.*`,
//! or `*`.
//!
//! # Webhook wire format
//!
//! Each delivery is one `POST <url>` with `Content-Type: application/json`
//! and this body:
//!
//! ```json
//! {"event": "approval.requested", "id": "42",
//!  "title": "dba alice@bank wants to run DELETE on prod-db (rule dba-writes)",
//!  "link": "https://gatehouse.example.com/approvals/42",
//!  "data": { "...": "the full request" },
//!  "delivery": "dlv_5f0c…", "sent_at": "2025-01-02T03:04:05.678Z"}
//! ```
//!
//! (`link` may be `null`.) Headers:
//!
//! - `Gatehouse-Event: <event>` — route without parsing the body;
//! - `Gatehouse-Delivery: <delivery id>` — the same on every retry of a
//!   delivery: dedupe on it;
//! - `Gatehouse-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is the
//!   lowercase hex HMAC-SHA256, keyed with the shared secret, of
//!   `"<t>.<raw body>"` (the decimal timestamp, a dot, the body bytes
//!   exactly as received).
//!
//! `t`, the signature and `sent_at` are recomputed on each attempt. To
//! verify, a receiver recomputes the HMAC over the raw body before parsing
//! it, compares in constant time, and refuses a `t` more than a few minutes
//! from its clock (a replay). [`verify_signature`] does exactly that. More
//! than one `v1=` may appear in future (secret rotation): accept if any
//! matches; ignore unknown keys.
//!
//! # Slack message
//!
//! `POST <incoming-webhook url>` with `{"text": "<title> <link>", "blocks":
//! [{"type": "section", "text": {"type": "mrkdwn", "text": "<title>\n<<link>|Open
//! request #<id>>"}}]}`. `&`, `<` and `>` in the title are escaped, so a
//! title cannot mention `@channel` or forge a link.
//!
//! # Delivery and retries
//!
//! - 2xx: delivered.
//! - 4xx other than 408 and 429: failed at once, not retried (the request
//!   itself is refused: wrong secret, revoked Slack hook…). 3xx too:
//!   redirects are not followed, configure the final URL.
//! - Any other status, a timeout or a connection error: retried after
//!   `initial_backoff_ms × 2^(n-1)`, capped at `max_backoff_secs`, jittered
//!   into the upper half of that range; a `Retry-After` (seconds or date)
//!   on 429/503 is used instead, capped the same way. After `max_attempts`
//!   attempts the delivery is failed.
//! - Each receiver has its own worker and its own bounded queue
//!   (`queue_capacity`): a slow or dead receiver never delays another, and
//!   when its queue is full new deliveries are recorded as failed ("queue
//!   full") instead of blocking or growing memory.
//!
//! Failures are logged at `warn` with the receiver's name; neither logs nor
//! [`Delivery::last_error`] ever contain a secret or a receiver URL.

#![warn(missing_docs)]

mod backoff;
mod config;
mod delivery;
mod error;
mod notification;
mod notifier;
mod payload;
mod signature;

pub use config::{
    NotifyConfig, ReceiverKind, SlackConfig, WebhookConfig, DEFAULT_HISTORY,
    DEFAULT_INITIAL_BACKOFF_MS, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BACKOFF_SECS,
    DEFAULT_QUEUE_CAPACITY, DEFAULT_TIMEOUT_SECS,
};
pub use delivery::{Delivery, DeliveryState};
pub use error::NotifyError;
pub use notification::{events, Notification};
pub use notifier::Notifier;
pub use signature::{
    sign, verify_signature, SignatureError, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER,
};
