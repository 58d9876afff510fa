//! Sessions end when the caller's token expires (issue 11, finding 12):
//! the real psql and mariadb clients kept open past a short-lived token,
//! a statement held for approval past it, an HTTP stream past it, and the
//! audit trail saying so. (SSH is in `ssh.rs`, next to its sshd harness.)
//!
//! Every gateway here runs with `leeway_secs = 0`, so a session ends at the
//! token's `exp` itself; with a leeway it ends `leeway` later, exactly when
//! the token would stop being accepted at login.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use base64::Engine as _;
use std::process::Stdio;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

const NO_LEEWAY: &str = "[identity]\nleeway_secs = 0\n";

/// The token's `exp` claim (read, not verified: the test minted it).
fn exp_of(token: &str) -> i64 {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    claims["exp"].as_i64().unwrap()
}

/// Sleep until a little after `exp` (Unix seconds).
async fn wait_past(exp: i64) {
    let left_ms = (exp * 1000 + 1500) - chrono::Utc::now().timestamp_millis();
    if left_ms > 0 {
        tokio::time::sleep(Duration::from_millis(left_ms as u64)).await;
    }
}

/// The RFC 3339 form of `exp`, as the gateway words it.
fn rfc3339(exp: i64) -> String {
    chrono::DateTime::from_timestamp(exp, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A command-line client fed statements one at a time on its stdin.
struct Interactive {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    seen: String,
}

impl Interactive {
    fn spawn(mut cmd: tokio::process::Command) -> Interactive {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("client starts");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Interactive {
            child,
            stdin,
            stdout,
            seen: String::new(),
        }
    }

    async fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Read the client's output until `needle` appears.
    async fn expect(&mut self, needle: &str) {
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while !self.seen.contains(needle) {
                let mut line = String::new();
                if self.stdout.read_line(&mut line).await.unwrap() == 0 {
                    return false;
                }
                self.seen.push_str(&line);
            }
            true
        })
        .await;
        assert!(
            matches!(found, Ok(true)),
            "{needle:?} never appeared; output so far: {}",
            self.seen
        );
    }

    /// Close stdin, wait for the client to exit: (all stdout, stderr, success).
    async fn finish(mut self) -> (String, String, bool) {
        drop(self.stdin.take());
        let mut rest = String::new();
        let mut stderr = String::new();
        let mut err_pipe = self.child.stderr.take().unwrap();
        let status = tokio::time::timeout(Duration::from_secs(60), async {
            self.stdout.read_to_string(&mut rest).await.unwrap();
            err_pipe.read_to_string(&mut stderr).await.unwrap();
            self.child.wait().await.unwrap()
        })
        .await
        .expect("the client exits");
        self.seen.push_str(&rest);
        (self.seen, stderr, status.success())
    }
}

fn psql(gw: &TestGateway, user: &str, token: &str) -> Interactive {
    let mut cmd = tokio::process::Command::new("psql");
    cmd.env("PGPASSWORD", token)
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGSERVICE")
        .args(["-X", "-A", "-t"])
        .arg(format!(
            "host=127.0.0.1 port={} user={user} dbname=bank sslmode=require",
            gw.port()
        ));
    Interactive::spawn(cmd)
}

fn mariadb(gw: &TestGateway, user: &str, token: &str) -> Interactive {
    let mut cmd = tokio::process::Command::new("mariadb");
    cmd.arg("--no-defaults")
        .arg("--ssl")
        .arg("--batch")
        .arg("--unbuffered")
        .arg("--skip-reconnect")
        .arg("-h127.0.0.1")
        .arg(format!("-P{}", gw.mysql_port()))
        .arg(format!("-u{user}"))
        .arg(format!("-D{MY_CONNECTION}"))
        .arg("--connect-timeout=10")
        .env("MYSQL_PWD", token);
    Interactive::spawn(cmd)
}

/// Wait until the audit trail holds an event of `kind` (bounded).
async fn wait_for_event(gw: &TestGateway, kind: &str) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let events = events(gw).await;
        if events.iter().any(|e| e["kind"] == kind) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no {kind} event was recorded");
}

