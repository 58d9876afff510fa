//! Masking text that arrives in pieces: LLM tokens, log lines, terminal
//! output. A value split across two pieces (`123-45-` then `6789`) must be
//! masked whole, yet ordinary prose must flow out as soon as it arrives.
//!
//! [`StreamMasker`] holds back only what could still grow into a finding:
//! the trailing word (it may not be finished) and, before it, a run of words
//! that could be the earlier groups of one value (`4111 1111 `, `(212) `,
//! `GB82 WEST `). Every value the detectors know joins its groups with a
//! single space at most, so text up to a blank that no group can cross is
//! final and is masked and emitted at once. The hold is capped at
//! [`MAX_HOLD`] bytes: nothing that long is one value, so the excess goes out.
//!
//! Detection runs over the last [`CONTEXT`] bytes already emitted plus the
//! held text, so labels (`SSN: `) and boundary checks see the same
//! neighbours they would in the whole text. For texts whose values fit the
//! hold, the concatenated output equals masking the whole text at once (a
//! property test holds us to it).

use super::detect::Finding;
use super::engine::{MaskCounts, Masker};

/// The most bytes a [`StreamMasker`] keeps back. The longest values the
/// detectors know are a grouped IBAN (42 bytes) and an international phone
/// (about 25); realistic emails stay well under this too. A run longer than
/// this cannot be one value, so it is masked and emitted regardless.
pub const MAX_HOLD: usize = 128;

/// Bytes of already-emitted text kept as left context for the detectors: an
/// SSN label is looked for 24 bytes back, IBANs and phones check the byte
/// before them.
const CONTEXT: usize = 64;

/// At most this many space-separated groups follow an IBAN's country code
/// and check digits.
const IBAN_GROUPS: usize = 8;

/// Masks one text that arrives in pieces. Keep one per stream (per LLM
/// choice and field); it holds at most [`MAX_HOLD`] bytes of pending text
/// plus a small context, so memory stays flat however long the stream runs.
#[derive(Debug, Clone, Default)]
pub struct StreamMasker {
    /// Original text not yet emitted.
    pending: String,
    /// The tail of the original text already emitted, for left context.
    context: String,
    /// Whether anything but whitespace was emitted: the whole-value rule for
    /// bare nine digits (an SSN when it is the entire text) must not fire
    /// once the text is known to hold more.
    emitted_text: bool,
}

impl StreamMasker {
    /// An empty stream.
    pub fn new() -> StreamMasker {
        StreamMasker::default()
    }

    /// Take the next piece; return the text now safe to send, masked. May
    /// be empty while the tail could still be part of a value.
    pub fn push(&mut self, masker: &Masker, piece: &str, counts: &mut MaskCounts) -> String {
        self.pending.push_str(piece);
        let cut = self.cut();
        self.emit(masker, cut, counts)
    }

    /// The stream ended: mask and return everything still held. The masker
    /// is then empty and may start a new text.
    pub fn finish(&mut self, masker: &Masker, counts: &mut MaskCounts) -> String {
        let out = self.emit(masker, self.pending.len(), counts);
        *self = StreamMasker::default();
        out
    }

    /// Bytes currently held back, so callers can tell whether a
    /// [`StreamMasker::finish`] would release anything.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// Where the held tail starts in `pending`.
    fn cut(&self) -> usize {
        let p = &self.pending;
        // Nine bare digits that are the entire text are an SSN; until the
        // text holds more than that, it could still be one.
        if !self.emitted_text && p.len() <= MAX_HOLD {
            let t = p.trim();
            if t.len() <= 9 && t.bytes().all(|b| b.is_ascii_digit()) {
                return 0;
            }
        }
        let mut cap = p.len().saturating_sub(MAX_HOLD);
        while !p.is_char_boundary(cap) {
            cap += 1;
        }
        hold_start(p).max(cap)
    }

