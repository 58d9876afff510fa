//! HTTP adapter with a JSON API: curl through the gateway to a real HTTP
//! service, field masking by pointer, detectors, blocks, approvals,
//! bounds and the audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use axum::routing::{delete, get, post};
use axum::Json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// The bank's internal customer API, as an upstream the gateway reaches.
/// It records every request's headers so tests can check what crossed.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<SeenRequest>>>);

/// Method, URI and headers of one request the upstream received.
type SeenRequest = (String, String, Vec<(String, String)>);

const API_KEY: &str = "upstream-api-key-for-tests";

async fn start_api(seen: Seen) -> u16 {
    let record = |seen: Seen| {
        move |method: axum::http::Method, uri: axum::http::Uri, headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                let h = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                seen.0
                    .lock()
                    .unwrap()
                    .push((method.to_string(), uri.to_string(), h));
            }
        }
    };
    let app = axum::Router::new()
        .route(
            "/customers",
            get(|| async {
                Json(serde_json::json!({
                    "customers": [
                        {"id": 1, "name": "Ann Lee", "ssn": "123-45-6789", "balance": 1200, "note": "reach her at ann.lee@example.com"},
                        {"id": 2, "name": "Bo Chen", "ssn": "321-54-9876", "balance": 75, "note": "card 4111 1111 1111 1111 on file"}
                    ]
                }))
            }),
        )
        .route("/customers/{id}", delete(|| async { Json(serde_json::json!({"deleted": true})) }))
        .route(
            "/transfers",
            post(|Json(body): Json<serde_json::Value>| async move {
                Json(serde_json::json!({"accepted": body}))
            }),
        )
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let seen = seen.clone();
                async move {
                    record(seen)(req.method().clone(), req.uri().clone(), req.headers().clone())
                        .await;
                    if req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
                        return axum::response::IntoResponse::into_response((
                            axum::http::StatusCode::UNAUTHORIZED,
                            "missing api key",
                        ));
                    }
                    next.run(req).await
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn http_config(dir: &std::path::Path, port: u16) -> String {
    let key = dir.join("api.key");
    std::fs::write(&key, API_KEY).unwrap();
    format!(
        r#"
[[connections]]
name = "customers-api"
type = "http"
host = "127.0.0.1"
port = {port}
upstream_auth = "header:X-Api-Key"
password_file = "{key}"
allow_groups = ["analysts", "dba"]

[[rules]]
name = "no-customer-deletes"
effect = "block"
message = "customers are closed through the account-closure workflow"
connections = ["customers-api"]
methods = ["DELETE"]
paths = ["/customers/*"]

[[rules]]
name = "large-transfers"
effect = "approve"
message = "transfers over 10,000 need a second person"
connections = ["customers-api"]
methods = ["POST"]
paths = ["/transfers"]
json = {{ "/amount" = "^[0-9]{{5,}}" }}
approvers = ["approvers"]

[[rules]]
name = "no-ssns-in-requests"
effect = "block"
message = "customer SSNs do not travel in API requests"
connections = ["customers-api"]
detects = ["ssn"]

[[masking.fields]]
name = "balances"
connections = ["customers-api"]
paths = ["/customers/*/balance"]
strategy = "redact"
"#,
        key = key.display()
    )
}

async fn start(seen: &Seen) -> TestGateway {
    let port = start_api(seen.clone()).await;
    TestGateway::start_with_policy(
        "[http]\nlisten = \"127.0.0.1:0\"\nmax_request_bytes = 65536",
        |dir| http_config(dir, port),
    )
    .await
}

fn base(gw: &TestGateway) -> String {
    format!("https://{}/customers-api", gw.gw.http_addr.unwrap())
}