/// The trail shows one session ended by its token's expiry: a
/// `session.expired` event and the end event's reason and `ended_by`.
fn assert_expiry_recorded(events: &[serde_json::Value], exp: i64, protocol: &str) {
    let expired: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "session.expired")
        .collect();
    assert_eq!(expired.len(), 1, "one session.expired event: {expired:?}");
    let expired = expired[0];
    assert_eq!(expired["data"]["token_expires_at"], rfc3339(exp));
    let session = expired["session_id"].as_str().unwrap();
    let start = events
        .iter()
        .find(|e| e["kind"] == "session.start" && e["session_id"] == session)
        .expect("the expired session's start");
    assert_eq!(start["data"]["protocol"], protocol);
    let end = events
        .iter()
        .find(|e| e["kind"] == "session.end" && e["session_id"] == session)
        .expect("the expired session's end");
    assert_eq!(end["data"]["ended_by"], "token_expired", "{end}");
    assert_eq!(end["data"]["token_expires_at"], rfc3339(exp));
    let reason = end["data"]["reason"].as_str().unwrap();
    assert_eq!(
        reason,
        format!(
            "your token expired at {}; sign in again and reconnect",
            rfc3339(exp)
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_session_ends_when_its_token_expires() {
    let gw = TestGateway::start("", NO_LEEWAY).await;
    let token = gw.token_ttl("alice", &["analysts"], Duration::from_secs(4));
    let exp = exp_of(&token);
    let mut client = psql(&gw, "alice", &token);
    client.send("select 'before' || ' expiry';").await;
    client.expect("before expiry").await;

    // The client is idle when the token expires: the gateway ends the
    // session then, without waiting for the next statement.
    wait_past(exp).await;
    let events = wait_for_event(&gw, "session.end").await;
    assert_expiry_recorded(&events, exp, "postgres");

    client.send("select 'after' || ' expiry';").await;
    let (stdout, stderr, _) = client.finish().await;
    assert!(!stdout.contains("after expiry"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "FATAL:  gatehouse ended this session: your token expired at {}; sign in again and reconnect",
            rfc3339(exp)
        )),
        "{stderr}"
    );
    // The statement after expiry reached nothing.
    let events = support::events(&gw).await;
    let commands: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["kind"] == "command").collect();
    assert_eq!(commands.len(), 1, "{commands:?}");
    eprintln!("psql's stderr:\n{stderr}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_held_past_the_token_is_withdrawn() {
    let gw = TestGateway::start_with("", NO_LEEWAY, |t| {
        format!("{t}\n{}", gatehouse::demo::DEMO_APPROVAL_RULE)
    })
    .await;
    let dana = gw.token_ttl("dana", &["dba"], Duration::from_secs(4));
    let exp = exp_of(&dana);
    let omar = gw.token("omar", &["approvers"]);
    let sql = "update customers set phone = '555-0199' where id = 9";
    let held = gw.psql_background("dana", &dana, &[sql], &[]);
    let request = gw.pending_request(&omar).await;
    let id = request["id"].as_u64().unwrap();

    // The token expires while the statement waits: the request is
    // withdrawn and the session ended.
    let o = held.await.unwrap();
    assert!(!o.status.success());
    assert!(
        err(&o).contains("your token expired at"),
        "the client is told why: {}",
        err(&o)
    );
    let (status, body) = gw.decide(id, &omar, "approve", "too late").await;
    assert_ne!(
        status, 200,
        "a withdrawn request cannot be approved: {body}"
    );
    let phone = gw
        .psql(
            "alice",
            &gw.token("alice", &["analysts"]),
            &["select phone from customers where id = 9"],
        )
        .await;
    assert!(!out(&phone).contains("555-0199"), "the statement never ran");
    assert!(chrono::Utc::now().timestamp() >= exp);
    let events = wait_for_event(&gw, "session.expired").await;
    assert!(
        events.iter().any(|e| e["kind"] == "approval.withdrawn"),
        "the request is withdrawn in the trail"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_session_ends_when_its_token_expires() {
    let gw = TestGateway::start_mysql("", NO_LEEWAY).await;
    let token = gw.token_ttl("alice", &["analysts"], Duration::from_secs(4));
    let exp = exp_of(&token);
    let mut client = mariadb(&gw, "alice", &token);
    client.send("select concat('before', ' expiry');").await;
    client.expect("before expiry").await;

    wait_past(exp).await;
    let events = wait_for_event(&gw, "session.end").await;
    assert_expiry_recorded(&events, exp, "mysql");

    client.send("select concat('after', ' expiry');").await;
    let (stdout, stderr, ok) = client.finish().await;
    assert!(!ok);
    assert!(!stdout.contains("after expiry"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "gatehouse ended this session: your token expired at {}; sign in again and reconnect",
            rfc3339(exp)
        )),
        "{stderr}"
    );
    eprintln!("mariadb's stderr:\n{stderr}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_statement_held_past_the_token_is_withdrawn() {
    let gw = TestGateway::start_mysql_with("", NO_LEEWAY, |t| {
        format!("{t}\n{}", gatehouse::demo::DEMO_APPROVAL_RULE)
    })
    .await;
    let dana = gw.token_ttl("dana", &["dba"], Duration::from_secs(4));
    let omar = gw.token("omar", &["approvers"]);
    let held = {
        let client = mariadb(&gw, "dana", &dana);
        tokio::spawn(async move {
            let mut client = client;
            client
                .send("update customers set phone = '555-0198' where id = 8;")
                .await;
            client.finish().await
        })
    };
    let request = gw.pending_request(&omar).await;
    let id = request["id"].as_u64().unwrap();
    let (_, stderr, ok) = held.await.unwrap();
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "approval request #{id} was withdrawn: your token expired at"
        )),
        "{stderr}"
    );
    let (status, body) = gw.decide(id, &omar, "approve", "too late").await;
    assert_ne!(
        status, 200,
        "a withdrawn request cannot be approved: {body}"
    );
    let phone = my_target()
        .server
        .sql("bank", "select phone from customers where id = 8")
        .unwrap();
    assert!(!phone.contains("555-0198"), "the statement never ran");
    let events = wait_for_event(&gw, "session.expired").await;
    let withdrawn = events
        .iter()
        .find(|e| e["kind"] == "approval.withdrawn")
        .expect("the request is withdrawn in the trail");
    assert!(
        withdrawn["data"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("your token expired at")),
        "{withdrawn}"
    );
    gw.stop().await;
}

