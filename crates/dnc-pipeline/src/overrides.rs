//! `--set key.path=value` overrides applied to a TOML config before it is parsed.
//!
//! Values are parsed as TOML (`3`, `0.5`, `true`, `"text"`, `[1, 2]`); a bare word that is not
//! valid TOML is taken as a string, so `--set model.backbone.arch=resnet18` works unquoted.

use crate::error::PipelineError;
use toml::Value;

/// Applies `key.path=value` assignments to a parsed TOML document.
pub fn apply_overrides(doc: &mut Value, assignments: &[String]) -> Result<(), PipelineError> {
    for assignment in assignments {
        let (key, raw) = assignment.split_once('=').ok_or_else(|| {
            PipelineError::bad_config(assignment, "", "an override must look like key.path=value")
        })?;
        let key = key.trim();
        let value = parse_value(raw.trim());
        set_path(doc, key, value)?;
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
