//! `gatehouse demo`: a throwaway bank behind a real gateway, in one command.
//!
//! Starts PostgreSQL from the system's binaries (as an unprivileged user
//! when run as root), loads a bank schema with fake PII, writes a
//! configuration with two identities' rules, runs the gateway with SQLite
//! and the dev issuer, and prints commands to try. Ctrl-C or SIGTERM stops
//! everything and removes the cluster.

use crate::config::GatewayConfig;
use crate::demo_data;
use crate::gateway::RunningGateway;
use anyhow::{Context, Result};
use gatehouse_testbed::mariadbcluster::{MariaDbAuth, MariaDbCluster};
use gatehouse_testbed::pgcluster::{PgAuth, PgCluster, PgClusterOptions};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The demo's target role; its password exists only in the state folder.
const APP_ROLE: &str = "gatehouse_app";

/// Run the demo until a signal arrives.
pub async fn run(env_file: Option<PathBuf>) -> Result<()> {
    let state_dir = std::env::current_dir()?.join(".gatehouse");
    gatehouse_core::private::dir(&state_dir)?;
    eprintln!("gatehouse demo: starting a throwaway PostgreSQL…");
    let cluster = tokio::task::spawn_blocking(|| {
        PgCluster::start(PgClusterOptions {
            auth: PgAuth::Scram,
            ..PgClusterOptions::default()
        })
    })
    .await??;
    let mariadb = if MariaDbCluster::available() {
        eprintln!("gatehouse demo: starting a throwaway MariaDB…");
        match tokio::task::spawn_blocking(MariaDbCluster::start).await? {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("gatehouse demo: MariaDB did not start, continuing without it: {e:#}");
                None
            }
        }
    } else {
        eprintln!("gatehouse demo: MariaDB is not installed (apt-get install mariadb-server mariadb-client); the MySQL target is skipped");
        None
    };
    let mut demo = Demo::prepare(cluster, mariadb, &state_dir).await?;
    let gw = RunningGateway::start(&demo.config).await?;
    let dev = gw
        .dev_issuer
        .clone()
        .context("the demo needs the dev issuer")?;
    let ttl = Duration::from_secs(8 * 3600);
    let alice = dev.issue(
        "alice",
        &["analysts".to_string()],
        Some("alice@example.com"),
        ttl,
        gatehouse_identity::DEV_AUDIENCE,
    )?;
    let dana = dev.issue(
        "dana",
        &["dba".to_string()],
        Some("dana@example.com"),
        ttl,
        gatehouse_identity::DEV_AUDIENCE,
    )?;
    let omar = dev.issue(
        "omar",
        &["approvers".to_string()],
        Some("omar@example.com"),
        ttl,
        gatehouse_identity::DEV_AUDIENCE,
    )?;
    let host = gw.postgres_addr.ip().to_string();
    let port = gw.postgres_addr.port();
    let console = format!("https://{}", gw.api_addr);
    let ca_file = demo.config.state_dir().join("tls-cert.pem");
    let known_hosts = match gw.ssh_addr {
        Some(addr) => Some(write_known_hosts(&demo.config, addr)?),
        None => None,
    };
    if let Some(path) = &env_file {
        let mut env = String::new();
        let _ = writeln!(env, "GATEHOUSE_PG_HOST={host}");
        let _ = writeln!(env, "GATEHOUSE_PG_PORT={port}");
        let _ = writeln!(env, "GATEHOUSE_DATABASE=bank");
        if let Some(addr) = gw.mysql_addr {
            let _ = writeln!(env, "GATEHOUSE_MYSQL_HOST={}", addr.ip());
            let _ = writeln!(env, "GATEHOUSE_MYSQL_PORT={}", addr.port());
            let _ = writeln!(env, "GATEHOUSE_MYSQL_DATABASE={MYSQL_CONNECTION}");
        }
        let _ = writeln!(env, "GATEHOUSE_ANALYST_TOKEN={alice}");
        let _ = writeln!(env, "GATEHOUSE_DBA_TOKEN={dana}");
        let _ = writeln!(env, "GATEHOUSE_APPROVER_TOKEN={omar}");
        let _ = writeln!(env, "GATEHOUSE_CONSOLE_URL={console}");
        let _ = writeln!(env, "GATEHOUSE_URL={console}");
        let _ = writeln!(env, "GATEHOUSE_CA_FILE={}", ca_file.display());
        let _ = writeln!(env, "GATEHOUSE_CONFIG={}", demo.config_path.display());
        if let Some(addr) = gw.http_addr {
            let _ = writeln!(env, "GATEHOUSE_HTTP_URL=https://{addr}");
            let _ = writeln!(
                env,
                "GATEHOUSE_LLM_BASE_URL=https://{addr}/{LLM_CONNECTION}/v1"
            );
        }
        if let Some(addr) = gw.ssh_addr {
            let _ = writeln!(env, "GATEHOUSE_SSH_HOST={}", addr.ip());
            let _ = writeln!(env, "GATEHOUSE_SSH_PORT={}", addr.port());
            let _ = writeln!(env, "GATEHOUSE_SSH_CONNECTION={SSH_CONNECTION}");
            if let Some(kh) = &known_hosts {
                let _ = writeln!(env, "GATEHOUSE_SSH_KNOWN_HOSTS={}", kh.display());
            }
        }
        crate::files::write_private(path, env.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "{}",
        instructions(&host, port, &demo.config_path, &console, &ca_file)
    );
    if let Some(addr) = gw.mysql_addr {
        println!(
            "{}",
            mysql_instructions(&addr.ip().to_string(), addr.port())
        );
    }
    if let Some(addr) = gw.http_addr {
        println!("{}", llm_instructions(addr, &ca_file));
    }
    match (gw.ssh_addr, &demo.ssh_skipped) {
        (Some(addr), _) => println!(
            "{}",
            ssh_instructions(
                addr,
                &demo.config_path,
                known_hosts.as_deref().unwrap_or(Path::new("known_hosts"))
            )
        ),
        (None, Some(why)) => println!("SSH: no demo SSH target ({why}).\n"),
        (None, None) => {}
    }
    crate::cli::wait_for_signal().await;
    eprintln!(
        "gatehouse demo: stopping; signing the final audit checkpoint and removing the cluster"
    );
    gw.shutdown().await;
    demo.llm.abort();
    drop(demo.ssh.take());
    let mut cluster = demo.cluster;
    let mariadb = demo.mariadb;
    tokio::task::spawn_blocking(move || {
        cluster.stop();
        if let Some(mut m) = mariadb {
            m.stop();
        }
    })
    .await?;
    Ok(())
}

