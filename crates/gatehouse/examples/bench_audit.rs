//! Benchmark (not a test) of the audit trail alone: how many events a
//! second the journal takes from concurrent sessions, in the default
//! window mode and in strict (`full`) mode, and how fast `verify` checks a
//! large trail.
//!
//!     cargo run --release -p gatehouse --example bench_audit -- [EVENTS] [SESSIONS]
//!
//! Each event is shaped like a statement's `command` event. The trail is
//! closed (indexed, signed) before verify runs, and verify reads it the way
//! `gatehouse audit verify` does.

use gatehouse_audit::{
    load_verifying_key, public_key_path, verify, AuditConfig, AuditLog, Durability, NewEvent,
};
use std::time::Instant;

fn event(session: usize, n: u64) -> NewEvent {
    let mut e = NewEvent::new("command");
    e.session_id = Some(format!("s-{session:04}"));
    e.subject = Some("bench".into());
    e.connection = Some("bench".into());
    e.data = serde_json::json!({
        "protocol": "postgres",
        "sql": {"statement": format!("SELECT abalance FROM pgbench_accounts WHERE aid = {n}"),
                "kinds": ["select"], "tables": ["pgbench_accounts"]},
        "verdict": {"effect": "allow", "rule": "bench"},
        "client": {"addr": "127.0.0.1:50000"},
    });
    e
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let events: u64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let sessions: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!("audit trail alone: {events} command events from {sessions} concurrent sessions");
    for (name, durability) in [
        ("window (default, fsync within 10 ms)", Durability::Normal),
        (
            "strict (full, fsync before each caller goes on)",
            Durability::Full,
        ),
    ] {
        let dir = tempfile::tempdir()?;
        let mut config = AuditConfig::new(dir.path().join("audit.db"), dir.path().join("key"));
        config.durability = durability;
        // Strict mode waits for the disk: fewer events keep the run short.
        let total = if durability == Durability::Full {
            events / 10
        } else {
            events
        };
        let log = AuditLog::open(config)?;
        let per = total / sessions as u64;
        let start = Instant::now();
        runtime.block_on(async {
            let mut tasks = Vec::new();
            for s in 0..sessions {
                let log = log.clone();
                tasks.push(tokio::spawn(async move {
                    for n in 0..per {
                        log.record(event(s, n)).await?;
                    }
                    anyhow::Ok(())
                }));
            }
            for t in tasks {
                t.await??;
            }
            anyhow::Ok(())
        })?;
        let appended = start.elapsed();
        log.shutdown_blocking()?;
        let indexed = start.elapsed();
        let n = per * sessions as u64;
        println!(
            "  {name:<48} {:>9.0} events/s appended ({n} in {:.2}s); indexed and signed after {:.2}s",
            n as f64 / appended.as_secs_f64(),
            appended.as_secs_f64(),
            indexed.as_secs_f64()
        );
        if durability == Durability::Normal {
            let key = load_verifying_key(&public_key_path(&dir.path().join("key")))?;
            let start = Instant::now();
            let report = verify(&dir.path().join("audit.db"), &key)?;
            let took = start.elapsed();
            anyhow::ensure!(report.is_intact(), "the trail does not verify: {report:?}");
            println!(
                "  audit verify over {} events                       {:>9.0} events/s ({:.2}s)",
                report.events,
                report.events as f64 / took.as_secs_f64(),
                took.as_secs_f64()
            );
        }
    }
    Ok(())
}
