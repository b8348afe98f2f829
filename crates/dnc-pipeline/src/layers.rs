//! The values in force: a config document laid over the built-in defaults, key by key.
//!
//! A table in a config file or a `--set` names only the keys it changes; every key it leaves out
//! keeps the value in force below it (the built-in defaults, then the preset, then the
//! overrides, in that order). So `--set augment.view1.flip_p=0.0` on a CIFAR preset changes the
//! flip and nothing else: the view keeps its 32-pixel size, its jitter and its CIFAR
//! normalisation.
//!
//! Two tables do not simply merge:
//! - an `optimizer` table that names another `kind` than the one in force starts from that
//!   kind's own defaults (SGD and LARS have different learning rates, decays and keys);
//! - `experts.train`, when given, starts from the `[base]` settings in force, since it replaces
//!   them for the experts (`RunConfig::expert_train`).

use toml::{Table, Value};

/// `doc` laid over `defaults`: every key of `doc` replaces the value in force; a table of `doc`
/// under a table of `defaults` is laid over it recursively.
pub(crate) fn lay_over(defaults: &mut Table, doc: Table) {
    for (key, value) in doc {
        match (defaults.get_mut(&key), value) {
            (Some(Value::Table(in_force)), Value::Table(table))
                if !(key == "optimizer" && names_other_kind(in_force, &table)) =>
            {
                lay_over(in_force, table)
            }
            (_, value) => {
                defaults.insert(key, value);
            }
        }
    }
}

/// Whether `table` names a `kind` and the table in force names another (a table in force
/// without a `kind`, a preset's partial one, keeps its keys).
fn names_other_kind(in_force: &Table, table: &Table) -> bool {
    matches!((table.get("kind"), in_force.get("kind")), (Some(new), Some(old)) if new != old)
}

/// The run config's document with every key it leaves out taken from `defaults` (the
/// serialised built-in defaults).
pub(crate) fn with_defaults(defaults: Table, mut doc: Table) -> Table {
    // `experts.train` replaces `[base]` for the experts: a partial one inherits the base's keys.
    let experts_train = doc
        .get_mut("experts")
        .and_then(Value::as_table_mut)
        .and_then(|experts| experts.remove("train"));
    let mut merged = defaults;
    lay_over(&mut merged, doc);
    if let Some(train) = experts_train {
        let value = match (merged.get("base"), train) {
            (Some(Value::Table(base)), Value::Table(train)) => {
                let mut start = base.clone();
                lay_over(&mut start, train);
                Value::Table(start)
            }
            // Not a table: left as written, for the reader to refuse with the key's name.
            (_, other) => other,
        };
        if let Some(Value::Table(experts)) = merged.get_mut("experts") {
            experts.insert("train".into(), value);
        }
    }
    merged
}

/// The dotted keys whose values differ between two config documents, in key order, depth
/// first; a key present on one side only counts as changed.
pub fn changed_keys(a: &Value, b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    differences("", a, b, &mut out);
    out
}

fn differences(prefix: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Table(a), Value::Table(b)) => {
            let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let key = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                match (a.get(name), b.get(name)) {
                    (Some(x), Some(y)) => differences(&key, x, y, out),
                    _ => out.push(key),
                }
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

/// The value at dotted `key` of a document, if any.
pub(crate) fn value_at<'a>(doc: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(doc, |node, part| node.get(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_partial_table_keeps_every_key_it_leaves_out() {
        let mut in_force = table("[a]\nx = 1\ny = 2\n[a.inner]\nz = 3\nw = 4\n");
        lay_over(&mut in_force, table("[a]\ny = 5\n[a.inner]\nw = 6\n"));
        assert_eq!(
            in_force,
            table("[a]\nx = 1\ny = 5\n[a.inner]\nz = 3\nw = 6\n")
        );
    }

    #[test]
    fn a_value_of_another_shape_replaces_the_one_in_force() {
        let mut in_force = table("[a]\nx = 1\n");
        lay_over(&mut in_force, table("a = 7\nb = [1, 2]\n"));
        assert_eq!(in_force, table("a = 7\nb = [1, 2]\n"));
    }

    #[test]
    fn an_optimizer_of_another_kind_starts_afresh() {
        let mut in_force = table("[optimizer]\nkind = \"sgd\"\nbase_lr = 0.01\nnesterov = false\n");
        lay_over(
            &mut in_force,
            table("[optimizer]\nkind = \"lars\"\neta = 0.02\n"),
        );
        assert_eq!(
            in_force,
            table("[optimizer]\nkind = \"lars\"\neta = 0.02\n")
        );
        // The same kind, or none named, merges.
        let mut in_force = table("[optimizer]\nkind = \"sgd\"\nbase_lr = 0.01\n");
        lay_over(&mut in_force, table("[optimizer]\nbase_lr = 0.5\n"));
        assert_eq!(
            in_force,
            table("[optimizer]\nkind = \"sgd\"\nbase_lr = 0.5\n")
        );
    }

    #[test]
    fn experts_train_starts_from_the_base_in_force() {
        let defaults = table("[base]\nepochs = 20\nbatch_size = 128\n[experts]\nepochs = 3\n");
        let doc = table("[base]\nbatch_size = 64\n[experts.train]\nepochs = 9\n");
        let merged = with_defaults(defaults, doc);
        assert_eq!(
            merged["experts"]["train"],
            Value::Table(table("epochs = 9\nbatch_size = 64\n"))
        );
        assert_eq!(merged["experts"]["epochs"].as_integer(), Some(3));
    }
}
