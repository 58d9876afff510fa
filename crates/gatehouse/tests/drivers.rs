//! Real drivers and tools through the gateway: psycopg (extended protocol,
//! binary results, pipelining, COPY), tokio-postgres (cancel), pgbench.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;
use support::{err, out, TestGateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_extended_protocol_masking_blocking_and_copy() {
    let gw = TestGateway::start("", "").await;
    let alice = gw.token("alice", &["analysts"]);
    let dana = gw.token("dana", &["dba"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/py/driver_test.py");
    let o = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .arg(script)
            .arg("127.0.0.1")
            .arg(gw.port().to_string())
            .arg("bank")
            .arg(&alice)
            .arg(&dana)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        o.status.success(),
        "driver test failed:\n{}\n{}",
        out(&o),
        err(&o)
    );
    let observed: serde_json::Value =
        serde_json::from_str(out(&o).lines().last().unwrap()).unwrap();
    assert_eq!(observed["copy_in_rows"], 2);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_prepared_statements_and_cancel_on_loopback() {
    let gw = TestGateway::start_with("", "", support::plaintext).await;
    let token = gw.token("dana", &["dba"]);
    let conn_str = format!(
        "host=127.0.0.1 port={} user=dana dbname=bank password={token}",
        gw.port()
    );
    let (client, connection) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls)
        .await
        .expect("connect through the gateway");
    tokio::spawn(connection);
    let stmt = client
        .prepare("select id, ssn, name from customers where id = $1")
        .await
        .unwrap();
    for id in 1..=3i32 {
        let row = client.query_one(&stmt, &[&id]).await.unwrap();
        let got_id: i32 = row.get(0);
        let ssn: String = row.get(1);
        assert_eq!(got_id, id);
        assert!(ssn.starts_with("***-**-"), "{ssn}");
    }
    // Binary-format results of a masked column arrive as text.
    let rows = client
        .query("select card_number from customers order by id limit 2", &[])
        .await
        .unwrap();
    for r in rows {
        let card: String = r.get(0);
        assert!(card.contains("****"), "{card}");
    }
    // Blocked in the extended protocol: a clean error, the session goes on.
    let e = client
        .execute("delete from transactions", &[])
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "{e}"
    );
    assert_eq!(
        client
            .query_one("select 1::int", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    // Cancel goes through the gateway's own key to the right backend.
    let cancel = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.simple_query("select pg_sleep(20)").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    cancel
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("cancel request");
    let res = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("query was cancelled")
        .unwrap();
    let e = res.unwrap_err();
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{e}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_runs_through_the_gateway() {
    let gw = TestGateway::start("", "").await;
    let t = support::target();
    // pgbench's own tables, created directly on the target.
    t.cluster.psql("bank", "SET ROLE gatehouse_app; create table if not exists pgbench_accounts(aid int primary key, bid int, abalance int, filler char(84)); insert into pgbench_accounts select g, 1, 0, '' from generate_series(1, 1000) g on conflict do nothing; create table if not exists pgbench_branches(bid int primary key, bbalance int, filler char(88)); insert into pgbench_branches values (1, 0, '') on conflict do nothing;").unwrap();
    let dana = gw.token("dana", &["dba"]);
    for mode in ["simple", "extended", "prepared"] {
        let o = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new("pgbench")
                .env("PGPASSWORD", &dana)
                .env("PGSSLMODE", "require")
                .args([
                    "-n",
                    "-S",
                    "-c",
                    "2",
                    "-j",
                    "1",
                    "-t",
                    "50",
                    "-M",
                    mode,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &gw.port().to_string(),
                    "-U",
                    "dana",
                    "bank",
                ])
                .output(),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(
            o.status.success(),
            "pgbench -M {mode}: {} {}",
            out(&o),
            err(&o)
        );
        assert!(
            out(&o).contains("number of transactions actually processed: 100/100"),
            "{mode}: {}",
            out(&o)
        );
    }
    gw.stop().await;
}

/// An ORM's schema migrations (SQLAlchemy's Alembic, from PyPI) run
/// through the gateway unchanged: upgrade, downgrade to nothing, upgrade
/// again, as a DBA, with DDL, a data backfill, an array element update,
/// renames and a partial index, one transaction per migration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alembic_migrations_run_through_the_gateway_unchanged() {
    let gw = TestGateway::start("", "").await;
    let dana = gw.token("dana", &["dba"]);
    let ini = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/alembic/alembic.ini"
    );
    let url = format!(
        "postgresql+psycopg://dana:{dana}@127.0.0.1:{}/bank",
        gw.port()
    );
    let alembic = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new("python3");
        cmd.args(["-m", "alembic", "-c", ini])
            .args(args)
            .env("GATEHOUSE_ALEMBIC_URL", &url)
            .env("PGSSLMODE", "require")
            .kill_on_drop(true);
        let what = args.join(" ");
        async move {
            let o = tokio::time::timeout(Duration::from_secs(120), cmd.output())
                .await
                .expect("alembic timed out")
                .expect("alembic runs (scripts/test.sh installs it)");
            assert!(
                o.status.success(),
                "alembic {what}:\n{}\n{}",
                out(&o),
                err(&o)
            );
        }
    };
    alembic(&["upgrade", "head"]).await;
    alembic(&["downgrade", "base"]).await;
    alembic(&["upgrade", "head"]).await;
    let o = gw
        .psql(
            "dana",
            &dana,
            &[
                "select version_num from alembic_version",
                "select id, status, tags[1] from orm_ledger order by id",
                "select count(*) from orm_ledger_memo",
            ],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    assert!(text.contains("0003"), "{text}");
    assert!(text.contains("1|booked|migrated"), "{text}");
    assert!(text.contains("2|booked|"), "{text}");
    alembic(&["downgrade", "base"]).await;
    gw.stop().await;
}
