//! The MySQL path end to end: the real `mariadb` client and real drivers,
//! through the gateway, against a real MariaDB started by the harness.

mod support;

use std::time::Duration;
use support::*;

/// Non-blank output lines.
fn lines(o: &std::process::Output) -> Vec<String> {
    out(o)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_client_gets_masked_rows_blocks_and_multi_statements() {
    let gw = TestGateway::start_mysql("", "").await;
    let alice = gw.token("alice", &["analysts"]);

    // Masked SELECT: column rules by table and column, through aliases.
    let o = gw
        .mariadb(
            "alice",
            &alice,
            "select name, ssn, card_number as c, email, balance from customers order by id limit 3",
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let rows = lines(&o);
    assert_eq!(rows[0], "name\tssn\tc\temail\tbalance");
    let raw = my_target()
        .server
        .sql(
            "bank",
            "select ssn, card_number, email from customers order by id limit 1",
        )
        .unwrap();
    let raw: Vec<&str> = raw.trim().split('\t').collect();
    let first: Vec<&str> = rows[1].split('\t').collect();
    assert_ne!(first[1], raw[0], "ssn must be masked");
    assert!(first[1].ends_with(&raw[0][raw[0].len() - 4..]), "{first:?}");
    assert!(
        !first[1].contains(&raw[0][..3]) || first[1].starts_with('*'),
        "{first:?}"
    );
    assert_ne!(first[2], raw[1], "card number (aliased) must be masked");
    assert_ne!(first[3], raw[2], "email must be tokenized");

    // A blocked statement: ERR 1142 / 42000 naming the rule, not sent.
    let o = gw
        .mariadb("alice", &alice, "delete from customers where id = 1")
        .await;
    assert!(!o.status.success());
    let e = err(&o);
    assert!(e.contains("1142") && e.contains("42000"), "{e}");
    assert!(e.contains("analysts-read-only"), "{e}");
    let still = my_target()
        .server
        .sql("bank", "select count(*) from customers where id = 1")
        .unwrap();
    assert_eq!(still.trim(), "1");

    // Multi-statements: every result set is masked in its place.
    let o = gw
        .mariadb(
            "alice",
            &alice,
            "select 1 as one; select ssn from customers where id = 2; select 'x' as x",
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let rows = lines(&o);
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(rows[3].starts_with('*'), "{rows:?}");
    // A batch with one forbidden statement is refused whole.
    let o = gw
        .mariadb(
            "alice",
            &alice,
            "select 1; update customers set phone = '1' where id = 3",
        )
        .await;
    assert!(!o.status.success());
    assert!(err(&o).contains("analysts-read-only"), "{}", err(&o));

    // Without TLS the token is refused before it is sent.
    let mut cmd = tokio::process::Command::new("mariadb");
    let o = cmd
        .args(["--no-defaults", "--skip-ssl", "-h127.0.0.1"])
        .arg(format!("-P{}", gw.mysql_port()))
        .args(["-ualice", "-Dbank_mysql", "-e", "select 1"])
        .env("MYSQL_PWD", &alice)
        .output()
        .await
        .unwrap();
    assert!(!o.status.success());
    assert!(err(&o).contains("requires TLS"), "{}", err(&o));

    // A bad token.
    let o = gw.mariadb("alice", "not-a-token", "select 1").await;
    assert!(!o.status.success());
    assert!(err(&o).contains("authentication failed"), "{}", err(&o));

    let (_dir, config) = gw.stop().await;
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--config")
        .arg(&config)
        .args(["audit", "verify"])
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    let _ = Duration::from_secs(0);
}
