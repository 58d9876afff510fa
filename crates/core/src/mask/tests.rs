//! Detectors and engine together: exact masked output for realistic text,
//! and property tests for the promises adapters rely on.

use super::*;
use proptest::prelude::{
    any, prop_assert, prop_assert_eq, prop_assume, prop_oneof, proptest, Just, ProptestConfig,
};
use proptest::strategy::Strategy as Gen;
use std::collections::HashMap;

const ALL: [EntityType; 6] = DETECTABLE;

fn all() -> Detectors {
    Detectors::new(&ALL)
}

fn entities(text: &str) -> Vec<(EntityType, &str)> {
    all()
        .find(text)
        .into_iter()
        .map(|f| (f.entity, &text[f.start..f.end]))
        .collect()
}

/// SSNs and cards partially, everything else redacted.
fn masker() -> Masker {
    let mut strategies = HashMap::new();
    strategies.insert(EntityType::Ssn, Strategy::Partial { keep_last: 4 });
    strategies.insert(EntityType::CardNumber, Strategy::Partial { keep_last: 4 });
    Masker::new(MaskerConfig {
        detectors: ALL.to_vec(),
        strategies,
        default_strategy: Strategy::Redact,
        tokenize_key: TokenizeKey::new(b"test-key".to_vec()),
    })
}

fn mask(text: &str) -> (Option<String>, MaskCounts) {
    let mut counts = MaskCounts::default();
    let out = masker().mask_detected(text, &mut counts);
    (out, counts)
}

#[test]
fn free_text_is_masked_exactly() {
    let (out, counts) = mask(
        "Customer called about card 4111-1111-1111-1111, SSN 123-45-6789, \
         email jo@example.com, phone (212) 555-0147",
    );
    assert_eq!(
        out.as_deref(),
        Some(
            "Customer called about card ****-****-****-1111, SSN ***-**-6789, \
             email [REDACTED:email], phone [REDACTED:phone]"
        )
    );
    assert_eq!(counts.total(), 4);
    for e in [
        EntityType::CardNumber,
        EntityType::Ssn,
        EntityType::Email,
        EntityType::Phone,
    ] {
        assert_eq!(counts.get(e), 1, "{e:?}");
    }
}

#[test]
fn every_entity_is_found_in_one_text() {
    let text = "card 4111 1111 1111 1111; ssn 123 45 6789; mail jo@example.com; \
                phone +44 20 7946 0958; IBAN GB82 WEST 1234 5698 7654 32; routing 021000021.";
    assert_eq!(
        entities(text),
        vec![
            (EntityType::CardNumber, "4111 1111 1111 1111"),
            (EntityType::Ssn, "123 45 6789"),
            (EntityType::Email, "jo@example.com"),
            (EntityType::Phone, "+44 20 7946 0958"),
            (EntityType::Iban, "GB82 WEST 1234 5698 7654 32"),
            (EntityType::AbaRouting, "021000021"),
        ]
    );
}

#[test]
fn checksum_failures_and_plain_numbers_are_left_alone() {
    for text in [
        "order 4111111111111112 shipped",
        "ssn 000-12-3456",
        "ssn 666-12-3456 or 912-12-3456",
        "sample 078-05-1120",
        "id 12345678901234567890123",
        "total 1234567 units",
        "ref 123456789 ok",
        "GB82WEST12345698765433",
        "routing 021000022",
        "2024-01-15 10:30:00.123456+00",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
    ] {
        assert!(entities(text).is_empty(), "{text}: {:?}", entities(text));
        assert!(mask(text).0.is_none(), "{text}");
    }
}

#[test]
fn overlapping_candidates_resolve_to_the_whole_value() {
    // Digits inside an email are part of the email, not a card.
    assert_eq!(
        entities("4111111111111111@example.com"),
        vec![(EntityType::Email, "4111111111111111@example.com")]
    );
    // The IBAN's digits would make card and ABA candidates; the IBAN wins.
    assert_eq!(
        entities("DE89 3704 0044 0532 0130 00"),
        vec![(EntityType::Iban, "DE89 3704 0044 0532 0130 00")]
    );
    // A phone's digits form a grouped run too; only the phone is reported.
    let found = entities("+1 212 555 0147 and 4111-1111-1111-1111");
    assert_eq!(
        found,
        vec![
            (EntityType::Phone, "+1 212 555 0147"),
            (EntityType::CardNumber, "4111-1111-1111-1111"),
        ]
    );
}

