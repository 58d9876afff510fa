//! A throwaway PostgreSQL cluster for `gatehouse demo`, the integration
//! tests and the benchmarks.
//!
//! It uses the system's server binaries, listens on 127.0.0.1 only, and
//! lives in a temporary folder that is removed when the cluster stops, so
//! nothing is left behind and nothing is reachable from other machines.
//! PostgreSQL refuses to run as root, so when we are root every server
//! command runs as the `postgres` user through `runuser`.

use crate::free_port;
use anyhow::{anyhow, bail, Context, Result};
use rand::distributions::{Alphanumeric, DistString};
use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The only address the cluster listens on.
const HOST: &str = "127.0.0.1";
/// The database superuser that `initdb` creates.
const SUPERUSER: &str = "postgres";
/// The operating-system account that runs the server when we are root
/// (Debian's postgresql packages create it).
const SERVER_OS_USER: &str = "postgres";
/// How long `pg_ctl -w` waits for the server to accept connections.
const START_WAIT_SECS: u64 = 60;
/// How long `pg_ctl -w` waits for the server to shut down.
const STOP_WAIT_SECS: u64 = 30;
/// How many free ports to try when another process grabs the one we picked.
const PORT_ATTEMPTS: usize = 3;
const INITDB_TIMEOUT: Duration = Duration::from_secs(180);
const PSQL_TIMEOUT: Duration = Duration::from_secs(600);
/// Settings this module owns: overriding them could expose the cluster.
const RESERVED_SETTINGS: [&str; 3] = ["listen_addresses", "port", "unix_socket_directories"];
const NOT_FOUND: &str = "PostgreSQL server binaries not found; install them with `apt-get install postgresql` (Debian/Ubuntu) or set GATEHOUSE_PG_BIN";

/// How clients must prove who they are; the gateway speaks each of these
/// to its targets, so the tests need a cluster for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PgAuth {
    /// SCRAM-SHA-256 for every login (PostgreSQL's modern default).
    #[default]
    Scram,
    /// Legacy MD5 challenge-response; roles' passwords are stored as MD5.
    Md5,
    /// No password at all: any role may log in.
    Trust,
}

impl PgAuth {
    fn hba_method(self) -> &'static str {
        match self {
            PgAuth::Scram => "scram-sha-256",
            PgAuth::Md5 => "md5",
            PgAuth::Trust => "trust",
        }
    }

    /// MD5 logins only happen when the stored password is an MD5 hash.
    fn password_encryption(self) -> &'static str {
        match self {
            PgAuth::Md5 => "md5",
            PgAuth::Scram | PgAuth::Trust => "scram-sha-256",
        }
    }
}

/// What to start; the defaults suit the demo (SCRAM, a random superuser
/// password, a free port, room for a benchmark's connections).
#[derive(Clone)]
pub struct PgClusterOptions {
    /// `None` picks a free port on 127.0.0.1.
    pub port: Option<u16>,
    /// The `postgres` superuser's password (may be empty only with `Trust`).
    pub superuser_password: String,
    /// How every login (including the superuser's) is authenticated.
    pub auth: PgAuth,
    /// Room for benchmarks' client pools plus the gateway's own pool.
    pub max_connections: u32,
    /// Extra `postgresql.conf` settings, e.g. `("work_mem", "8MB")`.
    pub extra_conf: Vec<(String, String)>,
    /// Serve TLS (`ssl = on`) with this certificate and key (PEM).
    pub tls: Option<ServerTls>,
}

