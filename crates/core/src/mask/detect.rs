//! Content detectors: find sensitive values inside any text.
//!
//! A regular expression proposes candidates by shape; each candidate is then
//! validated (checksums, SSA rules, issuer prefixes), so digit noise that
//! merely looks like an identifier is left alone. The scanners live in
//! `numbers` (SSN, card, ABA), `iban` and `contact` (email, phone); this
//! module runs the enabled ones and settles overlaps.
//!
//! Ambiguous shapes are settled in one place each:
//! - nine bare digits are an ABA routing number when the checksum holds; an
//!   SSN when the text right before says `ssn` or `social security`, or when
//!   the nine digits are the whole value (an `ssn` column stored without
//!   dashes). Any other bare nine digits (an order id) stay readable.
//! - `123-45-6789` and `123 45 6789` (one kind of separator) are SSNs.
//! - when findings overlap, the longer one wins, then the one listed first in
//!   `precedence`; the output never overlaps.

use super::{contact, iban, numbers, EntityType};
use regex::{Match, Regex};
use std::cmp::Reverse;
use std::collections::BTreeMap;

/// A sensitive value found in text, by byte range on char boundaries, so the
/// engine can splice a masked value in without re-scanning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// Start byte.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// What it is.
    pub entity: EntityType,
}

/// The fewest ASCII digits any non-email finding holds: SSN and ABA have
/// nine, phones ten, cards thirteen, and the IBAN scanner requires nine.
pub(super) const MIN_DIGITS: usize = 9;

/// Cheap check run before the detectors, so the hot path skips most values
/// without touching a regex: could `bytes` hold any finding?
///
/// Every email has an `@` and every other entity at least nine ASCII
/// digits, so `false` here is a proof that [`Detectors::find`] finds
/// nothing (a property test holds us to it).
pub fn may_contain_pii(bytes: &[u8]) -> bool {
    let mut digits = 0;
    for &b in bytes {
        if b == b'@' {
            return true;
        }
        if b.is_ascii_digit() {
            digits += 1;
            if digits >= MIN_DIGITS {
                return true;
            }
        }
    }
    false
}

/// Which detectors run; built once from the `[masking] detectors` list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Detectors {
    pub(super) ssn: bool,
    pub(super) card: bool,
    pub(super) iban: bool,
    pub(super) aba: bool,
    pub(super) email: bool,
    pub(super) phone: bool,
}

impl Detectors {
    /// Detectors for these entity types. `Column` names no detector and is
    /// ignored; duplicates are harmless.
    pub fn new(enabled: &[EntityType]) -> Detectors {
        let mut d = Detectors::default();
        for e in enabled {
            match e {
                EntityType::Ssn => d.ssn = true,
                EntityType::CardNumber => d.card = true,
                EntityType::Iban => d.iban = true,
                EntityType::AbaRouting => d.aba = true,
                EntityType::Email => d.email = true,
                EntityType::Phone => d.phone = true,
                EntityType::AccountNumber | EntityType::Column => {}
            }
        }
        d
    }

    /// Whether a detector for `entity` runs.
    pub fn is_enabled(&self, entity: EntityType) -> bool {
        match entity {
            EntityType::Ssn => self.ssn,
            EntityType::CardNumber => self.card,
            EntityType::Iban => self.iban,
            EntityType::AbaRouting => self.aba,
            EntityType::Email => self.email,
            EntityType::Phone => self.phone,
            EntityType::AccountNumber | EntityType::Column => false,
        }
    }

    /// All findings in `text`, sorted by position, never overlapping.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let bytes = text.as_bytes();
        let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
        let has_at = bytes.contains(&b'@');
        let mut found = Vec::new();
        if digits >= MIN_DIGITS {
            if self.ssn || self.card || self.aba {
                numbers::find(self, text, &mut found);
            }
            if self.iban {
                iban::find(text, &mut found);
            }
            if self.phone && digits >= contact::PHONE_MIN_DIGITS {
                contact::find_phones(text, &mut found);
            }
        }
        if self.email && has_at {
            contact::find_emails(text, &mut found);
        }
        resolve_overlaps(found)
    }
}

/// Which entity wins an overlap between findings of equal length: the one
/// whose validation is strongest (checksummed, fixed length) first.
fn precedence(entity: EntityType) -> u8 {
    match entity {
        EntityType::Iban => 0,
        EntityType::CardNumber => 1,
        EntityType::Ssn => 2,
        EntityType::AbaRouting => 3,
        EntityType::Phone => 4,
        EntityType::Email => 5,
        EntityType::AccountNumber => 6,
        EntityType::Column => 7,
    }
}

