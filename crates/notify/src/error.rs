//! Errors from starting the notifier.

use thiserror::Error;

/// Why the notifier could not start. Raised only by [`crate::Notifier::start`]:
/// once running, a failing receiver is recorded in
/// [`crate::Notifier::deliveries`] and logged, never returned to the caller.
///
/// Messages name the offending setting (e.g. `notify.webhooks[ops].secret_env`)
/// and never contain a secret value or the Slack URL.
#[derive(Debug, Error)]
pub enum NotifyError {
    /// A `[notify]` setting is missing, contradictory or unusable.
    #[error("invalid configuration: {setting}: {reason}")]
    Config {
        /// The setting at fault, as a TOML path, e.g. `notify.slack[team].url_env`.
        setting: String,
        /// What is wrong and what to do about it.
        reason: String,
    },
    /// The HTTP client could not be built (e.g. TLS roots unavailable).
    #[error("notify: cannot build the HTTP client: {0}; check the TLS setup of this host")]
    Client(String),
    /// `start` was called outside a tokio runtime, so there is nowhere to run
    /// the delivery workers.
    #[error("notify: Notifier::start must be called inside a tokio runtime")]
    NoRuntime,
}

impl NotifyError {
    pub(crate) fn config(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        NotifyError::Config {
            setting: setting.into(),
            reason: reason.into(),
        }
    }
}
