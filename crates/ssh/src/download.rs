//! Downloads on a connection that masks what it sends the user
//! (`mask_terminal = true`, and the caller not exempt from the detectors):
//! file content is masked as it streams, exactly like terminal output.
//!
//! What a reader must know about the two wire protocols:
//!
//! - **SFTP** reads are requests for `len` bytes at an `offset` of an open
//!   handle; clients keep many in flight and may send them out of order.
//!   Masking changes lengths (`[REDACTED:email]`), so offsets in the
//!   original and the masked file differ. The gateway therefore does not
//!   forward the client's READs of a masked handle: it reads the file from
//!   the target itself, in order (its own request ids, which the client
//!   never sees), masks it with one [`TextStream`], and answers each client
//!   READ by offset from the masked stream. A READ for data the gateway no
//!   longer holds (more than [`KEEP_BEHIND`] behind the furthest read
//!   served), or one so far ahead that reaching it would hold more than
//!   [`MAX_AHEAD`] unread, is refused with a failure status. `stat`/`fstat` still report the original size: OpenSSH's
//!   `sftp` and `scp` read until end of file, so they are not misled.
//! - **scp's legacy protocol** (`scp -f`) announces each file as
//!   `Cmode size name\n`, then sends exactly `size` bytes and a status byte;
//!   the sink acknowledges each step with a zero byte. The size comes
//!   before the content, so a masked file is held whole (up to
//!   [`SCP_MAX_MASKED`]) and announced with its masked size: the gateway
//!   acknowledges the target's `C` line itself and swallows the client's
//!   acknowledgement of the rewritten one.
//!
//! A download that is not text (a NUL byte or bytes that are not UTF-8 in
//! its first block) cannot be masked: it is refused unless a rule with
//! `kinds = ["binary"]` allows it, in which case it passes unchanged. A text
//! file that turns binary later is cut off there (refused).

use gatehouse_core::events::TransferMasking;
use gatehouse_core::mask::{sniff_text, MaskCounts, Masker, NotText, TextStream};
use std::collections::{HashMap, VecDeque};

/// Bytes read from the target per request of the gateway's own.
pub const READ_CHUNK: u32 = 64 * 1024;
/// Masked bytes kept behind the furthest read served, for a client that
/// asks again.
pub const KEEP_BEHIND: u64 = 1024 * 1024;
/// How much masked data no READ has taken the gateway holds, at most,
/// while reading on toward a READ further ahead.
pub const MAX_AHEAD: u64 = 8 * 1024 * 1024;
/// Largest masked file scp's legacy protocol can carry (held whole).
pub const SCP_MAX_MASKED: usize = 16 * 1024 * 1024;
/// Most data in one answer, as sftp-server caps it (a client asking for
/// more gets a short read, and asks again for the rest).
pub const MAX_SERVE: u32 = 255 * 1024;
/// How much of a download is looked at to tell text from binary.
pub const SNIFF: usize = 8 * 1024;

const FXP_READ: u8 = 5;
const FXP_STATUS: u8 = 101;
const FXP_DATA: u8 = 103;
const FX_EOF: u32 = 1;
const FX_FAILURE: u32 = 4;
const FX_PERMISSION_DENIED: u32 = 3;
/// Request ids of the gateway's own reads start here (OpenSSH clients
/// count up from 0).
const INTERNAL_IDS: u32 = 0xF000_0000;

/// What a rule says about a binary download.
#[derive(Debug, Clone)]
pub enum Binary {
    /// Passed unchanged: allowed by this rule.
    Allowed {
        /// The rule's name.
        rule: String,
    },
    /// Refused, with the message for the user.
    Refused {
        /// The rule that refused it, if one did (else the default).
        rule: Option<String>,
        /// Why, for the user.
        message: String,
    },
}

/// How one download ended, for its `file.transfer` event.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Path or name of the file.
    pub path: String,
    /// Bytes read from the target.
    pub bytes_in: u64,
    /// Bytes sent to the client.
    pub bytes_out: u64,
    /// `masked`, `passed` (binary allowed by a rule) or `refused`.
    pub result: &'static str,
    /// Values masked, by kind.
    pub counts: MaskCounts,
    /// The rule that allowed or refused a binary file.
    pub rule: Option<String>,
    /// Why it was passed or refused.
    pub reason: Option<String>,
}

impl Outcome {
    /// The `masking` part of the `file.transfer` event.
    pub fn event(&self) -> TransferMasking {
        TransferMasking {
            result: self.result.to_string(),
            masked: self.counts.clone(),
            bytes_sent: self.bytes_out,
            rule: self.rule.clone(),
            reason: self.reason.clone(),
        }
    }
}

/// Decides binary downloads: `(path, what was found) → verdict`.
pub type Decide<'a> = &'a dyn Fn(&str, &NotText) -> Binary;

