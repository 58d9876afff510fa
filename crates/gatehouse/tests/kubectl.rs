//! kubectl through the gateway to a Kubernetes API server.
//!
//! No kube-apiserver can be installed here, so the upstream is the faithful
//! fake in `tests/kube/apiserver.py` (real HTTPS, discovery, tables, watch,
//! logs, WebSocket exec); `tests/kube/selftest.sh` proves real kubectl runs
//! against it unchanged. kubectl itself is the real one (>= 1.30, found by
//! `scripts/kubectl.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};

const UPSTREAM_TOKEN: &str = "upstream-kube-token-for-tests";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// kubectl >= 1.30, or `None` (the test is skipped unless CI requires it).
fn kubectl() -> Option<String> {
    let found = std::env::var("KUBECTL").ok().or_else(|| {
        let o = std::process::Command::new("bash")
            .arg(repo().join("scripts/kubectl.sh"))
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    });
    let ready = found
        .clone()
        .filter(|k| {
            std::process::Command::new(k)
                .args(["version", "--client"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .filter(|_| {
            std::process::Command::new("python3")
                .args(["-c", "import aiohttp"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if ready.is_none() && std::env::var("GATEHOUSE_REQUIRE_KUBECTL").as_deref() == Ok("1") {
        panic!("kubectl >= 1.30 and python3 aiohttp are required (scripts/test.sh installs them)");
    }
    ready
}

/// The fake API server, stopped when dropped.
struct ApiServer {
    _child: tokio::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl ApiServer {
    async fn start() -> ApiServer {
        let dir = tempfile::tempdir().unwrap();
        let script = repo().join("tests/kube/apiserver.py");
        let made = tokio::process::Command::new("python3")
            .arg(&script)
            .arg("--make-cert")
            .arg(dir.path())
            .output()
            .await
            .unwrap();
        assert!(made.status.success(), "{}", err(&made));
        let mut child = tokio::process::Command::new("python3")
            .arg(&script)
            .arg("--cert")
            .arg(dir.path().join("server.pem"))
            .arg("--key")
            .arg(dir.path().join("server.key"))
            .args(["--token", UPSTREAM_TOKEN, "--port", "0", "--log"])
            .arg(dir.path().join("requests.jsonl"))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the fake API server starts")
            .unwrap()
            .unwrap();
        ApiServer {
            _child: child,
            port: first.trim().parse().unwrap(),
            dir,
        }
    }

    /// What the API server saw, one JSON object per request.
    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn kube_config(api: &ApiServer, dir: &Path) -> String {
    let token = dir.join("kube.token");
    std::fs::write(&token, UPSTREAM_TOKEN).unwrap();
    format!(
        r#"
[[connections]]
name = "prod-k8s"
type = "kubernetes"
host = "127.0.0.1"
port = {port}
tls = "require"
ca_file = "{ca}"
password_file = "{token}"
allow_groups = ["sre"]

[[rules]]
name = "no-namespace-deletes"
effect = "block"
message = "namespaces are removed by the platform team's pipeline"
connections = ["prod-k8s"]
verbs = ["delete"]
resources = ["namespaces"]

[[rules]]
name = "exec-in-prod-needs-approval"
effect = "approve"
message = "a shell in a production pod needs a second person"
connections = ["prod-k8s"]
resources = ["pods/exec", "pods/attach"]
namespaces = ["prod"]
approvers = ["approvers"]

[[rules]]
name = "no-rm-rf-in-pods"
effect = "block"
message = "rm -rf is not run through the gateway"
connections = ["prod-k8s"]
resources = ["pods/exec"]
pattern = "rm\\s+-rf"
"#,
        port = api.port,
        ca = api.dir.path().join("ca.pem").display(),
        token = token.display(),
    )
}

async fn start(api: &ApiServer) -> TestGateway {
    TestGateway::start_with_policy("[http]\nlisten = \"127.0.0.1:0\"", |_| {
        kube_config(api, api.dir.path())
    })
    .await
}

/// Write a kubeconfig for `token` with `gatehouse kubeconfig`.
async fn kubeconfig_for(gw: &TestGateway, token: &str, name: &str) -> PathBuf {
    let path = gw.dir.path().join(name);
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["kubeconfig", "prod-k8s", "--out"])
        .arg(&path)
        .arg("--config")
        .arg(&gw.config_path)
        .arg("--server")
        .arg(format!("https://{}", gw.gw.http_addr.unwrap()))
        .env("GATEHOUSE_TOKEN", token)
        .env("GATEHOUSE_CA_FILE", gw.ca_file())
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    path
}

async fn kubectl_run(kubectl: &str, config: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(kubectl);
    cmd.env("KUBECONFIG", config)
        .env("HOME", config.parent().unwrap())
        .args(["--request-timeout=30s"])
        .args(args)
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("kubectl finishes")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_reads_writes_watches_and_execs_through_the_gateway() {
    let Some(kubectl) = kubectl() else {
        eprintln!("skipping: no kubectl >= 1.30 / aiohttp");
        return;
    };
    let api = ApiServer::start().await;
    let gw = start(&api).await;
    let sam = gw.token("sam", &["sre"]);
    let kc = kubeconfig_for(&gw, &sam, "sam.kubeconfig").await;

    let o = kubectl_run(&kubectl, &kc, &["get", "pods", "-n", "prod"]).await;
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("web-1"), "{}", out(&o));

    // JSON answers are masked on the way back.
    let o = kubectl_run(
        &kubectl,
        &kc,
        &[
            "get",
            "configmap",
            "customer-contacts",
            "-n",
            "prod",
            "-o",
            "yaml",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", err(&o));
    let yaml = out(&o);
    assert!(yaml.contains("customer-contacts"), "{yaml}");
    // (The fake's second SSN, 987-65-4321, is not a valid SSN: 9xx areas are
    // never issued, so the detector rightly leaves it.)
    assert!(
        !yaml.contains("123-45-6789") && yaml.contains("***-**-6789"),
        "{yaml}"
    );
    assert!(!yaml.contains("jane.doe@example.com"), "{yaml}");

    // A blocked verb: kubectl prints the gateway's Status.
    let o = kubectl_run(&kubectl, &kc, &["delete", "namespace", "prod"]).await;
    assert!(!o.status.success());
    assert!(err(&o).contains("no-namespace-deletes"), "{}", err(&o));
    assert!(err(&o).contains("Forbidden"), "{}", err(&o));

    // Writes go through.
    let o = kubectl_run(&kubectl, &kc, &["delete", "pod", "web-2", "-n", "prod"]).await;
    assert!(o.status.success(), "{}", err(&o));

    // Streams: a watch and a followed log, masked as they stream.
    let o = kubectl_run(
        &kubectl,
        &kc,
        &["get", "pods", "-n", "prod", "-w", "--request-timeout=3s"],
    )
    .await;
    assert!(out(&o).contains("web-1"), "{} {}", out(&o), err(&o));
    let mut follow = tokio::process::Command::new(&kubectl);
    follow
        .env("KUBECONFIG", &kc)
        .args(["logs", "-f", "web-1", "-n", "prod"])
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    let mut child = follow.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("log lines keep coming")
            .unwrap()
            .expect("the log stream stays open");
        seen.push(line);
    }
    let _ = child.kill().await;
    let logs = seen.join("\n");
    assert!(logs.contains("seq="), "{logs}");
    assert!(
        !logs.contains("4111 1111 1111 1111") && !logs.contains("123-45-6789"),
        "{logs}"
    );

    // exec outside prod runs at once and is recorded.
    let o = kubectl_run(
        &kubectl,
        &kc,
        &[
            "exec",
            "debug",
            "-n",
            "default",
            "--",
            "sh",
            "-c",
            "echo hi; cat /data/customers.csv",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).starts_with("hi"), "{}", out(&o));
    // exec with rm -rf is blocked before it starts.
    let o = kubectl_run(
        &kubectl,
        &kc,
        &["exec", "debug", "-n", "default", "--", "rm", "-rf", "/data"],
    )
    .await;
    assert!(!o.status.success());
    assert!(err(&o).contains("no-rm-rf-in-pods"), "{}", err(&o));

    // The API server only ever saw the gateway's credential.
    let requests = api.requests();
    assert!(requests.len() > 5);
    assert!(requests.iter().all(|r| r["auth"] == "ok"), "{requests:?}");
    assert!(!requests.iter().any(|r| r["path"]
        .as_str()
        .unwrap_or("")
        .ends_with("/namespaces/prod")
        && r["method"] == "DELETE"));

    let events = events(&gw).await;
    let commands: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "command" && e["connection"] == "prod-k8s")
        .collect();
    assert!(commands
        .iter()
        .any(|c| c["data"]["request"]["verb"] == "list"
            && c["data"]["request"]["resource"] == "pods"));
    assert!(
        commands
            .iter()
            .any(|c| c["data"]["request"]["summary"] == "delete namespaces/prod"),
        "{commands:?}"
    );
    let exec = commands
        .iter()
        .find(|c| {
            c["data"]["request"]["resource"] == "pods/exec"
                && c["data"]["verdict"]["effect"] == "allow"
        })
        .expect("the exec is recorded");
    assert!(
        exec["data"]["text"].as_str().unwrap().contains("echo hi"),
        "{exec}"
    );
    let recording = events
        .iter()
        .find(|e| e["kind"] == "recording" && e["data"]["protocol"] == "kubernetes-exec")
        .expect("the exec stream is recorded and chained");
    let file = gw
        .dir
        .path()
        .join("state/recordings")
        .join(recording["data"]["file"].as_str().unwrap());
    let cast = std::fs::read_to_string(&file).unwrap();
    assert!(cast.contains("hi"), "{cast}");
    assert!(
        !cast.contains("123-45-6789"),
        "recordings are masked: {cast}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_into_prod_waits_for_approval() {
    let Some(kubectl) = kubectl() else {
        eprintln!("skipping: no kubectl >= 1.30 / aiohttp");
        return;
    };
    let api = ApiServer::start().await;
    let gw = start(&api).await;
    let sam = gw.token("sam", &["sre"]);
    let omar = gw.token("omar", &["approvers"]);
    let kc = kubeconfig_for(&gw, &sam, "sam.kubeconfig").await;
    let held = tokio::spawn({
        let kubectl = kubectl.clone();
        let kc = kc.clone();
        async move {
            kubectl_run(
                &kubectl,
                &kc,
                &["exec", "web-1", "-n", "prod", "--", "whoami"],
            )
            .await
        }
    });
    let request = gw.pending_request(&omar).await;
    assert!(
        request["command"]
            .as_str()
            .unwrap()
            .starts_with("create pods/exec web-1 -n prod")
            && request["command"].as_str().unwrap().ends_with(": whoami"),
        "{request}"
    );
    assert!(
        !api.requests()
            .iter()
            .any(|r| r["path"].as_str().unwrap_or("").ends_with("/exec")),
        "nothing reaches the API server while held"
    );
    let id = request["id"].as_u64().unwrap();
    let (status, body) = gw
        .api(
            "POST",
            &format!("/api/v1/approvals/{id}/approve"),
            &omar,
            Some(serde_json::json!({"reason": "incident 4711"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let o = held.await.unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o).trim(), "root");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interactive_exec_through_tmux_is_recorded() {
    let Some(kubectl) = kubectl() else {
        eprintln!("skipping: no kubectl >= 1.30 / aiohttp");
        return;
    };
    let api = ApiServer::start().await;
    let gw = start(&api).await;
    let sam = gw.token("sam", &["sre"]);
    let kc = kubeconfig_for(&gw, &sam, "sam.kubeconfig").await;
    let session = format!("gh-kube-{}", std::process::id());
    let started = std::process::Command::new("tmux")
        .env("TERM", "xterm-256color")
        .args(["new-session", "-d", "-x", "100", "-y", "30", "-s", &session])
        .arg("-e")
        .arg(format!("KUBECONFIG={}", kc.display()))
        .arg(format!("{kubectl} exec -it debug -n default -- sh"))
        .status()
        .unwrap();
    assert!(started.success());
    wait_for_screen(&session, "$").await;
    tmux(&[
        "send-keys",
        "-t",
        &session,
        "echo typed-through-gateway",
        "Enter",
    ]);
    wait_for_screen(&session, "\ntyped-through-gateway").await;
    tmux(&["send-keys", "-t", &session, "whoami", "Enter"]);
    wait_for_screen(&session, "root").await;
    tmux(&["send-keys", "-t", &session, "stty size", "Enter"]);
    wait_for_screen(&session, "30 100").await;
    tmux(&["send-keys", "-t", &session, "exit", "Enter"]);
    wait_tmux_closed(&session).await;
    let mut recording = None;
    for _ in 0..50 {
        let events = events(&gw).await;
        recording = events
            .into_iter()
            .find(|e| e["kind"] == "recording" && e["data"]["protocol"] == "kubernetes-exec");
        if recording.is_some() {
            break;
        }
    }
    let recording = recording.expect("the interactive exec is recorded");
    let file = gw
        .dir
        .path()
        .join("state/recordings")
        .join(recording["data"]["file"].as_str().unwrap());
    let cast = std::fs::read_to_string(&file).unwrap();
    let mut lines = cast.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    let events: Vec<serde_json::Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        events.iter().any(|e| e[1] == "i"),
        "keystrokes are input events: {cast}"
    );
    assert!(
        events.iter().any(|e| e[1] == "r"),
        "resizes are recorded: {cast}"
    );
    assert!(
        events
            .iter()
            .any(|e| e[1] == "o" && e[2].as_str().unwrap().contains("typed-through-gateway")),
        "{cast}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_streams_through_the_gateway() {
    let Some(kubectl) = kubectl() else {
        eprintln!("skipping: no kubectl >= 1.30 / aiohttp");
        return;
    };
    let api = ApiServer::start().await;
    let gw = start(&api).await;
    let sam = gw.token("sam", &["sre"]);
    let kc = kubeconfig_for(&gw, &sam, "sam.kubeconfig").await;
    let mut child = tokio::process::Command::new(&kubectl)
        .env("KUBECONFIG", &kc)
        .args(["port-forward", "pod/debug", "-n", "default", "0:5432"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("kubectl says where it forwards")
        .unwrap()
        .unwrap_or_default();
    // "Forwarding from 127.0.0.1:PORT -> 5432"
    let port: u16 = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            let _ = child.start_kill();
            panic!("unexpected kubectl output: {line}")
        });
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let payload = b"echo through the tunnel\n".repeat(4096);
    conn.write_all(&payload).await.unwrap();
    let mut back = vec![0u8; payload.len()];
    tokio::time::timeout(Duration::from_secs(30), conn.read_exact(&mut back))
        .await
        .expect("the echo comes back")
        .unwrap();
    assert_eq!(back, payload);
    drop(conn);
    let _ = child.kill().await;
    let events = events(&gw).await;
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "command"
                && e["data"]["request"]["resource"] == "pods/portforward"),
        "the port-forward is recorded"
    );
    assert!(api.requests().iter().all(|r| r["auth"] == "ok"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn followed_logs_and_execs_end_when_the_token_expires() {
    let Some(kubectl) = kubectl() else {
        eprintln!("skipping: no kubectl >= 1.30 / aiohttp");
        return;
    };
    let api = ApiServer::start().await;
    // No leeway: streams end at the token's `exp` itself.
    let gw = TestGateway::start_with_policy(
        "[http]\nlisten = \"127.0.0.1:0\"\n[identity]\nleeway_secs = 0\n",
        |_| kube_config(&api, api.dir.path()),
    )
    .await;
    let sam = gw.token_ttl("sam", &["sre"], Duration::from_secs(6));
    let kc = kubeconfig_for(&gw, &sam, "sam.kubeconfig").await;

    let spawn = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(&kubectl);
        cmd.env("KUBECONFIG", &kc)
            .env("HOME", kc.parent().unwrap())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd.spawn().unwrap()
    };
    let mut follow = spawn(&["logs", "-f", "web-1", "-n", "prod"]);
    let mut shell = spawn(&["exec", "-i", "debug", "-n", "default", "--", "sh"]);
    let mut follow_out = BufReader::new(follow.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), follow_out.next_line())
        .await
        .expect("the log stream starts")
        .unwrap()
        .unwrap_or_default();
    assert!(first.contains("seq="), "{first}");
    let mut stdin = shell.stdin.take().unwrap();
    use tokio::io::AsyncWriteExt;
    stdin.write_all(b"echo started\n").await.unwrap();
    let mut shell_out = BufReader::new(shell.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), shell_out.next_line())
        .await
        .expect("the exec starts")
        .unwrap()
        .unwrap_or_default();
    assert_eq!(line, "started");

    // Neither would end by itself (the shell's stdin stays open): the
    // token's expiry ends both.
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        while follow_out.next_line().await.ok().flatten().is_some() {}
        while shell_out.next_line().await.ok().flatten().is_some() {}
        (follow.wait().await.unwrap(), shell.wait().await.unwrap())
    })
    .await;
    let (_, shell_status) = ended.expect("the streams end when the token expires");
    assert!(!shell_status.success(), "the exec was cut off");
    drop(stdin);

    let mut events = events(&gw).await;
    for _ in 0..50 {
        if events
            .iter()
            .filter(|e| e["kind"] == "session.expired")
            .count()
            >= 2
            && events
                .iter()
                .any(|e| e["kind"] == "recording" && e["data"]["protocol"] == "kubernetes-exec")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        events = support::events(&gw).await;
    }
    let expired: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "session.expired")
        .collect();
    assert_eq!(expired.len(), 2, "{expired:?}");
    for e in &expired {
        let command_id = e["data"]["command_id"].clone();
        let result = events
            .iter()
            .find(|r| r["kind"] == "command.result" && r["data"]["command_id"] == command_id)
            .expect("the cut stream's result");
        assert!(
            result["data"]["error"]
                .as_str()
                .is_some_and(|x| x.starts_with("your token expired at")),
            "{result}"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "recording" && e["data"]["protocol"] == "kubernetes-exec"),
        "the cut exec's recording is closed and chained"
    );
    gw.stop().await;
}

/// Issue 12: on a Kubernetes connection with `mask_terminal = true`, exec
/// output reaches the user masked, and `kubectl cp` (tar, binary) is
/// refused unless a `kinds = ["binary"]` rule allows it.
#[tokio::test(flavor = "multi_thread")]
async fn exec_output_is_masked_and_kubectl_cp_needs_a_rule() {
    let Some(kubectl) = kubectl() else {
        eprintln!("skipping: no kubectl >= 1.30 / aiohttp");
        return;
    };
    let api = ApiServer::start().await;
    let gw = TestGateway::start_with_policy("[http]\nlisten = \"127.0.0.1:0\"", |_| {
        let config = kube_config(&api, api.dir.path()).replacen(
            "allow_groups = [\"sre\"]",
            "allow_groups = [\"sre\"]\nmask_terminal = true",
            1,
        );
        format!(
            "{config}\n[[rules]]\nname = \"platform-may-copy-files\"\neffect = \"allow\"\nconnections = [\"prod-k8s\"]\ngroups = [\"platform\"]\nkinds = [\"binary\"]\npattern = \"^tar \"\n"
        )
    })
    .await;
    let sre = kubeconfig_for(&gw, &gw.token("sam", &["sre"]), "sre.kubeconfig").await;

    let o = kubectl_run(
        &kubectl,
        &sre,
        &[
            "exec",
            "debug",
            "-n",
            "default",
            "--",
            "cat",
            "/data/customers.csv",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", err(&o));
    let shown = out(&o);
    assert!(shown.starts_with("name,email,ssn\nAlice,"), "{shown}");
    assert!(
        !shown.contains("123-45-6789")
            && !shown.contains("alice@example.com")
            && !shown.contains("bob@example.org"),
        "{shown}"
    );
    assert!(
        shown.contains("6789"),
        "partial masking keeps the last 4: {shown}"
    );

    // kubectl cp runs tar: binary, refused on a masking connection.
    let local = gw.dir.path().join("copied.csv");
    let o = kubectl_run(
        &kubectl,
        &sre,
        &[
            "cp",
            "default/debug:/data/customers.csv",
            local.to_str().unwrap(),
        ],
    )
    .await;
    assert!(!o.status.success(), "kubectl cp must fail: {}", out(&o));
    assert!(err(&o).contains("not text"), "{}", err(&o));
    assert!(!std::fs::read_to_string(&local)
        .unwrap_or_default()
        .contains("123-45-6789"));

    // A caller a rule allows copies the file as it is.
    let platform = kubeconfig_for(
        &gw,
        &gw.token("pat", &["sre", "platform"]),
        "platform.kubeconfig",
    )
    .await;
    let o = kubectl_run(
        &kubectl,
        &platform,
        &[
            "cp",
            "default/debug:/data/customers.csv",
            local.to_str().unwrap(),
        ],
    )
    .await;
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert!(std::fs::read_to_string(&local)
        .unwrap()
        .contains("Alice,alice@example.com,123-45-6789"));

    let events = events(&gw).await;
    let results: Vec<_> = events
        .iter()
        .filter(|e| {
            e["kind"] == "command.result" && !e["data"]["response"]["output_masking"].is_null()
        })
        .map(|e| &e["data"]["response"]["output_masking"])
        .collect();
    assert!(
        results.iter().any(|m| m["result"] == "masked"
            && m["masked"]["ssn"] == 1
            && m["masked"]["email"] == 2),
        "{results:?}"
    );
    assert!(
        results.iter().any(|m| m["result"] == "refused"),
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .any(|m| m["result"] == "passed" && m["rule"] == "platform-may-copy-files"),
        "{results:?}"
    );
    gw.stop().await;
}
