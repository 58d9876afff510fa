//! Command-line interface.

use crate::client::{ApiArgs, ApiClient};
use crate::config::GatewayConfig;
use crate::{demo, duration, evidence, gateway};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use gatehouse_audit::{ExportFilter, SessionFilter};
use std::path::PathBuf;
use std::process::ExitCode;

/// Gatehouse: identity-aware access gateway with inline masking and a
/// tamper-evident audit trail.
#[derive(Parser)]
#[command(name = "gatehouse", version, about)]
struct Cli {
    /// Configuration file (default: $GATEHOUSE_CONFIG, ./gatehouse.toml, or built-in defaults).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve,
    /// Start a throwaway PostgreSQL with a demo bank and a gateway in front of it.
    Demo {
        /// Also write KEY=VALUE lines (host, port, tokens, config) here for scripts.
        #[arg(long)]
        env_file: Option<PathBuf>,
    },
    /// Tokens from the local dev issuer.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Evidence packs for examiners: write one for a period, or verify one offline.
    Evidence(EvidenceArgs),
    /// Open the sealed originals of an audit event with an investigator's identity.
    Reveal(RevealArgs),
    /// Sessions recorded in the audit trail.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Held commands and access requests waiting for people (through the API).
    Approvals {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// Time-bound access to connections your groups do not reach (through the API).
    Access {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: AccessCommand,
    },
    /// Write a kubeconfig that sends kubectl through the gateway to a
    /// Kubernetes connection, as you.
    Kubeconfig(KubeconfigArgs),
}

#[derive(clap::Args)]
struct KubeconfigArgs {
    /// The Kubernetes connection's name.
    connection: String,
    /// The gateway's HTTPS address for HTTP connections (default: `[http]
    /// listen` from the configuration).
    #[arg(long, env = "GATEHOUSE_HTTP_URL")]
    server: Option<String>,
    /// Your OIDC access token (kubectl sends it; the gateway checks it).
    #[arg(long, env = "GATEHOUSE_TOKEN", hide_env_values = true)]
    token: String,
    /// PEM certificate kubectl should trust for the gateway (default: the
    /// gateway's own certificate when the configuration is readable).
    #[arg(long, env = "GATEHOUSE_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Write it here (private to you) instead of standard output.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// Requests you can see: pending ones by default.
    List {
        /// pending, approved, executed, denied, expired, withdrawn or all.
        #[arg(long, default_value = "pending")]
        status: String,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
    /// One request in full.
    Show {
        /// Request number.
        id: u64,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Approve a request.
    Approve {
        /// Request number.
        id: u64,
        /// Your justification (recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Deny a request.
    Deny {
        /// Request number.
        id: u64,
        /// Your justification (shown to the requester).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum AccessCommand {
    /// Ask for access to CONNECTION for a while.
    Request {
        /// The connection.
        connection: String,
        /// How long, e.g. 30m, 2h.
        #[arg(long = "for")]
        duration: String,
        /// Why (shown to approvers, recorded in the audit trail).
        #[arg(long)]
        reason: String,
        /// The group whose rules the grant gives you (one of the
        /// connection's `access_as`; default: its first).
        #[arg(long = "as")]
        as_group: Option<String>,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Grants you hold or may revoke (all of them for auditors).
    List {
        /// Only grants in force now.
        #[arg(long)]
        active: bool,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a grant; the holder's live sessions on it end.
    Revoke {
        /// Grant number.
        id: u64,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a signed access token for a subject (dev issuer only).
    Issue {
        /// The subject (`sub` claim).
        #[arg(long)]
        subject: String,
        /// Comma-separated groups.
        #[arg(long, default_value = "", value_delimiter = ',')]
        groups: Vec<String>,
        /// Email claim.
        #[arg(long)]
        email: Option<String>,
        /// Lifetime, e.g. 15m, 1h, 1d.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Create a new dev issuer key in the state folder when there is none
        /// (only tokens from the key the running gateway loaded are accepted;
        /// `gatehouse demo` and `gatehouse serve` create it themselves).
        #[arg(long)]
        create_key: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain, the checkpoint signatures, that the trail is
    /// signed where its checkpoint policy says it is, and that the store is
    /// not behind its anchor file; non-zero exit on any failure.
    Verify {
        /// Public key file (default: the one next to the configured signing key).
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Anchor file to compare the store with (default: `[audit] anchor_file`).
        #[arg(long)]
        anchor: Option<PathBuf>,
    },
    /// Write the events.
    Export {
        /// Output format.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Output file (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only this session.
        #[arg(long)]
        session: Option<String>,
        /// Only events at or after this RFC 3339 time.
        #[arg(long)]
        from: Option<String>,
        /// Only events before this RFC 3339 time.
        #[arg(long)]
        to: Option<String>,
    },
    /// Print the public key that verifies this gateway's checkpoints.
    PublicKey,
    /// Remove events past their retention ([audit.retention]) up to a signed checkpoint, leaving
    /// a signed prune record so the rest still verifies.
    Prune {
        /// Say what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `gatehouse evidence --from DATE --to DATE --out DIR`, or `gatehouse evidence verify DIR`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct EvidenceArgs {
    #[command(subcommand)]
    command: Option<EvidenceCommand>,
    /// Start of the period, inclusive: a date (2025-01-01 is midnight UTC) or an RFC 3339 time.
    #[arg(long, required = true)]
    from: Option<String>,
    /// End of the period, exclusive: a date or an RFC 3339 time.
    #[arg(long, required = true)]
    to: Option<String>,
    /// Folder to write the pack to (must not exist, or be empty).
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// When no signed checkpoint covers the period's last event (the gateway was stopped without
    /// closing its trail), sign one now with [audit] signing_key, as the gateway does at shutdown.
    /// Only while no gateway is writing to this audit store.
    #[arg(long)]
    sign_tail: bool,
    /// How long to wait for a running gateway to sign a checkpoint covering the period's end
    /// (default: [audit] checkpoint_interval_secs plus 5 seconds).
    #[arg(long)]
    wait_secs: Option<u64>,
}

/// `gatehouse reveal EVENT --identity KEY --reason WHY`, or `gatehouse reveal keygen --out FILE`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct RevealArgs {
    #[command(subcommand)]
    command: Option<RevealCommand>,
    /// The audit event (seq) whose sealed originals to open.
    #[arg(required = true)]
    event: Option<u64>,
    /// The investigator's age identity file (AGE-SECRET-KEY-1…).
    #[arg(long, required = true)]
    identity: Option<PathBuf>,
    /// Why (recorded in the audit trail with who asked).
    #[arg(long)]
    reason: Option<String>,
    /// Read the local audit store (--config) instead of asking the gateway: nothing is recorded.
    #[arg(long)]
    offline: bool,
    /// The gateway's API address.
    #[arg(long, env = "GATEHOUSE_URL")]
    url: Option<String>,
    /// Your OIDC access token (an auditor's).
    #[arg(long, env = "GATEHOUSE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM certificate to trust for the gateway.
    #[arg(long, env = "GATEHOUSE_CA_FILE")]
    ca_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum RevealCommand {
    /// Create an investigator identity; prints the recipient for [audit] seal_originals_to.
    Keygen {
        /// Where to write the identity (created 0600; keep it off the gateway).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum EvidenceCommand {
    /// Check a pack offline: manifest signature, every file, the chain segment, the recordings.
    Verify {
        /// The pack's folder.
        dir: PathBuf,
        /// The gateway's public key (from `gatehouse audit public-key`), obtained separately.
        #[arg(long)]
        public_key: PathBuf,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// Recent sessions, newest first.
    List {
        /// Only this identity (subject).
        #[arg(long)]
        subject: Option<String>,
        /// Only this connection.
        #[arg(long)]
        connection: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
    /// One session with its commands.
    Show {
        /// Session id.
        id: String,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Play an SSH session's recording in this terminal, with its timing.
    Replay {
        /// Session id.
        id: String,
        /// Playback speed (2 plays twice as fast).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Longest pause between two events, in seconds.
        #[arg(long, default_value_t = 2.0)]
        max_wait: f64,
        /// Which channel's recording, when the session has several (1, 2, …).
        #[arg(long)]
        channel: Option<u64>,
    },
}

/// Entry point; errors are printed without a backtrace and exit non-zero.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(code) => code,
        // The reader closed the pipe (`gatehouse … | head`): it has read
        // all it wanted, so stop quietly, as command-line tools do.
        Err(e) if e.downcast_ref::<ClosedStdout>().is_some() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve => {
            let cfg = GatewayConfig::resolve(cli.config.as_deref())?;
            runtime()?.block_on(serve(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { env_file } => {
            runtime()?.block_on(demo::run(env_file))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            command:
                TokenCommand::Issue {
                    subject,
                    groups,
                    email,
                    ttl,
                    create_key,
                },
        } => {
            let cfg = GatewayConfig::resolve(cli.config.as_deref())?;
            anyhow::ensure!(cfg.identity.dev_issuer, "the dev issuer is disabled in this configuration; get a token from your identity provider");
            let ttl = duration::parse(&ttl).map_err(anyhow::Error::msg)?;
            let key = cfg.state_dir().join(gatehouse_identity::DEV_KEY_FILE);
            if !create_key && !key.exists() {
                anyhow::bail!(
                    "there is no dev issuer key at {}: {}.\n\
                     A new key would sign tokens the running gateway refuses. Run this from the folder \
                     where `gatehouse demo` (or `gatehouse serve`) runs, or pass --config with that \
                     gateway's configuration (the demo's is .gatehouse/demo.toml in its folder); \
                     pass --create-key to start a new dev issuer on purpose",
                    absolute(&key).display(),
                    config_source(cli.config.as_deref())
                );
            }
            let dev = gateway::dev_issuer(&cfg, &cfg.dev_issuer_url())?;
            let groups: Vec<String> = groups.into_iter().filter(|g| !g.is_empty()).collect();
            let token = dev.issue(
                &subject,
                &groups,
                email.as_deref(),
                ttl,
                gatehouse_identity::DEV_AUDIENCE,
            )?;
            outln!("{token}")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { command } => {
            let cfg = GatewayConfig::resolve(cli.config.as_deref())?;
            audit(cfg, command)
        }
        Command::Sessions { command } => {
            let cfg = GatewayConfig::resolve(cli.config.as_deref())?;
            sessions(cfg, command)
        }
        Command::Reveal(args) => reveal(cli.config.as_deref(), args),
        Command::Evidence(args) => match args.command {
            Some(EvidenceCommand::Verify {
                dir,
                public_key,
                json,
            }) => evidence::verify(&dir, &public_key, json),
            None => {
                let cfg = GatewayConfig::resolve(cli.config.as_deref())?;
                evidence::write(
                    &cfg,
                    evidence::WriteArgs {
                        from: args.from.unwrap_or_default(),
                        to: args.to.unwrap_or_default(),
                        out: args.out.unwrap_or_default(),
                        sign_tail: args.sign_tail,
                        wait_secs: args.wait_secs,
                    },
                )
            }
        },
        Command::Approvals { api, command } => runtime()?.block_on(approvals(api, command)),
        Command::Access { api, command } => runtime()?.block_on(access(api, command)),
        Command::Kubeconfig(args) => kubeconfig(cli.config.as_deref(), args),
    }
}

/// Which configuration `GatewayConfig::resolve` used, in words.
fn config_source(flag: Option<&std::path::Path>) -> String {
    if let Some(p) = flag {
        return format!("the configuration is {} (--config)", absolute(p).display());
    }
    if let Some(p) = std::env::var_os("GATEHOUSE_CONFIG") {
        return format!(
            "the configuration is {} ($GATEHOUSE_CONFIG)",
            absolute(std::path::Path::new(&p)).display()
        );
    }
    let local = std::path::Path::new("gatehouse.toml");
    if local.exists() {
        return format!("the configuration is {}", absolute(local).display());
    }
    "no --config, $GATEHOUSE_CONFIG or ./gatehouse.toml was found, so the built-in defaults \
     apply (state folder ./.gatehouse)"
        .to_string()
}

/// `p` made absolute against the working folder, for messages.
fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Standard output's reader went away (`gatehouse sessions replay … | head`).
/// Rust ignores SIGPIPE, so writing to a closed pipe fails with `EPIPE`
/// instead of ending the process; the commands that print stop with this
/// error, and `main` exits quietly on it, as command-line tools do. The
/// long-running `serve` and `demo` never stop for a client hanging up.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct ClosedStdout;

/// A write to standard output as a command's result: a closed pipe is
/// [`ClosedStdout`], any other failure an error to report.
pub fn to_stdout<T>(written: std::io::Result<T>) -> Result<T> {
    written.map_err(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            anyhow::Error::new(ClosedStdout)
        } else {
            anyhow::Error::new(e).context("writing to standard output")
        }
    })
}

/// `gatehouse kubeconfig CONNECTION`.
fn kubeconfig(config: Option<&std::path::Path>, args: KubeconfigArgs) -> Result<ExitCode> {
    let cfg = GatewayConfig::resolve(config).ok();
    let conn = cfg
        .as_ref()
        .and_then(|c| c.connections.iter().find(|k| k.name == args.connection));
    if let Some(conn) = conn {
        anyhow::ensure!(
            conn.kind == gatehouse_core::policy::ConnectionKind::Kubernetes,
            "connection \"{}\" is not a Kubernetes connection",
            args.connection
        );
    }
    let prefix = conn
        .and_then(|c| c.path_prefix.clone())
        .unwrap_or_else(|| format!("/{}", args.connection));
    let server = match &args.server {
        Some(s) => format!("{}{prefix}", s.trim_end_matches('/')),
        None => {
            let listen = cfg
                .as_ref()
                .map(|c| c.http.clone().unwrap_or_default().listen)
                .context("pass --server (or GATEHOUSE_HTTP_URL): no gateway configuration was found to read [http] listen from")?;
            format!("https://{listen}{prefix}")
        }
    };
    anyhow::ensure!(
        server.starts_with("https://"),
        "the server must be https: kubectl sends the token only over TLS"
    );
    let ca_path = args.ca_file.clone().or_else(|| {
        cfg.as_ref()
            .map(|c| c.state_dir().join("tls-cert.pem"))
            .filter(|p| p.exists())
    });
    let ca_pem = match &ca_path {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    let text = crate::kubeconfig::render(
        &format!("gatehouse-{}", args.connection),
        &server,
        ca_pem.as_deref(),
        "gatehouse",
        args.token.trim(),
    );
    match &args.out {
        Some(path) => {
            crate::files::write_private(path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote {}; use it with: KUBECONFIG={} kubectl get pods",
                path.display(),
                path.display()
            );
        }
        None => out!("{text}")?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn approvals(api: ApiArgs, command: ApprovalsCommand) -> Result<ExitCode> {
    let client = ApiClient::new(&api)?;
    match command {
        ApprovalsCommand::List { status, json } => {
            let v = client
                .get(&format!("/api/v1/approvals?status={status}"))
                .await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&v["requests"])?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let list = v["requests"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                outln!("no {status} requests you can see")?;
            }
            for r in list {
                outln!(
                    "#{:<5} {:<9} {:<8} {:<14} {}{}",
                    r["id"],
                    r["status"].as_str().unwrap_or(""),
                    r["kind"].as_str().unwrap_or(""),
                    r["connection"].as_str().unwrap_or(""),
                    r["title"].as_str().unwrap_or(""),
                    if r["can_decide"] == true {
                        "  [you can decide]"
                    } else {
                        ""
                    }
                )?;
            }
        }
        ApprovalsCommand::Show { id, json } => {
            let r = client.get(&format!("/api/v1/approvals/{id}")).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&r)?)?;
            } else {
                print_request(&r)?;
            }
        }
        ApprovalsCommand::Approve { id, reason } => decide(&client, id, "approve", reason).await?,
        ApprovalsCommand::Deny { id, reason } => decide(&client, id, "deny", reason).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn decide(client: &ApiClient, id: u64, verb: &str, reason: String) -> Result<()> {
    let r = client
        .post(
            &format!("/api/v1/approvals/{id}/{verb}"),
            &serde_json::json!({ "reason": reason }),
        )
        .await?;
    outln!(
        "request #{id} is now {}{}",
        r["status"].as_str().unwrap_or("?"),
        match r["status"].as_str() {
            Some("pending") => " (more approvals are needed)",
            _ => "",
        }
    )?;
    Ok(())
}

fn print_request(r: &serde_json::Value) -> Result<()> {
    let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
    outln!("request #{}  {}  ({})", r["id"], s("status"), s("kind"))?;
    outln!("  {}", s("title"))?;
    outln!(
        "  requester:  {}",
        r["requester"]["email"]
            .as_str()
            .or(r["requester"]["subject"].as_str())
            .unwrap_or("")
    )?;
    outln!("  connection: {}", s("connection"))?;
    if let Some(c) = r["command"].as_str() {
        outln!("  rule:       {}", s("rule"))?;
        // Control characters could redraw the approver's terminal and show
        // a different command than the one that runs: print them escaped.
        let shown: String = c
            .chars()
            .map(|ch| match ch {
                '\n' => "\n    ".to_string(),
                ch if ch.is_control() => ch.escape_default().to_string(),
                ch => ch.to_string(),
            })
            .collect();
        outln!("  command:\n    {shown}")?;
    }
    if s("kind") == "access" {
        let groups: Vec<&str> = r["access_as"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str())
            .collect();
        outln!(
            "  acts as:    {}",
            if groups.is_empty() {
                "no group (the policy's defaults only)".to_string()
            } else {
                groups.join(", ")
            }
        )?;
    }
    outln!("  message:    {}", s("message"))?;
    outln!("  needs:      {}", s("requirement_text"))?;
    outln!("  link:       {}", s("link"))?;
    for d in r["decisions"].as_array().into_iter().flatten() {
        outln!(
            "  {} by {} at {}: {}",
            if d["approve"] == true {
                "approved"
            } else {
                "denied"
            },
            d["approver"]["email"]
                .as_str()
                .or(d["approver"]["subject"].as_str())
                .unwrap_or(""),
            d["at"].as_str().unwrap_or(""),
            d["reason"].as_str().unwrap_or("")
        )?;
    }
    Ok(())
}

async fn access(api: ApiArgs, command: AccessCommand) -> Result<ExitCode> {
    let client = ApiClient::new(&api)?;
    match command {
        AccessCommand::Request {
            connection,
            duration,
            reason,
            as_group,
            json,
        } => {
            let r = client
                .post(
                    "/api/v1/access",
                    &serde_json::json!({"connection": connection, "duration": duration, "reason": reason, "as": as_group}),
                )
                .await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&r)?)?;
            } else {
                outln!(
                    "access request #{} is waiting for {}: {}",
                    r["id"],
                    r["requirement_text"].as_str().unwrap_or("approval"),
                    r["link"].as_str().unwrap_or("")
                )?;
            }
        }
        AccessCommand::List { active, json } => {
            let v = client
                .get(&format!("/api/v1/grants?active={active}"))
                .await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&v["grants"])?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let now = chrono::Utc::now().timestamp();
            for g in v["grants"].as_array().into_iter().flatten() {
                let state = if !g["revoked_at"].is_null() {
                    "revoked"
                } else if g["expires_at"].as_i64().unwrap_or(0) <= now {
                    "expired"
                } else {
                    "active"
                };
                outln!(
                    "grant #{:<5} {:<8} {:<14} {} until {}",
                    g["id"],
                    state,
                    g["connection"].as_str().unwrap_or(""),
                    g["holder"]["email"]
                        .as_str()
                        .or(g["holder"]["subject"].as_str())
                        .unwrap_or(""),
                    chrono::DateTime::from_timestamp(g["expires_at"].as_i64().unwrap_or(0), 0)
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default()
                )?;
            }
        }
        AccessCommand::Revoke { id, reason } => {
            client
                .post(
                    &format!("/api/v1/grants/{id}/revoke"),
                    &serde_json::json!({ "reason": reason }),
                )
                .await?;
            outln!("grant #{id} is revoked; its live sessions were ended")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(cfg: GatewayConfig) -> Result<()> {
    let gw = gateway::RunningGateway::start(&cfg).await?;
    eprintln!(
        "gatehouse: PostgreSQL on {} (TLS), API on https://{}",
        gw.postgres_addr, gw.api_addr
    );
    wait_for_signal().await;
    eprintln!("gatehouse: shutting down; signing the final audit checkpoint");
    gw.shutdown().await;
    Ok(())
}

/// Wait for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn audit(cfg: GatewayConfig, command: AuditCommand) -> Result<ExitCode> {
    let db = cfg.state_path(&cfg.audit.path);
    let key_path = cfg.state_path(&cfg.audit.signing_key);
    match command {
        AuditCommand::Verify { public_key, anchor } => {
            let pub_path =
                public_key.unwrap_or_else(|| gatehouse_audit::public_key_path(&key_path));
            let key = gatehouse_audit::load_verifying_key(&pub_path)
                .with_context(|| format!("reading the public key {}", pub_path.display()))?;
            let options = gatehouse_audit::VerifyOptions {
                configured_policy: Some(cfg.audit.checkpoint_policy()),
                anchor_file: Some(anchor.unwrap_or_else(|| cfg.state_path(&cfg.audit.anchor_file))),
                ..Default::default()
            };
            let report = gatehouse_audit::verify_with(&db, &key, &options)?;
            print_verify_report(&report)?;
            Ok(if report.is_intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AuditCommand::Export {
            format,
            out,
            session,
            from,
            to,
        } => {
            anyhow::ensure!(
                format == "jsonl",
                "unknown export format \"{format}\"; use jsonl"
            );
            let filter = ExportFilter {
                from,
                to,
                session_id: session,
            };
            let n = match out {
                Some(path) => {
                    let mut f = std::io::BufWriter::new(
                        std::fs::File::create(&path)
                            .with_context(|| format!("creating {}", path.display()))?,
                    );
                    gatehouse_audit::export_jsonl(&db, &mut f, &filter)?
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut lock = stdout.lock();
                    match gatehouse_audit::export_jsonl(&db, &mut lock, &filter) {
                        Err(gatehouse_audit::AuditError::Output(e))
                            if e.kind() == std::io::ErrorKind::BrokenPipe =>
                        {
                            return Err(ClosedStdout.into())
                        }
                        written => written?,
                    }
                }
            };
            eprintln!("exported {n} events");
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Prune { dry_run } => {
            let policy = cfg.audit.retention_policy().map_err(anyhow::Error::msg)?;
            anyhow::ensure!(
                policy.default.is_some() || !policy.by_kind.is_empty(),
                "no [audit.retention] in the configuration: every event is kept; set e.g. \
                 retention = {{ default = \"400d\" }} under [audit]"
            );
            let signer = gatehouse_audit::AuditSigner::load(&key_path).context(
                "the prune record is signed with the checkpoint key ([audit] signing_key)",
            )?;
            let outcome =
                gatehouse_audit::prune(&db, &policy, &signer, chrono::Utc::now(), dry_run)?;
            match &outcome.anchor {
                None => outln!(
                    "nothing to prune: the oldest event still within its retention has no earlier signed checkpoint \
                     (the newest checkpoint is never pruned through)"
                )?,
                Some(cp) => outln!(
                    "{} {} events (1–{}) and {} checkpoints; the trail now starts after checkpoint {} (event {}){}",
                    if dry_run { "would remove" } else { "removed" },
                    outcome.events,
                    cp.event_seq,
                    outcome.checkpoints,
                    cp.seq,
                    cp.event_seq,
                    outcome
                        .record
                        .as_ref()
                        .map(|r| format!("; signed prune record {}", r.seq))
                        .unwrap_or_default()
                )?,
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::PublicKey => {
            let pub_path = gatehouse_audit::public_key_path(&key_path);
            let text = std::fs::read_to_string(&pub_path).with_context(|| {
                format!(
                    "reading {} (start the gateway once to create the signing key)",
                    pub_path.display()
                )
            })?;
            out!("{text}")?;
            if let Ok(key) = gatehouse_audit::load_verifying_key(&pub_path) {
                eprintln!(
                    "fingerprint {} (compare it with the one in an evidence pack's manifest)",
                    gatehouse_audit::key_fingerprint(&key)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `audit verify`'s report: the verdict, then what was checked.
fn print_verify_report(report: &gatehouse_audit::VerifyReport) -> Result<()> {
    match &report.first_bad {
        None => outln!(
            "audit trail intact: {} events, {} signed checkpoints (last covers event {}), {} events after the last checkpoint{}",
            report.events,
            report.checkpoints,
            report
                .last_checkpoint_seq
                .map_or("none".to_string(), |s| s.to_string()),
            report.unsigned_tail,
            report
                .pruned_through
                .map(|p| format!(
                    "; events 1–{p} were pruned under the retention policy (signed prune record)"
                ))
                .unwrap_or_default()
        )?,
        Some(bad) => {
            outln!(
                "audit trail FAILED verification (tampered, or not signed where its policy says it is): first bad event {}: {}",
                bad.seq, bad.reason
            )?;
            for more in &report.other_problems {
                outln!("  also: event {}: {}", more.seq, more.reason)?;
            }
        }
    }
    let running = match report.writer_running {
        Some(true) => "a gateway is writing it",
        Some(false) => "no gateway is writing it",
        None => "cannot tell whether a gateway is writing it",
    };
    match (&report.unsigned_since, report.unsigned_age_ms) {
        (Some(since), Some(age)) => outln!(
            "  unsigned tail: {} events, the oldest written {since} ({:.1} s ago); {running}",
            report.unsigned_tail,
            age as f64 / 1000.0
        )?,
        _ => outln!("  unsigned tail: none; {running}")?,
    }
    if let Some(p) = &report.policy {
        let interval = p.interval_ms as f64 / 1000.0;
        match p.signed_by_checkpoint {
            Some(cp) => outln!(
                "  checkpoint policy: every {} events or {interval} s, as signed by checkpoint {cp} (the configuration cannot relax it)",
                p.every
            )?,
            None => outln!(
                "  checkpoint policy: every {} events or {interval} s, from the configuration (the trail signs none)",
                p.every
            )?,
        }
    }
    if let Some(a) = &report.anchor {
        outln!(
            "  anchor {}: {} checkpoints, newest {}{}",
            a.path,
            a.entries,
            a.newest.map_or("none".to_string(), |n| n.to_string()),
            if a.pruned > 0 {
                format!(
                    " ({} of them pruned from the store by a signed prune record)",
                    a.pruned
                )
            } else {
                String::new()
            }
        )?;
    }
    for note in &report.notes {
        outln!("  note: {note}")?;
    }
    Ok(())
}

fn sessions(cfg: GatewayConfig, command: SessionsCommand) -> Result<ExitCode> {
    let db = cfg.state_path(&cfg.audit.path);
    match command {
        SessionsCommand::List {
            subject,
            connection,
            limit,
            json,
        } => {
            let filter = SessionFilter {
                subject,
                connection,
                since: None,
                until: None,
                limit: Some(limit),
            };
            let list = gatehouse_audit::list_sessions(&db, &filter)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                outln!(
                    "{:<24}  {:<12}  {:<10}  {:<24}  {:>8}  {:>7}",
                    "SESSION",
                    "IDENTITY",
                    "CONNECTION",
                    "STARTED",
                    "COMMANDS",
                    "BLOCKED"
                )?;
                for s in list {
                    outln!(
                        "{:<24}  {:<12}  {:<10}  {:<24}  {:>8}  {:>7}",
                        s.id,
                        s.subject.unwrap_or_default(),
                        s.connection.unwrap_or_default(),
                        s.started_at,
                        s.commands,
                        s.blocked
                    )?;
                }
            }
        }
        SessionsCommand::Replay {
            id,
            speed,
            max_wait,
            channel,
        } => {
            let events = gatehouse_audit::session_events(&db, &id)?;
            anyhow::ensure!(
                !events.is_empty(),
                "no session {id} in the audit trail; see `gatehouse sessions list`"
            );
            let recordings: Vec<_> = events
                .iter()
                .filter(|e| e.kind == "recording")
                .filter(|e| channel.is_none_or(|c| e.data["channel"].as_u64() == Some(c)))
                .collect();
            let Some(rec) = recordings.first() else {
                anyhow::bail!(
                    "session {id} has no terminal recording{} (SSH shell and exec channels and kubectl exec/attach streams are recorded; a recording is chained when it closes)",
                    channel.map(|c| format!(" for channel {c}")).unwrap_or_default()
                );
            };
            let file = rec.data["file"].as_str().unwrap_or_default();
            let path = cfg.recordings_dir().join(file);
            let bytes = std::fs::read(&path)
                .with_context(|| format!("reading recording {}", path.display()))?;
            let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            anyhow::ensure!(
                Some(digest.as_str()) == rec.data["sha256"].as_str(),
                "recording {} does not match the SHA-256 chained in audit event #{}: it was altered after the session",
                path.display(),
                rec.seq
            );
            anyhow::ensure!(speed > 0.0, "--speed must be above 0");
            let (_, frames) = gatehouse_core::recording::read(&path).map_err(anyhow::Error::msg)?;
            eprintln!(
                "replaying {} (SHA-256 verified against audit event #{}); {} recording(s) in this session",
                file,
                rec.seq,
                recordings.len()
            );
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let mut last = 0.0f64;
            for (t, code, data) in frames {
                let wait = ((t - last).max(0.0) / speed).min(max_wait);
                last = t;
                if code != "o" {
                    continue;
                }
                std::thread::sleep(std::time::Duration::from_secs_f64(wait));
                to_stdout(out.write_all(data.as_bytes()))?;
                to_stdout(out.flush())?;
            }
            eprintln!("\n[end of recording]");
        }
        SessionsCommand::Show { id, json } => {
            let events = gatehouse_audit::session_events(&db, &id)?;
            anyhow::ensure!(
                !events.is_empty(),
                "no session {id} in the audit trail; see `gatehouse sessions list`"
            );
            if json {
                outln!("{}", serde_json::to_string_pretty(&events)?)?;
            } else {
                for e in events {
                    outln!("{}", describe_event(&e))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per event for people.
fn describe_event(e: &gatehouse_audit::AuditEvent) -> String {
    let d = &e.data;
    let s = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    match e.kind.as_str() {
        "session.start" => format!(
            "#{} {} session start: {} on {} from {} ({})",
            e.seq,
            e.ts,
            e.subject.clone().unwrap_or_default(),
            e.connection.clone().unwrap_or_default(),
            s("client_addr"),
            transport(d)
        ),
        "command" => {
            let verdict = d.get("verdict");
            let effect = verdict
                .and_then(|v| v.get("effect"))
                .and_then(|v| v.as_str())
                .unwrap_or("?");
            let rule = verdict
                .and_then(|v| v.get("rule"))
                .and_then(|v| v.as_str())
                .map(|r| format!(" (rule {r})"))
                .unwrap_or_default();
            format!(
                "#{} {} command {} [{effect}{rule}]: {}",
                e.seq,
                e.ts,
                d.get("command_id").cloned().unwrap_or_default(),
                if d.get("sql").is_some() {
                    s("sql")
                } else {
                    format!("{} {}", s("kind"), s("command"))
                }
            )
        }
        "command.result" if d.get("exit_status").is_some() => format!(
            "#{} {} result of command {}: exit status {}{}",
            e.seq,
            e.ts,
            d.get("command_id").cloned().unwrap_or_default(),
            d.get("exit_status").cloned().unwrap_or_default(),
            d.get("transfer")
                .filter(|t| !t.is_null())
                .map(|t| format!(", {} {} bytes", t["direction"], t["bytes"]))
                .unwrap_or_default()
        ),
        "recording" => format!(
            "#{} {} recording of channel {}: {} ({} bytes, SHA-256 {}); replay with `gatehouse sessions replay {}`",
            e.seq,
            e.ts,
            d.get("channel").cloned().unwrap_or_default(),
            s("file"),
            d.get("size").cloned().unwrap_or_default(),
            s("sha256"),
            e.session_id.clone().unwrap_or_default()
        ),
        "file.transfer" => format!(
            "#{} {} {} {} ({} bytes over {})",
            e.seq,
            e.ts,
            s("direction"),
            s("path"),
            d.get("bytes").cloned().unwrap_or_default(),
            s("protocol")
        ),
        "command.result" => format!(
            "#{} {} result of command {}: {} rows, masked {}{}",
            e.seq,
            e.ts,
            d.get("command_id").cloned().unwrap_or_default(),
            d.get("rows").cloned().unwrap_or_default(),
            d.get("masked").cloned().unwrap_or_default(),
            d.get("error")
                .filter(|v| !v.is_null())
                .map(|v| format!(", error {v}"))
                .unwrap_or_default()
        ),
        "session.expired" => format!(
            "#{} {} session expired: token expired at {} ({})",
            e.seq,
            e.ts,
            s("token_expires_at"),
            s("reason")
        ),
        "session.end" => format!(
            "#{} {} session end: {} commands, {} blocked, {} ms{}",
            e.seq,
            e.ts,
            d.get("commands").cloned().unwrap_or_default(),
            d.get("blocked").cloned().unwrap_or_default(),
            d.get("duration_ms").cloned().unwrap_or_default(),
            Some(s("reason"))
                .filter(|r| !r.is_empty())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        "approval.requested" => format!(
            "#{} {} approval request #{} opened{}{}{}",
            e.seq,
            e.ts,
            d.get("request_id").cloned().unwrap_or_default(),
            d.get("rule")
                .and_then(|v| v.as_str())
                .map(|r| format!(" by rule {r}"))
                .unwrap_or_default(),
            d.get("requirement")
                .cloned()
                .and_then(|r| serde_json::from_value::<gatehouse_core::approval::Requirement>(r).ok())
                .map(|r| format!("; needs {}", r.describe()))
                .unwrap_or_default(),
            d.get("expires_at")
                .and_then(|v| v.as_str())
                .map(|x| format!("; expires {x}"))
                .unwrap_or_default()
        ),
        "approval.decision" => format!(
            "#{} {} request #{} {} by {}: {}",
            e.seq,
            e.ts,
            d.get("request_id").cloned().unwrap_or_default(),
            if s("decision") == "approve" {
                "approved"
            } else {
                "denied"
            },
            person(d.get("approver")),
            s("reason")
        ),
        "approval.approved" | "approval.denied" | "approval.expired" | "approval.executed"
        | "approval.withdrawn" => format!(
            "#{} {} request #{} {}{}",
            e.seq,
            e.ts,
            d.get("request_id").cloned().unwrap_or_default(),
            match e.kind.as_str() {
                "approval.approved" => "was approved",
                "approval.denied" => "was denied",
                "approval.expired" => "expired: nobody decided in time",
                "approval.executed" => "ran: the approved command was forwarded, once",
                _ => "was withdrawn",
            },
            d.get("why")
                .and_then(|v| v.as_str())
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        ),
        "grant.created" | "grant.revoked" | "grant.expired" => format!(
            "#{} {} access grant #{} {} (request #{}){}",
            e.seq,
            e.ts,
            d.get("grant_id").cloned().unwrap_or_default(),
            match e.kind.as_str() {
                "grant.created" => "created".to_string(),
                "grant.revoked" => format!("revoked by {}", person(d.get("revoked_by"))),
                _ => "expired".to_string(),
            },
            d.get("request_id").cloned().unwrap_or_default(),
            d.get("reason")
                .and_then(|v| v.as_str())
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        other => format!("#{} {} {other}: {}", e.seq, e.ts, fields(d)),
    }
}

/// How a session's client reached the gateway, for `sessions show`.
fn transport(d: &serde_json::Value) -> String {
    match d.get("protocol").and_then(|v| v.as_str()) {
        // SSH is its own encrypted transport; it carries no `tls` flag.
        Some("ssh") => "ssh, encrypted".to_string(),
        protocol => {
            let tls = if d.get("tls").and_then(|v| v.as_bool()) == Some(true) {
                "TLS"
            } else {
                "no TLS"
            };
            match protocol {
                Some(p) => format!("{p}, {tls}"),
                None => tls.to_string(),
            }
        }
    }
}

/// An identity as people name it: the email, else the subject.
fn person(v: Option<&serde_json::Value>) -> String {
    v.and_then(|v| {
        v.get("email")
            .and_then(|x| x.as_str())
            .or_else(|| v.get("subject").and_then(|x| x.as_str()))
            .or_else(|| v.as_str())
    })
    .unwrap_or("?")
    .to_string()
}

/// An event's fields as `key=value` pairs (nested values as compact JSON),
/// for kinds without a sentence of their own.
fn fields(d: &serde_json::Value) -> String {
    match d.as_object() {
        Some(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => d.to_string(),
    }
}

fn reveal(config: Option<&std::path::Path>, args: RevealArgs) -> Result<ExitCode> {
    if let Some(RevealCommand::Keygen { out }) = args.command {
        anyhow::ensure!(
            !out.exists(),
            "{} exists; an identity is never overwritten",
            out.display()
        );
        let id = gatehouse_seal::Identity::generate();
        let text = format!(
            "# gatehouse investigator identity (age X25519); keep it off the gateway\n# public key: {}\n{}\n",
            id.recipient(),
            id.to_secret_string()
        );
        crate::files::write_private(&out, text.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
        outln!("{}", id.recipient())?;
        eprintln!(
            "identity written to {}; put the line above in [audit] seal_originals_to",
            out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let seq = args.event.unwrap_or_default();
    let identity_path = args.identity.unwrap_or_default();
    let identity = gatehouse_seal::Identity::parse(
        &std::fs::read_to_string(&identity_path)
            .with_context(|| format!("reading the identity {}", identity_path.display()))?,
    )?;
    let sealed = if args.offline {
        let cfg = GatewayConfig::resolve(config)?;
        let db = cfg.state_path(&cfg.audit.path);
        let event = gatehouse_audit::TrailReader::open(&db)?
            .after(seq.saturating_sub(1), 1)?
            .into_iter()
            .next()
            .filter(|e| e.seq == seq)
            .with_context(|| format!("there is no audit event {seq} in {}", db.display()))?;
        eprintln!(
            "offline: read from {}; this reveal is NOT recorded in the audit trail",
            db.display()
        );
        event
            .data
            .get("sealed_originals")
            .and_then(|v| v.as_str())
            .with_context(|| {
                format!(
                    "audit event {seq} ({}) holds no sealed originals",
                    event.kind
                )
            })?
            .to_string()
    } else {
        let api = ApiArgs {
            url: args.url.context("set GATEHOUSE_URL (or --url) to reveal through the gateway, which records it; or use --offline")?,
            token: args.token.context("set GATEHOUSE_TOKEN (or --token): an auditor's token")?,
            ca_file: args.ca_file,
        };
        let reason = args
            .reason
            .filter(|r| !r.trim().is_empty())
            .context("say why with --reason: the reveal is recorded in the audit trail")?;
        let client = ApiClient::new(&api)?;
        let r = runtime()?.block_on(client.post(
            &format!("/api/v1/audit/events/{seq}/reveal"),
            &serde_json::json!({ "reason": reason }),
        ))?;
        eprintln!("recorded in the audit trail as event {}", r["recorded_as"]);
        r["sealed_originals"]
            .as_str()
            .context("the gateway returned no sealed originals")?
            .to_string()
    };
    let plain = gatehouse_seal::open(&identity, &sealed)?;
    let value: serde_json::Value =
        serde_json::from_slice(&plain).context("the sealed originals are not JSON")?;
    outln!("{}", serde_json::to_string_pretty(&value)?)?;
    Ok(ExitCode::SUCCESS)
}
