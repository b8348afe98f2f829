//! `dnc status`: where each stage and each expert of a run stands, read from the run directory
//! alone (`summary.json`, the lock files, the stage folders), so any machine that mounts it can
//! ask.

use crate::error::PipelineError;
use crate::lock::lock_holder;
use crate::run::Run;
use crate::run_dir::{ModelRef, Summary};
use crate::stage::Stage;
use std::fmt::Write as _;
use std::path::Path;

/// Where one stage stands.
#[derive(Debug, Clone, PartialEq)]
pub enum StageState {
    Done {
        seconds: f64,
    },
    /// A live process holds the run's lock (or, for the experts, an expert's lock).
    Running {
        holder: String,
    },
    /// Started and stopped before it was done: `--resume` continues it.
    Interrupted,
    /// Done once, but a stage before it ran again since: it must run again.
    OutOfDate,
    NotStarted,
}

/// Where one expert stands.
#[derive(Debug, Clone, PartialEq)]
pub enum ExpertState {
    Done,
    Running {
        holder: String,
        checkpoint: Option<u64>,
    },
    Failed {
        message: String,
    },
    Interrupted {
        checkpoint: Option<u64>,
    },
    NotStarted,
}

/// The state of every stage of a run and, once the clusters exist, of every expert.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStatus {
    pub stages: Vec<(Stage, StageState)>,
    pub experts: Vec<(usize, ExpertState)>,
}

/// `process P on H`, for a live lock holder of `path`.
fn live_holder(path: &Path) -> Option<String> {
    match lock_holder(path)? {
        (_, true) => None,
        (h, false) => Some(format!("process {} on {}", h.pid, h.host)),
    }
}

/// The step of the newest checkpoint in `checkpoints` (`step-000000054`).
fn last_checkpoint(checkpoints: &Path) -> Option<u64> {
    std::fs::read_dir(checkpoints)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("step-")?
                .parse::<u64>()
                .ok()
        })
        .max()
}

/// The number of experts, once the cluster stage has recorded it.
fn expert_count(summary: &Summary) -> Option<usize> {
    summary.info.get("cluster")?["k"]
        .as_u64()
        .and_then(|k| usize::try_from(k).ok())
}

fn expert_state(run: &Run, k: usize) -> ExpertState {
    if run.dir.model_path(ModelRef::Expert(k)).is_file() {
        return ExpertState::Done;
    }
    let checkpoint = last_checkpoint(&run.dir.checkpoints_dir(ModelRef::Expert(k)));
    if let Some(holder) = live_holder(&run.dir.expert_lock_path(k)) {
        return ExpertState::Running { holder, checkpoint };
    }
    if let Ok(message) = std::fs::read_to_string(run.dir.expert_failed_path(k)) {
        return ExpertState::Failed {
            message: message.trim().to_string(),
        };
    }
    if run.dir.expert_dir(k).exists() {
        ExpertState::Interrupted { checkpoint }
    } else {
        ExpertState::NotStarted
    }
}

/// The experts of the run that are not complete (none before the cluster stage is done).
pub(crate) fn incomplete_experts(run: &Run, summary: &Summary) -> Vec<usize> {
    (0..expert_count(summary).unwrap_or(0))
        .filter(|&k| !run.dir.model_path(ModelRef::Expert(k)).is_file())
        .collect()
}

impl RunStatus {
    /// Reads the run directory.
    pub fn read(run: &Run) -> Result<Self, PipelineError> {
        let summary = run.dir.read_summary()?;
        let run_holder = live_holder(&run.dir.lock_path());
        let experts: Vec<(usize, ExpertState)> = match expert_count(&summary) {
            Some(k) if run.stages().contains(&Stage::Experts) => {
                (0..k).map(|k| (k, expert_state(run, k))).collect()
            }
            _ => Vec::new(),
        };
        let mut stages = Vec::new();
        let mut first_open = true;
        for stage in run.stages() {
            let status = summary.stages.get(stage.name());
            let state = match status {
                Some(s) if s.done => StageState::Done { seconds: s.seconds },
                _ if first_open => {
                    first_open = false;
                    let expert_job = (stage == Stage::Experts)
                        .then(|| {
                            experts.iter().find_map(|(_, e)| match e {
                                ExpertState::Running { holder, .. } => Some(holder.clone()),
                                _ => None,
                            })
                        })
                        .flatten();
                    match (run_holder.clone().or(expert_job), status) {
                        (Some(holder), _) => StageState::Running { holder },
                        (None, Some(_)) => StageState::Interrupted,
                        (None, None) => StageState::NotStarted,
                    }
                }
                Some(_) => StageState::OutOfDate,
                None => StageState::NotStarted,
            };
            stages.push((stage, state));
        }
        Ok(Self { stages, experts })
    }

    /// A table for people: one line per stage, then one per expert.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (stage, state) in &self.stages {
            let text = match state {
                StageState::Done { seconds } => format!("done ({seconds:.1} s)"),
                StageState::Running { holder } => format!("running ({holder})"),
                StageState::Interrupted => "interrupted (continue with --resume)".into(),
                StageState::OutOfDate => "out of date (an earlier stage ran again)".into(),
                StageState::NotStarted => "not started".into(),
            };
            let _ = writeln!(out, "{:<10} {text}", stage.name());
        }
        let step =
            |c: &Option<u64>| c.map_or(String::new(), |s| format!(", checkpoint at step {s}"));
        for (k, state) in &self.experts {
            let text = match state {
                ExpertState::Done => "done".to_string(),
                ExpertState::Running { holder, checkpoint } => {
                    format!("running ({holder}{})", step(checkpoint))
                }
                ExpertState::Failed { message } => format!("failed: {message}"),
                ExpertState::Interrupted { checkpoint } => {
                    format!("interrupted{} (continue with --resume)", step(checkpoint))
                }
                ExpertState::NotStarted => "not started".into(),
            };
            let _ = writeln!(out, "  expert-{k:<4} {text}");
        }
        out
    }
}
