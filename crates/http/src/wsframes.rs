//! Passive WebSocket (RFC 6455) decoding of relayed bytes, and the
//! Kubernetes channel protocol on top of it.
//!
//! After `kubectl exec` upgrades its request, the proxy relays opaque bytes
//! in both directions. To record the session (stdin, terminal output,
//! resizes, exit status) it runs one [`FrameDecoder`] per direction over a
//! copy of those bytes: it never answers pings or changes a byte, it only
//! watches. Chunks may split frames anywhere. Frames are buffered only up to
//! a bound; a larger frame is reported as [`WsEvent::Oversized`] and its
//! payload skipped as it passes, so memory stays flat whatever the client
//! sends. Protocol violations are errors: the proxy cannot record what it
//! cannot read, so it should end the session (fail closed).
//!
//! [`ExecDecoder`] turns messages into [`ExecEvent`]s following the
//! `channel.k8s.io` family of subprotocols: the first byte of each message
//! names the stream (0 stdin, 1 stdout, 2 stderr, 3 error/status, 4 resize,
//! 255 close in v5), the rest is its data; the `base64` variants send text
//! frames whose first character is the stream digit.
//!
//! No extension (permessage-deflate) is understood: the proxy should not let
//! one be negotiated, and frames with reserved bits set are errors here.

/// WebSocket frame opcodes the decoder understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// Continues a fragmented message.
    Continuation,
    /// A UTF-8 text message.
    Text,
    /// A binary message.
    Binary,
    /// The closing handshake.
    Close,
    /// A keep-alive request.
    Ping,
    /// A keep-alive answer.
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// Which peer sent the bytes a decoder watches; RFC 6455 requires clients
/// to mask every frame and servers never to, and a mismatch means the
/// decoder is reading the wrong direction or a broken peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// Client to server: frames are masked.
    Client,
    /// Server to client: frames are not masked.
    Server,
}

/// What one direction of a WebSocket connection carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// A complete data message, reassembled from its fragments and unmasked.
    Message {
        /// [`Opcode::Text`] or [`Opcode::Binary`].
        opcode: Opcode,
        /// The message's payload.
        payload: Vec<u8>,
    },
    /// A ping with its application data.
    Ping(Vec<u8>),
    /// A pong with its application data.
    Pong(Vec<u8>),
    /// The closing handshake: status code (if any) and reason.
    Close {
        /// The close status code, absent for an empty close frame.
        code: Option<u16>,
        /// The reason text (lossily decoded).
        reason: String,
    },
    /// A message larger than the bound: reported once, its bytes skipped
    /// (still relayed by the proxy, never buffered here).
    Oversized {
        /// The message's opcode.
        opcode: Opcode,
        /// The size known when the bound was crossed: the message so far
        /// plus the whole frame that crossed it.
        len: u64,
    },
}

/// A violation of RFC 6455 in the watched bytes; the decoder stays failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    /// An opcode RFC 6455 reserves.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// RSV1-3 set although no extension is understood.
    #[error("reserved bits set (an extension was negotiated?)")]
    ReservedBits,
    /// A client frame without a mask or a server frame with one.
    #[error("frame masking does not match the sender")]
    Masking,
    /// A control frame that is fragmented or longer than 125 bytes.
    #[error("invalid control frame")]
    InvalidControl,
    /// A continuation with no message to continue, or a new message while
    /// one is still fragmented.
    #[error("unexpected continuation state")]
    Fragmentation,
    /// A 64-bit length with the most significant bit set.
    #[error("invalid frame length")]
    Length,
    /// A close frame with a one-byte body.
    #[error("invalid close frame")]
    InvalidClose,
    /// Data frames after the closing handshake.
    #[error("data after close")]
    AfterClose,
}

#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    len: u64,
}