struct Demo {
    cluster: PgCluster,
    mariadb: Option<MariaDbCluster>,
    config: GatewayConfig,
    config_path: PathBuf,
    /// The throwaway sshd, when it could be started.
    ssh: Option<gatehouse_testbed::sshtarget::SshTarget>,
    /// Why there is no SSH target.
    ssh_skipped: Option<String>,
    /// The demo LLM upstream (OpenAI-compatible, answers with fake PII).
    llm: tokio::task::JoinHandle<()>,
}

/// The demo's SSH connection name (`ssh -p 2222 bank-host@127.0.0.1`).
pub const SSH_CONNECTION: &str = "bank-host";

/// The local account the demo sshd lets the gateway log in as.
const SSH_DEMO_USER: &str = "gatehouse-demo";

/// A file with fake PII on the demo host, to show masking in terminal output.
const SSH_DEMO_FILE: &str = "name,ssn,card,email
Ada Lovelace,123-45-6789,4111 1111 1111 1111,ada@example.com
Grace Hopper,536-22-1457,5500 0000 0000 0004,grace@example.com
";

/// The SSH part of the demo: the listener, the host and two rules.
pub(crate) fn ssh_demo_config(
    port: u16,
    user: &str,
    password_file: &Path,
    host_key: &str,
) -> String {
    format!(
        r#"
# SSH: `ssh -p 2222 {SSH_CONNECTION}@127.0.0.1`, the token as the password.
[ssh]
listen = "127.0.0.1:2222"

[[connections]]
name = "{SSH_CONNECTION}"
type = "ssh"
host = "127.0.0.1"
port = {port}
user = "{user}"
password_file = "{pw}"
host_key = "{host_key}"
allow_groups = ["dba"]
mask_terminal = true

[[rules]]
name = "no-rm-rf"
effect = "block"
message = "recursive deletes (rm -r, rm -rf) are not allowed on bank hosts"
connections = ["{SSH_CONNECTION}"]
pattern = '(?i)\brm\b[^;&|]*\s(-[a-z]*r|--recursive)'

[[rules]]
name = "sudo-needs-approval"
effect = "approve"
message = "sudo on bank hosts needs a second person"
connections = ["{SSH_CONNECTION}"]
keywords = ["sudo"]
approvers = ["approvers"]
"#,
        pw = password_file.display(),
    )
}

