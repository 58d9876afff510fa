//! Evidence packs of SSH work, end to end: a real sshd behind the gateway,
//! the real `ssh` client (token via `sshpass`), then `gatehouse evidence`:
//! a blocked command's text is in the report, the terminal recordings are
//! in the pack with a player, the masked values of the terminal are
//! counted, and both verifiers (gatehouse and tools/verify_pack.py) agree.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use gatehouse_testbed::sshtarget::{self, SshTarget};
use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;
use support::*;

fn ssh_target() -> &'static SshTarget {
    static T: OnceLock<SshTarget> = OnceLock::new();
    T.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("gatehouse-sshd-evidence-{}", std::process::id()));
        let t = SshTarget::start(
            &dir,
            "gatehouse-ssh-test",
            "target-password-only-the-gateway-knows",
        )
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

fn client_opts(gw: &TestGateway) -> Vec<String> {
    let key = gw.dir.path().join("state").join("ssh_host_ed25519_key");
    let o = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success());
    let known = gw.dir.path().join("known_hosts");
    std::fs::write(
        &known,
        format!(
            "[127.0.0.1]:{} {}",
            gw.gw.ssh_addr.unwrap().port(),
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

async fn ssh(gw: &TestGateway, token: &str, command: &str) -> Output {
    let mut cmd = tokio::process::Command::new("sshpass");
    cmd.arg("-e")
        .env("SSHPASS", token)
        .arg("ssh")
        .args(client_opts(gw))
        .arg("-p")
        .arg(gw.gw.ssh_addr.unwrap().port().to_string())
        .arg("bank-host@127.0.0.1")
        .arg(command)
        .stdin(std::process::Stdio::null());
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("ssh timed out")
        .expect("ssh runs")
}

fn verify_both(pack: &Path, key: &Path) -> (String, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["evidence", "verify"])
        .arg(pack)
        .arg("--public-key")
        .arg(key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/verify_pack.py");
    let p = std::process::Command::new("python3")
        .arg(script)
        .arg(pack)
        .arg("--public-key")
        .arg(key)
        .output()
        .expect("python3 runs");
    assert!(p.status.success(), "{}{}", out(&p), err(&p));
    (out(&o), out(&p))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_commands_recordings_and_terminal_masking_are_in_the_pack() {
    if !sshtarget::available() {
        assert!(
            std::env::var("GATEHOUSE_REQUIRE_SSH").as_deref() != Ok("1"),
            "SSH tests required but sshd is not installed or this is not root"
        );
        eprintln!("SKIPPED: sshd is not installed or this is not root");
        return;
    }
    let target = ssh_target();
    let holder = tempfile::tempdir().unwrap();
    let pw = holder.path().join("ssh-target.pw");
    std::fs::write(&pw, &target.password).unwrap();
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

[[rules]]
name = "no-rm-rf"
effect = "block"
message = "recursive forced deletes are not allowed through the gateway"
connections = ["bank-host"]
pattern = '(?i)\brm\b[^;&|]*\s(-[a-z]*r|--recursive)'
"#,
        port = target.port,
        user = target.user,
        pw = pw.display(),
        key = target.host_key,
    );
    let gw = TestGateway::start("[ssh]\nlisten = \"127.0.0.1:0\"\n", &extra).await;
    let tok = gw.token("olga", &["ops"]);
    let o = ssh(&gw, &tok, "rm -rf /tmp/gatehouse-keep-me").await;
    assert_eq!(o.status.code(), Some(126), "{}", err(&o));
    let o = ssh(&gw, &tok, "cat customers.txt").await;
    assert!(o.status.success(), "{}", err(&o));
    assert!(!out(&o).contains("123-45-6789"), "{}", out(&o));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let work = tempfile::tempdir().unwrap();
    let pack = work.path().join("pack");
    let today = chrono::Utc::now();
    let o = gw
        .cli(&[
            "evidence",
            "--from",
            &(today - chrono::Duration::days(1))
                .format("%Y-%m-%d")
                .to_string(),
            "--to",
            &(today + chrono::Duration::days(1))
                .format("%Y-%m-%d")
                .to_string(),
            "--out",
            pack.to_str().unwrap(),
        ])
        .await;
    assert!(o.status.success(), "evidence: {}{}", out(&o), err(&o));
    let key = gw.dir.path().join("state").join("audit-signing.key.pub");
    let (_state, _config) = gw.stop().await;

    // The blocked command's text, wherever the report names it.
    let report = std::fs::read_to_string(pack.join("report.html")).unwrap();
    assert!(
        report.contains("blocked by rule no-rm-rf: rm -rf /tmp/gatehouse-keep-me"),
        "the trail line names the command"
    );
    assert!(report.contains("<pre>rm -rf /tmp/gatehouse-keep-me</pre>"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pack.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["blocked"][0]["command"],
        "rm -rf /tmp/gatehouse-keep-me"
    );
    assert_eq!(summary["blocked"][0]["protocol"], "ssh");

    // The terminal's masked SSN is counted, and its recording is in the pack.
    assert!(
        summary["masking"]["ssn"]["values"].as_u64().unwrap_or(0) >= 1,
        "{}",
        summary["masking"]
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pack.join("manifest.json")).unwrap())
            .unwrap();
    let recordings = manifest["recordings"].as_array().unwrap();
    assert!(!recordings.is_empty(), "{manifest}");
    let cast = pack.join(recordings.last().unwrap()["path"].as_str().unwrap());
    let text = std::fs::read_to_string(&cast).unwrap();
    assert!(text.contains("Ada Lovelace") && !text.contains("123-45-6789"));
    assert!(pack
        .join(recordings.last().unwrap()["player"].as_str().unwrap())
        .is_file());

    let (ours, theirs) = verify_both(&pack, &key);
    assert!(ours.contains("RESULT: VERIFIED"), "{ours}");
    assert!(theirs.contains("RESULT: VERIFIED"), "{theirs}");
}