/// A passive, bounded, incremental WebSocket frame decoder for one direction.
pub struct FrameDecoder {
    sender: Sender,
    max_payload: usize,
    /// Header bytes gathered so far (at most 14).
    head: Vec<u8>,
    /// The frame whose payload is being read.
    frame: Option<Header>,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    /// Payload bytes of the current frame seen so far (for the mask offset).
    seen: u64,
    /// Whether the current frame's payload is being skipped.
    skipping: bool,
    /// The current control frame's payload.
    control: Vec<u8>,
    /// The data message being assembled: opcode and payload so far.
    message: Option<(Opcode, Vec<u8>)>,
    /// Whether an oversized message is being skipped to its last frame.
    dropped: bool,
    closed: bool,
    failed: Option<WsError>,
}

impl FrameDecoder {
    /// A decoder for bytes sent by `sender`, buffering messages of at most
    /// `max_payload` bytes.
    pub fn new(sender: Sender, max_payload: usize) -> Self {
        FrameDecoder {
            sender,
            max_payload,
            head: Vec::with_capacity(14),
            frame: None,
            remaining: 0,
            seen: 0,
            skipping: false,
            control: Vec::new(),
            message: None,
            dropped: false,
            closed: false,
            failed: None,
        }
    }

    /// Whether a close frame has been seen in this direction.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Decodes the next chunk of relayed bytes, appending what completed to
    /// `out`. After an error every later call returns the same error.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<WsEvent>) -> Result<(), WsError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        while !bytes.is_empty() {
            let used = match self.frame {
                None => self.read_header(bytes, out),
                Some(header) => Ok(self.read_payload(header, bytes)),
            };
            let used = match used {
                Ok(n) => n,
                Err(err) => {
                    self.failed = Some(err.clone());
                    return Err(err);
                }
            };
            bytes = &bytes[used..];
            if let Some(header) = self.frame {
                if self.remaining == 0 {
                    if let Err(err) = self.finish_frame(header, out) {
                        self.failed = Some(err.clone());
                        return Err(err);
                    }
                }
            }
        }
        Ok(())
    }

    /// Gathers header bytes; returns how many of `bytes` it consumed.
    fn read_header(&mut self, bytes: &[u8], out: &mut Vec<WsEvent>) -> Result<usize, WsError> {
        let mut used = 0;
        loop {
            let need = header_len(&self.head);
            if self.head.len() == need {
                break;
            }
            let Some(&b) = bytes.get(used) else {
                return Ok(used);
            };
            self.head.push(b);
            used += 1;
        }
        let header = parse_header(&self.head)?;
        self.head.clear();
        match (self.sender, header.mask.is_some()) {
            (Sender::Client, true) | (Sender::Server, false) => {}
            _ => return Err(WsError::Masking),
        }
        if self.closed {
            return Err(WsError::AfterClose);
        }
        self.start_frame(header, out)?;
        Ok(used)
    }

    fn start_frame(&mut self, header: Header, out: &mut Vec<WsEvent>) -> Result<(), WsError> {
        self.frame = Some(header);
        self.remaining = header.len;
        self.seen = 0;
        self.skipping = false;
        if header.opcode.is_control() {
            if !header.fin || header.len > 125 {
                return Err(WsError::InvalidControl);
            }
            self.control.clear();
            return Ok(());
        }
        let continuing = self.message.is_some() || self.dropped;
        match (header.opcode, continuing) {
            (Opcode::Continuation, false) => return Err(WsError::Fragmentation),
            (Opcode::Text | Opcode::Binary, true) => return Err(WsError::Fragmentation),
            _ => {}
        }
        if self.dropped {
            self.skipping = true;
            return Ok(());
        }
        let (opcode, so_far) = match &self.message {
            Some((opcode, buf)) => (*opcode, buf.len() as u64),
            None => (header.opcode, 0),
        };
        let total = so_far.saturating_add(header.len);
        if total > self.max_payload as u64 {
            out.push(WsEvent::Oversized { opcode, len: total });
            self.message = None;
            self.dropped = true;
            self.skipping = true;
        } else if self.message.is_none() {
            self.message = Some((opcode, Vec::with_capacity(header.len as usize)));
        }
        Ok(())
    }

    /// Consumes payload bytes of the current frame.
    fn read_payload(&mut self, header: Header, bytes: &[u8]) -> usize {
        let take = (self.remaining.min(bytes.len() as u64)) as usize;
        let chunk = &bytes[..take];
        // `start_frame` opened a message for every data frame it does not
        // skip, so a data frame always has one here.
        let target = match (self.skipping, header.opcode.is_control()) {
            (true, _) => None,
            (false, true) => Some(&mut self.control),
            (false, false) => self.message.as_mut().map(|(_, payload)| payload),
        };
        if let Some(target) = target {
            let start = target.len();
            target.extend_from_slice(chunk);
            if let Some(key) = header.mask {
                for (i, b) in target[start..].iter_mut().enumerate() {
                    *b ^= key[((self.seen + i as u64) % 4) as usize];
                }
            }
        }
        self.seen += take as u64;
        self.remaining -= take as u64;
        take
    }

    fn finish_frame(&mut self, header: Header, out: &mut Vec<WsEvent>) -> Result<(), WsError> {
        self.frame = None;
        match header.opcode {
            Opcode::Ping => out.push(WsEvent::Ping(std::mem::take(&mut self.control))),
            Opcode::Pong => out.push(WsEvent::Pong(std::mem::take(&mut self.control))),
            Opcode::Close => {
                let body = std::mem::take(&mut self.control);
                let (code, reason) = match body.len() {
                    0 => (None, String::new()),
                    1 => return Err(WsError::InvalidClose),
                    _ => (
                        Some(u16::from_be_bytes([body[0], body[1]])),
                        String::from_utf8_lossy(&body[2..]).into_owned(),
                    ),
                };
                self.closed = true;
                out.push(WsEvent::Close { code, reason });
            }
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                if header.fin {
                    self.dropped = false;
                    if let Some((opcode, payload)) = self.message.take() {
                        out.push(WsEvent::Message { opcode, payload });
                    }
                }
            }
        }
        Ok(())
    }
}

