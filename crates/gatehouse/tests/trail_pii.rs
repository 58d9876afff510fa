//! Issue 12, item 1: the audit trail never stores a card number or an SSN
//! in the clear, whatever carried it in. One gateway in front of
//! PostgreSQL, an SSH host, a JSON API and an LLM; clear (fake) values
//! typed into a psql statement, an SSH exec, an interactive SSH line, an
//! scp path, an HTTP query string and JSON body, and an LLM prompt. Then
//! the whole trail is searched for them: every file of the state folder
//! (the SQLite audit store, its WAL, the approvals store, recordings), the
//! `audit export`, an evidence pack's files, and the console's pages. The
//! masked shapes must be there, so the test cannot pass vacuously.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use gatehouse_testbed::sshtarget::{self, SshTarget};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use support::*;

const SSN: &str = "536-22-1457";
const SSN_MASKED: &str = "***-**-1457";
const PAN: &str = "4111111111111111";
const PAN_SPACED: &str = "4111 1111 1111 1111";
const PAN_MASKED: &str = "************1111";
/// An account number has no detector: only the column rule masks it.
const ACCOUNT: &str = "99887766";

/// Clear values that must appear nowhere in the trail.
const CLEAR: [&str; 4] = [SSN, PAN, PAN_SPACED, ACCOUNT];

const TARGET_USER: &str = "gatehouse-trail-test";
const API_KEY: &str = "upstream-api-key-for-trail-tests";
const LLM_KEY: &str = "upstream-llm-key-for-trail-tests";

fn ssh_target() -> &'static SshTarget {
    static T: OnceLock<SshTarget> = OnceLock::new();
    T.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("gatehouse-trail-sshd-{}", std::process::id()));
        let t = SshTarget::start(
            &dir,
            TARGET_USER,
            "trail-target-password-only-the-gateway-knows",
        )
        .expect("start sshd (run scripts/test.sh to install openssh-server)");
        t.stop_when_process_exits(std::process::id());
        t
    })
}

