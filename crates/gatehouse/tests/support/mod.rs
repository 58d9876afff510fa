//! Test harness: one real PostgreSQL cluster per test binary, one
//! in-process gateway per test, and the real command-line clients.
#![allow(dead_code)]

use gatehouse::config::GatewayConfig;
use gatehouse::gateway::RunningGateway;
use gatehouse_testbed::pgcluster::{PgAuth, PgCluster, PgClusterOptions};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The shared target database.
pub struct Target {
    pub cluster: PgCluster,
    pub app_password: String,
}

static TARGET: OnceLock<Target> = OnceLock::new();

/// The role the gateway logs in as.
pub const APP_ROLE: &str = "gatehouse_app";

/// Start (once) a SCRAM cluster holding the demo bank.
pub fn target() -> &'static Target {
    TARGET.get_or_init(|| {
        let cluster = PgCluster::start(PgClusterOptions {
            auth: PgAuth::Scram,
            ..PgClusterOptions::default()
        })
        .expect("start PostgreSQL (run scripts/test.sh to install it)");
        cluster.stop_when_process_exits(std::process::id());
        let app_password = "app-secret-for-tests".to_string();
        cluster
            .create_role(APP_ROLE, &app_password, false)
            .expect("create role");
        cluster
            .create_database("bank", APP_ROLE)
            .expect("create db");
        let schema = gatehouse::demo_data::demo_schema_sql(60);
        cluster
            .psql("bank", &format!("SET ROLE {APP_ROLE};\n{schema}"))
            .expect("load demo schema");
        Target {
            cluster,
            app_password,
        }
    })
}

/// A running gateway with its own state folder.
pub struct TestGateway {
    pub gw: RunningGateway,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

/// Configuration text for a gateway in front of the shared target.
pub fn config_text(dir: &Path, extra_top: &str, extra: &str) -> String {
    let t = target();
    let pw = dir.join("target.pw");
    std::fs::write(&pw, &t.app_password).unwrap();
    format!(
        r#"state_dir = "state"
{extra_top}

[postgres]
listen = "127.0.0.1:0"
result_capture_rows = 3

[api]
listen = "127.0.0.1:0"

[audit]
checkpoint_every = 20
checkpoint_interval_secs = 1

[[connections]]
name = "bank"
type = "postgres"
host = "127.0.0.1"
port = {port}
database = "bank"
user = "{APP_ROLE}"
password_file = "{pw}"
allow_groups = ["analysts", "dba"]

{extra}
{policy}"#,
        port = t.cluster.port(),
        pw = pw.display(),
        policy = gatehouse::demo::DEMO_POLICY,
    )
}

impl TestGateway {
    /// Start a gateway with the demo policy plus `extra` TOML.
    pub async fn start(extra_top: &str, extra: &str) -> TestGateway {
        Self::start_with(extra_top, extra, |t| t).await
    }

    /// Start a gateway whose configuration text is edited first.
    pub async fn start_with(
        extra_top: &str,
        extra: &str,
        edit: impl FnOnce(String) -> String,
    ) -> TestGateway {
        Self::start_in(extra_top, extra, |_, text| edit(text)).await
    }

    /// Start a gateway with `policy(state_folder)` (connections, rules,
    /// masking) placed before the demo rules, so its rules are tried first.
    pub async fn start_with_policy(
        extra_top: &str,
        policy: impl FnOnce(&Path) -> String,
    ) -> TestGateway {
        Self::start_with_policy_edited(extra_top, policy, |t| t).await
    }

    /// [`start_with_policy`](Self::start_with_policy) whose whole
    /// configuration text is then edited.
    pub async fn start_with_policy_edited(
        extra_top: &str,
        policy: impl FnOnce(&Path) -> String,
        edit: impl FnOnce(String) -> String,
    ) -> TestGateway {
        Self::start_in(extra_top, "", |dir, text| {
            let at = text.find("[[rules]]").expect("the demo policy has rules");
            let mut t = text.clone();
            t.insert_str(at, &policy(dir));
            edit(t)
        })
        .await
    }

