//! PostgreSQL protocol v3 messages as pure functions over bytes.
//!
//! No I/O happens here: [`frame`] says whether a buffer holds a whole
//! message (check-then-parse; `Ok(None)` means "read more"), [`frontend`]
//! and [`backend`] decode the messages the gateway must understand and
//! encode the ones it must write. Everything the gateway only relays stays
//! as raw bytes. Every length read from the wire is checked against the
//! buffer and an upper bound before it is trusted.

pub mod backend;
pub mod frame;
pub mod frontend;

pub use frame::{Frame, FrameError};

/// A problem decoding a message body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {message} message: {problem}")]
pub struct DecodeError {
    /// Which message.
    pub message: &'static str,
    /// What was wrong.
    pub problem: &'static str,
}

/// A cursor over a message body that never reads past its end.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }

    fn err(&self, problem: &'static str) -> DecodeError {
        DecodeError {
            message: self.what,
            problem,
        }
    }

    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.buf.split_first().ok_or(self.err("truncated"))?;
        self.buf = rest;
        Ok(b)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(self.err("truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, DecodeError> {
        let b = self.bytes(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A count that must be non-negative and plausible for the bytes left
    /// (each element needs at least `min_each` bytes), so a forged count
    /// cannot make us allocate gigabytes.
    pub(crate) fn count16(&mut self, min_each: usize) -> Result<usize, DecodeError> {
        let n = self.i16()?;
        let n = usize::try_from(n).map_err(|_| self.err("negative count"))?;
        if n.saturating_mul(min_each) > self.buf.len() {
            return Err(self.err("count larger than the message"));
        }
        Ok(n)
    }

    /// A NUL-terminated UTF-8 string.
    pub(crate) fn cstr(&mut self) -> Result<&'a str, DecodeError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or(self.err("string not terminated"))?;
        let s = std::str::from_utf8(&self.buf[..end]).map_err(|_| self.err("string not UTF-8"))?;
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    /// A length-prefixed value (`-1` is NULL).
    pub(crate) fn value(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| self.err("negative value length"))?;
        self.bytes(len).map(Some)
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}

/// Builds one tagged message, filling in the length at the end.
pub struct Writer {
    buf: Vec<u8>,
    start: usize,
}

impl Writer {
    /// Start a message with type byte `tag` (0 for the untagged startup family).
    pub fn new(tag: u8) -> Writer {
        let mut buf = Vec::with_capacity(64);
        if tag != 0 {
            buf.push(tag);
        }
        let start = buf.len();
        buf.extend_from_slice(&[0, 0, 0, 0]);
        Writer { buf, start }
    }

    /// Append a byte.
    pub fn u8(mut self, v: u8) -> Self {
        self.buf.push(v);
        self
    }

    /// Append a big-endian i16.
    pub fn i16(mut self, v: i16) -> Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Append a big-endian i32.
    pub fn i32(mut self, v: i32) -> Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Append raw bytes.
    pub fn bytes(mut self, v: &[u8]) -> Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// Append a NUL-terminated string (an embedded NUL is cut there, since
    /// the protocol cannot carry it).
    pub fn cstr(mut self, v: &str) -> Self {
        let v = v.split('\0').next().unwrap_or("");
        self.buf.extend_from_slice(v.as_bytes());
        self.buf.push(0);
        self
    }

    /// Append a length-prefixed value (`None` is NULL).
    pub fn value(self, v: Option<&[u8]>) -> Self {
        match v {
            None => self.i32(-1),
            Some(b) => {
                let len = i32::try_from(b.len()).unwrap_or(i32::MAX);
                self.i32(len).bytes(b)
            }
        }
    }

    /// Finish: write the length and return the encoded message.
    pub fn finish(mut self) -> Vec<u8> {
        let len = (self.buf.len() - self.start) as u32;
        self.buf[self.start..self.start + 4].copy_from_slice(&len.to_be_bytes());
        self.buf
    }
}
