//! Contact details: email addresses and phone numbers.
//!
//! Neither carries a checksum, so their shapes are what keep digit noise out:
//! an email needs `local@domain.tld`; a phone needs a leading `+` or NANP
//! punctuation (`(212) 555-0147`, `212-555-0147`, `212.555.0147`) and at least
//! [`PHONE_MIN_DIGITS`] digits. A plain run of digits is never a phone: that
//! is the card and account detectors' business.
//!
//! Email addresses are matched with Unicode letters in both parts
//! (`josé@exemple.fr`, `ü@bücher.de`) because a miss costs more than an extra
//! mask; quoted local parts and IP-literal domains are not matched.

use super::detect::{byte_at, byte_before, scan_candidates, Finding};
use super::EntityType;
use regex::Regex;
use std::sync::LazyLock;

/// A phone number has at least ten digits (NANP area code and number,
/// or an E.164 country code and subscriber number).
pub(super) const PHONE_MIN_DIGITS: usize = 10;

/// E.164 caps a number at fifteen digits.
const PHONE_MAX_DIGITS: usize = 15;

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    crate::static_regex(r"[\p{L}\p{N}._%+\-]+@[\p{L}\p{N}\-]+(?:\.[\p{L}\p{N}\-]+)*\.\p{L}{2,}")
});

static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    crate::static_regex(
        r"(?x)
        # NANP: optional country code 1, area code in parentheses or followed by a separator
        (?:\+?1[\ .\-]?)?(?:\([0-9]{3}\)[\ .\-]?|[0-9]{3}[\ .\-])[0-9]{3}[\ .\-][0-9]{4}
        # International: + country code, then groups (one may be parenthesised)
        | \+[0-9]{1,3}(?:[\ .\-]?(?:\([0-9]{1,4}\)|[0-9]{1,4})){2,6}
        ",
    )
});

/// Push every email address in `text`.
pub(super) fn find_emails(text: &str, out: &mut Vec<Finding>) {
    for m in EMAIL.find_iter(text) {
        out.push(Finding {
            start: m.start(),
            end: m.end(),
            entity: EntityType::Email,
        });
    }
}

/// Push every phone number in `text`. A candidate must not continue a
/// longer digit string on either side; a greedy international match is
/// trimmed back group by group (`+44 20 7946 0958 12 times`).
pub(super) fn find_phones(text: &str, out: &mut Vec<Finding>) {
    if may_hold_phone(text.as_bytes()) {
        scan_phones(text, out);
    }
}

/// [`find_phones`] without the prefilter.
fn scan_phones(text: &str, out: &mut Vec<Finding>) {
    scan_candidates(&PHONE, text, EntityType::Phone, out, |m| {
        if byte_before(text, m.start()).is_some_and(|b| b.is_ascii_digit() || b == b'+') {
            return None;
        }
        let group_ends = m
            .as_str()
            .bytes()
            .enumerate()
            .rev()
            .filter(|&(i, b)| i > 0 && matches!(b, b' ' | b'.' | b'-' | b'('))
            .map(|(i, _)| m.start() + i);
        std::iter::once(m.end())
            .chain(group_ends)
            .find(|&end| {
                let digits = text.as_bytes()[m.start()..end]
                    .iter()
                    .filter(|b| b.is_ascii_digit())
                    .count();
                (PHONE_MIN_DIGITS..=PHONE_MAX_DIGITS).contains(&digits)
                    && !byte_at(text, end).is_some_and(|b| b.is_ascii_digit())
                    && !text[..end].ends_with(['.', '-', ' ', '('])
            })
            .map(|end| (m.start(), end))
    });
}

