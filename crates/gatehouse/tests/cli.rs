//! The CLI as a newcomer meets it, without servers: `token issue` away
//! from the gateway's folder, reading sessions back (`list`, `show`) and
//! piping them into `head`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use gatehouse::config::GatewayConfig;
use gatehouse_audit::NewEvent;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn gatehouse(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .current_dir(dir)
        .env_remove("GATEHOUSE_CONFIG")
        .env("GATEHOUSE_LOG", "warn")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn token_issue_refuses_to_invent_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join(".gatehouse/dev-issuer.key");
    let o = gatehouse(dir.path(), &["token", "issue", "--subject", "alice"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(o.stdout.is_empty(), "no token printed: {}", text(&o.stdout));
    assert!(err.contains("no dev issuer key at"), "{err}");
    let shown = std::fs::canonicalize(dir.path()).unwrap();
    assert!(
        err.contains(&format!(
            "{}",
            shown.join(".gatehouse/dev-issuer.key").display()
        )),
        "names the key it looked for: {err}"
    );
    assert!(
        err.contains("built-in defaults"),
        "says which config: {err}"
    );
    assert!(err.contains("--create-key"), "{err}");
    assert!(!key.exists(), "no key was made");

    // Asked for explicitly, a key is made and then used.
    let o = gatehouse(
        dir.path(),
        &["token", "issue", "--subject", "alice", "--create-key"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(key.exists());
    let o = gatehouse(dir.path(), &["token", "issue", "--subject", "alice"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim().split('.').count(), 3, "a JWT");

    // A named configuration is reported as such.
    let cfg = dir.path().join("elsewhere.toml");
    std::fs::write(&cfg, "state_dir = \"state\"\n").unwrap();
    let o = gatehouse(
        dir.path(),
        &[
            "token",
            "issue",
            "--subject",
            "alice",
            "--config",
            "elsewhere.toml",
        ],
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("elsewhere.toml (--config)"), "{err}");
    assert!(err.contains("state/dev-issuer.key"), "{err}");
}

const SESSION: &str = "0123456789abcdef01234567";

/// A trail with one SSH session: a held command that was denied, a
/// recording with `frames` lines of output, and the session's end.
fn trail(dir: &Path, frames: usize) {
    std::fs::write(dir.join("gatehouse.toml"), "state_dir = \"state\"\n").unwrap();
    let cfg = GatewayConfig::load(&dir.join("gatehouse.toml")).unwrap();
    let recordings = cfg.recordings_dir();
    std::fs::create_dir_all(&recordings).unwrap();
    let mut cast = String::from("{\"version\":2,\"width\":80,\"height\":24}\n");
    // What a hostile program on the target could write to act on the
    // terminal that replays it: set the clipboard, ask for a status
    // report; and colour, which only draws.
    cast.push_str(
        "[0.0, \"o\", \"\\u001b]52;c;Y3VybCBldmlsIHwgc2g=\\u0007\\u001b[6n\\u001b[1;31mred\\u001b[0m\\r\\n\"]\n",
    );
    for i in 0..frames {
        cast.push_str(&format!(
            "[0.0, \"o\", \"line {i} of a long listing, padded to make the pipe fill up quickly\\r\\n\"]\n"
        ));
    }
    let file = format!("{SESSION}-1.cast");
    std::fs::write(recordings.join(&file), &cast).unwrap();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(cast.as_bytes()));

    let log = gatehouse::gateway::open_audit(&cfg).unwrap();
    let ev = |kind: &str, data: serde_json::Value| NewEvent {
        kind: kind.into(),
        session_id: Some(SESSION.into()),
        subject: Some("dana".into()),
        connection: Some("bank-host".into()),
        data,
    };
    let omar = json!({"subject": "omar", "email": "omar@example.com", "groups": ["approvers"]});
    for e in [
        ev(
            "session.start",
            json!({"protocol": "ssh", "client_addr": "127.0.0.1:50000", "user": "bank-host"}),
        ),
        ev(
            "command",
            json!({"command_id": 1, "protocol": "ssh", "kind": "exec", "command": "sudo -n true",
                   "verdict": {"effect": "hold", "rule": "sudo-needs-approval"}, "approval_request": 1}),
        ),
        ev(
            "approval.requested",
            json!({"request_id": 1, "request_kind": "command", "rule": "sudo-needs-approval",
                   "requirement": {"groups": ["approvers"], "count": 1},
                   "expires_at": "2026-12-07T10:30:00Z"}),
        ),
        ev(
            "approval.decision",
            json!({"request_id": 1, "decision": "deny", "approver": omar,
                   "reason": "not during the freeze", "settles": true}),
        ),
        ev("approval.denied", json!({"request_id": 1})),
        ev(
            "recording",
            json!({"channel": 1, "file": file, "size": cast.len(), "sha256": sha}),
        ),
        ev(
            "session.end",
            json!({"protocol": "ssh", "reason": "the client disconnected", "duration_ms": 1200,
                   "channels": 1, "commands": 1, "blocked": 1, "recordings": []}),
        ),
    ] {
        log.record_blocking(e).unwrap();
    }
    log.shutdown_blocking().unwrap();
}

#[test]
fn sessions_read_back_for_people() {
    let dir = tempfile::tempdir().unwrap();
    trail(dir.path(), 3);

    let o = gatehouse(dir.path(), &["sessions", "list"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let row = out
        .lines()
        .find(|l| l.starts_with(SESSION))
        .unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cols[cols.len() - 2..],
        ["1", "1"],
        "one command, one refused (the denied hold): {out}"
    );

    let o = gatehouse(dir.path(), &["sessions", "show", SESSION]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("(ssh, encrypted)"), "{out}");
    assert!(!out.contains("tls"), "{out}");
    assert!(
        out.contains("approval request #1 opened by rule sudo-needs-approval"),
        "{out}"
    );
    assert!(
        out.contains("request #1 denied by omar@example.com: not during the freeze"),
        "{out}"
    );
    assert!(out.contains("request #1 was denied"), "{out}");
    assert!(out.contains("(the client disconnected)"), "{out}");
    assert!(!out.contains('{'), "no event is printed as raw JSON: {out}");
}

/// Replay checks the chain through the recording's event, and shows as
/// text what would act on the auditor's terminal (unless `--raw`).
#[test]
fn replay_shows_what_would_act_on_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    trail(dir.path(), 1);
    let replay = |extra: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["sessions", "replay", SESSION, "--max-wait", "0"])
            .args(extra)
            .current_dir(dir.path())
            .env_remove("GATEHOUSE_CONFIG")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        (text(&o.stdout), text(&o.stderr))
    };
    let (shown, note) = replay(&[]);
    assert!(note.contains("signed by a checkpoint"), "{note}");
    assert!(note.contains("shown as text"), "{note}");
    assert!(shown.contains("\u{241b}]52;c;"), "{shown:?}");
    assert!(shown.contains("\u{241b}[6n"), "{shown:?}");
    assert!(!shown.contains("\u{1b}]"), "{shown:?}");
    assert!(!shown.contains("\u{1b}[6n"), "{shown:?}");
    assert!(
        shown.contains("\u{1b}[1;31mred\u{1b}[0m"),
        "colour still draws: {shown:?}"
    );
    let (raw, _) = replay(&["--raw"]);
    assert!(raw.contains("\u{1b}]52;c;"), "{raw:?}");

    // A trail edited before the recording's event: no replay.
    let db = dir.path().join("state/audit.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE events SET data = replace(data, 'sudo', 'true') WHERE seq = 2",
        [],
    )
    .unwrap();
    drop(conn);
    let o = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["sessions", "replay", SESSION])
        .current_dir(dir.path())
        .env_remove("GATEHOUSE_CONFIG")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("no checkpoint that verified signs the recording's event"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // Far more than a pipe holds, so the writer meets the closed end.
    trail(dir.path(), 20_000);
    for args in [
        &["sessions", "replay", SESSION, "--max-wait", "0"][..],
        &["audit", "export"][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("GATEHOUSE_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -c 100`: read a little, then close the pipe.
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 100];
        std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
        drop(stdout);
        let o = child.wait_with_output().unwrap();
        let err = text(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        use std::os::unix::process::ExitStatusExt;
        assert!(
            o.status.success() || o.status.signal() == Some(13),
            "{args:?}: exit {:?}, signal {:?}: {err}",
            o.status.code(),
            o.status.signal()
        );
    }
}
