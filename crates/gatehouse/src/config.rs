//! The gateway's one configuration file.
//!
//! Everything lives in one TOML file (see `gatehouse.example.toml`):
//! listeners, identity issuers, the audit store, connections, rules and
//! masking. Secrets are referenced (`password_env`, `password_file`), never
//! written inline. Relative paths are resolved against `state_dir`, which is
//! itself relative to the file's folder.

use gatehouse_core::policy::{
    ColumnRuleConfig, ConnectionConfig, MaskingConfig, PolicyConfig, RuleConfig, Unparseable,
};
use gatehouse_core::serve::ListenerLimits;
use gatehouse_identity::IssuerConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where keys, certificates and the audit store live.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// The PostgreSQL listener.
    #[serde(default)]
    pub postgres: PostgresListener,
    /// The MySQL/MariaDB listener; started when this section is present or
    /// any connection has `type = "mysql"`.
    pub mysql: Option<MySqlListener>,
    /// The HTTPS API listener (dev issuer discovery and JWKS, health).
    #[serde(default)]
    pub api: ApiListener,
    /// The SSH listener (off unless the section is present).
    pub ssh: Option<SshListener>,
    /// The HTTPS listener for HTTP connections (LLM endpoints, JSON APIs,
    /// Kubernetes); started when this section is present or any
    /// connection is an HTTP one.
    pub http: Option<HttpListener>,
    /// Token issuers.
    #[serde(default)]
    pub identity: IdentitySection,
    /// The audit store.
    #[serde(default)]
    pub audit: AuditSection,
    /// Approval requests and access grants.
    #[serde(default)]
    pub approvals: ApprovalsSection,
    /// Webhook and Slack notifications about requests and decisions.
    #[serde(default)]
    pub notify: gatehouse_notify::NotifyConfig,
    /// Continuous delivery of audit events to SIEMs.
    #[serde(default)]
    pub siem: gatehouse_siem::SiemConfig,
    /// The web console: sign-in and who audits.
    #[serde(default)]
    pub console: gatehouse_console::ConsoleConfig,
    /// Named targets.
    #[serde(default)]
    pub connections: Vec<ConnectionConfig>,
    /// Command rules, first match wins.
    #[serde(default)]
    pub rules: Vec<toml::Spanned<RuleConfig>>,
    /// Column rules and detectors.
    #[serde(default)]
    pub masking: MaskingConfig,
    /// What happens to statements the parser cannot read.
    #[serde(default)]
    pub unparseable: Unparseable,
    /// What happens to reads no rule matches.
    #[serde(default)]
    pub default_read_effect: gatehouse_core::policy::DefaultEffect,
    /// What happens to writes no rule matches.
    #[serde(default)]
    pub default_write_effect: gatehouse_core::policy::DefaultEffect,
    /// Folder of the file, for resolving relative paths (not in the file).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file's text, for line numbers in policy errors (not in the file).
    #[serde(skip)]
    pub source: String,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(".gatehouse")
}

/// `[postgres]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresListener {
    /// Address to listen on.
    #[serde(default = "default_pg_listen")]
    pub listen: String,
    /// PEM certificate chain; a self-signed one is made in `state_dir` if unset.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Accept tokens over plaintext from loopback clients.
    #[serde(default)]
    pub allow_plaintext_loopback: bool,
    /// The start-up user must equal the token's subject or email.
    #[serde(default)]
    pub require_subject_match: bool,
    /// Masked result rows kept per command in the audit trail.
    #[serde(default)]
    pub result_capture_rows: usize,
    /// Largest protocol message accepted, in bytes.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Most connections served at once; the next is refused in the
    /// protocol's own words.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a client has from connecting to finishing its handshake
    /// (TLS, start-up and sign-in); then the connection is closed.
    #[serde(default = "default_handshake_secs")]
    pub handshake_timeout_secs: u64,
}

fn default_max_connections() -> usize {
    gatehouse_core::serve::DEFAULT_MAX_CONNECTIONS
}

impl PostgresListener {
    /// This listener's connection cap and handshake timeout.
    pub fn limits(&self) -> ListenerLimits {
        limits(self.max_connections, self.handshake_timeout_secs)
    }
}

fn default_handshake_secs() -> u64 {
    gatehouse_core::serve::DEFAULT_HANDSHAKE_TIMEOUT.as_secs()
}

/// SSH clients prompt for the token on the open connection: as long as
/// OpenSSH's own LoginGraceTime.
fn default_ssh_handshake_secs() -> u64 {
    120
}

