//! Canonical JSON: one byte string per JSON value, so a hash over event data
//! does not depend on key order or formatting.
//!
//! The rules are those of RFC 8785 (JSON Canonicalization Scheme), so an
//! examiner can use any JCS library, with one extension: integers that fit
//! in 64 bits are written exactly, where JCS would first round them to a
//! double. The two agree for every integer up to 2^53 in magnitude. The
//! encoding is written out here rather than delegated to `serde_json`, whose
//! number formatting may change between versions.

mod check;

pub(crate) use check::is_canonical;
use serde_json::Value;
use std::fmt::Write as _;

/// The canonical text of `value`, the form the event hash covers.
///
/// Public so an examiner's tooling (and the spec's test vectors) can
/// reproduce exactly what was hashed. Rules (see the crate docs): no
/// whitespace, object keys sorted by UTF-16 code units, minimal string
/// escaping with lowercase `\u00XX`, 64-bit integers in decimal, other
/// numbers as ECMAScript prints them (shortest round-trip digits). Sorting is
/// done here rather than relying on `serde_json`'s map order, which a feature
/// flag elsewhere could change.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else if let Some(f) = n.as_f64() {
                write_double(f, out);
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| utf16_order(a.0, b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(item, out);
            }
            out.push('}');
        }
    }
}

/// ECMAScript `Number.prototype.toString` for a finite double (RFC 8785
/// section 3.2.2.3): shortest round-trip digits, plain notation for
/// magnitudes in [1e-6, 1e21), exponent notation (`1e+21`, `1.5e-7`)
/// otherwise, and `0` for both zeros.
fn write_double(f: f64, out: &mut String) {
    if f == 0.0 || !f.is_finite() {
        // serde_json never holds a non-finite number; 0 keeps this total.
        out.push('0');
        return;
    }
    if f < 0.0 {
        out.push('-');
    }
    // Rust's `{:e}` gives the shortest digits that round-trip: "1.5e-7".
    let sci = format!("{:e}", f.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i64;
    // The decimal point sits after the first `n` digits.
    let n = exponent.parse::<i64>().unwrap_or(0) + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        let _ = write!(out, "{int}.{frac}");
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            let _ = write!(out, ".{rest}");
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
    }
}

/// Keys in UTF-16 code unit order. For ASCII (almost every key) that is
/// byte order, without encoding either key.
fn utf16_order(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.cmp(b)
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

/// A JSON string with minimal escaping. Runs of characters that need none
/// (all but `"`, `\` and controls, which are ASCII) are copied whole.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        // `i` is at an ASCII byte, so both slices end on char boundaries.
        out.push_str(&s[run..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escaped);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_at_every_depth_and_drops_whitespace() {
        let v = json!({"b": 1, "a": {"z": [1, {"y": null, "x": true}], "c": "d"}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":"d","z":[1,{"x":true,"y":null}]},"b":1}"#
        );
    }

    #[test]
    fn escapes_only_what_json_requires() {
        let v = json!("q\" b\\ \u{8}\u{c}\n\r\t \u{1} \u{1f} / é 😀 \u{7f}");
        assert_eq!(
            canonical_json(&v),
            "\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0001 \\u001f / é 😀 \u{7f}\""
        );
    }

    #[test]
    fn numbers_have_one_spelling() {
        let v = json!([0, -1, 18446744073709551615u64, -9223372036854775808i64]);
        assert_eq!(
            canonical_json(&v),
            "[0,-1,18446744073709551615,-9223372036854775808]"
        );
        // RFC 8785 appendix B examples.
        let cases = [
            (0.1, "0.1"),
            (-0.0, "0"),
            (2.0, "2"),
            (1.5e-7, "1.5e-7"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (123.456, "123.456"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1e300, "1e+300"),
            (-1.2345e-300, "-1.2345e-300"),
            (9007199254740994.0, "9007199254740994"),
            (295147905179352830000.0, "295147905179352830000"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (333333333.3333333, "333333333.3333333"),
        ];
        for (f, text) in cases {
            assert_eq!(canonical_json(&json!(f)), text, "{f:e}");
        }
    }

    #[test]
    fn keys_sort_by_bytes_not_by_locale() {
        let v = json!({"é": 1, "z": 2, "Z": 3, "a": 4});
        assert_eq!(canonical_json(&v), r#"{"Z":3,"a":4,"z":2,"é":1}"#);
        // UTF-16 order puts a surrogate pair (U+1F600) before U+FF01,
        // where UTF-8 byte order would not.
        let v = json!({"\u{ff01}": 1, "\u{1f600}": 2});
        assert_eq!(canonical_json(&v), "{\"\u{1f600}\":2,\"\u{ff01}\":1}");
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((any::<String>(), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// What the writer stores must hash the same after it is read back.
        #[test]
        fn survives_a_round_trip_through_its_own_text(v in arb_json()) {
            let text = canonical_json(&v);
            let back: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(canonical_json(&back), text);
        }

        /// Doubles keep their exact value through their canonical text.
        #[test]
        fn doubles_read_back_exactly(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
            let text = canonical_json(&json!(f));
            let back: f64 = text.parse().unwrap();
            prop_assert!(back == f, "{} -> {} -> {}", f, text, back);
        }

        /// Key order in the input never changes the canonical form.
        #[test]
        fn ignores_insertion_order(kv in prop::collection::vec((any::<String>(), any::<i32>()), 0..16)) {
            let forward: serde_json::Map<String, Value> =
                kv.iter().map(|(k, v)| (k.clone(), Value::from(*v))).collect();
            let backward: serde_json::Map<String, Value> =
                kv.iter().rev().map(|(k, v)| (k.clone(), Value::from(*v))).collect();
            // Duplicate keys keep the last value in each direction; compare only
            // when both maps agree on content.
            prop_assume!(forward == backward);
            prop_assert_eq!(canonical_json(&Value::Object(forward)), canonical_json(&Value::Object(backward)));
        }
    }
}
