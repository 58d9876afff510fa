//! Masking a file (or any byte stream) that should be text: SFTP reads, scp
//! file data, `kubectl exec` stdout.
//!
//! [`TextStream`] wraps a [`StreamMasker`] for bytes: it carries an
//! incomplete UTF-8 sequence over to the next piece, and stops at the first
//! byte that shows the stream is not text — a NUL, or bytes that are not
//! UTF-8 — because a binary stream cannot be masked without corrupting it,
//! and passing it unmasked would let any value through. Callers decide what
//! a binary stream means (refused unless a rule allows it).

use super::engine::{MaskCounts, Masker};
use super::stream::StreamMasker;

/// Why a stream is not text, and where that showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotText {
    /// Offset (in the original stream) of the first byte that is not text.
    pub offset: u64,
    /// What was found: "a NUL byte" or "bytes that are not UTF-8".
    pub what: &'static str,
}

impl std::fmt::Display for NotText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

/// Whether `bytes`, the start of a stream, looks like text: no NUL and
/// valid UTF-8 (an incomplete character at the very end is allowed).
pub fn sniff_text(bytes: &[u8]) -> Result<(), NotText> {
    check(bytes, 0, true).map(|_| ())
}

/// Checks `bytes` (starting at `base` in the stream); returns how many
/// leading bytes are complete text (the rest is an incomplete character,
/// allowed only when `more` may follow).
fn check(bytes: &[u8], base: u64, more: bool) -> Result<usize, NotText> {
    if let Some(i) = bytes.iter().position(|&b| b == 0) {
        return Err(NotText {
            offset: base + i as u64,
            what: "a NUL byte",
        });
    }
    match std::str::from_utf8(bytes) {
        Ok(_) => Ok(bytes.len()),
        Err(e) if e.error_len().is_none() && more => Ok(e.valid_up_to()),
        Err(e) => Err(NotText {
            offset: base + e.valid_up_to() as u64,
            what: "bytes that are not UTF-8",
        }),
    }
}

/// Masks a byte stream that must be text, as it arrives.
#[derive(Debug, Clone, Default)]
pub struct TextStream {
    stream: StreamMasker,
    /// An incomplete UTF-8 character carried to the next piece.
    partial: Vec<u8>,
    /// Bytes taken so far (original).
    pub bytes_in: u64,
    /// Bytes emitted so far (masked).
    pub bytes_out: u64,
    /// Values masked, by kind.
    pub counts: MaskCounts,
}

impl TextStream {
    /// A new stream.
    pub fn new() -> TextStream {
        TextStream::default()
    }

    /// Take the next piece; the masked text now safe to send (possibly
    /// empty while a value may still be growing), or why the stream is not
    /// text. After an error the stream must not be used further.
    pub fn push(&mut self, masker: &Masker, piece: &[u8]) -> Result<Vec<u8>, NotText> {
        let base = self.bytes_in - self.partial.len() as u64;
        self.bytes_in += piece.len() as u64;
        let mut joined = std::mem::take(&mut self.partial);
        joined.extend_from_slice(piece);
        let complete = check(&joined, base, true)?;
        self.partial = joined.split_off(complete);
        let text = std::str::from_utf8(&joined).map_err(|_| NotText {
            offset: base,
            what: "bytes that are not UTF-8",
        })?;
        let out = self
            .stream
            .push(masker, text, &mut self.counts)
            .into_bytes();
        self.bytes_out += out.len() as u64;
        Ok(out)
    }