/// A listener's limits from its section.
fn limits(max_connections: usize, handshake_timeout_secs: u64) -> ListenerLimits {
    ListenerLimits {
        max_connections,
        handshake_timeout: std::time::Duration::from_secs(handshake_timeout_secs.max(1)),
        ..ListenerLimits::default()
    }
}

fn default_pg_listen() -> String {
    "127.0.0.1:15432".into()
}

fn default_max_message() -> usize {
    gatehouse_postgres::codec::frame::DEFAULT_MAX_MESSAGE_LEN
}

impl Default for PostgresListener {
    fn default() -> Self {
        PostgresListener {
            listen: default_pg_listen(),
            tls_cert: None,
            tls_key: None,
            allow_plaintext_loopback: false,
            require_subject_match: false,
            result_capture_rows: 0,
            max_message_bytes: default_max_message(),
            max_connections: default_max_connections(),
            handshake_timeout_secs: default_handshake_secs(),
        }
    }
}

/// `[mysql]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MySqlListener {
    /// Address to listen on.
    #[serde(default = "default_mysql_listen")]
    pub listen: String,
    /// PEM certificate chain; defaults to the `[postgres]` one (or the
    /// self-signed pair made in `state_dir`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Accept tokens over plaintext from loopback clients.
    #[serde(default)]
    pub allow_plaintext_loopback: bool,
    /// The user name must equal the token's subject or email.
    #[serde(default)]
    pub require_subject_match: bool,
    /// Masked result rows kept per command in the audit trail.
    #[serde(default)]
    pub result_capture_rows: usize,
    /// Largest logical packet accepted, in bytes.
    #[serde(default = "default_max_packet")]
    pub max_packet_bytes: usize,
    /// Version string announced to clients.
    #[serde(default = "default_mysql_version")]
    pub server_version: String,
    /// Most connections served at once; the next is refused in the
    /// protocol's own words.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a client has from connecting to finishing its handshake
    /// (TLS and sign-in); then the connection is closed.
    #[serde(default = "default_handshake_secs")]
    pub handshake_timeout_secs: u64,
}

fn default_mysql_listen() -> String {
    "127.0.0.1:13306".into()
}

impl MySqlListener {
    /// This listener's connection cap and handshake timeout.
    pub fn limits(&self) -> ListenerLimits {
        limits(self.max_connections, self.handshake_timeout_secs)
    }
}

fn default_max_packet() -> usize {
    gatehouse_mysql::codec::frame::DEFAULT_MAX_PACKET_LEN
}

fn default_mysql_version() -> String {
    gatehouse_mysql::session::DEFAULT_SERVER_VERSION.into()
}

impl Default for MySqlListener {
    fn default() -> Self {
        MySqlListener {
            listen: default_mysql_listen(),
            tls_cert: None,
            tls_key: None,
            allow_plaintext_loopback: false,
            require_subject_match: false,
            result_capture_rows: 0,
            max_packet_bytes: default_max_packet(),
            server_version: default_mysql_version(),
            max_connections: default_max_connections(),
            handshake_timeout_secs: default_handshake_secs(),
        }
    }
}

/// `[http]`: `https://gateway:PORT/<connection>/…` (or a connection's
/// host name), the caller's token as `Authorization: Bearer`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpListener {
    /// Address to listen on.
    #[serde(default = "default_http_listen")]
    pub listen: String,
    /// PEM certificate chain; defaults to the `[postgres]` one (or the
    /// self-signed pair made in `state_dir`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Largest request body accepted (bigger ones get 413).
    #[serde(default = "default_http_max_request")]
    pub max_request_bytes: usize,
    /// Largest JSON response masked whole (bigger ones are withheld with
    /// 502, never passed on unmasked).
    #[serde(default = "default_http_max_response")]
    pub max_response_bytes: usize,
    /// Seconds without requests after which an HTTP session ends.
    #[serde(default = "default_http_idle")]
    pub session_idle_secs: u64,
    /// Most connections served at once; the next is refused in the
    /// protocol's own words.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a client has from connecting to finishing its handshake
    /// (TLS; each request then has 30 s to send its headers); then the connection is closed.
    #[serde(default = "default_handshake_secs")]
    pub handshake_timeout_secs: u64,
}

fn default_http_listen() -> String {
    "127.0.0.1:8443".into()
}

impl HttpListener {
    /// This listener's connection cap and handshake timeout.
    pub fn limits(&self) -> ListenerLimits {
        limits(self.max_connections, self.handshake_timeout_secs)
    }
}