/// An upstream whose `/ticks` streams a line every 200 ms until the client
/// goes away, whose `/slow` answers JSON after a minute, and whose `/hello`
/// and `/held` answer at once.
async fn ticking_upstream() -> u16 {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/hello", get(|| async { "hello\n" }))
        .route("/held", get(|| async { "held-ran\n" }))
        .route(
            "/v1/chat/completions",
            axum::routing::post(|| async {
                let chunks = futures_util::stream::unfold(0u64, |n| async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let event = format!(
                        "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"tiny\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{n} \"}}}}]}}\n\n"
                    );
                    Some((Ok::<_, std::convert::Infallible>(event), n + 1))
                });
                axum::response::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(axum::body::Body::from_stream(chunks))
                    .unwrap()
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                axum::Json(serde_json::json!({"late": true}))
            }),
        )
        .route(
            "/ticks",
            get(|| async {
                let ticks = futures_util::stream::unfold(0u64, |n| async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Some((
                        Ok::<_, std::convert::Infallible>(format!("tick {n}\n")),
                        n + 1,
                    ))
                });
                axum::response::Response::builder()
                    .header("content-type", "text/plain")
                    .body(axum::body::Body::from_stream(ticks))
                    .unwrap()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_streams_end_and_requests_are_refused_once_the_token_expires() {
    let port = ticking_upstream().await;
    let gw = TestGateway::start_with_policy(
        &format!("[http]\nlisten = \"127.0.0.1:0\"\n{NO_LEEWAY}"),
        |dir| {
            let key = dir.join("model.key");
            std::fs::write(&key, "upstream-key").unwrap();
            format!(
                "[[connections]]\nname = \"model\"\ntype = \"openai\"\nhost = \"127.0.0.1\"\nport = {port}\n\
                 password_file = \"{key}\"\nallow_groups = [\"analysts\"]\n\n\
                 [[connections]]\nname = \"ticker\"\ntype = \"http\"\nhost = \"127.0.0.1\"\nport = {port}\nallow_groups = [\"analysts\"]\n\n\
                 [[rules]]\nname = \"held-needs-approval\"\neffect = \"approve\"\nmessage = \"a second person\"\n\
                 connections = [\"ticker\"]\npaths = [\"/held\"]\napprovers = [\"approvers\"]\n\n",
                key = key.display()
            )
        },
    )
    .await;
    let token = gw.token_ttl("alice", &["analysts"], Duration::from_secs(4));
    let exp = exp_of(&token);
    let base = format!("https://{}/ticker", gw.gw.http_addr.unwrap());
    let curl = |path: &str| {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "-N", "--max-time", "60", "--cacert"])
            .arg(gw.ca_file())
            .args(["-w", "\n%{http_code}\n", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .arg(format!("{base}{path}"));
        cmd
    };

    let o = curl("/hello").output().await.unwrap();
    assert!(out(&o).contains("hello\n\n200"), "{}", out(&o));

    // A stream, a slow answer and a request held for approval, all
    // outliving the token.
    let mut chat = tokio::process::Command::new("curl");
    chat.args(["-sS", "-N", "--max-time", "60", "--cacert"])
        .arg(gw.ca_file())
        .args(["-H", "Content-Type: application/json", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .args([
            "-d",
            r#"{"model":"tiny","stream":true,"messages":[{"role":"user","content":"count"}]}"#,
        ])
        .arg(format!(
            "https://{}/model/v1/chat/completions",
            gw.gw.http_addr.unwrap()
        ));
    let (ticks, slow, held, chat) = (
        curl("/ticks").output(),
        curl("/slow").output(),
        curl("/held").output(),
        chat.output(),
    );
    let (ticks, slow, held, chat) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(ticks, slow, held, chat)
    })
    .await
    .expect("all four end at the token's expiry");
    // A model's streamed answer ends with an SSE error event saying why.
    let o = chat.unwrap();
    let body = out(&o);
    assert!(body.contains("word0"), "{body}");
    let last = body
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_default();
    let event: serde_json::Value = serde_json::from_str(last).unwrap_or_default();
    assert!(
        event["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("your token expired at")),
        "{body}"
    );
    let o = ticks.unwrap();
    assert!(
        !o.status.success(),
        "the body is broken off, not ended as if whole"
    );
    assert!(out(&o).contains("tick 0"), "{}", out(&o));
    assert!(chrono::Utc::now().timestamp() >= exp);
    // The slow answer is withheld: 401, the reason.
    let o = slow.unwrap();
    assert!(out(&o).trim_end().ends_with("401"), "{}", out(&o));
    assert!(
        out(&o).contains("your token expired at") && out(&o).contains("the answer was withheld"),
        "{}",
        out(&o)
    );
    assert!(!out(&o).contains("late"), "{}", out(&o));
    // The held request is withdrawn and never reaches the upstream.
    let o = held.unwrap();
    assert!(out(&o).trim_end().ends_with("403"), "{}", out(&o));
    assert!(
        out(&o).contains("was withdrawn: your token expired at"),
        "{}",
        out(&o)
    );
    assert!(!out(&o).contains("held-ran"), "{}", out(&o));

    // Every later request is refused with 401.
    wait_past(exp).await;
    let o = curl("/hello").output().await.unwrap();
    assert!(out(&o).trim_end().ends_with("401"), "{}", out(&o));
    assert!(out(&o).contains("expired"), "{}", out(&o));

    let events = wait_for_event(&gw, "session.expired").await;
    let expired: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "session.expired")
        .collect();
    assert_eq!(
        expired.len(),
        4,
        "stream, model stream, slow answer, held request: {expired:?}"
    );
    for e in &expired {
        assert_eq!(e["data"]["protocol"], "http");
        assert_eq!(e["data"]["token_expires_at"], rfc3339(exp));
    }
    // The cut stream's and the withheld answer's results say why.
    let cut: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| {
            e["kind"] == "command.result"
                && e["data"]["error"]
                    .as_str()
                    .is_some_and(|x| x.starts_with("your token expired at"))
        })
        .collect();
    assert_eq!(cut.len(), 3, "{cut:?}");
    assert!(events.iter().any(|e| e["kind"] == "approval.withdrawn"));
    assert!(events.iter().any(|e| e["kind"] == "auth.failure"));
    gw.stop().await;
}
