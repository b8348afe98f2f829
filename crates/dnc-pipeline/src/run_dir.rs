//! The run directory: a contract that scripts and people rely on.
//!
//! ```text
//! runs/<name>/
//!   config.toml      the resolved configuration, written before any work
//!   summary.json     machine-readable results, updated as stages finish
//!   metrics.jsonl    one JSON object per logged step or epoch
//!   report.md        tables and PNG plots for people
//!   lock             `pid host` of the process running a stage, while it runs
//!   .summary.lock    held (flock) while a process updates summary.json
//!   <stage>/         checkpoints (safetensors + state.json), written atomically
//! ```

use crate::error::PipelineError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Paths inside one run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Opens an existing run, failing with the path when it holds no `config.toml`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, PipelineError> {
        let run = Self::new(root);
        if !run.config_path().is_file() {
            return Err(PipelineError::NotARun(run.root.clone()));
        }
        Ok(run)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn summary_path(&self) -> PathBuf {
        self.root.join("summary.json")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    pub fn report_path(&self) -> PathBuf {
        self.root.join("report.md")
    }
    pub fn log_path(&self) -> PathBuf {
        self.root.join("log.txt")
    }

    /// The folder of one stage (`base/`, `experts/expert-0/`, ...), created on demand.
    pub fn stage_dir(&self, stage: &str) -> Result<PathBuf, PipelineError> {
        let dir = self.root.join(stage);
        std::fs::create_dir_all(&dir).map_err(|e| PipelineError::io(&dir, e))?;
        Ok(dir)
    }

    pub fn read_summary(&self) -> Result<Summary, PipelineError> {
        let path = self.summary_path();
        if !path.exists() {
            return Ok(Summary::default());
        }
        let text = std::fs::read_to_string(&path).map_err(|e| PipelineError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| PipelineError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })
    }

    /// Reads the summary, applies `change`, and writes it back atomically, holding an exclusive
    /// lock on `.summary.lock` meanwhile, so that processes sharing the run directory (expert
    /// jobs on several machines) never lose each other's updates.
    pub fn update_summary(
        &self,
        change: impl FnOnce(&mut Summary),
    ) -> Result<Summary, PipelineError> {
        let lock_path = self.root.join(".summary.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| PipelineError::io(&lock_path, e))?;
        // Released when `lock` is dropped.
        lock.lock().map_err(|e| PipelineError::io(&lock_path, e))?;
        let mut summary = self.read_summary()?;
        change(&mut summary);
        let json = serde_json::to_string_pretty(&summary).expect("summary serialises");
        write_atomic(&self.summary_path(), json.as_bytes())?;
        Ok(summary)
    }
}

/// `summary.json`: which stages are done (and how long they took) and the evaluation results.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    #[serde(default)]
    pub stages: BTreeMap<String, StageStatus>,
    /// Keyed by model: `untrained`, `base`, `dnc`, `baseline`, `expert-<k>`, ...
    #[serde(default)]
    pub eval: BTreeMap<String, ModelEval>,
    /// Stage-specific facts for scripts (cluster sizes, skipped images, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub info: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StageStatus {
    pub done: bool,
    /// Wall-clock seconds of the stage (summed over resumed attempts).
    pub seconds: f64,
    /// Peak resident memory of the process that finished the stage, in MiB, when known (Linux).
    /// A process that ran earlier stages too reports its peak over all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<u64>,
}

/// The peak resident memory of this process so far (`VmHWM`), in MiB; `None` off Linux.
pub fn process_peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ModelEval {
    pub knn_top1: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_top1: Option<f64>,
    /// Per-class k-NN accuracy, in class-id order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub knn_per_class: Vec<f64>,
    /// Per-class linear-probe accuracy, in class-id order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linear_per_class: Vec<f64>,
    /// Linear probes on few labels, one entry per `eval.linear.few_label_fractions` value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub few_label: Vec<dnc_eval::FewLabelScore>,
}

impl Summary {
    pub fn is_done(&self, stage: &str) -> bool {
        self.stages.get(stage).is_some_and(|s| s.done)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so readers
/// never see a half-written file and a crash leaves the previous version intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| PipelineError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| PipelineError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_updates_round_trip_and_keep_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert!(RunDir::open(dir.path()).is_err());
        run.update_summary(|s| {
            s.stages.insert(
                "base".into(),
                StageStatus {
                    done: true,
                    seconds: 1.5,
                    peak_rss_mib: None,
                },
            );
        })
        .unwrap();
        run.update_summary(|s| {
            s.eval.insert(
                "base".into(),
                ModelEval {
                    knn_top1: 0.5,
                    ..Default::default()
                },
            );
        })
        .unwrap();
        let s = run.read_summary().unwrap();
        assert!(s.is_done("base") && !s.is_done("cluster"));
        assert_eq!(s.eval["base"].knn_top1, 0.5);
        let raw: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.summary_path()).unwrap()).unwrap();
        assert_eq!(raw["stages"]["base"]["done"], true);
        assert_eq!(raw["eval"]["base"]["knn_top1"], 0.5);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".tmp-")
            })
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn corrupt_summary_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        std::fs::write(run.summary_path(), "{not json").unwrap();
        let err = run.read_summary().unwrap_err().to_string();
        assert!(err.contains("summary.json"), "{err}");
    }
}
