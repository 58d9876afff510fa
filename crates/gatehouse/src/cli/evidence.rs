//! `gatehouse evidence`: write an evidence pack for a period, or verify one
//! offline.

use crate::config::GatewayConfig;
use anyhow::Result;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `gatehouse evidence --from DATE --to DATE --out DIR`, or `gatehouse evidence verify DIR`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(super) struct EvidenceArgs {
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

#[derive(Subcommand)]
pub(super) enum EvidenceCommand {
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

/// `gatehouse evidence …`.
pub(super) fn run(config: Option<&Path>, args: EvidenceArgs) -> Result<ExitCode> {
    match args.command {
        Some(EvidenceCommand::Verify {
            dir,
            public_key,
            json,
        }) => crate::evidence::verify(&dir, &public_key, json),
        None => {
            let cfg = GatewayConfig::resolve(config)?;
            crate::evidence::write(
                &cfg,
                crate::evidence::WriteArgs {
                    from: args.from.unwrap_or_default(),
                    to: args.to.unwrap_or_default(),
                    out: args.out.unwrap_or_default(),
                    sign_tail: args.sign_tail,
                    wait_secs: args.wait_secs,
                },
            )
        }
    }
}
