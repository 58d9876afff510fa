//! Masking strategies applied to one value.
//!
//! Every strategy is a pure function of the value (and, for tokens, the
//! key), so the same value masks the same way in every row, replica and
//! audit record.

use super::{EntityType, Strategy};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How many hex digits of the HMAC a token keeps: 64 bits, enough that
/// distinct values in one table practically never share a token.
const TOKEN_HEX_DIGITS: usize = 16;

/// The secret behind [`Strategy::Tokenize`]. Without it nobody can compute
/// tokens for guessed values (SSNs are guessable), so Debug never prints it.
#[derive(Clone)]
pub struct TokenizeKey(Vec<u8>);

impl TokenizeKey {
    /// Wrap key bytes (use at least 32 random bytes).
    pub fn new(bytes: Vec<u8>) -> TokenizeKey {
        TokenizeKey(bytes)
    }
}

impl std::fmt::Debug for TokenizeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenizeKey(<hidden>)")
    }
}

/// Apply `strategy` to `value`, a whole value or one finding inside a text.
///
/// - `redact` gives `[REDACTED:ssn]`: short, obviously masked, and says what
///   was there; nothing of the value is kept.
/// - `partial` keeps the last `keep_last` letters or digits and turns the
///   others into `*`, keeping separators and length, so `123-45-6789`
///   becomes `***-**-6789`. It never keeps more than half of them, so a short
///   value stays masked. For an email it keeps the domain and the first
///   character of the local part instead (`jo@example.com` →
///   `j*@example.com`); a one-character local part is starred whole.
/// - `tokenize` gives `tok_` and 16 hex digits of
///   HMAC-SHA256(key, entity ‖ 0x00 ‖ value): equal values give equal tokens
///   under one key, so joins and GROUP BY still work.
pub fn apply(strategy: &Strategy, entity: EntityType, value: &str, key: &TokenizeKey) -> String {
    match strategy {
        Strategy::Redact => format!("[REDACTED:{}]", entity.as_str()),
        Strategy::Partial { keep_last } => match (entity, value.rsplit_once('@')) {
            (EntityType::Email, Some((local, domain))) => {
                format!("{}@{domain}", partial_local_part(local))
            }
            _ => partial(value, *keep_last),
        },
        Strategy::Tokenize => tokenize(entity, value, key),
    }
}

fn partial(value: &str, keep_last: usize) -> String {
    let total = value.chars().filter(|c| c.is_alphanumeric()).count();
    let keep = keep_last.min(total / 2);
    star_alphanumerics(value, |nth| nth >= total - keep)
}

fn partial_local_part(local: &str) -> String {
    let keep_first = local.chars().count() >= 2;
    star_alphanumerics(local, |nth| keep_first && nth == 0)
}

/// Replace each letter or digit with `*` unless `keep(n)` says to keep the
/// n-th one (counting from 0); other characters stay as they are.
fn star_alphanumerics(value: &str, keep: impl Fn(usize) -> bool) -> String {
    let mut nth = 0;
    value
        .chars()
        .map(|c| {
            if !c.is_alphanumeric() {
                return c;
            }
            let out = if keep(nth) { c } else { '*' };
            nth += 1;
            out
        })
        .collect()
}