/// A JSON API that answers every request with a fixed body.
async fn start_api() -> u16 {
    let app =
        axum::Router::new().fallback(|| async { axum::Json(serde_json::json!({"ok": true})) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn policy(dir: &Path, ssh: Option<&SshTarget>, api_port: u16, llm_port: u16) -> String {
    let api_key = dir.join("api.key");
    std::fs::write(&api_key, API_KEY).unwrap();
    let llm_key = dir.join("llm.key");
    std::fs::write(&llm_key, LLM_KEY).unwrap();
    let mut text = format!(
        r#"
[[connections]]
name = "customers-api"
type = "http"
host = "127.0.0.1"
port = {api_port}
upstream_auth = "header:X-Api-Key"
password_file = "{api_key}"
allow_groups = ["analysts"]

[[connections]]
name = "llm"
type = "openai"
host = "127.0.0.1"
port = {llm_port}
password_file = "{llm_key}"
allow_groups = ["analysts"]
"#,
        api_key = api_key.display(),
        llm_key = llm_key.display(),
    );
    text.push_str(gatehouse::demo::DEMO_APPROVAL_RULE);
    if let Some(t) = ssh {
        let pw = dir.join("ssh-target.pw");
        std::fs::write(&pw, &t.password).unwrap();
        text.push_str(&format!(
            r#"
[[connections]]
name = "bank-host"
type = "ssh"
host = "127.0.0.1"
port = {port}
user = "{user}"
password_file = "{pw}"
host_key = "{key}"
allow_groups = ["ops"]
mask_terminal = true
"#,
            port = t.port,
            user = t.user,
            pw = pw.display(),
            key = t.host_key,
        ));
    }
    text
}

const TOP: &str = r#"
[http]
listen = "127.0.0.1:0"

[console]
auditor_groups = ["auditors"]
[[console.dev_identities]]
subject = "audrey"
groups = ["auditors"]
"#;

/// A psql statement that also carries an account number for the column
/// rule (`*.account_number`, partial) and fails with the card in its error.
async fn type_into_psql(gw: &TestGateway, token: &str) {
    let o = gw
        .psql(
            "alice",
            token,
            &[&format!(
                "select name from customers where ssn = '{SSN}' or card_number = '{PAN}' or name in (select name from customers where account_number = '{ACCOUNT}')"
            )],
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let o = gw
        .psql("alice", token, &[&format!("select '{PAN_SPACED}'::int")])
        .await;
    assert!(!o.status.success(), "the cast fails");
}

/// A held statement: the approver sees it masked as the trail keeps it,
/// and once approved it runs with its original text (the literal decides
/// whether a row is updated, so a masked text would update none).
async fn hold_and_approve(gw: &TestGateway) {
    let dana = gw.token("dana", &["dba"]);
    let omar = gw.token("omar", &["approvers"]);
    let sql = format!(
        "update customers set phone = '555-0199' where id = 9 and '{SSN}' like '5%' and account_number is distinct from '{ACCOUNT}'"
    );
    let psql = gw.psql_background("dana", &dana, &[&sql], &[]);
    let request = gw.pending_request(&omar).await;
    let shown = request["command"].as_str().unwrap().to_string();
    assert_eq!(
        shown,
        format!(
            "update customers set phone = '555-0199' where id = 9 and '{SSN_MASKED}' like '5%' and account_number is distinct from '****7766'"
        ),
        "the approver sees the statement masked"
    );
    let id = request["id"].as_u64().unwrap();
    let (code, body) = gw.decide(id, &omar, "approve", "CHG-7").await;
    assert_eq!(code, 200, "{body}");
    let o = psql.await.unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("UPDATE 1"),
        "the original text ran: {}",
        out(&o)
    );
}

async fn type_into_http(gw: &TestGateway, token: &str) {
    let http = gw.http();
    let base = format!("https://{}", gw.gw.http_addr.unwrap());
    let r = http
        .get(format!(
            "{base}/customers-api/lookup?ssn={SSN}&pan={}",
            PAN_SPACED.replace(' ', "%20")
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = http
        .post(format!("{base}/customers-api/transfers"))
        .bearer_auth(token)
        .json(&serde_json::json!({"card": PAN_SPACED, "note": format!("ssn {SSN}"), "amount": 10}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = http
        .post(format!("{base}/llm/v1/chat/completions"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "model": gatehouse_testbed::llmdemo::MODEL,
            "messages": [{"role": "user", "content": format!("My card is {PAN} and my SSN is {SSN}; say hi.")}],
        }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
}

fn ssh_opts(gw: &TestGateway) -> Vec<String> {
    let key = gw.dir.path().join("state").join("ssh_host_ed25519_key");
    let o = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success());
    let port = gw.gw.ssh_addr.expect("ssh listener").port();
    let known = gw.dir.path().join("known_hosts");
    std::fs::write(
        &known,
        format!(
            "[127.0.0.1]:{port} {}",
            String::from_utf8_lossy(&o.stdout).trim()
        ),
    )
    .unwrap();
    [
        "StrictHostKeyChecking=yes".to_string(),
        format!("UserKnownHostsFile={}", known.display()),
        "PubkeyAuthentication=no".into(),
        "PreferredAuthentications=password".into(),
        "ConnectTimeout=10".into(),
        "LogLevel=ERROR".into(),
    ]
    .into_iter()
    .flat_map(|o| ["-o".to_string(), o])
    .collect()
}

async fn run(cmd: &mut tokio::process::Command) -> std::process::Output {
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("client timed out")
        .expect("client runs")
}

async fn type_into_ssh(gw: &TestGateway, token: &str) {
    let port = gw.gw.ssh_addr.expect("ssh listener").port().to_string();
    let opts = ssh_opts(gw);
    // Exec.
    let mut cmd = tokio::process::Command::new("sshpass");
    cmd.arg("-e")
        .env("SSHPASS", token)
        .arg("ssh")
        .args(&opts)
        .args(["-p", &port, "bank-host@127.0.0.1"])
        .arg(format!("echo card {PAN_SPACED} ssn {SSN}"))
        .stdin(std::process::Stdio::null());
    let o = run(&mut cmd).await;
    assert!(o.status.success(), "ssh exec: {}", err(&o));
    assert!(!out(&o).contains(SSN), "the terminal output is masked");
    // A path through SFTP (scp's default protocol).
    let local = gw.dir.path().join("upload.txt");
    std::fs::write(&local, "nothing sensitive\n").unwrap();
    let mut cmd = tokio::process::Command::new("sshpass");
    cmd.arg("-e")
        .env("SSHPASS", token)
        .arg("scp")
        .args(&opts)
        .args(["-P", &port])
        .arg(&local)
        .arg(format!("bank-host@127.0.0.1:ssn-{SSN}.txt"));
    let o = run(&mut cmd).await;
    assert!(o.status.success(), "scp: {}", err(&o));
    // An interactive line, typed in a terminal.
    let session = format!("gh-trail-{}", std::process::id());
    let ssh_cmd = format!(
        "sshpass -e ssh {} -tt -p {port} bank-host@127.0.0.1",
        opts.join(" ")
    );
    let started = std::process::Command::new("tmux")
        .env("TERM", "xterm-256color")
        .args(["new-session", "-d", "-x", "120", "-y", "30", "-s", &session])
        .arg("-e")
        .arg(format!("SSHPASS={token}"))
        .arg(&ssh_cmd)
        .status()
        .unwrap();
    assert!(started.success());
    tmux(&["send-keys", "-t", &session, "export PS1='ready> '", "Enter"]);
    wait_for_screen(&session, "ready>").await;
    tmux(&[
        "send-keys",
        "-t",
        &session,
        &format!("echo typed {PAN} done"),
        "Enter",
    ]);
    wait_for_screen(&session, "done").await;
    tmux(&["send-keys", "-t", &session, "exit", "Enter"]);
    wait_tmux_closed(&session).await;
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Fail if any clear value is in `bytes`, naming where.
fn assert_clean(bytes: &[u8], what: &str) {
    for clear in CLEAR {
        let hit = bytes
            .windows(clear.len())
            .position(|w| w == clear.as_bytes());
        if let Some(at) = hit {
            let from = at.saturating_sub(120);
            let to = (at + clear.len() + 120).min(bytes.len());
            panic!(
                "{what} holds {clear:?} in the clear: …{}…",
                String::from_utf8_lossy(&bytes[from..to])
            );
        }
    }
}

/// The body of a console page, signed in (dev sign-in) as `login`.
struct Console {
    client: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Console {
    async fn sign_in(gw: &TestGateway, login: &str) -> Console {
        let pem = std::fs::read(gw.ca_file()).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut c = Console {
            client,
            base: gw.api_url(),
            cookies: Vec::new(),
        };
        let mut url = format!("{}/login?next=/sessions", c.base);
        for _ in 0..20 {
            let (status, location, body, at) = c.fetch(&url, None).await;
            if let Some(next) = location {
                url = next;
                continue;
            }
            if body.contains("id=\"dev-signin\"") {
                let page = reqwest::Url::parse(&at).unwrap();
                let mut form = reqwest::Url::parse("http://form.invalid/").unwrap();
                {
                    let mut q = form.query_pairs_mut();
                    for (k, v) in page.query_pairs() {
                        q.append_pair(&k, &v);
                    }
                    q.append_pair("pick", login);
                }
                let body = form.query().unwrap_or_default().to_string();
                let (_, location, _, _) = c
                    .fetch(&format!("{}/dev/authorize", c.base), Some(body))
                    .await;
                url = location.expect("the dev sign-in redirects back");
                continue;
            }
            assert!(status.is_success(), "{status} at {at}: {body}");
            return c;
        }
        panic!("the console sign-in did not finish");
    }

    /// GET (or POST a form); (status, absolute Location, body, url).
    async fn fetch(
        &mut self,
        url: &str,
        form: Option<String>,
    ) -> (reqwest::StatusCode, Option<String>, String, String) {
        let mut req = match &form {
            Some(body) => self
                .client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone()),
            None => self.client.get(url),
        };
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", jar.join("; "));
        }
        let resp = req.send().await.unwrap();
        for set in resp.headers().get_all("set-cookie") {
            let raw = set.to_str().unwrap_or("");
            let pair = raw.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                let k = k.trim().to_string();
                self.cookies.retain(|(name, _)| *name != k);
                if !v.trim().is_empty() {
                    self.cookies.push((k, v.trim().to_string()));
                }
            }
        }
        let at = resp.url().to_string();
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(|l| {
                reqwest::Url::parse(&at)
                    .unwrap()
                    .join(l)
                    .unwrap()
                    .to_string()
            });
        (status, location, resp.text().await.unwrap_or_default(), at)
    }

    async fn page(&mut self, path: &str) -> String {
        let (status, _, body, _) = self.fetch(&format!("{}{path}", self.base), None).await;
        assert!(status.is_success(), "{path}: {status}");
        body
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_never_holds_a_clear_card_number_or_ssn() {
    let ssh = if sshtarget::available() {
        Some(ssh_target())
    } else {
        assert!(
            std::env::var("GATEHOUSE_REQUIRE_SSH").as_deref() != Ok("1"),
            "SSH required but sshd is not installed or this is not root"
        );
        eprintln!("SKIPPED the SSH part: sshd is not installed or this is not root");
        None
    };
    let api_port = start_api().await;
    let llm = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let llm_port = llm.local_addr().unwrap().port();
    gatehouse_testbed::llmdemo::start(llm, LLM_KEY.into()).await;
    let top = if ssh.is_some() {
        format!("[ssh]\nlisten = \"127.0.0.1:0\"\n{TOP}")
    } else {
        TOP.to_string()
    };
    let gw = TestGateway::start_with_policy(&top, |dir| policy(dir, ssh, api_port, llm_port)).await;
    let alice = gw.token("alice", &["analysts", "ops"]);

    type_into_psql(&gw, &alice).await;
    hold_and_approve(&gw).await;
    type_into_http(&gw, &alice).await;
    if ssh.is_some() {
        type_into_ssh(&gw, &alice).await;
    }

    // The export: every event, as the CLI gives it out.
    let mut events = Vec::new();
    for _ in 0..50 {
        events = support::events(&gw).await;
        let ended = events.iter().filter(|e| e["kind"] == "session.end").count();
        if ssh.is_none() || ended >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let export = gw.cli(&["audit", "export", "--format", "jsonl"]).await;
    assert!(export.status.success(), "{}", err(&export));
    assert_clean(&export.stdout, "audit export");
    let exported = out(&export);
    assert!(exported.contains(SSN_MASKED), "the masked SSN is on record");
    assert!(
        exported.contains(PAN_MASKED),
        "the masked card is on record"
    );
    assert!(
        exported.contains("account_number = '****7766'"),
        "the column rule masked the account number in the statement"
    );

    // The masked shapes sit where each producer put them.
    let command = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        events
            .iter()
            .filter(|e| e["kind"] == "command")
            .find(|e| pred(e))
            .cloned()
    };
    let sql = command(&|e| {
        e["data"]["sql"]
            .as_str()
            .is_some_and(|s| s.contains("where ssn"))
    })
    .expect("the psql statement is recorded");
    assert!(
        sql["data"]["sql"].as_str().unwrap().contains(&format!(
            "where ssn = '{SSN_MASKED}' or card_number = '{PAN_MASKED}'"
        )),
        "{sql}"
    );
    let http = command(&|e| {
        e["data"]["request"]["path"]
            .as_str()
            .is_some_and(|p| p.contains("lookup"))
    })
    .expect("the HTTP request is recorded");
    assert!(http.to_string().contains(SSN_MASKED), "{http}");
    let prompt = command(&|e| e["data"]["connection_type"] == "openai" || e["connection"] == "llm")
        .expect("the LLM request is recorded");
    assert!(prompt.to_string().contains(SSN_MASKED), "{prompt}");
    if ssh.is_some() {
        let exec = command(&|e| e["data"]["kind"] == "exec").expect("the SSH exec is recorded");
        assert_eq!(
            exec["data"]["command"],
            format!("echo card **** **** **** 1111 ssn {SSN_MASKED}")
        );
        let line = command(&|e| {
            e["data"]["kind"] == "line"
                && e["data"]["command"]
                    .as_str()
                    .is_some_and(|c| c.contains("typed"))
        })
        .expect("the typed line is recorded");
        assert_eq!(
            line["data"]["command"],
            format!("echo typed {PAN_MASKED} done")
        );
    }

    // The console's pages, as an auditor reads them.
    let mut console = Console::sign_in(&gw, "audrey").await;
    let list = console.page("/sessions").await;
    assert_clean(list.as_bytes(), "console /sessions");
    let mut sessions: Vec<String> = events
        .iter()
        .filter_map(|e| e["session_id"].as_str().map(String::from))
        .collect();
    sessions.sort();
    sessions.dedup();
    let mut shown = String::new();
    for id in &sessions {
        let page = console.page(&format!("/sessions/{id}")).await;
        assert_clean(page.as_bytes(), &format!("console /sessions/{id}"));
        shown.push_str(&page);
    }
    for rec in events.iter().filter(|e| e["kind"] == "recording") {
        let (Some(id), Some(channel)) =
            (rec["session_id"].as_str(), rec["data"]["channel"].as_u64())
        else {
            continue;
        };
        let page = console
            .page(&format!("/sessions/{id}/replay/{channel}"))
            .await;
        assert_clean(page.as_bytes(), "console replay page");
        shown.push_str(&page);
    }
    assert!(
        shown.contains(SSN_MASKED),
        "the console shows the masked statement"
    );
    let audit = console.page("/audit").await;
    assert_clean(audit.as_bytes(), "console /audit");

    // An evidence pack, every file of it.
    let pack = gw.dir.path().join("pack");
    let day = |d: i64| {
        (chrono::Utc::now() + chrono::Duration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    let o = gw
        .cli(&[
            "evidence",
            "--from",
            &day(-1),
            "--to",
            &day(1),
            "--out",
            pack.to_str().unwrap(),
        ])
        .await;
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    let mut pack_text = Vec::new();
    for f in files_under(&pack) {
        let bytes = std::fs::read(&f).unwrap();
        assert_clean(&bytes, &f.display().to_string());
        pack_text.extend_from_slice(&bytes);
    }
    assert!(
        String::from_utf8_lossy(&pack_text).contains(SSN_MASKED),
        "the pack's events hold the masked statement"
    );

    // Last, the bytes at rest: the SQLite audit store (and its WAL), the
    // approvals store, the recordings: every file of the state folder.
    let (dir, _) = gw.stop().await;
    let mut at_rest = Vec::new();
    for f in files_under(&dir.path().join("state")) {
        // Sockets and files removed at shutdown are not kept data.
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        assert_clean(&bytes, &f.display().to_string());
        at_rest.extend_from_slice(&bytes);
    }
    assert!(
        at_rest
            .windows(SSN_MASKED.len())
            .any(|w| w == SSN_MASKED.as_bytes()),
        "the audit store holds the masked statement"
    );
}

/// The MySQL adapter gets the same masking (its own quoting: `"…"` strings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_statements_are_masked_in_the_trail() {
    let gw = TestGateway::start_mysql("", "").await;
    let alice = gw.token("alice", &["analysts"]);
    let o = gw
        .mariadb(
            "alice",
            &alice,
            &format!(
                "select name from customers where ssn = \"{SSN}\" or card_number = '{PAN_SPACED}' or account_number in ('{ACCOUNT}', '11112222')"
            ),
        )
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let export = gw.cli(&["audit", "export", "--format", "jsonl"]).await;
    assert!(export.status.success(), "{}", err(&export));
    assert_clean(&export.stdout, "audit export");
    assert!(
        out(&export).contains(&format!(
            "where ssn = \\\"{SSN_MASKED}\\\" or card_number = '**** **** **** 1111' or account_number in ('****7766', '****2222')"
        )),
        "{}",
        out(&export)
    );
    let (dir, _) = gw.stop().await;
    for f in files_under(&dir.path().join("state")) {
        if let Ok(bytes) = std::fs::read(&f) {
            assert_clean(&bytes, &f.display().to_string());
        }
    }
}

/// With `[audit] seal_originals_to`, the statement's original text is
/// sealed into its command event: the investigator's key opens it, the
/// trail shows only the masked text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_statement_is_sealed_for_the_investigator() {
    let keys = tempfile::tempdir().unwrap();
    let identity = keys.path().join("investigator.key");
    let gatehouse = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(args)
            .env_remove("GATEHOUSE_CONFIG")
            .env_remove("GATEHOUSE_URL")
            .env_remove("GATEHOUSE_TOKEN")
            .output()
            .unwrap()
    };
    let o = gatehouse(&["reveal", "keygen", "--out", identity.to_str().unwrap()]);
    assert!(o.status.success(), "{}", err(&o));
    let recipient = out(&o).trim().to_string();
    let gw = TestGateway::start_with("", "", |t| {
        t.replace(
            "[audit]\n",
            &format!("[audit]\nseal_originals_to = \"{recipient}\"\n"),
        )
    })
    .await;
    let alice = gw.token("alice", &["analysts"]);
    let sql = format!("select count(*) from customers where ssn = '{SSN}'");
    let o = gw.psql("alice", &alice, &[&sql]).await;
    assert!(o.status.success(), "{}", err(&o));
    let events = support::events(&gw).await;
    let command = events
        .iter()
        .find(|e| {
            e["kind"] == "command"
                && e["data"]["sql"]
                    .as_str()
                    .is_some_and(|s| s.contains("count(*)"))
        })
        .expect("the statement is recorded");
    assert_eq!(
        command["data"]["sql"],
        format!("select count(*) from customers where ssn = '{SSN_MASKED}'")
    );
    assert!(command["data"]["sealed_originals"]
        .as_str()
        .is_some_and(|s| s.starts_with("-----BEGIN AGE ENCRYPTED FILE-----")));
    assert!(!command.to_string().contains(SSN));
    let seq = command["seq"].as_u64().unwrap().to_string();
    let (_dir, config) = gw.stop().await;
    let o = gatehouse(&[
        "--config",
        config.to_str().unwrap(),
        "reveal",
        &seq,
        "--identity",
        identity.to_str().unwrap(),
        "--offline",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let opened: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(
        opened["fields"]["/sql"], sql,
        "the investigator reads the original"
    );
}