#[derive(Debug)]
enum State {
    /// Nothing read yet.
    Start,
    /// Text, masked.
    Text(TextStream),
    /// Binary, passed by a rule.
    Passed,
    /// Refused; every READ is answered with this.
    Refused(String),
    /// The target failed a read: its status code and message.
    Failed(u32, String),
}

#[derive(Debug)]
struct File {
    path: String,
    state: State,
    /// Bytes ready to serve, starting at `base` in the served stream.
    buf: Vec<u8>,
    base: u64,
    /// Next offset to read from the target.
    target_off: u64,
    in_flight: bool,
    eof: bool,
    /// Client READs not answered yet: id, offset, length.
    waiting: VecDeque<(u32, u64, u32)>,
    served_end: u64,
    outcome: Outcome,
}

/// Packets to send after an event.
#[derive(Debug, Default)]
pub struct Out {
    /// To the client.
    pub client: Vec<Vec<u8>>,
    /// To the target.
    pub target: Vec<Vec<u8>>,
    /// A line for the user's terminal (stderr of the channel).
    pub notice: Option<String>,
}

/// The masked downloads of one SFTP channel.
#[derive(Debug, Default)]
pub struct SftpDownloads {
    files: HashMap<Vec<u8>, File>,
    /// The gateway's own requests: id → handle.
    internal: HashMap<u32, Vec<u8>>,
    next_id: u32,
}

impl SftpDownloads {
    /// A file opened for reading on a masking connection: its reads are
    /// served masked from now on.
    pub fn open(&mut self, handle: Vec<u8>, path: String) {
        self.files.insert(
            handle,
            File {
                path: path.clone(),
                state: State::Start,
                buf: Vec::new(),
                base: 0,
                target_off: 0,
                in_flight: false,
                eof: false,
                waiting: VecDeque::new(),
                served_end: 0,
                outcome: Outcome {
                    path,
                    result: "masked",
                    ..Default::default()
                },
            },
        );
    }

    /// Whether a client request id is one the gateway uses for its own
    /// reads right now (the client's request must then be refused).
    pub fn collides(&self, id: u32) -> bool {
        self.internal.contains_key(&id)
    }

    /// A READ from the client: `None` if it is not for a masked handle (forward it).
    pub fn client_packet(&mut self, packet: &[u8]) -> Option<Out> {
        let (id, handle, offset, len) = parse_read(packet)?;
        if !self.files.contains_key(handle) {
            return None;
        }
        let handle = handle.to_vec();
        let mut out = Out::default();
        if let Some(f) = self.files.get_mut(&handle) {
            f.waiting.push_back((id, offset, len));
        }
        self.pump(&handle, &mut out);
        Some(out)
    }

    /// A packet from the target: `None` if it answers a client request
    /// (forward it), else what to send now.
    pub fn target_packet(
        &mut self,
        packet: &[u8],
        masker: &Masker,
        decide: Decide<'_>,
    ) -> Option<Out> {
        let body = packet.get(4..)?;
        let kind = *body.first()?;
        let id = u32::from_be_bytes(body.get(1..5)?.try_into().ok()?);
        let handle = self.internal.remove(&id)?;
        let mut out = Out::default();
        let Some(f) = self.files.get_mut(&handle) else {
            // Closed meanwhile.
            return Some(out);
        };
        f.in_flight = false;
        let mut r = &body[5..];
        match kind {
            FXP_DATA => match take_string(&mut r) {
                Some(data) => {
                    f.target_off += data.len() as u64;
                    f.outcome.bytes_in += data.len() as u64;
                    take(f, data, masker, decide, &mut out);
                }
                None => {
                    f.state = State::Failed(FX_FAILURE, "malformed DATA from the target".into())
                }
            },
            FXP_STATUS => {
                let code = take_u32(&mut r).unwrap_or(FX_FAILURE);
                if code == FX_EOF {
                    f.eof = true;
                    if matches!(f.state, State::Start) {
                        f.state = State::Text(TextStream::new());
                    }
                    if let State::Text(t) = &mut f.state {
                        match t.finish(masker) {
                            Ok(bytes) => f.buf.extend_from_slice(&bytes),
                            Err(e) => refuse_binary(f, &e, &mut out),
                        }
                    }
                } else {
                    let msg = take_string(&mut r)
                        .map(|m| String::from_utf8_lossy(m).into_owned())
                        .unwrap_or_default();
                    f.state = State::Failed(code, msg);
                }
            }
            _ => f.state = State::Failed(FX_FAILURE, "unexpected answer from the target".into()),
        }
        self.pump(&handle, &mut out);
        Some(out)
    }

    /// The client closed a handle: how its download ended, if it was masked.
    pub fn close(&mut self, handle: &[u8]) -> Option<Outcome> {
        self.files.remove(handle).map(finish_outcome)
    }

