//! Data-parallel training over MPI (`mpirun -n 2 dnc stage base`), against one process: the
//! same base model within float tolerance, one writer of the run's files, and a run killed at
//! two processes resumed by one. Needs the `mpi` feature and Open MPI's `mpirun`.

#![cfg(feature = "mpi")]

mod common;

use common::{DNC, config, copy_dir, dnc, holds_checkpoint, stage};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// `mpirun -n 2 dnc ARGS`, one thread per rank (two ranks share this machine's cores).
fn mpirun(args: &[&str]) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args([
        "-n",
        "2",
        "--oversubscribe",
        "-x",
        "RAYON_NUM_THREADS=1",
        DNC,
    ])
    .args(args)
    .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
    .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    cmd
}

fn checked(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every tensor of a safetensors file, by name, as f32 values.
fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let map = candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = map
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[track_caller]
fn assert_close_models(a: &Path, b: &Path, tol: f32) {
    let (ta, tb) = (tensors(a), tensors(b));
    assert_eq!(ta.len(), tb.len());
    let mut worst = 0f32;
    for ((name, va), (name_b, vb)) in ta.iter().zip(&tb) {
        assert_eq!(name, name_b);
        for (x, y) in va.iter().zip(vb) {
            let d = (x - y).abs() / (1.0 + y.abs());
            worst = worst.max(d);
            assert!(d <= tol, "{name}: {x} vs {y}");
        }
    }
    assert!(
        worst > 0.0 || ta.is_empty(),
        "bit-identical: was the second run trained at all?"
    );
}

fn base_steps(run: &Path) -> Vec<u64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["stage"] == "base" && r["kind"] == "step")
        .map(|r| r["step"].as_u64().unwrap())
        .collect()
}

/// Sends SIGTERM to `child` (mpirun passes it on to the ranks) once `ready()` holds.
fn terminate_when(child: &mut Child, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    child.wait().unwrap();
}

#[test]
fn two_processes_train_the_base_model_of_one_and_resume_at_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let runs: Vec<String> = ["one", "two", "killed"]
        .iter()
        .map(|n| dir.path().join(n).display().to_string())
        .collect();
    for run in &runs {
        dnc(&["init", "--config", &cfg, "--out", run]);
    }
    stage(&runs[0], "base", false);

    // Two ranks, 16 images each per batch of 32.
    let out = mpirun(&["stage", "base", "--run", &runs[1]])
        .output()
        .unwrap();
    checked(out, "mpirun -n 2 dnc stage base");
    let (one, two) = (Path::new(&runs[0]), Path::new(&runs[1]));
    // Six steps: the two differ only in the order of float sums (about 1e-7).
    assert_close_models(
        &one.join("base/model.safetensors"),
        &two.join("base/model.safetensors"),
        1e-5,
    );
    // Rank 0 alone wrote the metrics (no step twice), the summary, and the run's log.
    assert_eq!(base_steps(two), base_steps(one));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(two.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["stages"]["base"]["done"], true);
    assert_eq!(summary["info"]["base_training"]["processes"], 2);
    assert!(two.join("log.rank-1.txt").is_file());

    // A stage that does not train is refused under the launcher.
    let out = mpirun(&["stage", "embed", "--run", &runs[1]])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("runs in one process"));

    // Killed at two processes after its first checkpoint, resumed by one.
    let killed = Path::new(&runs[2]);
    let mut child = mpirun(&["stage", "base", "--run", &runs[2]])
        .spawn()
        .unwrap();
    let ckpt = killed.join("base/checkpoints");
    terminate_when(&mut child, || holds_checkpoint(&ckpt));
    stage(&runs[2], "base", true);
    assert_close_models(
        &one.join("base/model.safetensors"),
        &killed.join("base/model.safetensors"),
        1e-5,
    );
    assert_eq!(base_steps(killed), base_steps(one));
}

#[test]
fn experts_and_distillation_train_data_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let (one_s, two_s) = (one.display().to_string(), two.display().to_string());
    dnc(&["init", "--config", &cfg, "--out", &one_s]);
    for s in ["base", "embed", "cluster"] {
        stage(&one_s, s, false);
    }
    copy_dir(&one, &two);
    for s in ["experts", "distill"] {
        stage(&one_s, s, false);
        let out = mpirun(&["stage", s, "--run", &two_s]).output().unwrap();
        checked(out, &format!("mpirun -n 2 dnc stage {s}"));
    }
    // Experts: synchronised statistics, so the models of one process up to the order of float
    // sums. Over an expert's 18 steps of contrastive training those differences grow (the
    // losses agree to 1e-6 after 3 steps and 2e-4 after 18), hence the wider tolerance than
    // the base model's 6 steps.
    for k in 0..2 {
        let model = format!("experts/expert-{k}/model.safetensors");
        assert_close_models(&one.join(&model), &two.join(&model), 5e-3);
        // Each rank recorded the images of its own shares; together, those of one process.
        let served = |run: &Path, file: &str| -> Vec<u64> {
            let path = run.join(format!("experts/expert-{k}/{file}"));
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let mut ids: Vec<u64> = v["indices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            ids.sort_unstable();
            ids
        };
        let mut both = [
            served(&two, "served.json"),
            served(&two, "served.rank-1.json"),
        ]
        .concat();
        both.sort_unstable();
        both.dedup();
        assert_eq!(both, served(&one, "served.json"));
    }
    // Distillation (per-rank statistics) trains and writes its student once.
    assert!(two.join("distill/model.safetensors").is_file());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(two.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["stages"]["distill"]["done"], true);
}
