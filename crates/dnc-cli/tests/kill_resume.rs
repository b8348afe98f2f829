//! A run killed (SIGKILL) inside the experts stage resumes with `--resume` and finishes with the
//! same summary as an uninterrupted run, its killed attempt's time counted.

mod common;

use common::{DNC, config, dnc, holds_checkpoint, kill_when, stage};
use std::path::Path;
use std::process::Command;

fn has_checkpoint(run: &Path) -> bool {
    let experts = run.join("experts");
    let Ok(entries) = std::fs::read_dir(&experts) else {
        return false;
    };
    entries
        .flatten()
        .any(|e| holds_checkpoint(&e.path().join("checkpoints")))
}

/// The newest modification time (seconds since the Unix epoch) of the files and folders under
/// `paths`.
fn newest_write(paths: &[std::path::PathBuf]) -> f64 {
    let mut newest = 0.0f64;
    let mut stack: Vec<std::path::PathBuf> = paths.to_vec();
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let t = meta.modified().unwrap();
        newest = newest.max(
            t.duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64(),
        );
        if meta.is_dir() {
            stack.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path()),
            );
        }
    }
    newest
}

fn eval_of(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("summary.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["eval"].clone()
}

#[test]
fn killed_during_experts_resumes_to_the_same_summary() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (a_s, b_s) = (a.display().to_string(), b.display().to_string());
    for run in [&a_s, &b_s] {
        dnc(&["init", "--config", &cfg, "--out", run]);
        for s in ["base", "embed", "cluster"] {
            stage(run, s, false);
        }
    }
    // Uninterrupted.
    for s in ["experts", "distill", "eval"] {
        stage(&a_s, s, false);
    }
    // Killed as soon as an expert has written a checkpoint, then resumed.
    let mut child = Command::new(DNC)
        .args(["stage", "experts", "--run", &b_s])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_when(&mut child, || has_checkpoint(&b));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["stages"]["experts"]["done"], false,
        "the kill came too late"
    );
    // The killed attempt's time is counted on resume: from its start to its last write. Moved
    // 1,000 s back, its start makes that span stand out from the resumed attempt's own seconds.
    let started = summary["stages"]["experts"]["attempt_started"]
        .as_f64()
        .expect("the attempt's start is recorded");
    let mut moved = summary.clone();
    moved["stages"]["experts"]["attempt_started"] = (started - 1000.0).into();
    std::fs::write(b.join("summary.json"), moved.to_string()).unwrap();
    // The killed process's last write; the idle time between it and the resume is not counted.
    let killed = newest_write(&[b.join("metrics.jsonl"), b.join("experts")]) - started;
    std::thread::sleep(std::time::Duration::from_secs(3));
    let resumed = std::time::Instant::now();
    stage(&b_s, "experts", true);
    let resumed = resumed.elapsed().as_secs_f64();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("summary.json")).unwrap()).unwrap();
    let experts = &summary["stages"]["experts"];
    assert!(experts.get("attempt_started").is_none(), "{experts}");
    let counted = experts["seconds"].as_f64().unwrap();
    assert!(
        (1000.0 + killed..1000.0 + killed + resumed + 1.0).contains(&counted),
        "{counted} s counted: 1000 + {killed} s killed + {resumed} s resumed"
    );
    for s in ["distill", "eval"] {
        stage(&b_s, s, false);
    }
    assert_eq!(eval_of(&a), eval_of(&b));
    for name in ["expert-0", "expert-1"] {
        let wa = std::fs::read(a.join(format!("experts/{name}/model.safetensors"))).unwrap();
        let wb = std::fs::read(b.join(format!("experts/{name}/model.safetensors"))).unwrap();
        assert!(wa == wb, "{name} weights differ after the resume");
    }
}

#[test]
fn unknown_config_keys_fail_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[base]\nepochz = 3\n").unwrap();
    let out = Command::new(DNC)
        .args(["init", "--config", &path.display().to_string(), "--out"])
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("epochz") && err.contains("bad.toml"), "{err}");
}

#[test]
fn a_run_directory_moved_elsewhere_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (before, after) = (dir.path().join("before"), dir.path().join("moved/after"));
    let before_s = before.display().to_string();
    dnc(&["init", "--config", &cfg, "--out", &before_s]);
    for s in ["base", "embed"] {
        stage(&before_s, s, false);
    }
    std::fs::create_dir_all(after.parent().unwrap()).unwrap();
    std::fs::rename(&before, &after).unwrap();
    let after_s = after.display().to_string();
    dnc(&["train", "--config", &cfg, "--out", &after_s, "--resume"]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(after.join("summary.json")).unwrap())
            .unwrap();
    for s in ["base", "embed", "cluster", "experts", "distill", "eval"] {
        assert_eq!(summary["stages"][s]["done"], true, "{s}");
    }
    assert!(after.join("report.md").is_file());
}
