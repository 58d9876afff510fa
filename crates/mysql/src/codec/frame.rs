//! Packets on the wire: a 3-byte little-endian length, a sequence number,
//! the payload. A payload of 16 MiB − 1 or more continues in the next
//! packet; the logical packet is the concatenation.
//!
//! Check-then-parse: [`take`] returns `Ok(None)` until a whole logical
//! packet is buffered, and refuses one whose length passes the bound before
//! reading it, so a peer cannot make the gateway buffer without limit.

use bytes::{Buf, BytesMut};

/// Largest physical packet payload; a packet this long continues.
pub const MAX_CHUNK: usize = 0xff_ffff;

/// Default bound on a logical packet (the server's own default
/// `max_allowed_packet` is 16 MiB; the gateway's is 64 MiB).
pub const DEFAULT_MAX_PACKET_LEN: usize = 64 << 20;

/// One logical packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Sequence number of its first physical packet.
    pub seq: u8,
    /// Sequence number of its last physical packet.
    pub last_seq: u8,
    /// The payload, continuation packets joined.
    pub payload: Vec<u8>,
}

/// Framing that cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The logical packet would exceed the bound.
    #[error("packet of {len} bytes exceeds the limit of {max} bytes")]
    TooLong {
        /// Announced length so far.
        len: usize,
        /// The bound.
        max: usize,
    },
}

/// Take one logical packet off the front of `buf`, or `Ok(None)` if more
/// bytes are needed.
pub fn take(buf: &mut BytesMut, max: usize) -> Result<Option<Packet>, FrameError> {
    // First pass: find where the logical packet ends, without copying.
    let mut pos = 0usize;
    let mut total = 0usize;
    let mut chunks = 0usize;
    loop {
        let Some(h) = buf.get(pos..pos + 4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
        total += len;
        if total > max {
            return Err(FrameError::TooLong { len: total, max });
        }
        if buf.len() < pos + 4 + len {
            return Ok(None);
        }
        pos += 4 + len;
        chunks += 1;
        if len < MAX_CHUNK {
            break;
        }
    }
    let seq = buf[3];
    let mut payload = Vec::with_capacity(total);
    let mut last_seq = seq;
    for _ in 0..chunks {
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], 0]) as usize;
        last_seq = buf[3];
        buf.advance(4);
        payload.extend_from_slice(&buf[..len]);
        buf.advance(len);
    }
    Ok(Some(Packet {
        seq,
        last_seq,
        payload,
    }))
}

/// Append `payload` as packets starting at sequence `*seq`, advancing it
/// past the last one written.
pub fn encode_packet(out: &mut Vec<u8>, seq: &mut u8, payload: &[u8]) {
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_CHUNK);
        out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        out.push(*seq);
        *seq = seq.wrapping_add(1);
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        if n < MAX_CHUNK {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_packet_round_trips() {
        let mut out = Vec::new();
        let mut seq = 3;
        encode_packet(&mut out, &mut seq, b"\x03select 1");
        assert_eq!(seq, 4);
        let mut buf = BytesMut::from(&out[..]);
        let p = take(&mut buf, 1024).unwrap().unwrap();
        assert_eq!((p.seq, p.payload.as_slice()), (3, &b"\x03select 1"[..]));
        assert!(buf.is_empty());
    }

    #[test]
    fn large_packet_splits_and_joins() {
        let payload = vec![7u8; MAX_CHUNK + 10];
        let mut out = Vec::new();
        let mut seq = 0;
        encode_packet(&mut out, &mut seq, &payload);
        assert_eq!(seq, 2);
        let mut buf = BytesMut::from(&out[..]);
        let p = take(&mut buf, 64 << 20).unwrap().unwrap();
        assert_eq!(p.payload.len(), payload.len());
        assert_eq!((p.seq, p.last_seq), (0, 1));
        // Exactly MAX_CHUNK needs an empty trailer packet.
        let mut out = Vec::new();
        let mut seq = 0;
        encode_packet(&mut out, &mut seq, &vec![1u8; MAX_CHUNK]);
        assert_eq!(out.len(), MAX_CHUNK + 8);
    }

    #[test]
    fn oversized_packet_is_refused_before_it_is_read() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0x7f, 0][..]);
        assert!(matches!(
            take(&mut buf, 1 << 20),
            Err(FrameError::TooLong { .. })
        ));
    }

    proptest! {
        #[test]
        fn any_split_point_yields_the_same_packets(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..5),
            cut in 0usize..2000,
        ) {
            let mut wire = Vec::new();
            let mut seq = 0;
            for p in &payloads {
                encode_packet(&mut wire, &mut seq, p);
            }
            let cut = cut.min(wire.len());
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(p) = take(&mut buf, 1 << 20).unwrap() {
                got.push(p.payload);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(p) = take(&mut buf, 1 << 20).unwrap() {
                got.push(p.payload);
            }
            prop_assert_eq!(got, payloads);
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut buf = BytesMut::from(&b[..]);
            while let Ok(Some(_)) = take(&mut buf, 4096) {}
        }
    }
}