impl Demo {
    async fn prepare(
        cluster: PgCluster,
        mariadb: Option<MariaDbCluster>,
        state_dir: &Path,
    ) -> Result<Demo> {
        let password = hex::encode(rand::random::<[u8; 16]>());
        let pw_path = state_dir.join("demo-target.pw");
        crate::files::write_private(&pw_path, password.as_bytes())?;
        let schema = demo_data::demo_schema_sql(demo_data::demo_customer_count_default());
        let cluster = tokio::task::spawn_blocking(move || -> Result<PgCluster> {
            cluster.create_role(APP_ROLE, &password, false)?;
            cluster.create_database("bank", APP_ROLE)?;
            cluster.psql("bank", &format!("SET ROLE {APP_ROLE};\n{schema}"))?;
            Ok(cluster)
        })
        .await??;
        let mariadb = match mariadb {
            Some(m) => {
                let pw = pw_path.clone();
                let password = std::fs::read_to_string(&pw)?;
                let schema =
                    demo_data::demo_schema_sql_mysql(demo_data::demo_customer_count_default());
                Some(
                    tokio::task::spawn_blocking(move || -> Result<MariaDbCluster> {
                        m.create_user_and_database(
                            APP_ROLE,
                            &password,
                            "bank",
                            MariaDbAuth::Native,
                        )?;
                        m.sql("bank", &schema)?;
                        Ok(m)
                    })
                    .await??,
                )
            }
            None => None,
        };
        let mut text = demo_config(cluster.port(), &pw_path);
        if let Some(m) = &mariadb {
            text.push_str(&demo_mysql_config(m.port(), &pw_path));
        }
        let (ssh, ssh_skipped) = if gatehouse_testbed::sshtarget::available() {
            let ssh_pw = hex::encode(rand::random::<[u8; 16]>());
            let ssh_pw_path = state_dir.join("demo-ssh-target.pw");
            crate::files::write_private(&ssh_pw_path, ssh_pw.as_bytes())?;
            let dir = state_dir.join("demo-sshd");
            eprintln!("gatehouse demo: starting a throwaway sshd…");
            let target = tokio::task::spawn_blocking(move || {
                gatehouse_testbed::sshtarget::SshTarget::start(&dir, SSH_DEMO_USER, &ssh_pw)
            })
            .await??;
            std::fs::write(target.home.join("customers-export.csv"), SSH_DEMO_FILE)?;
            text.push_str(&ssh_demo_config(
                target.port,
                &target.user,
                &ssh_pw_path,
                &target.host_key,
            ));
            (Some(target), None)
        } else {
            let why = if std::path::Path::new(gatehouse_testbed::sshtarget::SSHD).exists() {
                "sshd needs root"
            } else {
                "openssh-server is not installed"
            };
            (None, Some(why.to_string()))
        };
        let llm_key = hex::encode(rand::random::<[u8; 16]>());
        let llm_key_path = state_dir.join("demo-llm.key");
        crate::files::write_private(&llm_key_path, llm_key.as_bytes())?;
        let llm_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let llm_port = llm_listener.local_addr()?.port();
        let llm = gatehouse_testbed::llmdemo::start(llm_listener, llm_key).await;
        text.push_str(&llm_demo_config(llm_port, &llm_key_path));
        let config_path = state_dir.join("demo.toml");
        std::fs::write(&config_path, &text)?;
        let config = GatewayConfig::load(&config_path)?;
        Ok(Demo {
            cluster,
            mariadb,
            config,
            config_path,
            ssh,
            ssh_skipped,
            llm,
        })
    }
}

/// The demo's LLM connection name (`https://127.0.0.1:18443/llm/v1`).
pub const LLM_CONNECTION: &str = "llm";

