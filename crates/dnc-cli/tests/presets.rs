//! Every preset in `configs/` trains: each runs every stage on the fixtures with its sizes shrunk
//! (`--set`: sixteen images, one epoch per stage, 16-pixel views, narrow heads), keeping its
//! architecture, optimisers, augmentations and options, so that a preset that no longer loads,
//! validates or trains fails here.

mod common;

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The overrides that shrink a preset to seconds on the CPU.
const SHRINK: &[&str] = &[
    "device=\"cpu\"",
    "baseline=false",
    "data.train_limit=16",
    "data.test_limit=10",
    "data.subset=\"balanced\"",
    "data.workers=1",
    "augment.view1.size=16",
    "augment.view2.size=16",
    "model.projector.hidden=16",
    "model.projector.out=8",
    "base.epochs=1",
    "base.batch_size=8",
    "divide.kmeans.n_clusters=2",
    "experts.epochs=1",
    "experts.small_cluster=\"merge\"",
    "distill.epochs=1",
    "distill.batch_size=8",
    "distill.warmup_epochs=0.0",
    "eval.batch_size=16",
    "eval.knn.k=5",
    "eval.linear.epochs=1",
    "eval.bn_adapted_floor=false",
];

fn presets() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo().join("configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
}

fn train_shrunk(preset: &Path, out: &Path) {
    let fixtures = repo().join("fixtures/cifar10-mini");
    let mut args: Vec<String> = vec![
        "train".into(),
        "--config".into(),
        preset.display().to_string(),
        "--data".into(),
        fixtures.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    for set in SHRINK {
        args.push("--set".into());
        args.push((*set).into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::dnc(&args);
}

#[test]
fn every_preset_trains_every_stage_when_shrunk() {
    let presets = presets();
    assert!(presets.len() >= 8, "{presets:?}");
    let dir = tempfile::tempdir().unwrap();
    for preset in &presets {
        let name = preset.file_stem().unwrap().to_string_lossy().to_string();
        let out = dir.path().join(&name);
        train_shrunk(preset, &out);
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary["stages"]["eval"]["done"], true, "{name}");
        let model = if summary["stages"].get("distill").is_some() {
            "dnc"
        } else {
            "base"
        };
        let knn = summary["eval"][model]["knn_top1"].as_f64();
        assert!(
            knn.is_some_and(|k| (0.0..=1.0).contains(&k)),
            "{name}: {summary}"
        );
        // What the preset chose and the shrink left alone is what ran.
        let text = std::fs::read_to_string(preset).unwrap();
        let written = std::fs::read_to_string(out.join("config.toml")).unwrap();
        let arch = |t: &str| {
            let doc: toml::Value = toml::from_str(t).unwrap();
            doc.get("model")
                .and_then(|m| m.get("backbone"))
                .and_then(|b| b.get("arch"))
                .and_then(|a| a.as_str())
                .map(str::to_string)
        };
        if let Some(chosen) = arch(&text) {
            assert_eq!(arch(&written), Some(chosen), "{name}");
        }
    }
}
