//! Benchmarks (not tests): throughput, latency and memory against a direct
//! connection and pgbouncer, measured in the same run on the same machine.
//!
//!     cargo run --release -p gatehouse --example bench -- [SECONDS] [CLIENTS] [ROWS]
//!
//! 1. `pgbench -S` for SECONDS with CLIENTS clients, simple and
//!    `-M prepared`: directly against PostgreSQL, through pgbouncer
//!    (session pooling; skipped when it is not installed), and through the
//!    gateway: TLS + audit + masking in the default durability, the same in
//!    strict (`full`) durability, and over loopback plaintext.
//! 2. New sessions a second (`pgbench -C -S`) against a trust-auth target,
//!    so PostgreSQL's own SCRAM is not what is measured.
//! 3. Latency added to one 100-row masked result, one client.
//! 4. Streams ROWS masked rows (`SELECT *` of a table with SSNs and notes)
//!    through psql directly and through the gateway (a tenth of that
//!    first), and prints the gateway process's peak RSS (VmHWM) after each,
//!    to show memory stays flat.
//!
//! With `BENCH_HOLD=1` it starts everything, prints each endpoint's
//! pgbench command line and the gateway's pid, and waits for stdin to
//! close: a setup to profile with `perf record -p PID` or `strace -c -f`.
//!
//! Every gateway runs as its own process (`gatehouse serve`) so its memory
//! is its own.

mod support;

use gatehouse_testbed::pgcluster::{PgAuth, PgCluster, PgClusterOptions};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;
use support::{bench_token, free_port, gateway_exe, spawn_gateway, wait_port, KillOnDrop};

