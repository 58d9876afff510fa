//! Test harness: a real broker over a real audit trail, the real test IdP
//! (npm `oidc-provider`, tests/oidc/idp.mjs) or the dev issuer, and the
//! console served on 127.0.0.1, driven like a browser.
#![allow(dead_code)]

use gatehouse_approvals::{Broker, Store};
use gatehouse_audit::{public_key_path, AuditConfig, AuditLog, NewEvent};
use gatehouse_console::{ConsoleConfig, ConsoleDeps, DevIdentity};
use gatehouse_core::approval::{ApprovalBroker, HeldCommand, Requirement};
use gatehouse_core::pipeline::{BoxFuture, EventRecord, Recorder};
use gatehouse_core::policy::{compile, PolicyConfig};
use gatehouse_core::Identity;
use gatehouse_identity::{DevIssuer, IssuerConfig, TokenValidator};
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::StatusCode;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;

/// Where the test IdP lives.
pub const IDP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/oidc");

/// A running test IdP; killed on drop.
pub struct Idp {
    child: tokio::process::Child,
    pub port: u16,
}

impl Idp {
    /// Start tests/oidc/idp.mjs with the console's redirect URI registered.
    pub async fn start(redirect_uri: &str) -> Idp {
        assert!(
            std::path::Path::new(IDP_DIR)
                .join("node_modules/oidc-provider")
                .exists(),
            "the test IdP is not installed; run scripts/test.sh (it runs `npm ci` in tests/oidc)"
        );
        let port = free_port();
        let mut child = tokio::process::Command::new("node")
            .arg("idp.mjs")
            .current_dir(IDP_DIR)
            .env("PORT", port.to_string())
            .env("CONSOLE_REDIRECT_URIS", redirect_uri)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
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
        // Keep reading: the provider dies of EPIPE if its stdout closes.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Idp { child, port }
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct AuditRecorder(AuditLog);

impl Recorder for AuditRecorder {
    fn record(
        &self,
        event: EventRecord,
    ) -> BoxFuture<'_, Result<u64, gatehouse_core::pipeline::RecordError>> {
        Box::pin(async move {
            self.0
                .record(NewEvent {
                    kind: event.kind.to_string(),
                    session_id: event.session_id,
                    subject: event.subject,
                    connection: event.connection,
                    data: event.data,
                })
                .await
                .map_err(|e| gatehouse_core::pipeline::RecordError::Store(e.to_string()))
        })
    }
}

/// How the console under test signs people in.
pub enum SignInWith {
    /// The real IdP at this issuer, with the client secret in this env var.
    Idp { issuer: String, secret_env: String },
    /// The dev issuer.
    Dev,
}

/// A console served on 127.0.0.1 over a real broker and audit trail.
pub struct Console {
    pub url: String,
    pub broker: Broker,
    pub audit: AuditLog,
    pub issuer: String,
    pub dev: Option<Arc<DevIssuer>>,
    pub dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

const POLICY: &str = r#"
[[connections]]
name = "bank"
type = "postgres"
host = "127.0.0.1"
port = 5432
user = "app"
password_env = "UNUSED_IN_CONSOLE_TESTS"
allow_groups = ["dba"]
access_approvers = ["approvers"]
max_access = "8h"
"#;

impl Console {
    /// Start a console on `listener` (bound first, so the IdP can be told
    /// the exact redirect URI), over plain HTTP.
    pub async fn start(listener: TcpListener, with: SignInWith) -> Console {
        Self::start_with(listener, with, false).await
    }

    /// Start a console over TLS with a self-signed certificate (HTTP/1.1
    /// and HTTP/2), as the gateway serves it.
    pub async fn start_tls(listener: TcpListener, with: SignInWith) -> Console {
        Self::start_with(listener, with, true).await
    }