    /// Downloads still open when the channel ends.
    pub fn unfinished(&mut self) -> Vec<Outcome> {
        self.files.drain().map(|(_, f)| finish_outcome(f)).collect()
    }

    /// Answer every READ that can be answered, drop what no READ can need
    /// any more, and ask the target for more if a READ waits for it.
    fn pump(&mut self, handle: &[u8], out: &mut Out) {
        let Some(f) = self.files.get_mut(handle) else {
            return;
        };
        let mut still = VecDeque::new();
        while let Some((id, offset, len)) = f.waiting.pop_front() {
            let end_known = f.base + f.buf.len() as u64;
            match &f.state {
                State::Refused(m) => {
                    out.client
                        .push(status(id, FX_PERMISSION_DENIED, &format!("gatehouse: {m}")));
                    continue;
                }
                State::Failed(code, m) if offset >= end_known => {
                    out.client.push(status(id, *code, m));
                    continue;
                }
                _ => {}
            }
            if offset < f.base {
                out.client.push(status(
                    id,
                    FX_FAILURE,
                    "gatehouse masks this file as it streams and no longer holds this part; read it again from the start",
                ));
                continue;
            }
            // A read past what is masked waits while the gateway reads on;
            // it fails only if that would hold more than MAX_AHEAD that no
            // read has taken (reads past the end get EOF, as usual).
            if offset > end_known && f.buf.len() as u64 >= MAX_AHEAD + KEEP_BEHIND {
                out.client.push(status(
                    id,
                    FX_FAILURE,
                    "gatehouse masks this file as it streams and serves it in order; this read is too far ahead",
                ));
                continue;
            }
            let want_end = offset + u64::from(len.min(MAX_SERVE));
            if want_end <= end_known || (f.eof && offset < end_known) {
                let from = (offset - f.base) as usize;
                let to = (want_end.min(end_known) - f.base) as usize;
                out.client.push(data(id, &f.buf[from..to]));
                f.outcome.bytes_out = f.outcome.bytes_out.max(want_end.min(end_known));
                f.served_end = f.served_end.max(want_end.min(end_known));
            } else if f.eof || matches!(f.state, State::Failed(..)) {
                out.client.push(status(id, FX_EOF, "end of file"));
            } else {
                still.push_back((id, offset, len));
            }
        }
        f.waiting = still;
        // Keep what a READ still waiting, or a client asking again, may need.
        let lowest = f
            .waiting
            .iter()
            .map(|w| w.1)
            .min()
            .unwrap_or(f.served_end)
            .min(f.served_end)
            .saturating_sub(KEEP_BEHIND);
        if lowest > f.base {
            let drop = ((lowest - f.base) as usize).min(f.buf.len());
            f.buf.drain(..drop);
            f.base += drop as u64;
        }
        let needs_more = !f.eof
            && !matches!(f.state, State::Refused(_) | State::Failed(..))
            && !f.waiting.is_empty();
        if needs_more && !f.in_flight {
            let id = INTERNAL_IDS | (self.next_id & 0x0FFF_FFFF);
            self.next_id = self.next_id.wrapping_add(1);
            self.internal.insert(id, handle.to_vec());
            f.in_flight = true;
            out.target
                .push(read_request(id, handle, f.target_off, READ_CHUNK));
        }
    }
}

/// Take bytes read from the target into a file's served stream.
fn take(f: &mut File, bytes: &[u8], masker: &Masker, decide: Decide<'_>, out: &mut Out) {
    if matches!(f.state, State::Start) {
        f.state = match sniff_text(&bytes[..bytes.len().min(SNIFF)]) {
            Ok(()) => State::Text(TextStream::new()),
            Err(e) => match decide(&f.path, &e) {
                Binary::Allowed { rule } => {
                    f.outcome.result = "passed";
                    f.outcome.reason = Some(format!("not text ({e}), allowed by rule"));
                    f.outcome.rule = Some(rule);
                    State::Passed
                }
                Binary::Refused { rule, message } => {
                    f.outcome.result = "refused";
                    f.outcome.rule = rule;
                    f.outcome.reason = Some(format!("not text ({e})"));
                    out.notice = Some(format!("gatehouse: {message}"));
                    State::Refused(message)
                }
            },
        };
    }
    match &mut f.state {
        State::Text(t) => match t.push(masker, bytes) {
            Ok(masked) => f.buf.extend_from_slice(&masked),
            Err(e) => refuse_binary(f, &e, out),
        },
        State::Passed => f.buf.extend_from_slice(bytes),
        _ => {}
    }
}

