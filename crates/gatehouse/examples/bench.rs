//! Benchmarks (not tests): throughput and memory against a direct
//! connection, measured in the same run on the same machine.
//!
//!     cargo run --release -p gatehouse --example bench -- [SECONDS] [CLIENTS] [ROWS]
//!
//! 1. `pgbench -S` for SECONDS with CLIENTS clients: directly against
//!    PostgreSQL, then through the gateway (TLS, audit with fsync, masking
//!    on), then through the gateway over loopback plaintext; prints tps and
//!    the ratios.
//! 2. Streams ROWS masked rows (`SELECT *` of a table with SSNs and notes)
//!    through the gateway (a tenth of that first), and prints the gateway
//!    process's peak RSS (VmHWM) after each, to show memory stays flat.
//!
//! The gateway runs as its own process (`gatehouse serve`) so its memory is
//! its own.

mod support;

use gatehouse::pgcluster::{PgAuth, PgCluster, PgClusterOptions};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{bench_token, free_port, gateway_exe, spawn_gateway, wait_port};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(15);
    let clients: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let rows: u64 = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);

    let cluster = PgCluster::start(PgClusterOptions {
        auth: PgAuth::Scram,
        ..PgClusterOptions::default()
    })?;
    let pw = "bench-app-secret";
    cluster.create_role("bench_app", pw, false)?;
    cluster.create_database("bench", "bench_app")?;
    let pg_port = cluster.port().to_string();
    run(Command::new("pgbench").env("PGPASSWORD", pw).args([
        "-q",
        "-i",
        "-s",
        "10",
        "-h",
        "127.0.0.1",
        "-p",
        &pg_port,
        "-U",
        "bench_app",
        "bench",
    ]))?;

    let dir = tempfile::tempdir()?;
    let pw_file = dir.path().join("target.pw");
    std::fs::write(&pw_file, pw)?;
    let (gw_port, plain_port, normal_port) = (free_port(), free_port(), free_port());
    let config = |listen: u16, plaintext: bool, durability: &str, api: u16| {
        format!(
            r#"state_dir = "state"
[postgres]
listen = "127.0.0.1:{listen}"
allow_plaintext_loopback = {plaintext}
[api]
listen = "127.0.0.1:{api}"
[audit]
durability = "{durability}"
[[connections]]
name = "bench"
type = "postgres"
host = "127.0.0.1"
port = {pg_port}
user = "bench_app"
password_file = "{pwf}"
allow_groups = ["bench"]
[masking]
[[masking.columns]]
name = "ssn"
columns = ["*.ssn"]
strategy = "partial"
keep_last = 4
"#,
            pwf = pw_file.display()
        )
    };
    let tls_dir = dir.path().join("tls");
    let plain_dir = dir.path().join("plain");
    let normal_dir = dir.path().join("normal");
    for (d, port, plaintext, durability) in [
        (&tls_dir, gw_port, false, "full"),
        (&plain_dir, plain_port, true, "full"),
        (&normal_dir, normal_port, false, "normal"),
    ] {
        std::fs::create_dir_all(d)?;
        std::fs::write(
            d.join("gatehouse.toml"),
            config(port, plaintext, durability, free_port()),
        )?;
    }
    let exe = gateway_exe()?;
    let gw = spawn_gateway(&exe, &tls_dir)?;
    let _gw_plain = spawn_gateway(&exe, &plain_dir)?;
    let _gw_normal = spawn_gateway(&exe, &normal_dir)?;
    wait_port(gw_port)?;
    wait_port(plain_port)?;
    wait_port(normal_port)?;
    let token = |cfg_dir: &std::path::Path| bench_token(&exe, cfg_dir);
    let tok = token(&tls_dir)?;
    let tok_plain = token(&plain_dir)?;
    let tok_normal = token(&normal_dir)?;

    let bench = |port: &str, user: &str, password: &str, sslmode: &str| -> anyhow::Result<f64> {
        let o = Command::new("pgbench")
            .env("PGPASSWORD", password)
            .env("PGSSLMODE", sslmode)
            .args([
                "-n",
                "-S",
                "-c",
                &clients.to_string(),
                "-j",
                "2",
                "-T",
                &seconds.to_string(),
                "-h",
                "127.0.0.1",
                "-p",
                port,
                "-U",
                user,
                "bench",
            ])
            .output()?;
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        anyhow::ensure!(
            o.status.success(),
            "pgbench failed: {text} {}",
            String::from_utf8_lossy(&o.stderr)
        );
        tps(&text).ok_or_else(|| anyhow::anyhow!("no tps in: {text}"))
    };
    println!("pgbench -S, {clients} clients, {seconds}s each, same run:");
    let direct = bench(&pg_port, "bench_app", pw, "disable")?;
    println!("  direct PostgreSQL                      {direct:>10.0} tps");
    let via_tls = bench(&gw_port.to_string(), "bench", &tok, "require")?;
    println!(
        "  gateway (TLS, audit fsync, masking)    {via_tls:>10.0} tps   ratio {:.2}",
        via_tls / direct
    );
    let via_plain = bench(&plain_port.to_string(), "bench", &tok_plain, "disable")?;
    println!(
        "  gateway (loopback plaintext)           {via_plain:>10.0} tps   ratio {:.2}",
        via_plain / direct
    );
    let via_normal = bench(&normal_port.to_string(), "bench", &tok_normal, "require")?;
    println!(
        "  gateway (TLS, audit durability=normal) {via_normal:>10.0} tps   ratio {:.2}",
        via_normal / direct
    );

    cluster.psql(
        "bench",
        &format!(
            "SET ROLE bench_app; create table big as select g as id, 'Customer ' || g as name, \
             lpad(((g % 665) + 1)::text, 3, '0') || '-' || lpad(((g % 98) + 1)::text, 2, '0') || '-' || lpad(((g % 9998) + 1)::text, 4, '0') as ssn, \
             'called about card 4111 1111 1111 1111 on ' || g as note from generate_series(1, {rows}) g;"
        ),
    )?;
    let stream = |limit: u64| -> anyhow::Result<(Duration, u64)> {
        let start = Instant::now();
        let o = Command::new("psql")
            .env("PGPASSWORD", &tok)
            .args([
                "-X",
                "-A",
                "-t",
                "-c",
                &format!("select id, name, ssn, note from big limit {limit}"),
            ])
            .arg(format!(
                "host=127.0.0.1 port={gw_port} user=bench dbname=bench sslmode=require"
            ))
            .stderr(Stdio::inherit())
            .output()?;
        anyhow::ensure!(o.status.success(), "stream failed");
        let masked = o
            .stdout
            .split(|&b| b == b'\n')
            .filter(|l| l.windows(7).any(|w| w == b"***-**-"))
            .count() as u64;
        Ok((start.elapsed(), masked))
    };
    let pid = gw.0.id();
    let before = vm_hwm(pid);
    let (t_small, m_small) = stream(rows / 10)?;
    let after_small = vm_hwm(pid);
    let (t_big, m_big) = stream(rows)?;
    let after_big = vm_hwm(pid);
    println!("streaming masked rows through the gateway (psql, SELECT id, name, ssn, note; DataRow path):");
    println!("  peak RSS before streaming:          {before:>8} kB");
    println!(
        "  after {:>8} rows ({:>6.2}s, {m_small} masked): {after_small:>8} kB",
        rows / 10,
        t_small.as_secs_f64()
    );
    println!(
        "  after {:>8} rows ({:>6.2}s, {m_big} masked): {after_big:>8} kB",
        rows,
        t_big.as_secs_f64()
    );
    Ok(())
}

/// Start `gatehouse serve` on a configuration folder.
fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let o = cmd.output()?;
    anyhow::ensure!(
        o.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(())
}

fn tps(pgbench_output: &str) -> Option<f64> {
    pgbench_output
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
}

fn vm_hwm(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
