//! The Gatehouse web console: where approvers decide held commands and
//! access requests, and where auditors read what happened.
//!
//! Server-rendered HTML (no front-end build), mounted by the gateway behind
//! its TLS listener. People sign in with the OIDC authorization-code flow
//! with PKCE against the configured issuer, or against the gateway's own
//! dev issuer for demos (same code path, served by [`router`] at
//! `/dev/authorize` and `/dev/token`). The access token is validated by the
//! gateway's [`TokenValidator`] exactly like a database login's, and the
//! console session lives server-side, keyed by a random cookie.
//!
//! The console only ever shows what the audit trail recorded, which is
//! masked by construction; it never reads a target.
//!
//! Routes: `/`, `/login`, `/callback`, `/logout`, `/signed-out`,
//! `/approvals…`, `/grants…`, `/sessions…`, `/audit`, `/deliveries`,
//! `/dev/authorize`, `/dev/token`, `/static/…`, `/favicon.ico`. It never claims `/healthz`,
//! `/dev/.well-known/*` or `/api/…`.

#![warn(missing_docs)]

mod auth;
mod dev;
mod html;
mod oidc;
mod pages;
mod pkce;
mod roles;
mod security;
mod state;

use gatehouse_identity::{DevIssuer, TokenValidator};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

pub use dev::dev_discovery_endpoints;

/// The client id the console uses when the config names none.
pub const DEFAULT_CLIENT_ID: &str = "gatehouse-console";

/// `[console]` section of the gateway TOML.
///
/// ```toml
/// [console]
/// auditor_groups = ["auditors"]
/// issuer = "https://login.example.com/realms/bank"   # omit for dev sign-in
/// client_id = "gatehouse-console"
/// client_secret_env = "GATEHOUSE_CONSOLE_SECRET"      # confidential clients only
/// scopes = ["openid", "email", "groups"]
///
/// [[console.dev_identities]]                         # dev sign-in page only
/// subject = "omar"
/// email = "omar@bank.test"
/// groups = ["approvers"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Members of these groups see everything, read-only (examiners, audit).
    pub auditor_groups: Vec<String>,
    /// OIDC issuer people sign in with; `None` means dev sign-in, which
    /// needs the gateway's dev issuer.
    pub issuer: Option<String>,
    /// The console's OIDC client id (default `gatehouse-console`).
    pub client_id: Option<String>,
    /// Environment variable holding the client secret, for confidential
    /// clients; the secret itself never appears in the file.
    pub client_secret_env: Option<String>,
    /// Scopes asked for at sign-in.
    pub scopes: Vec<String>,
    /// Identities offered on the dev sign-in page, so a demo is one click.
    pub dev_identities: Vec<DevIdentity>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            auditor_groups: vec!["auditors".into()],
            issuer: None,
            client_id: Some(DEFAULT_CLIENT_ID.into()),
            client_secret_env: None,
            scopes: vec!["openid".into(), "email".into(), "groups".into()],
            dev_identities: Vec::new(),
        }
    }
}

/// One identity offered on the dev sign-in page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevIdentity {
    /// The token's `sub`.
    pub subject: String,
    /// The token's `email`, if any.
    #[serde(default)]
    pub email: Option<String>,
    /// The token's `groups`.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// What the console needs from the running gateway.
pub struct ConsoleDeps {
    /// Approval requests and grants.
    pub broker: gatehouse_approvals::Broker,
    /// The same token validation as database logins.
    pub validator: Arc<TokenValidator>,
    /// The gateway's dev issuer, when enabled (needed for dev sign-in).
    pub dev_issuer: Option<Arc<DevIssuer>>,
    /// The audit trail's SQLite file (read-only here).
    pub audit_db: PathBuf,
    /// The audit checkpoint public key (PEM), for the chain status page.
    pub audit_public_key: PathBuf,
    /// What the chain status page holds the trail to beyond its chain: the
    /// configured checkpoint policy and the external anchor file.
    pub audit_verify: gatehouse_audit::VerifyOptions,
    /// Where SSH terminal recordings are kept, for replay (`None`: no replay).
    pub recordings_dir: Option<PathBuf>,
    /// Notification deliveries, newest first, as JSON objects.
    pub deliveries: Arc<dyn Fn() -> Vec<serde_json::Value> + Send + Sync>,
    /// The console's base URL as browsers reach it, e.g.
    /// `https://127.0.0.1:15443`; the redirect URI is `{public_url}/callback`.
    pub public_url: String,
}

/// Why the console could not be set up; each says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Neither an issuer nor the dev issuer is available.
    #[error("[console] has no issuer and the dev issuer is off, so nobody could sign in: set [console] issuer to your OIDC provider, or enable the dev issuer for a demo")]
    NoSignIn,
    /// The sign-in issuer is not one the gateway trusts.
    #[error("[console] issuer \"{0}\" is not among the trusted issuers ([[identity.issuers]]); add it there so console sign-ins can be validated")]
    UntrustedIssuer(String),
    /// The issuer URL is unusable.
    #[error("[console] issuer \"{0}\": {1}")]
    BadIssuer(String, String),
    /// The client secret's environment variable is missing.
    #[error("[console] client_secret_env: environment variable {0} is not set; set it to the console's OIDC client secret, or remove client_secret_env for a public client")]
    MissingSecret(String),
    /// `public_url` is unusable.
    #[error("console public URL \"{0}\": {1}")]
    BadPublicUrl(String, String),
    /// A config value is unusable.
    #[error("[console] {0}")]
    Invalid(String),
}

/// Build the console's routes. Fails when sign-in could not work, so a
/// gateway with a broken console refuses to start instead of locking out
/// its approvers later.
pub fn router(cfg: &ConsoleConfig, deps: ConsoleDeps) -> Result<axum::Router, ConsoleError> {
    let app = state::App::new(cfg, deps)?;
    Ok(pages::routes(Arc::new(app)))
}