async fn curl(gw: &TestGateway, args: &[&str]) -> (u16, String) {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "--max-time", "30", "--cacert"])
        .arg(gw.ca_file())
        .args(["-w", "\n%{http_code}"])
        .args(args);
    let o = tokio::time::timeout(Duration::from_secs(40), cmd.output())
        .await
        .unwrap()
        .unwrap();
    let text = out(&o);
    if !o.status.success() {
        return (0, format!("{text}\n{}", err(&o)));
    }
    let (body, code) = text
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or(("", text.trim()));
    (code.parse().unwrap_or(0), body.to_string())
}

/// Past the per-address limit of failed sign-ins, an HTTP client gets 429
/// with `Retry-After`, before its token is looked at.
#[tokio::test(flavor = "multi_thread")]
async fn too_many_bad_tokens_get_429_with_retry_after() {
    let seen = Seen::default();
    let port = start_api(seen.clone()).await;
    let gw = TestGateway::start_with_policy(
        "[http]\nlisten = \"127.0.0.1:0\"\n\n[identity.sign_in_failures]\nper_address = 2\nwindow_secs = 3600",
        |dir| http_config(dir, port),
    )
    .await;
    let forged = ["-H", "Authorization: Bearer not.a.token"];
    let url = format!("{}/customers", base(&gw));
    for _ in 0..2 {
        let (code, body) = curl(&gw, &[forged[0], forged[1], &url]).await;
        assert_eq!(code, 401, "{body}");
    }
    let (code, body) = curl(&gw, &["-D", "/dev/stderr", forged[0], forged[1], &url]).await;
    assert_eq!(code, 429, "{body}");
    assert!(
        body.contains("too many failed sign-ins from 127.0.0.1"),
        "{body}"
    );
    let mut cmd = tokio::process::Command::new("curl");
    let o = cmd
        .args(["-sS", "-o", "/dev/null", "-D", "-", "--cacert"])
        .arg(gw.ca_file())
        .args([forged[0], forged[1], &url])
        .output()
        .await
        .unwrap();
    let headers = out(&o).to_ascii_lowercase();
    assert!(headers.contains("retry-after: "), "{headers}");
    assert!(seen.0.lock().unwrap().is_empty(), "nothing was forwarded");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_reads_masked_json_with_the_gateways_credential() {
    let seen = Seen::default();
    let gw = start(&seen).await;
    let alice = gw.token("alice", &["analysts"]);
    let auth = format!("Authorization: Bearer {alice}");
    let (code, body) = curl(&gw, &["-H", &auth, &format!("{}/customers", base(&gw))]).await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["customers"][0]["name"], "Ann Lee");
    assert_eq!(v["customers"][0]["ssn"], "***-**-6789", "{v}");
    assert!(
        v["customers"][0]["balance"].is_string(),
        "balance masked whole: {v}"
    );
    assert!(
        !body.contains("123-45-6789")
            && !body.contains("321-54-9876")
            && !body.contains("4111 1111 1111 1111"),
        "{body}"
    );
    assert!(!body.contains("ann.lee@example.com"), "{body}");

    // The upstream saw the gateway's key, never the caller's token.
    {
        let seen = seen.0.lock().unwrap();
        let (_, uri, headers) = seen.last().unwrap();
        assert_eq!(uri, "/customers");
        assert!(headers
            .iter()
            .any(|(k, v)| k == "x-api-key" && v == API_KEY));
        assert!(
            !headers.iter().any(|(k, _)| k == "authorization"),
            "{headers:?}"
        );
        assert!(!headers.iter().any(|(_, v)| v.contains(&alice)));
    }

    // No token, a forged token: refused in JSON, nothing forwarded.
    let before = seen.0.lock().unwrap().len();
    let (code, body) = curl(&gw, &[&format!("{}/customers", base(&gw))]).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("Authorization: Bearer"), "{body}");
    let (code, body) = curl(
        &gw,
        &[
            "-H",
            "Authorization: Bearer not.a.token",
            &format!("{}/customers", base(&gw)),
        ],
    )
    .await;
    assert_eq!(code, 401, "{body}");
    // Not in an allowed group.
    let eve = gw.token("eve", &["contractors"]);
    let (code, body) = curl(
        &gw,
        &[
            "-H",
            &format!("Authorization: Bearer {eve}"),
            &format!("{}/customers", base(&gw)),
        ],
    )
    .await;
    assert_eq!(code, 403, "{body}");
    // Unknown connection.
    let (code, _) = curl(
        &gw,
        &[
            "-H",
            &auth,
            &format!("https://{}/nope/x", gw.gw.http_addr.unwrap()),
        ],
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(
        seen.0.lock().unwrap().len(),
        before,
        "refused requests never reach the upstream"
    );

    // A blocked method and path.
    let (code, body) = curl(
        &gw,
        &[
            "-X",
            "DELETE",
            "-H",
            &auth,
            &format!("{}/customers/1", base(&gw)),
        ],
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("no-customer-deletes"), "{body}");
    assert_eq!(seen.0.lock().unwrap().len(), before);

    // Oversized bodies are refused, not truncated.
    let big = format!("{{\"amount\": 1, \"memo\": \"{}\"}}", "x".repeat(70_000));
    let big_file = gw.dir.path().join("big.json");
    std::fs::write(&big_file, big).unwrap();
    let (code, body) = curl(
        &gw,
        &[
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!("@{}", big_file.display()),
            &format!("{}/transfers", base(&gw)),
        ],
    )
    .await;
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("max_request_bytes"), "{body}");

    // A chunked body over HTTP/1.1 is read whole and decided like any other.
    let (code, body) = curl(
        &gw,
        &[
            "--http1.1",
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "-H",
            "Transfer-Encoding: chunked",
            "-d",
            "{\"amount\": 12, \"to\": \"ACME\"}",
            &format!("{}/transfers", base(&gw)),
        ],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("ACME"), "{body}");

    // Review regressions: a client-chosen `follow` does not turn off field
    // masks; paths servers read alike are judged alike; headers that
    // would change what the upstream does never cross; an escaped SSN is
    // still an SSN; protocol upgrades are only for kubectl streams.
    let (code, body) = curl(
        &gw,
        &[
            "-H",
            &auth,
            &format!("{}/customers?follow=1&watch=true", base(&gw)),
        ],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("\"balance\":1200"), "{body}");
    let before = seen.0.lock().unwrap().len();
    for path in [
        "%63ustomers/1",
        "./customers/1",
        "/customers/1",
        "customers;x/1",
        "x/../customers/1",
        "customers/1%3F",
        "customers/1%23x",
        "%2563ustomers/1",
    ] {
        let (code, body) = curl(
            &gw,
            &[
                "--path-as-is",
                "-X",
                "DELETE",
                "-H",
                &auth,
                &format!("{}/{path}", base(&gw)),
            ],
        )
        .await;
        assert!(code == 403 || code == 400, "{path}: {code} {body}");
    }
    let (code, _) = curl(
        &gw,
        &[
            "-X",
            "POST",
            "-H",
            &auth,
            "-H",
            "X-HTTP-Method-Override: DELETE",
            "-H",
            "X-Forwarded-User: admin",
            "-H",
            "Content-Type: application/json",
            "-d",
            "{\"amount\": 1}",
            &format!("{}/transfers", base(&gw)),
        ],
    )
    .await;
    assert_eq!(code, 200);
    {
        let seen = seen.0.lock().unwrap();
        assert_eq!(
            seen.len(),
            before + 1,
            "only the plain POST reached the upstream"
        );
        let (_, _, headers) = seen.last().unwrap();
        assert!(
            !headers
                .iter()
                .any(|(k, _)| k == "x-http-method-override" || k == "x-forwarded-user"),
            "{headers:?}"
        );
    }
    let (code, body) = curl(
        &gw,
        &[
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "-d",
            "{\"amount\": 1, \"memo\": \"123\\u002d45\\u002d6789\"}",
            &format!("{}/transfers", base(&gw)),
        ],
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("no-ssns-in-requests"), "{body}");
    let (code, body) = curl(
        &gw,
        &[
            "--http1.1",
            "-H",
            &auth,
            "-H",
            "Connection: Upgrade",
            "-H",
            "Upgrade: websocket",
            "-H",
            "Sec-WebSocket-Version: 13",
            "-H",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            &format!("{}/customers", base(&gw)),
        ],
    )
    .await;
    assert_eq!(code, 400, "{body}");

    // A malformed JSON body where JSON is declared: refused, fail closed.
    let (code, body) = curl(
        &gw,
        &[
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "-d",
            "{\"amount\": ",
            &format!("{}/transfers", base(&gw)),
        ],
    )
    .await;
    assert_eq!(code, 400, "{body}");

    let events = events(&gw).await;
    let start = events
        .iter()
        .find(|e| e["kind"] == "session.start" && e["data"]["protocol"] == "http")
        .expect("an HTTP session started");
    assert_eq!(start["subject"], "alice");
    let blocked = events
        .iter()
        .find(|e| e["kind"] == "command" && e["data"]["verdict"]["rule"] == "no-customer-deletes")
        .expect("the blocked request is recorded");
    assert_eq!(blocked["data"]["request"]["method"], "DELETE");
    let result = events
        .iter()
        .find(|e| e["kind"] == "command.result" && e["data"]["status"] == 200)
        .expect("the read's result is recorded");
    assert!(
        result["data"]["masked"]["column"].as_u64().unwrap() >= 2,
        "{result}"
    );
    assert!(
        result["data"]["masked"]["ssn"].as_u64().unwrap() >= 2,
        "{result}"
    );
    gw.stop().await;
}