fn default_http_max_request() -> usize {
    8 * 1024 * 1024
}

fn default_http_max_response() -> usize {
    32 * 1024 * 1024
}

fn default_http_idle() -> u64 {
    900
}

impl Default for HttpListener {
    fn default() -> Self {
        HttpListener {
            listen: default_http_listen(),
            tls_cert: None,
            tls_key: None,
            max_request_bytes: default_http_max_request(),
            max_response_bytes: default_http_max_response(),
            session_idle_secs: default_http_idle(),
            max_connections: default_max_connections(),
            handshake_timeout_secs: default_handshake_secs(),
        }
    }
}

/// `[ssh]`: `ssh -p PORT CONNECTION@gateway`, the token as the password.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshListener {
    /// Address to listen on.
    #[serde(default = "default_ssh_listen")]
    pub listen: String,
    /// The gateway's Ed25519 host key (made in `state_dir` on first start).
    #[serde(default = "default_ssh_host_key")]
    pub host_key: PathBuf,
    /// Folder of asciicast recordings (in `state_dir` unless absolute).
    #[serde(default = "default_recordings")]
    pub recordings: PathBuf,
    /// Most connections served at once; the next is refused in the
    /// protocol's own words.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a client has from connecting to finishing its handshake
    /// (key exchange and sign-in, as sshd's LoginGraceTime); then the connection is closed.
    #[serde(default = "default_ssh_handshake_secs")]
    pub handshake_timeout_secs: u64,
}

fn default_ssh_listen() -> String {
    "127.0.0.1:2222".into()
}

impl SshListener {
    /// This listener's connection cap and handshake timeout.
    pub fn limits(&self) -> ListenerLimits {
        limits(self.max_connections, self.handshake_timeout_secs)
    }
}

fn default_ssh_host_key() -> PathBuf {
    PathBuf::from("ssh_host_ed25519_key")
}

/// Default recordings folder, inside `state_dir`.
pub fn default_recordings() -> PathBuf {
    PathBuf::from("recordings")
}

impl GatewayConfig {
    /// The folder SSH recordings are written to.
    pub fn recordings_dir(&self) -> PathBuf {
        let rel = self
            .ssh
            .as_ref()
            .map(|s| s.recordings.clone())
            .unwrap_or_else(default_recordings);
        self.state_path(&rel)
    }
}

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiListener {
    /// Address of the HTTPS API.
    #[serde(default = "default_api_listen")]
    pub listen: String,
    /// The address people and clients reach the API and console at
    /// (`https://gatehouse.bank.internal`), used in approval links; defaults
    /// to `https://` and the listen address.
    pub public_url: Option<String>,
}

fn default_api_listen() -> String {
    "127.0.0.1:15443".into()
}

impl Default for ApiListener {
    fn default() -> Self {
        ApiListener {
            listen: default_api_listen(),
            public_url: None,
        }
    }
}

/// `[identity]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySection {
    /// Run the local dev issuer. Unset, it runs only when no real issuer
    /// is configured (the embedded default, the demo); it never runs on
    /// an API listener that is not loopback: see [`Self::dev_issuer_on`].
    #[serde(default)]
    pub dev_issuer: Option<bool>,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds. Sessions end at
    /// the token's `exp` plus this, when it would stop being accepted.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Least time between two JWKS fetches for an unknown `kid`, in
    /// seconds, so forged kids cannot hammer the provider.
    #[serde(default = "default_refetch")]
    pub jwks_min_refetch_secs: u64,
    /// External OIDC providers.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// How failed sign-ins are limited and summed up.
    #[serde(default)]
    pub sign_in_failures: SignInFailures,
}

/// `[identity.sign_in_failures]`: bad tokens cannot grow the trail without
/// bound (see `gatehouse_core::signin`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignInFailures {
    /// Failures from one address per window before its attempts are
    /// refused unchecked until the window ends.
    pub per_address: u32,
    /// Failures naming one user per window before they are counted
    /// rather than recorded one by one.
    pub per_user: u32,
    /// Failures recorded one by one per window, overall.
    pub recorded_per_window: u32,
    /// The window, in seconds.
    pub window_secs: u64,
}

impl Default for SignInFailures {
    fn default() -> Self {
        let d = gatehouse_core::signin::Limits::default();
        SignInFailures {
            per_address: d.per_address,
            per_user: d.per_user,
            recorded_per_window: d.recorded_per_window,
            window_secs: d.window.as_secs(),
        }
    }
}

