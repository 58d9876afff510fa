//! Masking a whole JSON response: field rules by pointer, then the content
//! detectors over every string that is left.

use gatehouse_core::mask::{MaskCounts, Masker};
use gatehouse_core::policy::FieldMask;
use serde_json::Value;

/// Mask `value` in place. Field rules replace the whole value (a number
/// becomes a string, since a masked number is no longer one); detectors
/// then mask findings inside every remaining string, keys included.
pub fn mask_json(
    value: &mut Value,
    fields: &[FieldMask],
    masker: &Masker,
    detectors: bool,
    counts: &mut MaskCounts,
) {
    for field in fields {
        let tokens: Vec<String> = field
            .path
            .trim_start_matches('/')
            .split('/')
            .filter(|t| !field.path.is_empty() || !t.is_empty())
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect();
        for_each_at(value, &tokens, &mut |v| {
            if v.is_null() {
                return;
            }
            let text = gatehouse_core::classify::http::json_text(v);
            *v = Value::String(masker.mask_value(
                &text,
                &field.mask.strategy,
                field.mask.entity,
                counts,
            ));
        });
    }
    if detectors {
        mask_strings(value, masker, counts);
    }
}

fn for_each_at(value: &mut Value, tokens: &[String], f: &mut dyn FnMut(&mut Value)) {
    let Some((first, rest)) = tokens.split_first() else {
        f(value);
        return;
    };
    match value {
        Value::Array(items) if first == "*" => {
            for item in items {
                for_each_at(item, rest, f);
            }
        }
        Value::Object(map) if first == "*" => {
            for item in map.values_mut() {
                for_each_at(item, rest, f);
            }
        }
        Value::Array(items) => {
            if let Some(item) = first.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                for_each_at(item, rest, f);
            }
        }
        Value::Object(map) => {
            if let Some(item) = map.get_mut(first.as_str()) {
                for_each_at(item, rest, f);
            }
        }
        _ => {}
    }
}

/// Mask detector findings in every string of `value`, keys included;
/// whether anything changed (so an unchanged document can go out as the
/// upstream wrote it).
pub fn mask_strings(value: &mut Value, masker: &Masker, counts: &mut MaskCounts) -> bool {
    match value {
        Value::String(s) => match masker.mask_detected(s, counts) {
            Some(masked) => {
                *s = masked;
                true
            }
            None => false,
        },
        Value::Array(items) => items.iter_mut().fold(false, |changed, v| {
            mask_strings(v, masker, counts) | changed
        }),
        Value::Object(map) => {
            let keys_need_masking = map
                .keys()
                .any(|k| gatehouse_core::mask::may_contain_pii(k.as_bytes()));
            if keys_need_masking {
                let old = std::mem::take(map);
                let mut changed = false;
                for (k, mut v) in old {
                    changed |= mask_strings(&mut v, masker, counts);
                    let k = match masker.mask_detected(&k, counts) {
                        Some(masked) => {
                            changed = true;
                            masked
                        }
                        None => k,
                    };
                    map.insert(k, v);
                }
                changed
            } else {
                map.values_mut().fold(false, |changed, v| {
                    mask_strings(v, masker, counts) | changed
                })
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::mask::{EntityType, MaskerConfig, Strategy, TokenizeKey};
    use gatehouse_core::policy::ColumnMask;
    use serde_json::json;

    fn masker() -> Masker {
        Masker::new(MaskerConfig {
            detectors: gatehouse_core::mask::DETECTABLE.to_vec(),
            strategies: Default::default(),
            default_strategy: Strategy::Redact,
            tokenize_key: TokenizeKey::new(vec![7; 32]),
        })
    }

    #[test]
    fn fields_by_pointer_then_detectors_everywhere() {
        let mut v = json!({
            "customers": [
                {"name": "Ann", "balance": 1200, "note": "ssn 123-45-6789"},
                {"name": "Bo", "balance": 5, "note": null}
            ]
        });
        let fields = vec![FieldMask {
            path: "/customers/*/balance".into(),
            mask: ColumnMask {
                rule: "balances".into(),
                strategy: Strategy::Redact,
                entity: EntityType::Column,
            },
        }];
        let mut counts = MaskCounts::default();
        mask_json(&mut v, &fields, &masker(), true, &mut counts);
        assert!(v["customers"][0]["balance"].is_string());
        assert_ne!(v["customers"][0]["balance"], "1200");
        assert!(!v.to_string().contains("123-45-6789"));
        assert_eq!(counts.get(EntityType::Column), 2);
        assert_eq!(counts.get(EntityType::Ssn), 1);
        assert_eq!(v["customers"][1]["note"], Value::Null);
    }
}
