//! Checksums and validity rules that tell real identifiers from digit noise.

/// Luhn (mod 10) over ASCII digits.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// A plausible card: 13–19 digits, a known issuer prefix, Luhn-valid.
pub fn card(digits: &[u8]) -> bool {
    if !(13..=19).contains(&digits.len()) || !luhn(digits) {
        return false;
    }
    let p = |n: usize| -> u32 {
        std::str::from_utf8(&digits[..n])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    digits[0] == b'4'
        || (51..=55).contains(&p(2))
        || (2221..=2720).contains(&p(4))
        || matches!(p(2), 34 | 37 | 36 | 38 | 65 | 62)
        || p(4) == 6011
        || (644..=649).contains(&p(3))
        || (3528..=3589).contains(&p(4))
        || (300..=305).contains(&p(3))
}

/// SSA rules: area not 000, 666 or 900–999; group not 00; serial not 0000;
/// and not the numbers famous for being printed on sample cards.
pub fn ssn(area: u32, group: u32, serial: u32) -> bool {
    area != 0
        && area != 666
        && area < 900
        && group != 0
        && serial != 0
        && !matches!((area, group, serial), (78, 5, 1120) | (219, 9, 9999))
}

/// ABA routing number: weights 3-7-1 sum to a multiple of 10, valid Federal Reserve prefix.
pub fn aba(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let n: Vec<u32> = d.iter().map(|c| u32::from(c - b'0')).collect();
    let prefix = n[0] * 10 + n[1];
    let prefix_ok =
        prefix <= 12 || (21..=32).contains(&prefix) || (61..=72).contains(&prefix) || prefix == 80;
    let sum = 3 * (n[0] + n[3] + n[6]) + 7 * (n[1] + n[4] + n[7]) + (n[2] + n[5] + n[8]);
    prefix_ok && sum.is_multiple_of(10) && n.iter().any(|&x| x != 0)
}

/// IBAN: country length and mod-97 == 1. `compact` is upper-case, no spaces.
pub fn iban(compact: &str) -> bool {
    let b = compact.as_bytes();
    if b.len() < 15
        || b.len() > 34
        || !b[..2].iter().all(u8::is_ascii_uppercase)
        || !b[2..4].iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    if let Some(len) = iban_length(&compact[..2]) {
        if len != b.len() {
            return false;
        }
    }
    let mut rem = 0u32;
    for &c in b[4..].iter().chain(&b[..4]) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "NO" => 15,
        "BE" => 16,
        "NL" | "DK" | "FI" => 18,
        "AT" | "LU" => 20,
        "CH" => 21,
        "DE" | "GB" | "IE" => 22,
        "ES" | "SE" => 24,
        "PT" => 25,
        "FR" | "IT" => 27,
        "PL" => 28,
        _ => return None,
    })
}
