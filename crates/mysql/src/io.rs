//! Reading whole packets from a socket.

use crate::codec::frame::{self, FrameError, Packet};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a stream ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Socket error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer broke framing (an oversized packet).
    #[error("{0}")]
    Frame(#[from] FrameError),
}

/// A buffered reader that yields whole logical packets.
pub struct PacketReader<R> {
    inner: R,
    buf: BytesMut,
    max: usize,
}

impl<R: AsyncRead + Unpin> PacketReader<R> {
    /// Wrap `inner`, starting with bytes already read.
    pub fn new(inner: R, leftover: BytesMut, max: usize) -> Self {
        PacketReader {
            inner,
            buf: leftover,
            max,
        }
    }

    /// The next packet, or `None` at a clean end of stream.
    pub async fn next(&mut self) -> Result<Option<Packet>, StreamError> {
        loop {
            if let Some(p) = frame::take(&mut self.buf, self.max)? {
                return Ok(Some(p));
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// The next packet; end of stream is an error.
    pub async fn expect(&mut self) -> Result<Packet, StreamError> {
        self.next().await?.ok_or_else(|| {
            StreamError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ))
        })
    }

    /// Read more bytes without taking a packet; `Ok(0)` at end of stream.
    /// Cancel-safe, so a session waiting on a decision notices a hang-up.
    pub async fn fill(&mut self) -> Result<usize, StreamError> {
        Ok(self.inner.read_buf(&mut self.buf).await?)
    }

    /// Bytes read but not yet taken.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The inner stream and unread bytes.
    pub fn into_parts(self) -> (R, BytesMut) {
        (self.inner, self.buf)
    }

    /// The inner stream.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// A stream that first yields bytes already read from it: a client may
/// send its TLS ClientHello right behind the SSLRequest, before the server
/// says anything, so those bytes must reach the TLS acceptor.
pub struct Prefixed<T> {
    prefix: BytesMut,
    inner: T,
}

impl<T> Prefixed<T> {
    /// Read `prefix` first, then `inner`.
    pub fn new(prefix: BytesMut, inner: T) -> Self {
        Prefixed { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