    async fn start_in(
        extra_top: &str,
        extra: &str,
        edit: impl FnOnce(&Path, String) -> String,
    ) -> TestGateway {
        Self::start_config(|dir| edit(dir, config_text(dir, extra_top, extra))).await
    }

    /// Start a gateway whose whole configuration is `text(state folder)`:
    /// no demo policy, no bank connection, only what `text` says.
    pub async fn start_config(text: impl FnOnce(&Path) -> String) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let text = text(dir.path());
        let config_path = dir.path().join("gatehouse.toml");
        std::fs::write(&config_path, &text).unwrap();
        let cfg = GatewayConfig::load(&config_path).unwrap();
        let gw = tokio::time::timeout(Duration::from_secs(30), RunningGateway::start(&cfg))
            .await
            .expect("gateway start timed out")
            .expect("gateway starts");
        TestGateway {
            gw,
            dir,
            config_path,
        }
    }

    /// A dev-issuer token.
    pub fn token(&self, subject: &str, groups: &[&str]) -> String {
        self.token_ttl(subject, groups, Duration::from_secs(600))
    }

    /// A dev-issuer token with a lifetime.
    pub fn token_ttl(&self, subject: &str, groups: &[&str], ttl: Duration) -> String {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        self.gw
            .dev_issuer
            .as_ref()
            .unwrap()
            .issue(
                subject,
                &groups,
                None,
                ttl,
                gatehouse_identity::DEV_AUDIENCE,
            )
            .unwrap()
    }

    pub fn port(&self) -> u16 {
        self.gw.postgres_addr.port()
    }

    /// Run the real psql through the gateway (TLS), one `-c` per command.
    pub async fn psql(&self, user: &str, token: &str, commands: &[&str]) -> Output {
        self.psql_opts(user, token, "require", commands, &[]).await
    }

    /// psql with an sslmode and extra arguments.
    pub async fn psql_opts(
        &self,
        user: &str,
        token: &str,
        sslmode: &str,
        commands: &[&str],
        extra: &[&str],
    ) -> Output {
        self.psql_command(user, token, sslmode, commands, extra)
            .await
    }

    /// psql running in the background (it may be waiting on an approval).
    pub fn psql_background(
        &self,
        user: &str,
        token: &str,
        commands: &[&str],
        extra: &[&str],
    ) -> tokio::task::JoinHandle<Output> {
        tokio::spawn(self.psql_command(user, token, "require", commands, extra))
    }

