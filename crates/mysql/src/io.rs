//! Reading whole packets from a socket.

use crate::codec::frame::{self, FrameError, Packet};
use bytes::BytesMut;
use gatehouse_core::framed::{FramedReader, Framing};
use tokio::io::AsyncRead;

/// Why a stream ended abnormally.
pub type StreamError = gatehouse_core::framed::StreamError<FrameError>;

/// MySQL's framing: a 3-byte length and a sequence number, logical
/// packets split at 16 MiB joined.
pub struct Packets;

impl Framing for Packets {
    type Frame = Packet;
    type Error = FrameError;

    fn take(buf: &mut BytesMut, max: usize) -> Result<Option<Packet>, FrameError> {
        frame::take(buf, max)
    }
}

/// A buffered reader that yields whole logical packets.
pub type PacketReader<R> = FramedReader<R, Packets>;

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
