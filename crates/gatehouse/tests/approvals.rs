//! Held statements and access grants, end to end: the real psql and
//! tokio-postgres waiting on the gateway, decisions through the JSON API and
//! the real `gatehouse` CLI, a real PostgreSQL behind, and the audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;
use support::{err, out, TestGateway};

/// The demo's approval rule, after the demo's block rules.
fn with_approval_rule(text: String) -> String {
    format!("{text}\n{}", gatehouse::demo::DEMO_APPROVAL_RULE)
}

/// Let `eve` (group contractors) ask for access to `bank`.
fn with_access_approvers(text: String) -> String {
    with_approval_rule(text).replace(
        "allow_groups = [\"analysts\", \"dba\"]\n",
        "allow_groups = [\"analysts\", \"dba\"]\naccess_approvers = [\"approvers\"]\nmax_access = \"2h\"\n",
    )
}

async fn phone_of(gw: &TestGateway, id: i32) -> String {
    let t = gw.token("alice", &["analysts"]);
    let o = gw
        .psql(
            "alice",
            &t,
            &[&format!("select phone from customers where id = {id}")],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    out(&o).lines().nth(1).unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_update_runs_once_after_api_approval() {
    let gw = TestGateway::start_with("", "", with_approval_rule).await;
    let dana = gw.token("dana", &["dba"]);
    let omar = gw.token("omar", &["approvers"]);
    let before = phone_of(&gw, 7).await;
    let sql = "update customers set phone = '555-0107' where id = 7";
    let psql = gw.psql_background("dana", &dana, &[sql], &[]);
    let request = gw.pending_request(&omar).await;
    let id = request["id"].as_u64().unwrap();
    assert_eq!(
        request["command"], sql,
        "the approver sees the exact statement"
    );
    assert_eq!(request["rule"], "dba-customer-changes-need-approval");
    assert_eq!(request["requester"]["subject"], "dana");
    assert_eq!(request["can_decide"], true);
    assert!(
        phone_of(&gw, 7).await == before,
        "nothing ran before the decision"
    );

    // The requester may not approve their own request.
    let dana_approver = gw.token("dana", &["dba", "approvers"]);
    let (status, body) = gw.decide(id, &dana_approver, "approve", "self").await;
    assert_eq!(status, 403, "{body}");
    // Nor may someone outside the approver groups.
    let alice = gw.token("alice", &["analysts"]);
    let (status, _) = gw.decide(id, &alice, "approve", "why not").await;
    assert_eq!(status, 403);
    // A decision needs a justification.
    let (status, _) = gw.decide(id, &omar, "approve", "  ").await;
    assert_eq!(status, 400);

    let (status, body) = gw.decide(id, &omar, "approve", "ticket CHG-1234").await;
    assert_eq!(status, 200, "{body}");
    let o = psql.await.unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("UPDATE 1"), "{}", out(&o));
    assert!(
        err(&o).contains(&format!("waiting for approval #{id}: https://")),
        "{}",
        err(&o)
    );
    assert_eq!(phone_of(&gw, 7).await, "555-0107");

    // Approving again cannot run it twice.
    let (status, body) = gw
        .api(
            "POST",
            &format!("/api/v1/approvals/{id}/approve"),
            &gw.token("zoe", &["approvers"]),
            Some(serde_json::json!({"reason": "again"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (_, shown) = gw
        .api("GET", &format!("/api/v1/approvals/{id}"), &omar, None)
        .await;
    assert_eq!(shown["status"], "executed");

    let events = support::events(&gw).await;
    let kinds: Vec<&str> = events
        .iter()
        .filter(|e| e["data"]["request_id"] == id)
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "approval.requested",
            "approval.decision",
            "approval.approved",
            "approval.executed"
        ]
    );
    let decision = events
        .iter()
        .find(|e| e["kind"] == "approval.decision")
        .unwrap();
    assert_eq!(decision["data"]["approver"]["subject"], "omar");
    assert_eq!(decision["data"]["reason"], "ticket CHG-1234");
    let command = events
        .iter()
        .find(|e| e["kind"] == "command" && e["data"]["approval_request"] == id)
        .expect("the command event names its approval");
    assert_eq!(command["data"]["verdict"]["effect"], "hold");
    let (dir, config) = gw.stop().await;
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["--config"])
        .arg(&config)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(o.status.success(), "chain verifies: {}", err(&o));
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denial_through_the_cli_reaches_psql_as_an_error() {
    let gw = TestGateway::start_with("", "", with_approval_rule).await;
    let dana = gw.token("dana", &["dba"]);
    let omar = gw.token("omar", &["approvers"]);
    let before = phone_of(&gw, 8).await;
    let psql = gw.psql_background(
        "dana",
        &dana,
        &["delete from customers where id = 8", "select 'still here'"],
        &["-v", "ON_ERROR_STOP=0"],
    );
    let request = gw.pending_request(&omar).await;
    let id = request["id"].as_u64().unwrap().to_string();

    let o = gw.cli_as(&omar, &["approvals", "list", "--json"]).await;
    assert!(o.status.success(), "{}", err(&o));
    let listed: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(listed[0]["id"].to_string(), id);
    let o = gw.cli_as(&omar, &["approvals", "show", &id]).await;
    assert!(
        out(&o).contains("delete from customers where id = 8"),
        "{}",
        out(&o)
    );

    let o = gw
        .cli_as(
            &omar,
            &["approvals", "deny", &id, "--reason", "no ticket for this"],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("denied"), "{}", out(&o));

    let o = psql.await.unwrap();
    let e = err(&o);
    assert!(
        e.contains(&format!("approval request #{id} was denied by omar")),
        "{e}"
    );
    assert!(e.contains("no ticket for this"), "{e}");
    assert!(out(&o).contains("still here"), "the session stays usable");
    assert_eq!(phone_of(&gw, 8).await, before, "the row is still there");

    // The CLI without a token says what to do.
    let o = gw.cli_as("", &["approvals", "list"]).await;
    assert!(!o.status.success());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_statement_never_runs_after_the_client_leaves_or_expires() {
    let gw = TestGateway::start_with("", "", |t| {
        with_approval_rule(t).replace("approval_timeout = \"15m\"", "approval_timeout = \"2s\"")
    })
    .await;
    let dana = gw.token("dana", &["dba"]);
    let omar = gw.token("omar", &["approvers"]);
    let before = phone_of(&gw, 9).await;

    // The client hangs up while waiting: the request is withdrawn.
    let mut child = tokio::process::Command::new("psql")
        .env("PGPASSWORD", &dana)
        .arg("-X")
        .arg(format!(
            "host=127.0.0.1 port={} user=dana dbname=bank sslmode=require",
            gw.port()
        ))
        .arg("-c")
        .arg("update customers set phone = '555-0109' where id = 9")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let request = gw.pending_request(&omar).await;
    let id = request["id"].as_u64().unwrap();
    child.kill().await.unwrap();
    let mut status = String::new();
    for _ in 0..100 {
        let (_, r) = gw
            .api("GET", &format!("/api/v1/approvals/{id}"), &omar, None)
            .await;
        status = r["status"].as_str().unwrap_or_default().to_string();
        if status != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "withdrawn");
    let (code, _) = gw.decide(id, &omar, "approve", "late").await;
    assert_eq!(code, 409, "a withdrawn request cannot be approved");

    // Nobody decides: the request expires and psql is told.
    let o = gw
        .psql_opts(
            "dana",
            &dana,
            "require",
            &["update customers set phone = '555-0109' where id = 9"],
            &[],
        )
        .await;
    assert!(
        err(&o).contains("expired before anyone decided"),
        "{}",
        err(&o)
    );
    assert_eq!(phone_of(&gw, 9).await, before);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_holds_at_execute_with_its_parameters() {
    let gw = TestGateway::start_with("", "", |t| support::plaintext(with_approval_rule(t))).await;
    let dana = gw.token("dana", &["dba"]);
    let omar = gw.token("omar", &["approvers"]);
    let conn_str = format!(
        "host=127.0.0.1 port={} user=dana dbname=bank password={dana}",
        gw.port()
    );
    let (client, connection) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let update = tokio::spawn(async move {
        let n = client
            .execute(
                "update customers set phone = $1 where id = $2",
                &[&"555-0110", &10i32],
            )
            .await;
        (n, client)
    });
    let request = gw.pending_request(&omar).await;
    let id = request["id"].as_u64().unwrap();
    let command = request["command"].as_str().unwrap();
    assert!(
        command.contains("update customers set phone = $1 where id = $2")
            && command.contains("$1 = '555-0110'"),
        "approvers see the statement and its parameters: {command}"
    );
    let (status, body) = gw.decide(id, &omar, "approve", "CHG-1").await;
    assert_eq!(status, 200, "{body}");
    let (n, client) = tokio::time::timeout(Duration::from_secs(30), update)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.unwrap(), 1);
    let row = client
        .query_one("select phone from customers where id = 10", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "555-0110");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_grants_let_in_until_revoked() {
    let gw = TestGateway::start_with("", "", with_access_approvers).await;
    let eve = gw.token("eve", &["contractors"]);
    let omar = gw.token("omar", &["approvers"]);

    let o = gw.psql("eve", &eve, &["select 1"]).await;
    assert!(!o.status.success());
    assert!(
        err(&o).contains("gatehouse access request bank"),
        "{}",
        err(&o)
    );

    let o = gw
        .cli_as(
            &eve,
            &["access", "request", "bank", "--for", "9h", "--reason", "x"],
        )
        .await;
    assert!(!o.status.success(), "longer than max_access is refused");
    let o = gw
        .cli_as(
            &eve,
            &[
                "access",
                "request",
                "bank",
                "--for",
                "1h",
                "--reason",
                "INC-42 investigation",
                "--json",
            ],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let req: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let id = req["id"].to_string();
    let o = gw
        .cli_as(
            &omar,
            &["approvals", "approve", &id, "--reason", "INC-42 is real"],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));

    let o = gw
        .psql("eve", &eve, &["select count(*) from customers"])
        .await;
    assert!(o.status.success(), "the grant lets eve in: {}", err(&o));

    // A live session ends when the grant is revoked.
    let long = gw.psql_background("eve", &eve, &["select pg_sleep(30)"], &[]);
    let o = gw
        .cli_as(&omar, &["access", "list", "--active", "--json"])
        .await;
    let grants: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let grant = grants[0]["id"].to_string();
    // Wait until eve's long session is in.
    for _ in 0..100 {
        let sessions = gw.cli(&["sessions", "list", "--json"]).await;
        if out(&sessions).matches("\"eve\"").count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let o = gw
        .cli_as(
            &omar,
            &["access", "revoke", &grant, "--reason", "investigation over"],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let o = long.await.unwrap();
    assert!(!o.status.success());
    assert!(
        err(&o).contains("revoked by omar: investigation over"),
        "{}",
        err(&o)
    );
    let o = gw.psql("eve", &eve, &["select 1"]).await;
    assert!(!o.status.success(), "no access after revocation");

    let events = support::events(&gw).await;
    for kind in ["grant.created", "grant.revoked"] {
        assert!(events.iter().any(|e| e["kind"] == kind), "{kind} recorded");
    }
    assert!(events
        .iter()
        .any(|e| e["kind"] == "session.start" && e["data"]["grant_id"].is_u64()));
    gw.stop().await;
}

/// A real HTTP receiver that keeps what it is sent.
async fn receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
) {
    use axum::routing::post;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_decisions_are_notified_signed_and_to_slack() {
    let (hook_url, hooks) = receiver().await;
    let (slack_url, slacks) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("hook.secret");
    std::fs::write(&secret_file, "whsec-test-only").unwrap();
    let slack_file = dir.path().join("slack.url");
    std::fs::write(&slack_file, &slack_url).unwrap();
    let notify = format!(
        "[notify]\ninitial_backoff_ms = 50\n\n[[notify.webhooks]]\nname = \"soc\"\nurl = \"{hook_url}\"\nsecret_file = \"{}\"\n\n[[notify.slack]]\nname = \"dba-approvals\"\nurl_file = \"{}\"\n",
        secret_file.display(),
        slack_file.display()
    );
    let gw = TestGateway::start_with(&notify, "", with_approval_rule).await;
    let dana = gw.token("dana", &["dba"]);
    let omar = gw.token("omar", &["approvers"]);
    let psql = gw.psql_background(
        "dana",
        &dana,
        &["update customers set phone = '555-0111' where id = 11"],
        &[],
    );
    let id = gw.pending_request(&omar).await["id"].as_u64().unwrap();
    let (status, _) = gw.decide(id, &omar, "approve", "CHG-11").await;
    assert_eq!(status, 200);
    let o = psql.await.unwrap();
    assert!(o.status.success(), "{}", err(&o));

    // Both receivers hear of the request and the approval (bounded wait).
    for _ in 0..100 {
        if hooks.lock().unwrap().len() >= 2 && slacks.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hooks = hooks.lock().unwrap().clone();
    let events: Vec<String> = hooks
        .iter()
        .map(|(h, body)| {
            let sig = h["gatehouse-signature"].to_str().unwrap();
            let now = chrono::Utc::now().timestamp();
            gatehouse_notify::verify_signature(b"whsec-test-only", sig, body.as_bytes(), now, 300)
                .expect("a valid signature");
            assert!(
                gatehouse_notify::verify_signature(b"wrong", sig, body.as_bytes(), now, 300)
                    .is_err()
            );
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["id"], id.to_string());
            v["event"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(events, ["approval.requested", "approval.approved"]);
    let slacks = slacks.lock().unwrap().clone();
    let first: serde_json::Value = serde_json::from_str(&slacks[0].1).unwrap();
    let text = first["text"].as_str().unwrap();
    assert!(text.contains(&format!("/approvals/{id}")), "{text}");
    assert!(text.contains("dana"), "{text}");
    gw.stop().await;
}

mod prepared_names {
    //! Regression tests: a held statement must not run unapproved through
    //! a prepared-statement name the gateway and PostgreSQL would see
    //! differently, nor run again under one approval.

    use super::support::{self, login_raw, read_frame, TestGateway};
    use gatehouse_postgres::codec::{backend, Writer};
    use tokio::io::AsyncWriteExt;

    fn query(sql: &str) -> Vec<u8> {
        Writer::new(b'Q').cstr(sql).finish()
    }

    fn parse(name: &str, sql: &str) -> Vec<u8> {
        Writer::new(b'P').cstr(name).cstr(sql).i16(0).finish()
    }

    fn sync() -> Vec<u8> {
        Writer::new(b'S').finish()
    }

    /// Read until ReadyForQuery; the error codes seen.
    async fn until_ready(s: &mut tokio::net::TcpStream, buf: &mut bytes::BytesMut) -> Vec<String> {
        let mut codes = Vec::new();
        loop {
            let f = read_frame(s, buf).await;
            match f.tag {
                b'E' => codes.push(
                    backend::parse_notice(&f.body)
                        .unwrap()
                        .get(b'C')
                        .unwrap_or_default()
                        .to_string(),
                ),
                b'Z' => return codes,
                _ => {}
            }
        }
    }

    /// After the last message: the statement must be held (a NoticeResponse
    /// naming an approval request), never completed.
    async fn expect_held(s: &mut tokio::net::TcpStream, buf: &mut bytes::BytesMut) -> String {
        loop {
            let f = read_frame(s, buf).await;
            match f.tag {
                b'N' => {
                    let n = backend::parse_notice(&f.body).unwrap();
                    let m = n.get(b'M').unwrap_or_default().to_string();
                    if m.starts_with("waiting for approval #") {
                        return m;
                    }
                }
                b'C' => {
                    let tag = backend::parse_command_complete(&f.body)
                        .unwrap()
                        .to_string();
                    panic!("the held statement ran without approval: {tag}");
                }
                b'E' | b'Z' => panic!("expected a hold, got {}", f.tag as char),
                _ => {}
            }
        }
    }

    async fn gateway() -> TestGateway {
        TestGateway::start_with("", "", |t| support::plaintext(super::with_approval_rule(t))).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sql_prepare_cannot_shadow_a_held_parse() {
        let gw = gateway().await;
        let (mut s, mut buf) = login_raw(&gw, "dana", "dba").await;
        let mut batch = parse("s1", "update customers set phone = 'PWNED-1' where id = 30");
        batch.extend_from_slice(&sync());
        s.write_all(&batch).await.unwrap();
        assert!(until_ready(&mut s, &mut buf).await.is_empty());
        s.write_all(&query("PREPARE s1 AS SELECT 1")).await.unwrap();
        assert_eq!(
            until_ready(&mut s, &mut buf).await.len(),
            1,
            "a second s1 is refused"
        );
        s.write_all(&query("EXECUTE s1")).await.unwrap();
        let m = expect_held(&mut s, &mut buf).await;
        assert!(m.contains("/approvals/"), "{m}");
        drop(s);
        assert_ne!(super::phone_of(&gw, 30).await, "PWNED-1");
        gw.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deallocate_then_parse_is_still_held() {
        let gw = gateway().await;
        let (mut s, mut buf) = login_raw(&gw, "dana", "dba").await;
        for sql in ["PREPARE s2 AS SELECT 1", "DEALLOCATE s2"] {
            s.write_all(&query(sql)).await.unwrap();
            assert!(until_ready(&mut s, &mut buf).await.is_empty(), "{sql}");
        }
        let mut batch = parse("s2", "update customers set phone = 'PWNED-2' where id = 31");
        batch.extend_from_slice(&sync());
        s.write_all(&batch).await.unwrap();
        assert!(until_ready(&mut s, &mut buf).await.is_empty());
        s.write_all(&query("EXECUTE s2")).await.unwrap();
        expect_held(&mut s, &mut buf).await;
        drop(s);
        assert_ne!(super::phone_of(&gw, 31).await, "PWNED-2");
        gw.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sql_prepared_held_body_is_held_at_every_bind_and_execute() {
        let gw = gateway().await;
        let (mut s, mut buf) = login_raw(&gw, "dana", "dba").await;
        s.write_all(&query(
            "PREPARE p AS UPDATE customers SET phone = $1 WHERE id = 32",
        ))
        .await
        .unwrap();
        assert!(
            until_ready(&mut s, &mut buf).await.is_empty(),
            "preparing runs nothing, so it is not held"
        );
        let mut batch = Writer::new(b'B')
            .cstr("")
            .cstr("p")
            .i16(0)
            .i16(1)
            .i32(3)
            .bytes(b"ONE")
            .i16(0)
            .finish();
        batch.extend_from_slice(&Writer::new(b'E').cstr("").i32(0).finish());
        batch.extend_from_slice(&sync());
        s.write_all(&batch).await.unwrap();
        expect_held(&mut s, &mut buf).await;
        drop(s);
        assert_ne!(super::phone_of(&gw, 32).await, "ONE");
        gw.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_parsed_execute_runs_what_is_prepared_now() {
        // Parse `EXPLAIN ANALYZE EXECUTE q` while q is harmless, then
        // prepare q again as a held UPDATE: Bind/Execute of the parsed
        // statement runs the UPDATE, so it must be held.
        let gw = gateway().await;
        let (mut s, mut buf) = login_raw(&gw, "dana", "dba").await;
        s.write_all(&query("PREPARE q AS SELECT 1")).await.unwrap();
        assert!(until_ready(&mut s, &mut buf).await.is_empty());
        let mut batch = parse("s3", "explain analyze execute q");
        batch.extend_from_slice(&sync());
        s.write_all(&batch).await.unwrap();
        assert!(until_ready(&mut s, &mut buf).await.is_empty());
        for sql in [
            "DEALLOCATE q",
            "PREPARE q AS UPDATE customers SET phone = 'PWNED-3' WHERE id = 33",
        ] {
            s.write_all(&query(sql)).await.unwrap();
            assert!(until_ready(&mut s, &mut buf).await.is_empty(), "{sql}");
        }
        let mut batch = Writer::new(b'B')
            .cstr("")
            .cstr("s3")
            .i16(0)
            .i16(0)
            .i16(0)
            .finish();
        batch.extend_from_slice(&Writer::new(b'E').cstr("").i32(0).finish());
        batch.extend_from_slice(&sync());
        s.write_all(&batch).await.unwrap();
        expect_held(&mut s, &mut buf).await;
        drop(s);
        assert_ne!(super::phone_of(&gw, 33).await, "PWNED-3");
        gw.stop().await;
    }
}

/// A grant gives the group it names and no more; writes no rule allows are
/// refused (`default_write_effect = "block"`), whoever asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_grants_give_only_their_scope_and_writes_need_a_rule() {
    let gw = TestGateway::start_with("default_write_effect = \"block\"", "", |text| {
        format!(
            "{}\n{}",
            with_approval_rule(text),
            gatehouse::demo::DEMO_WRITERS_RULE
        )
        .replace(
            "allow_groups = [\"analysts\", \"dba\"]\n",
            "allow_groups = [\"analysts\", \"dba\", \"ops\"]\naccess_approvers = [\"approvers\"]\naccess_as = [\"analysts\"]\n",
        )
    })
    .await;
    let eve = gw.token("eve", &["contractors", "dba-like"]);
    let omar = gw.token("omar", &["approvers"]);
    let o = gw
        .cli_as(
            &eve,
            &[
                "access", "request", "bank", "--for", "1h", "--reason", "INC-42", "--as", "dba",
            ],
        )
        .await;
    assert!(!o.status.success());
    assert!(err(&o).contains("cannot act as \"dba\""), "{}", err(&o));
    let o = gw
        .cli_as(
            &eve,
            &[
                "access", "request", "bank", "--for", "1h", "--reason", "INC-42", "--json",
            ],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let req: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let id = req["id"].to_string();
    // The approver sees what the grant gives.
    let o = gw.cli_as(&omar, &["approvals", "show", &id]).await;
    assert!(out(&o).contains("as analysts"), "{}", out(&o));
    let o = gw
        .cli_as(&omar, &["approvals", "approve", &id, "--reason", "ok"])
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let before = phone_of(&gw, 9).await;
    let o = gw
        .psql(
            "eve",
            &eve,
            &["select ssn from customers order by id limit 1"],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("***-**-"), "masked for eve: {}", out(&o));
    for (sql, rule) in [
        (
            "update customers set phone = '555-0199' where id = 9",
            "analysts-read-only",
        ),
        ("create table eve_table (x int)", "analysts-read-only"),
    ] {
        let o = gw.psql("eve", &eve, &[sql]).await;
        assert!(err(&o).contains(rule), "{sql}: {}", err(&o));
    }
    assert_eq!(phone_of(&gw, 9).await, before);
    // A group no rule names reads, and may not write.
    let ops = gw.token("olga", &["ops"]);
    let o = gw
        .psql("olga", &ops, &["select count(*) from accounts"])
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let o = gw
        .psql("olga", &ops, &["create table olga_table (x int)"])
        .await;
    assert!(err(&o).contains("default-writes"), "{}", err(&o));
    // DBAs have a rule that lets them write.
    let dana = gw.token("dana", &["dba"]);
    let o = gw
        .psql(
            "dana",
            &dana,
            &[
                "create table dana_scratch (x int)",
                "drop table dana_scratch",
            ],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let events = support::events(&gw).await;
    assert!(events.iter().any(|e| e["kind"] == "session.start"
        && e["subject"] == "eve"
        && e["data"]["identity"]["groups"] == serde_json::json!(["analysts"])));
    gw.stop().await;
}

/// A stopping gateway drains: every session is told why in its own
/// protocol and its end recorded (with `ended_by`), a held statement is
/// withdrawn and never runs, and the trail closes with a signed checkpoint
/// that verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_gateway_ends_its_sessions_and_withdraws_what_waits() {
    let gw = TestGateway::start_with("", "", with_approval_rule).await;
    let dana = gw.token("dana", &["dba"]);
    let alice = gw.token("alice", &["analysts"]);
    let omar = gw.token("omar", &["approvers"]);
    let before = phone_of(&gw, 7).await;
    let held = gw.psql_background(
        "dana",
        &dana,
        &["update customers set phone = '555-0177' where id = 7"],
        &[],
    );
    let request = gw.pending_request(&omar).await;
    assert!(request["id"].as_u64().is_some());
    let busy = gw.psql_background("alice", &alice, &["select 1", "select pg_sleep(30)"], &[]);
    // Let alice's sleep start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (dir, config) = gw.stop().await;

    // Neither ran to its end: the held one was withdrawn, and the 30 s
    // statement's session was ended rather than waited for.
    for (who, psql) in [("dana", held), ("alice", busy)] {
        let o = psql.await.unwrap();
        assert!(!o.status.success(), "{who}: {}", out(&o));
        assert!(
            err(&o).contains("shutting down"),
            "{who} is told why: {}",
            err(&o)
        );
    }
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("GATEHOUSE_CONFIG")
            .output()
            .unwrap()
    };
    let o = cli(&["audit", "verify"]);
    assert!(o.status.success(), "the closed trail verifies: {}", err(&o));
    let o = cli(&["audit", "export", "--format", "jsonl"]);
    let events: Vec<serde_json::Value> = out(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ends: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "session.end" && e["data"]["ended_by"] == "gateway_stopped")
        .collect();
    assert!(
        ends.iter().any(|e| e["subject"] == "dana") && ends.iter().any(|e| e["subject"] == "alice"),
        "both sessions' ends are recorded: {ends:?}"
    );
    let stop_at = events
        .iter()
        .position(|e| e["kind"] == "gateway.stop")
        .expect("the stop is recorded");
    assert!(
        events
            .iter()
            .enumerate()
            .filter(|(_, e)| e["kind"] == "session.end")
            .all(|(i, _)| i < stop_at),
        "sessions end before the gateway's stop"
    );
    assert!(
        events.iter().any(|e| e["kind"] == "approval.withdrawn"),
        "the held statement's request is withdrawn"
    );
    drop(dir);
    // Nothing ran: the phone is unchanged (a fresh gateway reads it).
    let gw = TestGateway::start("", "").await;
    assert_eq!(phone_of(&gw, 7).await, before);
}
