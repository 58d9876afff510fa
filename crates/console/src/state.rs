//! The console's shared state: configuration resolved once at start-up and
//! the server-side tables behind its cookies.

use crate::dev::DevAuthority;
use crate::oidc::Provider;
use crate::pages::audit::AuditStatus;
use crate::pkce::key_of;
use crate::{ConsoleConfig, ConsoleDeps, ConsoleError, DevIdentity, DEFAULT_CLIENT_ID};
use gatehouse_approvals::Broker;
use gatehouse_core::Identity;
use gatehouse_identity::TokenValidator;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Most sign-ins in progress kept at once; started by anonymous visitors,
/// so the table is bounded.
const MAX_PENDING_LOGINS: usize = 10_000;
/// Most console sessions kept at once.
const MAX_SESSIONS: usize = 50_000;
/// How long a sign-in may take from `/login` to `/callback`.
pub(crate) const LOGIN_TTL_SECS: i64 = 600;

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// How people sign in.
pub(crate) enum SignIn {
    /// A real OIDC provider.
    Oidc(Provider),
    /// The gateway's dev issuer, through this console's `/dev/*` endpoints.
    Dev(Arc<DevAuthority>),
}

/// Everything the handlers share.
pub(crate) struct App {
    pub auditor_groups: Vec<String>,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    pub dev_identities: Vec<DevIdentity>,
    pub broker: Broker,
    pub validator: Arc<TokenValidator>,
    pub audit_db: PathBuf,
    pub audit_public_key: PathBuf,
    pub audit_verify: gatehouse_audit::VerifyOptions,
    pub recordings_dir: Option<PathBuf>,
    pub deliveries: Arc<dyn Fn() -> Vec<serde_json::Value> + Send + Sync>,
    /// Without a trailing slash.
    pub public_url: String,
    /// `{public_url}/callback`.
    pub redirect_uri: String,
    /// `host[:port]` of `public_url`, to send visitors to the one host
    /// whose cookies the callback will see.
    pub public_authority: String,
    /// Whether cookies get the `Secure` attribute (always, except for a
    /// plain-http console on loopback in tests).
    pub secure_cookies: bool,
    pub signin: SignIn,
    pub sessions: Table<ConsoleSession>,
    pub logins: Table<PendingLogin>,
    pub audit_cache: tokio::sync::Mutex<Option<(Instant, Arc<AuditStatus>)>>,
}

/// A signed-in browser.
#[derive(Clone)]
pub(crate) struct ConsoleSession {
    pub identity: Identity,
    pub csrf: String,
}

/// A sign-in between `/login` and `/callback`.
#[derive(Clone)]
pub(crate) struct PendingLogin {
    pub verifier: String,
    pub state: String,
    pub nonce: String,
    pub next: String,
}

