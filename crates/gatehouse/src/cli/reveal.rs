//! `gatehouse reveal`: open the sealed originals of an audit event, and
//! `gatehouse reveal keygen`.

use super::runtime;
use crate::client::{ApiArgs, ApiClient};
use crate::config::GatewayConfig;
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `gatehouse reveal EVENT --identity KEY --reason WHY`, or `gatehouse reveal keygen --out FILE`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(super) struct RevealArgs {
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
pub(super) enum RevealCommand {
    /// Create an investigator identity; prints the recipient for [audit] seal_originals_to.
    Keygen {
        /// Where to write the identity (created 0600; keep it off the gateway).
        #[arg(long)]
        out: PathBuf,
    },
}

pub(super) fn run(config: Option<&Path>, args: RevealArgs) -> Result<ExitCode> {
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
