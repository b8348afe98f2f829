//! Every key of the run configuration, set to each kind of bad value: the config is refused with
//! an error naming the key, or accepted, and never panics; a NaN or infinite number is never
//! accepted.

mod common;

use common::leaves;
use dnc_pipeline::{RunConfig, validate};

fn set(doc: &mut toml::Value, path: &str, value: toml::Value) {
    let mut node = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        node = node.get_mut(*part).unwrap();
    }
    node.as_table_mut()
        .unwrap()
        .insert(parts[parts.len() - 1].to_string(), value);
}

/// The result of reading and validating `doc`: `Ok` or the error's text; a panic fails the test
/// naming the key and the value.
fn check(doc: &toml::Value, key: &str, value: &toml::Value) -> Result<(), String> {
    let text = toml::to_string(doc).unwrap();
    let outcome = std::panic::catch_unwind(|| {
        let cfg = RunConfig::from_toml(&text)?;
        validate(&cfg).map_err(|e| e.to_string())?;
        // What a run derives from a valid config must not panic either.
        let _ = dnc_pipeline::Stage::plan(&cfg);
        Ok::<(), String>(())
    });
    outcome.unwrap_or_else(|_| panic!("{key} = {value} panicked"))
}

fn bad_values(original: &toml::Value) -> Vec<toml::Value> {
    use toml::Value::*;
    let mut values = vec![
        String("not a value".into()),
        String(std::string::String::new()),
        Boolean(true),
        Array(vec![Integer(1)]),
        Table(toml::map::Map::new()),
    ];
    match original {
        Integer(_) => values.extend([Integer(-1), Integer(0), Integer(i64::MAX), Float(0.5)]),
        Float(_) => values.extend([
            Float(f64::NAN),
            Float(f64::INFINITY),
            Float(f64::NEG_INFINITY),
            Float(-1.0),
            Float(0.0),
            Float(1e300),
        ]),
        Array(items) => {
            values.push(Array(Vec::new()));
            if let Some(first) = items.first() {
                values.push(Array(vec![first.clone()]));
                values.push(Array(vec![first.clone(); items.len() + 1]));
            }
            if matches!(items.first(), Some(Float(_))) {
                values.push(Array(vec![Float(f64::NAN); items.len()]));
                values.push(Array(vec![Float(f64::INFINITY); items.len()]));
            }
        }
        _ => values.push(Integer(7)),
    }
    values
}

fn non_finite(value: &toml::Value) -> bool {
    match value {
        toml::Value::Float(f) => !f.is_finite(),
        toml::Value::Array(a) => a.iter().any(non_finite),
        _ => false,
    }
}

/// Every (key, bad value) pair of the default config.
fn all_changes() -> (toml::Value, Vec<(String, toml::Value)>) {
    let defaults: toml::Value = toml::from_str(&RunConfig::default().to_toml()).unwrap();
    let mut keys = Vec::new();
    leaves("", &defaults, &mut keys);
    assert!(keys.len() > 50, "{} keys", keys.len());
    let changes = keys
        .iter()
        .flat_map(|(key, original)| bad_values(original).into_iter().map(|v| (key.clone(), v)))
        .collect();
    (defaults, changes)
}

#[test]
fn every_key_with_every_kind_of_bad_value_is_refused_by_name_or_accepted() {
    let (defaults, changes) = all_changes();
    let mut problems = Vec::new();
    for (key, value) in &changes {
        let leaf = key.rsplit('.').next().unwrap();
        let mut doc = defaults.clone();
        set(&mut doc, key, value.clone());
        match check(&doc, key, value) {
            Err(e) if !e.contains(leaf) => {
                problems.push(format!("{key} = {value}: error without the key: {e}"));
            }
            Ok(()) if non_finite(value) => {
                problems.push(format!("{key} = {value}: accepted"));
            }
            _ => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: 512,
        failure_persistence: None,
        ..Default::default()
    })]

    /// Several bad values at once: the error names one of their keys, and nothing panics.
    #[test]
    fn several_bad_values_at_once_are_refused_naming_one_of_them(
        picks in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 1..5)
    ) {
        let (mut doc, changes) = all_changes();
        let mut chosen: Vec<&(String, toml::Value)> = Vec::new();
        for pick in picks.iter().map(|i| &changes[i.index(changes.len())]) {
            // Two picks of one key: the later value is the one the document holds.
            chosen.retain(|(key, _)| *key != pick.0);
            chosen.push(pick);
        }
        for (key, value) in &chosen {
            set(&mut doc, key, value.clone());
        }
        let named = chosen
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        match check(&doc, &named, &toml::Value::Boolean(true)) {
            Err(e) => proptest::prop_assert!(
                chosen.iter().any(|(k, _)| e.contains(k.rsplit('.').next().unwrap())),
                "{named}: {e}"
            ),
            Ok(()) => proptest::prop_assert!(
                !chosen.iter().any(|(_, v)| non_finite(v)),
                "{named}: accepted"
            ),
        }
    }
}

#[test]
fn unknown_keys_and_sections_are_refused_by_name() {
    let defaults: toml::Value = toml::from_str(&RunConfig::default().to_toml()).unwrap();
    let mut tables = vec![String::new()];
    let mut keys = Vec::new();
    leaves("", &defaults, &mut keys);
    for (key, _) in &keys {
        if let Some((table, _)) = key.rsplit_once('.')
            && !tables.contains(&table.to_string())
        {
            tables.push(table.to_string());
        }
    }
    for table in tables {
        let mut doc = defaults.clone();
        let key = if table.is_empty() {
            "epochz".to_string()
        } else {
            format!("{table}.epochz")
        };
        set(&mut doc, &key, toml::Value::Integer(3));
        let err = check(&doc, &key, &toml::Value::Integer(3)).unwrap_err();
        assert!(err.contains("epochz"), "{key}: {err}");
    }
}
