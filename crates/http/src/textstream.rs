//! Masking a streamed text body (watch events, `logs -f`) chunk by chunk:
//! UTF-8 sequences split across chunks are carried over, and the core's
//! [`StreamMasker`] catches values split across them.

use gatehouse_core::mask::{MaskCounts, Masker, StreamMasker};

/// A text stream's masking state.
#[derive(Default)]
pub struct TextStream {
    pending_utf8: Vec<u8>,
    text: StreamMasker,
}

impl TextStream {
    /// Mask what is safe to send of `chunk`.
    pub fn push(&mut self, masker: &Masker, chunk: &[u8], counts: &mut MaskCounts) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.pending_utf8);
        bytes.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(bytes.len());
        let mut rest = &bytes[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    out.extend(self.text.push(masker, text, counts).into_bytes());
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    let good = std::str::from_utf8(good).unwrap_or_default();
                    out.extend(self.text.push(masker, good, counts).into_bytes());
                    match e.error_len() {
                        Some(n) => {
                            // Not UTF-8: what is held goes first, then the
                            // stray bytes as they are.
                            out.extend(self.text.finish(masker, counts).into_bytes());
                            out.extend_from_slice(&bad[..n]);
                            rest = &bad[n..];
                        }
                        None => {
                            self.pending_utf8 = bad.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// Everything still held, masked.
    pub fn finish(&mut self, masker: &Masker, counts: &mut MaskCounts) -> Vec<u8> {
        let mut out = self.text.finish(masker, counts).into_bytes();
        out.append(&mut self.pending_utf8);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::mask::{MaskerConfig, Strategy, TokenizeKey, DETECTABLE};

    #[test]
    fn values_and_characters_split_across_chunks_are_whole_again() {
        let masker = Masker::new(MaskerConfig {
            detectors: DETECTABLE.to_vec(),
            strategies: Default::default(),
            default_strategy: Strategy::Redact,
            tokenize_key: TokenizeKey::new(vec![1; 32]),
        });
        let text = "café log: customer ssn 123-45-6789 ok\n".as_bytes();
        for cut in 1..text.len() {
            let mut s = TextStream::default();
            let mut counts = MaskCounts::default();
            let mut out = s.push(&masker, &text[..cut], &mut counts);
            out.extend(s.push(&masker, &text[cut..], &mut counts));
            out.extend(s.finish(&masker, &mut counts));
            let out = String::from_utf8(out).unwrap();
            assert!(out.starts_with("café log"), "{out}");
            assert!(
                !out.contains("6789") || !out.contains("123-45"),
                "cut {cut}: {out}"
            );
        }
    }
}
