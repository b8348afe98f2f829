//! Experts as separate jobs on one run directory (`dnc stage experts --expert K | --shard I/N`):
//! jobs started together finish with the weights of the sequential stage, a killed job resumes,
//! `dnc status` tells where each expert stands, and distillation names the experts it lacks.

mod common;

use common::{DNC, config, copy_dir, dnc, holds_checkpoint, kill_when, stage};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn status(run: &str) -> String {
    let out = Command::new(DNC)
        .args(["status", "--run", run])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn expert_weights(run: &Path, k: usize) -> Vec<u8> {
    std::fs::read(run.join(format!("experts/expert-{k}/model.safetensors"))).unwrap()
}

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

fn checked(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn expert_jobs_share_a_run_and_match_the_sequential_stage() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let seq = dir.path().join("sequential");
    let seq_s = seq.display().to_string();
    dnc(&["init", "--config", &cfg, "--out", &seq_s]);
    for s in ["base", "embed", "cluster"] {
        stage(&seq_s, s, false);
    }
    let (jobs, one, killed) = (
        dir.path().join("jobs"),
        dir.path().join("one"),
        dir.path().join("killed"),
    );
    for copy in [&jobs, &one, &killed] {
        copy_dir(&seq, copy);
    }
    assert!(status(&seq_s).contains("expert-1    not started"));
    stage(&seq_s, "experts", false);

    // Two jobs started together, each with half of the experts.
    let jobs_s = jobs.display().to_string();
    let children: Vec<_> = ["0/2", "1/2"]
        .iter()
        .map(|shard| {
            Command::new(DNC)
                .args(["stage", "experts", "--run", &jobs_s, "--shard", shard])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        checked(child.wait_with_output().unwrap(), "an expert job");
    }
    for k in 0..2 {
        assert!(
            expert_weights(&seq, k) == expert_weights(&jobs, k),
            "expert-{k} differs from the sequential stage"
        );
    }
    let s = summary(&jobs);
    assert_eq!(s["stages"]["experts"]["done"], true, "{s}");
    assert_eq!(s["info"]["experts"]["plans"].as_array().unwrap().len(), 2);
    let text = status(&jobs_s);
    assert!(text.contains("experts    done"), "{text}");
    assert!(text.contains("expert-0    done") && text.contains("expert-1    done"));
    stage(&jobs_s, "distill", false);

    // One expert alone: distillation refuses, naming the other.
    let one_s = one.display().to_string();
    dnc(&["stage", "experts", "--run", &one_s, "--expert", "1"]);
    assert_eq!(summary(&one)["stages"]["experts"]["done"], false);
    let out = Command::new(DNC)
        .args(["stage", "distill", "--run", &one_s])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("expert-0") && !err.contains("expert-1"),
        "{err}"
    );
    let out = Command::new(DNC)
        .args(["stage", "experts", "--run", &one_s, "--expert", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the run has 2 experts"));
    let out = Command::new(DNC)
        .args(["stage", "distill", "--run", &one_s, "--expert", "0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("experts stage only"));

    // A job killed once its expert has a checkpoint resumes to the same weights.
    let killed_s = killed.display().to_string();
    let mut child = Command::new(DNC)
        .args(["stage", "experts", "--run", &killed_s, "--expert", "0"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let checkpoints = killed.join("experts/expert-0/checkpoints");
    kill_when(&mut child, || holds_checkpoint(&checkpoints));
    let text = status(&killed_s);
    assert!(
        text.contains("expert-0    interrupted, checkpoint at step"),
        "{text}"
    );
    dnc(&[
        "stage", "experts", "--run", &killed_s, "--expert", "0", "--resume",
    ]);
    assert!(expert_weights(&seq, 0) == expert_weights(&killed, 0));
}

/// A stand-in for Slurm's `sbatch` that runs each job at once, in order (array tasks together),
/// logs the options it was given and prints a job id as `--parsable` does.
const FAKE_SBATCH: &str = r#"#!/usr/bin/env bash
set -euo pipefail
array=""
script=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dependency=*) echo "$1" >> "$SBATCH_LOG" ;;
    --array=*) array=${1#--array=} ;;
    --*) ;;
    *) script+=("$1") ;;
  esac
  shift
done
id=$(( $(cat "$SBATCH_LOG.id" 2>/dev/null || echo 100) + 1 ))
echo "$id" > "$SBATCH_LOG.id"
echo "job $id: ${script[*]##*/}" >> "$SBATCH_LOG"
if [ -n "$array" ]; then
  lo=${array%-*}; hi=${array#*-}; pids=()
  for t in $(seq "$lo" "$hi"); do
    SLURM_ARRAY_TASK_ID=$t SLURM_ARRAY_TASK_COUNT=$((hi - lo + 1)) bash "${script[@]}" >> "$SBATCH_LOG.out" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
else
  bash "${script[@]}" >> "$SBATCH_LOG.out" 2>&1
fi
echo "$id;cluster"
"#;

#[test]
fn the_slurm_scripts_chain_every_stage_and_a_resubmission_redoes_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let sbatch = bin.join("sbatch");
    std::fs::write(&sbatch, FAKE_SBATCH).unwrap();
    std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    let submit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/slurm/submit.sh");
    let run = dir.path().join("run");
    let log = dir.path().join("sbatch.log");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let submit_once = || {
        let out = Command::new("bash")
            .arg(&submit)
            .arg(&cfg)
            .arg(&run)
            .arg("3")
            .env("PATH", &path)
            .env("DNC", DNC)
            .env("SBATCH_LOG", &log)
            .output()
            .unwrap();
        let jobs = std::fs::read_to_string(dir.path().join("sbatch.log.out")).unwrap_or_default();
        assert!(
            out.status.success(),
            "{}\n{jobs}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let printed = submit_once();
    assert!(
        printed.contains("experts: array job 103 (3 tasks)"),
        "{printed}"
    );
    let s = summary(&run);
    for stage in ["base", "embed", "cluster", "experts", "distill", "eval"] {
        assert_eq!(s["stages"][stage]["done"], true, "{stage}: {s}");
    }
    assert!(s["eval"]["dnc"]["knn_top1"].is_number());
    assert!(run.join("report.md").is_file());
    let logged = std::fs::read_to_string(&log).unwrap();
    for dependency in ["afterok:101", "afterok:102", "afterok:103", "afterok:104"] {
        assert!(logged.contains(dependency), "{logged}");
    }
    // A resubmission (or a requeue) finds every stage done and trains nothing again.
    let student = std::fs::read(run.join("distill/model.safetensors")).unwrap();
    submit_once();
    let jobs = std::fs::read_to_string(dir.path().join("sbatch.log.out")).unwrap();
    assert!(jobs.contains("stage distill: done, skipped"), "{jobs}");
    assert!(student == std::fs::read(run.join("distill/model.safetensors")).unwrap());
}
