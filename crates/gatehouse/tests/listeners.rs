//! Every listener is served the same way (gatehouse_core::serve): a client
//! that connects and sends nothing is closed after the handshake timeout
//! while real clients are served, and past the connection cap a new
//! connection is refused in its protocol's words.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::{err, out, TestGateway};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const CAP: usize = 60;
const IDLE: usize = 50;

async fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(TcpStream::connect(addr).await.unwrap());
    }
    v
}

/// Everything the peer sends until it closes (or 10 s pass: not closed).
async fn read_until_closed(tcp: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_handshakes_time_out_and_the_cap_refuses_in_each_protocol() {
    let limits = format!("max_connections = {CAP}\nhandshake_timeout_secs = 2\n");
    let extra = format!(
        "[mysql]\nlisten = \"127.0.0.1:0\"\n{limits}\n[ssh]\nlisten = \"127.0.0.1:0\"\n{limits}\n[http]\nlisten = \"127.0.0.1:0\"\n{limits}\n"
    );
    let gw = TestGateway::start_with("", &extra, |t| {
        t.replacen(
            "[postgres]\nlisten = \"127.0.0.1:0\"\n",
            &format!("[postgres]\nlisten = \"127.0.0.1:0\"\n{limits}"),
            1,
        )
    })
    .await;
    let listeners = [
        ("postgres", gw.gw.postgres_addr),
        ("mysql", gw.gw.mysql_addr.unwrap()),
        ("ssh", gw.gw.ssh_addr.unwrap()),
        ("http", gw.gw.http_addr.unwrap()),
    ];
    let dana = gw.token("dana", &["dba"]);
    for (protocol, addr) in listeners {
        let mut idle = idle_connections(addr, IDLE).await;
        // A real client is served meanwhile.
        if protocol == "postgres" {
            let o = gw.psql("dana", &dana, &["select 41 + 1"]).await;
            assert!(o.status.success(), "{}", err(&o));
            assert!(out(&o).contains("42"), "{}", out(&o));
        }
        // Each idle one is closed after the handshake timeout (MySQL and
        // SSH greet first; the greeting is all they get).
        for tcp in &mut idle {
            let said = read_until_closed(tcp).await;
            assert!(
                said.is_some(),
                "{protocol}: an idle connection was not closed"
            );
        }
        // Past the cap, the next connection is refused in the protocol's words.
        let mut held = idle_connections(addr, CAP).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let said = read_until_closed(&mut extra)
            .await
            .expect("refused at once");
        let text = String::from_utf8_lossy(&said);
        match protocol {
            "postgres" => {
                assert_eq!(said.first(), Some(&b'E'), "{text}");
                assert!(
                    text.contains("53300") && text.contains("too many clients"),
                    "{text}"
                );
            }
            "mysql" => {
                // An ERR packet (0xff) with error 1040 in place of the greeting.
                assert_eq!(said.get(4), Some(&0xff), "{said:?}");
                assert_eq!(said.get(5..7), Some(&1040u16.to_le_bytes()[..]), "{said:?}");
                assert!(text.contains("Too many connections"), "{text}");
            }
            _ => assert!(said.is_empty(), "{protocol}: {text}"),
        }
        for tcp in &mut held {
            let _ = read_until_closed(tcp).await;
        }
    }
    // An HTTPS client that finishes TLS and sends no request is closed at
    // the handshake timeout too (the handshake ends with the first request).
    let http = gw.gw.http_addr.unwrap();
    let mut tls_only = tokio::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &http.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(20), tls_only.wait()).await;
    assert!(ended.is_ok(), "a TLS-only HTTPS client was not closed");
    // Once the idle ones are gone, clients are served again.
    let o = gw.psql("dana", &dana, &["select 1"]).await;
    assert!(o.status.success(), "{}", err(&o));
    gw.stop().await;
}
