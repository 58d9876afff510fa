//! IBANs, written compact (`GB82WEST12345698765432`) or in groups of four
//! (`GB82 WEST 1234 5698 7654 32`), in either letter case.
//!
//! The grouped shape cannot know where the IBAN stops (`… 7654 32 EUR`
//! looks like one more group), so the scanner tries each group boundary
//! from the longest and keeps the first that passes mod-97 and the country
//! length. It also requires [`MIN_DIGITS`] digits, which every IBAN of the
//! countries we know has many times over; that keeps the prefilter sound.

use super::detect::{byte_at, byte_before, scan_candidates, Finding, MIN_DIGITS};
use super::{validate, EntityType};
use regex::Regex;
use std::sync::LazyLock;

/// Country, check digits, then the BBAN compact or in space-separated groups.
static CANDIDATE: LazyLock<Regex> = LazyLock::new(|| {
    crate::static_regex(r"[A-Za-z]{2}[0-9]{2}(?:[A-Za-z0-9]{11,30}|(?: [A-Za-z0-9]{1,4}){3,8})")
});

/// Push every valid IBAN in `text`.
pub(super) fn find(text: &str, out: &mut Vec<Finding>) {
    // Every IBAN starts with two letters and two digits; most values have no
    // such spot and skip the regex.
    let starts_like_iban = |w: &[u8]| {
        w[..2].iter().all(u8::is_ascii_alphabetic) && w[2..].iter().all(u8::is_ascii_digit)
    };
    if !text.as_bytes().windows(4).any(starts_like_iban) {
        return;
    }
    scan_candidates(&CANDIDATE, text, EntityType::Iban, out, |m| {
        if byte_before(text, m.start()).is_some_and(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let group_ends = m.as_str().rmatch_indices(' ').map(|(i, _)| m.start() + i);
        std::iter::once(m.end())
            .chain(group_ends)
            .find(|&end| {
                !byte_at(text, end).is_some_and(|b| b.is_ascii_alphanumeric())
                    && is_iban(&text[m.start()..end])
            })
            .map(|end| (m.start(), end))
    });
}

fn is_iban(written: &str) -> bool {
    let compact: String = written
        .chars()
        .filter(|c| *c != ' ')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    compact.bytes().filter(u8::is_ascii_digit).count() >= MIN_DIGITS && validate::iban(&compact)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        find(text, &mut out);
        out.iter().map(|f| &text[f.start..f.end]).collect()
    }

    #[test]
    fn compact_grouped_and_lower_case_ibans_are_found() {
        assert_eq!(
            found("iban GB82WEST12345698765432."),
            ["GB82WEST12345698765432"]
        );
        assert_eq!(
            found("GB82 WEST 1234 5698 7654 32"),
            ["GB82 WEST 1234 5698 7654 32"]
        );
        assert_eq!(
            found("to gb82west12345698765432"),
            ["gb82west12345698765432"]
        );
        assert_eq!(
            found("pay DE89 3704 0044 0532 0130 00, thanks"),
            ["DE89 3704 0044 0532 0130 00"]
        );
    }

    #[test]
    fn a_following_word_does_not_hide_a_grouped_iban() {
        assert_eq!(
            found("ES91 2100 0418 4502 0005 1332 DATE 2024"),
            ["ES91 2100 0418 4502 0005 1332"]
        );
        assert_eq!(
            found("GB82 WEST 1234 5698 7654 32 EUR"),
            ["GB82 WEST 1234 5698 7654 32"]
        );
    }

    #[test]
    fn bad_checksums_and_glued_text_are_left_alone() {
        assert!(found("GB82WEST12345698765433").is_empty());
        assert!(found("XGB82WEST12345698765432").is_empty());
        assert!(found("GB82WEST12345698765432X").is_empty());
        assert!(found("GB82 WEST 1234 5698 7654 3").is_empty());
    }
}
