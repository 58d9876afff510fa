//! Session recordings in asciicast v2: a JSON header line, then one JSON
//! array per event, `[seconds, "o" | "i" | "r", data]`. Shared by the
//! SSH adapter and the HTTP adapter's `kubectl exec` streams.
//!
//! Output is masked by the content detectors before it is written, so a
//! recording never holds what the audit trail may not. Detectors need whole
//! values, so output is written up to the last line break, and a trailing
//! word that could still grow into a value (digits, letters, `-`, `@`, `.`)
//! is held until more output arrives (at most [`MAX_HELD`] bytes).
//! The file's SHA-256 is chained into the audit trail when it is closed.

use crate::mask::{MaskCounts, Masker};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Longest tail of output held back waiting for the rest of a value.
pub const MAX_HELD: usize = 4096;

/// A recording being written.
pub struct Recording {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    started: Instant,
    masker: Option<Arc<Masker>>,
    held: Vec<u8>,
    /// What the detectors found in this recording.
    pub counts: MaskCounts,
    bytes_out: u64,
    error: Option<String>,
}

/// A closed recording, as chained into the audit trail.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Closed {
    /// File name inside the recordings folder.
    pub file: String,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
    /// File size in bytes.
    pub size: u64,
    /// Output bytes seen (before masking).
    #[serde(default)]
    pub output_bytes: u64,
    /// Values the detectors masked, by kind.
    #[serde(default)]
    pub masked: MaskCounts,
}

impl Closed {
    /// The `recording` audit event: the file's digest and counts, and
    /// which channel (SSH channel, Kubernetes exec) of which protocol it
    /// recorded, so replay can find it and check it.
    pub fn event(&self, channel: u64, protocol: &str) -> crate::events::Event {
        crate::events::Event::Recording(crate::events::RecordingEvent {
            recording: self.clone(),
            channel,
            protocol: protocol.to_string(),
            format: "asciicast-v2".into(),
        })
    }
}

impl Recording {
    /// Create `path` and write the asciicast header.
    pub fn create(
        path: &Path,
        width: u32,
        height: u32,
        term: Option<&str>,
        title: &str,
        masker: Option<Arc<Masker>>,
    ) -> Result<Recording, String> {
        let file = crate::private::open(
            path,
            std::fs::OpenOptions::new().write(true).create_new(true),
        )
        .map_err(|e| format!("creating recording {}: {e}", path.display()))?;
        let mut rec = Recording {
            path: path.to_path_buf(),
            file: std::io::BufWriter::new(file),
            started: Instant::now(),
            masker,
            held: Vec::new(),
            counts: MaskCounts::default(),
            bytes_out: 0,
            error: None,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // A terminal that gave no size (0×0: a PTY request from a client
        // whose stdin is not a terminal, or an exec stream) plays back in
        // the conventional 80×24 rather than as a sliver.
        let or_default = |v: u32, default: u32| if v == 0 { default } else { v.min(1000) };
        let header = serde_json::json!({
            "version": 2,
            "width": or_default(width, 80),
            "height": or_default(height, 24),
            "timestamp": now,
            // The title is the command that opened the channel: masked like
            // a typed line, so the file never holds what the trail may not.
            "title": rec.mask(title.as_bytes()),
            "env": {"TERM": term.unwrap_or(""), "SHELL": ""},
        });
        rec.line(&header.to_string());
        Ok(rec)
    }

    fn line(&mut self, s: &str) {
        if self.error.is_none() {
            if let Err(e) = writeln!(self.file, "{s}") {
                self.error = Some(e.to_string());
            }
        }
    }

    fn event(&mut self, code: &str, data: &str) {
        let t = self.started.elapsed().as_secs_f64();
        let ev = serde_json::json!([(t * 1_000_000.0).round() / 1_000_000.0, code, data]);
        self.line(&ev.to_string());
    }

    fn mask(&mut self, bytes: &[u8]) -> String {
        let masked = self
            .masker
            .as_ref()
            .and_then(|m| m.mask_detected_bytes(bytes, &mut self.counts));
        String::from_utf8_lossy(masked.as_deref().unwrap_or(bytes)).into_owned()
    }

    /// Whether a write to the recording has failed (the session must stop:
    /// nothing may go on unrecorded).
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// Seconds since the recording started (where an event lands on replay).
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Terminal output (stdout or stderr of the target).
    pub fn output(&mut self, bytes: &[u8]) {
        self.bytes_out += bytes.len() as u64;
        self.held.extend_from_slice(bytes);
        let cut = split_point(&self.held);
        if cut > 0 {
            let ready: Vec<u8> = self.held.drain(..cut).collect();
            let text = self.mask(&ready);
            self.event("o", &text);
        }
    }

    /// A line the user submitted (already vetted for secrets by the caller).
    pub fn input(&mut self, line: &str) {
        self.flush_output();
        let text = self.mask(line.as_bytes());
        self.event("i", &text);
    }

    /// The terminal was resized.
    pub fn resize(&mut self, width: u32, height: u32) {
        self.flush_output();
        self.event("r", &format!("{width}x{height}"));
    }

    fn flush_output(&mut self) {
        if !self.held.is_empty() {
            let rest = std::mem::take(&mut self.held);
            let text = self.mask(&rest);
            self.event("o", &text);
        }
    }

    /// Write what is held, close the file and hash it.
    pub fn close(mut self) -> Result<Closed, String> {
        self.flush_output();
        if let Some(e) = self.error.take() {
            return Err(format!("writing recording {}: {e}", self.path.display()));
        }
        self.file
            .flush()
            .map_err(|e| format!("writing recording {}: {e}", self.path.display()))?;
        let _ = self.file.get_ref().sync_all();
        let bytes = std::fs::read(&self.path)
            .map_err(|e| format!("reading back recording {}: {e}", self.path.display()))?;
        Ok(Closed {
            file: self
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            size: bytes.len() as u64,
            output_bytes: self.bytes_out,
            masked: self.counts.clone(),
        })
    }
}

/// How much of `held` can be masked and written now: up to the last line
/// break, or all but a trailing word that could still be part of a value.
fn split_point(held: &[u8]) -> usize {
    if held.len() >= MAX_HELD {
        return held.len();
    }
    let word = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'@' | b'.' | b'_' | b'+');
    let trailing = held.iter().rev().take_while(|b| word(b)).count();
    if trailing == 0 {
        return held.len();
    }
    // A trailing word: keep it, plus the one before it when only a space
    // apart ("123 45 6789" spans words).
    let mut cut = held.len() - trailing;
    let before = &held[..cut];
    let sep = before.iter().rev().take_while(|b| **b == b' ').count();
    if sep > 0 && sep <= 1 {
        let prev = before[..before.len() - sep]
            .iter()
            .rev()
            .take_while(|b| word(b))
            .count();
        cut -= sep + prev;
    }
    if let Some(nl) = held[..cut].iter().rposition(|b| *b == b'\n') {
        // Never split a line that is still being written from its value:
        // write whole lines and the finished part of this one.
        return cut.max(nl + 1);
    }
    cut
}

