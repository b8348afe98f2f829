//! `dnc mix` writes one list file of several sources, each whole or a subset; `dnc adopt` takes
//! a finished stage from another run by the command line and refuses one trained otherwise.

mod common;

use common::DNC;
use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/cifar10-mini")
}

#[test]
fn mix_lists_every_source_with_its_subset() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("lists/mix.txt");
    let train = fixtures().join("train");
    let test = fixtures().join("test");
    common::dnc(&[
        "mix",
        "--source",
        &format!("{}=30", train.display()),
        "--source",
        &test.display().to_string(),
        "--out",
        &list.display().to_string(),
    ]);
    let text = std::fs::read_to_string(&list).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let test_count = walk(&test);
    assert_eq!(lines.len(), 30 + test_count);
    assert!(lines.iter().all(|l| std::path::Path::new(l).is_absolute()));
    assert!(
        lines.iter().all(|l| std::path::Path::new(l).is_file()),
        "{text}"
    );
    // The subset of 30 comes from every one of the ten classes.
    let classes: std::collections::BTreeSet<&str> = lines[..30]
        .iter()
        .map(|l| l.rsplit('/').nth(1).unwrap())
        .collect();
    assert_eq!(classes.len(), 10, "{classes:?}");

    // A source named by a relative path lists the same absolute paths.
    let relative = dir.path().join("relative.txt");
    let status = Command::new(DNC)
        .current_dir(fixtures())
        .args(["mix", "--source", "test", "--out"])
        .arg(&relative)
        .status()
        .unwrap();
    assert!(status.success());
    let listed = std::fs::read_to_string(&relative).unwrap();
    assert_eq!(listed.lines().collect::<Vec<_>>(), lines[30..].to_vec());

    let out = Command::new(DNC)
        .args(["mix", "--source"])
        .arg(format!("{}=many", train.display()))
        .arg("--out")
        .arg(&list)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("many"), "{err}");
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() { walk(&p) } else { 1 }
        })
        .sum()
}

#[test]
fn adopt_takes_the_base_and_refuses_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(dir.path());
    let (donor, taker, other) = (
        dir.path().join("donor"),
        dir.path().join("taker"),
        dir.path().join("other"),
    );
    let path = |p: &PathBuf| p.display().to_string();
    common::dnc(&["init", "--config", &config, "--out", &path(&donor)]);
    common::stage(&path(&donor), "base", false);
    common::dnc(&["init", "--config", &config, "--out", &path(&taker)]);
    common::dnc(&[
        "adopt",
        "--run",
        &path(&taker),
        "--from",
        &path(&donor),
        "--stages",
        "base",
    ]);
    let summary = std::fs::read_to_string(taker.join("summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["stages"]["base"]["done"], true);
    assert!(taker.join("base").is_dir());

    common::dnc(&[
        "init",
        "--config",
        &config,
        "--out",
        &path(&other),
        "--set",
        "base.epochs=2",
    ]);
    let out = Command::new(DNC)
        .args([
            "adopt",
            "--run",
            &path(&other),
            "--from",
            &path(&donor),
            "--stages",
            "base",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("base.epochs"),
        "{err}"
    );
}

#[test]
fn a_local_init_from_file_is_kept_by_its_absolute_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path());
    std::fs::write(dir.path().join("weights.safetensors"), b"not read by init").unwrap();
    let status = Command::new(DNC)
        .current_dir(dir.path())
        .args(["init", "--config", &cfg, "--out", "run"])
        .args([
            "--init-from",
            "weights.safetensors",
            "--set",
            "base.epochs=0",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let saved = std::fs::read_to_string(dir.path().join("run/config.toml")).unwrap();
    let want = std::fs::canonicalize(dir.path().join("weights.safetensors")).unwrap();
    let line = format!(
        "init_from = {}",
        toml::Value::String(want.display().to_string())
    );
    assert!(saved.contains(&line), "{saved}");
}