#[test]
fn unicode_around_findings_survives() {
    let (out, _) = mask("naïve 123-45-6789 ✓ — 客户 jo@example.com 👍");
    assert_eq!(
        out.as_deref(),
        Some("naïve ***-**-6789 ✓ — 客户 [REDACTED:email] 👍")
    );
    // Non-ASCII digits are not ASCII digits: no panic, nothing found.
    assert!(entities("١٢٣-٤٥-٦٧٨٩ ١٢٣٤٥٦٧٨٩ 0123456789").is_empty());
}

#[test]
fn bytes_mask_utf8_stretches_between_invalid_bytes() {
    let m = masker();
    let mut counts = MaskCounts::default();
    assert!(m
        .mask_detected_bytes(&[0xff, 0xfe, b'1'], &mut counts)
        .is_none());
    assert!(m.mask_detected_bytes(b"no pii here", &mut counts).is_none());
    assert!(m
        .mask_detected_bytes(b"\xff 123456789012 \xfe", &mut counts)
        .is_none());
    let out = m.mask_detected_bytes(b"\xff ssn 123-45-6789 \xc3(", &mut counts);
    assert_eq!(out, Some(b"\xff ssn ***-**-6789 \xc3(".to_vec()));
    let out = m.mask_detected_bytes(b"plain ssn 123-45-6789", &mut counts);
    assert_eq!(out, Some(b"plain ssn ***-**-6789".to_vec()));
    assert_eq!(counts.get(EntityType::Ssn), 2);
}

#[test]
fn mask_value_applies_the_rule_and_counts_its_entity() {
    let m = masker();
    let mut counts = MaskCounts::default();
    let v = m.mask_value(
        "Jane Doe",
        &Strategy::Redact,
        EntityType::Column,
        &mut counts,
    );
    assert_eq!(v, "[REDACTED:column]");
    let t = m.mask_value(
        "Jane Doe",
        &Strategy::Tokenize,
        EntityType::Column,
        &mut counts,
    );
    assert_eq!(
        t,
        m.mask_value(
            "Jane Doe",
            &Strategy::Tokenize,
            EntityType::Column,
            &mut counts
        )
    );
    assert!(t.starts_with("tok_") && !t.contains("Jane"));
    assert_eq!(counts.get(EntityType::Column), 3);
}

