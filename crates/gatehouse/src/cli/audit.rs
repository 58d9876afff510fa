//! `gatehouse audit`: verify, export and prune the audit trail, and print
//! its public key.

use super::ClosedStdout;
use crate::config::GatewayConfig;
use anyhow::{Context, Result};
use clap::Subcommand;
use gatehouse_audit::ExportFilter;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum AuditCommand {
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

pub(super) fn run(cfg: GatewayConfig, command: AuditCommand) -> Result<ExitCode> {
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
