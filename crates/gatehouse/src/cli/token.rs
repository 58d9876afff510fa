//! `gatehouse token issue`: tokens from the local dev issuer.

use crate::config::GatewayConfig;
use crate::{duration, gateway};
use anyhow::Result;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum TokenCommand {
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

/// `gatehouse token issue`.
pub(super) fn run(config: Option<&Path>, command: TokenCommand) -> Result<ExitCode> {
    let TokenCommand::Issue {
        subject,
        groups,
        email,
        ttl,
        create_key,
    } = command;
    let cfg = GatewayConfig::resolve(config)?;
    anyhow::ensure!(
        cfg.identity.dev_issuer_on(),
        "the dev issuer is disabled in this configuration; get a token from your identity provider"
    );
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
            config_source(config)
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

/// Which configuration `GatewayConfig::resolve` used, in words.
fn config_source(flag: Option<&Path>) -> String {
    if let Some(p) = flag {
        return format!("the configuration is {} (--config)", absolute(p).display());
    }
    if let Some(p) = std::env::var_os("GATEHOUSE_CONFIG") {
        return format!(
            "the configuration is {} ($GATEHOUSE_CONFIG)",
            absolute(Path::new(&p)).display()
        );
    }
    let local = Path::new("gatehouse.toml");
    if local.exists() {
        return format!("the configuration is {}", absolute(local).display());
    }
    "no --config, $GATEHOUSE_CONFIG or ./gatehouse.toml was found, so the built-in defaults \
     apply (state folder ./.gatehouse)"
        .to_string()
}

/// `p` made absolute against the working folder, for messages.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