/// A text file turned out binary after it began to be served: the rest
/// is refused (what was served was masked text).
fn refuse_binary(f: &mut File, e: &NotText, out: &mut Out) {
    let message = format!(
        "{} is not text after all ({e}); the rest of it was withheld because a binary file cannot be masked",
        f.path
    );
    f.outcome.result = "refused";
    f.outcome.reason = Some(format!("not text ({e}) after masked text was sent"));
    out.notice = Some(format!("gatehouse: {message}"));
    f.state = State::Refused(message);
}

fn finish_outcome(f: File) -> Outcome {
    let mut o = f.outcome;
    if let State::Text(t) = &f.state {
        o.counts = t.counts.clone();
    }
    o
}

/// `(id, handle, offset, len)` of an SSH_FXP_READ.
fn parse_read(packet: &[u8]) -> Option<(u32, &[u8], u64, u32)> {
    let mut r = packet.get(4..)?;
    if *r.first()? != FXP_READ {
        return None;
    }
    r = &r[1..];
    let id = take_u32(&mut r)?;
    let handle = take_string(&mut r)?;
    let hi = take_u32(&mut r)?;
    let lo = take_u32(&mut r)?;
    let len = take_u32(&mut r)?;
    Some((id, handle, (u64::from(hi) << 32) | u64::from(lo), len))
}

fn take_u32(r: &mut &[u8]) -> Option<u32> {
    let b = r.get(..4)?;
    let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    *r = &r[4..];
    Some(v)
}

fn take_string<'a>(r: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = take_u32(r)? as usize;
    let s = r.get(..len)?;
    *r = &r[len..];
    Some(s)
}

fn frame(body: Vec<u8>) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn put_string(body: &mut Vec<u8>, s: &[u8]) {
    body.extend_from_slice(&(s.len() as u32).to_be_bytes());
    body.extend_from_slice(s);
}

/// An SSH_FXP_DATA answer.
fn data(id: u32, bytes: &[u8]) -> Vec<u8> {
    let mut body = vec![FXP_DATA];
    body.extend_from_slice(&id.to_be_bytes());
    put_string(&mut body, bytes);
    frame(body)
}

/// An SSH_FXP_STATUS answer.
pub fn status(id: u32, code: u32, message: &str) -> Vec<u8> {
    let mut body = vec![FXP_STATUS];
    body.extend_from_slice(&id.to_be_bytes());
    body.extend_from_slice(&code.to_be_bytes());
    put_string(&mut body, message.as_bytes());
    put_string(&mut body, b"");
    frame(body)
}

fn read_request(id: u32, handle: &[u8], offset: u64, len: u32) -> Vec<u8> {
    let mut body = vec![FXP_READ];
    body.extend_from_slice(&id.to_be_bytes());
    put_string(&mut body, handle);
    body.extend_from_slice(&offset.to_be_bytes());
    body.extend_from_slice(&len.to_be_bytes());
    frame(body)
}

/// Bytes to send after scp data from either side.
#[derive(Debug, Default)]
pub struct ScpOut {
    /// To the client.
    pub client: Vec<u8>,
    /// To the target.
    pub target: Vec<u8>,
    /// A line for the user's terminal.
    pub notice: Option<String>,
    /// Files finished.
    pub done: Vec<Outcome>,
}

#[derive(Debug)]
enum ScpState {
    /// Reading a control line.
    Control(Vec<u8>),
    /// Reading a file's content.
    Data {
        line: Vec<u8>,
        name: String,
        mode: String,
        remaining: u64,
        content: Content,
        outcome: Outcome,
    },
    /// Content read; the target's status byte comes next (then, on an
    /// error, a message line).
    Status {
        line: Vec<u8>,
        name: String,
        mode: String,
        content: Content,
        outcome: Outcome,
        error: Option<Vec<u8>>,
    },
}

#[derive(Debug)]
enum Content {
    /// First bytes, not yet judged.
    Sniff(Vec<u8>),
    /// Masked text, held whole.
    Text(TextStream, Vec<u8>),
    /// Binary allowed: the `C` line was sent, content passes.
    Passed,
    /// Refused: content is read from the target and dropped.
    Refused(String),
}

/// scp's legacy source side (`scp -f`) on a masking connection.
#[derive(Debug)]
pub struct ScpDownload {
    state: ScpState,
    /// Client acknowledgements of rewritten `C` lines to drop (the
    /// gateway acknowledged the target's own).
    swallow: u32,
}

impl Default for ScpDownload {
    fn default() -> Self {
        ScpDownload {
            state: ScpState::Control(Vec::new()),
            swallow: 0,
        }
    }
}

/// Longest control line accepted.
const MAX_LINE: usize = 64 * 1024;

