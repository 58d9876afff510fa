//! Masking what a `kubectl exec`/`attach` sends the user, on Kubernetes
//! connections with `mask_terminal = true` (and callers the detectors apply
//! to).
//!
//! The API server's half of the WebSocket is decoded frame by frame (the
//! same decoder the recording uses) and written again: stdout and stderr
//! messages carry their data through one [`TextStream`] per stream, so a
//! value split across messages is still masked whole; every other message
//! and control frame is written back unchanged. What a stream holds back is
//! released before the status (channel 3), the stream's close (v5 channel
//! 255) or the closing handshake.
//!
//! An interactive exec (`-t`, a terminal) is masked message by message
//! instead, like SSH terminal output: a stream masker would hold back the
//! echo of a word being typed until it ends. A value split across two
//! messages may then pass (the recording still masks it).
//!
//! Output that is not text (`kubectl cp` runs `tar cf -`, whose output is
//! binary) cannot be masked: the exec is ended with a Failure status naming
//! the reason, unless a rule with `kinds = ["binary"]` matching the exec's
//! command allows it, in which case that stream passes unchanged.

use crate::wsframes::{encode_frame, ChannelProtocol, FrameDecoder, Opcode, Sender, WsEvent};
use gatehouse_core::mask::{MaskCounts, Masker, NotText, TextStream};
use std::sync::Arc;

/// Largest message re-written; a bigger one ends the exec (the API server
/// sends at most 32 KiB at a time).
const MAX_MESSAGE: usize = 1024 * 1024;

/// What a rule says about binary output: `Ok(rule)` allowed by that rule,
/// `Err(message)` refused.
pub(crate) type DecideBinary = Box<dyn Fn(&NotText) -> Result<String, String> + Send>;

/// Re-writes the API server's half of an exec stream with its output masked.
pub(crate) struct ExecMasker {
    masker: Arc<Masker>,
    decide: DecideBinary,
    protocol: ChannelProtocol,
    frames: FrameDecoder,
    scratch: Vec<WsEvent>,
    /// stdout and stderr.
    streams: [Stream; 2],
    /// Set once the stream was cut (refused binary, unreadable frames).
    pub(crate) ended: Option<String>,
    /// `masked`, `passed` or `refused`, with the rule.
    pub(crate) result: &'static str,
    pub(crate) rule: Option<String>,
    /// A terminal: mask each message alone, never hold.
    tty: bool,
    tty_counts: MaskCounts,
}

enum Stream {
    Text(TextStream),
    Passed,
}

impl ExecMasker {
    pub(crate) fn new(
        masker: Arc<Masker>,
        protocol: ChannelProtocol,
        decide: DecideBinary,
        tty: bool,
    ) -> ExecMasker {
        ExecMasker {
            masker,
            decide,
            protocol,
            frames: FrameDecoder::new(Sender::Server, MAX_MESSAGE),
            scratch: Vec::new(),
            streams: [
                Stream::Text(TextStream::new()),
                Stream::Text(TextStream::new()),
            ],
            ended: None,
            result: "masked",
            rule: None,
            tty,
            tty_counts: MaskCounts::default(),
        }
    }

    /// Values masked so far.
    pub(crate) fn counts(&self) -> MaskCounts {
        let mut c = self.tty_counts.clone();
        for s in &self.streams {
            if let Stream::Text(t) = s {
                c.merge(&t.counts);
            }
        }
        c
    }