/// POST `body` to `/transfers` as `token` with curl in the background (it
/// will wait on a hold); its output ends with the status code.
fn post_transfer(
    gw: &TestGateway,
    token: &str,
    content_type: &str,
    body: &str,
) -> tokio::task::JoinHandle<String> {
    let ca = gw.ca_file();
    let url = format!("{}/transfers", base(gw));
    let args = [
        "-w".to_string(),
        "\n%{http_code}".into(),
        "-H".into(),
        format!("Authorization: Bearer {token}"),
        "-H".into(),
        format!("Content-Type: {content_type}"),
        "-d".into(),
        body.into(),
        url,
    ];
    tokio::spawn(async move {
        let o = tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "60", "--cacert"])
            .arg(&ca)
            .args(&args)
            .output()
            .await
            .unwrap();
        out(&o)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_transfer_waits_for_an_approver_and_runs_once() {
    let seen = Seen::default();
    let gw = start(&seen).await;
    let dana = gw.token("dana", &["dba"]);
    let omar = gw.token("omar", &["approvers"]);
    let held = post_transfer(
        &gw,
        &dana,
        "application/json",
        "{\"amount\": 250000, \"to\": \"ACME\"}",
    );
    let request = gw.pending_request(&omar).await;
    assert!(
        request["command"]
            .as_str()
            .unwrap()
            .contains("POST /transfers"),
        "{request}"
    );
    let before = seen
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, u, _)| u == "/transfers")
        .count();
    assert_eq!(before, 0, "nothing reaches the upstream while held");
    let id = request["id"].as_u64().unwrap();
    let (status, body) = gw
        .api(
            "POST",
            &format!("/api/v1/approvals/{id}/approve"),
            &omar,
            Some(serde_json::json!({"reason": "confirmed with treasury"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let text = tokio::time::timeout(Duration::from_secs(30), held)
        .await
        .unwrap()
        .unwrap();
    assert!(text.trim_end().ends_with("200"), "{text}");
    assert!(text.contains("ACME"), "{text}");
    assert_eq!(
        seen.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, u, _)| u == "/transfers")
            .count(),
        1
    );

    // A denied one never runs and says who denied it and why.
    let held = post_transfer(
        &gw,
        &dana,
        "application/json",
        "{\"amount\": 99999, \"to\": \"EVIL\"}",
    );
    let request = gw.pending_request(&omar).await;
    let id = request["id"].as_u64().unwrap();
    let (status, _) = gw
        .api(
            "POST",
            &format!("/api/v1/approvals/{id}/deny"),
            &omar,
            Some(serde_json::json!({"reason": "unknown payee"})),
        )
        .await;
    assert_eq!(status, 200);
    let text = tokio::time::timeout(Duration::from_secs(30), held)
        .await
        .unwrap()
        .unwrap();
    assert!(text.trim_end().ends_with("403"), "{text}");
    assert!(
        text.contains("unknown payee") && text.contains("omar"),
        "{text}"
    );
    assert_eq!(
        seen.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, u, _)| u == "/transfers")
            .count(),
        1
    );

    // A body the JSON rule cannot read (a form) is held all the same, and
    // so is a field spelled in another case.
    for (content_type, body) in [
        ("application/x-www-form-urlencoded", "amount=250000&to=ACME"),
        ("application/json", "{\"AMOUNT\": 250000, \"to\": \"ACME\"}"),
    ] {
        let held = post_transfer(&gw, &dana, content_type, body);
        let request = gw.pending_request(&omar).await;
        let id = request["id"].as_u64().unwrap();
        let (status, _) = gw
            .api(
                "POST",
                &format!("/api/v1/approvals/{id}/deny"),
                &omar,
                Some(serde_json::json!({"reason": "no"})),
            )
            .await;
        assert_eq!(status, 200);
        let text = tokio::time::timeout(Duration::from_secs(30), held)
            .await
            .unwrap()
            .unwrap();
        assert!(text.trim_end().ends_with("403"), "{content_type}: {text}");
    }
    let transfers = seen
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, u, _)| u == "/transfers")
        .count();
    assert_eq!(
        transfers, 1,
        "held and denied requests never reach the upstream"
    );
    gw.stop().await;
}

