//! Malformed and hostile input closes that session with an error, never the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;
use support::{err, login_raw, read_frame, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn read_some(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_oversized_and_truncated_packets_are_contained() {
    let gw = TestGateway::start("", "").await;
    let addr = gw.gw.postgres_addr;
    // An impossible start-up length.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    let _ = read_some(&mut s).await; // closed, with or without an error message
                                     // A start-up packet that claims 1 MiB.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&(1_048_576u32).to_be_bytes()).await.unwrap();
    let _ = read_some(&mut s).await;
    // A well-formed start-up with a malformed parameter list.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut pkt = vec![0, 0, 0, 0, 0, 3, 0, 0];
    pkt.extend_from_slice(b"user\0alice"); // no terminator
    let len = pkt.len() as u32;
    pkt[..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&pkt).await.unwrap();
    let reply = read_some(&mut s).await;
    assert!(
        reply.first() == Some(&b'E'),
        "protocol error is reported: {reply:?}"
    );
    // Random bytes after connecting.
    for seed in 0..20u8 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let junk: Vec<u8> = (0..200u32)
            .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed))
            .collect();
        let _ = s.write_all(&junk).await;
        let _ = read_some(&mut s).await;
    }
    // After all that, a real client still works.
    let token = gw.token("alice", &["analysts"]);
    let o = gw.psql("alice", &token, &["select 1"]).await;
    assert!(o.status.success(), "{}", err(&o));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_after_login_ends_only_that_session() {
    let gw = TestGateway::start_with("", "", support::plaintext).await;
    let token = gw.token("alice", &["analysts"]);
    let (mut s, mut buf) = login_raw(&gw, "alice", "analysts").await;
    // A Query claiming 100 MiB: over the 64 MiB limit.
    let mut q = vec![b'Q'];
    q.extend_from_slice(&(100u32 * 1024 * 1024).to_be_bytes());
    q.extend_from_slice(b"select 1");
    s.write_all(&q).await.unwrap();
    let f = read_frame(&mut s, &mut buf).await;
    assert_eq!(f.tag, b'E');
    let notice = gatehouse_postgres::codec::backend::parse_notice(&f.body).unwrap();
    assert_eq!(notice.get(b'C'), Some("08P01"));
    assert!(
        notice.get(b'M').unwrap().contains("exceeds the limit"),
        "{notice:?}"
    );
    // The gateway is fine: a new session works.
    let o = gw.psql("alice", &token, &["select 1"]).await;
    assert!(o.status.success(), "{}", err(&o));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_refused_at_parse_cannot_be_bound_afterwards() {
    use gatehouse_postgres::codec::{backend, Writer};
    let gw = TestGateway::start_with("", "", support::plaintext).await;
    let (mut s, mut buf) = login_raw(&gw, "alice", "analysts").await;
    let parse = |sql: &str| Writer::new(b'P').cstr("").cstr(sql).i16(0).finish();
    let sync = Writer::new(b'S').finish();
    // 1. A harmless unnamed statement reaches the target.
    let mut batch = parse("select ssn, name from customers order by id limit 1");
    batch.extend_from_slice(&sync);
    // 2. A blocked Parse replaces it on the gateway's side only.
    batch.extend_from_slice(&parse("delete from customers"));
    batch.extend_from_slice(&sync);
    // 3. Binding the unnamed statement now must not run the old one unmasked.
    batch.extend_from_slice(
        &Writer::new(b'B')
            .cstr("")
            .cstr("")
            .i16(0)
            .i16(0)
            .i16(0)
            .finish(),
    );
    batch.extend_from_slice(&Writer::new(b'E').cstr("").i32(0).finish());
    batch.extend_from_slice(&sync);
    s.write_all(&batch).await.unwrap();
    let mut tags = Vec::new();
    let mut errors = Vec::new();
    let mut ready = 0;
    while ready < 3 {
        let f = read_frame(&mut s, &mut buf).await;
        tags.push(f.tag as char);
        match f.tag {
            b'E' => errors.push(backend::parse_notice(&f.body).unwrap()),
            b'Z' => ready += 1,
            b'D' => panic!("a row came back for a statement the gateway refused: {tags:?}"),
            _ => {}
        }
    }
    assert_eq!(errors.len(), 2, "{tags:?}");
    assert_eq!(errors[0].get(b'C'), Some("42501"));
    assert_eq!(errors[1].get(b'C'), Some("26000"), "{:?}", errors[1]);
    gw.stop().await;
}