    async fn start_with(listener: TcpListener, with: SignInWith, tls: bool) -> Console {
        let addr = listener.local_addr().expect("addr");
        let url = format!("{}://{addr}", if tls { "https" } else { "http" });
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("audit.key");
        let mut audit_cfg = AuditConfig::new(dir.path().join("audit.db"), &key);
        audit_cfg.checkpoint_every = 5;
        let audit = AuditLog::open(audit_cfg).expect("audit log");
        let policy_cfg: PolicyConfig = toml::from_str(POLICY).expect("policy toml");
        let policy = Arc::new(compile(&policy_cfg, POLICY).expect("policy"));
        let broker = Broker::with_store(
            Store::in_memory().expect("store"),
            Arc::new(AuditRecorder(audit.clone())),
            policy,
            &url,
        )
        .expect("broker");
        let mut cfg = ConsoleConfig::default();
        let (validator, dev, issuer) = match with {
            SignInWith::Idp { issuer, secret_env } => {
                let mut ic = IssuerConfig::new(issuer.clone(), vec!["urn:gatehouse".into()]);
                ic.allow_insecure_http = true;
                cfg.issuer = Some(issuer.clone());
                cfg.client_secret_env = Some(secret_env);
                (
                    TokenValidator::new(vec![ic], None, Duration::from_secs(30))
                        .expect("validator"),
                    None,
                    issuer,
                )
            }
            SignInWith::Dev => {
                let dev_url = format!("{url}/dev");
                let keys = dir.path().join("dev");
                let dev = Arc::new(DevIssuer::load_or_create(&keys, &dev_url).expect("dev issuer"));
                let for_validator = DevIssuer::load_or_create(&keys, &dev_url).expect("dev issuer");
                cfg.dev_identities = vec![
                    DevIdentity {
                        subject: "omar".into(),
                        email: Some("omar@bank.test".into()),
                        groups: vec!["approvers".into()],
                    },
                    DevIdentity {
                        subject: "audrey".into(),
                        email: Some("audrey@bank.test".into()),
                        groups: vec!["auditors".into()],
                    },
                ];
                (
                    TokenValidator::new(vec![], Some(for_validator), Duration::from_secs(30))
                        .expect("validator"),
                    Some(dev),
                    dev_url,
                )
            }
        };
        let deliveries: Arc<dyn Fn() -> Vec<serde_json::Value> + Send + Sync> = Arc::new(|| {
            vec![serde_json::json!({
                "delivery_id": "d-1", "receiver": "ops-<hook>", "kind": "webhook",
                "event": "approval.requested", "notification_id": "1", "attempts": 2,
                "state": "failed", "last_status": 500, "last_error": "server said <no>",
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:01:00Z"
            })]
        });
        let router = gatehouse_console::router(
            &cfg,
            ConsoleDeps {
                broker: broker.clone(),
                validator: Arc::new(validator),
                dev_issuer: dev.clone(),
                audit_db: dir.path().join("audit.db"),
                audit_public_key: public_key_path(&key),
                audit_verify: Default::default(),
                recordings_dir: None,
                deliveries,
                public_url: url.clone(),
            },
        )
        .expect("console router");
        let server = if tls {
            tokio::spawn(serve_tls(listener, router))
        } else {
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            })
        };
        Console {
            url,
            broker,
            audit,
            issuer,
            dev,
            dir,
            server,
        }
    }

    /// An identity as the console's sign-in produces it.
    pub fn person(&self, subject: &str, groups: &[&str]) -> Identity {
        Identity {
            subject: subject.into(),
            email: Some(format!("{subject}@bank.test")),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            issuer: self.issuer.clone(),
            token_id: None,
            expires_at: chrono::Utc::now().timestamp() + 600,
        }
    }

    /// Hold a command for approval, as an adapter would.
    pub async fn hold(
        &self,
        requester: &Identity,
        session: &str,
        command: &str,
        count: u32,
    ) -> u64 {
        let opened = ApprovalBroker::open(
            &self.broker,
            HeldCommand {
                requester: requester.clone(),
                connection: "bank".into(),
                session_id: session.into(),
                protocol: "postgres".into(),
                command: command.into(),
                rule: "deletes-need-approval".into(),
                message: "deleting customer rows needs a second person".into(),
                requirement: Requirement {
                    any_of: vec!["approvers".into()],
                    count,
                    each_of: vec![],
                    timeout_secs: 600,
                },
            },
        )
        .await
        .expect("open request");
        assert_eq!(opened.link, format!("{}/approvals/{}", self.url, opened.id));
        opened.id
    }