/// How many header bytes a frame needs, given the ones seen so far.
fn header_len(head: &[u8]) -> usize {
    if head.len() < 2 {
        return 2;
    }
    let ext = match head[1] & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if head[1] & 0x80 != 0 { 4 } else { 0 };
    2 + ext + mask
}

fn parse_header(head: &[u8]) -> Result<Header, WsError> {
    let fin = head[0] & 0x80 != 0;
    if head[0] & 0x70 != 0 {
        return Err(WsError::ReservedBits);
    }
    let bits = head[0] & 0x0F;
    let opcode = Opcode::from_bits(bits).ok_or(WsError::ReservedOpcode(bits))?;
    let masked = head[1] & 0x80 != 0;
    let (len, rest) = match head[1] & 0x7F {
        126 => (
            u64::from(u16::from_be_bytes([head[2], head[3]])),
            &head[4..],
        ),
        127 => {
            let mut be = [0u8; 8];
            be.copy_from_slice(&head[2..10]);
            let len = u64::from_be_bytes(be);
            if len >> 63 != 0 {
                return Err(WsError::Length);
            }
            (len, &head[10..])
        }
        n => (u64::from(n), &head[2..]),
    };
    let mask = masked.then(|| [rest[0], rest[1], rest[2], rest[3]]);
    Ok(Header {
        fin,
        opcode,
        mask,
        len,
    })
}

/// Encodes one frame, so the gateway can speak the protocol itself (for
/// instance to end an exec it refused with a status on channel 3). Pass a
/// mask key when writing as the client.
pub fn encode_frame(opcode: Opcode, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(if fin { 0x80 } else { 0 } | opcode.bits());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// The Kubernetes remote-command subprotocols, as named in
/// `Sec-WebSocket-Protocol`; which one was agreed decides how frames read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelProtocol {
    /// `channel.k8s.io`: binary frames, error channel carries plain text.
    Channel,
    /// `base64.channel.k8s.io`: text frames, base64 data.
    Base64Channel,
    /// `v4.channel.k8s.io`: binary frames, status as JSON on channel 3.
    V4,
    /// `v4.base64.channel.k8s.io`: as v4 in base64 text frames.
    V4Base64,
    /// `v5.channel.k8s.io`: v4 plus the close signal on channel 255.
    V5,
}

