//! Helpers of the integration tests: a tiny but complete run configuration on the repository's
//! fixtures, and the leaves of a TOML document.

// Each test file uses some of these.
#![allow(dead_code)]

use std::path::PathBuf;

/// The fixtures' CIFAR-10 subset (train/ and test/).
pub(crate) fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/cifar10-mini")
}

/// The tiny configuration without a baseline or the BN-adapted floor (the stages that tests of
/// other things need not train), then `edit`.
pub(crate) fn tiny(edit: impl Fn(&mut dnc_pipeline::RunConfig)) -> dnc_pipeline::RunConfig {
    let mut cfg = dnc_pipeline::RunConfig::from_toml(&tiny_config_toml()).unwrap();
    cfg.baseline = false;
    cfg.eval.bn_adapted_floor = false;
    edit(&mut cfg);
    cfg
}

/// Every stage, seconds each: 200 train / 100 test images, a 3-stage conv net, K = 2.
pub(crate) fn tiny_config_toml() -> String {
    format!(
        r#"
name = "e2e"
seed = 3
device = "cpu"
method = "dnc"
baseline = true

[data]
root = "{root}"
train_limit = 200
test_limit = 100
cache_resized = true
workers = 1

[model.backbone]
arch = "tiny"
tiny_widths = [8, 16, 32]

[model.projector]
hidden = 32
out = 16
final_bn = false

[base]
epochs = 2
batch_size = 32
checkpoint_every = 2
log_every = 2

[base.optimizer]
kind = "sgd"
base_lr = 0.05

[divide.kmeans]
n_clusters = 2

[experts]
epochs = 2
init = "scratch"

[distill]
epochs = 1
batch_size = 32
checkpoint_every = 2

[distill.optimizer]
kind = "sgd"
base_lr = 0.05

[eval]
batch_size = 100

[eval.knn]
k = 20

[eval.linear]
epochs = 5
"#,
        root = fixtures().display()
    )
}

/// Dotted paths of every leaf value of a TOML table (arrays are leaves).
pub(crate) fn leaves(prefix: &str, value: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&path, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}
