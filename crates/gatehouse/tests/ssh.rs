//! SSH through the gateway, end to end: a real OpenSSH sshd on 127.0.0.1
//! (started here, with its own host key), the real `ssh`, `scp` and `sftp`
//! clients with the token supplied by `sshpass`, and an interactive shell
//! driven through tmux.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use gatehouse_testbed::sshtarget::{self, SshTarget};
use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;
use support::*;

const TARGET_USER: &str = "gatehouse-ssh-test";

fn ssh_target() -> &'static SshTarget {
    static T: OnceLock<SshTarget> = OnceLock::new();
    T.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("gatehouse-sshd-{}", std::process::id()));
        let t = SshTarget::start(&dir, TARGET_USER, "target-password-only-the-gateway-knows")
            .expect("start sshd (run scripts/test.sh to install openssh-server)");
        t.stop_when_process_exits(std::process::id());
        std::fs::write(
            t.home.join("customers.txt"),
            "name: Ada Lovelace\nssn: 123-45-6789\n",
        )
        .unwrap();
        t
    })
}

fn ssh_config(target: &SshTarget, dir: &Path) -> (String, String) {
    let pw = dir.join("ssh-target.pw");
    std::fs::write(&pw, &target.password).unwrap();
    // A key the gateway logs in with, authorized on the target, and the
    // target's host key in a known_hosts file (the other two ways to configure).
    let key = dir.join("gateway-key");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let public = std::fs::read_to_string(dir.join("gateway-key.pub")).unwrap();
    let mut authorized = std::fs::read_to_string(&target.authorized_keys).unwrap_or_default();
    authorized.push_str(&public);
    std::fs::write(&target.authorized_keys, authorized).unwrap();
    let known_hosts = dir.join("target_known_hosts");
    std::fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{} {}\n", target.port, target.host_key),
    )
    .unwrap();
    let top = "[ssh]\nlisten = \"127.0.0.1:0\"\n".to_string();
    let extra = format!(
        r#"[[connections]]
name = "bank-host"
type = "ssh"
host = "127.0.0.1"
port = {port}
user = "{user}"
password_file = "{pw}"
host_key = "{key}"
allow_groups = ["ops"]
mask_terminal = true

[[connections]]
name = "impostor-host"
type = "ssh"
host = "127.0.0.1"
port = {port}
user = "{user}"
password_file = "{pw}"
host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHFu7OHd1PCfJ3Zm4mBJr5E5q8ldYMbz7N0j1bmr0kz1"
allow_groups = ["ops"]

[[connections]]
name = "bank-host-by-key"
type = "ssh"
host = "127.0.0.1"
port = {port}
user = "{user}"
key_file = "{{key}}"
known_hosts = "{{known_hosts}}"
allow_groups = ["ops"]

[[rules]]
name = "no-rm-rf"
effect = "block"
message = "recursive forced deletes are not allowed through the gateway"
connections = ["bank-host"]
pattern = '(?i)\brm\b[^;&|]*\s(-[a-z]*r|--recursive)'

[[rules]]
name = "sudo-needs-approval"
effect = "approve"
message = "sudo on bank hosts needs a second person"
connections = ["bank-host"]
keywords = ["sudo"]
approvers = ["approvers"]

[[rules]]
name = "disk-images-may-be-fetched"
effect = "allow"
connections = ["bank-host"]
kinds = ["binary"]
pattern = '\.img$'

[[rules]]
name = "no-uploads-to-etc"
effect = "block"
message = "files may not be uploaded to /etc"
connections = ["bank-host"]
kinds = ["upload"]
pattern = "/etc/"
"#,
        port = target.port,
        user = target.user,
        pw = pw.display(),
        key = target.host_key,
    );
    let extra = extra
        .replace("{key}", &key.display().to_string())
        .replace("{known_hosts}", &known_hosts.display().to_string());
    (top, extra)
}

async fn gateway() -> TestGateway {
    gateway_with("").await
}

async fn gateway_with(more_top: &str) -> TestGateway {
    let target = ssh_target();
    let holder = tempfile::tempdir().unwrap();
    let (top, extra) = ssh_config(target, holder.path());
    // The password file must outlive the gateway: keep the folder.
    std::mem::forget(holder);
    TestGateway::start(&format!("{top}\n{more_top}"), &extra).await
}

/// The console with a dev sign-in for an auditor, who may replay any session.
const CONSOLE: &str = r#"
[console]
auditor_groups = ["auditors"]
[[console.dev_identities]]
subject = "audrey"
groups = ["auditors"]
"#;

/// Whether sshd can run here; a CI run (`GATEHOUSE_REQUIRE_SSH=1`) fails
/// instead of skipping.
fn sshd_ready() -> bool {
    if sshtarget::available() {
        return true;
    }
    assert!(
        std::env::var("GATEHOUSE_REQUIRE_SSH").as_deref() != Ok("1"),
        "SSH tests required but sshd is not installed or this is not root"
    );
    eprintln!("SKIPPED: sshd is not installed or this is not root");
    false
}

fn ssh_port(gw: &TestGateway) -> u16 {
    gw.gw.ssh_addr.expect("ssh listener").port()
}

/// The gateway's host key line for a client's known_hosts.
fn known_hosts(gw: &TestGateway) -> std::path::PathBuf {
    let key = gw.dir.path().join("state").join("ssh_host_ed25519_key");
    let o = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success());
    let path = gw.dir.path().join("known_hosts");
    std::fs::write(
        &path,
        format!(
            "[127.0.0.1]:{} {}",
            ssh_port(gw),
            String::from_utf8_lossy(&o.stdout).trim()
        ),
    )
    .unwrap();
    path
}

fn client_opts(gw: &TestGateway) -> Vec<String> {
    vec![
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        format!("UserKnownHostsFile={}", known_hosts(gw).display()),
        "-o".into(),
        "PubkeyAuthentication=no".into(),
        "-o".into(),
        "PreferredAuthentications=password".into(),
        "-o".into(),
        "ConnectTimeout=10".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
    ]
}

