//! Command-line interface: the parser, the entry point and the dispatch;
//! each group of subcommands lives in a module of its own.

mod approvals;
mod audit;
mod evidence;
mod kubeconfig;
mod reveal;
mod serve;
mod sessions;
mod token;

use crate::client::ApiArgs;
use crate::config::GatewayConfig;
use crate::demo;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

pub use serve::wait_for_signal;

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
        command: token::TokenCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Evidence packs for examiners: write one for a period, or verify one offline.
    Evidence(evidence::EvidenceArgs),
    /// Open the sealed originals of an audit event with an investigator's identity.
    Reveal(reveal::RevealArgs),
    /// Sessions recorded in the audit trail.
    Sessions {
        #[command(subcommand)]
        command: sessions::SessionsCommand,
    },
    /// Held commands and access requests waiting for people (through the API).
    Approvals {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: approvals::ApprovalsCommand,
    },
    /// Time-bound access to connections your groups do not reach (through the API).
    Access {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: approvals::AccessCommand,
    },
    /// Write a kubeconfig that sends kubectl through the gateway to a
    /// Kubernetes connection, as you.
    Kubeconfig(kubeconfig::KubeconfigArgs),
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
            runtime()?.block_on(serve::serve(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { env_file } => {
            runtime()?.block_on(demo::run(env_file))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { command } => token::run(cli.config.as_deref(), command),
        Command::Audit { command } => {
            let cfg = GatewayConfig::resolve(cli.config.as_deref())?;
            audit::run(cfg, command)
        }
        Command::Sessions { command } => {
            let cfg = GatewayConfig::resolve(cli.config.as_deref())?;
            sessions::run(cfg, command)
        }
        Command::Reveal(args) => reveal::run(cli.config.as_deref(), args),
        Command::Evidence(args) => evidence::run(cli.config.as_deref(), args),
        Command::Approvals { api, command } => runtime()?.block_on(approvals::run(api, command)),
        Command::Access { api, command } => runtime()?.block_on(approvals::access(api, command)),
        Command::Kubeconfig(args) => kubeconfig::run(cli.config.as_deref(), args),
    }
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