    /// Record a session's start and one command in the trail, as the
    /// postgres adapter does.
    pub async fn record_session(&self, who: &Identity, session: &str, sql: &str, effect: &str) {
        let ev = |kind: &str, data: serde_json::Value| NewEvent {
            kind: kind.into(),
            session_id: Some(session.into()),
            subject: Some(who.subject.clone()),
            connection: Some("bank".into()),
            data,
        };
        self.audit
            .record(ev(
                "session.start",
                serde_json::json!({"protocol": "postgres", "client_addr": "127.0.0.1:5555", "tls": true,
                    "user": who.subject, "identity": who, "application_name": "psql"}),
            ))
            .await
            .expect("record");
        self.audit
            .record(ev(
                "command",
                serde_json::json!({"command_id": 1, "protocol": "simple", "sql": sql,
                    "statements": [{"kind": "select", "tables_read": ["customers"], "tables_written": []}],
                    "parse_error": null,
                    "verdict": {"effect": effect, "rule": "no-ssn-export", "message": "SSNs stay <inside>"}}),
            ))
            .await
            .expect("record");
        self.audit
            .record(ev(
                "command.result",
                serde_json::json!({"command_id": 1, "rows": 1, "duration_us": 900,
                    "masked": {"ssn": 1}, "error": null, "result_sample": [["***-**-6789", "Ada"]]}),
            ))
            .await
            .expect("record");
        // The console reads the store, which trails the journal briefly.
        self.audit.flush().await.expect("indexed");
    }
}

/// Serve `app` over TLS like the gateway's API listener.
async fn serve_tls(listener: TcpListener, app: axum::Router) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("self-signed certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("tls config");
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A cookie-keeping HTTP client that follows no redirects by itself.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// A response's status, `Location` and body.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub location: Option<String>,
    pub body: String,
    pub url: String,
}

fn absolute(base: &str, location: &str) -> String {
    reqwest::Url::parse(base)
        .and_then(|b| b.join(location))
        .map(|u| u.to_string())
        .unwrap_or_else(|_| location.to_string())
}

/// Read a response as a [`Page`].
pub async fn page_of(resp: reqwest::Response) -> Page {
    page(resp).await
}

async fn page(resp: reqwest::Response) -> Page {
    let url = resp.url().to_string();
    let status = resp.status();
    let headers = resp.headers().clone();
    let location = headers
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(|l| absolute(&url, l));
    let body = resp.text().await.unwrap_or_default();
    Page {
        status,
        headers,
        location,
        body,
        url,
    }
}

pub async fn get(c: &reqwest::Client, url: &str) -> Page {
    page(c.get(url).send().await.expect("GET")).await
}

pub async fn post(c: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Page {
    page(c.post(url).form(form).send().await.expect("POST")).await
}

/// Follow redirects from `start`, answering the IdP's login and consent
/// forms (login `login`, any password) or the dev sign-in page (picking
/// `login`), until a page that is not a redirect.
pub async fn sign_in_via(c: &reqwest::Client, start: &str, login: &str) -> Page {
    let mut p = get(c, start).await;
    for _ in 0..20 {
        if let Some(next) = p.location.clone() {
            p = get(c, &next).await;
            continue;
        }
        if p.status == StatusCode::OK && p.url.contains("/interaction/") {
            p = if p.body.contains("name=\"login\"") {
                post(
                    c,
                    &p.url.clone(),
                    &[("prompt", "login"), ("login", login), ("password", "any")],
                )
                .await
            } else {
                post(c, &p.url.clone(), &[("prompt", "consent")]).await
            };
            continue;
        }
        if p.status == StatusCode::OK && p.body.contains("id=\"dev-signin\"") {
            let url = reqwest::Url::parse(&p.url).expect("dev authorize url");
            let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
            form.push(("pick".into(), login.into()));
            let authorize = format!("{}/dev/authorize", url.origin().ascii_serialization());
            p = page(c.post(&authorize).form(&form).send().await.expect("POST")).await;
            continue;
        }
        return p;
    }
    panic!("sign-in did not finish: last page {} {}", p.status, p.url);
}

/// The value of the first `name="…" value="…"` input.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_string())
}

/// The status the page shows (`data-status` of `#status`).
pub fn shown_status(html: &str) -> Option<String> {
    let at = html.find("id=\"status\"")?;
    let rest = &html[at..];
    let s = rest.find("data-status=\"")? + 13;
    Some(rest[s..s + rest[s..].find('"')?].to_string())
}