/// The HTTPS listener for HTTP connections, the demo's LLM connection and
/// its two rules.
pub(crate) fn llm_demo_config(port: u16, key_file: &Path) -> String {
    format!(
        r#"
# HTTP connections: the OpenAI SDK with base_url https://127.0.0.1:18443/{LLM_CONNECTION}/v1
# and the caller's token as the API key. The upstream is a small
# OpenAI-compatible server whose key only the gateway holds.
[http]
listen = "127.0.0.1:18443"

[[connections]]
name = "{LLM_CONNECTION}"
type = "openai"
host = "127.0.0.1"
port = {port}
password_file = "{key}"
allow_groups = ["analysts", "dba"]

[[rules]]
name = "no-ssn-harvesting"
effect = "block"
message = "prompts may not ask for Social Security numbers"
connections = ["{LLM_CONNECTION}"]
pattern = "(?i)(list|give|show|tell).{{0,40}}(ssns?|social security)"

[[rules]]
name = "wire-transfers-need-approval"
effect = "approve"
message = "the model wants to move money"
connections = ["{LLM_CONNECTION}"]
tools = ["wire_transfer"]
approvers = ["approvers"]
"#,
        key = key_file.display()
    )
}

fn llm_instructions(addr: std::net::SocketAddr, ca_file: &Path) -> String {
    let base = format!("https://{addr}/{LLM_CONNECTION}/v1");
    format!(
        r#"LLM: OpenAI-compatible endpoint {base} (the caller's token is the API key; the
upstream's key stays with the gateway). Answers carry fake PII, masked as they stream:
  export OPENAI_BASE_URL={base} SSL_CERT_FILE={ca} \
         OPENAI_API_KEY="$(gatehouse token issue --subject alice --groups analysts)"
  curl -sN --cacert {ca} -H "Authorization: Bearer $OPENAI_API_KEY" -H 'Content-Type: application/json' \
    -d '{{"model":"demo","stream":true,"messages":[{{"role":"user","content":"who is on file?"}}]}}' \
    $OPENAI_BASE_URL/chat/completions
  python3 -c 'import openai; print(openai.OpenAI().chat.completions.create(model="demo", messages=[{{"role":"user","content":"who is on file?"}}]).choices[0].message.content)'
  … a prompt asking for SSNs is blocked (rule no-ssn-harvesting), and a model's
  call to a tool named wire_transfer waits for an approver.
"#,
        ca = ca_file.display(),
    )
}

/// The demo's configuration: one connection, two identities' rules, masking.
pub fn demo_config(pg_port: u16, password_file: &Path) -> String {
    format!(
        r#"# Generated by `gatehouse demo`. See gatehouse.example.toml for every option.
state_dir = "."
# A write no rule allows is refused: DBAs have a rule that lets them write,
# everyone else (analysts, anyone let in by a grant) does not.
default_write_effect = "block"

[postgres]
listen = "127.0.0.1:15432"
result_capture_rows = 5

[api]
listen = "127.0.0.1:15443"

[audit]
checkpoint_every = 100
checkpoint_interval_secs = 30

# The console signs people in with the dev issuer's sign-in page (PKCE), where
# these demo identities are one click away.
[console]
auditor_groups = ["auditors"]
[[console.dev_identities]]
subject = "omar"
email = "omar@example.com"
groups = ["approvers"]
[[console.dev_identities]]
subject = "audrey"
email = "audrey@example.com"
groups = ["auditors"]
[[console.dev_identities]]
subject = "dana"
email = "dana@example.com"
groups = ["dba"]
[[console.dev_identities]]
subject = "alice"
email = "alice@example.com"
groups = ["analysts"]

[[connections]]
name = "bank"
type = "postgres"
host = "127.0.0.1"
port = {pg_port}
database = "bank"
user = "{APP_ROLE}"
password_file = "{pw}"
allow_groups = ["analysts", "dba"]
# Anyone else may ask for time-bound access; one approver decides. A grant
# acts as analysts (the default) or, if asked and approved, as dba.
access_approvers = ["approvers"]
access_as = ["analysts", "dba"]
max_access = "8h"

{rules}
{approvals}
{writers}"#,
        pw = password_file.display(),
        rules = DEMO_POLICY,
        approvals = DEMO_APPROVAL_RULE,
        writers = DEMO_WRITERS_RULE,
    )
}

