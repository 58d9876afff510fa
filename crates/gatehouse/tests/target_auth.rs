//! The gateway logs in to targets that use md5 and trust (SCRAM is what the
//! other suites' target uses), and relays notices and parameter status.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use gatehouse::config::GatewayConfig;
use gatehouse::gateway::RunningGateway;
use gatehouse_testbed::pgcluster::{PgAuth, PgCluster, PgClusterOptions};
use std::time::Duration;

async fn through(auth: PgAuth) -> (String, String) {
    let cluster = tokio::task::spawn_blocking(move || {
        PgCluster::start(PgClusterOptions {
            auth,
            superuser_password: "super-secret".into(),
            ..PgClusterOptions::default()
        })
        .unwrap()
    })
    .await
    .unwrap();
    cluster.create_role("app", "app-pw", false).unwrap();
    cluster.create_database("ledger", "app").unwrap();
    let out = psql_through_gateway(
        &cluster,
        auth != PgAuth::Trust,
        "",
        &[
            "-c",
            "select current_user",
            "-c",
            "drop table if exists not_there",
            "-c",
            "show server_version",
        ],
    )
    .await;
    drop(cluster);
    out
}

/// A gateway in front of `cluster`'s database `ledger` (as role `app`,
/// with its password when `password`, plus the connection's `extra`
/// lines), and psql's output for `args` through it (stdout, stderr).
async fn psql_through_gateway(
    cluster: &PgCluster,
    password: bool,
    extra: &str,
    args: &[&str],
) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "app-pw").unwrap();
    let password_line = if password {
        format!("password_file = \"{}\"", pw.display())
    } else {
        String::new()
    };
    let text = format!(
        "state_dir = \"state\"\n[postgres]\nlisten = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:0\"\n\
         [[connections]]\nname = \"ledger\"\ntype = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"app\"\n\
         {password_line}\nallow_groups = [\"dba\"]\n{extra}\n",
        cluster.port()
    );
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(&path, text).unwrap();
    let gw = RunningGateway::start(&GatewayConfig::load(&path).unwrap())
        .await
        .unwrap();
    let token = gw
        .dev_issuer
        .as_ref()
        .unwrap()
        .issue(
            "dana",
            &["dba".to_string()],
            None,
            Duration::from_secs(300),
            gatehouse_identity::DEV_AUDIENCE,
        )
        .unwrap();
    let o = tokio::process::Command::new("psql")
        .env("PGPASSWORD", &token)
        .arg(format!(
            "host=127.0.0.1 port={} user=dana dbname=ledger sslmode=require",
            gw.postgres_addr.port()
        ))
        .args(["-X", "-A", "-t"])
        .args(args)
        .output()
        .await
        .unwrap();
    gw.shutdown().await;
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_target_login_and_notices() {
    let (out, err) = through(PgAuth::Md5).await;
    assert!(
        out.lines().next() == Some("app"),
        "logged in as the gateway's role: {out} {err}"
    );
    assert!(
        err.contains("NOTICE") && err.contains("does not exist, skipping"),
        "notice relayed: {err}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("15") || l.chars().next().is_some_and(|c| c.is_ascii_digit())),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_target_login() {
    let (out, err) = through(PgAuth::Trust).await;
    assert_eq!(out.lines().next(), Some("app"), "{out} {err}");
}

/// psql's `sql` through a gateway on `cluster` whose connection has the
/// `tls` lines.
async fn through_tls(cluster: &PgCluster, tls_lines: &str, sql: &str) -> (String, String) {
    psql_through_gateway(cluster, true, tls_lines, &["-c", sql]).await
}

/// `tls = "require"` to a PostgreSQL target started with `ssl = on`: the
/// gateway's own session to it is encrypted (the server says so in
/// `pg_stat_ssl`) and its certificate is verified against `ca_file`; a
/// certificate the CA file does not vouch for, and a target without TLS,
/// are refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_target_over_verified_tls() {
    let server =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let tls = gatehouse_testbed::pgcluster::ServerTls {
        cert_pem: server.cert.pem(),
        key_pem: server.signing_key.serialize_pem(),
    };
    let cluster = tokio::task::spawn_blocking(move || {
        PgCluster::start(PgClusterOptions {
            superuser_password: "super-secret".into(),
            tls: Some(tls),
            ..PgClusterOptions::default()
        })
        .unwrap()
    })
    .await
    .unwrap();
    cluster.create_role("app", "app-pw", false).unwrap();
    cluster.create_database("ledger", "app").unwrap();
    let certs = tempfile::tempdir().unwrap();
    let ca = certs.path().join("target-ca.pem");
    std::fs::write(&ca, server.cert.pem()).unwrap();
    let other = certs.path().join("other-ca.pem");
    let stranger = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    std::fs::write(&other, stranger.cert.pem()).unwrap();

    let ssl = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";
    let (out, err) = through_tls(
        &cluster,
        &format!("tls = \"require\"\nca_file = \"{}\"", ca.display()),
        ssl,
    )
    .await;
    assert_eq!(out.trim(), "t", "the gateway's session is TLS: {out} {err}");
    let (out, err) = through_tls(
        &cluster,
        &format!("tls = \"verify-full\"\nca_file = \"{}\"", ca.display()),
        ssl,
    )
    .await;
    assert_eq!(out.trim(), "t", "verify-full is the same: {out} {err}");

    let (out, err) = through_tls(
        &cluster,
        &format!("tls = \"require\"\nca_file = \"{}\"", other.display()),
        ssl,
    )
    .await;
    assert!(out.trim().is_empty(), "{out}");
    assert!(
        err.contains("TLS to the target failed") && err.contains("certificate"),
        "{err}"
    );
    // Without TLS to the target the same server still answers, in clear.
    let (out, err) = through_tls(&cluster, "", ssl).await;
    assert_eq!(out.trim(), "f", "{out} {err}");
    drop(cluster);

    // A target without TLS is refused when the connection requires it.
    let plain = tokio::task::spawn_blocking(|| {
        PgCluster::start(PgClusterOptions {
            superuser_password: "super-secret".into(),
            ..PgClusterOptions::default()
        })
        .unwrap()
    })
    .await
    .unwrap();
    plain.create_role("app", "app-pw", false).unwrap();
    plain.create_database("ledger", "app").unwrap();
    let (_, err) = through_tls(
        &plain,
        &format!("tls = \"require\"\nca_file = \"{}\"", ca.display()),
        ssl,
    )
    .await;
    assert!(err.contains("the target does not offer it"), "{err}");
}
