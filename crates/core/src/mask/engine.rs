//! The masking engine: detectors plus strategies, shared by every adapter.
//!
//! Adapters call it once per value on the result path, so the common case
//! (a value with no `@` and few digits) returns `None` after one byte scan
//! and the caller forwards the original bytes untouched.

use super::detect::{may_contain_pii, Detectors, Finding};
use super::strategy::{self, TokenizeKey};
use super::{EntityType, Strategy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// How the engine is set up (from the `[masking]` section).
#[derive(Debug, Clone)]
pub struct MaskerConfig {
    /// Entity types the detectors look for.
    pub detectors: Vec<EntityType>,
    /// Strategy per detected entity type.
    pub strategies: HashMap<EntityType, Strategy>,
    /// Strategy for entity types without one.
    pub default_strategy: Strategy,
    /// Key for `tokenize`.
    pub tokenize_key: TokenizeKey,
}

/// Masked-value counts per entity type, so the audit trail can show an
/// examiner what was masked without holding the values. Serializes as a JSON
/// object: `{"card_number": 1, "ssn": 3}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MaskCounts(BTreeMap<EntityType, u64>);

impl MaskCounts {
    /// Count one masked value.
    pub fn add(&mut self, entity: EntityType) {
        *self.0.entry(entity).or_default() += 1;
    }

    /// Add another tally (a statement's rows into a session's total).
    pub fn merge(&mut self, other: &MaskCounts) {
        for (entity, n) in &other.0 {
            *self.0.entry(*entity).or_default() += n;
        }
    }

    /// Masked values of one type.
    pub fn get(&self, entity: EntityType) -> u64 {
        self.0.get(&entity).copied().unwrap_or(0)
    }

    /// Total masked values.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Whether nothing was masked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Per-type counts, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = (&EntityType, &u64)> {
        self.0.iter()
    }
}

/// Detectors and strategies. Immutable after [`Masker::new`], so it is
/// `Send + Sync` and shared by every session behind an `Arc`.
#[derive(Debug)]
pub struct Masker {
    detectors: Detectors,
    strategies: HashMap<EntityType, Strategy>,
    default_strategy: Strategy,
    key: TokenizeKey,
}

impl Masker {
    /// Build the engine; the regexes are compiled once per process, lazily.
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

    /// Mask every detector finding inside `text`. `None` when nothing was
    /// found, so callers keep the original bytes (the zero-copy fast path).
    pub fn mask_detected(&self, text: &str, counts: &mut MaskCounts) -> Option<String> {
        let findings = self.findings(text);
        if findings.is_empty() {
            return None;
        }
        Some(self.mask_findings(text, &findings, counts))
    }

    /// The detector findings in `text` (prefilter included), for callers
    /// that mask part of a larger text and must see the spans, such as
    /// [`super::StreamMasker`] deciding what it may emit.
    pub fn findings(&self, text: &str) -> Vec<Finding> {
        if !may_contain_pii(text.as_bytes()) {
            return Vec::new();
        }
        self.detectors.find(text)
    }

    /// Replace each of `findings` (sorted, disjoint, on char boundaries of
    /// `text`) by its masked form and count it; the splice half of
    /// [`Masker::mask_detected`], exposed so a caller can mask a chosen
    /// subset of findings.
    pub fn mask_findings(
        &self,
        text: &str,
        findings: &[Finding],
        counts: &mut MaskCounts,
    ) -> String {
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
        out
    }

    /// [`Masker::mask_detected`] for raw bytes. Bytes that are not UTF-8 are
    /// kept as they are and the UTF-8 stretches between them are still
    /// masked, so one stray byte cannot smuggle an SSN through. `None` when
    /// nothing was found.
    pub fn mask_detected_bytes(&self, bytes: &[u8], counts: &mut MaskCounts) -> Option<Vec<u8>> {
        if !may_contain_pii(bytes) {
            return None;
        }
        if let Ok(text) = std::str::from_utf8(bytes) {
            return self.mask_detected(text, counts).map(String::into_bytes);
        }
        let mut out = Vec::with_capacity(bytes.len() + 16);
        let mut changed = false;
        for chunk in bytes.utf8_chunks() {
            match self.mask_detected(chunk.valid(), counts) {
                Some(masked) => {
                    out.extend_from_slice(masked.as_bytes());
                    changed = true;
                }
                None => out.extend_from_slice(chunk.valid().as_bytes()),
            }
            out.extend_from_slice(chunk.invalid());
        }
        changed.then_some(out)
    }

    /// Mask a whole value because a column rule says so; `entity` is the
    /// rule's (often [`EntityType::Column`]) and is what gets counted.
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

/// Adapters share one engine across tasks; keep that a compile-time fact.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Masker>();
};