/// The demo's writers: with `default_write_effect = "block"`, a write runs
/// only when a rule allows it. After every block and approve rule, so
/// those still decide first. It names its connection: the SSH and LLM
/// rules are appended after it, and an allow rule for every connection
/// would decide dana's `rm -rf` and `sudo` on `bank-host` before they do.
/// [`demo_mysql_config`] adds the same rule for the MariaDB connection.
pub const DEMO_WRITERS_RULE: &str = r#"[[rules]]
name = "dba-may-write"
effect = "allow"
message = "DBAs change data and schema, within the rules above"
groups = ["dba"]
connections = ["bank"]
"#;

/// The demo MariaDB's connection name: what `mysql -D` names.
pub const MYSQL_CONNECTION: &str = "bank_mysql";

/// The demo's MariaDB target, appended to [`demo_config`] when MariaDB is
/// installed: the same bank, identities, rules and masking.
pub fn demo_mysql_config(port: u16, password_file: &Path) -> String {
    format!(
        r#"
[mysql]
listen = "127.0.0.1:13306"
result_capture_rows = 5

[[connections]]
name = "{MYSQL_CONNECTION}"
type = "mysql"
host = "127.0.0.1"
port = {port}
database = "bank"
user = "{APP_ROLE}"
password_file = "{pw}"
allow_groups = ["analysts", "dba"]
access_approvers = ["approvers"]
max_access = "8h"

[[rules]]
name = "dba-may-write-mysql"
effect = "allow"
message = "DBAs change data and schema, within the rules above"
groups = ["dba"]
connections = ["{MYSQL_CONNECTION}"]
"#,
        pw = password_file.display(),
    )
}

/// The demo's approval rule: a DBA's change to customer records waits for
/// one person from `approvers`. Kept apart from [`DEMO_POLICY`] (and after
/// its block rules, so a deny-listed statement is refused, not held).
pub const DEMO_APPROVAL_RULE: &str = r#"[[rules]]
name = "dba-customer-changes-need-approval"
effect = "approve"
message = "changes to customer records need a second person's approval"
groups = ["dba"]
kinds = ["update", "delete", "merge"]
tables = ["customers"]
approvers = ["approvers"]
approvals = 1
approval_timeout = "15m"

[[rules]]
name = "dba-stored-code-needs-approval"
effect = "approve"
message = "code stored in the database runs later without the gateway seeing its statements (a function's UPDATE, a trigger's copy), so a second person reads it first"
groups = ["dba"]
keywords = ["CREATE FUNCTION", "CREATE PROCEDURE", "CREATE TRIGGER", "CREATE CONSTRAINT", "CREATE RULE", "CREATE EVENT", "ALTER FUNCTION", "ALTER PROCEDURE", "ALTER EVENT", "CREATE AGGREGATE", "CREATE OPERATOR", "CREATE CAST", "CREATE LANGUAGE", "CREATE EXTENSION"]
approvers = ["approvers"]
approvals = 1
approval_timeout = "15m"
"#;

/// Rules and masking shared by the demo and the tests.
pub const DEMO_POLICY: &str = r#"[[rules]]
name = "no-server-settings"
effect = "block"
message = "server-wide settings are changed through change management, not through the gateway"
keywords = ["SET GLOBAL", "SET PERSIST"]

[[rules]]
name = "dba-deny-list"
effect = "block"
message = "this statement is on the deny-list, even for DBAs"
groups = ["dba"]
keywords = ["DROP DATABASE", "ALTER SYSTEM", "DROP ROLE", "DROP USER"]

[[rules]]
name = "no-unbounded-writes"
effect = "block"
message = "UPDATE and DELETE need a WHERE clause"
kinds = ["update", "delete"]
without_where = true

[[rules]]
name = "analysts-may-copy-out"
effect = "allow"
message = "a COPY out is a read, masked line by line (pg_dump reads tables this way)"
groups = ["analysts"]
kinds = ["copy"]
copy = "out"

[[rules]]
name = "analysts-read-only"
effect = "block"
message = "analysts may only read data"
groups = ["analysts"]
# A prepared statement is judged by its body at each EXECUTE (pg_dump prepares its catalog queries).
not_kinds = ["select", "show", "set", "transaction", "explain", "prepare", "execute", "deallocate"]

[masking]
[masking.strategies]
ssn = { strategy = "partial", keep_last = 4 }
card_number = { strategy = "partial", keep_last = 4 }
iban = { strategy = "partial", keep_last = 4 }
aba_routing = { strategy = "redact" }
email = { strategy = "tokenize" }
phone = { strategy = "partial", keep_last = 4 }

