//! The masking engine: detectors plus strategies, shared by every adapter.

use super::detect::{may_contain_pii, Detectors};
use super::strategy::{self, TokenizeKey};
use super::{EntityType, Strategy};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// How the engine is set up (from the `[masking]` section).
#[derive(Debug, Clone)]
pub struct MaskerConfig {
    /// Entity types the detectors look for.
    pub detectors: Vec<EntityType>,
    /// Strategy per entity type.
    pub strategies: HashMap<EntityType, Strategy>,
    /// Strategy for types without one.
    pub default_strategy: Strategy,
    /// Key for `tokenize`.
    pub tokenize_key: TokenizeKey,
}

/// Masked-value counts per entity type, for the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MaskCounts(BTreeMap<EntityType, u64>);

impl MaskCounts {
    /// Count one masked value.
    pub fn add(&mut self, entity: EntityType) {
        *self.0.entry(entity).or_default() += 1;
    }

    /// Add another tally.
    pub fn merge(&mut self, other: &MaskCounts) {
        for (k, v) in &other.0 {
            *self.0.entry(*k).or_default() += v;
        }
    }

    /// Total masked values.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Whether nothing was masked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Per-type counts.
    pub fn iter(&self) -> impl Iterator<Item = (&EntityType, &u64)> {
        self.0.iter()
    }
}

/// Detectors and strategies; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Masker {
    detectors: Detectors,
    strategies: HashMap<EntityType, Strategy>,
    default_strategy: Strategy,
    key: TokenizeKey,
}

impl Masker {
    /// Build the engine.
    pub fn new(config: MaskerConfig) -> Masker {
        Masker {
            detectors: Detectors::new(&config.detectors),
            strategies: config.strategies,
            default_strategy: config.default_strategy,
            key: config.tokenize_key,
        }
    }

    fn strategy_for(&self, entity: EntityType) -> &Strategy {
        self.strategies
            .get(&entity)
            .unwrap_or(&self.default_strategy)
    }

    /// Mask every finding in `text`; `None` when there is none, so callers
    /// keep the original bytes.
    pub fn mask_detected(&self, text: &str, counts: &mut MaskCounts) -> Option<String> {
        if !may_contain_pii(text.as_bytes()) {
            return None;
        }
        let findings = self.detectors.find(text);
        if findings.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len() + 16);
        let mut at = 0;
        for f in findings {
            out.push_str(&text[at..f.start]);
            out.push_str(&strategy::apply(
                self.strategy_for(f.entity),
                f.entity,
                &text[f.start..f.end],
                &self.key,
            ));
            counts.add(f.entity);
            at = f.end;
        }
        out.push_str(&text[at..]);
        Some(out)
    }

    /// `mask_detected` for bytes that may not be UTF-8 (those are left as is:
    /// the detectors read text).
    pub fn mask_detected_bytes(&self, bytes: &[u8], counts: &mut MaskCounts) -> Option<Vec<u8>> {
        let text = std::str::from_utf8(bytes).ok()?;
        self.mask_detected(text, counts).map(String::into_bytes)
    }

    /// Mask a whole value because a column rule covers it.
    pub fn mask_value(
        &self,
        value: &str,
        strategy: &Strategy,
        entity: EntityType,
        counts: &mut MaskCounts,
    ) -> String {
        counts.add(entity);
        strategy::apply(strategy, entity, value, &self.key)
    }
}