/// As in every protocol (core's `Pipeline::admit`): a held request the
/// trail cannot record is refused and its approval request withdrawn, so
/// nobody can approve something the trail does not hold.
#[tokio::test(flavor = "multi_thread")]
async fn a_held_request_that_cannot_be_recorded_is_withdrawn() {
    let Some(disk) = support::SmallFs::mount() else {
        return;
    };
    let seen = Seen::default();
    let port = start_api(seen.clone()).await;
    let gw = TestGateway::start_with_policy_edited(
        "[http]\nlisten = \"127.0.0.1:0\"\nmax_request_bytes = 65536",
        |dir| http_config(dir, port),
        |t| disk.audit_on_it(t),
    )
    .await;
    let dana = gw.token("dana", &["dba"]);
    let omar = gw.token("omar", &["approvers"]);
    // The disk fills up; reads are refused once the journal's last page
    // is full too.
    disk.fill();
    let mut full = false;
    for _ in 0..200 {
        let (status, _) = curl(
            &gw,
            &[
                "-H",
                &format!("Authorization: Bearer {dana}"),
                &format!("{}/customers", base(&gw)),
            ],
        )
        .await;
        if status == 503 {
            full = true;
            break;
        }
    }
    assert!(full, "a full disk refuses requests");
    let text = tokio::time::timeout(
        Duration::from_secs(30),
        post_transfer(
            &gw,
            &dana,
            "application/json",
            "{\"amount\": 250000, \"to\": \"ACME\"}",
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(text.trim_end().ends_with("503"), "{text}");
    assert!(text.contains("could not record"), "{text}");
    let (status, body) = gw
        .api("GET", "/api/v1/approvals?status=pending", &omar, None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["requests"].as_array().map(Vec::len), Some(0), "{body}");
    let (_, body) = gw
        .api("GET", "/api/v1/approvals?status=withdrawn", &omar, None)
        .await;
    let withdrawn = body["requests"].as_array().cloned().unwrap_or_default();
    assert_eq!(withdrawn.len(), 1, "{body}");
    assert!(
        seen.0
            .lock()
            .unwrap()
            .iter()
            .all(|(_, u, _)| u != "/transfers"),
        "nothing reached the upstream"
    );
    gw.stop().await;
}
