//! A fast, one-sided check that a stored text is already canonical.
//!
//! Verifying a trail must confirm each event's data text is exactly what
//! [`canonical_json`](super::canonical_json) would write for it; the sure
//! way is to parse it and write it again, which allocates a tree per event.
//! [`is_canonical`] walks the bytes once without allocating and answers
//! `true` only when the text certainly is canonical: no whitespace, keys
//! strictly increasing (so none repeats), every string escaped exactly as
//! the writer escapes, every number a 64-bit integer in its one spelling.
//! Anything it is not sure of (a fraction or exponent, an escaped key, an
//! integer past 64 bits, deep nesting) answers `false`, and the caller
//! takes the sure way, so the check can only save time, never change a
//! verdict.

/// Deeper than this is left to the parser (its own recursion limit).
const MAX_DEPTH: usize = 100;

/// Whether `text` is certainly the canonical form of the JSON it holds.
pub fn is_canonical(text: &str) -> bool {
    let mut c = Cursor {
        bytes: text.as_bytes(),
        at: 0,
    };
    c.value(0) && c.at == c.bytes.len()
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().is_some(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            _ => false,
        }
    }

    fn array(&mut self, depth: usize) -> bool {
        self.at += 1;
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(depth + 1) {
                return false;
            }
            if self.eat(b']') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    fn object(&mut self, depth: usize) -> bool {
        self.at += 1;
        if self.eat(b'}') {
            return true;
        }
        let bytes = self.bytes;
        let mut previous: Option<&[u8]> = None;
        loop {
            let Some((start, end)) = self.string() else {
                return false;
            };
            let key = &bytes[start..end];
            // Escaped keys need decoding to compare: left to the parser.
            // Unescaped keys compare in UTF-16 order as the writer sorts.
            if key.contains(&b'\\') {
                return false;
            }
            if let Some(prev) = previous {
                if utf16_cmp(prev, key) != std::cmp::Ordering::Less {
                    return false;
                }
            }
            previous = Some(key);
            if !self.eat(b':') || !self.value(depth + 1) {
                return false;
            }
            if self.eat(b'}') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    /// A string as the writer escapes it; where its raw contents lie
    /// between the quotes.
    fn string(&mut self) -> Option<(usize, usize)> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.at;
        loop {
            let b = self.peek()?;
            self.at += 1;
            match b {
                b'"' => return Some((start, self.at - 1)),
                0..=0x1f => return None,
                b'\\' => {
                    let e = self.peek()?;
                    self.at += 1;
                    match e {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            // Only controls without a short escape, in
                            // lowercase hex.
                            let hex = self.bytes.get(self.at..self.at + 4)?;
                            self.at += 4;
                            let code = match hex {
                                [b'0', b'0', hi @ (b'0' | b'1'), lo] => {
                                    let lo = match lo {
                                        b'0'..=b'9' => lo - b'0',
                                        b'a'..=b'f' => lo - b'a' + 10,
                                        _ => return None,
                                    };
                                    (hi - b'0') * 16 + lo
                                }
                                _ => return None,
                            };
                            if matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return None;
                            }
                        }
                        _ => return None,
                    }
                }
                _ => {}
            }
        }
    }

    /// `0`, or an optional minus and digits without a leading zero, that
    /// fits a 64-bit integer (`-0` is not canonical).
    fn integer(&mut self) -> bool {
        let start = self.at;
        let negative = self.eat(b'-');
        let digits_start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        let digits = &self.bytes[digits_start..self.at];
        if digits.is_empty() || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return false;
        }
        if digits[0] == b'0' && (digits.len() > 1 || negative) {
            return false;
        }
        // ASCII digits, so this is valid UTF-8.
        let token = std::str::from_utf8(&self.bytes[start..self.at]).unwrap_or("x");
        if negative {
            token.parse::<i64>().is_ok()
        } else {
            token.parse::<u64>().is_ok()
        }
    }
}

/// UTF-16 code unit order of two unescaped UTF-8 strings: byte order
/// unless either holds a character from U+E000 up (lead byte 0xEE or
/// more), where the two orders can differ.
fn utf16_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    if a.iter().chain(b).all(|&x| x < 0xee) {
        return a.cmp(b);
    }
    let (Ok(a), Ok(b)) = (std::str::from_utf8(a), std::str::from_utf8(b)) else {
        return std::cmp::Ordering::Equal;
    };
    a.encode_utf16().cmp(b.encode_utf16())
}

#[cfg(test)]
mod tests {
    use super::super::canonical_json;
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// The sure way: parse and write again.
    fn surely_canonical(text: &str) -> bool {
        serde_json::from_str::<Value>(text).is_ok_and(|v| canonical_json(&v) == text)
    }

    #[test]
    fn what_the_writer_writes_passes() {
        for text in [
            r#"{"a":{"c":"d","z":[1,{"x":true,"y":null}]},"b":-9223372036854775808}"#,
            "\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0001 \\u001f / é 😀 \u{7f}\"",
            "{\"\u{1f600}\":2,\"\u{ff01}\":1}",
            r#"{"Z":3,"a":4,"z":2,"é":1}"#,
            "[0,18446744073709551615,[],{}]",
        ] {
            assert!(is_canonical(text), "{text}");
            assert!(surely_canonical(text), "{text}");
        }
    }

    #[test]
    fn anything_else_is_left_to_the_parser() {
        for text in [
            r#"{"a":1,"a":2}"#,
            r#"{"b":1,"a":2}"#,
            r#"{"a": 1}"#,
            r#" {"a":1}"#,
            r#"{"a":1}x"#,
            "\"\\u0041\"",
            "\"\\u000a\"",
            "\"\\u001F\"",
            "\"\\/\"",
            "\"\u{1}\"",
            "-0",
            "01",
            "1.5",
            "1e3",
            "18446744073709551616",
            "{\"\\u0001\":1}",
            "{\"\u{ff01}\":1,\"\u{1f600}\":2}",
            "[1,]",
            "",
            "nul",
        ] {
            assert!(!is_canonical(text), "{text}");
        }
    }

    proptest! {
        /// Never `true` for a text the sure way would refuse.
        #[test]
        fn never_vouches_for_a_text_that_is_not_canonical(text in "[\\[\\]{}\":,0-9a-e\\\\u\\- .\u{1}\u{e9}\u{ff01}\u{1f600}]{0,40}") {
            if is_canonical(&text) {
                prop_assert!(surely_canonical(&text), "{}", text);
            }
        }

        /// Vouches for what the writer writes (integers, strings,
        /// nesting; fractions are left to the parser by design).
        #[test]
        fn vouches_for_what_the_writer_writes(v in arb_integral_json()) {
            let text = canonical_json(&v);
            prop_assert!(is_canonical(&text), "{}", text);
        }
    }

    fn arb_integral_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec(("[a-zA-Z_\u{e9}\u{ff01}\u{1f600}]{0,6}", inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }
}
