//! End to end through the real psql against a real PostgreSQL: identity,
//! masking, blocking, audit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;
use support::{config_text, err, events, out, TestGateway};

fn looks_masked_ssn(v: &str) -> bool {
    v.len() == 11 && v.starts_with("***-**-") && v[7..].chars().all(|c| c.is_ascii_digit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyst_sees_masked_columns_through_tls() {
    let gw = TestGateway::start("", "").await;
    let token = gw.token("alice", &["analysts"]);
    let o = gw
        .psql(
            "alice",
            &token,
            &["select name, ssn, card_number, email, id from customers order by id limit 3"],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .take(3)
        .map(|l| l.split('|').collect())
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    for r in &rows {
        assert!(
            !r[0].is_empty() && !r[0].contains('*'),
            "name is not masked: {r:?}"
        );
        assert!(looks_masked_ssn(r[1]), "ssn masked to last four: {r:?}");
        let card_digits = r[2].chars().filter(|c| c.is_ascii_digit()).count();
        assert_eq!(card_digits, 4, "card keeps only last four digits: {r:?}");
        assert!(r[3].starts_with("tok_"), "email tokenized: {r:?}");
        assert!(r[4].parse::<i64>().is_ok(), "id intact: {r:?}");
    }
    // Tokenization is deterministic: the same email gives the same token.
    let again = gw
        .psql(
            "alice",
            &token,
            &["select email from customers order by id limit 1"],
        )
        .await;
    assert_eq!(out(&again).lines().nth(1).unwrap(), rows[0][3]);
    assert_only_the_owner_reads(&gw.dir.path().join("state"));
    gw.stop().await;
}

/// Everything the gateway keeps in its state folder (audit store and
/// journal, approvals, keys, certificates) is its own user's alone:
/// folders 0700, files without group or other permissions.
fn assert_only_the_owner_reads(state: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut seen = Vec::new();
    let mut stack = vec![state.to_path_buf()];
    while let Some(path) = stack.pop() {
        // A SQLite side file can go as its last reader closes.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    for expected in ["audit.db", "audit.db.journal", "approvals.db"] {
        assert!(seen.iter().any(|s| s == expected), "{expected} in {seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masking_follows_aliases_functions_subqueries_and_ctes() {
    let gw = TestGateway::start("", "").await;
    let token = gw.token("alice", &["analysts"]);
    let queries = [
        "select ssn as x from customers limit 1",
        "select upper(c.ssn) from customers c limit 1",
        "select ssn::varchar(20) from customers limit 1",
        "select 'ssn: ' || ssn from customers limit 1",
        "select x from (select ssn as x from customers) sub limit 1",
        "with t as (select ssn as s from customers) select s from t limit 1",
        "select (select ssn from customers order by id limit 1) as y",
        "select * from customers order by id limit 1",
    ];
    for q in queries {
        let o = gw.psql("alice", &token, &[q]).await;
        assert!(o.status.success(), "{q}: {}", err(&o));
        let text = out(&o);
        let raw = gw_raw_ssn().await;
        assert!(!text.contains(&raw), "{q} leaked the SSN {raw}: {text}");
        assert!(
            text.contains("***-**-") || text.contains("*") || text.contains("[REDACTED"),
            "{q} shows no masked value: {text}"
        );
    }
    gw.stop().await;
}

/// The first customer's real SSN, read directly from the target (not through the gateway).
async fn gw_raw_ssn() -> String {
    let t = support::target();
    let o = t
        .cluster
        .psql("bank", "select ssn from customers order by id limit 1")
        .unwrap();
    o.lines()
        .map(str::trim)
        .find(|l| l.len() == 11 && l.chars().nth(3) == Some('-'))
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detectors_mask_free_text_and_error_messages() {
    let gw = TestGateway::start("", "").await;
    let alice = gw.token("alice", &["analysts"]);
    // Free-text notes mention SSNs and cards inline; detectors catch them.
    let o = gw
        .psql(
            "alice",
            &alice,
            &["select notes from customers where notes ~ '\\d{3}-\\d{2}-\\d{4}' limit 5"],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    let ssn = regex_ssn();
    assert!(
        !ssn.is_match(&text.replace("***-**-", "")),
        "unmasked SSN in notes: {text}"
    );
    // A literal SSN echoed back in a result (not from any column) is caught too.
    let o = gw
        .psql(
            "alice",
            &alice,
            &["select 'call 212-555-0147 about 123-45-6789' as msg"],
        )
        .await;
    let text = out(&o);
    assert!(!text.contains("123-45-6789"), "{text}");
    // A unique violation's DETAIL echoes the value: it is masked in the error.
    let dana = gw.token("dana", &["dba"]);
    let o = gw
        .psql(
            "dana",
            &dana,
            &[
                "drop table if exists uniq_test",
                "create table uniq_test(ssn text unique)",
                "insert into uniq_test values ('123-45-6789')",
                "insert into uniq_test values ('123-45-6789')",
            ],
        )
        .await;
    let e = err(&o);
    assert!(e.contains("duplicate key"), "{e}");
    assert!(
        !e.contains("123-45-6789"),
        "error detail leaked the SSN: {e}"
    );
    let _ = gw.psql("dana", &dana, &["drop table uniq_test"]).await;
    gw.stop().await;
}

fn regex_ssn() -> regex_lite::Regex {
    regex_lite::Regex::new(r"\b\d{3}-\d{2}-\d{4}\b").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_statements_never_reach_the_target_and_the_session_continues() {
    let gw = TestGateway::start("", "").await;
    let alice = gw.token("alice", &["analysts"]);
    let o = gw
        .psql_opts(
            "alice",
            &alice,
            "require",
            &[
                "delete from customers where id = 1",
                "select count(*) from customers",
            ],
            &["-v", "ON_ERROR_STOP=0"],
        )
        .await;
    let e = err(&o);
    assert!(e.contains("analysts-read-only"), "{e}");
    assert!(
        e.contains("42501") || e.contains("blocked by gatehouse rule"),
        "{e}"
    );
    assert!(
        out(&o).lines().any(|l| l.trim() == "60"),
        "session continued: {}",
        out(&o)
    );

    let dana = gw.token("dana", &["dba"]);
    let cases = [
        ("delete from customers", "no-unbounded-writes"),
        ("update accounts set balance = 0", "no-unbounded-writes"),
        ("drop database bank", "dba-deny-list"),
        ("alter system set work_mem = '1GB'", "dba-deny-list"),
        ("select 1; delete from transactions", "no-unbounded-writes"),
        (
            "with d as (delete from transactions returning *) select count(*) from d",
            "no-unbounded-writes",
        ),
        (
            "do $$ begin delete from transactions; end $$",
            "unparseable-statement",
        ),
    ];
    for (sql, rule) in cases {
        let o = gw.psql("dana", &dana, &[sql]).await;
        assert!(!o.status.success(), "{sql} should be blocked");
        assert!(
            err(&o).contains(rule),
            "{sql}: expected rule {rule}: {}",
            err(&o)
        );
    }
    // Nothing was deleted: every blocked statement stayed away from the target.
    let t = support::target();
    let n = t
        .cluster
        .psql("bank", "select count(*) from transactions")
        .unwrap();
    assert!(
        n.lines()
            .any(|l| l.trim().parse::<i64>().map(|v| v > 0).unwrap_or(false)),
        "{n}"
    );
    // DBAs may create tables and change rows with a WHERE.
    let o = gw
        .psql(
            "dana",
            &dana,
            &[
                "create table if not exists dba_scratch(id int)",
                "insert into dba_scratch values (1)",
                "delete from dba_scratch where id = 1",
                "drop table dba_scratch",
            ],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    gw.stop().await;
}

/// The dev issuer signs a token for whoever reaches it: a gateway whose
/// API would listen beyond loopback refuses to start with it, before
/// anything is bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_issuer_never_runs_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), "", "").replace(
        "[api]\nlisten = \"127.0.0.1:0\"",
        "[api]\nlisten = \"0.0.0.0:0\"",
    );
    assert!(text.contains("0.0.0.0:0"));
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = gatehouse::config::GatewayConfig::load(&path).unwrap();
    let e = match gatehouse::gateway::RunningGateway::start(&cfg).await {
        Ok(_) => panic!("a dev issuer on 0.0.0.0 started"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("only runs on a loopback API listener"), "{e}");
    assert!(e.contains("[[identity.issuers]]"), "{e}");
}

/// Bad tokens cannot grow the trail without bound: past the per-address
/// limit an address is refused before its token is looked at (a valid one
/// too, until the window ends), and what was not recorded one by one is
/// recorded once, as a counted summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_tokens_is_limited_and_summed_up() {
    let gw = TestGateway::start(
        "",
        "[identity.sign_in_failures]\nper_address = 3\nwindow_secs = 3600\n",
    )
    .await;
    for i in 0..3 {
        let o = gw
            .psql("alice", &format!("bad-token-{i}"), &["select 1"])
            .await;
        assert!(err(&o).contains("authentication failed"), "{}", err(&o));
        assert!(!err(&o).contains("too many"), "{}", err(&o));
    }
    for i in 3..6 {
        let o = gw
            .psql("alice", &format!("bad-token-{i}"), &["select 1"])
            .await;
        assert!(!o.status.success());
        assert!(
            err(&o).contains("too many failed sign-ins from 127.0.0.1; try again in"),
            "{}",
            err(&o)
        );
    }
    let good = gw.token("alice", &["analysts"]);
    let o = gw.psql("alice", &good, &["select 1"]).await;
    assert!(
        err(&o).contains("too many failed sign-ins"),
        "the address waits for the window, whatever its token: {}",
        err(&o)
    );
    // The approvals API shares the limit: 429, before the token is read.
    let (status, body) = gw.api("GET", "/api/v1/whoami", "bad-token-api", None).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("too many failed sign-ins"),
        "{body}"
    );
    let config = gw.config_path.clone();
    let (_dir, _) = gw.stop().await;
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--config")
        .arg(&config)
        .args(["audit", "export", "--format", "jsonl"])
        .env_remove("GATEHOUSE_CONFIG")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let evs: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let failures = evs.iter().filter(|e| e["kind"] == "auth.failure").count();
    assert_eq!(
        failures, 3,
        "only the failures within the limit, one by one"
    );
    let summaries: Vec<_> = evs
        .iter()
        .filter(|e| e["kind"] == "auth.failure.summary")
        .collect();
    assert_eq!(summaries.len(), 1, "one summary for the window");
    let s = &summaries[0]["data"];
    assert_eq!(s["refused_unchecked"], 5, "{s}");
    assert_eq!(s["failed_unrecorded"], 0, "{s}");
    assert_eq!(s["addresses"], serde_json::json!([["127.0.0.1", 5]]), "{s}");
    assert!(
        !serde_json::to_string(&evs).unwrap().contains("bad-token"),
        "no token in the trail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_missing_tls_are_refused() {
    let gw = TestGateway::start("", "[identity]\nleeway_secs = 0\n").await;
    let o = gw.psql("alice", "not-a-token", &["select 1"]).await;
    assert!(!o.status.success());
    assert!(err(&o).contains("authentication failed"), "{}", err(&o));
    assert!(
        !err(&o).contains("not-a-token"),
        "the token is never echoed"
    );

    // Forged: a valid token with its payload altered.
    let good = gw.token("alice", &["analysts"]);
    let mut parts: Vec<String> = good.split('.').map(String::from).collect();
    parts[1] = parts[1].chars().rev().collect();
    let forged = parts.join(".");
    let o = gw.psql("alice", &forged, &["select 1"]).await;
    assert!(!o.status.success());
    assert!(err(&o).contains("authentication failed"), "{}", err(&o));

    // Expired.
    let short = gw.token_ttl("alice", &["analysts"], Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let o = gw.psql("alice", &short, &["select 1"]).await;
    assert!(!o.status.success());
    assert!(err(&o).to_lowercase().contains("expired"), "{}", err(&o));

    // A group with no access to the connection.
    let outsider = gw.token("mallory", &["marketing"]);
    let o = gw.psql("mallory", &outsider, &["select 1"]).await;
    assert!(!o.status.success());
    assert!(err(&o).contains("not in a group allowed"), "{}", err(&o));

    // Plaintext is refused: the token is a password.
    let o = gw
        .psql_opts("alice", &good, "disable", &["select 1"], &[])
        .await;
    assert!(!o.status.success());
    assert!(err(&o).contains("requires TLS"), "{}", err(&o));

    // Unknown connection name.
    let mut cmd = tokio::process::Command::new("psql");
    let o = cmd
        .env("PGPASSWORD", &good)
        .arg(format!(
            "host=127.0.0.1 port={} user=alice dbname=nope sslmode=require",
            gw.port()
        ))
        .arg("-c")
        .arg("select 1")
        .output()
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no connection named"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let evs = events(&gw).await;
    let failures = evs.iter().filter(|e| e["kind"] == "auth.failure").count();
    assert!(failures >= 3, "auth failures are recorded: {failures}");
    assert!(
        !serde_json::to_string(&evs).unwrap().contains(&good),
        "no token in the audit trail"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_out_is_masked_and_copy_in_works() {
    let gw = TestGateway::start("", "").await;
    let dana = gw.token("dana", &["dba"]);
    let o = gw
        .psql(
            "dana",
            &dana,
            &["copy (select id, ssn, card_number from customers order by id limit 5) to stdout"],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    assert_eq!(text.lines().count(), 5, "{text}");
    for l in text.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        assert!(looks_masked_ssn(f[1]), "{l}");
    }
    let o = gw
        .psql(
            "dana",
            &dana,
            &["copy customers to stdout with (format csv)"],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        !regex_ssn().is_match(&out(&o)),
        "whole-table CSV copy leaked an SSN"
    );
    let o = gw
        .psql("dana", &dana, &["copy customers to stdout (format binary)"])
        .await;
    assert!(err(&o).contains("binary COPY"), "{}", err(&o));
    // A binary COPY to a server-side file sends no row through the gateway,
    // so no masking rule is at stake: it runs as it would directly.
    support::target()
        .cluster
        .psql("bank", "GRANT pg_write_server_files TO gatehouse_app")
        .unwrap();
    let server_file =
        std::env::temp_dir().join(format!("gatehouse-binary-copy-{}.bin", std::process::id()));
    let o = gw
        .psql(
            "dana",
            &dana,
            &[&format!(
                "copy (select id from customers order by id limit 3) to '{}' (format binary)",
                server_file.display()
            )],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("COPY 3"), "{}", out(&o));
    let written = std::fs::read(&server_file).unwrap();
    assert!(written.starts_with(b"PGCOPY\n"), "not a binary COPY file");
    let _ = std::fs::remove_file(&server_file);

    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "1\tone\n2\ttwo\n3\tthree\n").unwrap();
    let o = gw
        .psql(
            "dana",
            &dana,
            &[
                "drop table if exists copy_in_test",
                "create table copy_in_test(id int, label text)",
                &format!("\\copy copy_in_test from '{}'", file.path().display()),
                "select count(*) from copy_in_test",
                "drop table copy_in_test",
            ],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).lines().any(|l| l.trim() == "3"), "{}", out(&o));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_trail_records_and_verifies_and_detects_tampering() {
    let gw = TestGateway::start("", "").await;
    let alice = gw.token("alice", &["analysts"]);
    let o = gw
        .psql_opts(
            "alice",
            &alice,
            "require",
            &[
                "select ssn from customers order by id limit 2",
                "delete from customers where id = 2",
                "create role x password 'hunter2'",
            ],
            &["-v", "ON_ERROR_STOP=0"],
        )
        .await;
    assert!(err(&o).contains("blocked"), "{}", err(&o));
    let evs = events(&gw).await;
    let kinds: Vec<&str> = evs.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(
        kinds.contains(&"session.start")
            && kinds.contains(&"command")
            && kinds.contains(&"command.result"),
        "{kinds:?}"
    );
    let commands: Vec<&serde_json::Value> = evs.iter().filter(|e| e["kind"] == "command").collect();
    assert_eq!(commands.len(), 3);
    assert_eq!(commands[0]["subject"], "alice");
    assert_eq!(commands[0]["data"]["verdict"]["effect"], "allow");
    assert_eq!(commands[1]["data"]["verdict"]["effect"], "block");
    assert_eq!(commands[1]["data"]["verdict"]["rule"], "analysts-read-only");
    assert!(
        !commands[2]["data"]["sql"]
            .as_str()
            .unwrap()
            .contains("hunter2"),
        "secret literal redacted"
    );
    let result = evs.iter().find(|e| e["kind"] == "command.result").unwrap();
    assert_eq!(result["data"]["rows"], 2);
    assert!(
        result["data"]["masked"]["ssn"].as_u64().unwrap_or(0) >= 2,
        "{result}"
    );
    let sample = serde_json::to_string(&result["data"]["result_sample"]).unwrap();
    assert!(
        sample.contains("***-**-"),
        "sample holds masked values only: {sample}"
    );
    assert_eq!(
        result["data"]["columns"],
        serde_json::json!(["ssn"]),
        "the sample's column names: {result}"
    );

    // sessions list/show read it back.
    let o = gw.cli(&["sessions", "list", "--json"]).await;
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = list[0]["id"].as_str().unwrap().to_string();
    assert_eq!(list[0]["subject"], "alice");
    let o = gw.cli(&["sessions", "show", &id]).await;
    assert!(out(&o).contains("analysts-read-only"), "{}", out(&o));

    let (dir, config) = gw.stop().await;
    let verify = |config: std::path::PathBuf| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--config")
            .arg(&config)
            .args(["audit", "verify"])
            .output()
            .await
            .unwrap()
    };
    let o = verify(config.clone()).await;
    assert!(
        o.status.success(),
        "intact trail verifies: {} {}",
        out(&o),
        err(&o)
    );
    // Edit one event's data: verify names it.
    let db = dir.path().join("state/audit.db");
    let conn = rusqlite_lite(&db);
    conn("update events set data = json_set(data, '$.rows', 999) where seq = 3");
    let o = verify(config.clone()).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("first bad event 3"), "{}", out(&o));
}

/// Run one SQL statement against the SQLite audit store with the sqlite3
/// tool-less path: through python's sqlite3 module (always present).
fn rusqlite_lite(db: &std::path::Path) -> impl Fn(&str) + '_ {
    move |sql: &str| {
        let script = format!(
            "import sqlite3; c = sqlite3.connect({:?}); c.execute({:?}); c.commit()",
            db.display().to_string(),
            sql
        );
        let o = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_level_prepare_and_execute_are_checked_and_masked() {
    let gw = TestGateway::start("", "").await;
    let dana = gw.token("dana", &["dba"]);
    // The prepared body decides: a DELETE without WHERE is refused at PREPARE.
    let o = gw
        .psql("dana", &dana, &["prepare wipe as delete from transactions"])
        .await;
    assert!(err(&o).contains("no-unbounded-writes"), "{}", err(&o));
    // EXECUTE of a prepared SELECT is masked by the body's lineage.
    let o = gw
        .psql(
            "dana",
            &dana,
            &[
                "prepare q as select ssn as s from customers order by id limit 1",
                "execute q",
            ],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    assert!(text.lines().any(looks_masked_ssn), "{text}");
    // EXECUTE of a statement the gateway never saw prepared is refused.
    let o = gw.psql("dana", &dana, &["execute never_prepared"]).await;
    assert!(
        err(&o).contains("unknown-prepared-statement"),
        "{}",
        err(&o)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_rule_stops_the_gateway_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = support::config_text(
        dir.path(),
        "",
        "[[rules]]\nname = \"typo\"\neffect = \"block\"\nmessage = \"m\"\nkinds = [\"delet\"]\n",
    );
    let line = text.lines().position(|l| l == "name = \"typo\"").unwrap();
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(&path, &text).unwrap();
    let o = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--config")
            .arg(&path)
            .arg("serve")
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!o.status.success());
    let e = err(&o);
    assert!(e.contains("typo") && e.contains("delet"), "{e}");
    // The rule's table header is the line before its name.
    assert!(
        e.contains(&format!("line {line}")) || e.contains(&format!("line {}", line + 1)),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_are_refused_when_the_audit_store_cannot_record() {
    let Some(disk) = support::SmallFs::mount() else {
        return;
    };
    let gw = TestGateway::start_with("", "", |t| disk.audit_on_it(t)).await;
    let dana = gw.token("dana", &["dba"]);
    let o = gw.psql("dana", &dana, &["select 1"]).await;
    assert!(o.status.success(), "{}", err(&o));
    // The disk fills up. The journal's last page may still take a few
    // events; the first statement it cannot take is refused.
    disk.fill();
    let mut refused = None;
    for i in 0..200 {
        let o = gw.psql("dana", &dana, &[&format!("select {i}")]).await;
        if !o.status.success() {
            refused = Some(err(&o));
            break;
        }
    }
    let e = refused.expect("a full disk refuses statements");
    assert!(
        e.contains("could not record") && e.contains("No space left on device"),
        "{e}"
    );
    let o = gw
        .psql_opts(
            "dana",
            &dana,
            "require",
            &["create table if not exists must_not_exist(id int)"],
            &[],
        )
        .await;
    assert!(
        !o.status.success(),
        "a command that cannot be recorded must not run"
    );
    assert!(err(&o).contains("could not record"), "{}", err(&o));
    let t = support::target();
    let exists = t
        .cluster
        .psql(
            "bank",
            "select to_regclass('public.must_not_exist') is not null",
        )
        .unwrap();
    assert!(
        exists.lines().any(|l| l.trim() == "f"),
        "the statement reached the database: {exists}"
    );
    // Once there is room again, the gateway records again, and the chain is whole.
    disk.free();
    let o = gw.psql("dana", &dana, &["select 2"]).await;
    assert!(o.status.success(), "{}", err(&o));
    let (_dir, config) = gw.stop().await;
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--config")
        .arg(&config)
        .args(["audit", "verify"])
        .output()
        .await
        .unwrap();
    assert!(
        o.status.success(),
        "chain intact after the failure: {} {}",
        out(&o),
        err(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_row_references_are_masked() {
    let gw = TestGateway::start("", "").await;
    let alice = gw.token("alice", &["analysts"]);
    let t = support::target();
    let account = t
        .cluster
        .psql(
            "bank",
            "select account_number from customers order by id limit 1",
        )
        .unwrap();
    let account = account
        .lines()
        .map(str::trim)
        .find(|l| l.len() >= 10 && l.chars().all(|c| c.is_ascii_digit()))
        .unwrap()
        .to_string();
    for q in [
        "select to_json(c) from customers c order by id limit 1",
        "select c from customers c order by id limit 1",
        "select row(c.*) from customers c order by id limit 1",
        "select json_agg(c.*) from (select * from customers order by id limit 1) c",
    ] {
        let o = gw.psql("alice", &alice, &[q]).await;
        assert!(o.status.success(), "{q}: {}", err(&o));
        assert!(
            !out(&o).contains(&account),
            "{q} leaked the account number: {}",
            out(&o)
        );
    }
    let o = gw
        .psql("alice", &alice, &["select count(*) from customers"])
        .await;
    assert!(
        out(&o).lines().any(|l| l.trim() == "60"),
        "count(*) is not masked: {}",
        out(&o)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_bypasses_stay_closed() {
    let gw = TestGateway::start("", "").await;
    let alice = gw.token("alice", &["analysts"]);
    let dana = gw.token("dana", &["dba"]);
    let raw = gw_raw_ssn().await;
    let reversed: String = raw.chars().rev().collect();
    // EXPLAIN (ANALYZE) runs what it explains: an analyst's UPDATE stays blocked.
    let o = gw
        .psql(
            "alice",
            &alice,
            &["explain (analyze) update customers set notes = 'pwned' where id = 1"],
        )
        .await;
    assert!(err(&o).contains("analysts-read-only"), "{}", err(&o));
    // Functions in FROM, whole rows in them, and cursors keep the column trace.
    for q in [
        "select unnest from customers c, unnest(array[reverse(c.ssn)]) order by 1 limit 100",
        "select key, reverse(value) from customers c, json_each_text(row_to_json(c)) where key = 'ssn'",
        "begin; declare k cursor for select reverse(ssn) as r from customers order by id; fetch 100 from k; commit",
    ] {
        let o = gw.psql("alice", &alice, &[q]).await;
        assert!(o.status.success(), "{q}: {}", err(&o));
        assert!(!out(&o).contains(&reversed) && !out(&o).contains(&raw), "{q} leaked: {}", out(&o));
    }
    let o = gw
        .psql("alice", &alice, &["fetch 1 from never_declared"])
        .await;
    assert!(err(&o).contains("unknown-cursor"), "{}", err(&o));
    // A top-level DELETE behind a WITH is a DELETE, not a read.
    let o = gw
        .psql(
            "alice",
            &alice,
            &["with x as (select 1) delete from customers where id = 1"],
        )
        .await;
    assert!(err(&o).contains("analysts-read-only"), "{}", err(&o));
    let o = gw
        .psql(
            "dana",
            &dana,
            &["with x as (select 1) delete from transactions"],
        )
        .await;
    assert!(err(&o).contains("no-unbounded-writes"), "{}", err(&o));
    // A WHERE that filters nothing is no WHERE.
    let o = gw
        .psql("dana", &dana, &["delete from transactions where true"])
        .await;
    assert!(err(&o).contains("no-unbounded-writes"), "{}", err(&o));
    // A literal quoted by the parser's error never reaches the trail or the client.
    let o = gw
        .psql("dana", &dana, &["create user bob password 'hunter3' 'x'"])
        .await;
    assert!(!err(&o).contains("hunter3"), "{}", err(&o));
    let evs = events(&gw).await;
    assert!(
        !serde_json::to_string(&evs).unwrap().contains("hunter3"),
        "password in the audit trail"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_text_cannot_carry_masked_values() {
    let gw = TestGateway::start("", "").await;
    let alice = gw.token("alice", &["analysts"]);
    let raw = support::target()
        .cluster
        .psql("bank", "select reverse(ssn) from customers where id = 1")
        .unwrap();
    let reversed = raw
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 11 && l.contains('-'))
        .unwrap_or_default()
        .to_string();
    assert!(!reversed.is_empty(), "{raw}");
    let o = gw
        .psql(
            "alice",
            &alice,
            &["select cast(reverse(ssn) as int) from customers where id = 1"],
        )
        .await;
    assert!(!o.status.success());
    let e = err(&o);
    assert!(!e.contains(&reversed), "{e}");
    assert!(e.contains("withheld") && e.contains("22P02"), "{e}");
    // A copy of a masked table is refused, even to a DBA.
    let dana = gw.token("dana", &["dba"]);
    let o = gw
        .psql(
            "dana",
            &dana,
            &["create table c2 as select id, reverse(ssn) x from customers"],
        )
        .await;
    assert!(
        err(&o).contains("masked-columns-stay-masked"),
        "{}",
        err(&o)
    );
    gw.stop().await;
}

/// Where the gateway refuses what the server would refuse too, the client
/// gets the server's own SQLSTATE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_the_server_would_make_carry_its_sqlstate() {
    let gw = TestGateway::start("", "").await;
    let dana = gw.token("dana", &["dba"]);
    let o = gw
        .psql(
            "dana",
            &dana,
            &[
                "\\set VERBOSITY verbose",
                "prepare p as select 1",
                "prepare p as select 2",
                "execute never_prepared",
                "fetch next from never_declared",
            ],
        )
        .await;
    let e = err(&o);
    for code in ["42P05", "26000", "34000"] {
        assert!(e.contains(code), "{code}: {e}");
    }
    // The duplicate is the server's own refusal, in its own words, and the
    // first statement stays the one that runs.
    assert!(
        e.contains("ERROR:  42P05: prepared statement \"p\" already exists\n"),
        "{e}"
    );
    let o = gw
        .psql(
            "dana",
            &dana,
            &[
                "prepare p as select 1 as first",
                "prepare p as delete from customers where id = 1",
                "execute p",
            ],
        )
        .await;
    assert!(out(&o).contains("first\n1"), "{}", out(&o));
    // The gateway's map of prepared statements changes when the server
    // answers; a name in use is refused at once, so `EXECUTE p` never runs
    // a body the gateway did not judge (here an unapproved UPDATE).
    let o = gw
        .psql(
            "dana",
            &dana,
            &[
                "prepare p as select 1",
                "deallocate p; prepare p as update customers set phone = 'PWNED' where id = 7; execute p",
            ],
        )
        .await;
    assert!(err(&o).contains("already exists"), "{}", err(&o));
    let phone = support::target()
        .cluster
        .psql("bank", "select phone from customers where id = 7")
        .unwrap();
    assert!(!phone.contains("PWNED"), "{phone}");
    gw.stop().await;
}

/// Detectors read text; numbers, dates, intervals and UUIDs are masked by
/// column rules, not guessed at (an epoch second is not an SSN), unless the
/// connection opts in with `detect_typed_values`, where a card number kept
/// in a `bigint` becomes NULL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detectors_read_typed_values_only_where_the_connection_opts_in() {
    let sql = "select 4111111111111111::bigint as n, 123456789 as epoch, \
               'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid as u, 2.5::float8 as f, \
               interval '123456789 seconds' as i, 'card 4111111111111111' as t";
    let row = |o: &std::process::Output| -> Vec<String> {
        assert!(o.status.success(), "{}", err(o));
        out(o).trim().split('|').map(str::to_string).collect()
    };
    let gw = TestGateway::start("", "").await;
    let alice = gw.token("alice", &["analysts"]);
    let v = row(&gw
        .psql_opts("alice", &alice, "require", &[sql], &["-A", "-t"])
        .await);
    assert_eq!(v[0], "4111111111111111", "{v:?}");
    assert_eq!(v[1], "123456789", "{v:?}");
    assert_eq!(v[2], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "{v:?}");
    assert_eq!(v[3], "2.5", "{v:?}");
    assert_eq!(v[4], "34293:33:09", "{v:?}");
    assert!(
        !v[5].contains("4111111111111111"),
        "text is still read: {v:?}"
    );
    gw.stop().await;

    let gw = TestGateway::start_with("", "", |t| {
        t.replacen(
            "allow_groups = [\"analysts\", \"dba\"]\n",
            "allow_groups = [\"analysts\", \"dba\"]\ndetect_typed_values = true\n",
            1,
        )
    })
    .await;
    let alice = gw.token("alice", &["analysts"]);
    let v = row(&gw
        .psql_opts("alice", &alice, "require", &[sql], &["-A", "-t"])
        .await);
    assert_eq!(v[0], "", "a card number in a bigint becomes NULL: {v:?}");
    assert!(!v[5].contains("4111111111111111"), "{v:?}");
    gw.stop().await;
}

/// Run a PostgreSQL client tool (`pg_dump`, `pg_restore`) with a password.
async fn pg_tool(program: &str, password: &str, args: &[&str]) -> std::process::Output {
    let bin = gatehouse_testbed::pgcluster::PgCluster::find_binaries().unwrap();
    let mut cmd = tokio::process::Command::new(bin.join(program));
    cmd.env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .args(args)
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("client tool timed out")
        .expect("client tool runs")
}

/// libpq's large-object API (psql's `\lo_*`, pg_dump, pg_restore) uses
/// fast-path function calls: each is decided, recorded and relayed as the
/// `SELECT` it stands for. A DBA imports, exports and dumps the bank whole
/// and restores it directly; an analyst's dump is masked, and large-object
/// data, which no column rule can follow, is refused to analysts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_and_pg_dump_work_through_the_gateway() {
    // DBAs are exempt from the column rules here: their dump is whole.
    let gw = TestGateway::start_with("", "", |t| {
        t.replace(
            "[[masking.columns]]\n",
            "[[masking.columns]]\nexcept_groups = [\"dba\"]\n",
        )
        .replacen("[masking]\n", "[masking]\nexempt_groups = [\"dba\"]\n", 1)
    })
    .await;
    let dana = gw.token("dana", &["dba"]);
    let alice = gw.token("alice", &["analysts"]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("statement.txt");
    let content = "quarterly statement, page after page\n".repeat(1500);
    std::fs::write(&src, &content).unwrap();

    let o = gw
        .psql(
            "dana",
            &dana,
            &[&format!("\\lo_import '{}'", src.display())],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let oid: u32 = out(&o)
        .trim()
        .strip_prefix("lo_import ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{}", out(&o)));
    let dst = dir.path().join("copy.txt");
    let o = gw
        .psql(
            "dana",
            &dana,
            &[&format!("\\lo_export {oid} '{}'", dst.display())],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(std::fs::read_to_string(&dst).unwrap(), content);

    // An analyst: reading large-object data is refused (column rules apply
    // to analysts and cannot follow it); creating one is a write.
    let o = gw
        .psql(
            "alice",
            &alice,
            &[&format!("\\lo_export {oid} '{}'", dst.display())],
        )
        .await;
    assert!(!o.status.success());
    assert!(err(&o).contains("large-object data"), "{}", err(&o));
    let o = gw
        .psql(
            "alice",
            &alice,
            &[&format!("\\lo_import '{}'", src.display())],
        )
        .await;
    assert!(!o.status.success());
    assert!(err(&o).contains("analysts-read-only"), "{}", err(&o));
    let o = gw
        .psql("alice", &alice, &[&format!("select lo_unlink({oid})")])
        .await;
    assert!(err(&o).contains("analysts-read-only"), "{}", err(&o));

    // pg_dump as the DBA, restored directly into a new database.
    let conninfo = |user: &str| {
        format!(
            "host=127.0.0.1 port={} user={user} dbname=bank sslmode=require",
            gw.port()
        )
    };
    let dump = dir.path().join("bank.dump");
    let o = pg_tool(
        "pg_dump",
        &dana,
        &[
            "-Fc",
            "--no-owner",
            "-f",
            dump.to_str().unwrap(),
            &conninfo("dana"),
        ],
    )
    .await;
    assert!(o.status.success(), "pg_dump: {}", err(&o));
    let t = support::target();
    let restored = format!("restored_{}", std::process::id());
    t.cluster.create_database(&restored, "postgres").unwrap();
    let o = pg_tool(
        "pg_restore",
        t.cluster.superuser_password(),
        &[
            "--no-owner",
            "-h",
            "127.0.0.1",
            "-p",
            &t.cluster.port().to_string(),
            "-U",
            "postgres",
            "-d",
            &restored,
            dump.to_str().unwrap(),
        ],
    )
    .await;
    assert!(o.status.success(), "pg_restore: {}", err(&o));
    let check = t
        .cluster
        .psql(
            &restored,
            &format!(
                "select count(*) filter (where ssn ~ '^[0-9]{{3}}-[0-9]{{2}}-[0-9]{{4}}$') || '/' || count(*) from customers;\n\
                 select length(lo_get({oid}));"
            ),
        )
        .unwrap();
    assert!(
        check.contains("60/60"),
        "the DBA's dump holds the SSNs: {check}"
    );
    assert!(check.contains(&content.len().to_string()), "{check}");

    // The analyst's dump (large objects left out): SSNs masked.
    let o = pg_tool(
        "pg_dump",
        &alice,
        &["--no-owner", "--no-blobs", &conninfo("alice")],
    )
    .await;
    assert!(o.status.success(), "analyst pg_dump: {}", err(&o));
    let text = out(&o);
    assert!(text.contains("COPY public.customers"), "{text}");
    assert!(
        !regex_ssn().is_match(&text),
        "the analyst's dump leaked an SSN"
    );

    // The trail has the fast-path calls as SELECTs, without their data.
    let events = events(&gw).await;
    let fast: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "command" && e["data"]["protocol"] == "fast-path")
        .collect();
    assert!(
        fast.iter()
            .any(|e| e.to_string().contains("pg_catalog.lowrite(")),
        "{fast:?}"
    );
    assert!(fast
        .iter()
        .any(|e| e.to_string().contains("pg_catalog.loread(")));
    assert!(
        !events
            .iter()
            .any(|e| e.to_string().contains("page after page")),
        "large-object data is not recorded"
    );
    let _ = gw
        .psql("dana", &dana, &[&format!("select lo_unlink({oid})")])
        .await;
    t.cluster
        .psql("postgres", &format!("DROP DATABASE {restored}"))
        .unwrap();
    gw.stop().await;
}

/// Settings a client asks for in `options` (`PGOPTIONS`, as pg_regress
/// uses) reach the target when they are on the start-up allow-list;
/// others (`search_path`) do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_settings_in_options_reach_the_target() {
    let gw = TestGateway::start("", "").await;
    let dana = gw.token("dana", &["dba"]);
    let o = tokio::process::Command::new("psql")
        .env("PGPASSWORD", &dana)
        .env(
            "PGOPTIONS",
            "-c intervalstyle=postgres_verbose -c search_path=pg_temp",
        )
        .args(["-X", "-A", "-t"])
        .arg(format!(
            "host=127.0.0.1 port={} user=dana dbname=bank sslmode=require",
            gw.port()
        ))
        .args(["-c", "show intervalstyle", "-c", "show search_path"])
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    assert!(text.contains("postgres_verbose"), "{text}");
    assert!(!text.contains("pg_temp"), "{text}");
    gw.stop().await;
}

/// Statements sqlparser cannot read (`t*`, a bare `FETCH c`, `WHERE CURRENT
/// OF`, an array element in `SET`) are read by PostgreSQL's own grammar:
/// they run, their results are masked (whole, with no column trace), and
/// policy judges them as the statements they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_only_postgresql_reads_are_masked_and_judged() {
    let gw = TestGateway::start("", "").await;
    let alice = gw.token("alice", &["analysts"]);
    let dana = gw.token("dana", &["dba"]);
    let raw = gw_raw_ssn().await;
    for q in [
        "select name, ssn as x, id from customers* order by id limit 3",
        "begin; declare k cursor for select name, ssn as x from customers* order by id; fetch k; fetch next k; fetch forward 2 from k; commit",
    ] {
        let o = gw.psql("alice", &alice, &[q]).await;
        assert!(o.status.success(), "{q}: {}", err(&o));
        assert!(!out(&o).contains(&raw), "{q} leaked: {}", out(&o));
        assert!(out(&o).lines().count() >= 2, "{q}: {}", out(&o));
    }
    let o = gw.psql("alice", &alice, &["fetch never_declared"]).await;
    assert!(err(&o).contains("unknown-cursor"), "{}", err(&o));
    let o = gw
        .psql(
            "alice",
            &alice,
            &["update customers* set notes = 'pwned' where id = 1"],
        )
        .await;
    assert!(err(&o).contains("analysts-read-only"), "{}", err(&o));
    let o = gw.psql("dana", &dana, &["delete from transactions*"]).await;
    assert!(err(&o).contains("no-unbounded-writes"), "{}", err(&o));
    // A cursor's row is one row: WHERE CURRENT OF is a WHERE.
    let o = gw
        .psql(
            "dana",
            &dana,
            &["begin; declare w cursor for select id from transactions order by id for update; fetch w; delete from transactions where current of w; rollback"],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    gw.stop().await;
}
