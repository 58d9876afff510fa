//! Masking a streamed text body (watch events, `logs -f`, SSE) piece by
//! piece, with UTF-8 sequences split across chunks carried over.

use gatehouse_core::mask::{MaskCounts, Masker};

/// Longest tail kept back waiting for a line end.
const MAX_CARRY: usize = 64;

/// A text stream's masking state.
#[derive(Default)]
pub struct TextStream {
    pending_utf8: Vec<u8>,
    carry: String,
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
                    self.carry.push_str(text);
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    self.carry
                        .push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            // Not UTF-8: flush what we have, pass the byte on.
                            out.extend(self.flush_all(masker, counts));
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
        let cut = match self.carry.rfind('\n') {
            Some(i) => i + 1,
            None if self.carry.len() > MAX_CARRY => {
                let mut c = self.carry.len() - MAX_CARRY;
                while !self.carry.is_char_boundary(c) {
                    c -= 1;
                }
                c
            }
            None => 0,
        };
        let head: String = self.carry.drain(..cut).collect();
        out.extend(mask(masker, head, counts));
        out
    }

    /// Everything still held, masked.
    pub fn finish(&mut self, masker: &Masker, counts: &mut MaskCounts) -> Vec<u8> {
        let mut out = self.flush_all(masker, counts);
        out.append(&mut self.pending_utf8);
        out
    }

    fn flush_all(&mut self, masker: &Masker, counts: &mut MaskCounts) -> Vec<u8> {
        mask(masker, std::mem::take(&mut self.carry), counts)
    }
}

fn mask(masker: &Masker, text: String, counts: &mut MaskCounts) -> Vec<u8> {
    masker
        .mask_detected(&text, counts)
        .unwrap_or(text)
        .into_bytes()
}
