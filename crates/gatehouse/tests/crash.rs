//! A gateway killed with SIGKILL while clients drive statements through it
//! loses nothing: every statement the database executed is in the trail
//! after a restart, the trail verifies, and the restarted gateway serves.
//! (A full disk, where the journal cannot be written, is tested in
//! `psql.rs` and `http_api.rs`.)
//!
//! The gateway runs as its own process here (`gatehouse serve`), so it can
//! be killed the way an OOM killer or `kill -9` would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use gatehouse_testbed::mariadbcluster::{MariaDbAuth, MariaDbCluster};
use gatehouse_testbed::pgcluster::{PgAuth, PgCluster, PgClusterOptions};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const APP: &str = "gatehouse_app";
const APP_PASSWORD: &str = "app-secret-for-crash-tests";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A gateway process with its own state folder.
struct Gateway {
    dir: PathBuf,
    config: PathBuf,
    pg_port: u16,
    my_port: u16,
    child: Option<Child>,
}

impl Gateway {
    fn new(dir: &Path, connections: &str) -> Gateway {
        let pg_port = free_port();
        let my_port = free_port();
        let api_port = free_port();
        std::fs::write(dir.join("target.pw"), APP_PASSWORD).unwrap();
        let text = format!(
            r#"state_dir = "state"

[postgres]
listen = "127.0.0.1:{pg_port}"

[mysql]
listen = "127.0.0.1:{my_port}"

[api]
listen = "127.0.0.1:{api_port}"

[audit]
checkpoint_every = 1000
checkpoint_interval_secs = 1

{connections}
{policy}"#,
            policy = gatehouse::demo::DEMO_POLICY,
        );
        let config = dir.join("gatehouse.toml");
        std::fs::write(&config, text).unwrap();
        Gateway {
            dir: dir.to_path_buf(),
            config,
            pg_port,
            my_port,
            child: None,
        }
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("GATEHOUSE_CONFIG")
            .output()
            .unwrap()
    }

