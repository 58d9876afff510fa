//! Connections: the named targets the gateway reaches with its own credentials.

use serde::Deserialize;
use std::path::PathBuf;

/// Which adapter serves a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKind {
    /// PostgreSQL wire protocol.
    Postgres,
    /// MySQL/MariaDB wire protocol.
    Mysql,
    /// SSH: the gateway terminates the client's SSH and re-originates its own.
    Ssh,
    /// An HTTP(S) JSON or function-calling API.
    Http,
    /// An OpenAI-compatible LLM endpoint (`/v1/chat/completions`, …).
    Openai,
    /// A Kubernetes API server, for `kubectl`.
    Kubernetes,
}

impl ConnectionKind {
    /// Whether the HTTP adapter serves this connection.
    pub fn is_http(&self) -> bool {
        matches!(
            self,
            ConnectionKind::Http | ConnectionKind::Openai | ConnectionKind::Kubernetes
        )
    }
}

/// Whether the gateway uses TLS to reach the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetTls {
    /// Plain TCP (loopback or a trusted network segment).
    #[default]
    Disable,
    /// TLS, with the target's certificate verified against the system roots
    /// or `ca_file`, and its name against `host` (`"verify-full"` is the
    /// same: the gateway never uses TLS without verifying).
    #[serde(alias = "verify-full")]
    Require,
}

/// A named target, as written in the configuration file.
///
/// The secret is referenced (`password_env`, `password_file`), never written
/// inline, so the file can be reviewed and versioned without leaking it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// The name clients use (the PostgreSQL database name in the startup packet).
    pub name: String,
    /// Which protocol.
    #[serde(rename = "type")]
    pub kind: ConnectionKind,
    /// Target host.
    pub host: String,
    /// Target port.
    pub port: u16,
    /// Database on the target (defaults to the connection name).
    pub database: Option<String>,
    /// The role the gateway logs in as (not used by HTTP connections).
    #[serde(default)]
    pub user: String,
    /// Environment variable holding the target password.
    pub password_env: Option<String>,
    /// File holding the target password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// TLS to the target.
    #[serde(default)]
    pub tls: TargetTls,
    /// CA bundle for verifying the target when `tls = "require"`.
    pub ca_file: Option<PathBuf>,
    /// Groups whose members may open sessions on this connection.
    #[serde(default)]
    pub allow_groups: Vec<String>,
    /// Groups whose members may approve time-bound access for anyone else
    /// (`gatehouse access request`); empty means no such requests.
    #[serde(default)]
    pub access_approvers: Vec<String>,
    /// Distinct approvals an access request needs (default 1).
    pub access_approvals: Option<u32>,
    /// Longest access a request may ask for (`"8h"`, the default).
    pub max_access: Option<String>,
    /// The groups a time-bound access grant may act as on this connection
    /// (`gatehouse access request … --as GROUP`; the first is the default):
    /// a grant gives their rules, never the holder's own groups'. Empty:
    /// a grant acts with no group, so only rules that name no group and the
    /// policy's defaults apply to its holder.
    #[serde(default)]
    pub access_as: Vec<String>,
    /// SSH: the target's host key, as in `known_hosts` without the host
    /// (`"ssh-ed25519 AAAA…"`). A target presenting another key is refused.
    pub host_key: Option<String>,
    /// SSH: a `known_hosts` file holding the target's host key (instead of
    /// `host_key`); entries for `host` or `[host]:port` are accepted.
    pub known_hosts: Option<PathBuf>,
    /// SSH: private key file (OpenSSH format) the gateway logs in with;
    /// otherwise the password from `password_env`/`password_file`.
    pub key_file: Option<PathBuf>,
    /// SSH: allow local/remote port forwarding on this connection (off by default).
    #[serde(default)]
    pub allow_port_forwarding: bool,
    /// SSH: apply the content detectors to what reaches the user too:
    /// terminal output and downloads (SFTP reads, `scp -f`), whose binary
    /// files are then refused unless a `kinds = ["binary"]` rule allows
    /// them (recordings are always masked).
    #[serde(default)]
    pub mask_terminal: bool,
    /// SQL: run the content detectors on numeric, date/time, UUID,
    /// interval and network-address values too (a card number kept in a
    /// `bigint`, say). Off by default: values of those types are masked by
    /// column rules, not guessed at, so an epoch second or an amount that
    /// happens to look like an SSN is not turned into NULL.
    #[serde(default)]
    pub detect_typed_values: bool,
    /// HTTP: host names (the `Host` header) that reach this connection.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// HTTP: the path prefix that reaches this connection on the gateway's
    /// HTTPS listener (default `/<name>`); it is removed before forwarding.
    pub path_prefix: Option<String>,
    /// HTTP: a path prefix added in front of every forwarded path
    /// (an upstream that lives below `/api`, say).
    pub base_path: Option<String>,
    /// HTTP: how the gateway presents its credential upstream:
    /// `"bearer"` (the default when a secret is configured),
    /// `"header:X-Api-Key"`, or `"none"`.
    pub upstream_auth: Option<String>,
    /// HTTP and PostgreSQL (`tls = "require"`): client certificate (PEM)
    /// the gateway presents to the target.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
    /// LLM: mask detector findings in prompts before they reach the model.
    #[serde(default)]
    pub mask_prompts: bool,
    /// Kubernetes: ask the API server to act as the caller
    /// (`Impersonate-User`/`Impersonate-Group`), so its own RBAC applies
    /// to each person on top of the gateway's rules.
    #[serde(default)]
    pub impersonate: bool,
}

