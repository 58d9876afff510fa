//! SIEM delivery end to end: a real audit store written by the real writer,
//! and real receivers started by the test (an RFC 5424 syslog listener over
//! TCP, another over TLS, a Splunk-HEC-compatible HTTP collector), which are
//! stopped and started again while the gateway keeps recording. Every event
//! must reach every sink, none must be skipped, the data path must not slow
//! down, and a restarted exporter must continue from its cursor.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use gatehouse_audit::{AuditConfig, AuditLog, Durability, NewEvent};
use gatehouse_siem::{Format, Siem, SiemConfig, SinkConfig, SinkKind};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

type Seen = Arc<Mutex<Vec<u64>>>;

fn seq_from_syslog(msg: &str) -> Option<u64> {
    let start = msg.find("seq=\"")? + 5;
    let end = msg[start..].find('"')? + start;
    msg[start..end].parse().ok()
}

/// Parse RFC 6587 octet-counted frames out of `buf`, leaving a partial one.
fn frames(buf: &mut Vec<u8>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(sp) = buf.iter().position(|b| *b == b' ') {
        let Some(len) = std::str::from_utf8(&buf[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            panic!(
                "bad frame header: {:?}",
                String::from_utf8_lossy(&buf[..sp.min(40)])
            );
        };
        if buf.len() < sp + 1 + len {
            break;
        }
        let msg = String::from_utf8(buf[sp + 1..sp + 1 + len].to_vec()).unwrap();
        buf.drain(..sp + 1 + len);
        out.push(msg);
    }
    out
}

/// A syslog receiver that can be stopped (closing every connection) and
/// started again on the same address.
struct SyslogReceiver {
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    seen: Seen,
    messages: Arc<Mutex<Vec<String>>>,
    task: Option<JoinHandle<()>>,
}

impl SyslogReceiver {
    async fn new(tls: Option<tokio_rustls::TlsAcceptor>) -> SyslogReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut r = SyslogReceiver {
            addr: listener.local_addr().unwrap(),
            tls,
            seen: Arc::default(),
            messages: Arc::default(),
            task: None,
        };
        r.serve(listener);
        r
    }

    fn serve(&mut self, listener: TcpListener) {
        let (tls, seen, messages) = (self.tls.clone(), self.seen.clone(), self.messages.clone());
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (tls, seen, messages) = (tls.clone(), seen.clone(), messages.clone());
                conns.spawn(async move {
                    let mut stream: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match tls {
                        Some(acceptor) => match acceptor.accept(tcp).await {
                            Ok(s) => Box::new(s),
                            Err(_) => return,
                        },
                        None => Box::new(tcp),
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        for msg in frames(&mut buf) {
                            seen.lock().unwrap().push(seq_from_syslog(&msg).unwrap());
                            messages.lock().unwrap().push(msg);
                        }
                    }
                });
            }
        }));
    }

    async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    async fn start(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

/// A Splunk-HEC-compatible collector: checks the token, answers like
/// Splunk, and can be taken down (refusing connections, and answering 503
/// on any connection that outlived it).
struct HecReceiver {
    addr: SocketAddr,
    seen: Seen,
    up: Arc<std::sync::atomic::AtomicBool>,
    task: Option<JoinHandle<()>>,
}

impl HecReceiver {
    async fn new() -> HecReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut r = HecReceiver {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            up: Arc::new(true.into()),
            task: None,
        };
        r.serve(listener);
        r
    }

    fn serve(&mut self, listener: TcpListener) {
        use axum::http::{HeaderMap, StatusCode};
        let (seen, up) = (self.seen.clone(), self.up.clone());
        up.store(true, std::sync::atomic::Ordering::SeqCst);
        let app = axum::Router::new().route(
            "/services/collector/event",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (seen, up) = (seen.clone(), up.clone());
                async move {
                    if !up.load(std::sync::atomic::Ordering::SeqCst) {
                        return (StatusCode::SERVICE_UNAVAILABLE, "down".to_string());
                    }
                    if headers.get("authorization").and_then(|v| v.to_str().ok())
                        != Some("Splunk test-hec-token")
                    {
                        return (
                            StatusCode::UNAUTHORIZED,
                            r#"{"text":"Invalid token","code":4}"#.into(),
                        );
                    }
                    let mut got = Vec::new();
                    for line in body.lines().filter(|l| !l.trim().is_empty()) {
                        let v: Value = serde_json::from_str(line).unwrap();
                        assert!(
                            v["time"].is_f64() && v["sourcetype"] == "gatehouse:audit",
                            "{v}"
                        );
                        got.push(v["event"]["metadata"]["sequence"].as_u64().unwrap());
                    }
                    seen.lock().unwrap().extend(got);
                    (StatusCode::OK, r#"{"text":"Success","code":0}"#.to_string())
                }
            }),
        );
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    async fn stop(&mut self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    async fn start(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

fn event(n: u64) -> NewEvent {
    match n % 5 {
        0 => NewEvent {
            kind: "auth.failure".into(),
            session_id: None,
            subject: None,
            connection: Some("bank".into()),
            data: json!({"user": "mallory", "client_addr": "10.1.2.3:5000", "reason": "bad token"}),
        },
        1 => NewEvent {
            kind: "command".into(),
            session_id: Some("s1".into()),
            subject: Some("alice".into()),
            connection: Some("bank".into()),
            data: json!({"sql": "delete from customers", "verdict": {"effect": "block", "rule": "ro", "message": "no"}}),
        },
        _ => NewEvent {
            kind: "command".into(),
            session_id: Some("s1".into()),
            subject: Some("alice".into()),
            connection: Some("bank".into()),
            data: json!({"sql": format!("select {n}"), "verdict": {"effect": "allow"}}),
        },
    }
}

async fn record(log: &AuditLog, from: u64, to: u64) -> Duration {
    let mut slowest = Duration::ZERO;
    for n in from..=to {
        let t = Instant::now();
        assert_eq!(log.record(event(n)).await.unwrap(), n);
        slowest = slowest.max(t.elapsed());
    }
    slowest
}

/// Every seq 1..=n at least once, and how often each came.
fn counts(seen: &Seen) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for s in seen.lock().unwrap().iter() {
        *m.entry(*s).or_default() += 1;
    }
    m
}

async fn wait_for_all(what: &str, seen: &Seen, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = counts(seen);
        if (1..=n).all(|s| c.contains_key(&s)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: missing {:?}",
            (1..=n).filter(|s| !c.contains_key(s)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn file_seqs(dir: &Path) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().contains("events.jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            *m.entry(v["seq"].as_u64().unwrap()).or_default() += 1;
        }
    }
    m
}

fn tls_pair(dir: &Path) -> (tokio_rustls::TlsAcceptor, PathBuf) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let ca = dir.join("syslog-ca.pem");
    std::fs::write(&ca, generated.cert.pem()).unwrap();
    let cert = rustls::pki_types::CertificateDer::from(generated.cert.der().to_vec());
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(generated.signing_key.serialize_der()).unwrap();
    let cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(cfg)), ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_every_sink_across_outages_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let db = state.join("audit.db");
    let log = AuditLog::open(AuditConfig {
        path: db.clone(),
        signing_key_path: state.join("audit.key"),
        durability: Durability::Normal,
        sync_window: gatehouse_audit::DEFAULT_SYNC_WINDOW,
        checkpoint_every: 1000,
        checkpoint_interval: Duration::from_secs(3600),
        anchor_file: None,
    })
    .unwrap();
    record(&log, 1, 25).await;

    let (acceptor, ca) = tls_pair(dir.path());
    let mut plain = SyslogReceiver::new(None).await;
    let mut tls = SyslogReceiver::new(Some(acceptor)).await;
    let mut hec = HecReceiver::new().await;
    std::env::set_var("GATEHOUSE_TEST_HEC_TOKEN", "test-hec-token");
    let cfg = SiemConfig {
        format: Format::Gatehouse,
        poll_interval_ms: 50,
        batch: 7,
        initial_backoff_ms: 50,
        max_backoff_secs: 1,
        timeout_secs: 2,
        cursor_dir: PathBuf::from("siem"),
        sinks: vec![
            SinkConfig {
                name: "archive".into(),
                format: None,
                kind: SinkKind::File {
                    path: PathBuf::from("siem/events.jsonl"),
                    rotate_bytes: 4000,
                    keep: 100,
                },
            },
            SinkConfig {
                name: "syslog-tcp".into(),
                format: None,
                kind: SinkKind::Syslog {
                    address: plain.addr.to_string(),
                    tls: false,
                    ca_file: None,
                    server_name: None,
                    app_name: "gatehouse".into(),
                    facility: 13,
                    hostname: Some("gw-test".into()),
                },
            },
            SinkConfig {
                name: "syslog-tls".into(),
                format: Some(Format::Ocsf),
                kind: SinkKind::Syslog {
                    address: tls.addr.to_string(),
                    tls: true,
                    ca_file: Some(ca.clone()),
                    server_name: Some("localhost".into()),
                    app_name: "gatehouse".into(),
                    facility: 13,
                    hostname: Some("gw-test".into()),
                },
            },
            SinkConfig {
                name: "splunk".into(),
                format: Some(Format::Ocsf),
                kind: SinkKind::SplunkHec {
                    url: format!("http://{}/services/collector/event", hec.addr),
                    token_env: Some("GATEHOUSE_TEST_HEC_TOKEN".into()),
                    token_file: None,
                    ca_file: None,
                    index: None,
                    sourcetype: "gatehouse:audit".into(),
                    source: "gatehouse".into(),
                },
            },
        ],
    };
    let siem = Siem::start(&cfg, &db, &state, dir.path()).unwrap();
    for (what, seen) in [
        ("syslog tcp", &plain.seen),
        ("syslog tls", &tls.seen),
        ("hec", &hec.seen),
    ] {
        wait_for_all(what, seen, 25).await;
    }

    // The messages are what a SIEM expects.
    let first = plain.messages.lock().unwrap()[0].clone();
    assert!(
        first.starts_with("<108>1 ") || first.starts_with("<110>1 "),
        "{first}"
    );
    assert!(
        first.contains(" gw-test gatehouse ") && first.contains("[gatehouse@32473 seq=\"1\""),
        "{first}"
    );
    let ocsf: Vec<Value> = tls
        .messages
        .lock()
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(m.split_once('\u{feff}').unwrap().1).unwrap())
        .collect();
    assert!(ocsf
        .iter()
        .any(|v| v["class_uid"] == 3002 && v["status_id"] == 2));
    assert!(ocsf
        .iter()
        .any(|v| v["class_uid"] == 6005 && v["disposition_id"] == 2));

    // Every receiver goes down; the gateway keeps recording, unhindered.
    plain.stop().await;
    tls.stop().await;
    hec.stop().await;
    let slowest = record(&log, 26, 50).await;
    assert!(
        slowest < Duration::from_secs(1),
        "recording slowed to {slowest:?}"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = siem.status();
    for name in ["syslog-tcp", "syslog-tls", "splunk"] {
        let s = status.iter().find(|s| s.name == name).unwrap();
        assert!(
            s.failures > 0 && s.last_error.is_some(),
            "{name} noticed the outage: {s:?}"
        );
        assert!(s.delivered_seq <= 50);
    }

    // They come back: everything missed arrives.
    plain.start().await;
    tls.start().await;
    hec.start().await;
    for (what, seen) in [
        ("syslog tcp", &plain.seen),
        ("syslog tls", &tls.seen),
        ("hec", &hec.seen),
    ] {
        wait_for_all(what, seen, 50).await;
    }

    // The exporter restarts: it continues from its cursors, not from event 1.
    siem.shutdown(Duration::from_secs(5)).await;
    record(&log, 51, 60).await;
    let siem = Siem::start(&cfg, &db, &state, dir.path()).unwrap();
    for (what, seen) in [
        ("syslog tcp", &plain.seen),
        ("syslog tls", &tls.seen),
        ("hec", &hec.seen),
    ] {
        wait_for_all(what, seen, 60).await;
        let c = counts(seen);
        assert_eq!(
            c[&1], 1,
            "{what}: event 1 was not sent again after the restart"
        );
        assert!(c.keys().all(|s| (1..=60).contains(s)), "{what}: {c:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while file_seqs(&state.join("siem")).len() < 60 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let files = file_seqs(&state.join("siem"));
    assert_eq!(
        files.keys().copied().collect::<Vec<_>>(),
        (1..=60).collect::<Vec<_>>()
    );
    assert!(
        files.values().all(|n| *n == 1),
        "the file sink writes each event once: {files:?}"
    );
    let rotated = std::fs::read_dir(state.join("siem"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("events.jsonl.")
        })
        .count();
    assert!(rotated >= 2, "the file was rotated");
    assert!(state.join("siem/splunk.cursor").exists());
    siem.shutdown(Duration::from_secs(5)).await;
    log.close().await;
}