/// A server certificate and its key, PEM.
#[derive(Clone)]
pub struct ServerTls {
    /// The certificate (chain).
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

impl Default for PgClusterOptions {
    fn default() -> Self {
        PgClusterOptions {
            port: None,
            superuser_password: Alphanumeric.sample_string(&mut rand::thread_rng(), 24),
            auth: PgAuth::Scram,
            max_connections: 200,
            extra_conf: Vec::new(),
            tls: None,
        }
    }
}

impl fmt::Debug for PgClusterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgClusterOptions")
            .field("port", &self.port)
            .field("superuser_password", &"<redacted>")
            .field("auth", &self.auth)
            .field("max_connections", &self.max_connections)
            .field("extra_conf", &self.extra_conf)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// A running throwaway cluster. Dropping it stops the server and removes
/// its folder (best effort: failures are logged, never panicked on).
pub struct PgCluster {
    bin_dir: PathBuf,
    /// `None` once stopped and removed.
    root: Option<tempfile::TempDir>,
    root_path: PathBuf,
    data_dir: PathBuf,
    log_file: PathBuf,
    port: u16,
    superuser_password: String,
    auth: PgAuth,
    run_as: RunAs,
    running: bool,
}

impl fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgCluster")
            .field("dir", &self.root_path)
            .field("port", &self.port)
            .field("auth", &self.auth)
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl PgCluster {
    /// The folder holding `initdb`, `pg_ctl` and `postgres`, so users with
    /// PostgreSQL installed need no configuration: `$GATEHOUSE_PG_BIN`, else
    /// the newest `/usr/lib/postgresql/*/bin`, else `pg_config --bindir`,
    /// else the `PATH`.
    pub fn find_binaries() -> Result<PathBuf> {
        if let Some(dir) = std::env::var_os("GATEHOUSE_PG_BIN").filter(|v| !v.is_empty()) {
            let dir = PathBuf::from(dir);
            if has_server_binaries(&dir) {
                return Ok(dir);
            }
            bail!(
                "GATEHOUSE_PG_BIN={} does not hold initdb, pg_ctl and postgres; point it at PostgreSQL's bin folder (e.g. /usr/lib/postgresql/15/bin)",
                dir.display()
            );
        }
        newest_versioned_bin(Path::new("/usr/lib/postgresql"))
            .or_else(pg_config_bindir)
            .or_else(bin_dir_on_path)
            .ok_or_else(|| anyhow!(NOT_FOUND))
    }

    /// Create and start a new cluster. Blocking (async callers use
    /// `spawn_blocking`); on failure the error carries the server log's
    /// tail and everything created so far is removed.
    pub fn start(opts: PgClusterOptions) -> Result<PgCluster> {
        validate_options(&opts)?;
        let bin_dir = Self::find_binaries()?;
        let run_as = RunAs::detect()?;
        // The server user must reach the folder, and cannot read root's TMPDIR.
        let parent = match run_as {
            RunAs::CurrentUser => std::env::temp_dir(),
            RunAs::OsUser(_) => PathBuf::from("/tmp"),
        };
        let root = tempfile::Builder::new()
            .prefix("gatehouse-pg-")
            .tempdir_in(&parent)
            .with_context(|| {
                format!("creating a folder for the cluster in {}", parent.display())
            })?;
        let root_path = root.path().to_path_buf();
        let mut cluster = PgCluster {
            bin_dir,
            data_dir: root_path.join("data"),
            log_file: root_path.join("server.log"),
            root: Some(root),
            root_path,
            port: 0,
            superuser_password: opts.superuser_password.clone(),
            auth: opts.auth,
            run_as,
            running: false,
        };
        // From here on, dropping `cluster` cleans up whatever was made.
        cluster.init(&opts)?;
        cluster.launch(&opts)?;
        tracing::debug!(port = cluster.port, dir = %cluster.root_path.display(), "throwaway PostgreSQL started");
        Ok(cluster)
    }

    /// The TCP port the server listens on (always on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the server listens on.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The `postgres` superuser's password, for setup connections.
    pub fn superuser_password(&self) -> &str {
        &self.superuser_password
    }

    /// The folder holding the data directory, socket and log; gone once stopped.
    pub fn dir(&self) -> &Path {
        &self.root_path
    }

    /// Run a setup script as the superuser over TCP and return psql's
    /// standard output (aligned format). Stops at the first error, which
    /// is returned with psql's message.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        self.psql_redacting(db, sql, &[])
    }

    /// Create a database owned by `owner` (its own call: CREATE DATABASE
    /// cannot run inside a transaction).
    pub fn create_database(&self, name: &str, owner: &str) -> Result<()> {
        let sql = format!(
            "CREATE DATABASE {} OWNER {};",
            quote_ident(name),
            quote_ident(owner)
        );
        self.psql("postgres", &sql)
            .with_context(|| format!("creating database {name}"))?;
        Ok(())
    }

    /// Create a login role whose password is stored the way the cluster's
    /// auth method needs (an MD5 hash for `Md5`, a SCRAM verifier otherwise).
    pub fn create_role(&self, name: &str, password: &str, superuser: bool) -> Result<()> {
        let sql = format!(
            "SET password_encryption = '{}';\nCREATE ROLE {} LOGIN {} PASSWORD {};",
            self.auth.password_encryption(),
            quote_ident(name),
            if superuser {
                "SUPERUSER"
            } else {
                "NOSUPERUSER"
            },
            quote_literal(password),
        );
        self.psql_redacting("postgres", &sql, &[password])
            .with_context(|| format!("creating role {name}"))?;
        Ok(())
    }