/// The `session.end` event of `session`, once recorded (it follows the
/// client's exit by a moment).
async fn session_end(gw: &TestGateway, session: &str) -> serde_json::Value {
    for _ in 0..100 {
        let evs = support::events(gw).await;
        if let Some(end) = of_kind(&evs, "session.end")
            .into_iter()
            .find(|e| e["session_id"] == session)
        {
            return end.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no session.end for {session}");
}

async fn run(cmd: &mut tokio::process::Command) -> Output {
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("client timed out")
        .expect("client runs")
}

/// `ssh CONNECTION@gateway COMMAND` with the token as the password.
async fn ssh(gw: &TestGateway, token: &str, connection: &str, command: &str) -> Output {
    let mut cmd = tokio::process::Command::new("sshpass");
    cmd.arg("-e")
        .env("SSHPASS", token)
        .arg("ssh")
        .args(client_opts(gw))
        .arg("-p")
        .arg(ssh_port(gw).to_string())
        .arg(format!("{connection}@127.0.0.1"))
        .arg(command)
        .stdin(std::process::Stdio::null());
    run(&mut cmd).await
}

fn of_kind<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_block_mask_and_host_key_pinning() {
    if !sshd_ready() {
        return;
    }
    let gw = gateway().await;
    let tok = gw.token("olga", &["ops"]);

    // A command runs as the target user; the client never had its password.
    let o = ssh(&gw, &tok, "bank-host", "echo hello; whoami").await;
    assert!(o.status.success(), "ssh failed: {}", err(&o));
    assert_eq!(out(&o), format!("hello\n{TARGET_USER}\n"));

    // The gateway's own key and a known_hosts file work as well.
    let o = ssh(&gw, &tok, "bank-host-by-key", "whoami").await;
    assert!(o.status.success(), "key login: {}", err(&o));
    assert_eq!(out(&o).trim(), TARGET_USER);

    // Exit status passes through; so does stderr.
    let o = ssh(&gw, &tok, "bank-host", "echo oops >&2; exit 3").await;
    assert_eq!(o.status.code(), Some(3));
    assert!(err(&o).contains("oops"));

    // Environment passing reaches sshd (AcceptEnv GATEHOUSE_*).
    let mut cmd = tokio::process::Command::new("sshpass");
    cmd.arg("-e")
        .env("SSHPASS", &tok)
        .env("GATEHOUSE_TEST_VAR", "carried")
        .arg("ssh")
        .args(client_opts(&gw))
        .args(["-o", "SendEnv=GATEHOUSE_TEST_VAR", "-p"])
        .arg(ssh_port(&gw).to_string())
        .arg("bank-host@127.0.0.1")
        .arg("echo $GATEHOUSE_TEST_VAR");
    let o = run(&mut cmd).await;
    assert_eq!(out(&o).trim(), "carried", "{}", err(&o));

    // A deny-listed command never reaches the target.
    let marker = ssh_target().home.join("keep-me");
    std::fs::create_dir_all(&marker).unwrap();
    let o = ssh(
        &gw,
        &tok,
        "bank-host",
        &format!("rm -rf {}", marker.display()),
    )
    .await;
    assert_eq!(o.status.code(), Some(126), "{}", err(&o));
    assert!(
        err(&o).contains("blocked by rule \"no-rm-rf\""),
        "{}",
        err(&o)
    );
    assert!(marker.exists(), "the blocked command did not run");

    // Output is masked on the way to the user (mask_terminal) and in the recording.
    let o = ssh(&gw, &tok, "bank-host", "cat customers.txt").await;
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("Ada Lovelace"));
    assert!(!out(&o).contains("123-45-6789"), "{}", out(&o));
    assert!(out(&o).contains("6789"), "partial mask keeps the last 4");

    // A wrong token gets nowhere.
    let o = ssh(&gw, "not-a-token", "bank-host", "true").await;
    assert_eq!(o.status.code(), Some(255));

    // Not in an allowed group: told why, in words.
    let outsider = gw.token("eve", &["analysts"]);
    let o = ssh(&gw, &outsider, "bank-host", "true").await;
    assert_eq!(o.status.code(), Some(255));
    assert!(err(&o).contains("not in a group allowed"), "{}", err(&o));

    // A target presenting another host key than the pinned one is refused.
    let o = ssh(&gw, &tok, "impostor-host", "echo should-not-run").await;
    assert_ne!(o.status.code(), Some(0));
    assert!(err(&o).contains("presented host key"), "{}", err(&o));
    assert!(!out(&o).contains("should-not-run"));

    // Port forwarding is refused unless the connection allows it.
    let mut cmd = tokio::process::Command::new("sshpass");
    cmd.arg("-e")
        .env("SSHPASS", &tok)
        .arg("ssh")
        .args(client_opts(&gw))
        .arg("-p")
        .arg(ssh_port(&gw).to_string())
        .args(["-W", &format!("127.0.0.1:{}", ssh_target().port)])
        .arg("bank-host@127.0.0.1")
        .stdin(std::process::Stdio::null());
    let o = run(&mut cmd).await;
    assert_ne!(o.status.code(), Some(0));

    let events = events(&gw).await;
    let commands = of_kind(&events, "command");
    let blocked = commands
        .iter()
        .find(|e| {
            e["data"]["command"]
                .as_str()
                .is_some_and(|c| c.starts_with("rm -rf"))
        })
        .expect("blocked command recorded");
    assert_eq!(blocked["data"]["verdict"]["effect"], "block");
    assert_eq!(blocked["data"]["verdict"]["rule"], "no-rm-rf");
    assert!(of_kind(&events, "auth.failure")
        .iter()
        .any(|e| e["data"]["protocol"] == "ssh"));
    assert!(of_kind(&events, "access.denied")
        .iter()
        .any(|e| e["data"]["protocol"] == "ssh"));
    assert!(of_kind(&events, "ssh.forward")
        .iter()
        .any(|e| e["data"]["allowed"] == false));
    // Every exec channel's recording is chained with its digest, masked.
    let recordings = of_kind(&events, "recording");
    assert!(recordings.len() >= 3, "{recordings:?}");
    let cat = recordings
        .iter()
        .find(|e| e["data"]["masked"]["ssn"].as_u64() == Some(1))
        .expect("the cat recording masked one SSN");
    let file = gw
        .dir
        .path()
        .join("state/recordings")
        .join(cat["data"]["file"].as_str().unwrap());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("123-45-6789"));
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(text.as_bytes())),
        cat["data"]["sha256"].as_str().unwrap()
    );
    // No event holds the target's password or the user's token.
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(&ssh_target().password));
    assert!(!all.contains(&tok));
    let o = gw.cli(&["audit", "verify"]).await;
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_and_sftp_transfers_are_recorded_and_ruled() {
    if !sshd_ready() {
        return;
    }
    let gw = gateway().await;
    let tok = gw.token("olga", &["ops"]);
    let port = ssh_port(&gw).to_string();
    let local = gw.dir.path().join("upload.txt");
    std::fs::write(&local, "x".repeat(5000)).unwrap();
    let home = &ssh_target().home;

    // Legacy scp protocol (-O): an exec of `scp -t` on the target.
    let mut cmd = tokio::process::Command::new("sshpass");
    cmd.arg("-e")
        .env("SSHPASS", &tok)
        .arg("scp")
        .arg("-O")
        .args(client_opts(&gw))
        .args(["-P", &port])
        .arg(&local)
        .arg("bank-host@127.0.0.1:scp-legacy.txt");
    let o = run(&mut cmd).await;
    assert!(o.status.success(), "scp -O: {}", err(&o));
    assert_eq!(
        std::fs::read(home.join("scp-legacy.txt")).unwrap().len(),
        5000
    );

    // Default scp (SFTP protocol), upload then download.
    let mut cmd = tokio::process::Command::new("sshpass");
    cmd.arg("-e")
        .env("SSHPASS", &tok)
        .arg("scp")
        .args(client_opts(&gw))
        .args(["-P", &port])
        .arg(&local)
        .arg("bank-host@127.0.0.1:scp-sftp.txt");
    let o = run(&mut cmd).await;
    assert!(o.status.success(), "scp: {}", err(&o));
    let back = gw.dir.path().join("back.txt");
    let mut cmd = tokio::process::Command::new("sshpass");
    cmd.arg("-e")
        .env("SSHPASS", &tok)
        .arg("scp")
        .args(client_opts(&gw))
        .args(["-P", &port])
        .arg("bank-host@127.0.0.1:scp-sftp.txt")
        .arg(&back);
    let o = run(&mut cmd).await;
    assert!(o.status.success(), "scp download: {}", err(&o));
    assert_eq!(std::fs::read(&back).unwrap().len(), 5000);

    // sftp reading commands from stdin (batch mode -b would forbid the
    // password prompt); an upload to /etc is refused by rule.
    let commands = format!(
        "put {} sftp-up.txt\nput {} /etc/gatehouse-should-not-exist\nput {} /tmp/gatehouse-moved\nrename /tmp/gatehouse-moved /tmp/../etc/gatehouse-should-not-exist\nls\nbye\n",
        local.display(),
        local.display(),
        local.display()
    );
    let mut cmd = tokio::process::Command::new("sshpass");
    cmd.arg("-e")
        .env("SSHPASS", &tok)
        .arg("sftp")
        .args(client_opts(&gw))
        .args(["-P", &port])
        .arg("bank-host@127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(commands.as_bytes()).await.unwrap();
    }
    let o = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(o.status.success(), "sftp: {}{}", out(&o), err(&o));
    assert!(home.join("sftp-up.txt").exists());
    // Neither a direct upload nor a rename through `..` lands in /etc.
    assert!(!Path::new("/etc/gatehouse-should-not-exist").exists());
    let _ = std::fs::remove_file("/tmp/gatehouse-moved");
    assert!(
        err(&o).to_lowercase().contains("permission denied"),
        "{}",
        err(&o)
    );

    let events = events(&gw).await;
    let commands = of_kind(&events, "command");
    assert!(
        commands.iter().any(|e| e["data"]["kind"] == "upload"
            && e["data"]["command"]
                .as_str()
                .is_some_and(|c| c.starts_with("scp ") && c.contains("scp-legacy.txt"))),
        "{commands:?}"
    );
    assert!(
        commands.iter().any(|e| e["data"]["command"]
            == "sftp rename /tmp/gatehouse-moved /etc/gatehouse-should-not-exist"
            && e["data"]["verdict"]["effect"] == "block"),
        "the rename is judged with its path normalised: {commands:?}"
    );
    let results = of_kind(&events, "command.result");
    assert!(
        results
            .iter()
            .any(|e| e["data"]["transfer"]["bytes"].as_u64().unwrap_or(0) > 5000),
        "scp -t byte count: {results:?}"
    );
    let transfers = of_kind(&events, "file.transfer");
    for (path, direction) in [
        ("scp-sftp.txt", "upload"),
        ("scp-sftp.txt", "download"),
        ("sftp-up.txt", "upload"),
    ] {
        assert!(
            transfers.iter().any(|e| e["data"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(path))
                && e["data"]["direction"] == direction
                && e["data"]["bytes"] == 5000),
            "{path} {direction}: {transfers:?}"
        );
    }
    let refused = commands
        .iter()
        .find(|e| e["data"]["verdict"]["rule"] == "no-uploads-to-etc")
        .expect("refused upload recorded");
    assert_eq!(refused["data"]["path"], "/etc/gatehouse-should-not-exist");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_exec_runs_after_approval_and_keyboard_interactive_works() {
    if !sshd_ready() {
        return;
    }
    let gw = gateway().await;
    let tok = gw.token("olga", &["ops"]);
    let omar = gw.token("omar", &["approvers"]);
    let port = ssh_port(&gw).to_string();
    let opts = client_opts(&gw)
        .into_iter()
        .map(|o| {
            if o == "PreferredAuthentications=password" {
                "PreferredAuthentications=keyboard-interactive".to_string()
            } else {
                o
            }
        })
        .collect::<Vec<_>>();
    let held = tokio::spawn(async move {
        let mut cmd = tokio::process::Command::new("sshpass");
        cmd.args(["-P", "token", "-e"])
            .env("SSHPASS", &tok)
            .arg("ssh")
            .args(opts)
            .args(["-p", &port])
            .arg("bank-host@127.0.0.1")
            .arg("sudo -n true 2>/dev/null; echo ran-after-approval")
            .stdin(std::process::Stdio::null());
        run(&mut cmd).await
    });
    let request = gw.pending_request(&omar).await;
    let id = request["id"].as_u64().unwrap();
    assert_eq!(request["rule"], "sudo-needs-approval");
    let (status, body) = gw
        .api(
            "POST",
            &format!("/api/v1/approvals/{id}/approve"),
            &omar,
            Some(serde_json::json!({"reason": "maintenance window CHG-7"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let o = held.await.unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains(&format!("waiting for approval #{id}")),
        "{}",
        err(&o)
    );
    assert!(err(&o).contains("granted by omar"), "{}", err(&o));
    assert_eq!(out(&o).trim(), "ran-after-approval");
    let events = events(&gw).await;
    let cmd = of_kind(&events, "command")
        .into_iter()
        .find(|e| e["data"]["approval_request"] == id)
        .expect("held command recorded");
    assert_eq!(cmd["data"]["verdict"]["effect"], "hold");
    // An approved hold is not a blocked command; the end says how it ended.
    let end = session_end(&gw, cmd["session_id"].as_str().unwrap()).await;
    assert_eq!(end["data"]["blocked"], 0, "{end}");
    assert_eq!(end["data"]["reason"], "the client disconnected", "{end}");

    // Denied: never runs, stderr says who and why, non-zero exit.
    let tok = gw.token("olga", &["ops"]);
    let port = ssh_port(&gw).to_string();
    let opts = client_opts(&gw);
    let marker = ssh_target().home.join("denied-ran");
    let command = format!("sudo -n true; touch {}", marker.display());
    let held = tokio::spawn(async move {
        let mut cmd = tokio::process::Command::new("sshpass");
        cmd.arg("-e")
            .env("SSHPASS", &tok)
            .arg("ssh")
            .args(opts)
            .args(["-p", &port])
            .arg("bank-host@127.0.0.1")
            .arg(command)
            .stdin(std::process::Stdio::null());
        run(&mut cmd).await
    });
    let id = gw.pending_request(&omar).await["id"].as_u64().unwrap();
    let (status, body) = gw
        .api(
            "POST",
            &format!("/api/v1/approvals/{id}/deny"),
            &omar,
            Some(serde_json::json!({"reason": "no change ticket"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let o = held.await.unwrap();
    assert_eq!(o.status.code(), Some(126), "{}", err(&o));
    assert!(err(&o).contains("denied by omar"), "{}", err(&o));
    assert!(!marker.exists());
    let evs = support::events(&gw).await;
    let cmd = of_kind(&evs, "command")
        .into_iter()
        .find(|e| e["data"]["approval_request"] == id)
        .expect("denied command recorded");
    let end = session_end(&gw, cmd["session_id"].as_str().unwrap()).await;
    assert_eq!(end["data"]["blocked"], 1, "a denied hold counts: {end}");

    // The client hangs up while waiting: the request is withdrawn.
    let tok = gw.token("olga", &["ops"]);
    let mut cmd = tokio::process::Command::new("sshpass");
    cmd.arg("-e")
        .env("SSHPASS", &tok)
        .arg("ssh")
        .args(client_opts(&gw))
        .args(["-p", &ssh_port(&gw).to_string()])
        .arg("bank-host@127.0.0.1")
        .arg("sudo -n reboot")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap();
    let id = gw.pending_request(&omar).await["id"].as_u64().unwrap();
    drop(child);
    let mut withdrawn = false;
    for _ in 0..100 {
        let (_, body) = gw
            .api("GET", &format!("/api/v1/approvals/{id}"), &omar, None)
            .await;
        if body["status"] == "withdrawn" {
            withdrawn = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        withdrawn,
        "request #{id} was not withdrawn after the client hung up"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_shell_through_tmux_is_recorded_and_replays() {
    if !sshd_ready() {
        return;
    }
    let gw = gateway_with(CONSOLE).await;
    let tok = gw.token("olga", &["ops"]);
    let session = format!("gh-ssh-{}", std::process::id());
    let ssh_cmd = format!(
        "sshpass -e ssh {} -tt -p {} bank-host@127.0.0.1",
        client_opts(&gw).join(" "),
        ssh_port(&gw)
    );
    let started = std::process::Command::new("tmux")
        .env("TERM", "xterm-256color")
        .args(["new-session", "-d", "-x", "100", "-y", "30", "-s", &session])
        .arg("-e")
        .arg(format!("SSHPASS={tok}"))
        .arg(&ssh_cmd)
        .status()
        .unwrap();
    assert!(started.success());
    tmux(&["send-keys", "-t", &session, "export PS1='ready> '", "Enter"]);
    wait_for_screen(&session, "ready>").await;
    tmux(&["send-keys", "-t", &session, "echo typed-$((40+2))", "Enter"]);
    wait_for_screen(&session, "typed-42").await;
    tmux(&["send-keys", "-t", &session, "cat customers.txt", "Enter"]);
    wait_for_screen(&session, "Ada Lovelace").await;
    tmux(&[
        "send-keys",
        "-t",
        &session,
        "rm -rf ./nothing-here",
        "Enter",
    ]);
    let screen = wait_for_screen(&session, "blocked by rule").await;
    assert!(screen.contains("no-rm-rf"), "{screen}");
    tmux(&["resize-window", "-t", &session, "-x", "120", "-y", "40"]);
    // The window change reaches the target's PTY.
    tmux(&[
        "send-keys",
        "-t",
        &session,
        "echo size=$(stty size)",
        "Enter",
    ]);
    wait_for_screen(&session, "size=40 120").await;
    tmux(&["send-keys", "-t", &session, "exit", "Enter"]);
    wait_tmux_closed(&session).await;
    // The session end (with its recording) is recorded as the connection closes.
    let mut events = Vec::new();
    for _ in 0..50 {
        events = support::events(&gw).await;
        if events
            .iter()
            .any(|e| e["kind"] == "session.end" && e["data"]["protocol"] == "ssh")
        {
            break;
        }
    }
    let end = of_kind(&events, "session.end")
        .into_iter()
        .find(|e| e["data"]["protocol"] == "ssh")
        .expect("ssh session end recorded");
    assert_eq!(
        end["data"]["recordings"].as_array().map(|a| a.len()),
        Some(1),
        "the session end lists its recording: {end}"
    );
    let lines: Vec<_> = of_kind(&events, "command")
        .into_iter()
        .filter(|e| e["data"]["kind"] == "line")
        .collect();
    assert!(
        lines
            .iter()
            .any(|e| e["data"]["command"] == "echo typed-$((40+2))"
                && e["data"]["verdict"]["effect"] == "allow"),
        "{lines:?}"
    );
    assert!(lines
        .iter()
        .any(|e| e["data"]["command"] == "rm -rf ./nothing-here"
            && e["data"]["verdict"]["effect"] == "block"));
    let rec = of_kind(&events, "recording")
        .into_iter()
        .next()
        .expect("shell recording chained");
    let session_id = rec["session_id"].as_str().unwrap().to_string();
    let file = gw
        .dir
        .path()
        .join("state/recordings")
        .join(rec["data"]["file"].as_str().unwrap());
    let text = std::fs::read_to_string(&file).unwrap();
    let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert_eq!(header["width"], 100);
    assert!(text.contains(r#""i","echo typed-$((40+2))""#), "{text}");
    assert!(text.contains(r#""r","120x40""#), "{text}");
    assert!(!text.contains("123-45-6789"));

    // `sessions show` lists the lines and the recording.
    let o = gw.cli(&["sessions", "show", &session_id]).await;
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("line rm -rf ./nothing-here"),
        "{}",
        out(&o)
    );
    assert!(out(&o).contains("recording of channel 1"), "{}", out(&o));

    // Terminal replay checks the chained digest, then plays the output.
    let o = gw
        .cli(&["sessions", "replay", &session_id, "--speed", "50"])
        .await;
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("typed-42"));
    assert!(err(&o).contains("SHA-256 verified"));
    // The console replays it in a real browser with the vendored player.
    if browser_ready() {
        let shot = gw.dir.path().join("replay.png");
        let channel = rec["data"]["channel"].as_u64().unwrap().to_string();
        let o = tokio::time::timeout(
            Duration::from_secs(150),
            tokio::process::Command::new("node")
                .arg("replay.mjs")
                .args(["--console", &gw.api_url(), "--login", "audrey"])
                .args(["--session", &session_id, "--channel", &channel])
                .args(["--expect", "typed-42", "--screenshot"])
                .arg(&shot)
                .current_dir(BROWSER_DIR)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("the browser finished in time")
        .expect("node runs");
        assert!(
            o.status.success(),
            "replay.mjs failed:\n{}\n{}",
            out(&o),
            err(&o)
        );
        let result: serde_json::Value =
            serde_json::from_str(out(&o).lines().last().unwrap_or_default()).unwrap();
        assert!(result["commands"].as_u64().unwrap() >= 3, "{result}");
        if let Ok(keep) = std::env::var("GATEHOUSE_SCREENSHOT_DIR") {
            let _ = std::fs::copy(&shot, Path::new(&keep).join("ssh-replay.png"));
        }
    }
    // A recording altered after the fact is refused.
    std::fs::write(&file, text.replace("typed-42", "typed-43")).unwrap();
    let o = gw.cli(&["sessions", "replay", &session_id]).await;
    assert!(!o.status.success());
    assert!(err(&o).contains("altered"), "{}", err(&o));
    gw.stop().await;
}

/// Regression tests from review: spellings of a deny-listed command, and a
/// command dressed up as an scp transfer, are judged like any exec.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respelled_and_disguised_commands_are_still_judged() {
    if !sshd_ready() {
        return;
    }
    let gw = gateway().await;
    let tok = gw.token("olga", &["ops"]);
    let marker = ssh_target().home.join("keep-me-too");
    std::fs::create_dir_all(&marker).unwrap();
    let m = marker.display();
    for cmd in [
        format!("'rm' -rf {m}"),
        format!("/bin/rm -Rf {m}"),
        format!("rm -r -f {m}"),
        format!("rm --recursive --force {m}"),
        format!("true; rm -rf {m}"),
    ] {
        let o = ssh(&gw, &tok, "bank-host", &cmd).await;
        assert_eq!(o.status.code(), Some(126), "{cmd}: {}", err(&o));
        assert!(marker.exists(), "{cmd} ran");
    }
    // Not a transfer: output masked like any exec.
    let o = ssh(
        &gw,
        &tok,
        "bank-host",
        "scp -f /nonexistent >/dev/null 2>&1; cat customers.txt",
    )
    .await;
    assert!(out(&o).contains("Ada Lovelace"), "{}", err(&o));
    assert!(!out(&o).contains("123-45-6789"), "{}", out(&o));
    gw.stop().await;
}

/// The token's `exp` claim (read, not verified: the test minted it).
fn exp_of(token: &str) -> i64 {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    claims["exp"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_when_the_token_expires() {
    if !sshd_ready() {
        return;
    }
    // No leeway: the session ends at the token's `exp` itself.
    let gw = gateway_with("[identity]\nleeway_secs = 0\n").await;
    let tok = gw.token_ttl("olga", &["ops"], Duration::from_secs(4));
    let exp = exp_of(&tok);
    let expired_at = chrono::DateTime::from_timestamp(exp, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let omar = gw.token("omar", &["approvers"]);

    // A long command, and one held for approval, both outliving the token.
    let long = {
        let (gw_tok, gw_port, opts) = (tok.clone(), ssh_port(&gw), client_opts(&gw));
        tokio::spawn(async move {
            let mut cmd = tokio::process::Command::new("sshpass");
            cmd.arg("-e")
                .env("SSHPASS", &gw_tok)
                .arg("ssh")
                .args(opts)
                .arg("-p")
                .arg(gw_port.to_string())
                .arg("bank-host@127.0.0.1")
                .arg("echo started; sleep 40; echo never")
                .stdin(std::process::Stdio::null());
            run(&mut cmd).await
        })
    };
    let held = {
        let (gw_tok, gw_port, opts) = (tok.clone(), ssh_port(&gw), client_opts(&gw));
        tokio::spawn(async move {
            let mut cmd = tokio::process::Command::new("sshpass");
            cmd.arg("-e")
                .env("SSHPASS", &gw_tok)
                .arg("ssh")
                .args(opts)
                .arg("-p")
                .arg(gw_port.to_string())
                .arg("bank-host@127.0.0.1")
                .arg("sudo -n true; echo ran-after-approval")
                .stdin(std::process::Stdio::null());
            run(&mut cmd).await
        })
    };
    let request = gw.pending_request(&omar).await;
    let id = request["id"].as_u64().unwrap();

    let told =
        format!("gatehouse: your token expired at {expired_at}; sign in again and reconnect");
    let o = long.await.unwrap();
    assert!(!o.status.success());
    assert_eq!(out(&o), "started\n", "the command was cut off");
    assert!(err(&o).contains(&told), "{}", err(&o));

    let o = held.await.unwrap();
    assert!(!o.status.success());
    assert!(!out(&o).contains("ran-after-approval"));
    assert!(
        err(&o).contains(&format!(
            "gatehouse: approval request #{id} was withdrawn: your token expired at {expired_at}"
        )),
        "{}",
        err(&o)
    );
    let (status, body) = gw
        .api(
            "POST",
            &format!("/api/v1/approvals/{id}/approve"),
            &omar,
            Some(serde_json::json!({"reason": "too late"})),
        )
        .await;
    assert_ne!(
        status, 200,
        "a withdrawn request cannot be approved: {body}"
    );

    // Both sessions ended for the token, with their evidence kept.
    let mut events = events(&gw).await;
    for _ in 0..50 {
        if of_kind(&events, "session.end").len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        events = support::events(&gw).await;
    }
    let expired = of_kind(&events, "session.expired");
    assert_eq!(expired.len(), 2, "{expired:?}");
    for e in &expired {
        assert_eq!(e["data"]["protocol"], "ssh");
        assert_eq!(e["data"]["token_expires_at"], expired_at.as_str());
    }
    let ends = of_kind(&events, "session.end");
    assert_eq!(ends.len(), 2);
    for end in ends {
        assert_eq!(end["data"]["ended_by"], "token_expired", "{end}");
        assert!(end["data"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("your token expired at"));
    }
    let cut = of_kind(&events, "command.result").into_iter().find(|e| {
        e["data"]["error"]
            .as_str()
            .is_some_and(|x| x.starts_with("cut off: your token expired"))
    });
    assert!(cut.is_some(), "the cut command's result says why");
    assert!(
        !of_kind(&events, "recording").is_empty(),
        "the cut session's recording is closed and chained"
    );
    let withdrawn = of_kind(&events, "approval.withdrawn");
    assert!(
        withdrawn.iter().any(|w| w["data"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("your token expired"))),
        "{withdrawn:?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_shell_ends_when_the_token_expires() {
    if !sshd_ready() {
        return;
    }
    let gw = gateway_with("[identity]\nleeway_secs = 0\n").await;
    let tok = gw.token_ttl("olga", &["ops"], Duration::from_secs(5));
    let exp = exp_of(&tok);
    let expired_at = chrono::DateTime::from_timestamp(exp, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let session = format!("gh-ssh-expiry-{}", std::process::id());
    // The pane outlives ssh, so what it printed last can be read.
    let ssh_cmd = format!(
        "sshpass -e ssh {} -tt -p {} bank-host@127.0.0.1; echo ssh-exited-$?; sleep 60",
        client_opts(&gw).join(" "),
        ssh_port(&gw)
    );
    let started = std::process::Command::new("tmux")
        .env("TERM", "xterm-256color")
        .args(["new-session", "-d", "-x", "160", "-y", "30", "-s", &session])
        .arg("-e")
        .arg(format!("SSHPASS={tok}"))
        .arg(&ssh_cmd)
        .status()
        .unwrap();
    assert!(started.success());
    tmux(&["send-keys", "-t", &session, "export PS1='ready> '", "Enter"]);
    wait_for_screen(&session, "ready>").await;
    tmux(&["send-keys", "-t", &session, "echo typed-$((40+2))", "Enter"]);
    wait_for_screen(&session, "typed-42").await;

    // Idle at the prompt when the token expires: the shell is ended.
    let screen = wait_for_screen(&session, "ssh-exited-").await;
    tmux(&["kill-session", "-t", &session]);
    assert!(
        screen.contains(&format!("gatehouse: your token expired at {expired_at}")),
        "{screen}"
    );
    assert!(!screen.contains("ssh-exited-0"), "{screen}");

    let mut events = Vec::new();
    for _ in 0..50 {
        events = support::events(&gw).await;
        if !of_kind(&events, "session.end").is_empty() {
            break;
        }
    }
    let end = of_kind(&events, "session.end")[0].clone();
    assert_eq!(end["data"]["ended_by"], "token_expired", "{end}");
    assert_eq!(
        end["data"]["recordings"].as_array().map(|a| a.len()),
        Some(1),
        "the cut shell's recording is kept: {end}"
    );
    assert_eq!(of_kind(&events, "session.expired").len(), 1);
    // The recording shows why the shell ended.
    let recording = of_kind(&events, "recording")[0].clone();
    let file = gw
        .dir
        .path()
        .join("state/recordings")
        .join(recording["data"]["file"].as_str().unwrap());
    let cast = std::fs::read_to_string(&file).unwrap();
    assert!(cast.contains("your token expired at"), "{cast}");
    gw.stop().await;
}

/// A fake customer export: SSNs, card numbers and emails on every line,
/// big enough for many SFTP reads in flight (masking changes the length).
fn customers_export() -> String {
    let mut text = String::from("id,name,ssn,card,email\n");
    for i in 0..3000 {
        text.push_str(&format!(
            "{i},Ada Lovelace,123-45-6789,4111 1111 1111 1111,ada{i}@example.com\n"
        ));
    }
    text
}

fn assert_masked(local: &Path, what: &str) {
    let got = std::fs::read_to_string(local).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(!got.contains("123-45-6789"), "{what}: SSN in clear");
    assert!(
        !got.contains("4111 1111 1111 1111"),
        "{what}: card in clear"
    );
    assert!(!got.contains("@example.com"), "{what}: email in clear");
    assert_eq!(got.lines().count(), 3001, "{what}: every line arrives");
    assert!(
        got.contains("2999,Ada Lovelace,"),
        "{what}: the end arrives"
    );
    assert!(
        got.contains("6789"),
        "{what}: partial masking keeps the last 4"
    );
}

async fn scp(gw: &TestGateway, token: &str, legacy: bool, from: &str, to: &Path) -> Output {
    let mut cmd = tokio::process::Command::new("sshpass");
    cmd.arg("-e").env("SSHPASS", token).arg("scp");
    if legacy {
        cmd.arg("-O");
    }
    cmd.args(client_opts(gw))
        .args(["-P", &ssh_port(gw).to_string()])
        .arg(from)
        .arg(to);
    run(&mut cmd).await
}

/// Issue 12: downloads on a masking connection are masked like `cat`;
/// binary files are refused unless a rule allows them; uploads unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_masked_and_binaries_need_a_rule() {
    if !sshd_ready() {
        return;
    }
    let home = &ssh_target().home;
    let export = customers_export();
    std::fs::write(home.join("customers-export.csv"), &export).unwrap();
    let mut blob = b"\x7fELF\x02\x01\x01\0".to_vec();
    blob.extend((0..200_000u32).map(|i| (i % 251) as u8));
    std::fs::write(home.join("tool.bin"), &blob).unwrap();
    std::fs::write(home.join("disk.img"), &blob).unwrap();
    let gw = gateway().await;
    let tok = gw.token("olga", &["ops"]);
    let dir = gw.dir.path();

    // scp over SFTP, scp -O (legacy), sftp get: the local copy is masked.
    let o = scp(
        &gw,
        &tok,
        false,
        "bank-host@127.0.0.1:customers-export.csv",
        &dir.join("via-sftp.csv"),
    )
    .await;
    assert!(o.status.success(), "scp: {}", err(&o));
    assert_masked(&dir.join("via-sftp.csv"), "scp (sftp)");
    let o = scp(
        &gw,
        &tok,
        true,
        "bank-host@127.0.0.1:customers-export.csv",
        &dir.join("via-legacy.csv"),
    )
    .await;
    assert!(o.status.success(), "scp -O: {}", err(&o));
    assert_masked(&dir.join("via-legacy.csv"), "scp -O");
    assert_eq!(
        std::fs::read(dir.join("via-sftp.csv")).unwrap(),
        std::fs::read(dir.join("via-legacy.csv")).unwrap(),
        "both protocols mask alike"
    );

    // A directory, recursively (scp -r: D/E lines, several files, and -p
    // times in the legacy protocol).
    let reports = home.join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    std::fs::write(reports.join("a.csv"), "Ada,123-45-6789\n").unwrap();
    std::fs::write(reports.join("b.txt"), "card 4111 1111 1111 1111 ok\n").unwrap();
    let _ = std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&reports)
        .status();
    for (legacy, into) in [(true, "tree-legacy"), (false, "tree-sftp")] {
        let mut cmd = tokio::process::Command::new("sshpass");
        cmd.arg("-e").env("SSHPASS", &tok).arg("scp");
        if legacy {
            cmd.arg("-O");
        }
        cmd.args(["-r", "-p"])
            .args(client_opts(&gw))
            .args(["-P", &ssh_port(&gw).to_string()])
            .arg("bank-host@127.0.0.1:reports")
            .arg(dir.join(into));
        let o = run(&mut cmd).await;
        assert!(o.status.success(), "scp -r ({into}): {}", err(&o));
        let a = std::fs::read_to_string(dir.join(into).join("a.csv")).unwrap();
        let b = std::fs::read_to_string(dir.join(into).join("b.txt")).unwrap();
        assert_eq!(a, "Ada,***-**-6789\n", "{into}");
        assert!(
            b.starts_with("card ") && b.ends_with("1111 ok\n"),
            "{into}: {b}"
        );
        assert!(!b.contains("4111 1111 1111 1111"), "{into}: {b}");
    }

    // `cat` of the same file over an exec (no terminal): masked as one
    // stream, whatever the packet boundaries; binary output needs the rule.
    let o = ssh(&gw, &tok, "bank-host", "cat customers-export.csv").await;
    assert!(o.status.success(), "{}", err(&o));
    std::fs::write(dir.join("via-cat.csv"), &o.stdout).unwrap();
    assert_masked(&dir.join("via-cat.csv"), "ssh cat");
    assert_eq!(
        o.stdout,
        std::fs::read(dir.join("via-sftp.csv")).unwrap(),
        "cat and scp give the same masked text"
    );
    let o = ssh(&gw, &tok, "bank-host", "cat tool.bin").await;
    assert_eq!(o.status.code(), Some(126), "{}", err(&o));
    assert!(err(&o).contains("not text"), "{}", err(&o));
    assert!(!o.stdout.contains(&0), "no binary output passed");
    let o = ssh(&gw, &tok, "bank-host", "cat disk.img").await;
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(o.stdout, blob, "a rule allows it");

    // A binary file is refused over both protocols; one a rule allows passes.
    let o = scp(
        &gw,
        &tok,
        false,
        "bank-host@127.0.0.1:tool.bin",
        &dir.join("tool-sftp.bin"),
    )
    .await;
    assert!(!o.status.success(), "binary over sftp must fail");
    assert!(err(&o).contains("not text"), "{}", err(&o));
    let o = scp(
        &gw,
        &tok,
        true,
        "bank-host@127.0.0.1:tool.bin",
        &dir.join("tool-legacy.bin"),
    )
    .await;
    assert!(!o.status.success(), "binary over scp -O must fail");
    assert!(err(&o).contains("not text"), "{}", err(&o));
    assert!(!dir.join("tool-legacy.bin").exists());
    let o = scp(
        &gw,
        &tok,
        false,
        "bank-host@127.0.0.1:disk.img",
        &dir.join("disk-sftp.img"),
    )
    .await;
    assert!(o.status.success(), "allowed binary: {}", err(&o));
    assert_eq!(std::fs::read(dir.join("disk-sftp.img")).unwrap(), blob);
    let o = scp(
        &gw,
        &tok,
        true,
        "bank-host@127.0.0.1:disk.img",
        &dir.join("disk-legacy.img"),
    )
    .await;
    assert!(o.status.success(), "allowed binary, scp -O: {}", err(&o));
    assert_eq!(std::fs::read(dir.join("disk-legacy.img")).unwrap(), blob);

    // sftp get, and an upload, which is not masked (the target gets what was sent).
    let local = dir.join("upload.csv");
    std::fs::write(&local, &export).unwrap();
    let commands = format!(
        "get customers-export.csv {}\nget tool.bin {}\nput {} uploaded-export.csv\nbye\n",
        dir.join("via-get.csv").display(),
        dir.join("via-get.bin").display(),
        local.display()
    );
    let mut cmd = tokio::process::Command::new("sshpass");
    cmd.arg("-e")
        .env("SSHPASS", &tok)
        .arg("sftp")
        .args(client_opts(&gw))
        // Large reads, many in flight: the masked stream is still served
        // whole and in order.
        .args(["-B", "262144", "-R", "128"])
        .args(["-P", &ssh_port(&gw).to_string()])
        .arg("bank-host@127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(commands.as_bytes()).await.unwrap();
    }
    let o = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_masked(&dir.join("via-get.csv"), "sftp get");
    assert!(err(&o).contains("not text"), "{}{}", out(&o), err(&o));
    assert_eq!(
        std::fs::read_to_string(home.join("uploaded-export.csv")).unwrap(),
        export,
        "uploads are not masked"
    );

    let events = events(&gw).await;
    let transfers = of_kind(&events, "file.transfer");
    let masked: Vec<_> = transfers
        .iter()
        .filter(|e| {
            e["data"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("customers-export.csv"))
                && e["data"]["masking"]["result"] == "masked"
        })
        .collect();
    assert_eq!(masked.len(), 3, "{transfers:?}");
    for e in &masked {
        assert_eq!(e["data"]["masking"]["masked"]["ssn"], 3000, "{e}");
        assert_eq!(e["data"]["masking"]["masked"]["card_number"], 3000, "{e}");
        assert_eq!(e["data"]["bytes"], export.len() as u64, "{e}");
    }
    assert!(masked.iter().any(|e| e["data"]["protocol"] == "scp"));
    let refused = transfers
        .iter()
        .filter(|e| {
            e["data"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("tool.bin"))
                && e["data"]["masking"]["result"] == "refused"
        })
        .count();
    assert_eq!(refused, 3, "{transfers:?}");
    let passed = transfers
        .iter()
        .filter(|e| {
            e["data"]["masking"]["result"] == "passed"
                && e["data"]["masking"]["rule"] == "disk-images-may-be-fetched"
        })
        .count();
    assert_eq!(passed, 2, "{transfers:?}");
    let outputs: Vec<_> = of_kind(&events, "command.result")
        .into_iter()
        .map(|e| &e["data"]["output_masking"])
        .filter(|m| !m.is_null())
        .collect();
    assert!(
        outputs
            .iter()
            .any(|m| m["result"] == "masked" && m["masked"]["ssn"] == 3000),
        "{outputs:?}"
    );
    assert!(
        outputs.iter().any(|m| m["result"] == "refused"),
        "{outputs:?}"
    );
    assert!(
        outputs
            .iter()
            .any(|m| m["result"] == "passed" && m["rule"] == "disk-images-may-be-fetched"),
        "{outputs:?}"
    );
    assert!(transfers.iter().any(|e| e["data"]["direction"] == "upload"
        && e["data"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("uploaded-export.csv"))
        && e["data"]["masking"].is_null()));
    gw.stop().await;
}