    /// Mask and emit `pending[..cut]`, widening or narrowing the cut so that
    /// no finding is split by it.
    fn emit(&mut self, masker: &Masker, cut: usize, counts: &mut MaskCounts) -> String {
        if self.pending.is_empty() {
            return String::new();
        }
        let marker = if self.emitted_text && self.context.trim().is_empty() {
            // Context dropped the text emitted earlier; keep the fact that
            // there was some (see `emitted_text`).
            "\u{1}"
        } else {
            ""
        };
        let window = format!("{marker}{}{}", self.context, self.pending);
        let off = marker.len() + self.context.len();
        let found = masker.findings(&window);
        let mut cut = cut;
        if let Some(f) = found
            .iter()
            .find(|f| f.start < off + cut && f.end > off + cut)
        {
            // Hold the whole value back if it fits, else send all of it.
            cut = if f.start >= off && self.pending.len() - (f.start - off) <= MAX_HOLD {
                f.start - off
            } else {
                f.end - off
            };
        }
        if cut == 0 {
            return String::new();
        }
        let spans: Vec<Finding> = found
            .iter()
            .filter(|f| f.end > off && f.start < off + cut)
            .map(|f| Finding {
                // A value that began in text already sent (only after the
                // hold cap forced it out) is masked from here on.
                start: f.start.max(off) - off,
                end: f.end - off,
                entity: f.entity,
            })
            .collect();
        let out = masker.mask_findings(&self.pending[..cut], &spans, counts);
        let sent: String = self.pending.drain(..cut).collect();
        self.emitted_text |= !sent.trim().is_empty();
        self.context.push_str(&sent);
        if self.context.len() > CONTEXT {
            let mut from = self.context.len() - CONTEXT;
            while !self.context.is_char_boundary(from) {
                from += 1;
            }
            self.context.drain(..from);
        }
        out
    }
}

/// Where the part of `p` that could still be (the start of) a value begins:
/// the unfinished last word, and before it any words one value could join
/// to it. `p.len()` when everything is final.
fn hold_start(p: &str) -> usize {
    let len = p.len();
    let Some(last) = p.chars().next_back() else {
        return 0;
    };
    let open = !last.is_whitespace();
    let end = if open {
        len
    } else if ends_with_lone_space(&p[..len]) {
        len - 1
    } else {
        // A newline, a tab or two spaces: no value joins across it.
        return len;
    };
    // Words ending at `end`, last first, each joined to the next by one space.
    let floor = len.saturating_sub(MAX_HOLD);
    let mut words = Vec::new();
    let mut e = end;
    loop {
        let s = word_start(p, e);
        words.push(&p[s..e]);
        if s <= floor || !ends_with_lone_space(&p[..s]) {
            break;
        }
        e = s - 1;
    }
    let start_of = |k: usize| -> usize {
        // Words are contiguous: the k-th starts where the (k-1)-th's
        // separator ends.
        let w = words[k];
        w.as_ptr() as usize - p.as_ptr() as usize
    };
    let mut hold = if open { start_of(0) } else { len };

    // Digit groups (numbers, phones): `4111 1111`, `(212) 555-0147`.
    let ends_group = |w: &str| w.ends_with(|c: char| c.is_ascii_digit() || c == ')');
    let starts_group = |w: &str| w.starts_with(|c: char| c.is_ascii_digit() || c == '(');
    if open || ends_group(words[0]) {
        hold = hold.min(start_of(0));
        let mut k = 0;
        while k + 1 < words.len() && starts_group(words[k]) && ends_group(words[k + 1]) {
            k += 1;
        }
        hold = hold.min(start_of(k));
    }

    // Grouped IBANs: `GB82 WEST 1234 …`, groups of one to four characters.
    let is_group =
        |w: &str| (1..=4).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_alphanumeric());
    for (k, w) in words.iter().enumerate().take(IBAN_GROUPS + 1) {
        if starts_iban(w) {
            hold = hold.min(start_of(k));
        }
        if !is_group(w) {
            break;
        }
    }
    hold
}

