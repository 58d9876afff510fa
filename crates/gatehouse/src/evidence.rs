//! `gatehouse evidence`: write an evidence pack for a period, and verify one
//! offline. The pack itself is built by the `gatehouse-evidence` crate; this
//! is the operator's side: finding the trail and the key from the
//! configuration, and making sure the period's end is covered by a signed
//! checkpoint.

use crate::config::GatewayConfig;
use crate::gateway;
use anyhow::{Context, Result};
use gatehouse_audit::{key_fingerprint, public_key_path, AuditSigner};
use gatehouse_evidence::{plan_segment, verify_pack, write_pack_with, PackOptions, SegmentPlan};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// What `gatehouse evidence` was asked for.
pub struct WriteArgs {
    /// Period start (inclusive).
    pub from: String,
    /// Period end (exclusive).
    pub to: String,
    /// Output folder.
    pub out: PathBuf,
    /// Sign a checkpoint over an unsigned tail (gateway stopped).
    pub sign_tail: bool,
    /// How long to wait for a running gateway's checkpoint.
    pub wait_secs: Option<u64>,
}

/// Write a pack; exit 1 if the segment did not verify at export.
pub fn write(cfg: &GatewayConfig, args: WriteArgs) -> Result<ExitCode> {
    let db = cfg.state_path(&cfg.audit.path);
    let key_path = cfg.state_path(&cfg.audit.signing_key);
    anyhow::ensure!(
        db.exists(),
        "there is no audit store at {}; check [audit] path and state_dir in the configuration",
        db.display()
    );
    let signer = AuditSigner::load(&key_path).context(
        "the pack's manifest is signed with the gateway's checkpoint key ([audit] signing_key)",
    )?;
    let mut plan = plan_segment(&db, Some(&args.from), Some(&args.to))?;
    if !plan.is_closed() && args.sign_tail {
        eprintln!(
            "no signed checkpoint covers event {} yet; signing one now with {} (as the gateway does at shutdown)",
            plan.period.1,
            key_path.display()
        );
        let log = gateway::open_audit(cfg).context(
            "opening the audit trail to sign its tail (is a gateway still running on it? then leave out --sign-tail)",
        )?;
        log.shutdown_blocking()
            .context("signing a checkpoint over the trail's tail")?;
        plan = plan_segment(&db, Some(&args.from), Some(&args.to))?;
    }
    if !plan.is_closed() {
        let wait = Duration::from_secs(
            args.wait_secs
                .unwrap_or(cfg.audit.checkpoint_interval_secs.saturating_add(5)),
        );
        if !wait.is_zero() {
            eprintln!(
                "waiting up to {}s for the running gateway to sign a checkpoint covering event {} \
                 (if the gateway is stopped, run again with --sign-tail)…",
                wait.as_secs(),
                plan.period.1
            );
        }
        plan = wait_for_checkpoint(&db, &args, plan, wait)?;
    }
    if !plan.is_closed() {
        eprintln!(
            "warning: no signed checkpoint covers events after {} yet; the pack marks events up to {} as protected by \
             the hash chain and the pack's signature only. If the gateway is stopped, run again with --sign-tail.",
            plan.checkpoints
                .last()
                .map_or("the start of the trail".to_string(), |cp| format!("event {}", cp.event_seq)),
            plan.last_seq
        );
    }
    let generator = format!("gatehouse {}", env!("CARGO_PKG_VERSION"));
    // Terminal recordings (SSH, kubectl exec) go in the pack too.
    let options = PackOptions {
        recordings_dir: Some(cfg.recordings_dir()),
    };
    let summary = write_pack_with(&db, &plan, &signer, &args.out, &generator, &options)?;
    let m = &summary.manifest;
    if !m.recordings.is_empty() {
        eprintln!(
            "{} terminal recording(s) included, each checked against the SHA-256 the trail recorded",
            m.recordings.len()
        );
    }
    outln!(
        "evidence pack written to {}\n  period      {} ({} events: {}–{})\n  segment     events {}–{} with {} checkpoint(s); {}\n  files       {} (plus manifest.json and manifest.sig)\n  signed by   Ed25519 {}\n  verify with gatehouse evidence verify {} --public-key {}",
        args.out.display(),
        gatehouse_evidence::period_text(&m.period),
        m.period.last_seq + 1 - m.period.first_seq,
        m.period.first_seq,
        m.period.last_seq,
        m.segment.first_seq,
        m.segment.last_seq,
        m.segment.checkpoints,
        if summary.verification.is_intact() {
            "chain intact".to_string()
        } else {
            format!("{} PROBLEM(S)", summary.verification.problems.len())
        },
        m.files.len(),
        m.signing_key.fingerprint,
        args.out.display(),
        public_key_path(&key_path).display()
    )?;
    if !summary.verification.is_intact() {
        for p in &summary.verification.problems {
            outln!("  problem     {p}")?;
        }
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn wait_for_checkpoint(
    db: &Path,
    args: &WriteArgs,
    mut plan: SegmentPlan,
    wait: Duration,
) -> Result<SegmentPlan> {
    let deadline = Instant::now() + wait;
    while !plan.is_closed() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        plan = plan_segment(db, Some(&args.from), Some(&args.to))?;
    }
    Ok(plan)
}

/// Verify a pack; exit 0 when verified, 1 when anything fails.
pub fn verify(dir: &Path, public_key: &Path, json: bool) -> Result<ExitCode> {
    let key = gatehouse_audit::load_verifying_key(public_key)?;
    let v = verify_pack(dir, &key)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        outln!("evidence pack {}", dir.display())?;
        outln!(
            "  public key   {} ({})",
            key_fingerprint(&key),
            public_key.display()
        )?;
        for c in &v.checks {
            outln!(
                "  {:<4} {:<11} {}",
                if c.ok { "ok" } else { "FAIL" },
                c.area,
                c.detail
            )?;
        }
        for n in &v.notes {
            outln!("  note: {n}")?;
        }
        if !v.problems.is_empty() {
            outln!("problems:")?;
            for p in &v.problems {
                outln!("  - {p}")?;
            }
        }
        if v.is_verified() {
            outln!("RESULT: VERIFIED")?;
        } else {
            outln!("RESULT: FAILED ({} problem(s))", v.problems.len())?;
        }
    }
    Ok(if v.is_verified() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
