//! The run directory: a contract that scripts and people rely on.
//!
//! ```text
//! runs/<name>/
//!   config.toml      the resolved configuration, written before any work
//!   summary.json     machine-readable results, updated as stages finish
//!   metrics.jsonl    one JSON object per logged step or epoch
//!   report.md        tables and PNG plots for people
//!   log.txt          the log (`log.rank-<r>.txt`: data-parallel rank r's)
//!   lock             `pid host` of the process running a stage, while it runs
//!   .summary.lock    held (flock) while a process updates summary.json
//!   loss.png         training loss per stage (report)
//!   diagnostics.png  k-NN within each cluster of base, expert and student (report)
//!   cache/           images resized to the views' size (`data.cache_resized`)
//!   base/            model.safetensors, checkpoints/
//!   baseline/        model.safetensors, checkpoints/
//!   embed/features/  backbone.npy, hidden.npy, output.npy, indices.npy, labels.npy
//!   cluster/         assignments.safetensors (ids, clusters, centroids), sizes.json,
//!                    examples.png, composition.png
//!   experts/         expert-<k>/ (model.safetensors, checkpoints/, served.json, served.log,
//!                    failed.txt) and expert-<k>.lock while an expert job trains it
//!   distill/         model.safetensors (the DnC encoder), student.safetensors (with its heads),
//!                    start.safetensors (merged experts), targets.safetensors, checkpoints/
//! ```
//!
//! [`RunDir`] is the one place that spells these names: every stage, the report, `dnc status`,
//! adoption and the CLI ask it for paths.

use crate::error::PipelineError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A model a run trains, named as in `summary.json`'s `eval` and in `dnc export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelRef {
    /// `base/model.safetensors`: MoCLR on all data.
    Base,
    /// `baseline/model.safetensors`: the matched MoCLR baseline.
    Baseline,
    /// `distill/model.safetensors`: the distilled student's encoder, the DnC model.
    Dnc,
    /// `distill/start.safetensors`: the experts merged into the student's start.
    DncStart,
    /// `experts/expert-<k>/model.safetensors`: the expert of cluster k.
    Expert(usize),
}

impl ModelRef {
    /// The report name: `base`, `baseline`, `dnc`, `dnc-start`, `expert-<k>`.
    pub fn name(self) -> String {
        match self {
            Self::Base => "base".into(),
            Self::Baseline => "baseline".into(),
            Self::Dnc => "dnc".into(),
            Self::DncStart => "dnc-start".into(),
            Self::Expert(k) => format!("expert-{k}"),
        }
    }

    /// The model of a report name ([`name`](Self::name)); `None` for any other name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "base" => Self::Base,
            "baseline" => Self::Baseline,
            "dnc" => Self::Dnc,
            "dnc-start" => Self::DncStart,
            other => Self::Expert(other.strip_prefix("expert-")?.parse().ok()?),
        })
    }
}

/// The name of a lock file, in the run's root or beside a stage's folder.
const LOCK: &str = "lock";
const MODEL_FILE: &str = "model.safetensors";
const CHECKPOINTS: &str = "checkpoints";
const EXPERTS: &str = "experts";
const DISTILL: &str = "distill";
const CLUSTER: &str = "cluster";
/// The plots, relative to the run's root (as `report.md` links them).
pub(crate) const LOSS_PLOT: &str = "loss.png";
pub(crate) const DIAGNOSTICS_PLOT: &str = "diagnostics.png";
pub(crate) const COMPOSITION_PLOT: &str = "cluster/composition.png";
pub(crate) const EXAMPLES_PLOT: &str = "cluster/examples.png";

