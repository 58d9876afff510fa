//! Reading whole messages from a socket.

use crate::codec::frame::{self, Frame, FrameError};
use bytes::BytesMut;
use gatehouse_core::framed::{FramedReader, Framing};
use tokio::io::AsyncRead;

/// Why a session's stream ended abnormally.
pub type StreamError = gatehouse_core::framed::StreamError<FrameError>;

/// PostgreSQL's framing: a tag byte and a length.
pub struct Tagged;

impl Framing for Tagged {
    type Frame = Frame;
    type Error = FrameError;

    fn take(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, FrameError> {
        frame::take_tagged(buf, max)
    }
}

/// A buffered reader that yields whole messages.
pub type FrameReader<R> = FramedReader<R, Tagged>;

/// The next startup-family message (untagged: SSLRequest, StartupMessage,
/// CancelRequest), or `None` at end of stream.
pub async fn next_startup<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
) -> Result<Option<Frame>, StreamError> {
    reader.next_by(frame::take_startup).await
}
