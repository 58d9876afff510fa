//! The `[notify]` section of the gateway configuration, and its resolution
//! into receivers with their secrets loaded.
//!
//! Secrets (the webhook HMAC secret, the Slack URL) are referenced by an
//! environment variable (`*_env`) or a file (`*_file`), never written inline,
//! so the config file can be committed and shown in reviews.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use reqwest::Url;
use serde::Deserialize;

use crate::error::NotifyError;

/// Default for [`NotifyConfig::max_attempts`].
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// Default for [`NotifyConfig::initial_backoff_ms`].
pub const DEFAULT_INITIAL_BACKOFF_MS: u64 = 500;
/// Default for [`NotifyConfig::max_backoff_secs`].
pub const DEFAULT_MAX_BACKOFF_SECS: u64 = 300;
/// Default for [`NotifyConfig::timeout_secs`].
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// Default for [`NotifyConfig::history`].
pub const DEFAULT_HISTORY: usize = 500;
/// Default for [`NotifyConfig::queue_capacity`].
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;

/// Upper bound on `max_backoff_secs`: beyond a day a retry is no longer a
/// useful notification.
const MAX_BACKOFF_LIMIT_SECS: u64 = 86_400;
/// Upper bound on `timeout_secs`: an attempt hanging longer only delays the
/// receiver's other deliveries.
const TIMEOUT_LIMIT_SECS: u64 = 3_600;

/// The `[notify]` section of the gateway's TOML config: who is told about
/// approvals and how hard we try.
///
/// Every field has a default, so an empty `[notify]` is valid (and notifies
/// nobody).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Generic signed JSON webhooks (`[[notify.webhooks]]`).
    pub webhooks: Vec<WebhookConfig>,
    /// Slack-compatible incoming webhooks (`[[notify.slack]]`).
    pub slack: Vec<SlackConfig>,
    /// Attempts per delivery, the first included, before it is marked failed.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles on each retry, with jitter.
    pub initial_backoff_ms: u64,
    /// Cap on the delay between two attempts (also caps `Retry-After`).
    pub max_backoff_secs: u64,
    /// Time allowed for one HTTP attempt, connection included.
    pub timeout_secs: u64,
    /// How many recent deliveries are kept for the console.
    pub history: usize,
    /// Deliveries waiting (queued or between retries) per receiver; beyond
    /// it a new one is recorded as failed ("queue full") instead of growing
    /// memory without bound while a receiver is down.
    pub queue_capacity: usize,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            webhooks: Vec::new(),
            slack: Vec::new(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_backoff_ms: DEFAULT_INITIAL_BACKOFF_MS,
            max_backoff_secs: DEFAULT_MAX_BACKOFF_SECS,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            history: DEFAULT_HISTORY,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
        }
    }
}

/// One generic webhook receiver (`[[notify.webhooks]]`): gets the signed JSON
/// body described in the crate docs.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Shown in the console and logs; unique among all receivers.
    pub name: String,
    /// Where to `POST`; `http` or `https`. Not treated as a secret (put
    /// tokens in the HMAC secret, not the URL), but never logged either.
    pub url: String,
    /// Environment variable holding the HMAC secret (exactly one of
    /// `secret_env`/`secret_file`).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File holding the HMAC secret; relative to the config's directory;
    /// trailing newlines are ignored.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Events to send (`"approval.requested"`, `"approval.*"`, `"*"`); empty
    /// means all.
    #[serde(default)]
    pub events: Vec<String>,
}

/// One Slack-compatible incoming webhook (`[[notify.slack]]`). Its URL is
/// itself the credential, so it is referenced like a secret.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Shown in the console and logs; unique among all receivers.
    pub name: String,
    /// Environment variable holding the incoming-webhook URL (exactly one of
    /// `url_env`/`url_file`).
    #[serde(default)]
    pub url_env: Option<String>,
    /// File holding the incoming-webhook URL; relative to the config's
    /// directory.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Events to send; same syntax as [`WebhookConfig::events`].
    #[serde(default)]
    pub events: Vec<String>,
}

/// Which wire format a receiver speaks; shown in the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverKind {
    /// Signed JSON webhook.
    Webhook,
    /// Slack-compatible incoming webhook.
    Slack,
}

impl ReceiverKind {
    /// The name used in the console and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverKind::Webhook => "webhook",
            ReceiverKind::Slack => "slack",
        }
    }
}

