//! Content detectors: find sensitive values inside any text.
//!
//! One regular expression proposes candidates per entity type; each
//! candidate is then validated (checksums, SSA rules), so digit noise that
//! merely looks like an identifier is left alone.

use super::validate;
use super::EntityType;
use regex::Regex;
use std::sync::OnceLock;

/// A sensitive value found in text, by byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// Start byte.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// What it is.
    pub entity: EntityType,
}

/// Cheap check run before the detectors: could `bytes` hold any finding?
/// Every entity needs either an `@` (email) or at least seven digits, so a
/// value without them is skipped without running a regex.
pub fn may_contain_pii(bytes: &[u8]) -> bool {
    let mut digits = 0;
    for &b in bytes {
        if b == b'@' {
            return true;
        }
        if b.is_ascii_digit() {
            digits += 1;
            if digits >= 7 {
                return true;
            }
        }
    }
    false
}

struct Patterns {
    ssn: Regex,
    card: Regex,
    iban: Regex,
    nine: Regex,
    email: Regex,
    phone: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns {
        // Separated SSNs: 123-45-6789 or 123 45 6789 (same separator).
        ssn: Regex::new(r"(?:^|[^0-9A-Za-z])(\d{3})([- ])(\d{2})[- ](\d{4})(?:$|[^0-9A-Za-z])").expect("regex"),
        // 13–19 digits, optionally grouped by single spaces or dashes.
        card: Regex::new(r"(?:^|[^0-9])(\d(?:[ -]?\d){12,18})(?:$|[^0-9])").expect("regex"),
        iban: Regex::new(r"(?:^|[^0-9A-Za-z])([A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30})(?:$|[^0-9A-Za-z])").expect("regex"),
        nine: Regex::new(r"(?:^|[^0-9])(\d{9})(?:$|[^0-9])").expect("regex"),
        email: Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}").expect("regex"),
        phone: Regex::new(r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}\b|\+\d{1,3}(?:[ .-]?\d{1,4}){2,5}").expect("regex"),
    })
}

/// The enabled detectors.
#[derive(Debug, Clone)]
pub struct Detectors {
    enabled: Vec<EntityType>,
}

impl Detectors {
    /// Detectors for these entity types (`Column` is ignored).
    pub fn new(enabled: &[EntityType]) -> Detectors {
        Detectors {
            enabled: enabled.to_vec(),
        }
    }

    fn on(&self, e: EntityType) -> bool {
        self.enabled.contains(&e)
    }

    /// All findings, sorted, never overlapping (the earlier-listed,
    /// longer finding wins an overlap).
    pub fn find(&self, text: &str) -> Vec<Finding> {
        if !may_contain_pii(text.as_bytes()) {
            return Vec::new();
        }
        let p = patterns();
        let mut found: Vec<Finding> = Vec::new();
        let digits_of = |s: &str| -> Vec<u8> { s.bytes().filter(u8::is_ascii_digit).collect() };
        if self.on(EntityType::Ssn) {
            for c in captures_all(&p.ssn, text) {
                let (a, g, s) = (&c[1], &c[3], &c[4]);
                if let (Ok(a), Ok(g), Ok(s)) = (a.0.parse(), g.0.parse(), s.0.parse()) {
                    if validate::ssn(a, g, s) {
                        found.push(Finding {
                            start: c[1].1,
                            end: c[4].2,
                            entity: EntityType::Ssn,
                        });
                    }
                }
            }
        }
        if self.on(EntityType::CardNumber) {
            for c in captures_all(&p.card, text) {
                let (s, start, end) = c[1];
                if consistent_separators(s) && validate::card(&digits_of(s)) {
                    found.push(Finding {
                        start,
                        end,
                        entity: EntityType::CardNumber,
                    });
                }
            }
        }
        if self.on(EntityType::Iban) {
            for c in captures_all(&p.iban, text) {
                let (s, start, end) = c[1];
                let compact: String = s.chars().filter(|c| *c != ' ').collect();
                if validate::iban(&compact) {
                    found.push(Finding {
                        start,
                        end,
                        entity: EntityType::Iban,
                    });
                }
            }
        }
        if self.on(EntityType::AbaRouting) || self.on(EntityType::Ssn) {
            for c in captures_all(&p.nine, text) {
                let (s, start, end) = c[1];
                let d = s.as_bytes();
                if self.on(EntityType::AbaRouting) && validate::aba(d) {
                    found.push(Finding {
                        start,
                        end,
                        entity: EntityType::AbaRouting,
                    });
                } else if self.on(EntityType::Ssn) && start == 0 && end == text.len() {
                    // A bare nine-digit value on its own is an SSN only when
                    // it is the whole value (an `ssn` column stored without dashes).
                    let n = |r: std::ops::Range<usize>| s[r].parse().unwrap_or(0);
                    if validate::ssn(n(0..3), n(3..5), n(5..9)) {
                        found.push(Finding {
                            start,
                            end,
                            entity: EntityType::Ssn,
                        });
                    }
                }
            }
        }
        if self.on(EntityType::Email) {
            for m in p.email.find_iter(text) {
                found.push(Finding {
                    start: m.start(),
                    end: m.end(),
                    entity: EntityType::Email,
                });
            }
        }
        if self.on(EntityType::Phone) {
            for m in p.phone.find_iter(text) {
                let digits = digits_of(m.as_str()).len();
                if (10..=15).contains(&digits) {
                    found.push(Finding {
                        start: m.start(),
                        end: m.end(),
                        entity: EntityType::Phone,
                    });
                }
            }
        }
        resolve_overlaps(found)
    }
}

/// (text, start, end) of each capture group, for every match.
fn captures_all<'t>(re: &Regex, text: &'t str) -> Vec<Vec<(&'t str, usize, usize)>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at <= text.len() {
        let Some(c) = re.captures_at(text, at) else {
            break;
        };
        let groups: Vec<(&str, usize, usize)> = (0..c.len())
            .map(|i| {
                c.get(i)
                    .map(|m| (m.as_str(), m.start(), m.end()))
                    .unwrap_or(("", 0, 0))
            })
            .collect();
        // Continue inside the trailing boundary char so adjacent values are seen.
        let next = groups
            .last()
            .map(|g| g.2)
            .unwrap_or(at)
            .max(c.get(0).map(|m| m.start() + 1).unwrap_or(at + 1));
        out.push(groups);
        at = next;
    }
    out
}

/// A grouped number uses one kind of separator (`4111-1111 1111-1111` is not a card).
fn consistent_separators(s: &str) -> bool {
    !(s.contains(' ') && s.contains('-'))
}

fn resolve_overlaps(mut found: Vec<Finding>) -> Vec<Finding> {
    // Longer first, then by detector order (the order pushed).
    let mut order: Vec<usize> = (0..found.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(found[i].end - found[i].start), i));
    let mut kept: Vec<Finding> = Vec::new();
    for i in order {
        let f = found[i];
        if kept.iter().all(|k| f.end <= k.start || f.start >= k.end) {
            kept.push(f);
        }
    }
    kept.sort_by_key(|f| f.start);
    found.clear();
    kept
}