    /// The stream ended: everything still held, masked.
    pub fn finish(&mut self, masker: &Masker) -> Result<Vec<u8>, NotText> {
        if !self.partial.is_empty() {
            return Err(NotText {
                offset: self.bytes_in - self.partial.len() as u64,
                what: "bytes that are not UTF-8",
            });
        }
        let out = self.stream.finish(masker, &mut self.counts).into_bytes();
        self.bytes_out += out.len() as u64;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::stream::tests::masker;
    use super::super::EntityType;
    use super::*;

    #[test]
    fn a_csv_split_anywhere_is_masked_whole() {
        let m = masker();
        let text = "name,ssn,card\nAda,123-45-6789,4111 1111 1111 1111\nBob ✓,078-05-1121,none\n";
        for cut in 1..text.len() {
            let mut s = TextStream::new();
            let mut out = s.push(&m, &text.as_bytes()[..cut]).unwrap();
            out.extend(s.push(&m, &text.as_bytes()[cut..]).unwrap());
            out.extend(s.finish(&m).unwrap());
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains("123-45-6789") && !out.contains("4111 1111 1111 1111"));
            assert!(out.contains("***-**-6789"), "{out}");
            assert_eq!(s.counts.get(EntityType::Ssn), 2, "cut {cut}: {out}");
            assert_eq!(s.counts.get(EntityType::CardNumber), 1);
            assert_eq!(s.bytes_in, text.len() as u64);
            assert_eq!(s.bytes_out, out.len() as u64);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any text, cut into byte pieces anywhere (inside characters too),
        /// masks like the whole text at once; any bytes never panic.
        #[test]
        fn byte_splits_mask_like_the_whole_text(
            // Words separated by blanks: values fit the stream masker's hold
            // (see `StreamMasker`), where it masks exactly like the whole.
            text in "(([a-z,.✓客]{1,6}|123-45-6789|4111 1111 1111 1111|jo@example\\.com)[ \n]){0,40}",
            cuts in proptest::collection::vec(0usize..400, 0..8),
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let m = masker();
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= bytes.len()).collect();
            cuts.sort_unstable();
            let mut s = TextStream::new();
            let mut out = Vec::new();
            let mut at = 0;
            for c in cuts {
                out.extend(s.push(&m, &bytes[at..c]).unwrap());
                at = c;
            }
            out.extend(s.push(&m, &bytes[at..]).unwrap());
            out.extend(s.finish(&m).unwrap());
            let mut counts = MaskCounts::default();
            let whole = m.mask_detected(&text, &mut counts).unwrap_or_else(|| text.clone());
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), whole);
            proptest::prop_assert_eq!(&s.counts, &counts);
            let mut s = TextStream::new();
            let _ = s.push(&m, &junk);
            let _ = s.finish(&m);
        }
    }

    #[test]
    fn long_lines_without_blanks_still_mask_every_value() {
        // CSV with no spaces: runs far longer than the stream masker's hold.
        let m = masker();
        let mut text = String::new();
        for i in 0..50 {
            text.push_str(&format!(
                "{i},Ada,123-45-6789,4111111111111111,ada{i}@example.com,{}\n",
                "x".repeat(150)
            ));
        }
        for piece in [1, 7, 64, 129, 4096] {
            let mut s = TextStream::new();
            let mut out = Vec::new();
            for chunk in text.as_bytes().chunks(piece) {
                out.extend(s.push(&m, chunk).unwrap());
            }
            out.extend(s.finish(&m).unwrap());
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains("123-45-6789"), "piece {piece}");
            assert!(!out.contains("4111111111111111"), "piece {piece}");
            assert!(!out.contains("@example.com"), "piece {piece}");
            assert_eq!(s.counts.get(EntityType::Ssn), 50, "piece {piece}");
        }
    }

    #[test]
    fn binary_is_reported_where_it_shows() {
        let m = masker();
        let mut s = TextStream::new();
        assert!(s.push(&m, b"hello ").is_ok());
        let e = s.push(&m, b"wor\0ld").unwrap_err();
        assert_eq!((e.offset, e.what), (9, "a NUL byte"));
        let mut s = TextStream::new();
        assert!(s.push(&m, b"ab\xc3").is_ok());
        let e = s.push(&m, b"(").unwrap_err();
        assert_eq!(e.offset, 2);
        let mut s = TextStream::new();
        assert!(s.push(&m, b"ab\xc3").is_ok());
        assert!(s.finish(&m).is_err());
        assert!(sniff_text(b"plain \xe2\x9c").is_ok());
        assert!(sniff_text(b"\x7fELF\x02\x01\x01\0").is_err());
        assert!(sniff_text(b"\x89PNG\r\n").is_err());
    }
}