/// Longest access grant when a connection does not say.
pub const DEFAULT_MAX_ACCESS: std::time::Duration = std::time::Duration::from_secs(8 * 3600);

/// How long an access request waits for approvers.
pub const ACCESS_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

impl ConnectionConfig {
    /// Who must approve access requests for this connection and the
    /// longest grant, or `None` when the connection takes no requests.
    pub fn access_policy(
        &self,
    ) -> Result<Option<(crate::approval::Requirement, std::time::Duration)>, String> {
        if self.access_approvers.is_empty() {
            return Ok(None);
        }
        let count = self.access_approvals.unwrap_or(1);
        if count == 0 {
            return Err(format!(
                "connection \"{}\": access_approvals must be at least 1",
                self.name
            ));
        }
        let max = match &self.max_access {
            Some(t) => crate::duration::parse(t)
                .map_err(|e| format!("connection \"{}\": max_access: {e}", self.name))?,
            None => DEFAULT_MAX_ACCESS,
        };
        Ok(Some((
            crate::approval::Requirement {
                any_of: self.access_approvers.clone(),
                count,
                each_of: Vec::new(),
                timeout_secs: ACCESS_REQUEST_TIMEOUT.as_secs(),
            },
            max,
        )))
    }
}

impl std::fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately omits nothing secret (no secret is stored here) but
        // keeps the output short for logs.
        f.debug_struct("ConnectionConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database_name())
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A target password, resolved from its reference at use.
///
/// Debug and Display never print the secret, so it cannot end up in a log
/// line or an error message by accident.
#[derive(Clone)]
pub struct Credential(String);

impl Credential {
    /// Wrap a secret.
    pub fn new(secret: String) -> Credential {
        Credential(secret)
    }

    /// The secret, for the one place that sends it to the target.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(<hidden>)")
    }
}

impl ConnectionConfig {
    /// The database name on the target.
    pub fn database_name(&self) -> &str {
        self.database.as_deref().unwrap_or(&self.name)
    }

    /// Read the target password from its reference; `Ok(None)` when none is
    /// configured (the target trusts the gateway). Read at each login so a
    /// rotated secret takes effect without a restart.
    pub fn credential(&self) -> Result<Option<Credential>, String> {
        if let Some(var) = &self.password_env {
            return match std::env::var(var) {
                Ok(v) => Ok(Some(Credential(v))),
                Err(_) => Err(format!(
                    "connection \"{}\": environment variable {var} (password_env) is not set",
                    self.name
                )),
            };
        }
        if let Some(path) = &self.password_file {
            return match std::fs::read_to_string(path) {
                Ok(v) => Ok(Some(Credential(
                    v.trim_end_matches(['\r', '\n']).to_string(),
                ))),
                Err(e) => Err(format!(
                    "connection \"{}\": cannot read password_file {}: {e}",
                    self.name,
                    path.display()
                )),
            };
        }
        Ok(None)
    }
}