impl fmt::Display for ReceiverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret loaded from its reference. `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// Which events a receiver wants: exact names, `prefix.*`, or `*`; empty
/// means all.
#[derive(Clone, Debug, Default)]
pub(crate) struct EventFilter(Vec<String>);

impl EventFilter {
    pub(crate) fn matches(&self, event: &str) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|p| {
                p == "*"
                    || p == event
                    || p.strip_suffix('*')
                        .is_some_and(|prefix| prefix.ends_with('.') && event.starts_with(prefix))
            })
    }
}

/// Where and how to send, with secrets loaded.
#[derive(Debug)]
pub(crate) enum Target {
    Webhook { url: Url, secret: Secret },
    Slack { url: Url, raw: Secret },
}

/// A receiver ready for a worker.
#[derive(Debug)]
pub(crate) struct Receiver {
    pub(crate) name: String,
    pub(crate) kind: ReceiverKind,
    pub(crate) events: EventFilter,
    pub(crate) target: Target,
}

impl Receiver {
    /// Removes anything secret (Slack URL, webhook URL and secret) from a
    /// message before it is logged or shown.
    pub(crate) fn redact(&self, msg: &str) -> String {
        let mut out = msg.to_string();
        let mut hide = |needle: &str, label: &str| {
            if needle.len() >= 8 && out.contains(needle) {
                out = out.replace(needle, label);
            }
        };
        match &self.target {
            Target::Webhook { url, secret } => {
                hide(secret.expose(), "<secret>");
                hide(url.as_str(), "<url>");
                if url.query().is_some() {
                    hide(url.query().unwrap_or_default(), "<query>");
                }
            }
            Target::Slack { url, raw } => {
                hide(raw.expose(), "<slack url>");
                hide(url.as_str(), "<slack url>");
                hide(url.path(), "<slack path>");
            }
        }
        out
    }
}

impl NotifyConfig {
    /// True when at least one receiver is configured.
    pub fn has_receivers(&self) -> bool {
        !self.webhooks.is_empty() || !self.slack.is_empty()
    }

    /// Checks the numbers and loads every receiver's secret. Errors name the
    /// setting, never a secret value.
    pub(crate) fn resolve(&self, base_dir: &Path) -> Result<Vec<Receiver>, NotifyError> {
        if self.max_attempts == 0 {
            return Err(NotifyError::config(
                "notify.max_attempts",
                "must be at least 1 (the first attempt counts)",
            ));
        }
        if self.initial_backoff_ms == 0 {
            return Err(NotifyError::config(
                "notify.initial_backoff_ms",
                "must be at least 1 so a failing receiver is not hammered",
            ));
        }
        if self.max_backoff_secs == 0 || self.max_backoff_secs > MAX_BACKOFF_LIMIT_SECS {
            return Err(NotifyError::config(
                "notify.max_backoff_secs",
                format!("must be between 1 and {MAX_BACKOFF_LIMIT_SECS}"),
            ));
        }
        if self.timeout_secs == 0 || self.timeout_secs > TIMEOUT_LIMIT_SECS {
            return Err(NotifyError::config(
                "notify.timeout_secs",
                format!("must be between 1 and {TIMEOUT_LIMIT_SECS}"),
            ));
        }
        if self.queue_capacity == 0 {
            return Err(NotifyError::config(
                "notify.queue_capacity",
                "must be at least 1",
            ));
        }

        let mut names = HashSet::new();
        let mut receivers = Vec::with_capacity(self.webhooks.len() + self.slack.len());
        for (i, w) in self.webhooks.iter().enumerate() {
            let at = setting_path("webhooks", i, &w.name);
            check_name(&at, &w.name, &mut names)?;
            let events = check_events(&at, &w.events)?;
            let url = parse_http_url(&w.url).map_err(|why| {
                NotifyError::config(
                    format!("{at}.url"),
                    format!("is not a usable http(s) URL ({why})"),
                )
            })?;
            let secret = load_secret(
                &at,
                ("secret_env", &w.secret_env),
                ("secret_file", &w.secret_file),
                base_dir,
                "the HMAC secret shared with the receiver",
            )?;
            receivers.push(Receiver {
                name: w.name.clone(),
                kind: ReceiverKind::Webhook,
                events,
                target: Target::Webhook { url, secret },
            });
        }
        for (i, s) in self.slack.iter().enumerate() {
            let at = setting_path("slack", i, &s.name);
            check_name(&at, &s.name, &mut names)?;
            let events = check_events(&at, &s.events)?;
            let raw = load_secret(
                &at,
                ("url_env", &s.url_env),
                ("url_file", &s.url_file),
                base_dir,
                "the Slack incoming-webhook URL",
            )?;
            // The URL is the credential: say which setting is wrong, never
            // what it holds.
            let url = parse_http_url(raw.expose()).map_err(|why| {
                let which = if s.url_env.is_some() {
                    "url_env"
                } else {
                    "url_file"
                };
                NotifyError::config(
                    format!("{at}.{which}"),
                    format!(
                        "the value is not a usable http(s) URL ({why}); \
                         paste the incoming-webhook URL exactly as Slack shows it"
                    ),
                )
            })?;
            receivers.push(Receiver {
                name: s.name.clone(),
                kind: ReceiverKind::Slack,
                events,
                target: Target::Slack { url, raw },
            });
        }
        Ok(receivers)
    }
}

fn setting_path(list: &str, index: usize, name: &str) -> String {
    if name.trim().is_empty() {
        format!("notify.{list}[#{}]", index + 1)
    } else {
        format!("notify.{list}[{name}]")
    }
}

fn check_name(at: &str, name: &str, seen: &mut HashSet<String>) -> Result<(), NotifyError> {
    if name.trim().is_empty() {
        return Err(NotifyError::config(
            format!("{at}.name"),
            "is empty; give each receiver a name (shown in the console and logs)",
        ));
    }
    if !seen.insert(name.to_string()) {
        return Err(NotifyError::config(
            format!("{at}.name"),
            "is used by another receiver; names must be unique across webhooks and slack",
        ));
    }
    Ok(())
}

fn check_events(at: &str, events: &[String]) -> Result<EventFilter, NotifyError> {
    for e in events {
        let bad_wildcard =
            (e.contains('*') && e != "*" && !e.ends_with(".*")) || e.matches('*').count() > 1;
        if e.trim().is_empty() || e.chars().any(char::is_whitespace) || bad_wildcard {
            return Err(NotifyError::config(
                format!("{at}.events"),
                format!(
                    "{e:?} is not an event pattern; use a name like \"approval.requested\", \
                     a prefix like \"approval.*\", or \"*\""
                ),
            ));
        }
    }
    Ok(EventFilter(events.to_vec()))
}

/// Parses an http(s) URL; the error never echoes the input.
fn parse_http_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| e.to_string())?;
    match url.scheme() {
        "http" | "https" => {}
        _ => return Err("the scheme must be http or https".into()),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    Ok(url)
}

/// Loads a secret referenced by exactly one of an env var or a file.
fn load_secret(
    at: &str,
    (env_key, env): (&str, &Option<String>),
    (file_key, file): (&str, &Option<PathBuf>),
    base_dir: &Path,
    what: &str,
) -> Result<Secret, NotifyError> {
    let value = match (env, file) {
        (Some(_), Some(_)) => {
            return Err(NotifyError::config(
                at,
                format!("set {env_key} or {file_key}, not both"),
            ))
        }
        (None, None) => {
            return Err(NotifyError::config(
                at,
                format!(
                    "no {what} configured; set {env_key} (an environment variable name) \
                     or {file_key} (a file path); it is never written inline"
                ),
            ))
        }
        (Some(var), None) => match std::env::var(var) {
            Ok(v) => v,
            Err(std::env::VarError::NotPresent) => {
                return Err(NotifyError::config(
                    format!("{at}.{env_key}"),
                    format!(
                        "environment variable {var} is not set; export it with {what} \
                         or use {file_key}"
                    ),
                ))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(NotifyError::config(
                    format!("{at}.{env_key}"),
                    format!("environment variable {var} is not valid UTF-8"),
                ))
            }
        },
        (None, Some(path)) => {
            let full = if path.is_relative() {
                base_dir.join(path)
            } else {
                path.clone()
            };
            match std::fs::read_to_string(&full) {
                Ok(v) => v.trim_end_matches(['\r', '\n']).to_string(),
                Err(e) => {
                    return Err(NotifyError::config(
                        format!("{at}.{file_key}"),
                        format!("cannot read {}: {e}", full.display()),
                    ))
                }
            }
        }
    };
    if value.trim().is_empty() {
        let key = if env.is_some() { env_key } else { file_key };
        return Err(NotifyError::config(
            format!("{at}.{key}"),
            format!("is empty; it must hold {what}"),
        ));
    }
    Ok(Secret(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[notify]
max_attempts = 8
initial_backoff_ms = 500
max_backoff_secs = 300
timeout_secs = 10
history = 500

[[notify.webhooks]]
name = "siem"
url = "https://siem.example.com/hooks/gatehouse"
secret_env = "GATEHOUSE_SIEM_HOOK_SECRET"
events = ["approval.*", "grant.revoked"]

[[notify.slack]]
name = "dba-channel"
url_file = "secrets/slack-dba.url"
events = ["approval.requested"]
"#;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Root {
        notify: NotifyConfig,
    }

    fn parse(s: &str) -> Result<NotifyConfig, toml::de::Error> {
        toml::from_str::<Root>(s).map(|r| r.notify)
    }

    #[test]
    fn example_parses() {
        let cfg = parse(EXAMPLE).expect("example parses");
        assert_eq!(cfg.webhooks.len(), 1);
        assert_eq!(cfg.slack.len(), 1);
        assert_eq!(
            cfg.slack[0].url_file.as_deref(),
            Some(Path::new("secrets/slack-dba.url"))
        );
        assert_eq!(cfg.queue_capacity, DEFAULT_QUEUE_CAPACITY);
    }

    #[test]
    fn empty_section_is_all_defaults() {
        let cfg = parse("[notify]\n").expect("parses");
        assert_eq!(cfg, NotifyConfig::default());
        assert_eq!(cfg.max_attempts, 8);
        assert_eq!(cfg.initial_backoff_ms, 500);
        assert_eq!(cfg.max_backoff_secs, 300);
        assert_eq!(cfg.timeout_secs, 10);
        assert_eq!(cfg.history, 500);
        assert!(!cfg.has_receivers());
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(parse("[notify]\nretries = 3\n").is_err());
        assert!(parse("[[notify.webhooks]]\nname='a'\nurl='http://x'\nsecret='inline'\n").is_err());
    }

    fn hook(name: &str) -> WebhookConfig {
        WebhookConfig {
            name: name.into(),
            url: "http://127.0.0.1:9/hook".into(),
            secret_file: Some("hook.secret".into()),
            ..Default::default()
        }
    }

    fn dir_with_secret() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("hook.secret"), "s3cr3t-value\n").expect("write");
        dir
    }

    #[test]
    fn relative_secret_file_resolves_against_base_dir() {
        let dir = dir_with_secret();
        let cfg = NotifyConfig {
            webhooks: vec![hook("a")],
            ..Default::default()
        };
        let rs = cfg.resolve(dir.path()).expect("resolves");
        match &rs[0].target {
            Target::Webhook { secret, .. } => assert_eq!(secret.expose(), "s3cr3t-value"),
            Target::Slack { .. } => panic!("wrong kind"),
        }
        assert!(!format!("{rs:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn both_or_neither_secret_reference_is_refused() {
        let dir = dir_with_secret();
        let mut both = hook("a");
        both.secret_env = Some("X".into());
        let mut neither = hook("b");
        neither.secret_file = None;
        for h in [both, neither] {
            let cfg = NotifyConfig {
                webhooks: vec![h],
                ..Default::default()
            };
            let err = cfg.resolve(dir.path()).expect_err("refused").to_string();
            assert!(
                err.contains("secret_env") && err.contains("secret_file"),
                "{err}"
            );
        }
    }

    #[test]
    fn duplicate_names_and_bad_numbers_are_refused() {
        let dir = dir_with_secret();
        let cfg = NotifyConfig {
            webhooks: vec![hook("a"), hook("a")],
            ..Default::default()
        };
        let err = cfg.resolve(dir.path()).expect_err("dup").to_string();
        assert!(err.contains("notify.webhooks[a].name"), "{err}");

        let cfg = NotifyConfig {
            max_attempts: 0,
            ..Default::default()
        };
        assert!(cfg.resolve(dir.path()).is_err());
        let cfg = NotifyConfig {
            timeout_secs: 0,
            ..Default::default()
        };
        assert!(cfg.resolve(dir.path()).is_err());
    }

    #[test]
    fn bad_url_and_events_are_refused() {
        let dir = dir_with_secret();
        let mut h = hook("a");
        h.url = "ftp://example.com/x".into();
        let cfg = NotifyConfig {
            webhooks: vec![h],
            ..Default::default()
        };
        assert!(cfg.resolve(dir.path()).is_err());

        let mut h = hook("a");
        h.events = vec!["appro*al".into()];
        let cfg = NotifyConfig {
            webhooks: vec![h],
            ..Default::default()
        };
        let err = cfg.resolve(dir.path()).expect_err("bad event").to_string();
        assert!(err.contains("events"), "{err}");
    }

    #[test]
    fn event_filter() {
        let all = EventFilter::default();
        assert!(all.matches("approval.requested"));
        let f = EventFilter(vec!["approval.*".into(), "grant.revoked".into()]);
        assert!(f.matches("approval.requested"));
        assert!(f.matches("approval.denied"));
        assert!(f.matches("grant.revoked"));
        assert!(!f.matches("grant.approved"));
        assert!(!f.matches("approvalX"));
        assert!(EventFilter(vec!["*".into()]).matches("anything"));
    }

    #[test]
    fn redact_hides_slack_url() {
        let raw = "https://hooks.slack.com/services/T000/B000/XXXXSECRET";
        let r = Receiver {
            name: "team".into(),
            kind: ReceiverKind::Slack,
            events: EventFilter::default(),
            target: Target::Slack {
                url: Url::parse(raw).expect("url"),
                raw: Secret(raw.into()),
            },
        };
        let msg = format!("error for url ({raw}) path /services/T000/B000/XXXXSECRET");
        let red = r.redact(&msg);
        assert!(!red.contains("XXXXSECRET"), "{red}");
    }
}
