//! `--set key.path=value` overrides applied to a TOML config before it is parsed.
//!
//! Values are parsed as TOML (`3`, `0.5`, `true`, `"text"`, `[1, 2]`); a bare word that is not
//! valid TOML is taken as a string, so `--set model.backbone.arch=resnet18` works unquoted.

use crate::error::PipelineError;
use toml::Value;

/// Applies `key.path=value` assignments to a parsed TOML document, as one layer over it: the
/// assignments are gathered into a table of their own, then laid over the document key by key
/// (so an `optimizer.kind` that changes starts that table from the new kind's defaults, in
/// whatever order its keys are set).
pub fn apply_overrides(doc: &mut Value, assignments: &[String]) -> Result<(), PipelineError> {
    let mut layer = Value::Table(toml::Table::new());
    for assignment in assignments {
        let (key, raw) = assignment.split_once('=').ok_or_else(|| {
            PipelineError::bad_config(assignment, "", "an override must look like key.path=value")
        })?;
        let key = key.trim();
        let value = parse_value(raw.trim());
        check_path(doc, key)?;
        set_path(&mut layer, key, value)?;
    }
    let (Value::Table(doc), Value::Table(layer)) = (doc, layer) else {
        return Err(PipelineError::bad_config(
            "",
            "",
            "a config document is a TOML table",
        ));
    };
    crate::layers::lay_over(doc, layer);
    Ok(())
}

/// Fails when a component of `key` other than the last names a value of `doc` that is not a
/// table.
fn check_path(doc: &Value, key: &str) -> Result<(), PipelineError> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = doc;
    for part in &parts[..parts.len().saturating_sub(1)] {
        match node.get(part) {
            Some(next @ Value::Table(_)) => node = next,
            Some(_) => {
                return Err(PipelineError::bad_config(
                    key,
                    "",
                    format!("`{part}` is inside a value that is not a table"),
                ));
            }
            None => return Ok(()),
        }
    }
    Ok(())
}

fn parse_value(raw: &str) -> Value {
    let wrapped = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&wrapped) {
        Ok(mut table) => table
            .remove("v")
            .unwrap_or_else(|| Value::String(raw.into())),
        Err(_) => Value::String(raw.to_string()),
    }
}

fn set_path(doc: &mut Value, key: &str, value: Value) -> Result<(), PipelineError> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(PipelineError::bad_config(
            key,
            "",
            "empty component in the key path",
        ));
    }
    let mut node = doc;
    for part in &parts[..parts.len() - 1] {
        let table = node.as_table_mut().ok_or_else(|| {
            PipelineError::bad_config(
                key,
                "",
                format!("`{part}` is inside a value that is not a table"),
            )
        })?;
        node = table
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(toml::Table::new()));
    }
    let table = node.as_table_mut().ok_or_else(|| {
        PipelineError::bad_config(key, "", "the parent of this key is not a table")
    })?;
    table.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_nested_values_with_toml_types() {
        let mut doc: Value = toml::from_str("[base]\nepochs = 3\n").unwrap();
        apply_overrides(
            &mut doc,
            &[
                "base.epochs=7".into(),
                "model.backbone.arch=resnet18".into(),
                "seed = 4".into(),
                "eval.linear_probe=false".into(),
            ],
        )
        .unwrap();
        assert_eq!(doc["base"]["epochs"].as_integer(), Some(7));
        assert_eq!(doc["model"]["backbone"]["arch"].as_str(), Some("resnet18"));
        assert_eq!(doc["seed"].as_integer(), Some(4));
        assert_eq!(doc["eval"]["linear_probe"].as_bool(), Some(false));
    }

    #[test]
    fn overrides_form_one_layer_whatever_their_order() {
        let preset = "[base.optimizer]\nkind = \"sgd\"\nnesterov = true\n";
        for order in [
            ["base.optimizer.base_lr=1.2", "base.optimizer.kind=\"lars\""],
            ["base.optimizer.kind=\"lars\"", "base.optimizer.base_lr=1.2"],
        ] {
            let mut doc: Value = toml::from_str(preset).unwrap();
            let sets: Vec<String> = order.iter().map(|s| s.to_string()).collect();
            apply_overrides(&mut doc, &sets).unwrap();
            let expected: Value =
                toml::from_str("[base.optimizer]\nkind = \"lars\"\nbase_lr = 1.2\n").unwrap();
            assert_eq!(doc, expected, "{order:?}");
        }
    }

    #[test]
    fn malformed_overrides_name_themselves() {
        let mut doc: Value = toml::from_str("seed = 1\n").unwrap();
        let err = apply_overrides(&mut doc, &["seed".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("seed"), "{err}");
        let err = apply_overrides(&mut doc, &["seed.x=1".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("seed.x"), "{err}");
    }
}
