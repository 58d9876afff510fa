//! One framed reader for every wire protocol.
//!
//! A buffered socket that yields whole messages, told by the protocol's
//! codec ([`Framing`]) where one ends. Messages are taken from the buffer
//! as they complete, so a batch of pipelined messages costs one read; the
//! bytes read past a message stay for the next (or for the TLS acceptor,
//! the target, the next stage: [`FramedReader::into_parts`]); and
//! [`FramedReader::fill`] reads without taking, so a session waiting on
//! something else (a decision) still notices its client hang up.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Where one message of a protocol ends: its codec's framing.
pub trait Framing {
    /// One whole message.
    type Frame;
    /// Why bytes cannot be a message (an oversized or impossible length).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Take the first whole message off `buf`, if it holds one; refuse
    /// one longer than `max`.
    fn take(buf: &mut BytesMut, max: usize) -> Result<Option<Self::Frame>, Self::Error>;
}

/// Why a stream ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum StreamError<E: std::error::Error + 'static> {
    /// Socket error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer broke framing.
    #[error("{0}")]
    Frame(E),
}

/// A buffered reader that yields whole messages of framing `F`.
pub struct FramedReader<R, F> {
    inner: R,
    buf: BytesMut,
    max: usize,
    framing: std::marker::PhantomData<F>,
}

impl<R: AsyncRead + Unpin, F: Framing> FramedReader<R, F> {
    /// Wrap `inner`, starting with bytes already read; messages longer
    /// than `max` are refused.
    pub fn new(inner: R, leftover: BytesMut, max: usize) -> Self {
        FramedReader {
            inner,
            buf: leftover,
            max,
            framing: std::marker::PhantomData,
        }
    }

    /// The next message, or `None` at a clean end of stream.
    pub async fn next(&mut self) -> Result<Option<F::Frame>, StreamError<F::Error>> {
        let max = self.max;
        self.next_by(|buf| F::take(buf, max)).await
    }

    /// The next message as `take` frames it (a protocol's other framing,
    /// such as PostgreSQL's untagged start-up messages), or `None` at a
    /// clean end of stream.
    pub async fn next_by<T>(
        &mut self,
        mut take: impl FnMut(&mut BytesMut) -> Result<Option<T>, F::Error>,
    ) -> Result<Option<T>, StreamError<F::Error>> {
        loop {
            if let Some(f) = take(&mut self.buf).map_err(StreamError::Frame)? {
                return Ok(Some(f));
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// The next message; end of stream is an error.
    pub async fn expect(&mut self) -> Result<F::Frame, StreamError<F::Error>> {
        self.next().await?.ok_or_else(|| {
            StreamError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ))
        })
    }

    /// The next message if one is already buffered, without reading.
    pub fn buffered(&mut self) -> Result<Option<F::Frame>, StreamError<F::Error>> {
        F::take(&mut self.buf, self.max).map_err(StreamError::Frame)
    }

    /// Read more bytes without taking a message; `Ok(0)` at end of stream.
    /// Cancel-safe.
    pub async fn fill(&mut self) -> Result<usize, StreamError<F::Error>> {
        Ok(self.inner.read_buf(&mut self.buf).await?)
    }

    /// Bytes read but not yet taken as messages.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The stream and the bytes read past the last message.
    pub fn into_parts(self) -> (R, BytesMut) {
        (self.inner, self.buf)
    }

    /// The stream.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}