/// One place pgbench connects to.
struct Endpoint {
    name: &'static str,
    port: u16,
    user: &'static str,
    password: String,
    sslmode: &'static str,
}

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
    pgbench_init(cluster.port(), pw, "10")?;
    let trust = PgCluster::start(PgClusterOptions {
        auth: PgAuth::Trust,
        superuser_password: String::new(),
        ..PgClusterOptions::default()
    })?;
    trust.create_role("bench_app", pw, false)?;
    trust.create_database("bench", "bench_app")?;
    pgbench_init(trust.port(), pw, "1")?;

    let dir = tempfile::tempdir()?;
    cluster.psql(
        "bench",
        &format!(
            "SET ROLE bench_app; create table big as select g as id, 'Customer ' || g as name, \
             lpad(((g % 665) + 1)::text, 3, '0') || '-' || lpad(((g % 98) + 1)::text, 2, '0') || '-' || lpad(((g % 9998) + 1)::text, 4, '0') as ssn, \
             'called about card 4111 1111 1111 1111 on ' || g as note from generate_series(1, {rows}) g; \
             create index on big (id); analyze big;"
        ),
    )?;

    let script = dir.path().join("hundred.sql");
    std::fs::write(
        &script,
        format!(
            "\\set a random(1, {})\nselect id, name, ssn, note from big where id between :a and :a + 99;\n",
            rows.saturating_sub(100).max(1)
        ),
    )?;
    let pw_file = dir.path().join("target.pw");
    std::fs::write(&pw_file, pw)?;
    let exe = gateway_exe()?;
    let gateway = |name: &str, target: u16, plaintext: bool, durability: &str| {
        let d = dir.path().join(name);
        let port = free_port();
        std::fs::create_dir_all(&d)?;
        std::fs::write(
            d.join("gatehouse.toml"),
            gateway_config(port, plaintext, durability, target, &pw_file),
        )?;
        let process = spawn_gateway(&exe, &d)?;
        wait_port(port)?;
        let token = bench_token(&exe, &d)?;
        anyhow::Ok((process, port, token))
    };
    let (gw, gw_port, tok) = gateway("tls", cluster.port(), false, "normal")?;
    let (_strict, strict_port, tok_strict) = gateway("strict", cluster.port(), false, "full")?;
    let (_plain, plain_port, tok_plain) = gateway("plain", cluster.port(), true, "normal")?;
    let (_to_trust, trust_gw_port, tok_trust) = gateway("trust", trust.port(), true, "normal")?;
    let bouncer = start_pgbouncer(&cluster, dir.path())?;

    let mut endpoints = vec![Endpoint {
        name: "direct PostgreSQL",
        port: cluster.port(),
        user: "bench_app",
        password: pw.into(),
        sslmode: "disable",
    }];
    if let Some((_, port)) = &bouncer {
        endpoints.push(Endpoint {
            name: "pgbouncer (session pooling)",
            port: *port,
            user: "bench_app",
            password: pw.into(),
            sslmode: "disable",
        });
    }
    endpoints.extend([
        Endpoint {
            name: "gateway: TLS, audit, masking",
            port: gw_port,
            user: "bench",
            password: tok.clone(),
            sslmode: "require",
        },
        Endpoint {
            name: "gateway: the same, durability = full",
            port: strict_port,
            user: "bench",
            password: tok_strict,
            sslmode: "require",
        },
        Endpoint {
            name: "gateway: loopback plaintext",
            port: plain_port,
            user: "bench",
            password: tok_plain,
            sslmode: "disable",
        },
    ]);
    if std::env::var_os("BENCH_HOLD").is_some() {
        // For profiling by hand (perf, strace): say where everything is and
        // keep it running until stdin closes.
        println!("gateway (TLS, normal) pid {}", gw.0.id());
        println!("100-row masked script: {}", script.display());
        for e in &endpoints {
            println!(
                "{}: PGPASSWORD='{}' PGSSLMODE={} pgbench -h 127.0.0.1 -p {} -U {} bench",
                e.name, e.password, e.sslmode, e.port, e.user
            );
        }
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())?;
        return Ok(());
    }
    let pgbench = |e: &Endpoint, extra: &[&str], clients: u32| -> anyhow::Result<String> {
        let o = Command::new("pgbench")
            .env("PGPASSWORD", &e.password)
            .env("PGSSLMODE", e.sslmode)
            .args([
                "-n",
                "-c",
                &clients.to_string(),
                "-j",
                "2",
                "-T",
                &seconds.to_string(),
            ])
            .args(extra)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &e.port.to_string(),
                "-U",
                e.user,
                "bench",
            ])
            .output()?;
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        anyhow::ensure!(
            o.status.success(),
            "pgbench against {} failed: {text} {}",
            e.name,
            String::from_utf8_lossy(&o.stderr)
        );
        Ok(text)
    };
    for (mode, extra) in [
        ("simple", &["-S"][..]),
        ("-M prepared", &["-S", "-M", "prepared"][..]),
    ] {
        println!("pgbench -S ({mode}), {clients} clients, {seconds}s each, same run:");
        let mut direct = None;
        let mut pooler = None;
        for e in &endpoints {
            let tps = field(&pgbench(e, extra, clients)?, "tps = ")
                .ok_or_else(|| anyhow::anyhow!("no tps from {}", e.name))?;
            let vs = |base: Option<f64>, what: &str| {
                base.map_or(String::new(), |b| format!("  {:.2}× {what}", tps / b))
            };
            println!(
                "  {:<40} {tps:>9.0} tps{}{}",
                e.name,
                vs(direct, "direct"),
                vs(pooler, "pgbouncer")
            );
            match e.name {
                "direct PostgreSQL" => direct = Some(tps),
                "pgbouncer (session pooling)" => pooler = Some(tps),
                _ => {}
            }
        }
    }

    println!("new sessions a second (pgbench -C -S, trust-auth target), {clients} clients:");
    let trust_direct = Endpoint {
        name: "direct PostgreSQL (trust)",
        port: trust.port(),
        user: "bench_app",
        password: String::new(),
        sslmode: "disable",
    };
    let trust_gateway = |sslmode| Endpoint {
        name: "gateway",
        port: trust_gw_port,
        user: "bench",
        password: tok_trust.clone(),
        sslmode,
    };
    let direct_c = field(&pgbench(&trust_direct, &["-C", "-S"], clients)?, "tps = ").unwrap_or(0.0);
    println!("  {:<40} {direct_c:>9.0} sessions/s", trust_direct.name);
    for (name, sslmode) in [
        ("gateway, loopback plaintext", "disable"),
        ("gateway, TLS", "require"),
    ] {
        let via = field(
            &pgbench(&trust_gateway(sslmode), &["-C", "-S"], clients)?,
            "tps = ",
        )
        .unwrap_or(0.0);
        println!(
            "  {name:<40} {via:>9.0} sessions/s  {:.2}× direct",
            via / direct_c
        );
    }

    let script = script.display().to_string();
    println!("latency of one 100-row masked result, one client, {seconds}s:");
    let direct_ms = field(
        &pgbench(&endpoints[0], &["-f", &script], 1)?,
        "latency average = ",
    )
    .unwrap_or(0.0);
    let gw_endpoint = endpoints
        .iter()
        .find(|e| e.port == gw_port)
        .ok_or_else(|| anyhow::anyhow!("no gateway endpoint"))?;
    let gw_ms = field(
        &pgbench(gw_endpoint, &["-f", &script], 1)?,
        "latency average = ",
    )
    .unwrap_or(0.0);
    println!("  direct PostgreSQL                        {direct_ms:>9.3} ms");
    println!(
        "  gateway: TLS, audit, masking             {gw_ms:>9.3} ms   adds {:.3} ms",
        gw_ms - direct_ms
    );

    let stream = |port: u16, user: &str, password: &str, sslmode: &str, limit: u64| {
        let start = Instant::now();
        let o = Command::new("psql")
            .env("PGPASSWORD", password)
            .args([
                "-X",
                "-A",
                "-t",
                "-c",
                &format!("select id, name, ssn, note from big limit {limit}"),
            ])
            .arg(format!(
                "host=127.0.0.1 port={port} user={user} dbname=bench sslmode={sslmode}"
            ))
            .stderr(Stdio::inherit())
            .output()?;
        anyhow::ensure!(o.status.success(), "stream failed");
        let masked = o
            .stdout
            .split(|&b| b == b'\n')
            .filter(|l| l.windows(7).any(|w| w == b"***-**-"))
            .count() as u64;
        anyhow::Ok((start.elapsed(), masked))
    };
    let (t_direct, _) = stream(cluster.port(), "bench_app", pw, "disable", rows)?;
    let pid = gw.0.id();
    let before = vm_hwm(pid);
    let (t_small, m_small) = stream(gw_port, "bench", &tok, "require", rows / 10)?;
    let after_small = vm_hwm(pid);
    let (t_big, m_big) = stream(gw_port, "bench", &tok, "require", rows)?;
    let after_big = vm_hwm(pid);
    println!("streaming masked rows (psql, SELECT id, name, ssn, note; DataRow path):");
    println!(
        "  direct PostgreSQL, {rows} rows: {:.2}s; through the gateway: {:.2}s ({:.2}× direct throughput)",
        t_direct.as_secs_f64(),
        t_big.as_secs_f64(),
        t_direct.as_secs_f64() / t_big.as_secs_f64()
    );
    println!("  gateway peak RSS before streaming:          {before:>8} kB");
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
    drop(bouncer);
    Ok(())
}