/// Moves `bytes` up to and including the first newline (all of them if
/// there is none) onto `line`. `Ok(true)` once `line` ends in a newline;
/// `Err(too_long)` when it has grown past `MAX_LINE`.
fn take_line(line: &mut Vec<u8>, bytes: &mut &[u8], too_long: &str) -> Result<bool, String> {
    let n = bytes
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| i + 1);
    line.extend_from_slice(&bytes[..n]);
    *bytes = &bytes[n..];
    if line.len() > MAX_LINE {
        return Err(too_long.into());
    }
    Ok(line.last() == Some(&b'\n'))
}

impl ScpDownload {
    /// Bytes from the client (acknowledgements): what to forward.
    pub fn from_client(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            if self.swallow > 0 && b == 0 {
                self.swallow -= 1;
            } else {
                out.push(b);
            }
        }
        out
    }

    /// Bytes from the target. `Err` when the stream cannot be followed (the
    /// channel must then end).
    pub fn from_target(
        &mut self,
        mut bytes: &[u8],
        masker: &Masker,
        decide: Decide<'_>,
    ) -> Result<ScpOut, String> {
        let mut out = ScpOut::default();
        while !bytes.is_empty() {
            let state = std::mem::replace(&mut self.state, ScpState::Control(Vec::new()));
            self.state = match state {
                ScpState::Control(mut line) => {
                    if !take_line(&mut line, &mut bytes, "an scp control line is too long")? {
                        ScpState::Control(line)
                    } else if line.first() == Some(&b'C') {
                        let (mode, size, name) = parse_c_line(&line)
                            .ok_or_else(|| "an scp file header could not be read".to_string())?;
                        // The target waits for this before sending content.
                        out.target.push(0);
                        let outcome = Outcome {
                            path: name.clone(),
                            result: "masked",
                            ..Default::default()
                        };
                        let state = ScpState::Data {
                            line,
                            name,
                            mode,
                            remaining: size,
                            content: Content::Sniff(Vec::new()),
                            outcome,
                        };
                        if size == 0 {
                            self.judge(state, masker, decide, &mut out)
                        } else {
                            state
                        }
                    } else {
                        match line.first() {
                            // Times, directories and their ends pass as
                            // they are.
                            Some(b'T' | b'D' | b'E') => out.client.extend_from_slice(&line),
                            // Warnings and errors are text the target
                            // wrote: masked like any output.
                            Some(1 | 2) => {
                                let mut counts = MaskCounts::default();
                                let masked = masker.mask_detected_bytes(&line, &mut counts);
                                out.client
                                    .extend_from_slice(masked.as_deref().unwrap_or(&line));
                            }
                            // Anything else is not scp's protocol (a login
                            // script printing on the target, say): it cannot
                            // be told from file content, so the transfer ends.
                            _ => {
                                return Err(
                                    "the target sent something that is not scp's protocol".into()
                                )
                            }
                        }
                        ScpState::Control(Vec::new())
                    }
                }
                ScpState::Data {
                    line,
                    name,
                    mode,
                    remaining,
                    mut content,
                    mut outcome,
                } => {
                    let n = (remaining.min(bytes.len() as u64)) as usize;
                    let piece = &bytes[..n];
                    bytes = &bytes[n..];
                    outcome.bytes_in += n as u64;
                    match &mut content {
                        Content::Sniff(held) => held.extend_from_slice(piece),
                        Content::Text(t, held) => match t.push(masker, piece) {
                            Ok(m) => held.extend_from_slice(&m),
                            Err(e) => content = refused_late(&name, &e, &mut outcome),
                        },
                        Content::Passed => {
                            out.client.extend_from_slice(piece);
                            outcome.bytes_out += n as u64;
                        }
                        Content::Refused(_) => {}
                    }
                    if let Content::Text(_, held) = &content {
                        if held.len() > SCP_MAX_MASKED {
                            outcome.result = "refused";
                            outcome.reason =
                                Some("too large to mask whole for scp's legacy protocol".into());
                            content = Content::Refused(format!(
                                "{name} is larger than {} MiB: scp's legacy protocol (-O) states a file's size before its content, so gatehouse must hold a masked file whole; fetch it with sftp or scp without -O, which stream",
                                SCP_MAX_MASKED / (1024 * 1024)
                            ));
                        }
                    }
                    let state = ScpState::Data {
                        line,
                        name,
                        mode,
                        remaining: remaining - n as u64,
                        content,
                        outcome,
                    };
                    self.judge(state, masker, decide, &mut out)
                }
                ScpState::Status {
                    line,
                    name,
                    mode,
                    content,
                    mut outcome,
                    error,
                } => match error {
                    None => {
                        let b = bytes[0];
                        bytes = &bytes[1..];
                        if b == 0 {
                            self.deliver(
                                line,
                                &name,
                                &mode,
                                content,
                                &mut outcome,
                                masker,
                                &mut out,
                            );
                            out.done.push(outcome);
                            ScpState::Control(Vec::new())
                        } else {
                            ScpState::Status {
                                line,
                                name,
                                mode,
                                content,
                                outcome,
                                error: Some(vec![b]),
                            }
                        }
                    }
                    Some(mut msg) => {
                        if !take_line(&mut msg, &mut bytes, "an scp error line is too long")? {
                            ScpState::Status {
                                line,
                                name,
                                mode,
                                content,
                                outcome,
                                error: Some(msg),
                            }
                        } else {
                            // The source failed reading its file: the
                            // client gets the error (and, if it had the
                            // header, acknowledges it itself).
                            if matches!(content, Content::Passed) {
                                out.client.extend_from_slice(&msg);
                            } else {
                                out.client.extend_from_slice(&msg);
                                out.target.push(0);
                                outcome.result = "refused";
                                outcome.reason = Some("the target could not read the file".into());
                            }
                            out.done.push(outcome);
                            ScpState::Control(Vec::new())
                        }
                    }
                },
            };
        }
        Ok(out)
    }

    /// Judge a file's first bytes once enough have come, and move on to
    /// its status byte when its content is complete.
    fn judge(
        &mut self,
        state: ScpState,
        masker: &Masker,
        decide: Decide<'_>,
        out: &mut ScpOut,
    ) -> ScpState {
        let ScpState::Data {
            line,
            name,
            mode,
            remaining,
            mut content,
            mut outcome,
        } = state
        else {
            return state;
        };
        if let Content::Sniff(held) = &content {
            if held.len() >= SNIFF || remaining == 0 {
                let held = held.clone();
                content = match sniff_text(&held[..held.len().min(SNIFF)]) {
                    Ok(()) => {
                        let mut t = TextStream::new();
                        match t.push(masker, &held) {
                            Ok(m) => Content::Text(t, m),
                            Err(e) => refused_late(&name, &e, &mut outcome),
                        }
                    }
                    Err(e) => match decide(&name, &e) {
                        Binary::Allowed { rule } => {
                            outcome.result = "passed";
                            outcome.reason = Some(format!("not text ({e}), allowed by rule"));
                            outcome.rule = Some(rule);
                            out.client.extend_from_slice(&line);
                            self.swallow += 1;
                            out.client.extend_from_slice(&held);
                            outcome.bytes_out += held.len() as u64;
                            Content::Passed
                        }
                        Binary::Refused { rule, message } => {
                            outcome.result = "refused";
                            outcome.rule = rule;
                            outcome.reason = Some(format!("not text ({e})"));
                            Content::Refused(message)
                        }
                    },
                };
            }
        }
        if remaining == 0 {
            ScpState::Status {
                line,
                name,
                mode,
                content,
                outcome,
                error: None,
            }
        } else {
            ScpState::Data {
                line,
                name,
                mode,
                remaining,
                content,
                outcome,
            }
        }
    }

    /// The target sent a file whole and well: give the client its version.
    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &mut self,
        _line: Vec<u8>,
        name: &str,
        mode: &str,
        content: Content,
        outcome: &mut Outcome,
        masker: &Masker,
        out: &mut ScpOut,
    ) {
        match content {
            Content::Passed => out.client.push(0),
            Content::Text(mut t, mut held) => match t.finish(masker) {
                Ok(rest) => {
                    held.extend_from_slice(&rest);
                    out.client
                        .extend_from_slice(format!("C{mode} {} {name}\n", held.len()).as_bytes());
                    self.swallow += 1;
                    out.client.extend_from_slice(&held);
                    out.client.push(0);
                    outcome.bytes_out = held.len() as u64;
                    outcome.counts = t.counts.clone();
                }
                Err(e) => {
                    let Content::Refused(m) = refused_late(name, &e, outcome) else {
                        return;
                    };
                    refuse_file(&m, out);
                }
            },
            Content::Refused(m) => refuse_file(&m, out),
            // Judged before the status byte.
            Content::Sniff(_) => refuse_file("internal: a file was not judged", out),
        }
    }
}