impl App {
    pub(crate) fn new(cfg: &ConsoleConfig, deps: ConsoleDeps) -> Result<App, ConsoleError> {
        let public_url = deps.public_url.trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&public_url)
            .map_err(|e| ConsoleError::BadPublicUrl(public_url.clone(), e.to_string()))?;
        let host = parsed.host_str().ok_or_else(|| {
            ConsoleError::BadPublicUrl(public_url.clone(), "it has no host".into())
        })?;
        let loopback = is_loopback_host(host);
        match parsed.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(ConsoleError::BadPublicUrl(
                    public_url,
                    "use https (plain http only on 127.0.0.1, ::1 or localhost)".into(),
                ))
            }
        }
        if parsed.path() != "/" || parsed.query().is_some() {
            return Err(ConsoleError::BadPublicUrl(
                public_url,
                "the console is mounted at the root: give scheme, host and port only".into(),
            ));
        }
        let public_authority = match parsed.port() {
            Some(p) => format!("{}:{p}", parsed.host_str().unwrap_or_default()),
            None => parsed.host_str().unwrap_or_default().to_string(),
        };
        let secure_cookies = parsed.scheme() == "https" || !loopback;
        let client_id = cfg
            .client_id
            .clone()
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_string());
        let client_secret = match &cfg.client_secret_env {
            Some(var) => Some(
                std::env::var(var)
                    .ok()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| ConsoleError::MissingSecret(var.clone()))?,
            ),
            None => None,
        };
        for id in &cfg.dev_identities {
            if id.subject.trim().is_empty() {
                return Err(ConsoleError::Invalid(
                    "dev_identities: every identity needs a subject".into(),
                ));
            }
        }
        let redirect_uri = format!("{public_url}/callback");
        let trusted: Vec<String> = deps
            .validator
            .issuers()
            .map(|i| i.trim_end_matches('/').to_string())
            .collect();
        let signin = match (&cfg.issuer, &deps.dev_issuer) {
            (Some(issuer), _) => {
                if !trusted.contains(&issuer.trim_end_matches('/').to_string()) {
                    return Err(ConsoleError::UntrustedIssuer(issuer.clone()));
                }
                SignIn::Oidc(Provider::new(issuer)?)
            }
            (None, Some(dev)) => {
                if !trusted.contains(&dev.issuer().trim_end_matches('/').to_string()) {
                    return Err(ConsoleError::Invalid(
                        "dev sign-in needs the token validator to trust the dev issuer".into(),
                    ));
                }
                SignIn::Dev(Arc::new(DevAuthority::new(
                    dev.clone(),
                    client_id.clone(),
                    redirect_uri.clone(),
                )))
            }
            (None, None) => return Err(ConsoleError::NoSignIn),
        };
        Ok(App {
            auditor_groups: cfg.auditor_groups.clone(),
            client_id,
            client_secret,
            scopes: if cfg.scopes.is_empty() {
                vec!["openid".into()]
            } else {
                cfg.scopes.clone()
            },
            dev_identities: cfg.dev_identities.clone(),
            broker: deps.broker,
            validator: deps.validator,
            audit_db: deps.audit_db,
            audit_public_key: deps.audit_public_key,
            audit_verify: deps.audit_verify,
            recordings_dir: deps.recordings_dir,
            deliveries: deps.deliveries,
            public_url,
            redirect_uri,
            public_authority,
            secure_cookies,
            signin,
            sessions: Table::new(MAX_SESSIONS),
            logins: Table::new(MAX_PENDING_LOGINS),
            audit_cache: tokio::sync::Mutex::new(None),
        })
    }

    /// The issuer sign-ins must come from.
    pub(crate) fn expected_issuer(&self) -> &str {
        match &self.signin {
            SignIn::Oidc(p) => p.issuer(),
            SignIn::Dev(d) => d.issuer(),
        }
    }

    /// Whether `identity` is an auditor (reads everything).
    pub(crate) fn is_auditor(&self, identity: &Identity) -> bool {
        self.auditor_groups.iter().any(|g| identity.in_group(g))
    }
}

/// Whether `host` names this machine.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A bounded table of secrets with expiry, keyed by the SHA-256 of the
/// cookie (or code) that names each entry.
pub(crate) struct Table<V> {
    max: usize,
    entries: Mutex<HashMap<[u8; 32], (i64, V)>>,
}

impl<V: Clone> Table<V> {
    pub(crate) fn new(max: usize) -> Self {
        Table {
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Keep `value` under `secret` until `expires_at` (Unix seconds).
    pub(crate) fn insert(&self, secret: &str, expires_at: i64, value: V) {
        let mut entries = self.entries.lock();
        let t = now();
        entries.retain(|_, (exp, _)| *exp > t);
        while entries.len() >= self.max {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (exp, _))| *exp)
                .map(|(k, _)| *k)
            else {
                break;
            };
            entries.remove(&oldest);
        }
        entries.insert(key_of(secret), (expires_at, value));
    }

    /// The live entry under `secret`.
    pub(crate) fn get(&self, secret: &str) -> Option<V> {
        let entries = self.entries.lock();
        entries
            .get(&key_of(secret))
            .filter(|(exp, _)| *exp > now())
            .map(|(_, v)| v.clone())
    }

    /// Remove and return the live entry under `secret` (one-time use).
    pub(crate) fn take(&self, secret: &str) -> Option<V> {
        self.entries
            .lock()
            .remove(&key_of(secret))
            .filter(|(exp, _)| *exp > now())
            .map(|(_, v)| v)
    }

    /// Forget `secret`.
    pub(crate) fn remove(&self, secret: &str) {
        self.entries.lock().remove(&key_of(secret));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_expires_and_bounds() {
        let t: Table<u32> = Table::new(2);
        t.insert("a", now() + 60, 1);
        t.insert("gone", now() - 1, 9);
        assert_eq!(t.get("a"), Some(1));
        assert_eq!(t.get("gone"), None);
        t.insert("b", now() + 120, 2);
        t.insert("c", now() + 180, 3);
        assert_eq!(t.get("a"), None, "the soonest to expire made room");
        assert_eq!(t.take("b"), Some(2));
        assert_eq!(t.take("b"), None, "one-time");
        t.remove("c");
        assert_eq!(t.get("c"), None);
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("[::1]"));
        assert!(is_loopback_host("LOCALHOST"));
        assert!(!is_loopback_host("example.com"));
        assert!(!is_loopback_host("10.0.0.1"));
    }
}
