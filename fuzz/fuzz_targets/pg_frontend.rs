//! What a PostgreSQL client sends the gateway: a startup-family packet,
//! then tagged frontend messages. The input is one connection's bytes.
//!
//! Entry points: `codec::frame::{take_startup, take_tagged}` and every
//! `codec::frontend::parse_*`. Every message body is also handed to every
//! decoder (not only the one its tag names), since a peer picks the tag.
//! Invariants checked besides "no panic": framing never loses or invents
//! bytes, and what the gateway re-encodes decodes to the same message.
#![no_main]

use bytes::BytesMut;
use gatehouse_postgres::codec::frame::{self, MAX_STARTUP_LEN};
use gatehouse_postgres::codec::frontend::{self, StartupPacket, PROTOCOL_V3};
use libfuzzer_sys::fuzz_target;

/// Smaller than the gateway's 64 MiB so a forged length is rejected, not buffered.
const MAX_MESSAGE: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut consumed = 0usize;

    // The first packet is untagged (StartupMessage, SSLRequest, CancelRequest).
    match frame::take_startup(&mut buf) {
        Ok(Some(f)) => {
            assert_eq!(f.tag, 0);
            assert!(f.raw.len() >= 4 && f.raw.len() <= MAX_STARTUP_LEN);
            assert_eq!(&f.raw[4..], &f.body[..]);
            consumed += f.raw.len();
            startup(&f.body);
        }
        Ok(None) | Err(_) => {}
    }

    // Then tagged messages until the bytes run out or framing fails.
    loop {
        match frame::take_tagged(&mut buf, MAX_MESSAGE) {
            Ok(Some(f)) => {
                assert!(f.raw.len() >= 5);
                assert_eq!(f.tag, f.raw[0]);
                assert_eq!(&f.raw[5..], &f.body[..]);
                consumed += f.raw.len();
                message(f.tag, &f.body);
            }
            Ok(None) | Err(_) => break,
        }
    }
    assert_eq!(
        consumed + buf.len(),
        data.len(),
        "framing lost or invented bytes"
    );

    // Decoders also see the raw input as a body, so short inputs reach them
    // without having to form a valid frame first.
    startup(data);
    message(
        data.first().copied().unwrap_or(0),
        data.get(1..).unwrap_or(&[]),
    );
});

fn startup(body: &[u8]) {
    if let Ok(StartupPacket::Startup { version, params }) = frontend::parse_startup(body) {
        if version == PROTOCOL_V3 {
            let pairs: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let wire = frontend::startup(&pairs);
            let back = frontend::parse_startup(&wire[4..]).expect("re-encoded startup decodes");
            assert_eq!(back, StartupPacket::Startup { version, params });
        }
    }
}

fn message(tag: u8, body: &[u8]) {
    // Every decoder on every body.
    let query = frontend::parse_query(body);
    let parse = frontend::parse_parse(body);
    let bind = frontend::parse_bind(body);
    let _ = frontend::parse_target(body, "Describe");
    let call = frontend::parse_function_call(body);
    let _ = frontend::parse_execute(body);
    let _ = frontend::parse_password(body);

    match tag {
        b'Q' => {
            if let Ok(sql) = query {
                let wire = frontend::query(sql);
                assert_eq!(frontend::parse_query(&wire[5..]), Ok(sql));
            }
        }
        b'P' => {
            if let Ok(p) = parse {
                if p.param_types.is_empty() {
                    let wire = frontend::parse(p.name, p.query);
                    assert_eq!(frontend::parse_parse(&wire[5..]).as_ref(), Ok(&p));
                }
            }
        }
        b'B' => {
            if let Ok(b) = bind {
                assert!(b.params.len() <= i16::MAX as usize);
            }
        }
        b'F' => {
            if let Ok(c) = call {
                for i in 0..c.args.len() + 1 {
                    let _ = c.int_arg(i);
                }
            }
        }
        _ => {}
    }
}