/// Tell the client a file was refused (a warning its sink prints and
/// counts as an error) and acknowledge the content to the target in its
/// place.
fn refuse_file(message: &str, out: &mut ScpOut) {
    out.client
        .extend_from_slice(format!("\x01gatehouse: {message}\n").as_bytes());
    out.target.push(0);
    out.notice = Some(format!("gatehouse: {message}"));
}

fn refused_late(name: &str, e: &NotText, outcome: &mut Outcome) -> Content {
    outcome.result = "refused";
    outcome.reason = Some(format!("not text ({e})"));
    Content::Refused(format!(
        "{name} is not text ({e}) and cannot be masked, so it was not sent"
    ))
}

/// `Cmode size name\n` → (mode, size, name).
fn parse_c_line(line: &[u8]) -> Option<(String, u64, String)> {
    let text = std::str::from_utf8(line.get(1..)?)
        .ok()?
        .strip_suffix('\n')?;
    let mut parts = text.splitn(3, ' ');
    let mode = parts.next()?;
    let size = parts.next()?.parse().ok()?;
    let name = parts.next()?;
    if mode.len() != 4 || !mode.bytes().all(|b| (b'0'..=b'7').contains(&b)) || name.is_empty() {
        return None;
    }
    Some((mode.to_string(), size, name.to_string()))
}