/// Could `bytes` hold a phone? Every shape [`PHONE`] matches has one of:
/// a `+` or `(` followed by at least ten digits, or a NANP number's
/// `ddd-ddd-dddd` (any of the separators). Timestamps, amounts and card
/// numbers in groups of four have neither and skip the regex.
fn may_hold_phone(bytes: &[u8]) -> bool {
    let mut digits_after = 0;
    for &b in bytes.iter().rev() {
        if b.is_ascii_digit() {
            digits_after += 1;
        } else if matches!(b, b'+' | b'(') && digits_after >= PHONE_MIN_DIGITS {
            return true;
        }
    }
    let digits = |w: &[u8]| w.iter().all(u8::is_ascii_digit);
    let sep = |b: u8| matches!(b, b' ' | b'.' | b'-');
    bytes
        .windows(12)
        .any(|w| digits(&w[..3]) && sep(w[3]) && digits(&w[4..7]) && sep(w[7]) && digits(&w[8..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emails(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        find_emails(text, &mut out);
        out.iter().map(|f| &text[f.start..f.end]).collect()
    }

    fn phones(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        find_phones(text, &mut out);
        out.iter().map(|f| &text[f.start..f.end]).collect()
    }

    #[test]
    fn emails_in_sentences_and_with_unicode() {
        assert_eq!(emails("mail jo@example.com."), ["jo@example.com"]);
        assert_eq!(
            emails("<first.last+tag@mail.example.co.uk>, x@y.io"),
            ["first.last+tag@mail.example.co.uk", "x@y.io"]
        );
        assert_eq!(emails("mailto:josé@exemple.fr"), ["josé@exemple.fr"]);
        assert!(emails("user@localhost and @handle and a@b").is_empty());
    }

    #[test]
    fn nanp_and_international_phones() {
        for phone in [
            "(212) 555-0147",
            "(212)555-0147",
            "212-555-0147",
            "212.555.0147",
            "212 555 0147",
            "+1 212 555 0147",
            "1-212-555-0147",
            "+1 (212) 555-0147",
            "+44 20 7946 0958",
            "+442079460958",
            "+49 (30) 123456-78",
        ] {
            assert_eq!(phones(&format!("call {phone} now")), [phone], "{phone}");
        }
    }

    #[test]
    fn digit_runs_and_short_numbers_are_not_phones() {
        assert!(phones("2125550147").is_empty(), "no phone punctuation");
        assert!(
            phones("12345 555-0147").is_empty(),
            "tail of a longer number"
        );
        assert!(phones("212-555-01478").is_empty());
        assert!(phones("+44 20 7946").is_empty(), "nine digits");
        assert!(phones("4111 1111 1111 1111").is_empty());
        assert!(!may_hold_phone(b"2024-01-15 10:30:00.123456+00"));
        assert!(may_hold_phone(b"call 212.555.0147"));
        assert!(!may_hold_phone(b"212.555"), "too short to be one");
        assert!(
            !may_hold_phone(b"card 4111 1111 1111 1111"),
            "groups of four skip the regex"
        );
        assert!(may_hold_phone(b"+4420794609"));
        assert!(!may_hold_phone(b"+442079460"));
    }

    proptest::proptest! {
        /// The prefilter never hides a phone the full scan would find.
        #[test]
        fn the_prefilter_never_hides_a_phone(text in proptest::prop_oneof![
            "[0-9 .()+\\-ab]{0,24}",
            "[a ]{0,2}(\\+?1?[ .-]?)?(\\([0-9]{3}\\)|[0-9]{2,4})[ .-]?[0-9]{2,4}[ .-]?[0-9]{3,5}[ .-]?[0-9]{0,4}",
            "\\+[0-9]{1,3}([ .-]?(\\([0-9]{1,4}\\)|[0-9]{1,4})){2,6}[0-9 ]{0,3}",
        ]) {
            let mut all = Vec::new();
            scan_phones(&text, &mut all);
            let mut filtered = Vec::new();
            find_phones(&text, &mut filtered);
            let spans = |f: &[Finding]| f.iter().map(|f| (f.start, f.end)).collect::<Vec<_>>();
            proptest::prop_assert_eq!(spans(&all), spans(&filtered), "{}", text);
        }
    }

    #[test]
    fn a_greedy_international_match_is_trimmed_to_the_number() {
        assert_eq!(phones("+44 20 7946 0958 2024 visits"), ["+44 20 7946 0958"]);
    }
}