fn tokenize(entity: EntityType, value: &str, key: &TokenizeKey) -> String {
    // HMAC accepts keys of any length, so this arm is never taken; an empty
    // MAC would still never echo the value.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key.0) else {
        return format!("tok_{}", "0".repeat(TOKEN_HEX_DIGITS));
    };
    mac.update(entity.as_str().as_bytes());
    mac.update(&[0]);
    mac.update(value.as_bytes());
    let tag = mac.finalize().into_bytes();
    format!("tok_{}", hex::encode(&tag[..TOKEN_HEX_DIGITS / 2]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop_assert, prop_assert_eq, prop_assert_ne, proptest};

    fn key(k: &[u8]) -> TokenizeKey {
        TokenizeKey::new(k.to_vec())
    }

    fn partial_of(entity: EntityType, value: &str, keep_last: usize) -> String {
        apply(&Strategy::Partial { keep_last }, entity, value, &key(b"k"))
    }

    #[test]
    fn redact_names_the_entity_only() {
        let out = apply(
            &Strategy::Redact,
            EntityType::CardNumber,
            "4111111111111111",
            &key(b"k"),
        );
        assert_eq!(out, "[REDACTED:card_number]");
        assert_eq!(
            apply(&Strategy::Redact, EntityType::Column, "secret", &key(b"k")),
            "[REDACTED:column]"
        );
    }

    #[test]
    fn partial_keeps_separators_and_tail() {
        assert_eq!(partial_of(EntityType::Ssn, "123-45-6789", 4), "***-**-6789");
        assert_eq!(
            partial_of(EntityType::CardNumber, "4111 1111 1111 1111", 4),
            "**** **** **** 1111"
        );
        assert_eq!(
            partial_of(EntityType::Phone, "(212) 555-0147", 4),
            "(***) ***-0147"
        );
        assert_eq!(
            partial_of(EntityType::Column, "Zoë Ångström", 3),
            "*** *****röm"
        );
        assert_eq!(
            partial_of(EntityType::Column, "12", 4),
            "*2",
            "never more than half"
        );
        assert_eq!(partial_of(EntityType::Column, "7", 4), "*");
        assert_eq!(partial_of(EntityType::Column, "", 4), "");
        assert_eq!(partial_of(EntityType::Ssn, "123-45-6789", 0), "***-**-****");
    }

    #[test]
    fn partial_email_keeps_domain_and_first_letter() {
        assert_eq!(
            partial_of(EntityType::Email, "jo@example.com", 4),
            "j*@example.com"
        );
        assert_eq!(
            partial_of(EntityType::Email, "first.last@example.com", 0),
            "f****.****@example.com"
        );
        assert_eq!(
            partial_of(EntityType::Email, "j@example.com", 4),
            "*@example.com"
        );
        // A column rule that calls a non-email value an email falls back.
        assert_eq!(partial_of(EntityType::Email, "nobody", 2), "****dy");
    }

    #[test]
    fn tokens_are_short_keyed_and_entity_scoped() {
        let a = apply(
            &Strategy::Tokenize,
            EntityType::Email,
            "a@b.co",
            &key(b"one"),
        );
        assert_eq!(
            a,
            apply(
                &Strategy::Tokenize,
                EntityType::Email,
                "a@b.co",
                &key(b"one")
            )
        );
        assert_ne!(
            a,
            apply(
                &Strategy::Tokenize,
                EntityType::Email,
                "a@b.co",
                &key(b"two")
            )
        );
        assert_ne!(
            a,
            apply(
                &Strategy::Tokenize,
                EntityType::Column,
                "a@b.co",
                &key(b"one")
            )
        );
        assert!(
            a.starts_with("tok_") && a.len() == 4 + TOKEN_HEX_DIGITS,
            "{a}"
        );
        assert!(a[4..].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn key_debug_hides_the_secret() {
        let shown = format!("{:?}", key(b"super-secret-key"));
        assert_eq!(shown, "TokenizeKey(<hidden>)");
        assert!(!shown.contains("secret-key"));
    }

    proptest! {
        #[test]
        fn tokenize_is_deterministic_and_key_dependent(
            value in ".{0,40}",
            k1 in proptest::collection::vec(any::<u8>(), 1..40),
            k2 in proptest::collection::vec(any::<u8>(), 1..40),
        ) {
            let t = |k: &Vec<u8>| apply(&Strategy::Tokenize, EntityType::Ssn, &value, &key(k));
            prop_assert_eq!(t(&k1), t(&k1));
            if k1 != k2 {
                prop_assert_ne!(t(&k1), t(&k2));
            }
        }

        #[test]
        fn partial_keeps_length_separators_and_hides_at_least_half(
            value in "[a-zA-Z0-9 ./()@+-]{0,40}",
            keep_last in 0usize..12,
        ) {
            let out = partial_of(EntityType::Column, &value, keep_last);
            prop_assert_eq!(out.chars().count(), value.chars().count());
            let alnum = value.chars().filter(|c| c.is_alphanumeric()).count();
            let mut starred = 0;
            for (a, b) in value.chars().zip(out.chars()) {
                if a.is_alphanumeric() {
                    prop_assert!(b == a || b == '*');
                    starred += usize::from(b == '*');
                } else {
                    prop_assert_eq!(a, b, "separators stay");
                }
            }
            // At least half is starred, so any value with a letter or digit changes.
            prop_assert!(starred >= alnum - alnum / 2);
        }
    }
}