    /// Start `gatehouse serve` and wait until it takes connections.
    fn serve(&mut self) {
        let log = std::fs::File::create(self.dir.join("gateway.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env_remove("GATEHOUSE_CONFIG")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.pg_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the gateway did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: no final checkpoint, no flush, nothing of ours runs.
    fn kill9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM and wait: the graceful stop signs the final checkpoint.
    fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        child.wait().unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gateway.log")).unwrap_or_default()
    }

    fn token(&self) -> String {
        let o = self.cli(&[
            "token",
            "issue",
            "--subject",
            "alice",
            "--groups",
            "analysts",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    }

    /// The whole trail as exported JSON lines (the store, once the restarted
    /// writer indexed the journal).
    fn trail(&self) -> String {
        let o = self.cli(&["audit", "export", "--format", "jsonl"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }

    fn verify(&self) {
        let o = self.cli(&["audit", "verify"]);
        assert!(
            o.status.success(),
            "audit verify failed:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn psql(&self, token: &str, sql: &str) -> Output {
        Command::new("psql")
            .env("PGPASSWORD", token)
            .env("PGCONNECT_TIMEOUT", "10")
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg(format!(
                "host=127.0.0.1 port={} user=alice dbname=bank sslmode=require",
                self.pg_port
            ))
            .arg("-c")
            .arg(sql)
            .output()
            .unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The statements `SELECT '<tag>', <client>, <n>` found in `text` (a
/// server's log, or the trail), as "client-n".
fn markers(text: &str, tag: &str) -> BTreeSet<String> {
    let needle = format!("'{tag}', ");
    let mut out = BTreeSet::new();
    for (at, _) in text.match_indices(&needle) {
        let rest = &text[at + needle.len()..];
        let numbers: Vec<&str> = rest
            .split(|c: char| !c.is_ascii_digit() && c != ',' && c != ' ')
            .next()
            .unwrap_or("")
            .split(", ")
            .take(2)
            .collect();
        if numbers.len() == 2 && numbers.iter().all(|n| !n.is_empty()) {
            out.insert(format!("{}-{}", numbers[0].trim(), numbers[1].trim()));
        }
    }
    out
}

fn pg_target() -> PgCluster {
    let cluster = PgCluster::start(PgClusterOptions {
        auth: PgAuth::Scram,
        extra_conf: vec![("log_statement".into(), "all".into())],
        ..PgClusterOptions::default()
    })
    .expect("start PostgreSQL (run scripts/test.sh to install it)");
    cluster.stop_when_process_exits(std::process::id());
    cluster.create_role(APP, APP_PASSWORD, false).unwrap();
    cluster.create_database("bank", APP).unwrap();
    cluster
}

/// A `[[connections]]` entry of `kind` for the target on `port`.
fn connection(dir: &Path, name: &str, kind: &str, port: u16) -> String {
    format!(
        r#"[[connections]]
name = "{name}"
type = "{kind}"
host = "127.0.0.1"
port = {port}
database = "bank"
user = "{APP}"
password_file = "{pw}"
allow_groups = ["analysts"]
"#,
        pw = dir.join("target.pw").display()
    )
}

/// Every statement the server logged is in the trail.
fn assert_all_recorded(server: &str, logged: &BTreeSet<String>, recorded: &BTreeSet<String>) {
    let missing: Vec<_> = logged.difference(recorded).collect();
    assert!(
        missing.is_empty(),
        "{} of {} statements {server} executed are not in the trail, e.g. {:?}",
        missing.len(),
        logged.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
}

/// The `mariadb` client as alice through the gateway's MySQL listener.
fn mariadb(gw: &Gateway, token: &str) -> Command {
    let mut cmd = Command::new("mariadb");
    cmd.args([
        "--no-defaults",
        "--ssl",
        "--batch",
        "-h127.0.0.1",
        "-ualice",
        "-Dbank_mysql",
    ])
    .arg(format!("-P{}", gw.my_port))
    .env("MYSQL_PWD", token);
    cmd
}

#[test]
fn a_killed_gateway_loses_no_postgres_statement() {
    let cluster = pg_target();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::new(
        dir.path(),
        &connection(dir.path(), "bank", "postgres", cluster.port()),
    );
    gw.serve();
    let token = gw.token();

    // pgbench, simple protocol, every statement with its own literal (at
    // most 7 digits: the trail redacts numbers shaped like an SSN or a card).
    let script = dir.path().join("crash.sql");
    std::fs::write(
        &script,
        "\\set r random(1, 9999999)\nSELECT 'crash-pg', :client_id, :r;\n",
    )
    .unwrap();
    let bench = Command::new("pgbench")
        .env("PGPASSWORD", &token)
        .env("PGSSLMODE", "require")
        .args(["-n", "-c", "4", "-T", "30", "-f"])
        .arg(&script)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &gw.pg_port.to_string(),
            "-U",
            "alice",
            "bank",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    gw.kill9();
    let bench = bench.wait_with_output().unwrap();
    let bench_err = String::from_utf8_lossy(&bench.stderr);

    // Every statement PostgreSQL logged is in the trail after a restart.
    let logged = markers(&cluster.log_tail(usize::MAX), "crash-pg");
    assert!(
        logged.len() > 100,
        "pgbench ran too little to prove anything ({} statements): {bench_err}",
        logged.len()
    );
    gw.serve();
    let served = gw.psql(&token, "SELECT 'after-restart'");
    assert!(
        served.status.success()
            && String::from_utf8_lossy(&served.stdout).contains("after-restart"),
        "the restarted gateway serves: {}",
        String::from_utf8_lossy(&served.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    let trail = gw.trail();
    let recorded = markers(&trail, "crash-pg");
    assert_all_recorded("PostgreSQL", &logged, &recorded);
    assert!(
        trail.contains("\"kind\":\"audit.recovered\""),
        "the restart says it recovered the journal"
    );
    gw.stop();
    gw.verify();
}

#[test]
fn a_killed_gateway_loses_no_mysql_statement() {
    if !MariaDbCluster::available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "MariaDB is not installed (scripts/test.sh installs it)"
        );
        eprintln!("skipped: MariaDB is not installed");
        return;
    }
    let server = MariaDbCluster::start_with(&[
        "--general-log=1".to_string(),
        "--general-log-file=general.log".to_string(),
    ])
    .unwrap();
    server.stop_when_process_exits(std::process::id());
    server
        .create_user_and_database(APP, APP_PASSWORD, "bank", MariaDbAuth::Native)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let connection = connection(dir.path(), "bank_mysql", "mysql", server.port());
    let mut gw = Gateway::new(dir.path(), &connection);
    gw.serve();
    let token = gw.token();

    // Four clients, each a stream of statements with their own literals.
    let clients: Vec<Child> = (0..4)
        .map(|c| {
            let mut child = mariadb(&gw, &token)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                use std::io::Write;
                for i in 0..200_000 {
                    if writeln!(stdin, "SELECT 'crash-my', {c}, {i};").is_err() {
                        return;
                    }
                }
            });
            child
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    gw.kill9();
    for mut c in clients {
        let _ = c.kill();
        let _ = c.wait();
    }

    let general = std::fs::read_to_string(server.dir().join("data/general.log")).unwrap();
    let logged = markers(&general, "crash-my");
    assert!(
        logged.len() > 100,
        "the clients ran too little to prove anything ({} statements)",
        logged.len()
    );
    gw.serve();
    std::thread::sleep(Duration::from_millis(500));
    let recorded = markers(&gw.trail(), "crash-my");
    assert_all_recorded("MariaDB", &logged, &recorded);
    let o = mariadb(&gw, &token)
        .args(["-e", "SELECT 'after-restart'"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("after-restart"),
        "the restarted gateway serves: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    gw.stop();
    gw.verify();
}
