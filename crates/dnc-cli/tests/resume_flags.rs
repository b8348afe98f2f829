//! `dnc train --resume` keeps the run's configuration: `--baseline` adds the baseline stage to a
//! finished run made without it (training nothing that is done), and every flag that would
//! change the configuration is refused by name.

mod common;

use common::{DNC, config, dnc};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

/// Runs `dnc ARGS`, which must fail; its stderr.
fn refused(args: &[&str]) -> String {
    let out = Command::new(DNC).args(args).output().unwrap();
    assert!(!out.status.success(), "dnc {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every weights, features, checkpoint-state and served-images file of a run, with its bytes
/// and modification time: what training writes.
fn trained_files(dir: &Path, out: &mut BTreeMap<PathBuf, (Vec<u8>, SystemTime)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            trained_files(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "safetensors" || e == "npy")
            || path
                .file_name()
                .is_some_and(|n| n == "state.json" || n == "served.json")
        {
            let modified = entry.metadata().unwrap().modified().unwrap();
            out.insert(path.clone(), (std::fs::read(&path).unwrap(), modified));
        }
    }
}

fn metrics_stages(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).unwrap();
            line["stage"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

#[test]
fn resume_with_baseline_adds_the_stage_to_a_finished_run_and_retrains_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let run = dir.path().join("run");
    let run_s = run.display().to_string();
    dnc(&["train", "--config", &cfg, "--out", &run_s]);
    let err = refused(&["stage", "baseline", "--run", &run_s]);
    assert!(
        err.contains("no baseline stage") && err.contains("--resume --baseline"),
        "{err}"
    );

    let before = summary(&run);
    assert!(before["stages"].get("baseline").is_none());
    let mut files = BTreeMap::new();
    trained_files(&run, &mut files);
    let logged = metrics_stages(&run);
    dnc(&["train", "--out", &run_s, "--resume", "--baseline"]);

    let text = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let cfg_after: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(cfg_after["baseline"].as_bool(), Some(true));
    let after = summary(&run);
    for stage in [
        "base", "embed", "cluster", "experts", "distill", "baseline", "eval",
    ] {
        assert_eq!(after["stages"][stage]["done"], true, "{stage}");
    }
    // The baseline is evaluated; the other models' rows are the ones evaluated before.
    assert!(after["eval"]["baseline"]["knn_top1"].is_number(), "{after}");
    for (model, row) in before["eval"].as_object().unwrap() {
        assert_eq!(&after["eval"][model], row, "{model}");
    }
    // The diagnostics score the baseline too; the rest of them is what it was.
    let mut diagnostics = after["info"]["diagnostics"].clone();
    assert!(
        diagnostics["experts_ahead_of_baseline"].is_u64(),
        "{diagnostics}"
    );
    diagnostics
        .as_object_mut()
        .unwrap()
        .remove("experts_ahead_of_baseline");
    diagnostics["ceiling"]
        .as_object_mut()
        .unwrap()
        .remove("baseline");
    for cluster in diagnostics["clusters"].as_array_mut().unwrap() {
        assert!(cluster["baseline"].is_number(), "{cluster}");
        cluster.as_object_mut().unwrap().remove("baseline");
    }
    assert_eq!(diagnostics, before["info"]["diagnostics"]);
    // No weights, features or checkpoints of the earlier stages were written again, and the
    // only new metrics are the baseline's.
    let mut now = BTreeMap::new();
    trained_files(&run, &mut now);
    for (path, (bytes, modified)) in &files {
        let (b, m) = &now[path];
        assert!(
            b == bytes && m == modified,
            "{} was written again",
            path.display()
        );
    }
    assert!(now.keys().any(|p| p.starts_with(run.join("baseline"))));
    let new = &metrics_stages(&run)[logged.len()..];
    assert!(!new.is_empty());
    assert!(new.iter().all(|s| s == "baseline"), "{new:?}");

    // Again: nothing to do. Flags that describe the run's own configuration are accepted.
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/cifar10-mini");
    dnc(&[
        "train",
        "--config",
        &cfg,
        "--out",
        &run_s,
        "--resume",
        "--baseline",
        "--device",
        "cpu",
        "--data",
        &fixtures.display().to_string(),
        "--set",
        "base.epochs=1",
    ]);
    assert_eq!(metrics_stages(&run).len(), logged.len() + new.len());
    assert_eq!(summary(&run)["eval"], after["eval"]);
}

#[test]
fn flags_that_would_change_a_resumed_run_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let run = dir.path().join("run");
    let run_s = run.display().to_string();
    dnc(&["init", "--config", &cfg, "--out", &run_s]);
    let own = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let other = dir.path().join("other.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&other, text.replace("seed = 5", "seed = 6")).unwrap();
    let other_s = other.display().to_string();
    let elsewhere = dir.path().join("photos");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let elsewhere_s = elsewhere.display().to_string();

    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--out", &run_s, "--resume"];
        args.extend_from_slice(extra);
        refused(&args)
    };
    for (extra, named) in [
        (
            vec!["--set", "base.epochs=2"],
            ["--set base.epochs=2", "base.epochs"],
        ),
        (
            vec!["--config", &other_s],
            ["--config", "would change seed"],
        ),
        (vec!["--data", &elsewhere_s], ["--data", "data.train"]),
        (
            vec!["--init-from", "weights.safetensors"],
            ["--init-from", "init_from"],
        ),
        (
            vec!["--devices", "cpu,cpu"],
            ["--devices cpu,cpu", "experts.devices"],
        ),
    ] {
        let err = train(&extra);
        for word in named {
            assert!(err.contains(word), "{extra:?}: {err}");
        }
        assert!(err.contains("start a new run"), "{err}");
    }
    // With --config, every flag is read on that file; the message names them all.
    let err = train(&["--config", &cfg, "--set", "divide.kmeans.n_clusters=3"]);
    assert!(
        err.contains("--set divide.kmeans.n_clusters=3")
            && err.contains("divide.kmeans.n_clusters"),
        "{err}"
    );
    // Each refused flag is named, not only the first.
    let err = train(&["--set", "seed=9", "--set", "base.epochs=4"]);
    assert!(
        err.contains("seed=9") && err.contains("base.epochs=4"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("config.toml")).unwrap(),
        own
    );

    // A MoCLR run has no baseline stage to add.
    let moclr = dir.path().join("moclr");
    let moclr_s = moclr.display().to_string();
    dnc(&[
        "init",
        "--config",
        &cfg,
        "--out",
        &moclr_s,
        "--set",
        "method=\"moclr\"",
    ]);
    let err = refused(&["train", "--out", &moclr_s, "--resume", "--baseline"]);
    assert!(err.contains("MoCLR run"), "{err}");
}
