//! The demo's policy, read as a configuration: each masking column rule
//! counts its values under the entity they are.

use gatehouse::demo::DEMO_POLICY;

/// Each column rule counts its values under the entity they are, so the
/// masking statistics of an evidence pack say how many card numbers,
/// IBANs and account numbers were masked, not "SSN" for all of them.
#[test]
fn demo_column_rules_count_each_kind_of_value_as_itself() {
    let policy: toml::Value = toml::from_str(DEMO_POLICY).unwrap();
    let rules = policy["masking"]["columns"].as_array().unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for rule in rules {
        let entity = rule.get("entity").and_then(|e| e.as_str());
        for column in rule["columns"].as_array().unwrap() {
            let column = column.as_str().unwrap();
            let name = column.rsplit('.').next().unwrap();
            seen.insert(name.to_string(), entity.map(str::to_string));
        }
    }
    for (column, entity) in [
        ("ssn", "ssn"),
        ("card_number", "card_number"),
        ("iban", "iban"),
        ("account_number", "account_number"),
        ("routing_number", "aba_routing"),
        ("email", "email"),
    ] {
        assert_eq!(
            seen.get(column).cloned().flatten().as_deref(),
            Some(entity),
            "{column}: {seen:?}"
        );
    }
    // And the policy compiles with these entities.
    let cfg = gatehouse::config::GatewayConfig::parse(DEMO_POLICY, std::path::Path::new("."))
        .expect("the demo policy parses as a configuration");
    gatehouse::gateway::compile_policy(&cfg).expect("the demo policy compiles");
}