/// Paths inside one run directory: the only place that spells the run directory's layout.
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

    /// The run's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `config.toml`: the resolved configuration.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// `summary.json`: stages done and evaluation results.
    pub fn summary_path(&self) -> PathBuf {
        self.root.join("summary.json")
    }
    /// `.summary.lock`: held (flock) while a process updates `summary.json`.
    pub fn summary_lock_path(&self) -> PathBuf {
        self.root.join(".summary.lock")
    }
    /// `metrics.jsonl`: one JSON object per logged step or epoch.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    /// `report.md`: tables and plots for people.
    pub fn report_path(&self) -> PathBuf {
        self.root.join("report.md")
    }
    /// `log.txt`: the log of every process that worked in the run.
    pub fn log_path(&self) -> PathBuf {
        self.rank_log_path(0)
    }
    /// The log of data-parallel rank `rank`: `log.txt` for rank 0, else `log.rank-<r>.txt`.
    pub fn rank_log_path(&self, rank: usize) -> PathBuf {
        match rank {
            0 => self.root.join("log.txt"),
            r => self.root.join(format!("log.rank-{r}.txt")),
        }
    }
    /// `lock`: `pid host` of the process running whole stages, while it runs.
    pub fn lock_path(&self) -> PathBuf {
        self.root.join(LOCK)
    }
    /// `loss.png`: the training loss of every stage.
    pub fn loss_plot_path(&self) -> PathBuf {
        self.root.join(LOSS_PLOT)
    }
    /// `diagnostics.png`: k-NN within each cluster of the base, the experts and the student.
    pub fn diagnostics_plot_path(&self) -> PathBuf {
        self.root.join(DIAGNOSTICS_PLOT)
    }
    /// `cache/`: the images resized to the views' size (`data.cache_resized`).
    pub fn resized_cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// The folder of a stage (`base/`, `experts/`, ...), not created: see
    /// [`stage_dir`](Self::stage_dir).
    pub fn stage_path(&self, stage: &str) -> PathBuf {
        self.root.join(stage)
    }

    /// The folder of one stage (`base/`, `experts/`, ...), created on demand.
    pub fn stage_dir(&self, stage: &str) -> Result<PathBuf, PipelineError> {
        let dir = self.stage_path(stage);
        std::fs::create_dir_all(&dir).map_err(|e| PipelineError::io(&dir, e))?;
        Ok(dir)
    }

    /// The folder in which `model` is trained (its checkpoints, its file): `base/`,
    /// `baseline/`, `distill/` (for `dnc` and `dnc-start`) or `experts/expert-<k>/`.
    pub fn model_dir(&self, model: ModelRef) -> PathBuf {
        match model {
            ModelRef::Base => self.root.join("base"),
            ModelRef::Baseline => self.root.join("baseline"),
            ModelRef::Dnc | ModelRef::DncStart => self.root.join(DISTILL),
            ModelRef::Expert(k) => self.expert_dir(k),
        }
    }

    /// The encoder weights of `model` (`backbone.*`, `projector.*`), e.g.
    /// `base/model.safetensors` or `experts/expert-3/model.safetensors`.
    pub fn model_path(&self, model: ModelRef) -> PathBuf {
        let file = match model {
            ModelRef::DncStart => "start.safetensors",
            _ => MODEL_FILE,
        };
        self.model_dir(model).join(file)
    }

    /// The training checkpoints of `model` (`<model_dir>/checkpoints/`, `step-<n>` folders);
    /// `dnc` and `dnc-start` share the distillation's.
    pub fn checkpoints_dir(&self, model: ModelRef) -> PathBuf {
        self.model_dir(model).join(CHECKPOINTS)
    }

    /// `embed/features/`: the base model's features of every training image (NumPy files).
    pub fn features_dir(&self) -> PathBuf {
        self.root.join("embed").join("features")
    }

    /// `cluster/assignments.safetensors`: each training image's cluster and the centroids.
    pub fn assignments_path(&self) -> PathBuf {
        self.root.join(CLUSTER).join("assignments.safetensors")
    }
    /// `cluster/sizes.json`: what the cluster stage found (sizes, merges, agreement).
    pub fn cluster_sizes_path(&self) -> PathBuf {
        self.root.join(CLUSTER).join("sizes.json")
    }
    /// `cluster/examples.png`: example images of each cluster.
    pub fn cluster_examples_path(&self) -> PathBuf {
        self.root.join(EXAMPLES_PLOT)
    }
    /// `cluster/composition.png`: the class make-up of each cluster.
    pub fn cluster_composition_path(&self) -> PathBuf {
        self.root.join(COMPOSITION_PLOT)
    }

    /// `experts/`: the folder of every expert.
    pub fn experts_dir(&self) -> PathBuf {
        self.root.join(EXPERTS)
    }
    /// `experts/expert-<k>/`: expert k's checkpoints, model and served-image records.
    pub fn expert_dir(&self, k: usize) -> PathBuf {
        self.experts_dir().join(format!("expert-{k}"))
    }
    /// `experts/expert-<k>.lock`: held by the expert job training expert k.
    pub fn expert_lock_path(&self, k: usize) -> PathBuf {
        self.experts_dir().join(format!("expert-{k}.{LOCK}"))
    }
    /// `experts/expert-<k>/failed.txt`: the error of an expert job whose expert failed.
    pub fn expert_failed_path(&self, k: usize) -> PathBuf {
        self.expert_dir(k).join("failed.txt")
    }
    /// `experts/expert-<k>/served[.rank-<r>].log`: the journal of the images expert k was served
    /// (by data-parallel rank `rank`; rank 0 has no suffix).
    pub fn expert_served_log_path(&self, k: usize, rank: usize) -> PathBuf {
        self.expert_dir(k)
            .join(format!("served{}.log", rank_suffix(rank)))
    }
    /// `experts/expert-<k>/served[.rank-<r>].json`: the images expert k was served, summed up.
    pub fn expert_served_path(&self, k: usize, rank: usize) -> PathBuf {
        self.expert_dir(k)
            .join(format!("served{}.json", rank_suffix(rank)))
    }

    /// `distill/student.safetensors`: the student with its regression heads.
    pub fn student_path(&self) -> PathBuf {
        self.root.join(DISTILL).join("student.safetensors")
    }
    /// `distill/targets.safetensors`: the teachers' cached targets (`distill.targets = "cached"`).
    pub fn targets_path(&self) -> PathBuf {
        self.root.join(DISTILL).join("targets.safetensors")
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
        let lock_path = self.summary_lock_path();
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
    /// Peak resident memory of the processes that ran the stage (the largest over resumed
    /// attempts), in MiB, when known (Linux). A process that ran earlier stages too reports its
    /// peak over all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<u64>,
    /// When the attempt now running began (seconds since the Unix epoch); cleared when the
    /// stage is done. Still set when a run resumes, it marks an attempt that was killed: its
    /// time until the run's last metrics write or write in the stage's folder is added to
    /// `seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_started: Option<f64>,
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl RunDir {
    /// The last time a run's process wrote its metrics or a file or folder in `stage`'s folder
    /// (a checkpoint), in seconds since the Unix epoch, if any exists. The log is left out: a
    /// resumed run writes to it before the stage starts again.
    pub(crate) fn last_activity(&self, stage: &str) -> Option<f64> {
        fn newest(path: &Path, depth: usize, latest: &mut Option<std::time::SystemTime>) {
            let Ok(meta) = std::fs::metadata(path) else {
                return;
            };
            if let Ok(t) = meta.modified() {
                *latest = (*latest).max(Some(t));
            }
            if meta.is_dir() && depth > 0 {
                for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                    newest(&entry.path(), depth - 1, latest);
                }
            }
        }
        let mut latest = None;
        newest(&self.metrics_path(), 0, &mut latest);
        // Deep enough for experts/expert-K/checkpoints/step-N/FILE.
        newest(&self.stage_path(stage), 5, &mut latest);
        latest
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
    }
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

/// `""` for rank 0, else `.rank-<r>`.
fn rank_suffix(rank: usize) -> String {
    if rank == 0 {
        String::new()
    } else {
        format!(".rank-{rank}")
    }
}

/// The temporary file that `path` is written through (`.<name>.tmp-<pid>` in the same folder),
/// after creating that folder.
pub(crate) fn temp_path(path: &Path) -> Result<PathBuf, PipelineError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    Ok(dir.join(format!(".{name}.tmp-{}", std::process::id())))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so readers
/// never see a half-written file and a crash leaves the previous version intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    let tmp = temp_path(path)?;
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
                    ..StageStatus::default()
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
    fn the_layout_is_the_contract() {
        let run = RunDir::new("/r");
        let rel = |p: PathBuf| p.strip_prefix("/r").unwrap().to_string_lossy().into_owned();
        for (model, file) in [
            (ModelRef::Base, "base/model.safetensors"),
            (ModelRef::Baseline, "baseline/model.safetensors"),
            (ModelRef::Dnc, "distill/model.safetensors"),
            (ModelRef::DncStart, "distill/start.safetensors"),
            (ModelRef::Expert(3), "experts/expert-3/model.safetensors"),
        ] {
            assert_eq!(rel(run.model_path(model)), file);
            assert_eq!(ModelRef::parse(&model.name()), Some(model));
        }
        assert_eq!(ModelRef::parse("expert-x"), None);
        assert_eq!(
            rel(run.checkpoints_dir(ModelRef::Dnc)),
            "distill/checkpoints"
        );
        assert_eq!(
            rel(run.checkpoints_dir(ModelRef::Expert(0))),
            "experts/expert-0/checkpoints"
        );
        assert_eq!(rel(run.features_dir()), "embed/features");
        assert_eq!(
            rel(run.assignments_path()),
            "cluster/assignments.safetensors"
        );
        assert_eq!(rel(run.cluster_sizes_path()), "cluster/sizes.json");
        assert_eq!(rel(run.expert_lock_path(2)), "experts/expert-2.lock");
        assert_eq!(
            rel(run.expert_failed_path(2)),
            "experts/expert-2/failed.txt"
        );
        assert_eq!(
            rel(run.expert_served_path(2, 0)),
            "experts/expert-2/served.json"
        );
        assert_eq!(
            rel(run.expert_served_log_path(2, 1)),
            "experts/expert-2/served.rank-1.log"
        );
        assert_eq!(rel(run.student_path()), "distill/student.safetensors");
        assert_eq!(rel(run.targets_path()), "distill/targets.safetensors");
        assert_eq!(rel(run.resized_cache_dir()), "cache");
        assert_eq!(rel(run.lock_path()), "lock");
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