[[masking.columns]]
name = "customer-ssn"
columns = ["customers.ssn"]
strategy = "partial"
keep_last = 4
entity = "ssn"

[[masking.columns]]
name = "card-numbers"
columns = ["*.card_number"]
strategy = "partial"
keep_last = 4
entity = "card_number"

[[masking.columns]]
name = "ibans"
columns = ["*.iban"]
strategy = "partial"
keep_last = 4
entity = "iban"

[[masking.columns]]
name = "account-numbers"
columns = ["*.account_number"]
strategy = "partial"
keep_last = 4
entity = "account_number"

[[masking.columns]]
name = "routing-numbers"
columns = ["*.routing_number"]
strategy = "partial"
keep_last = 4
entity = "aba_routing"

[[masking.columns]]
name = "customer-contact"
columns = ["customers.email"]
strategy = "tokenize"
entity = "email"

[[masking.columns]]
name = "date-of-birth"
columns = ["customers.date_of_birth"]
strategy = "redact"
"#;

fn mysql_instructions(host: &str, port: u16) -> String {
    let conn = |who: &str| {
        format!("mysql --ssl --enable-cleartext-plugin -h {host} -P {port} -u {who} -D {MYSQL_CONNECTION}")
    };
    format!(
        r#"MariaDB gateway: {host}:{port} (TLS; the token is the password). Same bank, same rules:
  MYSQL_PWD="$(gatehouse token issue --subject alice --groups analysts)" \
    {alice} -e "select name, ssn, card_number, email from customers limit 3"
  MYSQL_PWD="$(gatehouse token issue --subject dana --groups dba)" \
    {dana} -e "update customers set phone = '555-0100' where id = 7"   # waits for approval
  (MariaDB's own client needs no --enable-cleartext-plugin; Oracle's mysql client does.)
"#,
        alice = conn("alice"),
        dana = conn("dana"),
    )
}

/// The `known_hosts` pattern for a host and port, as `ssh` looks it up
/// (`[127.0.0.1]:2222`, or the bare address on port 22).
pub fn known_hosts_pattern(addr: std::net::SocketAddr) -> String {
    match addr.port() {
        22 => addr.ip().to_string(),
        port => format!("[{}]:{port}", addr.ip()),
    }
}

