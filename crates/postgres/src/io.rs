//! Reading whole messages from a socket.

use crate::codec::frame::{self, Frame, FrameError};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a session's stream ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Socket error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer broke framing (oversized or impossible length).
    #[error("{0}")]
    Frame(#[from] FrameError),
}

/// A buffered reader that yields whole messages.
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wrap `inner`, starting with bytes already read.
    pub fn new(inner: R, leftover: BytesMut, max: usize) -> Self {
        FrameReader {
            inner,
            buf: leftover,
            max,
        }
    }

    /// The next tagged message, or `None` at a clean end of stream.
    pub async fn next(&mut self) -> Result<Option<Frame>, StreamError> {
        loop {
            if let Some(f) = frame::take_tagged(&mut self.buf, self.max)? {
                return Ok(Some(f));
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Read more bytes into the buffer without taking a message; `Ok(0)`
    /// at end of stream. Cancel-safe, so a session waiting on something
    /// else can still notice its client hang up.
    pub async fn fill(&mut self) -> Result<usize, StreamError> {
        Ok(self.inner.read_buf(&mut self.buf).await?)
    }

    /// Bytes read but not yet taken as messages.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The next message if one is already buffered, without reading.
    pub fn buffered(&mut self) -> Result<Option<Frame>, StreamError> {
        Ok(frame::take_tagged(&mut self.buf, self.max)?)
    }

    /// The next startup-family message, or `None` at end of stream.
    pub async fn next_startup(&mut self) -> Result<Option<Frame>, StreamError> {
        loop {
            if let Some(f) = frame::take_startup(&mut self.buf)? {
                return Ok(Some(f));
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Give back the stream and any bytes read past the last message.
    pub fn into_parts(self) -> (R, BytesMut) {
        (self.inner, self.buf)
    }
}
