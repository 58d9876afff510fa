//! Numeric identifiers: SSNs, payment cards and ABA routing numbers.
//!
//! All three are digits optionally grouped by single spaces or dashes, so we
//! first cut the text into maximal runs of grouped digits
//! (`4111 1111 1111 1111`, `123-45-6789`, `021000021`) and the entity rules
//! then look at whole groups. Working on groups rather than on a greedy match
//! means a card right after another number (`qty 2 4111 1111 1111 1111`) is
//! still found, and a match can never start or end inside a digit group: a
//! 20-digit string is not a card and the tail of a longer number is not an
//! SSN.
//!
//! The runs are cut by a byte loop rather than a regex: the shape is that
//! simple, and timestamps and ids, the most common values on the hot path,
//! hold many short runs, where per-match regex overhead dominated.

use super::detect::{Detectors, Finding, MIN_DIGITS};
use super::{validate, EntityType};

/// How far before nine bare digits we look for an `ssn` label.
const SSN_LABEL_WINDOW: usize = 24;

/// One digit group of a run: byte range and the separator before it
/// (`None` for the first group).
#[derive(Debug, Clone, Copy)]
struct Group {
    start: usize,
    end: usize,
    sep: Option<u8>,
}

impl Group {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// Push every SSN, card and ABA finding in `text` enabled in `on`.
pub(super) fn find(on: &Detectors, text: &str, out: &mut Vec<Finding>) {
    let mut groups = Vec::new();
    let mut at = 0;
    while let Some(end) = next_run(text.as_bytes(), at, &mut groups) {
        at = end;
        let digits: usize = groups.iter().map(Group::len).sum();
        if digits < MIN_DIGITS {
            continue;
        }
        if on.card {
            find_cards(text, &groups, out);
        }
        if on.ssn {
            find_grouped_ssns(text, &groups, out);
        }
        if on.ssn || on.aba {
            find_bare_nines(on, text, &groups, out);
        }
    }
}

/// Fill `groups` with the next maximal run of digit groups joined by one
/// space or dash, searching from `from`; returns where the run ends.
fn next_run(bytes: &[u8], from: usize, groups: &mut Vec<Group>) -> Option<usize> {
    groups.clear();
    let digits_end = |mut j: usize| {
        while bytes.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        j
    };
    let mut start = from + bytes.get(from..)?.iter().position(u8::is_ascii_digit)?;
    let mut sep = None;
    loop {
        let end = digits_end(start);
        groups.push(Group { start, end, sep });
        match (bytes.get(end), bytes.get(end + 1)) {
            (Some(&s @ (b' ' | b'-')), Some(d)) if d.is_ascii_digit() => {
                sep = Some(s);
                start = end + 1;
            }
            _ => return Some(end),
        }
    }
}

/// Cards: any window of whole groups holding 13–19 digits, one kind of
/// separator throughout (`4111-1111 1111-1111` is not written by anyone),
/// a known issuer and a valid Luhn digit. Overlapping windows are all
/// proposed; the longest valid one wins in overlap resolution.
fn find_cards(text: &str, groups: &[Group], out: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    let mut buf = [0u8; 19];
    for (i, first) in groups.iter().enumerate() {
        let mut n = 0;
        let sep = groups.get(i + 1).and_then(|g| g.sep);
        for g in &groups[i..] {
            if n + g.len() > buf.len() || (g.start != first.start && g.sep != sep) {
                break;
            }
            buf[n..n + g.len()].copy_from_slice(&bytes[g.start..g.end]);
            n += g.len();
            if n >= 13 && validate::card(&buf[..n]) {
                out.push(Finding {
                    start: first.start,
                    end: g.end,
                    entity: EntityType::CardNumber,
                });
            }
        }
    }
}

/// SSNs written `AAA-GG-SSSS` or `AAA GG SSSS`: three consecutive groups
/// of 3, 2 and 4 digits with the same separator twice.
fn find_grouped_ssns(text: &str, groups: &[Group], out: &mut Vec<Finding>) {
    for w in groups.windows(3) {
        let [a, g, s] = w else { continue };
        let shape = a.len() == 3 && g.len() == 2 && s.len() == 4;
        if !shape || g.sep != s.sep {
            continue;
        }
        let num = |x: &Group| text[x.start..x.end].parse::<u32>().unwrap_or(0);
        if validate::ssn(num(a), num(g), num(s)) {
            out.push(Finding {
                start: a.start,
                end: s.end,
                entity: EntityType::Ssn,
            });
        }
    }
}

/// Nine bare digits: see the precedence rules in the `detect` module.
fn find_bare_nines(on: &Detectors, text: &str, groups: &[Group], out: &mut Vec<Finding>) {
    for g in groups.iter().filter(|g| g.len() == 9) {
        let d = &text.as_bytes()[g.start..g.end];
        let as_ssn = on.ssn && validate::ssn_digits(d);
        let entity = if as_ssn && labelled_ssn(text, g.start) {
            EntityType::Ssn
        } else if on.aba && validate::aba(d) {
            EntityType::AbaRouting
        } else if as_ssn && text.trim() == &text[g.start..g.end] {
            EntityType::Ssn
        } else {
            continue;
        };
        out.push(Finding {
            start: g.start,
            end: g.end,
            entity,
        });
    }
}

/// Does the text just before `at` name an SSN (`SSN: `, `"ssn":"`,
/// `social security no. `)? The label must be a word of its own, so
/// `classname` does not count.
fn labelled_ssn(text: &str, at: usize) -> bool {
    let before = &text.as_bytes()[at.saturating_sub(SSN_LABEL_WINDOW)..at];
    let lower: Vec<u8> = before.iter().map(u8::to_ascii_lowercase).collect();
    let word_at = |i: usize, len: usize| {
        let left = i.checked_sub(1).map(|j| lower[j]);
        let right = lower.get(i + len).copied();
        !left.is_some_and(|b| b.is_ascii_alphabetic())
            && !right.is_some_and(|b| b.is_ascii_alphabetic())
    };
    ["ssn".as_bytes(), b"social security"].iter().any(|label| {
        lower
            .windows(label.len())
            .enumerate()
            .any(|(i, w)| w == *label && word_at(i, label.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Detectors {
        Detectors::new(&[
            EntityType::Ssn,
            EntityType::CardNumber,
            EntityType::AbaRouting,
        ])
    }

    fn found(text: &str) -> Vec<(EntityType, &str)> {
        let mut out = Vec::new();
        find(&all(), text, &mut out);
        out.into_iter()
            .map(|f| (f.entity, &text[f.start..f.end]))
            .collect()
    }

    #[test]
    fn runs_are_maximal_and_joined_by_one_space_or_dash() {
        let text = "a 12-345 6x7  89-";
        let mut groups = Vec::new();
        let mut at = 0;
        let mut runs = Vec::new();
        while let Some(end) = next_run(text.as_bytes(), at, &mut groups) {
            let seps: Vec<Option<u8>> = groups.iter().map(|g| g.sep).collect();
            runs.push((&text[groups[0].start..end], seps));
            at = end;
        }
        assert_eq!(
            runs,
            vec![
                ("12-345 6", vec![None, Some(b'-'), Some(b' ')]),
                ("7", vec![None]),
                ("89", vec![None]),
            ]
        );
    }

    #[test]
    fn cards_are_found_in_any_grouping_but_not_inside_longer_numbers() {
        for card in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "3782 822463 10005",
        ] {
            assert!(found(&format!("pan {card}.")).contains(&(EntityType::CardNumber, card)));
        }
        assert!(
            found("94111111111111111").is_empty(),
            "17 digits, not a card"
        );
        assert!(found("41111111111111110000").is_empty(), "20 digits");
        assert!(found("4111-1111 1111-1111").is_empty(), "mixed separators");
    }

    #[test]
    fn a_card_next_to_another_number_is_still_found() {
        let f = found("qty 2 4111 1111 1111 1111");
        assert!(
            f.contains(&(EntityType::CardNumber, "4111 1111 1111 1111")),
            "{f:?}"
        );
        let f = found("4111111111111111 7");
        assert!(
            f.contains(&(EntityType::CardNumber, "4111111111111111")),
            "{f:?}"
        );
    }

    #[test]
    fn grouped_ssns_need_one_separator_kind() {
        assert_eq!(found("123-45-6789"), vec![(EntityType::Ssn, "123-45-6789")]);
        assert_eq!(found("123 45 6789"), vec![(EntityType::Ssn, "123 45 6789")]);
        assert!(found("123-45 6789").is_empty());
        assert!(found("666-45-6789").is_empty());
        assert!(
            found("1123-45-6789").is_empty(),
            "area is part of a longer group"
        );
    }

    #[test]
    fn bare_nine_digits_follow_the_precedence_rules() {
        // Checksum-valid routing number anywhere.
        assert_eq!(
            found("routing 021000021 ok"),
            vec![(EntityType::AbaRouting, "021000021")]
        );
        // The whole value, not a routing number: an SSN stored without dashes.
        assert_eq!(found("123456789"), vec![(EntityType::Ssn, "123456789")]);
        assert_eq!(found(" 123456789\n"), vec![(EntityType::Ssn, "123456789")]);
        // Labelled as an SSN, even when the digits pass the ABA checksum.
        assert_eq!(
            found("SSN: 123456789, ok"),
            vec![(EntityType::Ssn, "123456789")]
        );
        assert_eq!(
            found(r#"{"ssn":"121045672"}"#),
            vec![(EntityType::Ssn, "121045672")]
        );
        assert_eq!(
            found("Social Security number 123456789"),
            vec![(EntityType::Ssn, "123456789")]
        );
        // An id in a sentence stays readable.
        assert!(found("order 123456789 shipped").is_empty());
        assert!(found("classname 123456789 x").is_empty());
        assert!(found("1234567890").is_empty(), "ten digits");
    }

    #[test]
    fn only_enabled_detectors_report() {
        let mut out = Vec::new();
        find(
            &Detectors::new(&[EntityType::AbaRouting]),
            "123-45-6789 123456789",
            &mut out,
        );
        assert!(out.is_empty());
        find(&Detectors::new(&[EntityType::Ssn]), "121045672", &mut out);
        assert_eq!(
            out.len(),
            1,
            "a whole-value nine digits is an SSN when ABA is off"
        );
        assert_eq!(out[0].entity, EntityType::Ssn);
    }
}
