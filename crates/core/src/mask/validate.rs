//! Checksums and issuing rules that tell real identifiers from digit noise.
//!
//! Every detector proposes candidates by shape and then asks a validator
//! here, so an order number that merely has sixteen digits stays readable.
//! Validators take ASCII bytes and answer `false` (never panic) for anything
//! that is not made of the characters they expect.

/// Luhn (mod 10) over ASCII digits; `false` for empty input or non-digits.
///
/// Cards carry this check digit, which is why a random 16-digit id is a card
/// only one time in ten.
pub fn luhn(digits: &[u8]) -> bool {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let v = u32::from(d - b'0');
            match (i % 2 == 1, v * 2) {
                (false, _) => v,
                (true, doubled) if doubled > 9 => doubled - 9,
                (true, doubled) => doubled,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A plausible payment card: 13–19 digits, a known issuer prefix, Luhn-valid.
///
/// Issuer prefixes (IIN ranges) cut false positives among Luhn-valid numbers
/// by about half: Visa 4; Mastercard 51–55 and 2221–2720; Amex 34, 37;
/// Discover 6011, 644–649, 65; JCB 3528–3589; Diners 300–305, 36, 38;
/// UnionPay 62; Maestro 50, 56–58, 6304, 67; Mir 2200–2204.
pub fn card(digits: &[u8]) -> bool {
    (13..=19).contains(&digits.len()) && luhn(digits) && known_issuer(digits)
}

fn known_issuer(digits: &[u8]) -> bool {
    // `digits` is at least 13 ASCII digits here, so the prefixes exist.
    let prefix = |n: usize| -> u32 {
        digits[..n]
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let (p2, p3, p4) = (prefix(2), prefix(3), prefix(4));
    digits[0] == b'4'
        || matches!(p2, 34 | 36 | 37 | 38 | 50..=58 | 62 | 65 | 67)
        || matches!(p3, 300..=305 | 644..=649)
        || matches!(p4, 2200..=2204 | 2221..=2720 | 3528..=3589 | 6011 | 6304)
}

/// Social Security Administration rules for a number split as
/// area-group-serial: area not 000, 666 or 900–999; group not 00; serial not
/// 0000; and not one of the numbers famous for being printed on sample cards
/// and in advertising (078-05-1120, 219-09-9999), which are not anyone's.
pub fn ssn(area: u32, group: u32, serial: u32) -> bool {
    (1..900).contains(&area)
        && area != 666
        && (1..100).contains(&group)
        && (1..10_000).contains(&serial)
        && !matches!((area, group, serial), (78, 5, 1120) | (219, 9, 9999))
}

/// [`ssn`] over nine ASCII digits (`123456789`); `false` for anything else.
pub fn ssn_digits(d: &[u8]) -> bool {
    if d.len() != 9 || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let num = |r: std::ops::Range<usize>| {
        d[r].iter()
            .fold(0u32, |acc, c| acc * 10 + u32::from(c - b'0'))
    };
    ssn(num(0..3), num(3..5), num(5..9))
}

/// ABA routing transit number: nine ASCII digits whose 3-7-1 weighted sum is
/// a multiple of 10, starting with a Federal Reserve routing symbol
/// (00–12 banks, 21–32 thrifts, 61–72 electronic, 80 traveller's cheques).
pub fn aba(d: &[u8]) -> bool {
    if d.len() != 9 || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n: Vec<u32> = d.iter().map(|c| u32::from(c - b'0')).collect();
    let symbol = n[0] * 10 + n[1];
    let symbol_ok = matches!(symbol, 0..=12 | 21..=32 | 61..=72 | 80);
    let sum = 3 * (n[0] + n[3] + n[6]) + 7 * (n[1] + n[4] + n[7]) + (n[2] + n[5] + n[8]);
    // All zeros passes the arithmetic but is nobody's routing number.
    symbol_ok && sum.is_multiple_of(10) && n.iter().any(|&x| x != 0)
}

/// IBAN: `compact` is upper-case with no spaces. Two letters, two check
/// digits, 11–30 letters or digits, the registered length for the countries
/// we know, and the ISO 7064 mod-97 remainder 1.
pub fn iban(compact: &str) -> bool {
    let b = compact.as_bytes();
    if !(15..=34).contains(&b.len())
        || !b[..2].iter().all(u8::is_ascii_uppercase)
        || !b[2..4].iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    if iban_length(&b[..2]).is_some_and(|len| len != b.len()) {
        return false;
    }
    // Move the first four characters to the end, read letters as 10–35, and
    // reduce mod 97 as we go so the number never overflows.
    let mut rem = 0u32;
    for &c in b[4..].iter().chain(&b[..4]) {
        rem = match c {
            b'0'..=b'9' => (rem * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => (rem * 100 + u32::from(c - b'A') + 10) % 97,
            _ => return false,
        };
    }
    rem == 1
}

/// Registered IBAN length for common countries; others are checked by
/// mod-97 and the overall 15–34 bound only.
fn iban_length(country: &[u8]) -> Option<usize> {
    Some(match country {
        b"NO" => 15,
        b"BE" => 16,
        b"NL" | b"DK" | b"FI" => 18,
        b"AT" | b"LU" => 20,
        b"CH" => 21,
        b"DE" | b"GB" | b"IE" => 22,
        b"ES" | b"SE" => 24,
        b"PT" => 25,
        b"FR" | b"IT" => 27,
        b"PL" => 28,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_refuses_a_changed_digit() {
        for card in [
            "4111111111111111",
            "5500005555555559",
            "378282246310005",
            "6011111111111117",
            "3530111333300000",
            "30569309025904",
            "2223003122003222",
        ] {
            assert!(super::card(card.as_bytes()), "{card}");
        }
        assert!(!card(b"4111111111111112"));
        assert!(!card(b"5500005555555558"));
        assert!(luhn(b"0"), "a lone zero is Luhn-valid");
        assert!(!luhn(b""));
        assert!(
            !luhn(b"41111111111111a1"),
            "non-digits are refused, not panicked on"
        );
    }

    #[test]
    fn card_needs_a_known_issuer_and_length() {
        // Luhn-valid but issued by nobody we know (prefix 1).
        assert!(luhn(b"1000000000000008"));
        assert!(!card(b"1000000000000008"));
        // Luhn-valid Visa-shaped, but 12 and 20 digits are not card lengths.
        assert!(luhn(b"411111111117") && !card(b"411111111117"));
        assert!(luhn(b"41111111111111111115") && !card(b"41111111111111111115"));
    }

    #[test]
    fn ssn_follows_ssa_rules() {
        assert!(ssn(123, 45, 6789));
        assert!(ssn(899, 99, 9999));
        assert!(!ssn(0, 12, 3456));
        assert!(!ssn(666, 12, 3456));
        assert!(!ssn(900, 12, 3456));
        assert!(!ssn(999, 12, 3456));
        assert!(!ssn(123, 0, 3456));
        assert!(!ssn(123, 45, 0));
        assert!(!ssn(78, 5, 1120), "Woolworth's wallet card");
        assert!(!ssn(219, 9, 9999), "SSA advertising number");
        assert!(ssn_digits(b"123456789"));
        assert!(!ssn_digits(b"666456789"));
        assert!(!ssn_digits(b"12345678"));
        assert!(!ssn_digits(b"12345678x"));
    }

    #[test]
    fn aba_checks_weights_and_routing_symbol() {
        for aba in [
            "011000015",
            "021000021",
            "026009593",
            "322271627",
            "800000080",
        ] {
            assert!(super::aba(aba.as_bytes()), "{aba}");
        }
        assert!(!aba(b"021000022"), "checksum");
        assert!(!aba(b"000000000"), "all zeros");
        // 13 is not a routing symbol even though the weights add up.
        assert!(!aba(b"130000006"));
        assert!(!aba(b"02100002"), "eight digits");
        assert!(!aba(b"02100002x"));
    }

    #[test]
    fn iban_checks_mod97_and_country_length() {
        for iban in [
            "GB82WEST12345698765432",
            "DE89370400440532013000",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "NO9386011117947",
            "BE68539007547034",
            "CH9300762011623852957",
            "ES9121000418450200051332",
            "PL61109010140000071219812874",
            // Not in our length table: checked by mod-97 alone.
            "MT84MALT011000012345MTLCAST001S",
        ] {
            assert!(super::iban(iban), "{iban}");
        }
        assert!(!iban("GB82WEST12345698765433"), "checksum");
        assert!(!iban("GB82WEST1234569876543"), "GB is 22 long");
        assert!(!iban("gb82WEST12345698765432"), "callers upper-case first");
        assert!(!iban("GB82WEST1234569876543!"));
        assert!(!iban("GB82"));
    }
}