fn pgbench_init(port: u16, password: &str, scale: &str) -> anyhow::Result<()> {
    run(Command::new("pgbench").env("PGPASSWORD", password).args([
        "-q",
        "-i",
        "-s",
        scale,
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "bench_app",
        "bench",
    ]))
}

fn gateway_config(
    listen: u16,
    plaintext: bool,
    durability: &str,
    target: u16,
    pw: &Path,
) -> String {
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
port = {target}
user = "bench_app"
password_file = "{pw}"
allow_groups = ["bench"]
[masking]
[[masking.columns]]
name = "ssn"
columns = ["*.ssn"]
strategy = "partial"
keep_last = 4
"#,
        api = free_port(),
        pw = pw.display()
    )
}

/// pgbouncer in session pooling in front of `cluster`, logging in with the
/// role's SCRAM secret (as its documentation says); None when it is not
/// installed.
fn start_pgbouncer(cluster: &PgCluster, dir: &Path) -> anyhow::Result<Option<(KillOnDrop, u16)>> {
    let Some(exe) = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        println!("(pgbouncer is not installed: apt-get install pgbouncer; its column is skipped)");
        return Ok(None);
    };
    let secret = cluster
        .psql(
            "postgres",
            "select rolpassword from pg_authid where rolname = 'bench_app'",
        )?
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("SCRAM-SHA-256$"))
        .ok_or_else(|| anyhow::anyhow!("no SCRAM secret for bench_app"))?
        .to_string();
    let d = dir.join("pgbouncer");
    std::fs::create_dir_all(&d)?;
    let port = free_port();
    std::fs::write(
        d.join("userlist.txt"),
        format!("\"bench_app\" \"{secret}\"\n"),
    )?;
    std::fs::write(
        d.join("pgbouncer.ini"),
        format!(
            "[databases]\nbench = host=127.0.0.1 port={pg} dbname=bench\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = scram-sha-256\nauth_file = {d}/userlist.txt\npool_mode = session\n\
             max_client_conn = 500\ndefault_pool_size = 100\nlogfile = {d}/pgbouncer.log\n",
            pg = cluster.port(),
            d = d.display()
        ),
    )?;
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut cmd = Command::new(exe);
    if root {
        // pgbouncer refuses to run as root; it switches user itself, so the
        // process stopped on drop is pgbouncer's own.
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&d))?;
        run(Command::new("chmod").args(["0755"]).arg(dir))?;
        cmd.args(["-u", "postgres"]);
    }
    let child = cmd
        .arg(d.join("pgbouncer.ini"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let process = KillOnDrop(child);
    wait_port(port)?;
    Ok(Some((process, port)))
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

/// The number after `label` on pgbench's line starting with it
/// (`tps = `, `latency average = `).
fn field(pgbench_output: &str, label: &str) -> Option<f64> {
    pgbench_output
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|v| v.split_whitespace().next())
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
