//! Identity against a real OpenID Connect provider (npm `oidc-provider`):
//! discovery, JWKS fetch, RS256 access tokens, groups claim, key rotation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::process::Stdio;
use std::time::Duration;
use support::{err, out, TestGateway};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A running IdP; killed on drop.
struct Idp {
    child: tokio::process::Child,
    port: u16,
}

impl Idp {
    async fn start(port: u16) -> Idp {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/oidc");
        assert!(
            std::path::Path::new(dir)
                .join("node_modules/oidc-provider")
                .exists(),
            "the test IdP is not installed; run scripts/test.sh (it runs `npm ci` in tests/oidc)"
        );
        let mut child = tokio::process::Command::new("node")
            .arg("idp.mjs")
            .current_dir(dir)
            .env("PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Generous: on a loaded 2-core CI machine a cold Node start beside
        // Chromium once took longer than 20 s.
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(l)) = lines.next_line().await {
                if l.starts_with("ready") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ready, Ok(true), "IdP did not start");
        Idp { child, port }
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }

    /// A client-credentials access token for one of the test clients.
    async fn token(&self, client: &str) -> String {
        let o = tokio::process::Command::new("curl")
            .args([
                "-s",
                "-u",
                &format!("{client}:{client}-secret"),
                "-d",
                "grant_type=client_credentials",
                "-d",
                "scope=db",
            ])
            .arg(format!("http://127.0.0.1:{}/token", self.port))
            .output()
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("token response: {}", out(&o)));
        v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token: {v}"))
            .to_string()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_oidc_provider_tokens_work_and_key_rotation_is_followed() {
    let port = free_port();
    let idp = Idp::start(port).await;
    let issuer = format!(
        "[identity]\njwks_min_refetch_secs = 1\n[[identity.issuers]]\nissuer = \"http://127.0.0.1:{port}\"\naudiences = [\"urn:gatehouse\"]\nallow_insecure_http = true\n"
    );
    let gw = TestGateway::start("", &issuer).await;
    let analyst = idp.token("svc-analyst").await;
    let o = gw
        .psql(
            "svc-analyst",
            &analyst,
            &["select ssn from customers order by id limit 1"],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("***-**-"), "{}", out(&o));
    // Groups come from the provider's claim: analysts may not write.
    let o = gw
        .psql(
            "svc-analyst",
            &analyst,
            &["update customers set name = 'x' where id = 1"],
        )
        .await;
    assert!(err(&o).contains("analysts-read-only"), "{}", err(&o));
    // A client whose token carries no allowed group is refused.
    let nobody = idp.token("svc-nobody").await;
    let o = gw.psql("svc-nobody", &nobody, &["select 1"]).await;
    assert!(err(&o).contains("not in a group allowed"), "{}", err(&o));

    // Rotate: a new IdP process signs with a new key under a new kid.
    idp.stop().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let idp = Idp::start(port).await;
    let rotated = idp.token("svc-dba").await;
    assert_ne!(kid(&rotated), kid(&analyst));
    let o = gw.psql("svc-dba", &rotated, &["select 1"]).await;
    assert!(
        o.status.success(),
        "token signed with the rotated key: {}",
        err(&o)
    );

    // A token with the right shape but the wrong audience is refused: the
    // dev issuer's token is for "gatehouse", and is signed by another key.
    let mut parts: Vec<String> = rotated.split('.').map(String::from).collect();
    parts[2] = parts[2].chars().rev().collect();
    let o = gw.psql("svc-dba", &parts.join("."), &["select 1"]).await;
    assert!(err(&o).contains("authentication failed"), "{}", err(&o));
    idp.stop().await;
    gw.stop().await;
}

fn kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_string()
}