impl IdentitySection {
    /// Whether the dev issuer runs: as configured, else only when no real
    /// issuer is (a gateway wired to the bank's provider does not also
    /// trust a local key by accident).
    pub fn dev_issuer_on(&self) -> bool {
        self.dev_issuer.unwrap_or(self.issuers.is_empty())
    }
}

impl SignInFailures {
    /// Limits of 0 would refuse every sign-in: refused with the key.
    fn check(&self) -> Result<(), String> {
        for (key, v) in [
            ("per_address", self.per_address),
            ("per_user", self.per_user),
            ("recorded_per_window", self.recorded_per_window),
        ] {
            if v == 0 {
                return Err(format!(
                    "[identity.sign_in_failures] {key} = 0 would refuse or hide every failed sign-in; use 1 or more"
                ));
            }
        }
        Ok(())
    }

    /// As the limiter takes them (a window of at least a second).
    pub fn limits(&self) -> gatehouse_core::signin::Limits {
        gatehouse_core::signin::Limits {
            per_address: self.per_address,
            per_user: self.per_user,
            recorded_per_window: self.recorded_per_window,
            window: Duration::from_secs(self.window_secs.max(1)),
        }
    }
}

fn default_refetch() -> u64 {
    10
}

fn default_leeway() -> u64 {
    30
}

impl Default for IdentitySection {
    fn default() -> Self {
        IdentitySection {
            dev_issuer: None,
            leeway_secs: default_leeway(),
            jwks_min_refetch_secs: default_refetch(),
            issuers: Vec::new(),
            sign_in_failures: SignInFailures::default(),
        }
    }
}

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// SQLite file of the audit trail.
    #[serde(default = "default_audit_path")]
    pub path: PathBuf,
    /// Ed25519 key that signs checkpoints.
    #[serde(default = "default_signing_key")]
    pub signing_key: PathBuf,
    /// When a recorded command is on disk. `normal` (the default): in the
    /// journal before the command runs, so a gateway crash loses nothing,
    /// and fsync'd within `sync_window_ms`, the most a power loss can take.
    /// `full`: fsync'd before the command runs (sessions share each fsync).
    #[serde(default = "default_durability")]
    pub durability: String,
    /// In `normal` durability, the most milliseconds of the newest events a
    /// power loss can take (default 10).
    #[serde(default = "default_sync_window_ms")]
    pub sync_window_ms: u64,
    /// Sign a checkpoint after this many events.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// …or after this many seconds with new events.
    #[serde(default = "default_checkpoint_secs")]
    pub checkpoint_interval_secs: u64,
    /// Every signed checkpoint is also appended here (one JSON line each,
    /// created 0600): the external anchor `gatehouse audit verify` compares
    /// the store with, which exposes a store whose newest checkpoints and
    /// events were deleted. Put it on another volume or ship it to
    /// write-once storage; the default lives in the state folder.
    #[serde(default = "default_anchor_file")]
    pub anchor_file: PathBuf,
    /// How long events are kept, per kind (`default` for kinds not listed),
    /// e.g. `{ default = "400d", "command.result" = "90d" }`. Empty keeps
    /// everything. Applied by `gatehouse audit prune`.
    #[serde(default)]
    pub retention: std::collections::BTreeMap<String, String>,
    /// An investigator's age X25519 recipient (`age1…`): the original values
    /// behind masked cells of the captured sample rows are sealed to it in
    /// each result's event. The gateway cannot open them; `gatehouse reveal`
    /// with the investigator's identity can.
    #[serde(default)]
    pub seal_originals_to: Option<String>,
}

impl AuditSection {
    /// The checkpoint policy the configuration sets (what `audit verify`
    /// holds a trail to where the trail signs none of its own).
    pub fn checkpoint_policy(&self) -> gatehouse_audit::CheckpointPolicy {
        gatehouse_audit::CheckpointPolicy {
            every: self.checkpoint_every,
            interval: std::time::Duration::from_secs(self.checkpoint_interval_secs),
        }
    }

    /// The retention policy, with every duration parsed.
    pub fn retention_policy(&self) -> Result<gatehouse_audit::RetentionPolicy, String> {
        let mut policy = gatehouse_audit::RetentionPolicy::default();
        for (kind, text) in &self.retention {
            let d = gatehouse_core::duration::parse(text)
                .map_err(|e| format!("[audit.retention] {kind}: {e}"))?;
            if kind == "default" {
                policy.default = Some(d);
            } else {
                policy.by_kind.insert(kind.clone(), d);
            }
        }
        Ok(policy)
    }
}