/// Does `s` end with exactly one space after a non-blank character?
fn ends_with_lone_space(s: &str) -> bool {
    let mut rev = s.chars().rev();
    rev.next() == Some(' ') && rev.next().is_some_and(|c| !c.is_whitespace())
}

/// The start of the word ending at `end`.
fn word_start(p: &str, end: usize) -> usize {
    p[..end]
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8())
}

/// Does word `w` end with an IBAN's country code and check digits (two
/// letters, two digits) not glued to a letter or digit before them?
fn starts_iban(w: &str) -> bool {
    let b = w.as_bytes();
    let n = b.len();
    n >= 4
        && b[n - 4..n - 2].iter().all(u8::is_ascii_alphabetic)
        && b[n - 2..].iter().all(u8::is_ascii_digit)
        && (n == 4 || !b[n - 5].is_ascii_alphanumeric())
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::{EntityType, MaskerConfig, Strategy, TokenizeKey, DETECTABLE};
    use super::*;
    use proptest::prelude::{prop, prop_assert_eq, prop_oneof, proptest, Just, ProptestConfig};
    use proptest::strategy::Strategy as Gen;
    use std::collections::HashMap;

    /// SSNs and cards partially, everything else redacted; also the
    /// masker of `text`'s tests.
    pub(in crate::mask) fn masker() -> Masker {
        let mut strategies = HashMap::new();
        strategies.insert(EntityType::Ssn, Strategy::Partial { keep_last: 4 });
        strategies.insert(EntityType::CardNumber, Strategy::Partial { keep_last: 4 });
        Masker::new(MaskerConfig {
            detectors: DETECTABLE.to_vec(),
            strategies,
            default_strategy: Strategy::Redact,
            tokenize_key: TokenizeKey::new(b"k".to_vec()),
        })
    }

    /// Push `pieces` one by one; the outputs of each push and of finish.
    fn run(pieces: &[&str]) -> (Vec<String>, MaskCounts) {
        let m = masker();
        let mut s = StreamMasker::new();
        let mut counts = MaskCounts::default();
        let mut outs: Vec<String> = pieces.iter().map(|p| s.push(&m, p, &mut counts)).collect();
        outs.push(s.finish(&m, &mut counts));
        (outs, counts)
    }

    fn whole(text: &str) -> (String, MaskCounts) {
        let mut counts = MaskCounts::default();
        let out = masker()
            .mask_detected(text, &mut counts)
            .unwrap_or_else(|| text.to_string());
        (out, counts)
    }

    #[test]
    fn an_ssn_split_across_pieces_is_masked_whole() {
        let (outs, counts) = run(&["Your SSN is 123-45-", "6789", " thanks"]);
        assert_eq!(outs, ["Your SSN is ", "", "***-**-6789 ", "thanks"]);
        assert_eq!(counts.get(EntityType::Ssn), 1);
        let (outs, _) = run(&["ssn 123", "-4", "5-67", "89."]);
        assert_eq!(outs.concat(), "ssn ***-**-6789.");
        let (outs, _) = run(&["ssn 123 45 ", "6789\n", "next"]);
        assert_eq!(outs, ["ssn ", "*** ** 6789\n", "", "next"]);
    }

    #[test]
    fn prose_flows_word_by_word() {
        let (outs, _) = run(&["Hello", " there,", " how", " are", " you?"]);
        assert_eq!(outs, ["", "Hello ", "there, ", "how ", "are ", "you?"]);
        // A number that cannot join the next word is not held.
        let (outs, _) = run(&["In 2024,", " we", " grew."]);
        assert_eq!(outs, ["In ", "2024, ", "we ", "grew."]);
    }

    #[test]
    fn grouped_values_are_held_until_they_end() {
        let (outs, counts) = run(&["card 4111 ", "1111 1111 ", "1111 ok"]);
        assert_eq!(outs, ["card ", "", "**** **** **** 1111 ", "ok"]);
        assert_eq!(counts.get(EntityType::CardNumber), 1);
        let (outs, _) = run(&["IBAN GB82 WEST ", "1234 5698 7654 32", " paid"]);
        assert_eq!(outs.concat(), "IBAN [REDACTED:iban] paid");
        assert_eq!(outs[0], "IBAN ");
        let (outs, _) = run(&["call (212) ", "555-0147 now"]);
        assert_eq!(outs.concat(), "call [REDACTED:phone] now");
        let (outs, _) = run(&["mail jo@exam", "ple.com today"]);
        assert_eq!(outs, ["mail ", "[REDACTED:email] ", "today"]);
    }

    #[test]
    fn a_bare_nine_digit_text_is_held_until_it_is_more() {
        assert_eq!(run(&["1234", "56789"]).0.concat(), whole("123456789").0);
        assert_eq!(
            run(&["123456789\n", "shipped"]).0.concat(),
            "123456789\nshipped"
        );
    }

    #[test]
    fn the_hold_is_bounded() {
        let m = masker();
        let mut s = StreamMasker::new();
        let mut counts = MaskCounts::default();
        let mut out = String::new();
        for _ in 0..100 {
            out.push_str(&s.push(&m, "12 ", &mut counts));
            assert!(s.held() <= MAX_HOLD);
        }
        out.push_str(&s.finish(&m, &mut counts));
        assert_eq!(out, "12 ".repeat(100));
        for _ in 0..50 {
            out.push_str(&s.push(&m, "abcdefgh", &mut counts));
            assert!(s.held() <= MAX_HOLD);
        }
    }

    /// Pieces a text is built from: values of every kind, numbers that are
    /// not values, prose and the blanks between them.
    fn fragment() -> impl Gen<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "123-45-6789",
                "078-05-1121",
                "219 09 9999",
                "123456789",
                "SSN: 123456789",
                "4111 1111 1111 1111",
                "4111-1111-1111-1111",
                "5500000000000004",
                "3782 822463 10005",
                "jo@example.com",
                "first.last+tag@mail.example.co.uk",
                "(212) 555-0147",
                "212-555-0147",
                "+44 20 7946 0958",
                "+1 212 555 0147",
                "GB82 WEST 1234 5698 7654 32",
                "GB82WEST12345698765432",
                "021000021",
                "2024",
                "12",
                "order 123456789",
                "v1.2.3",
            ])
            .prop_map(str::to_string),
            "[a-z]{1,8}",
            "[A-Z]{2}[0-9]{2}",
            "[0-9]{1,5}",
            prop::sample::select(vec![" ", " ", " ", "  ", "\n", ", ", ". ", "-", ":"])
                .prop_map(str::to_string),
        ]
    }

    /// A text and the byte offsets (any char boundary) to split it at.
    fn split_text() -> impl Gen<Value = (String, Vec<usize>)> {
        let text = prop_oneof![
            prop::collection::vec(fragment(), 0..24).prop_map(|v| v.concat()),
            "[0-9a-zA-Z@ .()+\\-\n]{0,80}",
            Just("naïve 123-45-6789 ✓ — 客户 jo@example.com 👍".to_string()),
        ];
        text.prop_flat_map(|t| {
            let n = t.len();
            (Just(t), prop::collection::vec(0..=n, 0..12))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn any_split_masks_like_the_whole_text((text, mut cuts) in split_text()) {
            cuts.retain(|&c| text.is_char_boundary(c));
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut at = 0;
            for c in cuts {
                pieces.push(&text[at..c]);
                at = c;
            }
            pieces.push(&text[at..]);
            let (outs, counts) = run(&pieces);
            let (expected, expected_counts) = whole(&text);
            prop_assert_eq!(outs.concat(), expected, "{:?}", pieces);
            prop_assert_eq!(counts, expected_counts);
        }
    }
}
