//! Message framing: where one message ends, with bounded lengths.

use bytes::{Buf, Bytes, BytesMut};

/// One whole message: its type byte (0 for startup-family messages) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message type byte, or 0 for an untagged startup-family message.
    pub tag: u8,
    /// The body, without the type byte and length.
    pub body: Bytes,
    /// The whole message as it was on the wire, for relaying unchanged.
    pub raw: Bytes,
}

/// A framing violation: the peer is not speaking the protocol, or is abusing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The declared length is larger than this gateway accepts.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Declared length.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// The declared length is smaller than the length field itself.
    #[error("message declares an impossible length of {0} bytes")]
    BadLength(i64),
}

/// Largest startup-family message accepted (PostgreSQL itself uses 10000).
pub const MAX_STARTUP_LEN: usize = 10_000;

/// Default cap for all other messages: large enough for big `bytea` values
/// and COPY chunks, small enough that a forged length cannot exhaust memory.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 64 * 1024 * 1024;

/// Split one tagged message off the front of `buf`, if it is all there.
pub fn take_tagged(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let declared = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let len = check_len(declared, max)?;
    if buf.len() < 1 + len {
        buf.reserve(1 + len - buf.len());
        return Ok(None);
    }
    let raw = buf.split_to(1 + len).freeze();
    Ok(Some(Frame {
        tag: raw[0],
        body: raw.slice(5..),
        raw,
    }))
}

/// Split one untagged startup-family message (StartupMessage, SSLRequest,
/// CancelRequest, GSSENCRequest) off the front of `buf`.
pub fn take_startup(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let declared = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let len = check_len(declared, MAX_STARTUP_LEN)?;
    if buf.len() < len {
        return Ok(None);
    }
    let raw = buf.split_to(len).freeze();
    let mut body = raw.clone();
    body.advance(4);
    Ok(Some(Frame { tag: 0, body, raw }))
}

fn check_len(declared: i32, max: usize) -> Result<usize, FrameError> {
    if declared < 4 {
        return Err(FrameError::BadLength(i64::from(declared)));
    }
    let len = declared as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn needs_more_then_splits() {
        let mut buf = BytesMut::from(&b"Q\0\0\0\x09sel"[..]);
        assert_eq!(take_tagged(&mut buf, 100).unwrap(), None);
        buf.extend_from_slice(b"1\0Z");
        let f = take_tagged(&mut buf, 100).unwrap().unwrap();
        assert_eq!(f.tag, b'Q');
        assert_eq!(&f.body[..], b"sel1\0");
        assert_eq!(&buf[..], b"Z");
    }

    #[test]
    fn rejects_bad_and_oversized_lengths() {
        let mut buf = BytesMut::from(&b"Q\0\0\0\x02"[..]);
        assert_eq!(take_tagged(&mut buf, 100), Err(FrameError::BadLength(2)));
        let mut buf = BytesMut::from(&b"Q\x7f\xff\xff\xff"[..]);
        assert!(matches!(
            take_tagged(&mut buf, 100),
            Err(FrameError::TooLarge { .. })
        ));
        let mut buf = BytesMut::from(&b"\xff\xff\xff\xff"[..]);
        assert!(take_startup(&mut buf).is_err());
        let mut buf = BytesMut::from(&b"\0\x01\0\0"[..]);
        assert!(matches!(
            take_startup(&mut buf),
            Err(FrameError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn framing_never_panics_and_never_overreads(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = BytesMut::from(&data[..]);
            let mut consumed = 0;
            while let Ok(Some(f)) = take_tagged(&mut buf, 256) {
                consumed += f.raw.len();
                prop_assert!(f.raw.len() >= 5);
            }
            prop_assert!(consumed + buf.len() == data.len());
            let mut buf = BytesMut::from(&data[..]);
            let _ = take_startup(&mut buf);
        }
    }
}
