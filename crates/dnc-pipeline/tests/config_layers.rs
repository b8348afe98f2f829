//! One override changes one value: a partial table, in a preset or a `--set`, keeps every key it
//! does not name at the value in force (built-in defaults, then the preset, then the overrides).

mod common;

use common::leaves;
use dnc_pipeline::{RunConfig, apply_overrides};
use std::path::{Path, PathBuf};

fn load(text: &str, overrides: &[String]) -> RunConfig {
    let mut doc: toml::Value = toml::from_str(text).unwrap();
    apply_overrides(&mut doc, overrides).unwrap();
    RunConfig::from_value(doc).unwrap_or_else(|e| panic!("{overrides:?}: {e}"))
}

fn presets() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no presets in {}", dir.display());
    paths
}

/// For every preset (and an empty file) and every key of every section: `--set key=<the value
/// in force>` leaves the whole config as it was. A `--set` that reset its table's other keys to
/// their struct defaults would change some other value.
#[test]
fn setting_any_key_to_its_value_in_force_changes_nothing() {
    let mut texts: Vec<(String, String)> = vec![("(empty)".into(), String::new())];
    for path in presets() {
        texts.push((
            path.display().to_string(),
            std::fs::read_to_string(&path).unwrap(),
        ));
    }
    for (origin, text) in texts {
        let in_force = load(&text, &[]);
        let mut keys = Vec::new();
        leaves("", &toml::Value::try_from(&in_force).unwrap(), &mut keys);
        let sections: std::collections::BTreeSet<&str> = keys
            .iter()
            .map(|(k, _)| k.split('.').next().unwrap())
            .collect();
        assert!(sections.len() >= 8, "{origin}: only {sections:?}");
        for (key, value) in &keys {
            let again = load(&text, &[format!("{key}={value}")]);
            assert_eq!(
                again, in_force,
                "{origin}: --set {key}={value} changed other keys"
            );
        }
    }
}

/// The case users meet first: no flip on traffic signs, text or digits.
#[test]
fn turning_off_the_flip_keeps_the_rest_of_the_presets_view() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/cifar10-tiny.toml"),
    )
    .unwrap();
    let before = load(&text, &[]);
    let after = load(&text, &["augment.view1.flip_p=0.0".into()]);
    assert_eq!(after.augment.view1.flip_p, 0.0);
    let mut expected = before.clone();
    expected.augment.view1.flip_p = 0.0;
    assert_eq!(after, expected);
    assert_eq!(after.augment.view1.size, 32);
}

/// A partial table in a config file inherits as a `--set` does, in every section that has
/// tables, and the later layer wins.
#[test]
fn a_partial_table_in_a_file_inherits_the_defaults_and_the_override_wins() {
    let defaults = RunConfig::default();
    let cfg = load(
        "[augment.view2]\nsolarize_p = 0.3\n\
         [data]\ntrain_limit = 100\n\
         [model.projector]\nout = 64\n\
         [base.optimizer]\nbase_lr = 0.5\n\
         [divide.kmeans]\nn_clusters = 7\n\
         [experts]\nepochs = 4\n\
         [distill.optimizer]\nmomentum = 0.8\n\
         [eval.knn]\nk = 20\n",
        &["base.optimizer.base_lr=0.25".into()],
    );
    let mut expected = defaults.clone();
    expected.augment.view2.solarize_p = 0.3;
    expected.data.train_limit = 100;
    expected.model.projector.out = 64;
    expected.divide.kmeans.n_clusters = 7;
    expected.experts.epochs = 4;
    expected.eval.knn.k = 20;
    let (base_opt, distill_opt) = (
        toml::Value::try_from(&defaults.base.optimizer).unwrap(),
        toml::Value::try_from(&defaults.distill.optimizer).unwrap(),
    );
    let with = |mut v: toml::Value, key: &str, x: toml::Value| {
        v.as_table_mut().unwrap().insert(key.into(), x);
        v.try_into().unwrap()
    };
    expected.base.optimizer = with(base_opt, "base_lr", toml::Value::Float(0.25));
    expected.distill.optimizer = with(distill_opt, "momentum", toml::Value::Float(0.8));
    assert_eq!(cfg, expected);
}

#[test]
fn an_optimizer_of_another_kind_takes_that_kinds_defaults() {
    let sgd = "[base.optimizer]\nkind = \"sgd\"\nbase_lr = 0.05\nnesterov = true\n";
    let cfg = load(sgd, &["base.optimizer.kind=\"lars\"".into()]);
    assert_eq!(
        cfg.base.optimizer,
        dnc_engine::OptimizerConfig::Lars(Default::default())
    );
}

#[test]
fn a_partial_experts_train_starts_from_the_base() {
    let cfg = load(
        "[base]\nbatch_size = 64\nema_momentum = 0.98\n[experts.train]\nepochs = 3\n",
        &["experts.train.optimizer.base_lr=0.2".into()],
    );
    let train = cfg.experts.train.as_ref().unwrap();
    assert_eq!(train.batch_size, 64);
    assert_eq!(train.ema_momentum, 0.98);
    assert_eq!(train.epochs, 3);
    assert_eq!(train.optimizer.base_lr(), 0.2);
}

#[test]
fn a_bad_value_in_a_partial_table_names_its_key() {
    let mut doc: toml::Value = toml::from_str("[augment.view1]\nsize = \"big\"\n").unwrap();
    apply_overrides(&mut doc, &[]).unwrap();
    let err = RunConfig::from_value(doc).unwrap_err();
    assert!(err.contains("augment.view1.size"), "{err}");
    let err = RunConfig::from_toml("[augment.view1]\nsharpness = 1\n").unwrap_err();
    assert!(
        err.contains("sharpness") && err.contains("augment.view1"),
        "{err}"
    );
}

#[test]
fn a_run_folder_written_before_cache_resized_still_reads() {
    let cfg = RunConfig::from_toml("[data]\ncache_decoded = true\n").unwrap();
    assert!(cfg.data.cache_resized);
}

#[test]
fn a_kind_set_on_a_table_without_one_keeps_the_tables_keys() {
    let cfg = load(
        "[base.optimizer]\nbase_lr = 0.3\n",
        &["base.optimizer.kind=\"lars\"".into()],
    );
    assert_eq!(cfg.base.optimizer.base_lr(), 0.3);
}