    fn psql_command(
        &self,
        user: &str,
        token: &str,
        sslmode: &str,
        commands: &[&str],
        extra: &[&str],
    ) -> impl std::future::Future<Output = Output> + Send + 'static {
        let mut cmd = tokio::process::Command::new("psql");
        cmd.env("PGPASSWORD", token)
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGSERVICE")
            .arg("-X")
            .arg("-A")
            .arg("-F")
            .arg("|")
            .arg(format!(
                "host=127.0.0.1 port={} user={user} dbname=bank sslmode={sslmode}",
                self.port()
            ))
            .kill_on_drop(true);
        for c in commands {
            cmd.arg("-c").arg(c);
        }
        cmd.args(extra);
        async move {
            tokio::time::timeout(Duration::from_secs(180), cmd.output())
                .await
                .expect("psql timed out")
                .expect("psql runs")
        }
    }

    /// Approve or deny request `id` through the JSON API as `token`.
    pub async fn decide(
        &self,
        id: u64,
        token: &str,
        verb: &str,
        reason: &str,
    ) -> (u16, serde_json::Value) {
        self.api(
            "POST",
            &format!("/api/v1/approvals/{id}/{verb}"),
            token,
            Some(serde_json::json!({ "reason": reason })),
        )
        .await
    }

    /// Run the gatehouse binary against this gateway's configuration.
    pub async fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.arg("--config")
            .arg(&self.config_path)
            .args(args)
            .env_remove("GATEHOUSE_CONFIG");
        tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .expect("cli timed out")
            .expect("cli runs")
    }

    /// Stop the gateway (signs the final checkpoint).
    pub async fn stop(self) -> (tempfile::TempDir, PathBuf) {
        self.gw.shutdown().await;
        (self.dir, self.config_path)
    }

    /// The API's base URL.
    pub fn api_url(&self) -> String {
        format!("https://{}", self.gw.api_addr)
    }

    /// The gateway's self-signed certificate, for clients to trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("state").join("tls-cert.pem")
    }

    /// An HTTPS client trusting the gateway's certificate.
    pub fn http(&self) -> reqwest::Client {
        let pem = std::fs::read(self.ca_file()).unwrap();
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// Call the JSON API as `token`; returns (status, body).
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.api_url());
        let mut req = match method {
            "POST" => self.http().post(url),
            _ => self.http().get(url),
        }
        .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("API reachable");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or_default())
    }

    /// Run the gatehouse CLI as an API client (`approvals`, `access`) with
    /// `token`, the way a person would: address, token and CA from the
    /// environment.
    pub async fn cli_as(&self, token: &str, args: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.args(args)
            .env("GATEHOUSE_URL", self.api_url())
            .env("GATEHOUSE_TOKEN", token)
            .env("GATEHOUSE_CA_FILE", self.ca_file())
            .env_remove("GATEHOUSE_CONFIG");
        tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .expect("cli timed out")
            .expect("cli runs")
    }

    /// Wait (bounded) for a pending request visible to `token`; its JSON.
    pub async fn pending_request(&self, token: &str) -> serde_json::Value {
        for _ in 0..200 {
            let (status, body) = self
                .api("GET", "/api/v1/approvals?status=pending", token, None)
                .await;
            assert_eq!(status, 200, "{body}");
            if let Some(r) = body["requests"].as_array().and_then(|a| a.first()) {
                return r.clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no pending approval request appeared");
    }

    pub fn audit_db(&self) -> PathBuf {
        self.dir.path().join("state").join("audit.db")
    }
}

/// Allow plaintext MySQL logins from loopback (for hand-made packets).
pub fn my_plaintext(text: String) -> String {
    text.replace("[mysql]\n", "[mysql]\nallow_plaintext_loopback = true\n")
}

/// Allow plaintext from loopback (for raw-protocol and NoTls clients).
pub fn plaintext(text: String) -> String {
    text.replace(
        "[postgres]\n",
        "[postgres]\nallow_plaintext_loopback = true\n",
    )
}

/// stdout as text.
pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Export the audit trail as parsed JSON events (through the CLI).
pub async fn events(gw: &TestGateway) -> Vec<serde_json::Value> {
    // Results are recorded just after they stream; give the writer a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let o = gw.cli(&["audit", "export", "--format", "jsonl"]).await;
    assert!(o.status.success(), "export failed: {}", err(&o));
    out(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The next whole message from a raw-protocol socket (bounded wait).
pub async fn read_frame(
    s: &mut TcpStream,
    buf: &mut bytes::BytesMut,
) -> gatehouse_postgres::codec::Frame {
    loop {
        if let Some(f) = gatehouse_postgres::codec::frame::take_tagged(buf, 1 << 20).unwrap() {
            return f;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read_buf(buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "gateway closed the connection early");
    }
}

/// Log in with a hand-made start-up and password exchange (plaintext
/// gateway), returning the socket and any bytes read past ReadyForQuery.
pub async fn login_raw(gw: &TestGateway, user: &str, group: &str) -> (TcpStream, bytes::BytesMut) {
    use gatehouse_postgres::codec::frontend;
    let token = gw.token(user, &[group]);
    let mut s = TcpStream::connect(gw.gw.postgres_addr).await.unwrap();
    s.write_all(&frontend::startup(&[("user", user), ("database", "bank")]))
        .await
        .unwrap();
    let mut buf = bytes::BytesMut::new();
    assert_eq!(read_frame(&mut s, &mut buf).await.tag, b'R');
    s.write_all(&frontend::password(&token)).await.unwrap();
    while read_frame(&mut s, &mut buf).await.tag != b'Z' {}
    (s, buf)
}

// ---- MariaDB -------------------------------------------------------------

use gatehouse_testbed::mariadbcluster::{MariaDbAuth, MariaDbCluster};

/// The shared MariaDB target, holding the demo bank in database `bank`.
pub struct MyTarget {
    pub server: MariaDbCluster,
    pub app_password: String,
}

static MY_TARGET: OnceLock<MyTarget> = OnceLock::new();

/// The gateway's account on MariaDB.
pub const MY_APP_USER: &str = "gatehouse_app";
/// The MySQL connection's name (what clients give as the database).
pub const MY_CONNECTION: &str = "bank_mysql";

/// Start (once) a MariaDB server holding the demo bank.
pub fn my_target() -> &'static MyTarget {
    MY_TARGET.get_or_init(|| {
        let server = MariaDbCluster::start()
            .expect("start MariaDB (run scripts/test.sh to install mariadb-server)");
        server.stop_when_process_exits(std::process::id());
        let app_password = "app-secret-for-mysql-tests".to_string();
        server
            .create_user_and_database(MY_APP_USER, &app_password, "bank", MariaDbAuth::Native)
            .expect("create account");
        server
            .sql("bank", &gatehouse::demo_data::demo_schema_sql_mysql(60))
            .expect("load demo schema");
        MyTarget {
            server,
            app_password,
        }
    })
}

/// Configuration text for a gateway in front of the shared MariaDB only.
pub fn my_config_text(dir: &Path, extra_top: &str, extra: &str) -> String {
    let t = my_target();
    let pw = dir.join("mysql-target.pw");
    std::fs::write(&pw, &t.app_password).unwrap();
    format!(
        r#"state_dir = "state"
{extra_top}

[postgres]
listen = "127.0.0.1:0"

[mysql]
listen = "127.0.0.1:0"
result_capture_rows = 3

[api]
listen = "127.0.0.1:0"

[audit]
checkpoint_every = 20
checkpoint_interval_secs = 1

[[connections]]
name = "{MY_CONNECTION}"
type = "mysql"
host = "127.0.0.1"
port = {port}
database = "bank"
user = "{MY_APP_USER}"
password_file = "{pw}"
allow_groups = ["analysts", "dba"]

{extra}
{policy}"#,
        port = t.server.port(),
        pw = pw.display(),
        policy = gatehouse::demo::DEMO_POLICY,
    )
}

impl TestGateway {
    /// Start a gateway in front of MariaDB with the demo policy plus `extra`.
    pub async fn start_mysql(extra_top: &str, extra: &str) -> TestGateway {
        Self::start_mysql_with(extra_top, extra, |t| t).await
    }

    /// Start a gateway in front of MariaDB whose configuration is edited first.
    pub async fn start_mysql_with(
        extra_top: &str,
        extra: &str,
        edit: impl FnOnce(String) -> String,
    ) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let text = edit(my_config_text(dir.path(), extra_top, extra));
        let config_path = dir.path().join("gatehouse.toml");
        std::fs::write(&config_path, &text).unwrap();
        let cfg = GatewayConfig::load(&config_path).unwrap();
        let gw = tokio::time::timeout(Duration::from_secs(30), RunningGateway::start(&cfg))
            .await
            .expect("gateway start timed out")
            .expect("gateway starts");
        TestGateway {
            gw,
            dir,
            config_path,
        }
    }

    pub fn mysql_port(&self) -> u16 {
        self.gw.mysql_addr.expect("mysql listener").port()
    }

    /// Run the real `mariadb` client through the gateway over TLS with the
    /// token as a cleartext password (MariaDB's client allows the cleartext
    /// plugin by default; Oracle's needs `--enable-cleartext-plugin`); one `-e` with all `sql`.
    pub async fn mariadb(&self, user: &str, token: &str, sql: &str) -> Output {
        self.mariadb_args(user, token, sql, &[]).await
    }

    /// `mariadb` with extra arguments.
    pub async fn mariadb_args(&self, user: &str, token: &str, sql: &str, extra: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::new("mariadb");
        cmd.arg("--no-defaults")
            .arg("--ssl")
            .arg("--batch")
            .arg("-h127.0.0.1")
            .arg(format!("-P{}", self.mysql_port()))
            .arg(format!("-u{user}"))
            .arg(format!("-D{MY_CONNECTION}"))
            .arg("--connect-timeout=10")
            .env("MYSQL_PWD", token)
            .args(extra)
            .arg("-e")
            .arg(sql);
        tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .expect("mariadb timed out")
            .expect("mariadb runs")
    }
}

/// Where the browser tests' node scripts live.
pub const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser");

/// Whether Chromium and playwright-core are installed; a CI run
/// (`GATEHOUSE_REQUIRE_BROWSER=1`) fails instead of skipping.
pub fn browser_ready() -> bool {
    let missing = if !Path::new("/usr/bin/chromium").exists() {
        Some("/usr/bin/chromium is not installed")
    } else if !Path::new(BROWSER_DIR)
        .join("node_modules/playwright-core")
        .exists()
    {
        Some("playwright-core is not installed (npm ci in tests/browser)")
    } else {
        None
    };
    match missing {
        None => true,
        Some(why) => {
            assert!(
                std::env::var("GATEHOUSE_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "browser test required but {why}"
            );
            eprintln!("SKIPPED a browser check: {why}");
            false
        }
    }
}

/// Run tmux with `args`; its standard output.
pub fn tmux(args: &[&str]) -> String {
    let o = std::process::Command::new("tmux")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Wait (bounded) until `needle` shows in a tmux pane; the screen.
pub async fn wait_for_screen(session: &str, needle: &str) -> String {
    let mut screen = String::new();
    for _ in 0..150 {
        screen = tmux(&["capture-pane", "-p", "-t", session]);
        if screen.contains(needle) {
            return screen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{needle:?} never appeared on the screen:\n{screen}");
}

/// Wait (bounded) until a tmux session has ended, then make sure it has.
pub async fn wait_tmux_closed(session: &str) {
    for _ in 0..100 {
        if !std::process::Command::new("tmux")
            .args(["has-session", "-t", session])
            .status()
            .unwrap()
            .success()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tmux(&["kill-session", "-t", session]);
}

/// A 4 MiB tmpfs to fill up, for the fail-closed tests: the audit trail
/// (store and journal) is put on it with [`SmallFs::audit_on_it`], and
/// [`SmallFs::fill`] makes every new write fail with ENOSPC, as a full disk
/// does. Mounting needs root: None elsewhere, and a CI run (which is root)
/// fails instead of skipping.
pub struct SmallFs {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallFs {
    pub fn mount() -> Option<SmallFs> {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        if !root {
            assert!(
                std::env::var_os("CI").is_none(),
                "the full-disk tests mount a tmpfs and must run as root in CI"
            );
            eprintln!("skipped: needs root to mount a small file system");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(ok.success(), "mount a 4 MiB tmpfs");
        Some(SmallFs {
            path: dir.path().to_path_buf(),
            _dir: dir,
        })
    }

    /// Edit a configuration so the audit trail lives here.
    pub fn audit_on_it(&self, text: String) -> String {
        text.replacen(
            "[audit]\n",
            &format!("[audit]\npath = \"{}/audit.db\"\n", self.path.display()),
            1,
        )
    }

    /// Fill the file system to its last byte.
    pub fn fill(&self) {
        let _ = std::process::Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", self.path.join("filler").display()))
            .stderr(std::process::Stdio::null())
            .status();
    }

    /// Give the room back.
    pub fn free(&self) {
        std::fs::remove_file(self.path.join("filler")).unwrap();
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}
