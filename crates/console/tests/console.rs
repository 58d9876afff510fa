//! The console end to end, in-process: real sign-in through the real test
//! IdP (authorization code + PKCE) or the dev issuer, real broker and audit
//! trail, decisions through the HTML forms with CSRF.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use gatehouse_approvals::Status;
use gatehouse_core::approval::{ApprovalBroker, Outcome};
use reqwest::StatusCode;
use std::time::Duration;
use support::*;
use tokio::net::TcpListener;

const SECRET_ENV: &str = "GATEHOUSE_CONSOLE_TEST_SECRET";

async fn idp_console() -> (Idp, Console) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let redirect = format!("http://{}/callback", listener.local_addr().expect("addr"));
    let idp = Idp::start(&redirect).await;
    // The only test in this binary that reads this variable sets it.
    std::env::set_var(SECRET_ENV, "gatehouse-console-secret");
    let console = Console::start(
        listener,
        SignInWith::Idp {
            issuer: idp.issuer(),
            secret_env: SECRET_ENV.into(),
        },
    )
    .await;
    (idp, console)
}

async fn decide(
    c: &reqwest::Client,
    console: &Console,
    id: u64,
    csrf: &str,
    decision: &str,
    reason: &str,
) -> Page {
    post(
        c,
        &format!("{}/approvals/{id}/decide", console.url),
        &[("csrf", csrf), ("decision", decision), ("reason", reason)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvers_sign_in_with_the_real_idp_and_decide() {
    let (_idp, console) = idp_console().await;
    let alice = console.person("alice", &["analysts"]);
    let command = "DELETE FROM customers\nWHERE id = 7 AND note <> '<script>alert(1)</script>'";
    let id = console.hold(&alice, "sess-1", command, 1).await;
    let waiter = {
        let b = console.broker.clone();
        tokio::spawn(async move { b.wait(id).await })
    };

    // Not signed in: the link in the notification goes through sign-in and back.
    let omar = browser();
    let start = format!("{}/approvals/{id}", console.url);
    let first = get(&omar, &start).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    assert!(first
        .location
        .as_deref()
        .unwrap_or("")
        .contains("/login?next=%2Fapprovals%2F"));
    let p = sign_in_via(&omar, &start, "omar").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.url, start, "back on the request's page");
    for h in [
        "content-security-policy",
        "x-frame-options",
        "referrer-policy",
    ] {
        assert!(p.headers.contains_key(h), "missing {h}");
    }
    assert_eq!(p.headers["x-frame-options"], "DENY");
    assert!(p.body.contains("omar@bank.test"), "signed in as omar");
    assert!(!p.body.contains("<script>alert"), "command is escaped");
    assert!(p.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        p.body.contains("DELETE FROM customers\nWHERE id = 7"),
        "newlines kept"
    );
    assert!(p.body.contains("1 approval from approvers"));
    assert_eq!(shown_status(&p.body).as_deref(), Some("pending"));
    let csrf = input_value(&p.body, "csrf").expect("decision form with csrf");

    // Missing or wrong CSRF: refused, nothing decided.
    let p = post(
        &omar,
        &format!("{}/approvals/{id}/decide", console.url),
        &[("decision", "approve"), ("reason", "looks fine")],
    )
    .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let p = decide(
        &omar,
        &console,
        id,
        "not-the-token",
        "approve",
        "looks fine",
    )
    .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    // No justification: refused with the reason on the page.
    let p = decide(&omar, &console, id, &csrf, "approve", "   ").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("justification"), "{}", p.body);
    assert_eq!(
        console.broker.request(id).await.unwrap().status,
        Status::Pending
    );

    // Approve through the form.
    let p = decide(
        &omar,
        &console,
        id,
        &csrf,
        "approve",
        "ticket CHG-42, verified with the customer",
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let p = get(&omar, p.location.as_deref().unwrap()).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("You approved request #"), "{}", p.body);
    let outcome = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("waiter woke")
        .expect("waiter task");
    assert_eq!(
        outcome,
        Outcome::Approved {
            approvers: vec!["omar@bank.test".into()]
        }
    );
    let r = console.broker.request(id).await.unwrap();
    assert_eq!(r.status, Status::Executed, "approved, then claimed once");
    assert_eq!(r.decisions[0].approver.subject, "omar");
    assert_eq!(r.decisions[0].approver.issuer, console.issuer);
    assert_eq!(
        r.decisions[0].reason,
        "ticket CHG-42, verified with the customer"
    );
    // Deciding again: a clear conflict.
    let p = decide(&omar, &console, id, &csrf, "deny", "changed my mind").await;
    assert_eq!(p.status, StatusCode::CONFLICT);
    assert!(p.body.contains("already"), "{}", p.body);

    // The deny path.
    let id2 = console
        .hold(&alice, "sess-1", "DROP TABLE accounts", 1)
        .await;
    let waiter = {
        let b = console.broker.clone();
        tokio::spawn(async move { b.wait(id2).await })
    };
    let p = get(&omar, &format!("{}/approvals", console.url)).await;
    assert!(
        p.body.contains(&format!("href=\"/approvals/{id2}\"")),
        "pending queue lists it"
    );
    assert!(
        !p.body.contains(&format!("href=\"/approvals/{id}\"")),
        "settled one is not pending"
    );
    let p = decide(
        &omar,
        &console,
        id2,
        &csrf,
        "deny",
        "no drops in business hours",
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let outcome = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("waiter woke")
        .expect("waiter task");
    assert_eq!(
        outcome,
        Outcome::Denied {
            approver: "omar@bank.test".into(),
            reason: "no drops in business hours".into()
        }
    );
    let p = get(&omar, &format!("{}/approvals/{id2}", console.url)).await;
    assert_eq!(shown_status(&p.body).as_deref(), Some("denied"));

    // Someone who is not an approver: 403 on the page and on the form.
    let id3 = console
        .hold(&alice, "sess-1", "DELETE FROM audit_log", 1)
        .await;
    let bob = browser();
    let p = sign_in_via(&bob, &format!("{}/approvals/{id3}", console.url), "bob").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    let bob_home = get(&bob, &format!("{}/approvals", console.url)).await;
    let bob_csrf = input_value(&bob_home.body, "csrf").expect("logout form csrf");
    let p = decide(&bob, &console, id3, &bob_csrf, "approve", "sure").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);

    // The requester cannot approve their own request.
    let alice_b = browser();
    let p = sign_in_via(
        &alice_b,
        &format!("{}/approvals/{id3}", console.url),
        "alice",
    )
    .await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("This is your request"), "{}", p.body);
    assert!(
        !p.body.contains("name=\"decision\""),
        "no decision form for the requester"
    );
    let alice_csrf = input_value(&p.body, "csrf").expect("csrf");
    let p = decide(&alice_b, &console, id3, &alice_csrf, "approve", "trust me").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    assert!(p.body.contains("your own request"), "{}", p.body);
    assert_eq!(
        console.broker.request(id3).await.unwrap().status,
        Status::Pending
    );
    // Another person's CSRF token is not yours.
    let p = decide(&omar, &console, id3, &alice_csrf, "approve", "ok").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);

    // Sessions: the requester sees hers, the approver of its request may
    // open it, a bystander may not; results are shown as recorded (masked).
    console
        .record_session(
            &alice,
            "sess-1",
            "select ssn, name from customers -- <b>",
            "block",
        )
        .await;
    let p = get(&alice_b, &format!("{}/sessions", console.url)).await;
    assert!(p.body.contains("/sessions/sess-1"), "{}", p.body);
    let p = get(&omar, &format!("{}/sessions/sess-1", console.url)).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("event command blocked"));
    assert!(p.body.contains("***-**-6789"));
    assert!(p.body.contains("-- &lt;b&gt;"));
    assert!(
        p.body.contains(&format!("href=\"/approvals/{id}\"")),
        "approval events link"
    );
    let p = get(&bob, &format!("{}/sessions/sess-1", console.url)).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let p = get(&bob, &format!("{}/sessions?subject=alice", console.url)).await;
    assert!(
        !p.body.contains("/sessions/sess-1"),
        "others see only their own"
    );

    // Auditors: everything, read-only; others get 403 on auditor pages.
    let audrey = browser();
    let p = sign_in_via(
        &audrey,
        &format!("{}/approvals?status=all", console.url),
        "audrey",
    )
    .await;
    assert_eq!(p.status, StatusCode::OK);
    for r in [id, id2, id3] {
        assert!(
            p.body.contains(&format!("href=\"/approvals/{r}\"")),
            "auditor sees #{r}"
        );
    }
    assert!(
        !p.body.contains("name=\"decision\""),
        "auditors get no decision buttons"
    );
    let p = get(&audrey, &format!("{}/audit", console.url)).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("data-intact=\"true\""), "{}", p.body);
    let p = get(&audrey, &format!("{}/deliveries", console.url)).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("ops-&lt;hook&gt;") && p.body.contains("server said &lt;no&gt;"));
    let p = get(&audrey, &format!("{}/sessions/sess-1", console.url)).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(
        get(&bob, &format!("{}/audit", console.url)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&bob, &format!("{}/deliveries", console.url))
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // Sign out: the session is gone server-side.
    let p = post(
        &omar,
        &format!("{}/logout", console.url),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let p = get(&omar, &format!("{}/approvals", console.url)).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(p.location.unwrap_or_default().contains("/login"));
    let p = decide(&omar, &console, id3, &csrf, "approve", "after logout").await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_requests_are_granted_and_revoked_in_the_console() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let console = Console::start(listener, SignInWith::Dev).await;
    let mut alice = console.person("alice", &["analysts"]);
    alice.email = None;
    let r = console
        .broker
        .request_access(
            &alice,
            "bank",
            3600,
            "incident INC-7: need to read the ledger",
            None,
        )
        .await
        .expect("access request");
    let omar = browser();
    let p = sign_in_via(
        &omar,
        &format!("{}/approvals/{}", console.url, r.id),
        "omar",
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("Access request"));
    assert!(p.body.contains("1h"), "duration asked for");
    assert!(p.body.contains("incident INC-7"), "reason");
    let csrf = input_value(&p.body, "csrf").expect("csrf");
    let p = decide(&omar, &console, r.id, &csrf, "approve", "on call for INC-7").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let grants = console.broker.grants(true).await.unwrap();
    assert_eq!(grants.len(), 1);
    let g = &grants[0];
    let p = get(&omar, &format!("{}/grants", console.url)).await;
    assert!(
        p.body.contains(&format!("/grants/{}/revoke", g.id)),
        "approver may revoke"
    );
    // Revoking needs the CSRF token and a reason.
    let p = post(
        &omar,
        &format!("{}/grants/{}/revoke", console.url, g.id),
        &[("reason", "done")],
    )
    .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let p = post(
        &omar,
        &format!("{}/grants/{}/revoke", console.url, g.id),
        &[("csrf", &csrf), ("reason", "incident closed")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let all = console.broker.grants(false).await.unwrap();
    assert_eq!(all[0].revoke_reason.as_deref(), Some("incident closed"));
    assert!(console.broker.grants(true).await.unwrap().is_empty());
    let p = get(&omar, &format!("{}/grants?show=all", console.url)).await;
    assert!(p.body.contains("revoked") && p.body.contains("incident closed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_sign_in_uses_the_code_flow_with_pkce() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let console = Console::start(listener, SignInWith::Dev).await;
    let requester = console.person("alice", &["analysts"]);
    let id = console
        .hold(&requester, "sess-9", "UPDATE accounts SET balance = 0", 2)
        .await;

    // Through the picker, like a person.
    let omar = browser();
    let p = sign_in_via(&omar, &format!("{}/approvals/{id}", console.url), "omar").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let csrf = input_value(&p.body, "csrf").expect("csrf");
    let p = decide(&omar, &console, id, &csrf, "approve", "fine by me").await;
    let p = get(&omar, p.location.as_deref().expect("redirect")).await;
    assert!(
        p.body.contains("still needs more approvals"),
        "2-of-M: {}",
        p.body
    );
    assert_eq!(shown_status(&p.body).as_deref(), Some("pending"));

    // The token endpoint, as any OIDC client would use it.
    let c = browser();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let redirect = format!("{}/callback", console.url);
    let params = [
        ("client_id", "gatehouse-console"),
        ("redirect_uri", redirect.as_str()),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "st-1"),
        ("nonce", "n-1"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    let mut form: Vec<(&str, &str)> = params.to_vec();
    form.push(("pick", ""));
    form.push(("subject", "zoe"));
    form.push(("groups", "approvers, dba"));
    let p = post(&c, &format!("{}/dev/authorize", console.url), &form).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let loc = reqwest::Url::parse(&p.location.expect("location")).expect("url");
    let q: std::collections::HashMap<String, String> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "st-1");
    let token = |verifier: &'static str, code: String| {
        let c = c.clone();
        let url = format!("{}/dev/token", console.url);
        let redirect = redirect.clone();
        async move {
            c.post(url)
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", redirect.as_str()),
                    ("client_id", "gatehouse-console"),
                    ("code_verifier", verifier),
                ])
                .send()
                .await
                .expect("token request")
        }
    };
    let wrong = token(
        "wrong-verifier-0123456789-0123456789-0123456789",
        q["code"].clone(),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = wrong.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    // A refused attempt used the code up; a fresh one works.
    let p = post(&c, &format!("{}/dev/authorize", console.url), &form).await;
    let loc = reqwest::Url::parse(&p.location.expect("location")).expect("url");
    let q: std::collections::HashMap<String, String> = loc.query_pairs().into_owned().collect();
    let ok = token(verifier, q["code"].clone()).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let body: serde_json::Value = ok.json().await.expect("json");
    let access = body["access_token"].as_str().expect("access token");
    let dev = console.dev.as_ref().expect("dev issuer");
    let validator = gatehouse_identity::TokenValidator::new(
        vec![],
        Some(
            gatehouse_identity::DevIssuer::load_or_create(
                &console.dir.path().join("dev"),
                dev.issuer(),
            )
            .unwrap(),
        ),
        Duration::from_secs(30),
    )
    .unwrap();
    let who = validator
        .validate(access)
        .await
        .expect("dev token validates");
    assert_eq!(who.subject, "zoe");
    assert_eq!(who.groups, vec!["approvers".to_string(), "dba".to_string()]);

    // Sign-in state is one-time and bound to the browser that started it.
    let stranger = browser();
    let p = get(
        &stranger,
        &format!("{}/callback?code=x&state=st-1", console.url),
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    let p = get(&omar, &format!("{}/login?next=/grants", console.url)).await;
    assert_eq!(
        p.location.as_deref(),
        Some(format!("{}/grants", console.url).as_str()),
        "already signed in"
    );
    let p = get(&stranger, &format!("{}/login", console.url)).await;
    let authorize = p.location.expect("to the authorize page");
    assert!(authorize.contains("code_challenge_method=S256"));
    let p = get(
        &stranger,
        &format!("{}/callback?code=x&state=forged", console.url),
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("state mismatch"), "{}", p.body);

    // Sign-in starts on the public URL's host, whose cookie the callback sees.
    let p = page_of(
        stranger
            .get(format!("{}/login?next=/grants", console.url))
            .header("host", "localhost:1")
            .send()
            .await
            .expect("GET"),
    )
    .await;
    assert_eq!(
        p.location.as_deref(),
        Some(format!("{}/login?moved=1&next=%2Fgrants", console.url).as_str())
    );

    // The gateway's own routes are left alone, so the routers merge.
    for path in [
        "/healthz",
        "/api/v1/approvals",
        "/dev/.well-known/openid-configuration",
    ] {
        let p = get(&omar, &format!("{}{path}", console.url)).await;
        assert_eq!(
            p.status,
            StatusCode::NOT_FOUND,
            "{path} is not the console's"
        );
    }

    // Unknown ids and bad filters get pages, not panics.
    assert_eq!(
        get(&omar, &format!("{}/approvals/999", console.url))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&omar, &format!("{}/approvals/abc", console.url))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&omar, &format!("{}/approvals?status=nope", console.url))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&omar, &format!("{}/sessions/none", console.url))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let css = get(&omar, &format!("{}/static/console.css", console.url)).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    // Browsers ask for /favicon.ico on every page; there is one, made here.
    let ico = reqwest::Client::new()
        .get(format!("{}/favicon.ico", console.url))
        .send()
        .await
        .expect("GET /favicon.ico");
    assert_eq!(ico.status(), StatusCode::OK);
    assert_eq!(ico.headers()["content-type"], "image/x-icon");
    let bytes = ico.bytes().await.expect("icon");
    assert_eq!(&bytes[..4], &[0, 0, 1, 0], "an ICO file");
    let svg = get(&omar, &format!("{}/static/favicon.svg", console.url)).await;
    assert_eq!(svg.status, StatusCode::OK);
    assert!(svg.body.starts_with("<svg"), "{}", svg.body);
    let page = get(&omar, &format!("{}/approvals", console.url)).await;
    assert!(
        page.body
            .contains(r#"rel="icon" href="/static/favicon.svg""#),
        "{}",
        page.body
    );
}
