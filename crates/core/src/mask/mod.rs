//! The mask stage: values leave the gateway masked.
//!
//! Two kinds of rule apply to every value: column rules (from policy, traced
//! through the SQL by the classifier) mask a whole value, and content
//! detectors find sensitive substrings in any text. Both are pure functions
//! over one value, so adapters can mask a stream row by row.

use serde::{Deserialize, Serialize};

/// A kind of sensitive value; masked-value counts are kept per entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityType {
    /// US Social Security number.
    Ssn,
    /// Payment card number (PAN).
    CardNumber,
    /// International Bank Account Number.
    Iban,
    /// ABA routing transit number.
    AbaRouting,
    /// Email address.
    Email,
    /// Phone number.
    Phone,
    /// A bank account number: masked by column rules only (no detector can
    /// tell one from any other run of digits).
    AccountNumber,
    /// A value masked by a column rule rather than by a detector.
    Column,
}

impl EntityType {
    /// Name as written in policy files and audit events.
    pub fn as_str(&self) -> &'static str {
        match self {
            EntityType::Ssn => "ssn",
            EntityType::CardNumber => "card_number",
            EntityType::Iban => "iban",
            EntityType::AbaRouting => "aba_routing",
            EntityType::Email => "email",
            EntityType::Phone => "phone",
            EntityType::AccountNumber => "account_number",
            EntityType::Column => "column",
        }
    }
}

/// Every entity type the content detectors can find (all but
/// `AccountNumber` and `Column`, which only column rules name);
/// the default `[masking] detectors`.
pub const DETECTABLE: [EntityType; 6] = [
    EntityType::Ssn,
    EntityType::CardNumber,
    EntityType::Iban,
    EntityType::AbaRouting,
    EntityType::Email,
    EntityType::Phone,
];

/// How a value is masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum Strategy {
    /// Replace with a fixed marker (`[REDACTED:ssn]`-style); nothing is kept.
    Redact,
    /// Keep the last `keep_last` alphanumeric characters, mask the rest with
    /// `*` while keeping separators, so people can still match on the tail.
    Partial {
        /// How many trailing characters stay visible.
        keep_last: usize,
    },
    /// Deterministic keyed token (HMAC-SHA256), so equal values give equal
    /// tokens and joins and GROUP BY still work, but the value cannot be recovered.
    Tokenize,
}

mod contact;
mod detect;
mod engine;
mod iban;
mod numbers;
mod strategy;
mod stream;
mod text;
mod trail;
mod validate;

pub use detect::{may_contain_pii, Detection, Detectors, Finding};
pub use engine::{MaskCounts, Masker, MaskerConfig};
pub use strategy::{apply, TokenizeKey};
pub use stream::{StreamMasker, MAX_HOLD};
pub use text::{sniff_text, NotText, TextStream};
pub use trail::{cut_for_trail, ColumnStrategy, TrailKind, TrailText, PARAMETERS};

#[cfg(test)]
mod tests;