/// Keep the longest findings (then by [`precedence`]) and drop any that
/// overlap one already kept; O(n log n) so a value with thousands of
/// findings stays cheap.
fn resolve_overlaps(mut found: Vec<Finding>) -> Vec<Finding> {
    found.sort_by_key(|f| (Reverse(f.end - f.start), precedence(f.entity), f.start));
    let mut kept: BTreeMap<usize, Finding> = BTreeMap::new();
    for f in found {
        // Kept findings are disjoint, so the one starting last before `f`
        // ends is the only one that can reach into it.
        let clashes = kept
            .range(..f.end)
            .next_back()
            .is_some_and(|(_, k)| k.end > f.start);
        if !clashes {
            kept.insert(f.start, f);
        }
    }
    kept.into_values().collect()
}

/// Run `candidates` over `text`; `confirm` validates each candidate and says
/// where the finding really lies (it may trim a greedy match back to a
/// group boundary). After a refused candidate the search resumes one
/// character later, so a real value that starts inside it is still seen.
pub(super) fn scan_candidates(
    candidates: &Regex,
    text: &str,
    entity: EntityType,
    out: &mut Vec<Finding>,
    mut confirm: impl FnMut(Match<'_>) -> Option<(usize, usize)>,
) {
    let mut at = 0;
    while at <= text.len() {
        let Some(m) = candidates.find_at(text, at) else {
            break;
        };
        let next_char = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
        match confirm(m) {
            Some((start, end)) => {
                out.push(Finding { start, end, entity });
                at = end.max(next_char);
            }
            None => at = next_char,
        }
    }
}

/// The byte before `i`, if any.
pub(super) fn byte_before(text: &str, i: usize) -> Option<u8> {
    i.checked_sub(1).map(|j| text.as_bytes()[j])
}

/// The byte at `i`, if any.
pub(super) fn byte_at(text: &str, i: usize) -> Option<u8> {
    text.as_bytes().get(i).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(start: usize, end: usize, entity: EntityType) -> Finding {
        Finding { start, end, entity }
    }

    #[test]
    fn overlaps_keep_the_longer_then_the_stronger_finding() {
        let kept = resolve_overlaps(vec![
            f(0, 9, EntityType::AbaRouting),
            f(0, 16, EntityType::CardNumber),
            f(20, 31, EntityType::Phone),
            f(20, 31, EntityType::Ssn),
            f(30, 40, EntityType::Email),
            f(40, 45, EntityType::Email),
        ]);
        assert_eq!(
            kept,
            vec![
                f(0, 16, EntityType::CardNumber),
                f(20, 31, EntityType::Ssn),
                f(40, 45, EntityType::Email),
            ]
        );
    }

    #[test]
    fn prefilter_needs_an_at_sign_or_nine_digits() {
        assert!(may_contain_pii(b"a@b"));
        assert!(may_contain_pii(b"x 1234-5678-9"));
        assert!(!may_contain_pii(b"2024-01-15"));
        assert!(!may_contain_pii(b""));
        assert!(!may_contain_pii(&[0xff, b'1', b'2']));
    }

    #[test]
    fn detectors_know_what_is_enabled() {
        let d = Detectors::new(&[EntityType::Email, EntityType::Column, EntityType::Email]);
        assert!(d.is_enabled(EntityType::Email));
        assert!(!d.is_enabled(EntityType::Ssn));
        assert!(!d.is_enabled(EntityType::Column));
        assert!(d.find("ssn 123-45-6789").is_empty());
        assert_eq!(d.find("to jo@example.com").len(), 1);
    }
}

/// Which result values the content detectors read for one caller on one
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// None: the caller is exempt.
    Off,
    /// Text values only (strings, JSON, XML, and values such as arrays or
    /// records that may hold text). Numbers, dates, times, intervals, UUIDs
    /// and network addresses are masked by column rules, not guessed at.
    Text,
    /// Typed values as well, read in their text form: a connection opts in
    /// (`detect_typed_values`) where a card number may sit in a `bigint`.
    TextAndTyped,
}

impl Detection {
    /// Whether detectors run at all.
    pub fn any(self) -> bool {
        self != Detection::Off
    }

    /// Whether detectors read values of numeric, date/time, UUID and
    /// similar types.
    pub fn typed(self) -> bool {
        self == Detection::TextAndTyped
    }
}
