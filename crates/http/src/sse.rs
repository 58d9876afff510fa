//! Server-sent events: cut an upstream byte stream into events and write
//! events back to bytes.
//!
//! Upstream bodies arrive in arbitrary chunks (an event may be split
//! anywhere, even between `\r` and `\n`), so [`SseDecoder`] buffers until an
//! event's closing blank line. It keeps every event's exact bytes, so an
//! event the gateway does not change is forwarded byte for byte. An event
//! larger than the decoder's limit is an error, never a silent truncation:
//! the gateway would otherwise forward half a value it could not inspect.

use thiserror::Error;

/// The default cap on one event's bytes; LLM chunks are a few hundred bytes,
/// a final `response.completed` event a few tens of KiB.
pub const DEFAULT_MAX_EVENT: usize = 1024 * 1024;

/// Why an SSE stream could not be cut into events.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SseError {
    /// One event grew beyond the decoder's limit before it ended.
    #[error("server-sent event larger than {limit} bytes")]
    EventTooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
}

/// One server-sent event: its fields and, for a decoded event, the exact
/// bytes it arrived as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (`None`: the default `message` type).
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`; `None` when the event has no data
    /// line at all (a comment or keep-alive).
    pub data: Option<String>,
    /// The `id:` field.
    pub id: Option<String>,
    /// The `retry:` field, when it is a number.
    pub retry: Option<u64>,
    /// Comment lines (`: keep-alive`), without the colon.
    pub comments: Vec<String>,
    /// The bytes as received, closing blank line included; empty for an
    /// event built by the gateway. Forward these when nothing changed.
    pub raw: Vec<u8>,
}

impl SseEvent {
    /// An event carrying only `data`, the shape of every OpenAI chunk.
    pub fn data(data: impl Into<String>) -> SseEvent {
        SseEvent {
            data: Some(data.into()),
            ..SseEvent::default()
        }
    }

    /// The event written from its fields (`\n` line ends, one blank line
    /// after). Multi-line data becomes several `data:` lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.as_ref().map_or(0, String::len) + 16);
        for c in &self.comments {
            for line in c.split('\n') {
                out.push(b':');
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
        }
        if let Some(event) = &self.event {
            field(&mut out, "event", event);
        }
        if let Some(id) = &self.id {
            field(&mut out, "id", id);
        }
        if let Some(retry) = self.retry {
            field(&mut out, "retry", &retry.to_string());
        }
        if let Some(data) = &self.data {
            for line in data.split('\n') {
                field(&mut out, "data", line);
            }
        }
        out.push(b'\n');
        out
    }

    /// The bytes to forward: the original ones when the event was decoded,
    /// else the event written from its fields.
    pub fn bytes(&self) -> Vec<u8> {
        if self.raw.is_empty() {
            self.to_bytes()
        } else {
            self.raw.clone()
        }
    }

    /// Parse one event's bytes (lines of any ending, blank line optional).
    fn parse(raw: Vec<u8>) -> SseEvent {
        let mut ev = SseEvent::default();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let mut data: Option<String> = None;
        for line in text.split_inclusive(['\n', '\r']) {
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix(':') {
                ev.comments.push(comment.to_string());
                continue;
            }
            let (name, value) = match line.split_once(':') {
                Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match name.trim_start_matches('\u{feff}') {
                "data" => match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(value.to_string()),
                },
                "event" => ev.event = Some(value.to_string()),
                "id" => ev.id = Some(value.to_string()),
                "retry" => ev.retry = value.parse().ok(),
                _ => {}
            }
        }
        ev.data = data;
        ev.raw = raw;
        ev
    }
}

fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// Write events back to one byte buffer, each as [`SseEvent::bytes`].
pub fn encode_events(events: &[SseEvent]) -> Vec<u8> {
    events.iter().flat_map(SseEvent::bytes).collect()
}

/// Cuts a byte stream into events. Memory is bounded by the event limit.
#[derive(Debug, Clone)]
pub struct SseDecoder {
    buf: Vec<u8>,
    /// Where the next event starts in `buf` (bytes before it were taken;
    /// they are dropped once per chunk, not once per event).
    start: usize,
    /// Where the first line not yet known to be complete starts in `buf`.
    scan: usize,
    max_event: usize,
    failed: bool,
}

impl Default for SseDecoder {
    fn default() -> Self {
        SseDecoder::new(DEFAULT_MAX_EVENT)
    }
}

impl SseDecoder {
    /// A decoder refusing events longer than `max_event` bytes.
    pub fn new(max_event: usize) -> SseDecoder {
        SseDecoder {
            buf: Vec::new(),
            start: 0,
            scan: 0,
            max_event,
            failed: false,
        }
    }

    /// Feed the next chunk; return the events it completed, in order. After
    /// an error the decoder stays failed: the stream cannot be resynchronised.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        if self.failed {
            return Err(self.too_large());
        }
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.event_end(false) {
            events.push(self.take(end)?);
        }
        self.buf.drain(..self.start);
        self.scan -= self.start;
        self.start = 0;
        if self.buf.len() > self.max_event {
            self.failed = true;
            return Err(self.too_large());
        }
        Ok(events)
    }

    /// The stream ended: an event not closed by a blank line is returned
    /// rather than dropped, so nothing the upstream sent disappears silently.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        if self.failed {
            return Err(self.too_large());
        }
        if let Some(end) = self.event_end(true) {
            return self.take(end).map(Some);
        }
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.scan = 0;
            return Ok(None);
        }
        let end = self.buf.len();
        self.take(end).map(Some)
    }

    /// Bytes buffered for an event not yet complete.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    fn too_large(&self) -> SseError {
        SseError::EventTooLarge {
            limit: self.max_event,
        }
    }

    fn take(&mut self, end: usize) -> Result<SseEvent, SseError> {
        if end - self.start > self.max_event {
            self.failed = true;
            return Err(self.too_large());
        }
        let raw = self.buf[self.start..end].to_vec();
        self.start = end;
        self.scan = end;
        Ok(SseEvent::parse(raw))
    }

    /// The end (after the blank line) of the first complete event in `buf`.
    /// A `\r` last in the buffer may be the first half of `\r\n`, so it ends
    /// a line only at the end of the stream.
    fn event_end(&mut self, at_eof: bool) -> Option<usize> {
        let buf = &self.buf;
        let mut line_start = self.scan;
        while let Some(off) = buf[line_start..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
        {
            let at = line_start + off;
            let term = if buf[at] == b'\n' {
                1
            } else if at + 1 < buf.len() {
                if buf[at + 1] == b'\n' {
                    2
                } else {
                    1
                }
            } else if at_eof {
                1
            } else {
                break;
            };
            if at == line_start {
                return Some(at + term);
            }
            line_start = at + term;
        }
        self.scan = line_start;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new(1024);
        let mut out = Vec::new();
        for c in chunks {
            out.extend(d.push(c).unwrap());
        }
        out.extend(d.finish().unwrap());
        out
    }

    #[test]
    fn events_are_cut_at_blank_lines_whatever_the_chunking() {
        let stream: &[u8] =
            b"data: {\"a\":1}\n\n: keep-alive\n\nevent: ping\r\nid: 7\r\ndata: x\r\ndata:y\r\n\r\ndata: [DONE]\r\r";
        let whole = decode_in(&[stream]);
        assert_eq!(whole.len(), 4);
        assert_eq!(whole[0].data.as_deref(), Some("{\"a\":1}"));
        assert_eq!(whole[1].comments, [" keep-alive"]);
        assert_eq!(whole[1].data, None);
        assert_eq!(whole[2].event.as_deref(), Some("ping"));
        assert_eq!(whole[2].id.as_deref(), Some("7"));
        assert_eq!(whole[2].data.as_deref(), Some("x\ny"));
        assert_eq!(whole[3].data.as_deref(), Some("[DONE]"));
        // Every split point, including between \r and \n, gives the same.
        for i in 0..=stream.len() {
            for j in i..=stream.len() {
                let got = decode_in(&[&stream[..i], &stream[i..j], &stream[j..]]);
                assert_eq!(got, whole, "split at {i},{j}");
            }
        }
        // Raw bytes are kept exactly.
        assert_eq!(encode_events(&whole), stream);
    }

    #[test]
    fn an_unterminated_last_event_is_returned_at_the_end() {
        let mut d = SseDecoder::default();
        assert!(d.push(b"data: partial").unwrap().is_empty());
        assert_eq!(d.buffered(), 13);
        let ev = d.finish().unwrap().unwrap();
        assert_eq!(ev.data.as_deref(), Some("partial"));
        assert_eq!(d.finish().unwrap(), None);
    }

    #[test]
    fn oversized_events_are_an_error_not_a_truncation() {
        let mut d = SseDecoder::new(16);
        assert!(d.push(b"data: 0123").unwrap().is_empty());
        assert_eq!(
            d.push(b"456789abcdef"),
            Err(SseError::EventTooLarge { limit: 16 })
        );
        assert!(d.push(b"\n\n").is_err(), "stays failed");
        // A complete event over the limit in one chunk fails too.
        let mut d = SseDecoder::new(16);
        assert!(d.push(b"data: 0123456789abcdef\n\n").is_err());
        // Events within the limit pass.
        let mut d = SseDecoder::new(16);
        assert_eq!(d.push(b"data: 1\n\ndata: 2\n\n").unwrap().len(), 2);
    }

    #[test]
    fn built_events_are_written_in_canonical_form() {
        let ev = SseEvent {
            event: Some("error".into()),
            data: Some("line1\nline2".into()),
            id: Some("9".into()),
            retry: Some(500),
            comments: vec!["hi".into()],
            raw: Vec::new(),
        };
        let bytes = ev.bytes();
        assert_eq!(
            bytes,
            b":hi\nevent: error\nid: 9\nretry: 500\ndata: line1\ndata: line2\n\n"
        );
        let back = decode_in(&[&bytes]);
        assert_eq!(back[0].data, ev.data);
        assert_eq!(back[0].retry, Some(500));
        assert_eq!(SseEvent::data("x").to_bytes(), b"data: x\n\n");
    }
}
