//! Evidence packs end to end: a real session mix through the gateway (the
//! real psql against a real PostgreSQL: masked reads, a blocked statement, a
//! held statement approved through the JSON API, a failed sign-in, a refused
//! connection, an access grant and its revocation), then the real
//! `gatehouse evidence` CLI while the gateway runs, `gatehouse evidence
//! verify` offline, every kind of alteration detected with a precise
//! message, and the report opened from disk in headless Chromium.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use support::{browser_ready, err, out, TestGateway, BROWSER_DIR};

/// The demo policy plus the approval rule, and access requests on `bank`.
fn with_approvals_and_access(text: String) -> String {
    format!("{text}\n{}", gatehouse::demo::DEMO_APPROVAL_RULE).replace(
        "allow_groups = [\"analysts\", \"dba\"]\n",
        "allow_groups = [\"analysts\", \"dba\"]\naccess_approvers = [\"approvers\"]\nmax_access = \"2h\"\n",
    )
}

/// Produce the session mix; returns the held request's number.
async fn session_mix(gw: &TestGateway) -> u64 {
    let alice = gw.token("alice", &["analysts"]);
    let omar = gw.token("omar", &["approvers"]);

    // Masked reads, a value that must be escaped in the report, and a block.
    let o = gw
        .psql(
            "alice",
            &alice,
            &[
                "select name, ssn, card_number, email from customers order by id limit 5",
                "select notes from customers order by id limit 10",
                "select '<script>alert(\"x\")</script>' as probe",
                "delete from customers where id = 1",
            ],
        )
        .await;
    let text = out(&o);
    assert!(text.contains("<script>"), "{text}");
    assert!(
        err(&o).contains("analysts-read-only"),
        "the delete is blocked: {}",
        err(&o)
    );

    // A failed sign-in.
    let o = gw.psql("mallory", "not-a-token", &["select 1"]).await;
    assert!(!o.status.success());

    // dana's change is held; omar approves it through the JSON API.
    let dana = gw.token("dana", &["dba"]);
    let port = gw.port();
    let psql = tokio::spawn(async move {
        let mut cmd = tokio::process::Command::new("psql");
        cmd.env("PGPASSWORD", &dana)
            .arg("-X")
            .arg(format!(
                "host=127.0.0.1 port={port} user=dana dbname=bank sslmode=require"
            ))
            .arg("-c")
            .arg("update customers set phone = '555-0177' where id = 17");
        tokio::time::timeout(Duration::from_secs(60), cmd.output()).await
    });
    let request = gw.pending_request(&omar).await;
    let held = request["id"].as_u64().unwrap();
    let (status, body) = gw
        .api(
            "POST",
            &format!("/api/v1/approvals/{held}/approve"),
            &omar,
            Some(serde_json::json!({"reason": "ticket CHG-7 checked with the customer"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let o = psql.await.unwrap().expect("psql finished").unwrap();
    assert!(out(&o).contains("UPDATE 1"), "{}", err(&o));

    // eve is refused, asks for access, omar grants it, eve connects, the
    // grant is revoked.
    let eve = gw.token("eve", &["contractors"]);
    let o = gw.psql("eve", &eve, &["select 1"]).await;
    assert!(!o.status.success());
    let (status, req) = gw
        .api(
            "POST",
            "/api/v1/access",
            &eve,
            Some(serde_json::json!({"connection": "bank", "duration": "1h", "reason": "INC-42 investigation"})),
        )
        .await;
    assert!(status == 200 || status == 201, "{req}");
    let (status, approved) = gw
        .api(
            "POST",
            &format!("/api/v1/approvals/{}/approve", req["id"]),
            &omar,
            Some(serde_json::json!({"reason": "INC-42 is real"})),
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    let o = gw
        .psql("eve", &eve, &["select count(*) from accounts"])
        .await;
    assert!(o.status.success(), "{}", err(&o));
    let grant = approved["grant_id"].as_u64().expect("a grant was created");
    let (status, body) = gw
        .api(
            "POST",
            &format!("/api/v1/grants/{grant}/revoke"),
            &omar,
            Some(serde_json::json!({"reason": "investigation over"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Let the result events land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    held
}

fn run(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env_remove("GATEHOUSE_CONFIG")
        .output()
        .expect("gatehouse runs")
}

fn verify(pack: &Path, key: &Path) -> (bool, String) {
    let o = run(&[
        "evidence",
        "verify",
        pack.to_str().unwrap(),
        "--public-key",
        key.to_str().unwrap(),
    ]);
    (o.status.success(), format!("{}{}", out(&o), err(&o)))
}

/// The independent verifier (`tools/verify_pack.py`, Python and the
/// `cryptography` package), written from the pack's SPEC.md.
fn verify_independently(pack: &Path, key: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/verify_pack.py");
    let o = std::process::Command::new("python3")
        .arg(script)
        .arg(pack)
        .arg("--public-key")
        .arg(key)
        .output()
        .expect("python3 runs (scripts/test.sh installs the cryptography package)");
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(1),
        "verify_pack.py could not run: {}{}",
        out(&o),
        err(&o)
    );
    (o.status.success(), format!("{}{}", out(&o), err(&o)))
}

/// Both verifiers, which must agree on the verdict and name the same
/// problems.
fn verify_both(pack: &Path, key: &Path, expected: &[&str]) -> bool {
    let (ok, text) = verify(pack, key);
    let (py_ok, py_text) = verify_independently(pack, key);
    assert_eq!(
        ok, py_ok,
        "the verifiers disagree:\n{text}\n--- independent:\n{py_text}"
    );
    for (who, t) in [("gatehouse", &text), ("verify_pack.py", &py_text)] {
        assert!(
            t.contains(if ok {
                "RESULT: VERIFIED"
            } else {
                "RESULT: FAILED"
            }),
            "{who}:\n{t}"
        );
        for e in expected {
            assert!(t.contains(e), "{who}: expected \"{e}\" in:\n{t}");
        }
    }
    ok
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Copy the pack, alter the copy with `alter`, verify it with `key`, and
/// expect failure with every one of `expected` in the output.
fn tampered(
    pack: &Path,
    scratch: &Path,
    name: &str,
    key: &Path,
    alter: impl FnOnce(&Path),
    expected: &[&str],
) {
    let copy = scratch.join(name);
    copy_dir(pack, &copy);
    alter(&copy);
    let ok = verify_both(&copy, key, expected);
    assert!(!ok, "{name}: the altered pack must not verify");
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = at.min(bytes.len() - 1);
    bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
    std::fs::write(path, bytes).unwrap();
}

fn edit_lines(path: &Path, edit: impl FnOnce(&mut Vec<String>)) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    edit(&mut lines);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn date(days_from_today: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days_from_today))
        .format("%Y-%m-%d")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evidence_pack_verifies_offline_and_every_alteration_is_named() {
    let gw = TestGateway::start_with("", "", with_approvals_and_access).await;
    let held = session_mix(&gw).await;
    let work = tempfile::tempdir().unwrap();
    let pack = work.path().join("pack");
    let key = gw.dir.path().join("state").join("audit-signing.key.pub");

    // The pack is written while the gateway runs: the CLI waits for the
    // gateway's next checkpoint to anchor the period's end.
    let o = gw
        .cli(&[
            "evidence",
            "--from",
            &date(-1),
            "--to",
            &date(1),
            "--out",
            pack.to_str().unwrap(),
        ])
        .await;
    assert!(o.status.success(), "evidence: {}{}", out(&o), err(&o));
    assert!(out(&o).contains("chain intact"), "{}", out(&o));

    // The examiner's key, printed by the operator.
    let o = gw.cli(&["audit", "public-key"]).await;
    assert!(o.status.success());
    assert_eq!(out(&o), std::fs::read_to_string(&key).unwrap());
    assert!(err(&o).contains("fingerprint SHA256:"), "{}", err(&o));
    let (state, config) = gw.stop().await;
    let config_text = std::fs::read_to_string(&config).unwrap();
    // The stop is in the trail, before the closing checkpoint.
    let mut trail = Vec::new();
    gatehouse_audit::export_range_jsonl(
        &state.path().join("state").join("audit.db"),
        &mut trail,
        1,
        u64::MAX,
    )
    .unwrap();
    let last = String::from_utf8(trail).unwrap();
    let last: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "gateway.stop", "{last}");
    // Keep a copy for people to open (target/tmp/evidence/pack).
    let kept = shots_dir().join("pack");
    let _ = std::fs::remove_dir_all(&kept);
    copy_dir(&pack, &kept);
    std::fs::copy(&key, shots_dir().join("gateway.pub")).unwrap();

    // Verifies offline, from the pack and the public key alone.
    let (ok, text) = verify(&pack, &key);
    assert!(ok, "{text}");
    assert!(text.contains("RESULT: VERIFIED"), "{text}");
    for area in [
        "key",
        "manifest",
        "files",
        "chain",
        "checkpoints",
        "sessions",
        "period",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("ok") && l.contains(area)),
            "{area} checked: {text}"
        );
    }
    assert!(
        !text.contains("note:"),
        "the end is anchored by a checkpoint: {text}"
    );
    assert!(
        verify_both(&pack, &key, &[]),
        "the independent verifier agrees"
    );

    // What is in it.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pack.join("manifest.json")).unwrap())
            .unwrap();
    let paths: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for p in [
        "events.jsonl",
        "checkpoints.jsonl",
        "report.html",
        "control-map.html",
        "control-map.json",
        "summary.json",
        "README.txt",
        "SPEC.md",
    ] {
        assert!(paths.contains(&p), "{p} in {paths:?}");
    }
    assert!(manifest["segment"]["closing_checkpoint"].is_array());
    assert_eq!(manifest["segment"]["unsigned_tail"], 0);
    let sessions = manifest["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "alice, dana, eve: {sessions:?}");
    let session_file = sessions[0]["events_file"].as_str().unwrap().to_string();

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pack.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["blocked"][0]["rule"], "analysts-read-only");
    assert!(summary["masking"]["ssn"]["values"].as_u64().unwrap() >= 5);
    // Card numbers are counted as card numbers (the demo's column rules
    // name each kind of value), not as SSNs.
    assert!(
        summary["masking"]["card_number"]["values"]
            .as_u64()
            .unwrap()
            >= 5
    );
    let approval = &summary["approvals"][held.to_string()];
    assert_eq!(approval["outcome"], "executed");
    assert_eq!(
        approval["decisions"][0]["reason"],
        "ticket CHG-7 checked with the customer"
    );
    assert!(approval["decisions"][0]["approver"]
        .as_str()
        .unwrap()
        .starts_with("omar"));
    assert_eq!(summary["grants"].as_object().unwrap().len(), 1);
    let refusal_kinds: Vec<&str> = summary["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert!(refusal_kinds.contains(&"auth.failure"), "{refusal_kinds:?}");
    assert!(
        refusal_kinds.contains(&"access.denied"),
        "{refusal_kinds:?}"
    );

    // The policy in force: recorded at the gateway's start, the SHA-256 of
    // the very file the operator holds, its signing key announced.
    let policies = summary["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 1, "{policies:?}");
    assert_eq!(policies[0]["reason"], "start");
    assert_eq!(
        policies[0]["sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            config_text.as_bytes()
        ))
    );
    let starts = summary["gateway"].as_array().unwrap();
    assert_eq!(starts[0]["kind"], "gateway.start");
    assert_eq!(
        starts[0]["key_fingerprint"],
        manifest["signing_key"]["fingerprint"]
    );

    let report = std::fs::read_to_string(pack.join("report.html")).unwrap();
    // Values from the trail are escaped wherever they appear: the probe is
    // in alice's recording as text, and no page holds a script element.
    let mut pages = vec![report.clone()];
    for s in sessions {
        pages.push(std::fs::read_to_string(pack.join(s["html_file"].as_str().unwrap())).unwrap());
    }
    assert!(
        pages.iter().all(|p| !p.contains("<script")),
        "no script in any page"
    );
    assert!(
        pages
            .iter()
            .any(|p| p.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;")),
        "the probe is shown, escaped"
    );
    for needle in [
        "Chain verified at export: intact",
        "ticket CHG-7 checked with the customer",
        "analysts-read-only",
        "INC-42 investigation",
        "investigation over",
        "sign-in failed",
        "SSN",
        "Policy in force",
        "gateway started",
        "Signing key custody",
        "omar approved dana\u{2019}s request",
    ] {
        assert!(report.contains(needle), "the report shows {needle}");
    }

    // Every alteration is detected and named.
    let scratch = work.path().join("tampered");
    tampered(
        &pack,
        &scratch,
        "report-byte",
        &key,
        |p| flip_byte(&p.join("report.html"), 2000),
        &[
            "files: report.html: its SHA-256 is",
            "altered after the pack was signed",
        ],
    );
    let sf = session_file.clone();
    tampered(
        &pack,
        &scratch,
        "recording-byte",
        &key,
        move |p| flip_byte(&p.join(&sf), 40),
        &[
            &format!("files: {session_file}: its SHA-256"),
            &format!("sessions: {session_file} line 1"),
        ],
    );
    let deleted_seq = manifest["period"]["first_seq"].as_u64().unwrap() + 3;
    tampered(
        &pack,
        &scratch,
        "event-deleted",
        &key,
        |p| {
            edit_lines(&p.join("events.jsonl"), |lines| {
                let i = lines
                    .iter()
                    .position(|l| l.starts_with(&format!("{{\"seq\":{deleted_seq},")))
                    .unwrap();
                lines.remove(i);
            })
        },
        &[
            "files: events.jsonl: its SHA-256",
            &format!("chain: event {deleted_seq}: event {deleted_seq} is missing"),
        ],
    );
    tampered(
        &pack,
        &scratch,
        "event-edited",
        &key,
        |p| {
            edit_lines(&p.join("events.jsonl"), |lines| {
                let i = lines
                    .iter()
                    .position(|l| l.contains("delete from customers where id = 1"))
                    .unwrap();
                lines[i] = lines[i].replace("where id = 1", "where id = 2");
            })
        },
        &["its content does not match its hash: a field of this event was edited"],
    );
    tampered(
        &pack,
        &scratch,
        "checkpoint-signature",
        &key,
        |p| {
            edit_lines(&p.join("checkpoints.jsonl"), |lines| {
                let last = lines.len() - 1;
                let mut cp: serde_json::Value = serde_json::from_str(&lines[last]).unwrap();
                let sig = cp["signature"].as_str().unwrap().to_string();
                let flipped = format!(
                    "{}{}",
                    if sig.starts_with('0') { "1" } else { "0" },
                    &sig[1..]
                );
                cp["signature"] = flipped.into();
                lines[last] = cp.to_string();
            })
        },
        &[
            "checkpoints.jsonl: its SHA-256",
            "its signature does not verify with the given public key",
        ],
    );
    tampered(
        &pack,
        &scratch,
        "manifest-edited",
        &key,
        |p| {
            let path = p.join("manifest.json");
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(
                &path,
                text.replacen("\"created_at\": \"", "\"created_at\": \"1", 1),
            )
            .unwrap();
        },
        &["manifest: manifest.sig: the manifest's signature does not verify"],
    );
    tampered(
        &pack,
        &scratch,
        "signature-edited",
        &key,
        |p| flip_byte(&p.join("manifest.sig"), 10),
        &["manifest: manifest.sig:"],
    );
    tampered(
        &pack,
        &scratch,
        "file-added",
        &key,
        |p| std::fs::write(p.join("sessions").join("extra.html"), "<p>planted</p>").unwrap(),
        &["sessions/extra.html is in the pack but not in the signed manifest"],
    );
    tampered(
        &pack,
        &scratch,
        "file-deleted",
        &key,
        |p| std::fs::remove_file(p.join("control-map.html")).unwrap(),
        &["control-map.html is listed in the manifest but missing from the pack"],
    );
    let other_key = work.path().join("other.pub");
    std::fs::write(
        &other_key,
        gatehouse_audit::AuditSigner::ephemeral().public_key_pem(),
    )
    .unwrap();
    let ok = verify_both(
        &pack,
        &other_key,
        &[
            "key: the public key given (SHA256:",
            "is not the key the manifest names",
            "manifest: manifest.sig: the manifest's signature does not verify",
            "not the key the trail was signed with",
        ],
    );
    assert!(!ok, "the wrong key fails");

    // Retention: events past it are pruned up to a signed checkpoint; the
    // rest of the trail still verifies, and so does the pack exported before.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[audit]\n", "[audit]\nretention = { default = \"1s\" }\n"),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let cfg = config.to_str().unwrap();
    let o = run(&["--config", cfg, "audit", "prune", "--dry-run"]);
    assert!(
        o.status.success() && out(&o).contains("would remove"),
        "{}{}",
        out(&o),
        err(&o)
    );
    let o = run(&["--config", cfg, "audit", "prune"]);
    assert!(
        o.status.success() && out(&o).contains("signed prune record 1"),
        "{}{}",
        out(&o),
        err(&o)
    );
    let o = run(&["--config", cfg, "audit", "verify"]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains("were pruned under the retention policy"),
        "{}",
        out(&o)
    );
    assert!(
        verify_both(&pack, &key, &[]),
        "the pack exported before pruning still verifies"
    );

    // A reader's view: headless Chromium opens the report from disk.
    if browser_ready() {
        check_in_browser(&pack).await;
    }
}

/// Where screenshots go: kept after the test for people to look at.
fn shots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("evidence");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn check_in_browser(pack: &Path) {
    let shots = shots_dir();
    let shot = shots.join("report.png");
    let session_shot = shots.join("session.png");
    let pdf = shots.join("report.pdf");
    let o = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg("report.mjs")
            .arg("--report")
            .arg(pack.join("report.html"))
            .arg("--screenshot")
            .arg(&shot)
            .arg("--session-screenshot")
            .arg(&session_shot)
            .arg("--pdf")
            .arg(&pdf)
            .current_dir(BROWSER_DIR)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser finished in time")
    .expect("node runs");
    assert!(
        o.status.success(),
        "report.mjs failed:\n{}\n{}",
        out(&o),
        err(&o)
    );
    let seen: serde_json::Value =
        serde_json::from_str(out(&o).lines().last().unwrap_or_default()).unwrap();
    eprintln!("report screenshot: {}", shot.display());
    assert_eq!(seen["h1"], "Access evidence report", "{seen}");
    assert_eq!(seen["verdict"], "ok", "{seen}");
    let headings: Vec<&str> = seen["headings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h.as_str())
        .collect();
    for h in [
        "Summary",
        "Access by identity",
        "Sessions",
        "Approvals",
        "Blocked attempts",
        "Masking",
        "Access grants",
        "Refused sign-ins and connections",
        "Chain verification",
    ] {
        assert!(headings.contains(&h), "heading {h} in {headings:?}");
    }
    let figures = seen["figures"].as_array().unwrap();
    assert_eq!(figures.len(), 4, "{seen}");
    for f in figures {
        assert_eq!(f["svg"], true, "{f}");
        assert!(
            f["width"].as_u64().unwrap() > 300,
            "figures are drawn at a readable size: {f}"
        );
    }
    assert!(
        seen["cards"]["blocked attempts"].as_u64().unwrap() >= 1,
        "{seen}"
    );
    assert!(
        seen["cards"]["values masked"].as_u64().unwrap() >= 5,
        "{seen}"
    );
    assert!(
        seen["cards"]["refused sign-ins"].as_u64().unwrap() >= 2,
        "{seen}"
    );
    assert!(seen["approvals_text"]
        .as_str()
        .unwrap()
        .contains("ticket CHG-7 checked with the customer"));
    assert!(seen["blocked_text"]
        .as_str()
        .unwrap()
        .contains("analysts-read-only"));
    assert_eq!(seen["scripts"], 0);
    assert_eq!(
        seen["overflowing"], false,
        "no horizontal scrolling: {seen}"
    );
    assert_eq!(
        seen["external_requests"].as_array().unwrap().len(),
        0,
        "{seen}"
    );
    assert_eq!(
        seen["console_errors"].as_array().unwrap().len(),
        0,
        "{seen}"
    );
    assert!(
        seen["session"]["h1"]
            .as_str()
            .unwrap()
            .starts_with("Session"),
        "{seen}"
    );
    assert!(seen["session"]["rows"].as_u64().unwrap() >= 2, "{seen}");
    assert_eq!(seen["control_map"]["h1"], "Control map");
    assert_eq!(seen["control_map"]["disclaimer"], true);
    assert_eq!(
        seen["control_map"]["frameworks"].as_array().unwrap().len(),
        3,
        "{seen}"
    );
    assert!(
        seen["pdf"]["bytes"].as_u64().unwrap() > 10_000,
        "it prints: {seen}"
    );
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 20_000,
        "a screenshot was taken"
    );
}

/// One approver, two ways of deciding: omar approves dana's first change
/// with a token that carries his email (as the console's sign-in gives) and
/// denies her second from the CLI with a token that has none. The pack
/// names him the same way both times, says whose request it was, and keeps
/// his subject and issuer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_reads_the_same_whether_deciding_in_the_console_or_the_cli() {
    let gw = TestGateway::start_with("", "", with_approvals_and_access).await;
    let dana = gw.token("dana", &["dba"]);
    let omar_console = gw
        .gw
        .dev_issuer
        .as_ref()
        .unwrap()
        .issue(
            "omar",
            &["approvers".to_string()],
            Some("omar@example.com"),
            Duration::from_secs(600),
            gatehouse_identity::DEV_AUDIENCE,
        )
        .unwrap();
    let omar_cli = gw.token("omar", &["approvers"]);
    for (n, (verb, reason)) in [("approve", "CHG-8 checked"), ("deny", "no ticket")]
        .into_iter()
        .enumerate()
    {
        let sql = format!("update customers set phone = '555-01{n}0' where id = 2{n}");
        let held = gw.psql_background("dana", &dana, &[&sql], &[]);
        let request = gw.pending_request(&omar_cli).await;
        let id = request["id"].as_u64().unwrap().to_string();
        if n == 0 {
            let (status, body) = gw
                .decide(id.parse().unwrap(), &omar_console, verb, reason)
                .await;
            assert_eq!(status, 200, "{body}");
        } else {
            let o = gw
                .cli_as(&omar_cli, &["approvals", verb, &id, "--reason", reason])
                .await;
            assert!(o.status.success(), "{}{}", out(&o), err(&o));
        }
        let _ = held.await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let work = tempfile::tempdir().unwrap();
    let pack = work.path().join("pack");
    let o = gw
        .cli(&[
            "evidence",
            "--from",
            &date(-1),
            "--to",
            &date(1),
            "--out",
            pack.to_str().unwrap(),
        ])
        .await;
    assert!(o.status.success(), "evidence: {}{}", out(&o), err(&o));
    gw.stop().await;

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pack.join("summary.json")).unwrap()).unwrap();
    let decisions: Vec<&serde_json::Value> = summary["approvals"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|a| a["decisions"].as_array().unwrap())
        .collect();
    assert_eq!(decisions.len(), 2, "{summary}");
    for d in &decisions {
        assert_eq!(d["approver"], "omar@example.com", "{d}");
        assert_eq!(d["subject"], "omar");
        assert!(d["issuer"].as_str().unwrap().ends_with("/dev"), "{d}");
    }
    let report = std::fs::read_to_string(pack.join("report.html")).unwrap();
    for needle in [
        "omar@example.com approved dana\u{2019}s request #1: \u{201c}CHG-8 checked\u{201d}",
        "omar@example.com denied dana\u{2019}s request #2: \u{201c}no ticket\u{201d}",
    ] {
        assert!(report.contains(needle), "the report says {needle}");
    }
    assert!(!report.contains("by dana:"), "no decision reads as dana's");
}
