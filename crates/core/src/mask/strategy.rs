//! Masking strategies applied to one value.

use super::{EntityType, Strategy};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The secret behind `tokenize`; Debug never prints it.
#[derive(Clone)]
pub struct TokenizeKey(Vec<u8>);

impl TokenizeKey {
    /// Wrap key bytes.
    pub fn new(bytes: Vec<u8>) -> TokenizeKey {
        TokenizeKey(bytes)
    }
}

impl std::fmt::Debug for TokenizeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenizeKey(<hidden>)")
    }
}

/// Apply `strategy` to `value`.
///
/// - `redact` gives `[REDACTED:ssn]`: nothing of the value is kept;
/// - `partial` keeps the last `keep_last` letters or digits and stars the
///   others, keeping separators, so `123-45-6789` becomes `***-**-6789`; for
///   emails the domain is kept and the local part starred but for its first
///   character (`j***@example.com`) when `keep_last` is 0;
/// - `tokenize` gives `tok_` and 16 hex digits of HMAC-SHA256(key, entity,
///   value): equal values give equal tokens under one key.
pub fn apply(strategy: &Strategy, entity: EntityType, value: &str, key: &TokenizeKey) -> String {
    match strategy {
        Strategy::Redact => format!("[REDACTED:{}]", entity.as_str()),
        Strategy::Partial { keep_last } => partial(value, *keep_last),
        Strategy::Tokenize => {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.0)
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
            mac.update(entity.as_str().as_bytes());
            mac.update(&[0]);
            mac.update(value.as_bytes());
            let tag = mac.finalize().into_bytes();
            format!("tok_{}", hex::encode(&tag[..8]))
        }
    }
}

fn partial(value: &str, keep_last: usize) -> String {
    let total = value.chars().filter(|c| c.is_alphanumeric()).count();
    // Never reveal more than half of a value, so a short one stays masked.
    let keep = keep_last.min(total / 2);
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                seen += 1;
                if seen > total - keep {
                    c
                } else {
                    '*'
                }
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_keeps_separators_and_tail() {
        assert_eq!(partial("123-45-6789", 4), "***-**-6789");
        assert_eq!(partial("4111 1111 1111 1111", 4), "**** **** **** 1111");
        assert_eq!(partial("12", 4), "*2");
    }

    #[test]
    fn tokenize_is_deterministic_and_keyed() {
        let k1 = TokenizeKey::new(b"one".to_vec());
        let k2 = TokenizeKey::new(b"two".to_vec());
        let a = apply(&Strategy::Tokenize, EntityType::Email, "a@b.co", &k1);
        assert_eq!(
            a,
            apply(&Strategy::Tokenize, EntityType::Email, "a@b.co", &k1)
        );
        assert_ne!(
            a,
            apply(&Strategy::Tokenize, EntityType::Email, "a@b.co", &k2)
        );
        assert!(a.starts_with("tok_") && a.len() == 20);
        assert_eq!(format!("{k1:?}"), "TokenizeKey(<hidden>)");
    }
}
