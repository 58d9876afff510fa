//! How the target reads this session's statements, followed as it changes.
//!
//! Two settings change where PostgreSQL ends a string: with
//! `standard_conforming_strings = off`, `\` escapes inside plain `'…'`;
//! with a client encoding such as SJIS or GBK, a multi-byte character can
//! end in the byte `0x5c`, which the server reads as part of the character
//! and a byte-wise reader as `\`. Both are reported by the server in
//! ParameterStatus, at start-up and at the ReadyForQuery after a change
//! (never mid-batch), however they were changed: `SET`, `set_config`, a
//! function's body, `ALTER ROLE … SET`, start-up options.
//!
//! So the server pump feeds every report here, and the client pump, before
//! it classifies a text whose reading depends on these settings (a
//! backslash in a plain string, any non-ASCII byte), waits until the
//! target has answered everything sent before it: only then is the last
//! report the setting the target will read the text with. Texts that read
//! the same under every setting (the common case) never wait. An unsafe
//! client encoding ends the session.

use crate::codec::backend;
use gatehouse_core::classify::syntax::pg_client_encoding_is_safe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::Notify;

/// The lexical settings of one session, shared by its two pumps.
#[derive(Debug)]
pub struct SessionSyntax {
    standard_strings: AtomicBool,
    encoding_safe: AtomicBool,
    /// ReadyForQuery messages the target has sent since start-up.
    ready: AtomicU64,
    answered: Notify,
}

impl SessionSyntax {
    /// The settings the target reported at login, or why the session cannot
    /// go on (an unsafe client encoding, asked for by the client's start-up
    /// parameters or set for the role or database).
    pub fn from_login(parameter_status: &[Vec<u8>]) -> Result<SessionSyntax, String> {
        let syntax = SessionSyntax {
            standard_strings: AtomicBool::new(true),
            encoding_safe: AtomicBool::new(true),
            ready: AtomicU64::new(0),
            answered: Notify::new(),
        };
        for ps in parameter_status {
            if let Ok((name, value)) = backend::parse_parameter_status(ps.get(5..).unwrap_or(&[])) {
                if let Some(refusal) = syntax.observe(name, value) {
                    return Err(refusal);
                }
            }
        }
        Ok(syntax)
    }

    /// Take a ParameterStatus report; `Some(reason)` when the session must
    /// end because the gateway can no longer read text as the server does.
    pub fn observe(&self, name: &str, value: &str) -> Option<String> {
        if name.eq_ignore_ascii_case("standard_conforming_strings") {
            self.standard_strings
                .store(!value.eq_ignore_ascii_case("off"), Ordering::SeqCst);
        } else if name.eq_ignore_ascii_case("client_encoding") {
            let safe = pg_client_encoding_is_safe(value);
            self.encoding_safe.store(safe, Ordering::SeqCst);
            if !safe {
                return Some(unsafe_encoding(value));
            }
        }
        None
    }

    /// The target sent ReadyForQuery: everything sent before the matching
    /// Query or Sync is answered and its setting changes are reported.
    pub fn ready_for_query(&self) {
        self.ready.fetch_add(1, Ordering::SeqCst);
        self.answered.notify_waiters();
    }

    /// Wait until the target has sent `count` ReadyForQuery messages.
    pub async fn answered(&self, count: u64) {
        loop {
            let notified = self.answered.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.ready.load(Ordering::SeqCst) >= count {
                return;
            }
            notified.await;
        }
    }

    /// Whether plain strings are standard (`\` is an ordinary character).
    pub fn standard_strings(&self) -> bool {
        self.standard_strings.load(Ordering::SeqCst)
    }

    /// Whether the client encoding is one the gateway reads as the server does.
    pub fn encoding_safe(&self) -> bool {
        self.encoding_safe.load(Ordering::SeqCst)
    }
}

/// Why a session with this client encoding cannot go through the gateway.
pub fn unsafe_encoding(value: &str) -> String {
    format!(
        "client_encoding {value} is not supported through gatehouse: in it a character can end in a byte that reads as a backslash or quote, so the gateway could read a statement differently from the server; use UTF8"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_reports_decide() {
        let ok = vec![
            backend::parameter_status("client_encoding", "UTF8"),
            backend::parameter_status("standard_conforming_strings", "off"),
        ];
        let s = SessionSyntax::from_login(&ok).unwrap();
        assert!(!s.standard_strings());
        assert!(s.encoding_safe());
        let bad = vec![backend::parameter_status("client_encoding", "SJIS")];
        assert!(SessionSyntax::from_login(&bad)
            .unwrap_err()
            .contains("SJIS"));
        assert!(s.observe("client_encoding", "GBK").is_some());
        assert!(!s.encoding_safe());
        assert!(s.observe("standard_conforming_strings", "on").is_none());
        assert!(s.standard_strings());
    }

    #[tokio::test]
    async fn waiting_for_answers() {
        let s = std::sync::Arc::new(SessionSyntax::from_login(&[]).unwrap());
        s.answered(0).await;
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.answered(2).await }
        });
        s.ready_for_query();
        s.ready_for_query();
        waiter.await.unwrap();
    }
}