#[test]
fn counts_merge_and_serialize_as_an_object() {
    let mut a = MaskCounts::default();
    assert!(a.is_empty());
    a.add(EntityType::Ssn);
    a.add(EntityType::Ssn);
    let mut b = MaskCounts::default();
    b.add(EntityType::CardNumber);
    b.add(EntityType::Ssn);
    a.merge(&b);
    assert_eq!(a.total(), 4);
    assert_eq!(
        a.iter().map(|(e, n)| (*e, *n)).collect::<Vec<_>>(),
        vec![(EntityType::Ssn, 3), (EntityType::CardNumber, 1)]
    );
    let json = serde_json::to_string(&a).unwrap();
    assert_eq!(json, r#"{"ssn":3,"card_number":1}"#);
    assert_eq!(serde_json::from_str::<MaskCounts>(&json).unwrap(), a);
}

// ---------------------------------------------------------------- proptests

/// Issuer prefixes for generated cards, with a length each network issues.
const ISSUERS: [(&str, usize); 9] = [
    ("4", 16),
    ("51", 16),
    ("2221", 16),
    ("34", 15),
    ("37", 15),
    ("6011", 16),
    ("3528", 16),
    ("36", 14),
    ("62", 19),
];

fn luhn_complete(partial: &str) -> String {
    (b'0'..=b'9')
        .map(|c| format!("{partial}{}", c as char))
        .find(|s| validate::luhn(s.as_bytes()))
        .unwrap()
}

/// A Luhn-valid card from a known issuer, as bare digits.
fn card() -> impl Gen<Value = String> {
    (0..ISSUERS.len(), "[0-9]{18}").prop_map(|(i, fill)| {
        let (prefix, len) = ISSUERS[i];
        luhn_complete(&format!("{prefix}{}", &fill[..len - prefix.len() - 1]))
    })
}

/// A value written bare (style 0), in groups of four split by spaces (1)
/// or by dashes (2).
fn written(compact: &str, style: u8) -> String {
    if style == 0 {
        return compact.to_string();
    }
    let sep = if style == 1 { " " } else { "-" };
    let chunks: Vec<&str> = compact
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    chunks.join(sep)
}

/// A valid GB IBAN from random bank letters and account digits.
fn gb_iban() -> impl Gen<Value = String> {
    ("[A-Z]{4}", "[0-9]{14}").prop_map(|(bank, account)| {
        let bban = format!("{bank}{account}");
        let numeric: String = format!("{bban}GB00")
            .chars()
            .map(|c| c.to_digit(36).unwrap().to_string())
            .collect();
        let rem = numeric
            .bytes()
            .fold(0u32, |r, d| (r * 10 + u32::from(d - b'0')) % 97);
        format!("GB{:02}{bban}", 98 - rem)
    })
}

/// Text around a finding: no digits, and no ASCII letter touching it.
fn filler() -> impl Gen<Value = String> {
    "[ ,.:;!?()\u{e9}\u{4e2d}\u{1f600}]{1,3}[a-z ]{0,10}[ ,.:;]{1,2}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn findings_are_sorted_disjoint_and_on_char_boundaries(
        s in prop_oneof![
            ".{0,200}",
            "[0-9 \\-().+@a-zA-Z\u{e9}\u{1f600}]{0,120}",
        ]
    ) {
        let found = all().find(&s);
        for w in found.windows(2) {
            prop_assert!(w[0].end <= w[1].start, "{:?}", found);
        }
        for f in &found {
            prop_assert!(f.start < f.end && f.end <= s.len());
            prop_assert!(s.is_char_boundary(f.start) && s.is_char_boundary(f.end));
        }
    }

    #[test]
    fn generated_cards_are_found_and_masked(
        digits in card(),
        style in 0u8..3,
        pre in filler(),
        post in filler(),
    ) {
        let card = written(&digits, style);
        let text = format!("{pre}{card}{post}");
        let found = entities(&text);
        prop_assert!(found.contains(&(EntityType::CardNumber, card.as_str())), "{} -> {:?}", text, found);
        let (out, counts) = mask(&text);
        let out = out.unwrap_or_default();
        prop_assert!(!out.contains(&card), "{} -> {}", text, out);
        let out_digits: String = out.chars().filter(char::is_ascii_digit).collect();
        prop_assert!(!out_digits.contains(&digits), "{} -> {}", text, out);
        prop_assert_eq!(counts.get(EntityType::CardNumber), 1);
    }

    #[test]
    fn generated_ssns_are_found_and_masked(
        area in 1u32..900,
        group in 1u32..100,
        serial in 1u32..10000,
        sep in prop_oneof![Just('-'), Just(' ')],
        pre in filler(),
        post in filler(),
    ) {
        prop_assume!(validate::ssn(area, group, serial));
        let ssn = format!("{area:03}{sep}{group:02}{sep}{serial:04}");
        let text = format!("{pre}{ssn}{post}");
        prop_assert_eq!(entities(&text), vec![(EntityType::Ssn, ssn.as_str())], "{}", text);
        let out = mask(&text).0.unwrap_or_default();
        prop_assert!(!out.contains(&ssn));
    }

    #[test]
    fn generated_ibans_are_found_compact_or_grouped(
        iban in gb_iban(),
        grouped in any::<bool>(),
        pre in filler(),
        post in filler(),
    ) {
        let written = if grouped { written(&iban, 1) } else { iban.clone() };
        let text = format!("{pre}{written}{post}");
        prop_assert_eq!(entities(&text), vec![(EntityType::Iban, written.as_str())], "{}", text);
    }

    #[test]
    fn prefilter_never_hides_a_finding(
        s in prop_oneof![
            "[0-9a-zA-Z@ .()+-]{0,60}",
            ".{0,60}",
            (card(), filler()).prop_map(|(c, f)| format!("{f}{c}")),
            gb_iban().prop_map(|i| written(&i, 1)),
        ]
    ) {
        if !all().find(&s).is_empty() {
            prop_assert!(may_contain_pii(s.as_bytes()), "{}", s);
        }
        if !may_contain_pii(s.as_bytes()) {
            prop_assert!(mask(&s).0.is_none());
        }
    }

    #[test]
    fn masked_text_never_keeps_a_found_value(s in "[0-9a-zA-Z@ .()+-]{0,80}") {
        let found = entities(&s);
        let (out, counts) = mask(&s);
        prop_assert_eq!(counts.total(), found.len() as u64);
        if let Some(out) = out {
            for (_, value) in found {
                prop_assert!(!out.contains(value), "{} -> {}", s, out);
            }
        }
    }
}