impl SftpDownloads {
    /// A CLOSE from the client: how the masked download it closes ended.
    pub fn close_packet(&mut self, packet: &[u8]) -> Option<Outcome> {
        let mut r = packet.get(4..)?;
        if *r.first()? != 4 {
            return None;
        }
        r = &r[1..];
        take_u32(&mut r)?;
        let handle = take_string(&mut r)?;
        self.close(handle)
    }
}

/// The request id of a client packet (every request but INIT has one).
pub fn request_id(packet: &[u8]) -> Option<u32> {
    let b = packet.get(5..9)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::mask::{EntityType, MaskerConfig, Strategy, TokenizeKey, DETECTABLE};

    fn masker() -> Masker {
        let mut strategies = std::collections::HashMap::new();
        strategies.insert(EntityType::Ssn, Strategy::Partial { keep_last: 4 });
        Masker::new(MaskerConfig {
            detectors: DETECTABLE.to_vec(),
            strategies,
            default_strategy: Strategy::Redact,
            tokenize_key: TokenizeKey::new(b"k".to_vec()),
        })
    }

    fn refuse(_: &str, e: &NotText) -> Binary {
        Binary::Refused {
            rule: None,
            message: format!("not text ({e})"),
        }
    }

    fn client_read(id: u32, handle: &[u8], offset: u64, len: u32) -> Vec<u8> {
        read_request(id, handle, offset, len)
    }

    /// Play the target: answer the gateway's reads from `file`.
    fn answer(file: &[u8], request: &[u8]) -> Vec<u8> {
        let (id, _, offset, len) = parse_read(request).unwrap();
        let at = offset as usize;
        if at >= file.len() {
            return status(id, FX_EOF, "eof");
        }
        data(id, &file[at..(at + len as usize).min(file.len())])
    }

    /// The client's answers by request id: bytes or a status code.
    fn collect(out: &Out, got: &mut HashMap<u32, Result<Vec<u8>, u32>>) {
        for p in &out.client {
            let mut r = &p[4..];
            let kind = r[0];
            r = &r[1..];
            let id = take_u32(&mut r).unwrap();
            let v = if kind == FXP_DATA {
                Ok(take_string(&mut r).unwrap().to_vec())
            } else {
                Err(take_u32(&mut r).unwrap())
            };
            got.insert(id, v);
        }
    }

    /// Run the target until no gateway read is outstanding.
    fn drive(
        d: &mut SftpDownloads,
        file: &[u8],
        mut out: Out,
        got: &mut HashMap<u32, Result<Vec<u8>, u32>>,
    ) {
        let m = masker();
        loop {
            collect(&out, got);
            let Some(req) = out.target.pop() else { break };
            let reply = answer(file, &req);
            out = d
                .target_packet(&reply, &m, &refuse)
                .expect("an internal read");
        }
    }

    #[test]
    fn parallel_and_out_of_order_reads_get_one_masked_stream() {
        let m = masker();
        let mut file = String::new();
        for i in 0..5000 {
            file.push_str(&format!("{i} ssn 123-45-6789 mail a{i}@example.com\n"));
        }
        let mut d = SftpDownloads::default();
        d.open(b"h".to_vec(), "f".into());
        let mut got = HashMap::new();
        // 8 reads in flight, sent in reverse order, then sequential ones
        // until end of file, the way OpenSSH's client works.
        let chunk = 32 * 1024u32;
        for k in (0..8u32).rev() {
            let out = d
                .client_packet(&client_read(k, b"h", u64::from(k * chunk), chunk))
                .unwrap();
            drive(&mut d, file.as_bytes(), out, &mut got);
        }
        let mut masked = Vec::new();
        let mut k = 0u32;
        loop {
            if !got.contains_key(&k) {
                let out = d
                    .client_packet(&client_read(k, b"h", u64::from(k * chunk), chunk))
                    .unwrap();
                drive(&mut d, file.as_bytes(), out, &mut got);
            }
            match got.remove(&k).expect("answered") {
                Ok(bytes) => masked.extend(bytes),
                Err(code) => {
                    assert_eq!(code, FX_EOF);
                    break;
                }
            }
            k += 1;
        }
        let mut counts = MaskCounts::default();
        let expected = m.mask_detected(&file, &mut counts).unwrap();
        assert_eq!(String::from_utf8(masked).unwrap(), expected);
        let o = d.close(b"h").unwrap();
        assert_eq!(o.result, "masked");
        assert_eq!(o.counts, counts);
        assert_eq!(o.bytes_in, file.len() as u64);
    }

    #[test]
    fn reads_the_gateway_cannot_serve_are_refused_not_leaked() {
        let file = "x ".repeat(2 * 1024 * 1024);
        let mut d = SftpDownloads::default();
        d.open(b"h".to_vec(), "f".into());
        let mut got = HashMap::new();
        // Past the end (OpenSSH keeps many reads in flight): end of file.
        let out = d
            .client_packet(&client_read(1, b"h", 64 * 1024 * 1024, 100))
            .unwrap();
        drive(&mut d, file.as_bytes(), out, &mut got);
        assert_eq!(got[&1], Err(FX_EOF));
        // Far ahead in a big file with nothing read below: refused once
        // reaching it would hold too much.
        let big = "y ".repeat(8 * 1024 * 1024);
        let mut far = SftpDownloads::default();
        far.open(b"g".to_vec(), "g".into());
        let out = far
            .client_packet(&client_read(9, b"g", 15 * 1024 * 1024, 100))
            .unwrap();
        drive(&mut far, big.as_bytes(), out, &mut got);
        assert_eq!(got[&9], Err(FX_FAILURE));
        // Read well into the file, then go back to the start: gone.
        let out = d
            .client_packet(&client_read(2, b"h", 3 * 1024 * 1024, 100))
            .unwrap();
        drive(&mut d, file.as_bytes(), out, &mut got);
        let out = d.client_packet(&client_read(3, b"h", 0, 100)).unwrap();
        collect(&out, &mut got);
        assert_eq!(got[&3], Err(FX_FAILURE));
        // Binary: refused with permission denied.
        let mut d = SftpDownloads::default();
        d.open(b"b".to_vec(), "bin".into());
        let out = d.client_packet(&client_read(4, b"b", 0, 100)).unwrap();
        drive(&mut d, b"\x89PNG\0\0\0", out, &mut got);
        assert_eq!(got[&4], Err(FX_PERMISSION_DENIED));
        assert_eq!(d.close(b"b").unwrap().result, "refused");
        // Reads of other handles are not the gateway's business.
        assert!(d.client_packet(&client_read(5, b"other", 0, 1)).is_none());
    }

    #[test]
    fn scp_file_is_announced_with_its_masked_size() {
        let m = masker();
        let mut s = ScpDownload::default();
        let content = "a@example.com 123-45-6789\n";
        // The T line passes and the client's acknowledgement of it too.
        let out = s.from_target(b"T1 0 1 0\n", &m, &refuse).unwrap();
        assert_eq!(out.client, b"T1 0 1 0\n");
        assert_eq!(s.from_client(&[0]), vec![0]);
        let mut stream = format!("C0644 {} f.txt\n", content.len()).into_bytes();
        stream.extend_from_slice(content.as_bytes());
        stream.push(0);
        let mut client = Vec::new();
        let mut target = Vec::new();
        // Byte by byte: the hardest split.
        for b in &stream {
            let out = s.from_target(std::slice::from_ref(b), &m, &refuse).unwrap();
            client.extend(out.client);
            target.extend(out.target);
        }
        let masked = "[REDACTED:email] ***-**-6789\n";
        let mut expected = format!("C0644 {} f.txt\n{masked}", masked.len()).into_bytes();
        expected.push(0);
        assert_eq!(
            String::from_utf8_lossy(&client),
            String::from_utf8_lossy(&expected)
        );
        // The gateway acknowledged the C line itself; the client's ack of
        // the rewritten C line is dropped, its ack of the content passes.
        assert_eq!(target, vec![0]);
        assert_eq!(s.from_client(&[0]), Vec::<u8>::new());
        assert_eq!(s.from_client(&[0]), vec![0]);
        // A binary file is refused with a warning the client prints.
        let mut stream = b"C0755 3 x.bin\n\x00\x01\x02\x00".to_vec();
        stream.extend(b"E\n");
        let out = s.from_target(&stream, &m, &refuse).unwrap();
        assert!(
            out.client.starts_with(b"\x01gatehouse: "),
            "{:?}",
            out.client
        );
        assert!(out.client.ends_with(b"\nE\n"));
        assert_eq!(out.target, vec![0, 0]);
        assert_eq!(out.done[0].result, "refused");
        // Errors are masked; anything that is not the protocol ends it.
        let out = s
            .from_target(b"\x01scp: 123-45-6789.csv: No such file\n", &m, &refuse)
            .unwrap();
        assert_eq!(out.client, b"\x01scp: ***-**-6789.csv: No such file\n");
        assert!(s.from_target(b"ssn 123-45-6789\n", &m, &refuse).is_err());
    }
}
