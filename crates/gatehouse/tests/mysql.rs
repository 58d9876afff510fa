//! The MySQL path end to end: the real `mariadb` client and real drivers,
//! through the gateway, against a real MariaDB started by the harness.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

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

    // MySQL's risky forms: server-wide settings (either spelling) and file
    // export are blocked, even for a DBA.
    let dana = gw.token("dana", &["dba"]);
    for (sql, rule) in [
        ("SET GLOBAL general_log = 1", "no-server-settings"),
        ("SET @@global.general_log = 1", "no-server-settings"),
        (
            "select * from customers into outfile '/tmp/gh-out.csv'",
            "1142",
        ),
        (
            "load data local infile '/etc/passwd' into table customers",
            "1142",
        ),
    ] {
        let o = gw.mariadb("dana", &dana, sql).await;
        assert!(!o.status.success(), "{sql}");
        assert!(err(&o).contains(rule), "{sql}: {}", err(&o));
    }

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
}

async fn phone_of(id: i32) -> String {
    my_target()
        .server
        .sql(
            "bank",
            &format!("select phone from customers where id = {id}"),
        )
        .unwrap()
        .trim()
        .to_string()
}

/// Spawn the mariadb client (TLS, token as password) running `sql`.
fn spawn_mariadb(gw: &TestGateway, user: &str, token: &str, sql: &str) -> tokio::process::Child {
    tokio::process::Command::new("mariadb")
        .args(["--no-defaults", "--ssl", "--batch", "-h127.0.0.1"])
        .arg(format!("-P{}", gw.mysql_port()))
        .arg(format!("-u{user}"))
        .arg(format!("-D{MY_CONNECTION}"))
        .env("MYSQL_PWD", token)
        .arg("-e")
        .arg(sql)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn status_of(gw: &TestGateway, token: &str, id: u64) -> String {
    let mut status = String::new();
    for _ in 0..100 {
        let (_, r) = gw
            .api("GET", &format!("/api/v1/approvals/{id}"), token, None)
            .await;
        status = r["status"].as_str().unwrap_or_default().to_string();
        if status != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_update_waits_for_approval_denial_and_hang_up() {
    let gw = TestGateway::start_mysql("", gatehouse::demo::DEMO_APPROVAL_RULE).await;
    let dana = gw.token("dana", &["dba"]);
    let omar = gw.token("omar", &["approvers"]);
    let before = phone_of(7).await;

    // Approved through the JSON API: the client's statement then runs once.
    let sql = "update customers set phone = '555-0107' where id = 7";
    let client = spawn_mariadb(&gw, "dana", &dana, sql);
    let request = gw.pending_request(&omar).await;
    let id = request["id"].as_u64().unwrap();
    assert_eq!(request["command"], sql, "the approver sees the statement");
    assert_eq!(request["rule"], "dba-customer-changes-need-approval");
    assert_eq!(request["requester"]["subject"], "dana");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(phone_of(7).await, before, "nothing ran before the decision");
    let (status, body) = gw
        .api(
            "POST",
            &format!("/api/v1/approvals/{id}/approve"),
            &omar,
            Some(serde_json::json!({"reason": "CHG-1234"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let o = tokio::time::timeout(Duration::from_secs(30), client.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(phone_of(7).await, "555-0107");
    assert_eq!(status_of(&gw, &omar, id).await, "executed");

    // The same session stays usable while and after waiting: a held
    // statement, then a plain one, in one client run.
    let client = spawn_mariadb(
        &gw,
        "dana",
        &dana,
        "update customers set phone = '555-0108' where id = 8; select 'after' as a",
    );
    let request = gw.pending_request(&omar).await;
    let id = request["id"].as_u64().unwrap();
    let (status, body) = gw
        .api(
            "POST",
            &format!("/api/v1/approvals/{id}/deny"),
            &omar,
            Some(serde_json::json!({"reason": "no ticket"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let o = tokio::time::timeout(Duration::from_secs(30), client.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains("1142") && e.contains("denied by") && e.contains("no ticket"),
        "{e}"
    );
    assert!(
        e.contains(&format!("/approvals/{id}")),
        "the ERR links the request: {e}"
    );
    assert_ne!(phone_of(8).await, "555-0108");
    let o = gw
        .mariadb("dana", &dana, "select phone from customers where id = 8")
        .await;
    assert!(o.status.success(), "{}", err(&o));

    // The client hangs up while waiting: the request is withdrawn.
    let mut client = spawn_mariadb(
        &gw,
        "dana",
        &dana,
        "update customers set phone = '555-0109' where id = 9",
    );
    let request = gw.pending_request(&omar).await;
    let id = request["id"].as_u64().unwrap();
    client.kill().await.unwrap();
    assert_eq!(status_of(&gw, &omar, id).await, "withdrawn");
    let (code, _) = gw
        .api(
            "POST",
            &format!("/api/v1/approvals/{id}/approve"),
            &omar,
            Some(serde_json::json!({"reason": "late"})),
        )
        .await;
    assert_eq!(code, 409);
    assert_ne!(phone_of(9).await, "555-0109");

    let events = events(&gw).await;
    let held: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "command" && e["data"]["approval_request"].is_u64())
        .collect();
    assert!(
        held.len() >= 3,
        "held commands are recorded with their request"
    );
    assert!(events.iter().any(|e| e["kind"] == "approval.approved"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_query_withdraws_a_held_statement_and_kill_is_confined() {
    let gw = TestGateway::start_mysql("", gatehouse::demo::DEMO_APPROVAL_RULE).await;
    let dana = gw.token("dana", &["dba"]);
    let omar = gw.token("omar", &["approvers"]);
    let client = spawn_mariadb(
        &gw,
        "dana",
        &dana,
        "update customers set phone = '555-0110' where id = 10",
    );
    let request = gw.pending_request(&omar).await;
    let id = request["id"].as_u64().unwrap();
    // The thread id the client was given (what Ctrl-C's KILL QUERY names).
    let events = events(&gw).await;
    let start = events
        .iter()
        .rev()
        .find(|e| e["kind"] == "session.start" && e["subject"] == "dana")
        .unwrap();
    let thread = start["data"]["thread_id"].as_u64().unwrap();

    // Someone else may not kill it.
    let other = gw.token("erin", &["dba"]);
    let o = gw
        .mariadb("erin", &other, &format!("KILL QUERY {thread}"))
        .await;
    assert!(!o.status.success());
    assert!(err(&o).contains("not the owner"), "{}", err(&o));
    // Other KILL forms are refused outright.
    let o = gw.mariadb("dana", &dana, "KILL USER gatehouse_app").await;
    assert!(!o.status.success());
    // (blocked as unparseable or by the adapter's own mysql-kill rule)
    assert!(err(&o).contains("1142"), "{}", err(&o));

    // The owner's KILL QUERY withdraws the request; the held client is told.
    let o = gw
        .mariadb("dana", &dana, &format!("KILL QUERY {thread}"))
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let o = tokio::time::timeout(Duration::from_secs(30), client.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        err(&o).contains("1317") && err(&o).contains("withdrawn"),
        "{}",
        err(&o)
    );
    assert_eq!(status_of(&gw, &omar, id).await, "withdrawn");
    assert_ne!(phone_of(10).await, "555-0110");

    // A running statement: KILL QUERY reaches the target's own session.
    let started = std::time::Instant::now();
    let client = spawn_mariadb(&gw, "dana", &dana, "select sleep(30) as s");
    let mut thread = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let all = support::events(&gw).await;
        let starts: Vec<&serde_json::Value> = all
            .iter()
            .filter(|e| e["kind"] == "session.start" && e["subject"] == "dana")
            .collect();
        let sleeping = all
            .iter()
            .any(|e| e["kind"] == "command" && e["data"]["sql"] == "select sleep(30) as s");
        if sleeping {
            thread = starts.last().and_then(|e| e["data"]["thread_id"].as_u64());
            break;
        }
    }
    let thread = thread.expect("the sleeping session started");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let o = gw
        .mariadb("dana", &dana, &format!("KILL QUERY {thread}"))
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let _ = tokio::time::timeout(Duration::from_secs(20), client.wait_with_output())
        .await
        .expect("the killed statement ends");
    assert!(started.elapsed() < Duration::from_secs(25));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_prepared_statement_shows_its_parameters_and_runs_once_approved() {
    let gw = TestGateway::start_mysql("", gatehouse::demo::DEMO_APPROVAL_RULE).await;
    let dana = gw.token("dana", &["dba"]);
    let omar = gw.token("omar", &["approvers"]);
    let script = r#"
import sys, mysql.connector
c = mysql.connector.connect(host="127.0.0.1", port=int(sys.argv[1]), database=sys.argv[2],
    user="dana", password=sys.argv[3], auth_plugin="mysql_clear_password",
    ssl_disabled=False, ssl_verify_cert=False, use_pure=True, autocommit=True)
cur = c.cursor(prepared=True)
cur.execute("update customers set phone = %s where id = %s", ("555-0111", 11))
print("rows", cur.rowcount)
cur.execute("select 1")
print("after", cur.fetchone()[0])
"#;
    let child = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(gw.mysql_port().to_string())
        .arg(MY_CONNECTION)
        .arg(&dana)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let request = gw.pending_request(&omar).await;
    let id = request["id"].as_u64().unwrap();
    let command = request["command"].as_str().unwrap_or_default();
    assert!(
        command.contains("update customers set phone = ? where id = ?")
            && command.contains("?1 = '555-0111'")
            && command.contains("?2 = '11'"),
        "approvers see the statement and its bound parameters: {command}"
    );
    assert_ne!(phone_of(11).await, "555-0111");
    let (status, body) = gw
        .api(
            "POST",
            &format!("/api/v1/approvals/{id}/approve"),
            &omar,
            Some(serde_json::json!({"reason": "CHG-77"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let o = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains("rows 1") && out(&o).contains("after 1"),
        "{}",
        out(&o)
    );
    assert_eq!(phone_of(11).await, "555-0111");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_drivers_prepared_statements_and_binary_rows_are_masked() {
    let t = my_target();
    t.server
        .sql(
            "bank",
            "CREATE TABLE IF NOT EXISTS cards_numeric (id int primary key, card_number bigint unsigned);\n\
             INSERT IGNORE INTO cards_numeric VALUES (1, 4111111111111111);",
        )
        .unwrap();
    let gw = TestGateway::start_mysql("", "").await;
    let alice = gw.token("alice", &["analysts"]);
    let dana = gw.token("dana", &["dba"]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/py/mysql_driver_test.py"
    );
    let o = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .arg(script)
            .arg("127.0.0.1")
            .arg(gw.mysql_port().to_string())
            .arg(MY_CONNECTION)
            .arg(&alice)
            .arg(&dana)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        out(&o),
        err(&o)
    );
    let observed: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    eprintln!("observed: {observed:#}");
    assert_eq!(observed["prepared_block"][0], 1142);

    let events = events(&gw).await;
    let prepared: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "command" && e["data"]["protocol"] == "prepared")
        .collect();
    assert!(!prepared.is_empty(), "prepared executions are recorded");
    let masked = events.iter().any(|e| {
        e["kind"] == "command.result"
            && e["data"]["masked"]
                .as_object()
                .is_some_and(|m| !m.is_empty())
    });
    assert!(masked, "masking counts are recorded");
    // Each recorded sample comes with its column names.
    let sampled: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "command.result" && e["data"]["result_sample"].is_array())
        .collect();
    assert!(!sampled.is_empty(), "samples are recorded");
    for e in sampled {
        let names = e["data"]["columns"].as_array().expect("column names");
        let row = e["data"]["result_sample"][0].as_array().unwrap();
        assert_eq!(names.len(), row.len(), "{e}");
    }
    // The recorded sample holds the masked values only.
    let raw_ssn = t
        .server
        .sql("bank", "select ssn from customers where id = 1")
        .unwrap();
    let all = serde_json::to_string(&events).unwrap();
    assert!(
        !all.contains(raw_ssn.trim()),
        "no raw SSN in the audit trail"
    );
    gw.stop().await;
}

/// Speak the protocol by hand: handshake, token in the clear (plaintext is
/// allowed from loopback for this test), then `after` bytes.
async fn raw_session(port: u16, token: &str) -> tokio::net::TcpStream {
    raw_session_db(port, token, Some(MY_CONNECTION)).await
}

/// One command, its first response packet's payload.
async fn raw_command(s: &mut tokio::net::TcpStream, payload: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut out = Vec::new();
    let mut seq = 0;
    gatehouse_mysql::codec::encode_packet(&mut out, &mut seq, payload);
    s.write_all(&out).await.unwrap();
    let mut head = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    body
}

async fn raw_session_db(port: u16, token: &str, db: Option<&str>) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(n > 4, "greeting");
    let resp = gatehouse_mysql::codec::packets::handshake_response(
        &gatehouse_mysql::codec::packets::HandshakeResponse {
            capabilities: gatehouse_mysql::codec::packets::cap::GATEWAY
                & !gatehouse_mysql::codec::packets::cap::SSL,
            max_packet: 1 << 24,
            charset: 45,
            ssl_request: false,
            user: "alice".into(),
            auth: token.as_bytes().to_vec(),
            database: db.map(str::to_string),
            auth_plugin: Some("mysql_clear_password".into()),
            attributes: vec![],
        },
    );
    let mut out = Vec::new();
    let mut seq = 1;
    gatehouse_mysql::codec::encode_packet(&mut out, &mut seq, &resp);
    s.write_all(&out).await.unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(
        n >= 5 && buf[4] == 0,
        "login OK, got {:?}",
        &buf[..n.min(80)]
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_close_only_that_session() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = TestGateway::start_mysql("", "").await;
    // Plaintext from loopback is off by default: a raw client must use TLS.
    // Start a second gateway that allows it, for hand-made packets.
    let dir_gw = gw;
    let gw = {
        let dir = tempfile::tempdir().unwrap();
        let text = my_config_text(dir.path(), "", "").replace(
            "[mysql]\n",
            "[mysql]\nallow_plaintext_loopback = true\nmax_packet_bytes = 65536\n",
        );
        let config_path = dir.path().join("gatehouse.toml");
        std::fs::write(&config_path, &text).unwrap();
        let cfg = gatehouse::config::GatewayConfig::load(&config_path).unwrap();
        let g = gatehouse::gateway::RunningGateway::start(&cfg)
            .await
            .unwrap();
        TestGateway {
            gw: g,
            dir,
            config_path,
        }
    };
    let alice = gw.token("alice", &["analysts"]);
    let port = gw.mysql_port();

    // A healthy session, kept open throughout.
    let mut healthy = raw_session(port, &alice).await;

    // 1. An oversized packet header: the session is closed with an ERR.
    let mut s = raw_session(port, &alice).await;
    s.write_all(&[0xff, 0xff, 0xff, 0x00]).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 5 && buf[4] == 0xff, "ERR before close");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("exceeds the limit"));
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "closed");

    // 2. A truncated COM_STMT_EXECUTE: refused, session closed.
    let mut s = raw_session(port, &alice).await;
    s.write_all(&[2, 0, 0, 0, 0x17, 1]).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 5 && buf[4] == 0xff, "ERR for a malformed command");
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "closed");

    // 3. An unknown command byte: ERR, the session goes on.
    let mut s = raw_session(port, &alice).await;
    s.write_all(&[1, 0, 0, 0, 0x7a]).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 5 && buf[4] == 0xff);
    s.write_all(&[1, 0, 0, 0, 0x0e]).await.unwrap(); // COM_PING
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        n >= 5 && buf[4] == 0,
        "ping answered after an unknown command"
    );

    // 4. Garbage before login closes only that connection.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let _ = s.read(&mut buf).await.unwrap();
    s.write_all(&[3, 0, 0, 1, 1, 2, 3]).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;

    // 5. No database: the only MySQL connection is chosen. COM_INIT_DB to
    //    the connection (or its target database) is fine, elsewhere refused.
    let mut s = raw_session_db(port, &alice, None).await;
    let ok = raw_command(&mut s, b"\x02bank").await;
    assert_eq!(ok[0], 0, "COM_INIT_DB to the connection's own database");
    let refused = raw_command(&mut s, b"\x02mysql").await;
    assert_eq!(refused[0], 0xff);
    assert!(String::from_utf8_lossy(&refused).contains("bound to database"));
    let pong = raw_command(&mut s, b"\x0e").await;
    assert_eq!(pong[0], 0, "COM_PING");
    let reset = raw_command(&mut s, b"\x1f").await;
    assert_eq!(reset[0], 0, "COM_RESET_CONNECTION");
    let fields = raw_command(&mut s, b"\x04customers\x00").await;
    assert_ne!(
        fields[0], 0xff,
        "COM_FIELD_LIST answered with column definitions"
    );
    drop(s);
    let mut s = raw_session_db(port, &alice, None).await;
    let unknown = raw_command(&mut s, b"\x17\x63\x00\x00\x00\x00\x01\x00\x00\x00").await;
    assert_eq!(
        unknown[0], 0xff,
        "EXECUTE of a statement not prepared through the gateway"
    );
    assert!(String::from_utf8_lossy(&unknown).contains("Unknown prepared statement"));
    let change_user = raw_command(&mut s, b"\x11root\x00").await;
    assert_eq!(change_user[0], 0xff, "COM_CHANGE_USER is refused");
    let pong = raw_command(&mut s, b"\x0e").await;
    assert_eq!(pong[0], 0, "the session goes on");

    // The healthy session still answers.
    let q = b"select 41 + 1";
    let mut pkt = vec![(q.len() + 1) as u8, 0, 0, 0, 0x03];
    pkt.extend_from_slice(q);
    healthy.write_all(&pkt).await.unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("42") {
        let n = tokio::time::timeout(Duration::from_secs(5), healthy.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    // And the real client works on the other gateway.
    let o = dir_gw
        .mariadb("alice", &dir_gw.token("alice", &["analysts"]), "select 1")
        .await;
    assert!(o.status.success(), "{}", err(&o));
    gw.stop().await;
    dir_gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_logs_in_to_mariadb_with_ed25519() {
    let t = my_target();
    t.server
        .create_user_and_database(
            "gh_ed",
            "ed-secret",
            "bank",
            gatehouse_testbed::mariadbcluster::MariaDbAuth::Ed25519,
        )
        .unwrap();
    let gw = TestGateway::start_mysql("", "").await;
    // Point the connection's account at the ed25519 one.
    let text = std::fs::read_to_string(&gw.config_path)
        .unwrap()
        .replace(&format!("user = \"{MY_APP_USER}\""), "user = \"gh_ed\"");
    let pw = gw.dir.path().join("ed.pw");
    std::fs::write(&pw, "ed-secret").unwrap();
    let text = text.replace(
        &gw.dir.path().join("mysql-target.pw").display().to_string(),
        &pw.display().to_string(),
    );
    let dir = gw.stop().await.0;
    let path = dir.path().join("gatehouse-ed.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = gatehouse::config::GatewayConfig::load(&path).unwrap();
    let g = gatehouse::gateway::RunningGateway::start(&cfg)
        .await
        .unwrap();
    let gw = TestGateway {
        gw: g,
        dir,
        config_path: path,
    };
    let o = gw
        .mariadb(
            "alice",
            &gw.token("alice", &["analysts"]),
            "select current_user() as u",
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("gh_ed@"), "{}", out(&o));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_reaches_a_tls_only_account_over_verified_tls() {
    // A second MariaDB with a certificate, and an account that requires TLS.
    let certs = tempfile::Builder::new()
        .prefix("gh-mariadb-tls-")
        .tempdir_in("/tmp")
        .unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert_path = certs.path().join("cert.pem");
    let key_path = certs.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for p in [certs.path(), &cert_path, &key_path] {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let server = tokio::task::spawn_blocking({
        let (c, k) = (cert_path.clone(), key_path.clone());
        move || {
            gatehouse_testbed::mariadbcluster::MariaDbCluster::start_with(&[
                format!("--ssl-cert={}", c.display()),
                format!("--ssl-key={}", k.display()),
            ])
        }
    })
    .await
    .unwrap()
    .expect("MariaDB with TLS starts");
    server
        .create_user_and_database(
            "gh_tls",
            "tls-secret",
            "bank",
            gatehouse_testbed::mariadbcluster::MariaDbAuth::Native,
        )
        .unwrap();
    server
        .sql(
            "",
            "ALTER USER 'gh_tls'@'127.0.0.1' REQUIRE SSL; ALTER USER 'gh_tls'@'localhost' REQUIRE SSL;",
        )
        .unwrap();
    let extra = format!(
        r#"[[connections]]
name = "tls_bank"
type = "mysql"
host = "127.0.0.1"
port = {port}
database = "bank"
user = "gh_tls"
password_env = "GH_TLS_TEST_PW"
tls = "require"
ca_file = "{ca}"
allow_groups = ["analysts"]

[[connections]]
name = "tls_bank_plain"
type = "mysql"
host = "127.0.0.1"
port = {port}
database = "bank"
user = "gh_tls"
password_env = "GH_TLS_TEST_PW"
allow_groups = ["analysts"]
"#,
        port = server.port(),
        ca = cert_path.display(),
    );
    std::env::set_var("GH_TLS_TEST_PW", "tls-secret");
    let gw = TestGateway::start_mysql("", &extra).await;
    let alice = gw.token("alice", &["analysts"]);
    let run = |db: &'static str| {
        let port = gw.mysql_port();
        let alice = alice.clone();
        async move {
            tokio::process::Command::new("mariadb")
                .args(["--no-defaults", "--ssl", "--batch", "-h127.0.0.1"])
                .arg(format!("-P{port}"))
                .args(["-ualice", "-D", db, "-e"])
                .arg("show status like 'Ssl_cipher'")
                .env("MYSQL_PWD", &alice)
                .output()
                .await
                .unwrap()
        }
    };
    // Over TLS the TLS-only account logs in, and the target sees a cipher.
    let o = run("tls_bank").await;
    assert!(o.status.success(), "{}", err(&o));
    let cipher = out(&o);
    assert!(
        cipher.contains("Ssl_cipher\tTLS") || cipher.contains("AES"),
        "{cipher}"
    );
    // The same account without TLS is refused by the target.
    let o = run("tls_bank_plain").await;
    assert!(!o.status.success());
    assert!(err(&o).contains("could not open connection"), "{}", err(&o));
    let events = events(&gw).await;
    assert!(events
        .iter()
        .any(|e| e["kind"] == "session.start" && e["data"]["target_tls"] == true));
    gw.stop().await;
    drop(server);
}

/// Regression tests from review: nothing may read differently to the
/// gateway and the server, and masked values may not be carried out of a
/// result through variables, errors or copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quoting_tricks_and_masked_value_carriers_are_refused() {
    let gw = TestGateway::start_mysql_with("", "", my_plaintext).await;
    let alice = gw.token("alice", &["analysts"]);
    let refused = |o: &std::process::Output, rule: &str| {
        assert!(!o.status.success(), "{}", out(o));
        let e = err(o);
        assert!(e.contains(rule), "expected {rule}: {e}");
    };
    // Backslash escapes turned off, openly or in a multi-statement string.
    let o = gw
        .mariadb(
            "alice",
            &alice,
            "SET SESSION sql_mode='NO_BACKSLASH_ESCAPES'",
        )
        .await;
    refused(&o, "mysql-session-syntax");
    // One COM_QUERY holding a change and another statement (the mariadb
    // client would split them, so speak the protocol by hand).
    let mut s = raw_session(gw.mysql_port(), &alice).await;
    let reply = raw_command(&mut s, b"\x03SET sql_mode='ANSI'; SELECT 1").await;
    assert_eq!(reply[0], 0xff, "refused: {reply:?}");
    assert!(String::from_utf8_lossy(&reply).contains("mysql-session-syntax"));
    let o = gw.mariadb("alice", &alice, "SET NAMES sjis").await;
    refused(&o, "mysql-session-syntax");
    let o = gw
        .mariadb(
            "alice",
            &alice,
            "SET @m = 'NO_BACKSLASH_ESCAPES' ; SET sql_mode = @m",
        )
        .await;
    refused(&o, "mysql-session-syntax");
    // Spelled so no pattern sees it: the server's status flag does, and the
    // session ends before another statement is judged.
    let o = gw
        .mariadb("alice", &alice, "SET sql_mode = 'NO_BACKSL' 'ASH_ESCAPES'")
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let o = gw
        .mariadb(
            "alice",
            &alice,
            "SET sql_mode = 'NO_BACKSL' 'ASH_ESCAPES'; SELECT 'a\\'; UPDATE customers SET phone = 'X' WHERE id = 4; #'",
        )
        .await;
    assert!(!o.status.success());
    assert!(err(&o).contains("NO_BACKSLASH_ESCAPES"), "{}", err(&o));
    assert_ne!(phone_of(4).await, "X");

    // Masked columns carried out through variables or errors.
    let o = gw
        .mariadb(
            "alice",
            &alice,
            "SELECT ssn INTO @x FROM customers WHERE id = 1",
        )
        .await;
    refused(&o, "masked-columns-stay-masked");
    let o = gw
        .mariadb(
            "alice",
            &alice,
            "SELECT @y := reverse(ssn) FROM customers WHERE id = 1",
        )
        .await;
    refused(&o, "masked-columns-stay-masked");
    let raw = my_target()
        .server
        .sql("bank", "select reverse(ssn) from customers where id = 1")
        .unwrap();
    let o = gw
        .mariadb(
            "alice",
            &alice,
            "SELECT extractvalue(1, concat(0x7e, (SELECT reverse(ssn) FROM customers WHERE id = 1)))",
        )
        .await;
    assert!(!o.status.success());
    assert!(!err(&o).contains(raw.trim()), "{}", err(&o));
    assert!(err(&o).contains("withheld"), "{}", err(&o));
    // A copy of a masked table is refused even to a DBA.
    let dana = gw.token("dana", &["dba"]);
    let o = gw
        .mariadb(
            "dana",
            &dana,
            "CREATE TABLE c2 AS SELECT id, reverse(ssn) x FROM customers",
        )
        .await;
    refused(&o, "masked-columns-stay-masked");
    gw.stop().await;
}

async fn my_value(sql: &str) -> String {
    my_target()
        .server
        .sql("bank", sql)
        .unwrap()
        .trim()
        .to_string()
}

/// Issue 11: a masked value may not be kept in a user variable or another
/// column, however the statement is spelled, and row-changing DDL is an
/// update to the approval rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masked_values_cannot_be_kept_in_variables_or_other_columns() {
    let gw = TestGateway::start_mysql("", gatehouse::demo::DEMO_APPROVAL_RULE).await;
    let alice = gw.token("alice", &["analysts"]);
    let dana = gw.token("dana", &["dba"]);
    let ssn = my_value("select ssn from customers where id = 1").await;
    let reversed: String = ssn.chars().rev().collect();
    for attack in [
        "select ssn into/**/@v from customers where id = 1",
        "select ssn into @v from customers where id = 1",
        "select ssn into\n@v from customers where id = 1",
        "select ssn from customers where id = 1 into @v",
        "select ssn from customers where id = 1 into/**/@v",
        "select @v := ssn from customers where id = 1",
        "select @v/**/:=/**/reverse(ssn) from customers where id = 1",
        "select id from customers where (@v := ssn) is not null and id = 1",
        "select concat('x', @v := ssn) from customers where id = 1",
        "select count(*) from (select @v := ssn from customers where id = 1) t",
        "set @v = (select ssn from customers where id = 1)",
        "do @v := (select ssn from customers where id = 1)",
        "select get_lock(ssn, 0) from customers where id = 1",
    ] {
        for (who, token) in [("alice", &alice), ("dana", &dana)] {
            let o = gw
                .mariadb_args(
                    who,
                    token,
                    &format!("{attack}; select concat('v=', coalesce(@v, 'NULL'))"),
                    &["--force"],
                )
                .await;
            let (stdout, stderr) = (out(&o), err(&o));
            // DO is not a read: an analyst is refused that first.
            let refused = stderr.contains("masked-columns-stay-masked")
                || stderr.contains("unparseable-statement")
                || (who == "alice" && stderr.contains("analysts-read-only"));
            assert!(refused, "{who} {attack}: {stderr}");
            for raw in [&ssn, &reversed] {
                assert!(
                    !stdout.contains(raw.as_str()) && !stderr.contains(raw.as_str()),
                    "{who} {attack} leaked: {stdout} {stderr}"
                );
            }
        }
    }
    // Same-table copies and renames of masked columns.
    let notes = my_value("select coalesce(notes, 'NULL') from customers where id = 3").await;
    let columns = my_value(
        "select group_concat(column_name order by ordinal_position) from information_schema.columns where table_schema = 'bank' and table_name = 'customers'",
    )
    .await;
    for attack in [
        "update customers set notes = ssn where id = 3",
        "update customers set notes = concat('n:', reverse(ssn)) where id = 3",
        "insert into customers (id, name, email, notes) values (3, 'x', 'x', 'x') on duplicate key update notes = ssn",
        "alter table customers change ssn ssn_plain varchar(20)",
        "alter table customers add column ssn_copy varchar(20) as (ssn)",
        "rename table customers to customers_plain",
        "alter table customers rename to customers_plain",
    ] {
        let o = gw.mariadb("dana", &dana, attack).await;
        assert!(
            err(&o).contains("masked-columns-stay-masked"),
            "{attack}: {}",
            err(&o)
        );
        assert_eq!(
            my_value("select coalesce(notes, 'NULL') from customers where id = 3").await,
            notes,
            "{attack}"
        );
    }
    assert_eq!(
        my_value(
            "select group_concat(column_name order by ordinal_position) from information_schema.columns where table_schema = 'bank' and table_name = 'customers'",
        )
        .await,
        columns
    );
    // A column rewrite is an update of every row: held like one.
    let omar = gw.token("omar", &["approvers"]);
    let mut child = spawn_mariadb(
        &gw,
        "dana",
        &dana,
        "alter table customers modify notes varchar(3)",
    );
    let request = gw.pending_request(&omar).await;
    assert_eq!(request["rule"], "dba-customer-changes-need-approval");
    let id = request["id"].as_u64().unwrap();
    let (status, body) = gw.decide(id, &omar, "deny", "no").await;
    assert_eq!(status, 200, "{body}");
    let _ = child.wait().await;
    assert_eq!(
        my_value("select coalesce(notes, 'NULL') from customers where id = 3").await,
        notes
    );
    gw.stop().await;
}