fn default_audit_path() -> PathBuf {
    PathBuf::from("audit.db")
}
fn default_signing_key() -> PathBuf {
    PathBuf::from("audit-signing.key")
}
fn default_durability() -> String {
    "normal".into()
}
fn default_sync_window_ms() -> u64 {
    10
}
fn default_checkpoint_every() -> u64 {
    1000
}
fn default_checkpoint_secs() -> u64 {
    60
}
fn default_anchor_file() -> PathBuf {
    PathBuf::from("audit-anchor.jsonl")
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            path: default_audit_path(),
            signing_key: default_signing_key(),
            durability: default_durability(),
            sync_window_ms: default_sync_window_ms(),
            checkpoint_every: default_checkpoint_every(),
            checkpoint_interval_secs: default_checkpoint_secs(),
            anchor_file: default_anchor_file(),
            retention: std::collections::BTreeMap::new(),
            seal_originals_to: None,
        }
    }
}

/// `[approvals]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsSection {
    /// SQLite file of requests and grants.
    #[serde(default = "default_approvals_path")]
    pub path: PathBuf,
}

fn default_approvals_path() -> PathBuf {
    PathBuf::from("approvals.db")
}

impl Default for ApprovalsSection {
    fn default() -> Self {
        ApprovalsSection {
            path: default_approvals_path(),
        }
    }
}

/// A configuration problem, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax or an unknown/mistyped key.
    #[error("configuration {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
}

impl GatewayConfig {
    /// Load a configuration file.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&source, &base).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parse configuration text; `base_dir` anchors relative paths.
    pub fn parse(source: &str, base_dir: &Path) -> Result<GatewayConfig, String> {
        let mut cfg: GatewayConfig = toml::from_str(source).map_err(|e| e.to_string())?;
        cfg.identity.sign_in_failures.check()?;
        cfg.base_dir = base_dir.to_path_buf();
        cfg.source = source.to_string();
        Ok(cfg)
    }

    /// The built-in defaults (no file): state in `./.gatehouse`, dev issuer on.
    pub fn defaults() -> GatewayConfig {
        let mut cfg = Self::parse("", Path::new(".")).unwrap_or_else(|_| unreachable!());
        cfg.base_dir = PathBuf::from(".");
        cfg
    }

    /// Resolve the file to use: `--config`, then `$GATEHOUSE_CONFIG`, then
    /// `./gatehouse.toml`, then the built-in defaults.
    pub fn resolve(flag: Option<&Path>) -> Result<GatewayConfig, ConfigError> {
        if let Some(p) = flag {
            return Self::load(p);
        }
        if let Some(p) = std::env::var_os("GATEHOUSE_CONFIG") {
            return Self::load(Path::new(&p));
        }
        let local = Path::new("gatehouse.toml");
        if local.exists() {
            return Self::load(local);
        }
        Ok(Self::defaults())
    }

    /// The state folder, resolved.
    pub fn state_dir(&self) -> PathBuf {
        // Drop `.` segments so paths shown to people read cleanly.
        self.base_dir
            .join(&self.state_dir)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect()
    }

    /// A path from the file, resolved against the state folder.
    pub fn state_path(&self, p: &Path) -> PathBuf {
        self.state_dir().join(p)
    }

    /// The dev issuer's URL, served by the API listener.
    pub fn dev_issuer_url(&self) -> String {
        format!("https://{}/dev", self.api.listen)
    }

    /// The policy part, for compiling; relative `password_file`s are
    /// resolved against the file's folder.
    pub fn policy(&self) -> PolicyConfig {
        let connections = self
            .connections
            .iter()
            .cloned()
            .map(|mut c| {
                if let Some(p) = &c.password_file {
                    c.password_file = Some(self.base_dir.join(p));
                }
                c
            })
            .collect();
        PolicyConfig {
            connections,
            rules: self.rules.clone(),
            masking: self.masking.clone(),
            unparseable: self.unparseable,
            default_read_effect: self.default_read_effect,
            default_write_effect: self.default_write_effect,
        }
    }

