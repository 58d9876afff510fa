use super::*;
use proptest::prelude::{prop_assert, prop_assert_eq, prop_assume, proptest};
use std::collections::HashMap;

fn all() -> Detectors {
    Detectors::new(&[
        EntityType::Ssn,
        EntityType::CardNumber,
        EntityType::Iban,
        EntityType::AbaRouting,
        EntityType::Email,
        EntityType::Phone,
    ])
}

fn entities(text: &str) -> Vec<(EntityType, &str)> {
    all()
        .find(text)
        .into_iter()
        .map(|f| (f.entity, &text[f.start..f.end]))
        .collect()
}

fn masker() -> Masker {
    let mut strategies = HashMap::new();
    strategies.insert(EntityType::Ssn, Strategy::Partial { keep_last: 4 });
    strategies.insert(EntityType::CardNumber, Strategy::Partial { keep_last: 4 });
    Masker::new(MaskerConfig {
        detectors: vec![
            EntityType::Ssn,
            EntityType::CardNumber,
            EntityType::Iban,
            EntityType::AbaRouting,
            EntityType::Email,
            EntityType::Phone,
        ],
        strategies,
        default_strategy: Strategy::Redact,
        tokenize_key: TokenizeKey::new(b"test-key".to_vec()),
    })
}

#[test]
fn validators_accept_real_and_refuse_near_misses() {
    for card in [
        "4111111111111111",
        "5500005555555559",
        "378282246310005",
        "6011111111111117",
    ] {
        assert!(validate::card(card.as_bytes()), "{card}");
    }
    assert!(!validate::card(b"4111111111111112"));
    assert!(validate::iban("GB82WEST12345698765432"));
    assert!(validate::iban("DE89370400440532013000"));
    assert!(!validate::iban("GB82WEST12345698765433"));
    for aba in ["011000015", "021000021", "026009593"] {
        assert!(validate::aba(aba.as_bytes()), "{aba}");
    }
    assert!(!validate::aba(b"021000022"));
    assert!(validate::ssn(123, 45, 6789));
    assert!(!validate::ssn(0, 12, 3456));
    assert!(!validate::ssn(666, 12, 3456));
    assert!(!validate::ssn(912, 12, 3456));
    assert!(!validate::ssn(123, 0, 3456));
    assert!(!validate::ssn(123, 45, 0));
    assert!(!validate::ssn(78, 5, 1120));
}

#[test]
fn finds_each_entity_in_free_text() {
    let text = "Customer called about card 4111-1111-1111-1111, SSN 123-45-6789, email jo@example.com, phone (212) 555-0147, IBAN GB82 WEST 1234 5698 7654 32, routing 021000021.";
    let found = entities(text);
    for expected in [
        (EntityType::CardNumber, "4111-1111-1111-1111"),
        (EntityType::Ssn, "123-45-6789"),
        (EntityType::Email, "jo@example.com"),
        (EntityType::Phone, "(212) 555-0147"),
        (EntityType::Iban, "GB82 WEST 1234 5698 7654 32"),
        (EntityType::AbaRouting, "021000021"),
    ] {
        assert!(found.contains(&expected), "{expected:?} not in {found:?}");
    }
}

#[test]
fn checksum_failures_and_plain_numbers_are_left_alone() {
    assert!(entities("order 4111111111111112 shipped").is_empty());
    assert!(entities("ssn 000-12-3456").is_empty());
    assert!(
        entities("id 12345678901234567890123").is_empty(),
        "a 23-digit number is not a card"
    );
    assert!(entities("total 1234567 units").is_empty());
    // A bare nine digits alone is an SSN only as a whole value.
    assert_eq!(entities("123456789"), vec![(EntityType::Ssn, "123456789")]);
    assert!(entities("ref 123456789 ok").is_empty());
}

#[test]
fn masking_replaces_in_place_and_counts() {
    let m = masker();
    let mut counts = MaskCounts::default();
    let out = m
        .mask_detected(
            "card 4111 1111 1111 1111 and ssn 123-45-6789, mail jo@example.com",
            &mut counts,
        )
        .unwrap();
    assert_eq!(
        out,
        "card **** **** **** 1111 and ssn ***-**-6789, mail [REDACTED:email]"
    );
    assert_eq!(counts.total(), 3);
    assert!(m.mask_detected("nothing here", &mut counts).is_none());
    assert!(m
        .mask_detected_bytes(&[0xff, 0xfe, b'1'], &mut counts)
        .is_none());
    assert_eq!(
        m.mask_detected("naïve 123-45-6789 ✓", &mut counts).unwrap(),
        "naïve ***-**-6789 ✓"
    );
}

fn luhn_complete(prefix: &[u8]) -> String {
    for check in b'0'..=b'9' {
        let mut d = prefix.to_vec();
        d.push(check);
        if validate::luhn(&d) {
            return String::from_utf8(d).unwrap();
        }
    }
    unreachable!()
}

proptest! {
    #[test]
    fn findings_are_sorted_disjoint_and_in_bounds(s in ".{0,200}") {
        let found = all().find(&s);
        for w in found.windows(2) {
            prop_assert!(w[0].end <= w[1].start);
        }
        for f in &found {
            prop_assert!(f.start < f.end && f.end <= s.len());
            prop_assert!(s.is_char_boundary(f.start) && s.is_char_boundary(f.end));
        }
    }

    #[test]
    fn generated_cards_are_found_and_masked(body in "[0-9]{14}", pre in "[a-z ,.:]{0,12}", post in "[a-z ,.:]{0,12}") {
        let card = luhn_complete(format!("4{body}").as_bytes());
        let text = format!("{pre} {card} {post}");
        let m = masker();
        let mut counts = MaskCounts::default();
        let out = m.mask_detected(&text, &mut counts).unwrap_or_default();
        prop_assert!(!out.contains(&card), "{} -> {}", text, out);
    }

    #[test]
    fn generated_ssns_are_found(area in 1u32..900, group in 1u32..100, serial in 1u32..10000, pre in "[a-z ]{0,10}") {
        prop_assume!(validate::ssn(area, group, serial));
        let ssn = format!("{area:03}-{group:02}-{serial:04}");
        let text = format!("{pre} {ssn}.");
        prop_assert!(entities(&text).iter().any(|(e, v)| *e == EntityType::Ssn && *v == ssn), "{}", text);
    }

    #[test]
    fn prefilter_never_hides_a_finding(s in "[0-9a-z@ .()+-]{0,60}") {
        if !all().find(&s).is_empty() {
            prop_assert!(may_contain_pii(s.as_bytes()));
        }
    }

    #[test]
    fn partial_keeps_length_and_separators(v in "[0-9]{3}-[0-9]{2}-[0-9]{4}") {
        let out = apply(&Strategy::Partial { keep_last: 4 }, EntityType::Ssn, &v, &TokenizeKey::new(vec![1]));
        prop_assert_eq!(out.len(), v.len());
        prop_assert_eq!(&out[3..4], "-");
        prop_assert_eq!(&out[7..], &v[7..]);
    }
}
