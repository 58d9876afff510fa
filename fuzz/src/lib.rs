//! Helpers shared by the fuzz targets in `fuzz_targets/`.

use gatehouse_core::mask::{Detection, EntityType, Masker, MaskerConfig, Strategy, TokenizeKey};
use gatehouse_core::policy::{ColumnMask, MaskingConfig};

/// The gateway's default `[masking]` (every detector), with the default
/// strategy picked by `config`'s low two bits so redact, partial and
/// tokenize are all exercised.
pub fn masker(config: u8) -> Masker {
    let defaults = MaskingConfig::default();
    let default_strategy = match config & 3 {
        0 => defaults.default_strategy,
        1 => Strategy::Partial { keep_last: 4 },
        2 => Strategy::Tokenize,
        _ => Strategy::Partial {
            keep_last: usize::from(config >> 2),
        },
    };
    Masker::new(MaskerConfig {
        detectors: defaults.detectors,
        strategies: defaults.strategies,
        default_strategy,
        tokenize_key: TokenizeKey::new(vec![7; 32]),
    })
}

/// Detection mode from bits 2-3 of `config`.
pub fn detection(config: u8) -> Detection {
    match (config >> 2) & 3 {
        0 => Detection::Off,
        1 => Detection::Text,
        _ => Detection::TextAndTyped,
    }
}

/// Column masks for `n` columns: column `i` is masked by a column rule when
/// bit `i % 4` of `config >> 4` is set, with a strategy varying by column.
pub fn column_masks(config: u8, n: usize) -> Vec<Option<ColumnMask>> {
    (0..n)
        .map(|i| {
            ((config >> 4) & (1 << (i % 4)) != 0).then(|| ColumnMask {
                rule: "fuzz".into(),
                strategy: match i % 3 {
                    0 => Strategy::Redact,
                    1 => Strategy::Partial { keep_last: 4 },
                    _ => Strategy::Tokenize,
                },
                entity: if i % 2 == 0 {
                    EntityType::Column
                } else {
                    EntityType::Ssn
                },
            })
        })
        .collect()
}

/// Cut `data` into chunks whose sizes come from `sizes` (cycled; 0 counts
/// as 1), to feed incremental decoders the way a socket would.
pub fn chunks<'a>(data: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(u8::MAX);
        let n = usize::from(n.max(1)).min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
        i += 1;
    }
    out
}