    /// Stop the server and remove the folder. Idempotent and best effort:
    /// problems are logged, because callers are shutting down anyway.
    pub fn stop(&mut self) {
        if self.running {
            self.running = false;
            if let Err(e) = self.pg_ctl_stop("fast") {
                tracing::warn!(error = %e, "fast shutdown of the throwaway PostgreSQL failed; trying immediate");
                if let Err(e) = self.pg_ctl_stop("immediate") {
                    tracing::warn!(error = %e, "immediate shutdown failed; killing the postmaster");
                    self.kill_postmaster();
                }
            }
        }
        if let Some(root) = self.root.take() {
            if let Err(e) = root.close() {
                tracing::warn!(error = %e, dir = %self.root_path.display(), "could not remove the throwaway cluster's folder");
            }
        }
    }

    /// The last `lines` lines of the server log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        match std::fs::read(&self.log_file) {
            Ok(bytes) => last_lines(&String::from_utf8_lossy(&bytes), lines),
            Err(e) => format!("(no server log at {}: {e})", self.log_file.display()),
        }
    }

    /// Stop the cluster and remove its folder once process `pid` exits,
    /// for clusters kept in statics (which are never dropped) or processes
    /// that die without unwinding. Runs a small detached watcher; failures
    /// to start it are logged.
    pub fn stop_when_process_exits(&self, pid: u32) {
        const SCRIPT: &str = r#"
pid=$1 data=$2 root=$3 pgctl=$4 user=$5
while kill -0 "$pid" 2>/dev/null; do sleep 1; done
cd "$root" 2>/dev/null || exit 0
if [ -f "$data/postmaster.pid" ]; then
  if [ -n "$user" ]; then
    runuser -u "$user" -- "$pgctl" stop -D "$data" -m fast -w -t 30 || runuser -u "$user" -- "$pgctl" stop -D "$data" -m immediate
  else
    "$pgctl" stop -D "$data" -m fast -w -t 30 || "$pgctl" stop -D "$data" -m immediate
  fi
fi
cd / && rm -rf "$root"
"#;
        let user = match &self.run_as {
            RunAs::CurrentUser => String::new(),
            RunAs::OsUser(u) => u.clone(),
        };
        let args: Vec<OsString> = vec![
            pid.to_string().into(),
            self.data_dir.clone().into(),
            self.root_path.clone().into(),
            self.bin_dir.join("pg_ctl").into(),
            user.into(),
        ];
        crate::watcher::spawn("PostgreSQL cluster", SCRIPT, args);
    }

    fn init(&self, opts: &PgClusterOptions) -> Result<()> {
        self.run_as.hand_over(&self.root_path)?;
        let pwfile = self.root_path.join("superuser.pw");
        let has_password = !opts.superuser_password.is_empty();
        if has_password {
            write_private(&pwfile, opts.superuser_password.as_bytes())?;
            self.run_as.hand_over(&pwfile)?;
        }
        let result = self.run_initdb(has_password.then_some(pwfile.as_path()));
        if has_password {
            let _ = std::fs::remove_file(&pwfile);
        }
        result?;
        // Our settings live in their own file so a retry can rewrite them.
        let main_conf = self.data_dir.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&main_conf)
            .with_context(|| format!("opening {}", main_conf.display()))?;
        file.write_all(b"\n# Added by gatehouse (throwaway cluster).\ninclude 'gatehouse.conf'\n")
            .with_context(|| format!("writing {}", main_conf.display()))?;
        Ok(())
    }

    /// `initdb`, with C.UTF-8 when the system has it and plain C otherwise.
    fn run_initdb(&self, pwfile: Option<&Path>) -> Result<()> {
        let mut failures = Vec::new();
        for locale in ["C.UTF-8", "C"] {
            let mut cmd = self.server_command("initdb");
            cmd.arg("-D")
                .arg(&self.data_dir)
                .args(["-U", SUPERUSER, "-E", "UTF8", "--no-sync"])
                .arg(format!("--auth={}", self.auth.hba_method()))
                .arg(format!("--locale={locale}"));
            if let Some(pwfile) = pwfile {
                let mut arg = OsString::from("--pwfile=");
                arg.push(pwfile);
                cmd.arg(arg);
            }
            let out = run_bounded(cmd, "initdb", None, INITDB_TIMEOUT)?;
            if out.status.success() {
                return Ok(());
            }
            failures.push(format!(
                "with locale {locale}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
        bail!("initdb failed {}", failures.join("; "))
    }

    fn write_conf(&self, port: u16, opts: &PgClusterOptions) -> Result<()> {
        let socket_dir = self.root_path.to_string_lossy().into_owned();
        let mut settings: Vec<(&str, String)> = vec![
            ("listen_addresses", HOST.to_string()),
            ("port", port.to_string()),
            ("unix_socket_directories", socket_dir),
            ("max_connections", opts.max_connections.to_string()),
            // A throwaway cluster: durability buys nothing.
            ("fsync", "off".to_string()),
            ("synchronous_commit", "off".to_string()),
            ("full_page_writes", "off".to_string()),
            (
                "password_encryption",
                self.auth.password_encryption().to_string(),
            ),
        ];
        if let Some(tls) = &opts.tls {
            // In the data folder, the server user's, the key 0600 (the
            // server refuses a key others can read).
            let cert = self.data_dir.join("server.crt");
            let key = self.data_dir.join("server.key");
            std::fs::write(&cert, &tls.cert_pem)
                .with_context(|| format!("writing {}", cert.display()))?;
            write_private(&key, tls.key_pem.as_bytes())?;
            self.run_as.hand_over(&cert)?;
            self.run_as.hand_over(&key)?;
            settings.extend([
                ("ssl", "on".to_string()),
                ("ssl_cert_file", "server.crt".to_string()),
                ("ssl_key_file", "server.key".to_string()),
            ]);
        }
        settings.extend(opts.extra_conf.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let mut text = String::from("# Written by gatehouse for a throwaway cluster.\n");
        for (key, value) in settings {
            text.push_str(&format!("{key} = {}\n", conf_value(&value)?));
        }
        let path = self.data_dir.join("gatehouse.conf");
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        self.run_as.hand_over(&path)
    }

    /// Start the server, retrying on another free port if ours was taken
    /// between picking it and the server binding it.
    fn launch(&mut self, opts: &PgClusterOptions) -> Result<()> {
        for attempt in 1..=PORT_ATTEMPTS {
            let port = match opts.port {
                Some(p) => p,
                None => free_port()?,
            };
            self.port = port;
            self.write_conf(port, opts)?;
            let log_before = std::fs::metadata(&self.log_file)
                .map(|m| m.len())
                .unwrap_or(0);
            let mut cmd = self.server_command("pg_ctl");
            cmd.arg("start")
                .arg("-D")
                .arg(&self.data_dir)
                .arg("-l")
                .arg(&self.log_file)
                .args(["-w", "-t", &START_WAIT_SECS.to_string()]);
            let out = run_bounded(
                cmd,
                "pg_ctl start",
                None,
                Duration::from_secs(START_WAIT_SECS + 30),
            )?;
            if out.status.success() {
                self.running = true;
                return Ok(());
            }
            // pg_ctl may give up while the postmaster lingers: make sure it is gone.
            if self.data_dir.join("postmaster.pid").exists()
                && self.pg_ctl_stop("immediate").is_err()
            {
                self.kill_postmaster();
            }
            let new_log = self.log_since(log_before);
            let port_taken =
                new_log.contains("could not bind") || new_log.contains("Address already in use");
            if port_taken && opts.port.is_none() && attempt < PORT_ATTEMPTS {
                tracing::debug!(
                    port,
                    "port taken before PostgreSQL bound it; trying another"
                );
                continue;
            }
            bail!(
                "PostgreSQL did not start on {HOST}:{port}: {}\n--- server log (last lines) ---\n{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log_tail(20)
            );
        }
        bail!("PostgreSQL could not bind a free port after {PORT_ATTEMPTS} attempts")
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<()> {
        let mut cmd = self.server_command("pg_ctl");
        cmd.arg("stop").arg("-D").arg(&self.data_dir).args([
            "-m",
            mode,
            "-w",
            "-t",
            &STOP_WAIT_SECS.to_string(),
        ]);
        let out = run_bounded(
            cmd,
            "pg_ctl stop",
            None,
            Duration::from_secs(STOP_WAIT_SECS + 30),
        )?;
        if !out.status.success() {
            bail!(
                "pg_ctl stop -m {mode}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Last resort when pg_ctl cannot stop the server.
    fn kill_postmaster(&self) {
        let pid_file = self.data_dir.join("postmaster.pid");
        let pid = std::fs::read_to_string(&pid_file).ok().and_then(|text| {
            text.lines()
                .next()
                .and_then(|l| l.trim().parse::<u32>().ok())
        });
        if let Some(pid) = pid {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    fn log_since(&self, offset: u64) -> String {
        let bytes = std::fs::read(&self.log_file).unwrap_or_default();
        let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    fn server_command(&self, program: &str) -> Command {
        self.run_as
            .command(&self.bin_dir.join(program), &self.root_path)
    }

    /// `psql`, with `secrets` replaced in any error text it returns.
    fn psql_redacting(&self, db: &str, sql: &str, secrets: &[&str]) -> Result<String> {
        let mut cmd = Command::new(psql_binary(&self.bin_dir));
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .env("PGHOST", HOST)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", SUPERUSER)
            .env("PGDATABASE", db)
            .env("PGPASSWORD", &self.superuser_password)
            .env("PGSSLMODE", "disable")
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGAPPNAME", "gatehouse-pgcluster")
            .env_remove("PGSERVICE")
            .env_remove("PGSERVICEFILE")
            .env_remove("PGOPTIONS");
        let out = run_bounded(cmd, "psql", Some(sql.as_bytes()), PSQL_TIMEOUT)?;
        if !out.status.success() {
            let mut message = String::from_utf8_lossy(&out.stderr).trim().to_string();
            for secret in secrets.iter().filter(|s| !s.is_empty()) {
                message = message.replace(secret, "<redacted>");
            }
            bail!(
                "psql on database {db} (port {}) failed: {message}",
                self.port
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Which operating-system user runs the server commands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RunAs {
    CurrentUser,
    /// We are root; PostgreSQL refuses that, so it runs as this user.
    OsUser(String),
}

impl RunAs {
    fn detect() -> Result<RunAs> {
        if !running_as_root() {
            return Ok(RunAs::CurrentUser);
        }
        let exists = Command::new("id")
            .arg("-u")
            .arg(SERVER_OS_USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !exists {
            bail!(
                "PostgreSQL refuses to run as root and there is no `{SERVER_OS_USER}` user to run it as; \
                 install the postgresql package (it creates that user) or run gatehouse as an unprivileged user"
            );
        }
        Ok(RunAs::OsUser(SERVER_OS_USER.to_string()))
    }

    /// A command for `program`, run as this user from `cwd` (the server
    /// user cannot use root's home as its working directory).
    fn command(&self, program: &Path, cwd: &Path) -> Command {
        let mut cmd = match self {
            RunAs::CurrentUser => Command::new(program),
            RunAs::OsUser(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
        };
        cmd.current_dir(cwd);
        cmd
    }

    /// Give `path` (recursively) to the server user.
    fn hand_over(&self, path: &Path) -> Result<()> {
        let RunAs::OsUser(user) = self else {
            return Ok(());
        };
        let mut cmd = Command::new("chown");
        cmd.arg("-R").arg(format!("{user}:")).arg(path);
        let out = run_bounded(cmd, "chown", None, Duration::from_secs(30))?;
        if !out.status.success() {
            bail!(
                "could not give {} to the `{user}` user: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .stderr(Stdio::null())
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn validate_options(opts: &PgClusterOptions) -> Result<()> {
    if opts.superuser_password.is_empty() && opts.auth != PgAuth::Trust {
        bail!("a superuser password is required unless auth is Trust");
    }
    if opts.max_connections == 0 {
        bail!("max_connections must be at least 1");
    }
    if opts.port == Some(0) {
        bail!("port 0 is not a port; leave it unset to pick a free one");
    }
    for (key, _) in &opts.extra_conf {
        let valid = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !valid {
            bail!("extra_conf setting name {key:?} is not a PostgreSQL setting name");
        }
        if RESERVED_SETTINGS.contains(&key.to_ascii_lowercase().as_str()) {
            bail!("extra_conf may not set {key}: the throwaway cluster only listens on {HOST}");
        }
    }
    Ok(())
}

/// A `postgresql.conf` value: always quoted, so any setting type works.
fn conf_value(value: &str) -> Result<String> {
    if value.chars().any(char::is_control) {
        bail!("configuration values may not contain control characters");
    }
    Ok(format!(
        "'{}'",
        value.replace('\\', "\\\\").replace('\'', "''")
    ))
}

/// An SQL identifier, quoted so any name is safe to splice into DDL.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An SQL string literal (standard_conforming_strings is on).
fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn last_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

fn has_server_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|b| dir.join(b).is_file())
}

/// The newest `<base>/<version>/bin` holding the server binaries
/// (Debian installs each major version side by side there).
fn newest_versioned_bin(base: &Path) -> Option<PathBuf> {
    std::fs::read_dir(base)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            has_server_binaries(&bin).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    has_server_binaries(&dir).then_some(dir)
}

fn bin_dir_on_path() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).find(|dir| has_server_binaries(dir))
}

/// The psql that matches the server when there is one (Debian's
/// `/usr/bin/psql` is a wrapper that may pick another version).
fn psql_binary(bin_dir: &Path) -> PathBuf {
    let beside = bin_dir.join("psql");
    if beside.is_file() {
        beside
    } else {
        PathBuf::from("psql")
    }
}

/// Run a command to completion with a deadline, feeding `input` to its
/// stdin, so a wedged tool cannot hang the demo or a test forever.
fn run_bounded(
    mut cmd: Command,
    what: &str,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| {
        format!(
            "could not run {what} ({})",
            Path::new(cmd.get_program()).display()
        )
    })?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let input = input.to_vec();
        // A write error means the tool exited early; its status says why.
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let stdout = child.stdout.take().map(read_all_in_background);
    let stderr = child.stderr.take().map(read_all_in_background);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("waiting for {what}"))?
        {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not finish within {} seconds", timeout.as_secs());
        }
        thread::sleep(Duration::from_millis(10));
    };
    let collect = |handle: Option<thread::JoinHandle<Vec<u8>>>| {
        handle.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    Ok(Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

fn read_all_in_background(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener, TcpStream};

    fn start(auth: PgAuth) -> PgCluster {
        PgCluster::start(PgClusterOptions {
            auth,
            ..PgClusterOptions::default()
        })
        .expect("start PostgreSQL")
    }

    async fn connect(
        cluster: &PgCluster,
        user: &str,
        password: Option<&str>,
        db: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(cluster.host())
            .port(cluster.port())
            .user(user)
            .dbname(db);
        if let Some(pw) = password {
            config.password(pw);
        }
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    async fn whoami(client: &tokio_postgres::Client) -> (String, String) {
        let row = client
            .query_one("select current_user::text, current_database()::text", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    }

    fn stored_password(cluster: &PgCluster, role: &str) -> String {
        let out = cluster
            .psql("postgres", &format!("\\pset format unaligned\n\\pset tuples_only on\nselect rolpassword from pg_authid where rolname = '{role}';"))
            .unwrap();
        out.trim().to_string()
    }

    fn port_open(port: u16) -> bool {
        TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(2))
            .is_ok()
    }

    #[tokio::test]
    async fn scram_cluster_accepts_scram_logins_only_with_the_right_password() {
        let cluster = start(PgAuth::Scram);
        assert_eq!(cluster.host(), "127.0.0.1");
        cluster.create_role("app", "s3cret'pw", false).unwrap();
        cluster.create_database("appdb", "app").unwrap();
        assert!(stored_password(&cluster, "app").starts_with("SCRAM-SHA-256$"));

        let client = connect(&cluster, "app", Some("s3cret'pw"), "appdb")
            .await
            .unwrap();
        assert_eq!(
            whoami(&client).await,
            ("app".to_string(), "appdb".to_string())
        );
        let n: i32 = client.query_one("select 40 + 2", &[]).await.unwrap().get(0);
        assert_eq!(n, 42);
        assert!(connect(&cluster, "app", Some("wrong"), "appdb")
            .await
            .is_err());
        assert!(connect(&cluster, "app", None, "appdb").await.is_err());

        let su = connect(
            &cluster,
            "postgres",
            Some(cluster.superuser_password()),
            "postgres",
        )
        .await
        .unwrap();
        let listen: String = su
            .query_one("show listen_addresses", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(listen, "127.0.0.1");
        let fsync: String = su.query_one("show fsync", &[]).await.unwrap().get(0);
        assert_eq!(fsync, "off");
        let max: String = su
            .query_one("show max_connections", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(max, "200");
    }

    #[tokio::test]
    async fn md5_cluster_stores_md5_hashes_and_accepts_md5_logins() {
        let cluster = start(PgAuth::Md5);
        cluster.create_role("legacy", "old-school", false).unwrap();
        cluster.create_database("legacydb", "legacy").unwrap();
        assert!(stored_password(&cluster, "legacy").starts_with("md5"));
        let client = connect(&cluster, "legacy", Some("old-school"), "legacydb")
            .await
            .unwrap();
        assert_eq!(
            whoami(&client).await,
            ("legacy".to_string(), "legacydb".to_string())
        );
        assert!(connect(&cluster, "legacy", Some("new-school"), "legacydb")
            .await
            .is_err());
    }

    #[tokio::test]
    async fn trust_cluster_needs_no_password() {
        let cluster = start(PgAuth::Trust);
        cluster.create_role("anyone", "ignored", true).unwrap();
        let client = connect(&cluster, "anyone", None, "postgres").await.unwrap();
        assert_eq!(whoami(&client).await.0, "anyone");
        let su: bool = client
            .query_one(
                "select rolsuper from pg_roles where rolname = current_user",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(su);
        // A cluster without a superuser password still works with Trust.
        let bare = PgCluster::start(PgClusterOptions {
            auth: PgAuth::Trust,
            superuser_password: String::new(),
            ..PgClusterOptions::default()
        })
        .unwrap();
        assert!(bare.psql("postgres", "select 1;").unwrap().contains('1'));
    }

    #[test]
    fn drop_stops_the_server_and_removes_the_folder() {
        let cluster = start(PgAuth::Scram);
        let (dir, port) = (cluster.dir().to_path_buf(), cluster.port());
        assert!(dir.join("data").join("PG_VERSION").is_file());
        assert!(port_open(port));
        assert!(
            cluster.log_tail(50).contains("ready to accept connections"),
            "{}",
            cluster.log_tail(50)
        );
        drop(cluster);
        assert!(!dir.exists(), "{} still exists", dir.display());
        assert!(!port_open(port), "port {port} still accepts connections");
    }

    #[test]
    fn stop_is_idempotent() {
        let mut cluster = start(PgAuth::Trust);
        let (dir, port) = (cluster.dir().to_path_buf(), cluster.port());
        cluster.stop();
        cluster.stop();
        assert!(!dir.exists());
        assert!(!port_open(port));
        assert!(cluster.psql("postgres", "select 1;").is_err());
        drop(cluster);
    }

    #[test]
    fn watcher_removes_the_cluster_after_the_watched_process_exits() {
        let cluster = start(PgAuth::Scram);
        let (dir, port) = (cluster.dir().to_path_buf(), cluster.port());
        let mut watched = Command::new("sleep").arg("1").spawn().unwrap();
        cluster.stop_when_process_exits(watched.id());
        watched.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while (dir.exists() || port_open(port)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(200));
        }
        assert!(!dir.exists(), "watcher did not remove {}", dir.display());
        assert!(!port_open(port), "watcher did not stop the server");
        // Dropping afterwards is harmless.
        drop(cluster);
    }

    #[test]
    fn explicit_port_and_extra_settings_are_applied() {
        let port = free_port().unwrap();
        let cluster = PgCluster::start(PgClusterOptions {
            port: Some(port),
            max_connections: 20,
            extra_conf: vec![
                ("work_mem".into(), "8MB".into()),
                ("log_line_prefix".into(), "%m it's [%p] ".into()),
            ],
            ..PgClusterOptions::default()
        })
        .unwrap();
        assert_eq!(cluster.port(), port);
        let out = cluster
            .psql(
                "postgres",
                "show work_mem;\nshow max_connections;\nshow log_line_prefix;",
            )
            .unwrap();
        assert!(out.contains("8MB"), "{out}");
        assert!(out.contains(" 20"), "{out}");
        assert!(out.contains("%m it's [%p] "), "{out}");
    }

    #[test]
    fn a_taken_port_fails_with_the_server_log() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = PgCluster::start(PgClusterOptions {
            port: Some(port),
            ..PgClusterOptions::default()
        })
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        assert!(text.contains("server log"), "{text}");
        assert!(
            text.contains("could not bind") || text.contains("already in use"),
            "{text}"
        );
    }

    #[test]
    fn sql_errors_are_reported_without_the_password() {
        let cluster = start(PgAuth::Scram);
        cluster.create_role("dup", "hunter2-secret", false).unwrap();
        let err = format!(
            "{:#}",
            cluster
                .create_role("dup", "hunter2-secret", false)
                .unwrap_err()
        );
        assert!(err.contains("already exists"), "{err}");
        assert!(!err.contains("hunter2-secret"), "{err}");
        assert!(!err.contains(cluster.superuser_password()), "{err}");
        let err = format!(
            "{:#}",
            cluster
                .psql("postgres", "select 1;\nselect nope;\nselect 2;")
                .unwrap_err()
        );
        assert!(err.contains("nope"), "{err}");
        // Names needing quotes work.
        cluster.create_role("Odd \"Name\"", "pw", false).unwrap();
        cluster.create_database("my db", "Odd \"Name\"").unwrap();
        let out = cluster.psql("my db", "select current_database();").unwrap();
        assert!(out.contains("my db"), "{out}");
    }

    #[test]
    fn options_that_would_expose_or_break_the_cluster_are_rejected() {
        let with = |extra: (&str, &str)| PgClusterOptions {
            extra_conf: vec![(extra.0.into(), extra.1.into())],
            ..PgClusterOptions::default()
        };
        for key in ["listen_addresses", "PORT", "unix_socket_directories"] {
            let err = PgCluster::start(with((key, "*"))).unwrap_err().to_string();
            assert!(err.contains("127.0.0.1"), "{err}");
        }
        assert!(PgCluster::start(with(("work_mem = 1\nlisten_addresses", "x"))).is_err());
        assert!(validate_options(&PgClusterOptions {
            superuser_password: String::new(),
            ..PgClusterOptions::default()
        })
        .is_err());
        assert!(validate_options(&PgClusterOptions {
            max_connections: 0,
            ..PgClusterOptions::default()
        })
        .is_err());
        assert!(validate_options(&PgClusterOptions::default()).is_ok());
        assert!(conf_value("a\nb").is_err());
    }

    #[test]
    fn clusters_can_live_in_statics_and_move_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PgCluster>();
    }

    #[test]
    fn missing_programs_are_named_in_the_error() {
        let cmd = Command::new("/nonexistent/gatehouse-no-such-tool");
        let err = format!(
            "{:#}",
            run_bounded(cmd, "initdb", None, Duration::from_secs(5)).unwrap_err()
        );
        assert!(
            err.contains("initdb") && err.contains("gatehouse-no-such-tool"),
            "{err}"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(conf_value("it's C:\\x").unwrap(), "'it''s C:\\\\x'");
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
    }

    #[test]
    fn debug_output_hides_the_password() {
        let opts = PgClusterOptions {
            superuser_password: "topsecret".into(),
            ..PgClusterOptions::default()
        };
        assert!(!format!("{opts:?}").contains("topsecret"));
        assert_eq!(PgClusterOptions::default().superuser_password.len(), 24);
        assert_ne!(
            PgClusterOptions::default().superuser_password,
            PgClusterOptions::default().superuser_password
        );
    }

    #[test]
    fn newest_versioned_bin_prefers_the_highest_version_with_binaries() {
        let base = tempfile::tempdir().unwrap();
        let make = |version: &str, complete: bool| {
            let bin = base.path().join(version).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            let names: &[&str] = if complete {
                &["initdb", "pg_ctl", "postgres"]
            } else {
                &["initdb"]
            };
            for name in names {
                std::fs::write(bin.join(name), b"").unwrap();
            }
        };
        make("9.6", true);
        make("13", true);
        make("15", true);
        make("17", false);
        make("notaversion", true);
        assert_eq!(
            newest_versioned_bin(base.path()),
            Some(base.path().join("15").join("bin"))
        );
        assert_eq!(newest_versioned_bin(&base.path().join("missing")), None);
    }

    #[test]
    fn find_binaries_finds_the_installed_server() {
        let dir = PgCluster::find_binaries().unwrap();
        assert!(has_server_binaries(&dir), "{}", dir.display());
    }

    #[test]
    fn run_bounded_feeds_stdin_and_enforces_the_deadline() {
        let mut cat = Command::new("cat");
        cat.arg("-");
        let big = "x".repeat(1 << 20);
        let out = run_bounded(cat, "cat", Some(big.as_bytes()), Duration::from_secs(30)).unwrap();
        assert_eq!(out.stdout.len(), big.len());
        let mut sleep = Command::new("sleep");
        sleep.arg("30");
        let started = Instant::now();
        let err = run_bounded(sleep, "sleep", None, Duration::from_millis(300)).unwrap_err();
        assert!(err.to_string().contains("did not finish"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
