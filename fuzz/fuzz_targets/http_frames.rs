//! The HTTP adapter's stream framers: server-sent events from an upstream
//! (LLM streaming) and WebSocket frames relayed for `kubectl exec`, with the
//! Kubernetes channel protocol on top.
//!
//! Input: byte 0 picks options (bit 0: WebSocket sender, bits 1-3: channel
//! protocol, bits 4-7: payload bound), bytes 1..=4 are chunk sizes, the rest
//! is the stream. Entry points: `sse::SseDecoder::{push, finish}`,
//! `wsframes::FrameDecoder::feed`, `wsframes::ExecDecoder::feed`.
//! Invariants (both documented in the modules): the result does not depend
//! on how the stream is chunked, and SSE events keep their exact bytes
//! (their raw bytes concatenated give back the stream).
#![no_main]

use gatehouse_http::sse::{encode_events, SseDecoder, SseError, SseEvent};
use gatehouse_http::wsframes::{
    ChannelProtocol, ExecDecoder, ExecError, ExecEvent, FrameDecoder, Sender, WsError, WsEvent,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let (opts, sizes, stream) = (data[0], &data[1..5], &data[5..]);
    let chunks = gatehouse_fuzz::chunks(stream, sizes);

    // --- SSE ---
    let max_event = 16 + usize::from(opts >> 4) * 64;
    let whole = sse(&[stream], max_event);
    let split = sse(&chunks, max_event);
    assert_eq!(whole, split, "SSE events depend on chunking");
    let big = sse(&chunks, usize::MAX);
    if let Ok(events) = &big {
        assert_eq!(
            encode_events(events),
            stream,
            "SSE raw bytes not kept exactly"
        );
        for ev in events {
            // An event written from its fields decodes to the same fields.
            let built = SseEvent {
                raw: Vec::new(),
                ..ev.clone()
            };
            if let Ok(back) = sse(&[&built.to_bytes()], usize::MAX) {
                if let [b] = &back[..] {
                    assert_eq!(b.data, ev.data);
                    assert_eq!(b.event, ev.event);
                }
            }
        }
    }

    // --- WebSocket ---
    let sender = if opts & 1 == 0 {
        Sender::Client
    } else {
        Sender::Server
    };
    let max_payload = usize::from(opts >> 4) * 17;
    let whole = ws(sender, max_payload, &[stream]);
    let split = ws(sender, max_payload, &chunks);
    assert_eq!(whole, split, "WebSocket events depend on chunking");

    let protocol = match (opts >> 1) & 7 {
        0 => ChannelProtocol::Channel,
        1 => ChannelProtocol::Base64Channel,
        2 => ChannelProtocol::V4,
        3 => ChannelProtocol::V4Base64,
        _ => ChannelProtocol::V5,
    };
    let whole = exec(protocol, sender, max_payload, &[stream]);
    let split = exec(protocol, sender, max_payload, &chunks);
    assert_eq!(whole, split, "exec events depend on chunking");
});

fn sse(chunks: &[&[u8]], max_event: usize) -> Result<Vec<SseEvent>, SseError> {
    let mut d = SseDecoder::new(max_event);
    let mut out = Vec::new();
    for c in chunks {
        out.extend(d.push(c)?);
        assert!(d.buffered() <= max_event);
    }
    out.extend(d.finish()?);
    Ok(out)
}

fn ws(sender: Sender, max: usize, chunks: &[&[u8]]) -> (Vec<WsEvent>, Option<WsError>, bool) {
    let mut d = FrameDecoder::new(sender, max);
    let mut out = Vec::new();
    for c in chunks {
        if let Err(e) = d.feed(c, &mut out) {
            // Stays failed with the same error.
            assert_eq!(d.feed(b"\x81\x00", &mut Vec::new()), Err(e.clone()));
            return (out, Some(e), d.is_closed());
        }
    }
    (out, None, d.is_closed())
}

fn exec(
    protocol: ChannelProtocol,
    sender: Sender,
    max: usize,
    chunks: &[&[u8]],
) -> (Vec<ExecEvent>, Option<ExecError>) {
    let mut d = ExecDecoder::new(protocol, sender, max);
    let mut out = Vec::new();
    for c in chunks {
        if let Err(e) = d.feed(c, &mut out) {
            return (out, Some(e));
        }
    }
    (out, None)
}
