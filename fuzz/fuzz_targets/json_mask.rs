//! The JSON masker: a response body (HTTP connections) masked by field rules
//! and the content detectors, and a JSON value masked for the audit trail.
//!
//! Input: byte 0 configures masking (strategy, which field rules apply),
//! the rest is the body. Entry points: `gatehouse_http::jsonmask::{mask_json,
//! mask_strings}`, `gatehouse_core::mask::Masker::{mask_json_for_trail,
//! mask_detected, mask_detected_bytes, mask_for_trail}`, and
//! `StreamMasker`/`TextStream` over the same bytes in pieces. The Masker is
//! built from the default `[masking]` section (every detector).
//! Invariants: masking keeps a document valid JSON; every original the trail
//! masker reports sits at the JSON pointer it names, in the unmasked value.
#![no_main]

use gatehouse_core::classify::Dialect;
use gatehouse_core::mask::{MaskCounts, StreamMasker, TextStream, TrailKind};
use gatehouse_core::policy::FieldMask;
use gatehouse_http::jsonmask::{mask_json, mask_strings};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const PATHS: [&str; 8] = [
    "/ssn",
    "/*/ssn",
    "/customers/*/ssn",
    "/*",
    "",
    "/a~1b/~0c",
    "/0/card",
    "/*/*/*",
];

fuzz_target!(|data: &[u8]| {
    let Some((&config, body)) = data.split_first() else {
        return;
    };
    let masker = gatehouse_fuzz::masker(config);
    let mut counts = MaskCounts::default();

    if let Ok(original) = serde_json::from_slice::<Value>(body) {
        // HTTP response masking: field rules, then detectors.
        let fields: Vec<FieldMask> = PATHS
            .iter()
            .enumerate()
            .filter(|(i, _)| config.rotate_right(2) & (1 << i) != 0)
            .zip(gatehouse_fuzz::column_masks(0xf0, PATHS.len()))
            .filter_map(|((_, p), m)| {
                m.map(|mask| FieldMask {
                    path: p.to_string(),
                    mask,
                })
            })
            .collect();
        let mut v = original.clone();
        mask_json(&mut v, &fields, &masker, config & 0x80 != 0, &mut counts);
        let text = serde_json::to_vec(&v).expect("masked JSON serializes");
        serde_json::from_slice::<Value>(&text).expect("masked JSON parses again");
        let mut v = original.clone();
        let _ = mask_strings(&mut v, &masker, &mut counts);

        // Audit-trail masking of a JSON value.
        let mut v = original.clone();
        let mut originals = Vec::new();
        masker.mask_json_for_trail(&mut v, &["skip"], &mut counts, &mut originals);
        for (pointer, text) in &originals {
            assert_eq!(
                original.pointer(pointer),
                Some(&Value::String(text.clone())),
                "trail original not at its pointer {pointer:?}"
            );
        }
    }

    // The same bytes as plain text.
    let _ = masker.mask_detected_bytes(body, &mut counts);
    let text = String::from_utf8_lossy(body);
    if let Some(masked) = masker.mask_detected(&text, &mut counts) {
        assert!(!masked.is_empty() || text.is_empty());
    }
    let kind = match config >> 6 {
        0 => TrailKind::Text,
        1 => TrailKind::Sql(Dialect::Postgres),
        _ => TrailKind::Sql(Dialect::MySql),
    };
    let columns = |name: &str| {
        (config & 0x20 != 0 && (name == "*" || name.contains("ssn"))).then(|| {
            (
                gatehouse_core::mask::Strategy::Redact,
                gatehouse_core::mask::EntityType::Ssn,
            )
        })
    };
    let _ = masker.mask_for_trail(&text, kind, &columns);

    // Streamed in pieces (LLM tokens, chunked bodies).
    let sizes = [config | 1, 3, 7, 1];
    let mut stream = StreamMasker::new();
    let mut bytes = TextStream::new();
    for piece in gatehouse_fuzz::chunks(body, &sizes) {
        let _ = bytes.push(&masker, piece);
        let piece = String::from_utf8_lossy(piece);
        let _ = stream.push(&masker, &piece, &mut counts);
        assert!(stream.held() <= 4 * gatehouse_core::mask::MAX_HOLD);
    }
    let _ = stream.finish(&masker, &mut counts);
    let _ = bytes.finish(&masker);
});
