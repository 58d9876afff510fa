//! The `policy.loaded` event: which configuration (and so which policy) the
//! gateway runs, recorded at start so an evidence pack shows the policy in
//! force and its history.
//!
//! Secrets in the file are references (`password_env`, `password_file`,
//! `token_env`), never values; a value written inline anyway is excluded
//! from the recorded text: any `key = value` whose key names a secret
//! (`password`, `secret`, `token`, `passphrase`, `credential`, `private`,
//! `api_key`) and does not end in `_env`, `_file` or `_path` has its value
//! replaced by `"[excluded]"`, in comments too. The SHA-256 is of the text
//! as loaded, so it identifies the exact file the operator holds.

use gatehouse_core::events::PolicyLoaded;
use sha2::{Digest, Sha256};

/// What a key name must contain to be treated as a secret.
const SECRET_WORDS: [&str; 8] = [
    "password",
    "passwd",
    "secret",
    "token",
    "passphrase",
    "credential",
    "private",
    "api_key",
];

/// Suffixes that make a key a reference to a secret, not a secret.
const REFERENCE_SUFFIXES: [&str; 3] = ["_env", "_file", "_path"];

/// What replaces an excluded value.
pub const EXCLUDED: &str = "\"[excluded]\"";

fn is_secret_key(key: &str) -> bool {
    let k = key
        .trim_matches(|c| c == '"' || c == '\'')
        .to_ascii_lowercase();
    let k = k.rsplit('.').next().unwrap_or(&k).to_string();
    SECRET_WORDS.iter().any(|w| k.contains(w))
        && !REFERENCE_SUFFIXES.iter().any(|s| k.ends_with(s))
        && k != "tokenize"
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// End (exclusive, in chars) of the value starting at `start` in `chars`.
fn value_end(chars: &[char], start: usize) -> usize {
    match chars.get(start) {
        Some(&q @ ('"' | '\'')) => {
            let mut i = start + 1;
            while i < chars.len() {
                if q == '"' && chars[i] == '\\' {
                    i += 2;
                    continue;
                }
                if chars[i] == q {
                    return i + 1;
                }
                i += 1;
            }
            chars.len()
        }
        _ => {
            let mut i = start;
            while i < chars.len() && !matches!(chars[i], ',' | '}' | '#' | ']') {
                i += 1;
            }
            // Keep the spaces before a comment or a separator.
            while i > start && chars[i - 1].is_whitespace() {
                i -= 1;
            }
            i
        }
    }
}

/// The line with the values of secret-named keys replaced; how many.
fn exclude_in_line(line: &str) -> (String, u64) {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut count = 0;
    let mut i = 0;
    while i < chars.len() {
        if !is_key_char(chars[i]) || (i > 0 && is_key_char(chars[i - 1])) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let key_start = i;
        while i < chars.len() && is_key_char(chars[i]) {
            i += 1;
        }
        let key: String = chars[key_start..i].iter().collect();
        out.push_str(&key);
        let mut j = i;
        while j < chars.len() && (chars[j] == ' ' || chars[j] == '\t') {
            j += 1;
        }
        if chars.get(j) != Some(&'=') || chars.get(j + 1) == Some(&'=') || !is_secret_key(&key) {
            continue;
        }
        let mut v = j + 1;
        while v < chars.len() && (chars[v] == ' ' || chars[v] == '\t') {
            v += 1;
        }
        let end = value_end(&chars, v);
        if end == v {
            continue;
        }
        out.extend(&chars[i..v]);
        out.push_str(EXCLUDED);
        count += 1;
        i = end;
    }
    (out, count)
}

/// The configuration text with inline secret values excluded, and how
/// many were.
pub fn exclude_secrets(text: &str) -> (String, u64) {
    let mut out = String::with_capacity(text.len());
    let mut count = 0;
    for line in text.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let (shown, n) = exclude_in_line(body);
        out.push_str(&shown);
        out.push_str(newline);
        count += n;
    }
    (out, count)
}

/// The data of a `policy.loaded` event for configuration `text`; `reason`
/// is `start` or `reload`.
pub fn policy_loaded(text: &str, reason: &str) -> PolicyLoaded {
    let (shown, excluded) = exclude_secrets(text);
    PolicyLoaded {
        reason: reason.to_string(),
        sha256: hex::encode(Sha256::digest(text.as_bytes())),
        text_sha256: Some(hex::encode(Sha256::digest(shown.as_bytes()))),
        excluded,
        text: shown,
        path: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_stay_and_inline_values_go() {
        let text = "[[connections]]\nname = \"bank\"\npassword_env = \"BANK_PW\"\npassword_file = \"/run/pw\"\n\
                    password = \"hunter2\"\n  client_secret='s3cr3t' # rotated\ncreds = { api_key = \"abc\", user = \"x\" }\n\
                    # token = \"eyJ.old\"\nstrategy = \"tokenize\"\ntokenize_key_env = \"K\"\nDB_PASSWORD=plain\n";
        let (shown, n) = exclude_secrets(text);
        assert_eq!(n, 5, "{shown}");
        for gone in ["hunter2", "s3cr3t", "abc", "eyJ.old", "plain"] {
            assert!(!shown.contains(gone), "{gone} in {shown}");
        }
        for kept in [
            "password_env = \"BANK_PW\"",
            "password_file = \"/run/pw\"",
            "password = \"[excluded]\"",
            "user = \"x\"",
            "strategy = \"tokenize\"",
            "tokenize_key_env = \"K\"",
            "DB_PASSWORD=\"[excluded]\"",
        ] {
            assert!(shown.contains(kept), "{kept} in {shown}");
        }
        assert!(
            shown.contains("client_secret=\"[excluded]\" # rotated"),
            "{shown}"
        );
        assert_eq!(shown.lines().count(), text.lines().count());
    }

    #[test]
    fn the_event_hashes_the_text_as_loaded() {
        let text = "password = \"x\"\n";
        let v = policy_loaded(text, "start");
        assert_eq!(v.sha256, hex::encode(Sha256::digest(text.as_bytes())));
        assert_eq!(v.excluded, 1);
        assert_eq!(v.text, "password = \"[excluded]\"\n");
    }
}
