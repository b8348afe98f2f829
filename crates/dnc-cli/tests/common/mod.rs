//! What the `dnc` binary's tests share: a small run configuration on the fixtures, and running
//! `dnc` commands that must succeed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub(crate) const DNC: &str = env!("CARGO_BIN_EXE_dnc");

/// A tiny DnC run on 200 fixture images (K = 2), written to `root/config.toml`; its path.
pub(crate) fn config(root: &Path) -> String {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/cifar10-mini");
    let text = format!(
        r#"
name = "resume"
seed = 5
method = "dnc"
[data]
root = "{}"
train_limit = 200
test_limit = 100
cache_resized = true
workers = 1
[model.backbone]
arch = "tiny"
tiny_widths = [8, 16]
[model.projector]
hidden = 32
out = 16
final_bn = false
[base]
epochs = 1
batch_size = 32
checkpoint_every = 1
[base.optimizer]
kind = "sgd"
base_lr = 0.05
[divide.kmeans]
n_clusters = 2
[experts]
epochs = 6
init = "scratch"
[distill]
epochs = 1
batch_size = 32
[eval]
batch_size = 100
bn_adapted_floor = false
[eval.knn]
k = 20
[eval.linear]
epochs = 3
"#,
        data.display()
    );
    let path = root.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Runs `dnc ARGS`, failing the test with its stderr when it fails.
pub(crate) fn dnc(args: &[&str]) {
    let out = Command::new(DNC).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "dnc {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `dnc stage NAME --run RUN [--resume]`.
pub(crate) fn stage(run: &str, name: &str, resume: bool) {
    let mut args = vec!["stage", name, "--run", run];
    if resume {
        args.push("--resume");
    }
    dnc(&args);
}

/// Whether `dir` holds a checkpoint (`step-*`).
pub(crate) fn holds_checkpoint(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| {
        d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("step-")))
    })
}

/// Kills `child` (SIGKILL) as soon as `ready()` holds, polling every 2 ms; fails the test if the
/// child ends first or nothing happens within 5 minutes.
pub(crate) fn kill_when(child: &mut Child, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the process finished before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Copies the folder tree `from` into `to` (a run directory, to train it two ways).
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