impl ChannelProtocol {
    /// The protocol named by a negotiated `Sec-WebSocket-Protocol` value;
    /// `None` for anything the recorder cannot read (the proxy should then
    /// refuse the upgrade rather than relay an unrecorded session).
    pub fn from_subprotocol(name: &str) -> Option<Self> {
        Some(match name.trim() {
            "channel.k8s.io" => ChannelProtocol::Channel,
            "base64.channel.k8s.io" => ChannelProtocol::Base64Channel,
            "v4.channel.k8s.io" => ChannelProtocol::V4,
            "v4.base64.channel.k8s.io" => ChannelProtocol::V4Base64,
            "v5.channel.k8s.io" => ChannelProtocol::V5,
            _ => return None,
        })
    }

    /// Whether text frames carry base64 (`base64.channel.k8s.io`, v4 base64).
    pub fn is_base64(self) -> bool {
        matches!(
            self,
            ChannelProtocol::Base64Channel | ChannelProtocol::V4Base64
        )
    }
}

/// What an exec or attach session carried, in recording terms.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecEvent {
    /// Bytes the client typed or piped (channel 0).
    Stdin(Vec<u8>),
    /// Bytes the container wrote to standard output (channel 1).
    Stdout(Vec<u8>),
    /// Bytes the container wrote to standard error (channel 2).
    Stderr(Vec<u8>),
    /// The client's terminal changed size (channel 4).
    Resize {
        /// Columns (`Width`).
        cols: u16,
        /// Rows (`Height`).
        rows: u16,
    },
    /// The outcome (channel 3): a `Status` object in v4/v5, the plain error
    /// text as a JSON string in the older protocols.
    Status(serde_json::Value),
    /// The peer closed one stream (v5 channel 255), e.g. stdin at EOF.
    Close(u8),
    /// The WebSocket closing handshake.
    Disconnect {
        /// The close status code, if any.
        code: Option<u16>,
    },
    /// A message larger than the decoder's bound, skipped unrecorded.
    Oversized {
        /// Its size as far as known.
        len: u64,
    },
}

/// Why a channel-protocol message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The WebSocket framing itself is broken.
    #[error(transparent)]
    Frame(#[from] WsError),
    /// A stream number the protocol does not define.
    #[error("unknown stream {0}")]
    UnknownStream(u8),
    /// A base64 frame that does not decode.
    #[error("invalid base64 payload")]
    Base64,
    /// A resize message that is not `{"Width":…,"Height":…}`.
    #[error("invalid resize message")]
    Resize,
}

/// Decodes one direction of an exec/attach WebSocket into [`ExecEvent`]s.
pub struct ExecDecoder {
    frames: FrameDecoder,
    protocol: ChannelProtocol,
    scratch: Vec<WsEvent>,
    failed: Option<ExecError>,
}

impl ExecDecoder {
    /// A decoder for bytes sent by `sender` under `protocol`, buffering
    /// messages of at most `max_payload` bytes.
    pub fn new(protocol: ChannelProtocol, sender: Sender, max_payload: usize) -> Self {
        ExecDecoder {
            frames: FrameDecoder::new(sender, max_payload),
            protocol,
            scratch: Vec::new(),
            failed: None,
        }
    }

    /// Decodes the next chunk of relayed bytes, appending events to `out`.
    /// Events decoded before an error are still appended; after an error
    /// every later call returns it again.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<ExecEvent>) -> Result<(), ExecError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let framing = self.frames.feed(bytes, &mut self.scratch);
        let mut result = framing.map_err(ExecError::from);
        for event in self.scratch.drain(..) {
            let decoded = match event {
                WsEvent::Message { opcode, payload } => {
                    decode_message(self.protocol, opcode, payload, out)
                }
                WsEvent::Close { code, .. } => {
                    out.push(ExecEvent::Disconnect { code });
                    Ok(())
                }
                WsEvent::Oversized { len, .. } => {
                    out.push(ExecEvent::Oversized { len });
                    Ok(())
                }
                WsEvent::Ping(_) | WsEvent::Pong(_) => Ok(()),
            };
            if let Err(err) = decoded {
                result = Err(err);
                break;
            }
        }
        self.scratch.clear();
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }
}