    /// The `output_masking` object of the exec's result event.
    pub(crate) fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "result": self.result,
            "masked": self.counts(),
            "rule": self.rule,
            "reason": self.ended,
        })
    }

    /// Bytes from the API server in; the bytes to send the client. After
    /// [`ExecMasker::ended`] is set, the caller sends what was returned and
    /// closes the stream.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.ended.is_some() {
            return out;
        }
        if let Err(e) = self.frames.feed(bytes, &mut self.scratch) {
            self.ended = Some(format!(
                "the exec stream could not be read, so it was cut: {e}"
            ));
        }
        let events = std::mem::take(&mut self.scratch);
        for event in events {
            if self.ended.is_some() {
                break;
            }
            match event {
                WsEvent::Message { opcode, payload } => self.message(opcode, payload, &mut out),
                WsEvent::Ping(p) => out.extend(encode_frame(Opcode::Ping, true, &p, None)),
                WsEvent::Pong(p) => out.extend(encode_frame(Opcode::Pong, true, &p, None)),
                WsEvent::Close { code, reason } => {
                    self.flush(&mut out);
                    let mut payload = Vec::new();
                    if let Some(c) = code {
                        payload.extend_from_slice(&c.to_be_bytes());
                        payload.extend_from_slice(reason.as_bytes());
                    }
                    out.extend(encode_frame(Opcode::Close, true, &payload, None));
                }
                WsEvent::Oversized { len, .. } => {
                    self.ended = Some(format!(
                        "an exec message of {len} bytes is too large to mask, so the stream was cut"
                    ));
                }
            }
        }
        if let Some(why) = self.ended.clone() {
            self.refuse(&why, &mut out);
        }
        out
    }

    fn message(&mut self, opcode: Opcode, payload: Vec<u8>, out: &mut Vec<u8>) {
        use base64::Engine as _;
        let b64 = self.protocol.is_base64() && opcode == Opcode::Text;
        let (stream, data) = if b64 {
            match payload.split_first() {
                Some((&d, rest)) if d.is_ascii_digit() => {
                    match base64::engine::general_purpose::STANDARD.decode(rest) {
                        Ok(data) => (d - b'0', data),
                        Err(_) => {
                            self.ended = Some("an exec message is not valid base64".into());
                            return;
                        }
                    }
                }
                _ => {
                    out.extend(encode_frame(opcode, true, &payload, None));
                    return;
                }
            }
        } else {
            match payload.split_first() {
                Some((&s, rest)) => (s, rest.to_vec()),
                None => {
                    out.extend(encode_frame(opcode, true, &payload, None));
                    return;
                }
            }
        };
        let index = match stream {
            1 => 0,
            2 => 1,
            3 => {
                self.flush(out);
                out.extend(encode_frame(opcode, true, &payload, None));
                return;
            }
            255 => {
                if let Some(&closed @ (1 | 2)) = data.first() {
                    self.flush_one(usize::from(closed - 1), out);
                }
                out.extend(encode_frame(opcode, true, &payload, None));
                return;
            }
            _ => {
                out.extend(encode_frame(opcode, true, &payload, None));
                return;
            }
        };
        if self.tty {
            let masked = self
                .masker
                .mask_detected_bytes(&data, &mut self.tty_counts)
                .unwrap_or(data);
            self.write(opcode, stream, &masked, out);
            return;
        }
        let masked = match &mut self.streams[index] {
            Stream::Passed => data,
            Stream::Text(t) if t.bytes_in == 0 && data.is_empty() => data,
            Stream::Text(t) => {
                let first = t.bytes_in == 0;
                match t.push(&self.masker, &data) {
                    Ok(m) => {
                        if m.is_empty() {
                            return;
                        }
                        m
                    }
                    Err(e) if first => match (self.decide)(&e) {
                        Ok(rule) => {
                            self.result = "passed";
                            self.rule = Some(rule);
                            self.streams[index] = Stream::Passed;
                            data
                        }
                        Err(message) => {
                            self.result = "refused";
                            self.ended = Some(message);
                            return;
                        }
                    },
                    Err(e) => {
                        self.result = "refused";
                        self.ended = Some(format!(
                            "the command's output is not text ({e}) and cannot be masked, so the rest was withheld"
                        ));
                        return;
                    }
                }
            }
        };
        self.write(opcode, stream, &masked, out);
    }

    fn write(&self, opcode: Opcode, stream: u8, data: &[u8], out: &mut Vec<u8>) {
        use base64::Engine as _;
        let mut payload = Vec::with_capacity(data.len() + 1);
        if self.protocol.is_base64() && opcode == Opcode::Text {
            payload.push(b'0' + stream);
            payload.extend(
                base64::engine::general_purpose::STANDARD
                    .encode(data)
                    .bytes(),
            );
        } else {
            payload.push(stream);
            payload.extend_from_slice(data);
        }
        out.extend(encode_frame(opcode, true, &payload, None));
    }

    fn flush(&mut self, out: &mut Vec<u8>) {
        self.flush_one(0, out);
        self.flush_one(1, out);
    }

    fn flush_one(&mut self, index: usize, out: &mut Vec<u8>) {
        let rest = match &mut self.streams[index] {
            Stream::Text(t) => match t.finish(&self.masker) {
                Ok(rest) => rest,
                Err(e) => {
                    self.result = "refused";
                    self.ended = Some(format!(
                        "the command's output is not text ({e}) and cannot be masked"
                    ));
                    return;
                }
            },
            Stream::Passed => return,
        };
        if !rest.is_empty() {
            let opcode = if self.protocol.is_base64() {
                Opcode::Text
            } else {
                Opcode::Binary
            };
            self.write(opcode, index as u8 + 1, &rest, out);
        }
    }

    /// End the exec: a Failure status on channel 3, then the close.
    fn refuse(&self, why: &str, out: &mut Vec<u8>) {
        let message = format!("gatehouse: {why}");
        let body = match self.protocol {
            ChannelProtocol::Channel | ChannelProtocol::Base64Channel => message.into_bytes(),
            _ => serde_json::json!({
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": "Forbidden",
                "code": 403,
            })
            .to_string()
            .into_bytes(),
        };
        let opcode = if self.protocol.is_base64() {
            Opcode::Text
        } else {
            Opcode::Binary
        };
        self.write(opcode, 3, &body, out);
        out.extend(encode_frame(
            Opcode::Close,
            true,
            &1000u16.to_be_bytes(),
            None,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wsframes::{ExecDecoder, ExecEvent};
    use gatehouse_core::mask::{EntityType, MaskerConfig, Strategy, TokenizeKey, DETECTABLE};

    fn masker() -> Arc<Masker> {
        let mut strategies = std::collections::HashMap::new();
        strategies.insert(EntityType::Ssn, Strategy::Partial { keep_last: 4 });
        Arc::new(Masker::new(MaskerConfig {
            detectors: DETECTABLE.to_vec(),
            strategies,
            default_strategy: Strategy::Redact,
            tokenize_key: TokenizeKey::new(b"k".to_vec()),
        }))
    }

    fn server(stream: u8, data: &[u8]) -> Vec<u8> {
        let mut p = vec![stream];
        p.extend_from_slice(data);
        encode_frame(Opcode::Binary, true, &p, None)
    }

    fn decode(bytes: &[u8]) -> Vec<ExecEvent> {
        let mut d = ExecDecoder::new(ChannelProtocol::V5, Sender::Server, MAX_MESSAGE);
        let mut events = Vec::new();
        d.feed(bytes, &mut events).unwrap();
        events
    }

    #[test]
    fn stdout_is_masked_across_messages_and_released_before_the_status() {
        let mut m = ExecMasker::new(
            masker(),
            ChannelProtocol::V5,
            Box::new(|_| Err("no".into())),
            false,
        );
        let mut input = server(1, b"");
        input.extend(server(1, b"ssn 123-45-"));
        input.extend(server(1, b"6789 mail a@exam"));
        input.extend(server(1, b"ple.com"));
        input.extend(server(3, br#"{"metadata":{},"status":"Success"}"#));
        let mut out = Vec::new();
        // Fed in small pieces, as TCP may deliver them.
        for chunk in input.chunks(5) {
            out.extend(m.feed(chunk));
        }
        let events = decode(&out);
        let stdout: Vec<u8> = events
            .iter()
            .filter_map(|e| match e {
                ExecEvent::Stdout(d) => Some(d.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(
            String::from_utf8(stdout).unwrap(),
            "ssn ***-**-6789 mail [REDACTED:email]"
        );
        assert!(matches!(events.last(), Some(ExecEvent::Status(_))));
        assert_eq!(m.counts().get(EntityType::Ssn), 1);
        assert!(m.ended.is_none());
    }

    #[test]
    fn a_terminal_is_masked_message_by_message_without_holding() {
        let mut m = ExecMasker::new(
            masker(),
            ChannelProtocol::V5,
            Box::new(|_| Err("no".into())),
            true,
        );
        // A typed character echoes at once.
        assert_eq!(
            decode(&m.feed(&server(1, b"l"))),
            vec![ExecEvent::Stdout(b"l".to_vec())]
        );
        assert_eq!(
            decode(&m.feed(&server(1, b"ssn 123-45-6789\r\n"))),
            vec![ExecEvent::Stdout(b"ssn ***-**-6789\r\n".to_vec())]
        );
        assert_eq!(m.counts().get(EntityType::Ssn), 1);
    }

    #[test]
    fn binary_output_is_refused_or_passed_by_rule() {
        let tar = b"data/file.txt\0\0\0\0\0\0\x000000644\0";
        let mut m = ExecMasker::new(
            masker(),
            ChannelProtocol::V5,
            Box::new(|_| Err("binary output refused".into())),
            false,
        );
        let events = decode(&m.feed(&server(1, tar)));
        assert!(m.ended.is_some());
        assert!(
            matches!(&events[0], ExecEvent::Status(s) if s["message"].as_str().unwrap().contains("binary output refused")),
            "{events:?}"
        );
        let mut m = ExecMasker::new(
            masker(),
            ChannelProtocol::V5,
            Box::new(|_| Ok("cp-allowed".into())),
            false,
        );
        let events = decode(&m.feed(&server(1, tar)));
        assert_eq!(events, vec![ExecEvent::Stdout(tar.to_vec())]);
        assert_eq!(m.result, "passed");
    }
}