/// One recorded event: seconds since the start, code (`o`, `i`, `r`), data.
pub type Frame = (f64, String, String);

/// Read a recording back: header and events, for replay.
pub fn read(path: &Path) -> Result<(serde_json::Value, Vec<Frame>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading recording {}: {e}", path.display()))?;
    parse(&text, path)
}

/// A recording's header and frames from its text (as read once, so what
/// is played is what was checked); `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<(serde_json::Value, Vec<Frame>), String> {
    let mut lines = text.lines();
    let header: serde_json::Value = lines
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| format!("{} is not an asciicast v2 file", path.display()))?;
    let mut events = Vec::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l)
            .map_err(|e| format!("{}: bad event line: {e}", path.display()))?;
        let t = v[0].as_f64().unwrap_or(0.0);
        let code = v[1].as_str().unwrap_or("").to_string();
        let data = v[2].as_str().unwrap_or("").to_string();
        events.push((t, code, data));
    }
    Ok((header, events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_a_growing_value() {
        assert_eq!(split_point(b"$ "), 2);
        assert_eq!(split_point(b"ssn 123-45"), 0);
        assert_eq!(split_point(b"line\nssn 123-45"), 5);
        assert_eq!(split_point(b"abc \n"), 5);
    }

    #[test]
    fn recording_masks_values_split_across_chunks() {
        let dir = std::env::temp_dir().join(format!("gh-rec-{}", std::process::id()));
        let path = dir.join("t.cast");
        let _ = std::fs::remove_file(&path);
        use crate::mask::{MaskerConfig, Strategy, TokenizeKey, DETECTABLE};
        let masker = Arc::new(Masker::new(MaskerConfig {
            detectors: DETECTABLE.to_vec(),
            strategies: Default::default(),
            default_strategy: Strategy::Redact,
            tokenize_key: TokenizeKey::new(b"k".to_vec()),
        }));
        let mut r = Recording::create(
            &path,
            80,
            24,
            Some("xterm"),
            "grep 123-45-6789 x",
            Some(masker),
        )
        .unwrap();
        r.output(b"ssn: 123-4");
        r.output(b"5-6789\r\n$ ");
        r.input("echo hi");
        r.resize(100, 30);
        let closed = r.close().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("123-45-6789"), "{text}");
        assert_eq!(closed.sha256.len(), 64);
        let (h, ev) = read(&path).unwrap();
        assert_eq!(h["version"], 2);
        assert_eq!(
            h["title"], "grep [REDACTED:ssn] x",
            "the title is masked too"
        );
        assert!(ev.iter().any(|e| e.1 == "i" && e.2 == "echo hi"));
        assert!(ev.iter().any(|e| e.1 == "r" && e.2 == "100x30"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_terminal_without_a_size_is_recorded_as_80_by_24() {
        let dir = std::env::temp_dir().join(format!("gh-rec0-{}", std::process::id()));
        let path = dir.join("t.cast");
        let _ = std::fs::remove_file(&path);
        let r = Recording::create(&path, 0, 0, None, "t", None).unwrap();
        r.close().unwrap();
        let (h, _) = read(&path).unwrap();
        assert_eq!(
            (h["width"].as_u64(), h["height"].as_u64()),
            (Some(80), Some(24))
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