/// Write `state_dir/known_hosts` with the gateway's SSH host key, so the
/// first `ssh -o UserKnownHostsFile=…` to the demo checks the key instead
/// of failing (or asking) about an unknown host.
fn write_known_hosts(cfg: &GatewayConfig, addr: std::net::SocketAddr) -> Result<PathBuf> {
    let ssh = cfg
        .ssh
        .as_ref()
        .context("the demo's SSH listener has no [ssh] section")?;
    let key = gatehouse_ssh::hostkey::load_or_create(&cfg.state_path(&ssh.host_key))
        .map_err(anyhow::Error::msg)?;
    let path = cfg.state_dir().join("known_hosts");
    let line = format!(
        "{} {}\n",
        known_hosts_pattern(addr),
        gatehouse_ssh::hostkey::public_line(&key)
    );
    std::fs::write(&path, line).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn ssh_instructions(addr: std::net::SocketAddr, config: &Path, known_hosts: &Path) -> String {
    let (host, port) = (addr.ip(), addr.port());
    format!(
        r#"SSH: gateway {host}:{port}; the host {SSH_CONNECTION} is a throwaway sshd whose password only the gateway holds.
The gateway's host key is in {kh} (ssh checks it with -o UserKnownHostsFile=…).
dana (group dba) runs a command; the token is the password (sshpass -e, or paste it at the prompt):
  export SSHPASS="$(gatehouse token issue --subject dana --groups dba)"
  sshpass -e ssh -p {port} -o UserKnownHostsFile={kh} {SSH_CONNECTION}@{host} 'cat customers-export.csv'   # PII masked
  sshpass -e ssh -p {port} -o UserKnownHostsFile={kh} {SSH_CONNECTION}@{host} 'rm -rf /tmp/x'   # blocked by rule no-rm-rf, exit 126
  sshpass -e ssh -p {port} -o UserKnownHostsFile={kh} {SSH_CONNECTION}@{host} 'sudo -n true'     # waits for approval #N (omar approves as above)
  sshpass -e ssh -p {port} -o UserKnownHostsFile={kh} {SSH_CONNECTION}@{host}                    # interactive shell, recorded
  echo "quarter,total" > report.csv
  sshpass -e scp -P {port} -o UserKnownHostsFile={kh} report.csv {SSH_CONNECTION}@{host}:       # file names and sizes recorded
Replay a session in the terminal, or open it in the console (Sessions → Replay, signed in as audrey):
  gatehouse sessions replay SESSION_ID --config {config}
"#,
        config = config.display(),
        kh = known_hosts.display(),
    )
}

fn instructions(host: &str, port: u16, config: &Path, console: &str, ca_file: &Path) -> String {
    let conn = |who: &str| {
        format!("psql \"host={host} port={port} user={who} dbname=bank sslmode=require\"")
    };
    format!(
        r#"
gatehouse demo is running.  PostgreSQL gateway: {host}:{port} (TLS)   config: {config}

alice (group analysts: SELECT only, PII masked):
  PGPASSWORD="$(gatehouse token issue --subject alice --groups analysts)" \
    {alice} -c "select name, ssn, card_number, email from customers limit 3"
  … and a blocked statement:
  PGPASSWORD="$(gatehouse token issue --subject alice --groups analysts)" \
    {alice} -c "delete from customers where id = 1"

dana (group dba: anything but the deny-list; may create tables):
  PGPASSWORD="$(gatehouse token issue --subject dana --groups dba)" \
    {dana} -c "create table scratch(id int)"
  PGPASSWORD="$(gatehouse token issue --subject dana --groups dba)" \
    {dana} -c "delete from customers"        # blocked: no WHERE

Approvals: dana's change to a customer waits for omar (group approvers):
  PGPASSWORD="$(gatehouse token issue --subject dana --groups dba)" \
    {dana} -c "update customers set phone = '555-0100' where id = 7"
  psql prints "waiting for approval #N: {console}/approvals/N" and waits. Then either
  sign in to the console as omar ({console}, accept the self-signed certificate), or:
  export GATEHOUSE_URL={console} GATEHOUSE_CA_FILE={ca_file}
  export GATEHOUSE_TOKEN="$(gatehouse token issue --subject omar --groups approvers)"
  gatehouse approvals list
  gatehouse approvals approve N --reason "ticket CHG-1234"     # or: deny N --reason "…"

Time-bound access: eve (no group on "bank") asks, omar approves, eve connects:
  GATEHOUSE_TOKEN="$(gatehouse token issue --subject eve --groups contractors)" \
    gatehouse access request bank --for 1h --reason "INC-42 investigation"

The audit trail:
  gatehouse audit verify --config {config}
  gatehouse sessions list --config {config}
  gatehouse sessions show SESSION_ID --config {config}
  In the console ({console}/sessions) everyone's sessions are for auditors: sign in as
  audrey (group auditors). omar and the others see only their own sessions, and
  sessions that raised a request they may decide.

Ctrl-C stops the gateway and removes the throwaway database.
"#,
        alice = conn("alice"),
        dana = conn("dana"),
        config = config.display(),
        ca_file = ca_file.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_patterns_are_what_ssh_looks_up() {
        let addr = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(
            known_hosts_pattern(addr("127.0.0.1:2222")),
            "[127.0.0.1]:2222"
        );
        assert_eq!(known_hosts_pattern(addr("10.0.0.5:22")), "10.0.0.5");
    }

    #[test]
    fn ssh_commands_check_the_written_host_key() {
        let text = ssh_instructions(
            "127.0.0.1:2222".parse().unwrap(),
            Path::new("/d/.gatehouse/demo.toml"),
            Path::new("/d/.gatehouse/known_hosts"),
        );
        let commands: Vec<&str> = text
            .lines()
            .filter(|l| l.trim_start().starts_with("sshpass -e"))
            .collect();
        assert!(commands.len() >= 5, "{text}");
        for c in commands {
            assert!(
                c.contains("-o UserKnownHostsFile=/d/.gatehouse/known_hosts"),
                "{c}"
            );
        }
        assert!(!text.contains("StrictHostKeyChecking"), "{text}");
        assert!(
            text.contains("echo \"quarter,total\" > report.csv"),
            "the scp example's file exists: {text}"
        );
    }
}