    /// Column rules, for display.
    pub fn column_rules(&self) -> &[ColumnRuleConfig] {
        &self.masking.columns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_with_a_line() {
        let err = GatewayConfig::parse("[postgres]\nlisten = \"x\"\nlisen = 1\n", Path::new("."))
            .unwrap_err();
        assert!(err.contains("lisen"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn the_documented_example_and_the_demo_policy_compile() {
        let example = include_str!("../../../gatehouse.example.toml");
        let cfg = GatewayConfig::parse(example, Path::new(".")).unwrap();
        crate::gateway::compile_policy(&cfg).unwrap();
        let demo = crate::demo::demo_config(5432, Path::new("/nonexistent/pw"));
        let cfg = GatewayConfig::parse(&demo, Path::new(".")).unwrap();
        crate::gateway::compile_policy(&cfg).unwrap();
        assert!(cfg.mysql.is_none());
        let with_llm =
            demo.clone() + &crate::demo::llm_demo_config(8000, Path::new("/nonexistent/key"));
        let cfg = GatewayConfig::parse(&with_llm, Path::new(".")).unwrap();
        crate::gateway::compile_policy(&cfg).unwrap();
        assert_eq!(cfg.http.unwrap().listen, "127.0.0.1:18443");
        let with_mysql =
            demo.clone() + &crate::demo::demo_mysql_config(3306, Path::new("/nonexistent/pw"));
        let cfg = GatewayConfig::parse(&with_mysql, Path::new(".")).unwrap();
        crate::gateway::compile_policy(&cfg).unwrap();
        assert_eq!(cfg.mysql.unwrap().listen, "127.0.0.1:13306");
        assert_eq!(cfg.connections.len(), 2);
        let with_ssh = demo
            + &crate::demo::ssh_demo_config(
                2022,
                "gatehouse-demo",
                Path::new("/nonexistent/ssh.pw"),
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHFu7OHd1PCfJ3Zm4mBJr5E5q8ldYMbz7N0j1bmr0kz1",
            );
        let cfg = GatewayConfig::parse(&with_ssh, Path::new(".")).unwrap();
        assert_eq!(cfg.ssh.as_ref().unwrap().listen, "127.0.0.1:2222");
        let policy = crate::gateway::compile_policy(&cfg).unwrap();
        assert!(policy.connection("bank-host").is_some());
        // The demo's SQL writers rule does not decide for the SSH host:
        // dana's recursive delete is blocked and her sudo is held.
        use gatehouse_core::classify::shell::{classify, ShellKind};
        use gatehouse_core::Verdict;
        let dana = gatehouse_core::Identity {
            subject: "dana".into(),
            email: None,
            groups: vec!["dba".into()],
            issuer: "https://127.0.0.1:15443/dev".into(),
            token_id: None,
            expires_at: 0,
        };
        let decide = |cmd: &str| {
            policy.decide_shell(&dana, "bank-host", cmd, &classify(cmd, ShellKind::Exec))
        };
        assert!(
            matches!(decide("rm -rf /tmp/x"), Verdict::Block { ref rule, .. } if rule == "no-rm-rf"),
            "{:?}",
            decide("rm -rf /tmp/x")
        );
        assert!(
            matches!(decide("sudo -n true"), Verdict::Hold { .. }),
            "{:?}",
            decide("sudo -n true")
        );
        assert!(
            matches!(decide("uptime"), Verdict::Allow { .. }),
            "{:?}",
            decide("uptime")
        );
    }

    #[test]
    fn the_dev_issuer_stays_off_once_a_real_issuer_is_configured() {
        let with_idp = "[[identity.issuers]]\nissuer = \"https://login.bank.example\"\naudiences = [\"gatehouse\"]\n";
        let c = GatewayConfig::parse(with_idp, Path::new(".")).unwrap();
        assert!(!c.identity.dev_issuer_on(), "a real issuer turns it off");
        let both = format!("[identity]\ndev_issuer = true\n{with_idp}");
        let c = GatewayConfig::parse(&both, Path::new(".")).unwrap();
        assert!(c.identity.dev_issuer_on(), "unless it is asked for");
        let c = GatewayConfig::parse("[identity]\ndev_issuer = false\n", Path::new(".")).unwrap();
        assert!(!c.identity.dev_issuer_on());
        let zero = "[identity.sign_in_failures]\nper_address = 0\n";
        let e = GatewayConfig::parse(zero, Path::new(".")).unwrap_err();
        assert!(e.contains("per_address = 0"), "{e}");
    }

    #[test]
    fn defaults_are_usable() {
        let c = GatewayConfig::defaults();
        assert_eq!(c.postgres.listen, "127.0.0.1:15432");
        assert!(c.identity.dev_issuer_on());
        assert_eq!(c.dev_issuer_url(), "https://127.0.0.1:15443/dev");
    }
}