fn decode_message(
    protocol: ChannelProtocol,
    opcode: Opcode,
    payload: Vec<u8>,
    out: &mut Vec<ExecEvent>,
) -> Result<(), ExecError> {
    use base64::Engine as _;
    let (stream, data) = if protocol.is_base64() && opcode == Opcode::Text {
        let Some((&digit, rest)) = payload.split_first() else {
            return Ok(());
        };
        if !digit.is_ascii_digit() {
            return Err(ExecError::UnknownStream(digit));
        }
        let data = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| ExecError::Base64)?;
        (digit - b'0', data)
    } else {
        let Some((&stream, rest)) = payload.split_first() else {
            // An empty message carries no stream; nothing to record.
            return Ok(());
        };
        (stream, rest.to_vec())
    };
    let event = match stream {
        0 => ExecEvent::Stdin(data),
        1 => ExecEvent::Stdout(data),
        2 => ExecEvent::Stderr(data),
        3 => match protocol {
            ChannelProtocol::Channel | ChannelProtocol::Base64Channel => ExecEvent::Status(
                serde_json::Value::String(String::from_utf8_lossy(&data).into_owned()),
            ),
            _ => ExecEvent::Status(serde_json::from_slice(&data).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&data).into_owned())
            })),
        },
        4 => {
            #[derive(serde::Deserialize)]
            struct Size {
                #[serde(rename = "Width")]
                width: u16,
                #[serde(rename = "Height")]
                height: u16,
            }
            let size: Size = serde_json::from_slice(&data).map_err(|_| ExecError::Resize)?;
            ExecEvent::Resize {
                cols: size.width,
                rows: size.height,
            }
        }
        255 if protocol == ChannelProtocol::V5 => match data.first() {
            Some(&closed) => ExecEvent::Close(closed),
            None => return Ok(()),
        },
        other => return Err(ExecError::UnknownStream(other)),
    };
    // The API server opens each stream with an empty message; it says nothing.
    let empty = matches!(&event, ExecEvent::Stdin(d) | ExecEvent::Stdout(d) | ExecEvent::Stderr(d) if d.is_empty());
    if !empty {
        out.push(event);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn client(opcode: Opcode, fin: bool, payload: &[u8]) -> Vec<u8> {
        encode_frame(opcode, fin, payload, Some(KEY))
    }

    fn server(opcode: Opcode, fin: bool, payload: &[u8]) -> Vec<u8> {
        encode_frame(opcode, fin, payload, None)
    }

    fn decode(sender: Sender, max: usize, bytes: &[u8]) -> Result<Vec<WsEvent>, WsError> {
        let mut dec = FrameDecoder::new(sender, max);
        let mut out = Vec::new();
        dec.feed(bytes, &mut out)?;
        Ok(out)
    }

    fn msg(opcode: Opcode, payload: &[u8]) -> WsEvent {
        WsEvent::Message {
            opcode,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn rfc_examples() {
        // RFC 6455 section 5.7: "Hello" unmasked and masked.
        let unmasked = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        assert_eq!(
            decode(Sender::Server, 100, &unmasked).unwrap(),
            [msg(Opcode::Text, b"Hello")]
        );
        let masked = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(
            decode(Sender::Client, 100, &masked).unwrap(),
            [msg(Opcode::Text, b"Hello")]
        );
        // Fragmented "Hel" + "lo".
        let frags = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
        assert_eq!(
            decode(Sender::Server, 100, &frags).unwrap(),
            [msg(Opcode::Text, b"Hello")]
        );
        // Ping "Hello", and a 256-byte and a 65536-byte binary message.
        let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        assert_eq!(
            decode(Sender::Server, 100, &ping).unwrap(),
            [WsEvent::Ping(b"Hello".to_vec())]
        );
        let big = vec![7u8; 256];
        let frame = server(Opcode::Binary, true, &big);
        assert_eq!(&frame[..4], &[0x82, 0x7E, 0x01, 0x00]);
        assert_eq!(
            decode(Sender::Server, 1000, &frame).unwrap(),
            [msg(Opcode::Binary, &big)]
        );
        let huge = vec![9u8; 65536];
        let frame = client(Opcode::Binary, true, &huge);
        assert_eq!(&frame[..10], &[0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(
            decode(Sender::Client, 70000, &frame).unwrap(),
            [msg(Opcode::Binary, &huge)]
        );
    }

    #[test]
    fn control_frames_between_fragments() {
        let mut bytes = client(Opcode::Binary, false, b"ab");
        bytes.extend(client(Opcode::Ping, true, b"p"));
        bytes.extend(client(Opcode::Continuation, false, b"cd"));
        bytes.extend(client(Opcode::Pong, true, b""));
        bytes.extend(client(Opcode::Continuation, true, b"e"));
        bytes.extend(client(Opcode::Close, true, &[0x03, 0xE8, b'b', b'y', b'e']));
        assert_eq!(
            decode(Sender::Client, 100, &bytes).unwrap(),
            [
                WsEvent::Ping(b"p".to_vec()),
                WsEvent::Pong(Vec::new()),
                msg(Opcode::Binary, b"abcde"),
                WsEvent::Close {
                    code: Some(1000),
                    reason: "bye".into()
                },
            ]
        );
    }

    #[test]
    fn oversized_frames_are_reported_and_skipped() {
        let mut bytes = server(Opcode::Binary, true, &[1u8; 40]);
        bytes.extend(server(Opcode::Text, true, b"ok"));
        // A fragmented message that crosses the bound on its second frame.
        bytes.extend(server(Opcode::Binary, false, &[2u8; 10]));
        bytes.extend(server(Opcode::Continuation, false, &[3u8; 15]));
        bytes.extend(server(Opcode::Continuation, true, &[4u8; 15]));
        bytes.extend(server(Opcode::Binary, true, b"after"));
        let mut dec = FrameDecoder::new(Sender::Server, 20);
        let mut out = Vec::new();
        // Feed byte by byte: nothing bigger than the bound is ever held.
        for b in &bytes {
            dec.feed(std::slice::from_ref(b), &mut out).unwrap();
            assert!(dec.message.as_ref().is_none_or(|(_, m)| m.len() <= 20));
        }
        assert_eq!(
            out,
            [
                WsEvent::Oversized {
                    opcode: Opcode::Binary,
                    len: 40
                },
                msg(Opcode::Text, b"ok"),
                WsEvent::Oversized {
                    opcode: Opcode::Binary,
                    len: 25
                },
                msg(Opcode::Binary, b"after"),
            ]
        );
    }

    #[test]
    fn protocol_violations_fail_and_stay_failed() {
        let cases: Vec<(Sender, Vec<u8>, WsError)> = vec![
            (Sender::Server, vec![0x83, 0x00], WsError::ReservedOpcode(3)),
            (Sender::Server, vec![0xC1, 0x00], WsError::ReservedBits),
            (
                Sender::Client,
                server(Opcode::Text, true, b"x"),
                WsError::Masking,
            ),
            (
                Sender::Server,
                client(Opcode::Text, true, b"x"),
                WsError::Masking,
            ),
            (
                Sender::Server,
                server(Opcode::Ping, false, b"x"),
                WsError::InvalidControl,
            ),
            (
                Sender::Server,
                server(Opcode::Ping, true, &[0; 126]),
                WsError::InvalidControl,
            ),
            (
                Sender::Server,
                server(Opcode::Continuation, true, b"x"),
                WsError::Fragmentation,
            ),
            (
                Sender::Server,
                [
                    server(Opcode::Text, false, b"a"),
                    server(Opcode::Text, true, b"b"),
                ]
                .concat(),
                WsError::Fragmentation,
            ),
            (
                Sender::Server,
                vec![0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0],
                WsError::Length,
            ),
            (
                Sender::Server,
                server(Opcode::Close, true, b"x"),
                WsError::InvalidClose,
            ),
            (
                Sender::Server,
                [
                    server(Opcode::Close, true, b""),
                    server(Opcode::Text, true, b"b"),
                ]
                .concat(),
                WsError::AfterClose,
            ),
        ];
        for (sender, bytes, want) in cases {
            let mut dec = FrameDecoder::new(sender, 1000);
            let mut out = Vec::new();
            assert_eq!(dec.feed(&bytes, &mut out), Err(want.clone()), "{bytes:?}");
            assert_eq!(dec.feed(&[0x81, 0x00], &mut out), Err(want));
        }
    }

    fn exec_decode(protocol: ChannelProtocol, sender: Sender, bytes: &[u8]) -> Vec<ExecEvent> {
        let mut dec = ExecDecoder::new(protocol, sender, 1 << 20);
        let mut out = Vec::new();
        dec.feed(bytes, &mut out).unwrap();
        out
    }

    #[test]
    fn v5_exec_session() {
        let mut up = client(Opcode::Binary, true, b"\x00echo hi\n");
        let mut resize = vec![4u8];
        resize.extend_from_slice(br#"{"Width":120,"Height":40}"#);
        up.extend(client(Opcode::Binary, true, &resize));
        up.extend(client(Opcode::Binary, true, b"\xff\x00"));
        up.extend(client(Opcode::Close, true, &[0x03, 0xE8]));
        assert_eq!(
            exec_decode(ChannelProtocol::V5, Sender::Client, &up),
            [
                ExecEvent::Stdin(b"echo hi\n".to_vec()),
                ExecEvent::Resize {
                    cols: 120,
                    rows: 40
                },
                ExecEvent::Close(0),
                ExecEvent::Disconnect { code: Some(1000) },
            ]
        );

        let mut down = server(Opcode::Binary, true, b"\x01");
        down.extend(server(Opcode::Binary, true, b"\x01hi\r\n"));
        down.extend(server(Opcode::Binary, true, b"\x02oops"));
        down.extend(server(
            Opcode::Binary,
            true,
            b"\x03{\"metadata\":{},\"status\":\"Success\"}",
        ));
        down.extend(server(Opcode::Close, true, b""));
        assert_eq!(
            exec_decode(ChannelProtocol::V5, Sender::Server, &down),
            [
                ExecEvent::Stdout(b"hi\r\n".to_vec()),
                ExecEvent::Stderr(b"oops".to_vec()),
                ExecEvent::Status(serde_json::json!({"metadata": {}, "status": "Success"})),
                ExecEvent::Disconnect { code: None },
            ]
        );
    }

    #[test]
    fn channel_255_is_v5_only_and_unknown_streams_fail() {
        let bytes = server(Opcode::Binary, true, b"\xff\x00");
        let mut dec = ExecDecoder::new(ChannelProtocol::V4, Sender::Server, 100);
        assert_eq!(
            dec.feed(&bytes, &mut Vec::new()),
            Err(ExecError::UnknownStream(255))
        );
        let mut bytes = server(Opcode::Binary, true, b"\x01before");
        bytes.extend(server(Opcode::Binary, true, b"\x07x"));
        let mut dec = ExecDecoder::new(ChannelProtocol::V5, Sender::Server, 100);
        let mut out = Vec::new();
        assert_eq!(dec.feed(&bytes, &mut out), Err(ExecError::UnknownStream(7)));
        assert_eq!(out, [ExecEvent::Stdout(b"before".to_vec())]);
        let ok = server(Opcode::Binary, true, b"\x01after");
        assert_eq!(dec.feed(&ok, &mut out), Err(ExecError::UnknownStream(7)));
        let bytes = client(Opcode::Binary, true, b"\x04{\"Width\":-1}");
        let mut dec = ExecDecoder::new(ChannelProtocol::V5, Sender::Client, 100);
        assert_eq!(dec.feed(&bytes, &mut Vec::new()), Err(ExecError::Resize));
    }

    #[test]
    fn base64_and_legacy_protocols() {
        assert_eq!(
            ChannelProtocol::from_subprotocol("v4.base64.channel.k8s.io"),
            Some(ChannelProtocol::V4Base64)
        );
        assert_eq!(ChannelProtocol::from_subprotocol("SPDY/3.1"), None);
        let mut down = server(Opcode::Text, true, b"1aGkK");
        down.extend(server(Opcode::Text, true, b"3eyJzdGF0dXMiOiJGYWlsdXJlIn0="));
        assert_eq!(
            exec_decode(ChannelProtocol::V4Base64, Sender::Server, &down),
            [
                ExecEvent::Stdout(b"hi\n".to_vec()),
                ExecEvent::Status(serde_json::json!({"status": "Failure"})),
            ]
        );
        let down = server(Opcode::Binary, true, b"\x03command not found");
        assert_eq!(
            exec_decode(ChannelProtocol::Channel, Sender::Server, &down),
            [ExecEvent::Status(serde_json::json!("command not found"))]
        );
        let bad = server(Opcode::Text, true, b"1!!!");
        let mut dec = ExecDecoder::new(ChannelProtocol::Base64Channel, Sender::Server, 100);
        assert_eq!(dec.feed(&bad, &mut Vec::new()), Err(ExecError::Base64));
    }

    /// A message in a generated session: stream, payload, fragment sizes,
    /// whether a ping precedes it.
    fn session() -> impl Strategy<Value = Vec<(u8, Vec<u8>, Vec<usize>, bool)>> {
        proptest::collection::vec(
            (
                prop_oneof![Just(0u8), Just(1), Just(2)],
                proptest::collection::vec(any::<u8>(), 1..300),
                proptest::collection::vec(1usize..50, 0..4),
                any::<bool>(),
            ),
            1..12,
        )
    }

    fn encode_session(
        messages: &[(u8, Vec<u8>, Vec<usize>, bool)],
        sender: Sender,
    ) -> (Vec<u8>, Vec<ExecEvent>) {
        let mask = (sender == Sender::Client).then_some(KEY);
        let mut bytes = Vec::new();
        let mut events = Vec::new();
        for (stream, data, cuts, ping) in messages {
            if *ping {
                bytes.extend(encode_frame(Opcode::Ping, true, b"k", mask));
            }
            let mut payload = vec![*stream];
            payload.extend_from_slice(data);
            let mut rest = &payload[..];
            let mut opcode = Opcode::Binary;
            for cut in cuts {
                if *cut >= rest.len() {
                    break;
                }
                bytes.extend(encode_frame(opcode, false, &rest[..*cut], mask));
                rest = &rest[*cut..];
                opcode = Opcode::Continuation;
            }
            bytes.extend(encode_frame(opcode, true, rest, mask));
            events.push(match stream {
                0 => ExecEvent::Stdin(data.clone()),
                1 => ExecEvent::Stdout(data.clone()),
                _ => ExecEvent::Stderr(data.clone()),
            });
        }
        let mut resize = vec![4u8];
        resize.extend_from_slice(br#"{"Width":80,"Height":24}"#);
        bytes.extend(encode_frame(Opcode::Binary, true, &resize, mask));
        events.push(ExecEvent::Resize { cols: 80, rows: 24 });
        bytes.extend(encode_frame(Opcode::Close, true, &[0x03, 0xE8], mask));
        events.push(ExecEvent::Disconnect { code: Some(1000) });
        (bytes, events)
    }

    proptest! {
        #[test]
        fn any_split_yields_the_same_events(
            messages in session(),
            client_side in any::<bool>(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
        ) {
            let sender = if client_side { Sender::Client } else { Sender::Server };
            let (bytes, want) = encode_session(&messages, sender);
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut dec = ExecDecoder::new(ChannelProtocol::V5, sender, 1 << 16);
            let mut got = Vec::new();
            let mut start = 0;
            for point in points.into_iter().chain([bytes.len()]) {
                dec.feed(&bytes[start..point], &mut got).unwrap();
                start = point;
            }
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(exec_decode(ChannelProtocol::V5, sender, &bytes), want);
        }
    }
}
