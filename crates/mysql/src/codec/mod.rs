//! The MySQL client/server protocol as pure functions over bytes.
//!
//! Nothing here does I/O, so every parser can be unit- and property-tested
//! (and fuzzed) alone. [`frame`] cuts a byte stream into logical packets
//! with a bounded length; [`packets`] reads and writes the packets the
//! gateway needs to understand; [`rows`] reads and rewrites result rows in
//! the text and binary protocols.

pub mod frame;
pub mod packets;
pub mod rows;

pub use frame::{encode_packet, Packet};

/// A packet the gateway could not read. The message never contains packet
/// contents (they may hold a password or a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The packet ended before a field it announces.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A field holds a value the protocol does not allow.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// A cursor over a packet's payload.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Read `buf`; `what` names the packet in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    /// Bytes not yet read.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Position in the payload.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError::Truncated(self.what))?;
        let b = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated(self.what))?;
        self.pos = end;
        Ok(b)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    /// Little-endian u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// Little-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length-encoded integer; `None` for the NULL marker 0xfb.
    pub fn lenenc_int(&mut self) -> Result<Option<u64>, DecodeError> {
        let first = self.u8()?;
        Ok(Some(match first {
            0..=0xfa => first as u64,
            0xfb => return Ok(None),
            0xfc => self.u16()? as u64,
            0xfd => {
                let b = self.bytes(3)?;
                u32::from_le_bytes([b[0], b[1], b[2], 0]) as u64
            }
            0xfe => {
                let b = self.bytes(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                u64::from_le_bytes(a)
            }
            0xff => return Err(DecodeError::Invalid(self.what)),
        }))
    }

    /// A length-encoded string; `None` for NULL.
    pub fn lenenc_bytes(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.lenenc_int()? {
            None => Ok(None),
            Some(n) => {
                let n = usize::try_from(n).map_err(|_| DecodeError::Invalid(self.what))?;
                self.bytes(n).map(Some)
            }
        }
    }

    /// A length-encoded string that may not be NULL.
    pub fn lenenc_str(&mut self) -> Result<&'a [u8], DecodeError> {
        self.lenenc_bytes()?.ok_or(DecodeError::Invalid(self.what))
    }

    /// A NUL-terminated string (the NUL is consumed, not returned).
    pub fn nul_str(&mut self) -> Result<&'a [u8], DecodeError> {
        let rest = self.rest();
        let n = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or(DecodeError::Truncated(self.what))?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    /// A NUL-terminated string, or the rest of the packet if it has no NUL.
    pub fn nul_or_eof_str(&mut self) -> &'a [u8] {
        let rest = self.rest();
        match rest.iter().position(|b| *b == 0) {
            Some(n) => {
                self.pos += n + 1;
                &rest[..n]
            }
            None => {
                self.pos = self.buf.len();
                rest
            }
        }
    }
}

/// Append a length-encoded integer.
pub fn put_lenenc_int(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfa => out.push(n as u8),
        0xfb..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// Append a length-encoded string.
pub fn put_lenenc_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_lenenc_int(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn lenenc_round_trips(n in any::<u64>()) {
            let mut out = Vec::new();
            put_lenenc_int(&mut out, n);
            let mut r = Reader::new(&out, "test");
            prop_assert_eq!(r.lenenc_int().unwrap(), Some(n));
            prop_assert!(r.is_empty());
        }

        #[test]
        fn reader_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&b, "test");
            while !r.is_empty() {
                if r.lenenc_bytes().is_err() { break; }
            }
            let mut r = Reader::new(&b, "test");
            let _ = r.nul_str();
        }
    }
}
