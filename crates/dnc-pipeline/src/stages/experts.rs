//! One MoCLR expert per cluster, each trained only on its cluster's images (SPEC step 3).
//!
//! The expert budget `experts.epochs` counts full-dataset epochs. Split in proportion to cluster
//! size (the paper), every expert trains that many epochs over its own images; split equally,
//! every expert gets the same number of images `epochs · N / K`. Each expert has its own folder
//! `experts/expert-<k>/` (checkpoints, `model.safetensors`, `served.json`) and resumes on its own;
//! experts spread over `experts.devices` round-robin, one thread per device. Expert jobs
//! ([`run_selected`]) train a selection of the experts in separate processes that share the run
//! directory, each expert under its own lock.

use crate::assignments::{UNASSIGNED, cluster_count, load_assignments};
use crate::audit::Audited;
use crate::config::{BudgetSplit, Init};
use crate::datasets::{Split, open_split, record_skipped};
use crate::error::PipelineError;
use crate::lock::RunLock;
use crate::run::Run;
use crate::run_dir::ModelRef;
use crate::stage::Stage;
use crate::train::{MoclrJob, train_moclr};
use crate::weights::load_encoder;
use candle_core::Device;
use candle_nn::VarMap;
use dnc_data::{Dataset, ImageFolder, Subset};
use dnc_engine::MetricsWriter;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What one expert trains on, and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpertPlan {
    pub cluster: usize,
    /// Dataset indices of the cluster's images.
    pub images: Vec<usize>,
    pub epochs: usize,
}

/// Splits the expert budget over the clusters of `clusters` (cluster id of every image;
/// [`UNASSIGNED`] images belong to no expert and do not count in the equal split's shares).
pub fn expert_plan(clusters: &[u32], budget_epochs: usize, split: BudgetSplit) -> Vec<ExpertPlan> {
    let k = cluster_count(clusters);
    let n = clusters.iter().filter(|&&c| c != UNASSIGNED).count();
    (0..k)
        .map(|c| {
            let images: Vec<usize> = (0..clusters.len())
                .filter(|&i| clusters[i] as usize == c)
                .collect();
            let epochs = match split {
                BudgetSplit::Proportional => budget_epochs,
                BudgetSplit::Equal => {
                    let share =
                        budget_epochs as f64 * n as f64 / (k as f64 * images.len().max(1) as f64);
                    (share.round() as usize).max(1)
                }
            };
            ExpertPlan {
                cluster: c,
                images,
                epochs,
            }
        })
        .collect()
}

/// The experts of the run, from the cluster assignments.
fn plans(run: &Run, train: &ImageFolder) -> Result<Vec<ExpertPlan>, PipelineError> {
    let clusters = load_assignments(run, train.len())?;
    Ok(expert_plan(
        &clusters,
        run.cfg.experts.epochs,
        run.cfg.experts.split,
    ))
}

/// Records the plans and the skipped images once every expert is complete.
fn record_plans(run: &Run, plans: &[ExpertPlan], train: &ImageFolder) -> Result<(), PipelineError> {
    let summary: Vec<serde_json::Value> = plans
        .iter()
        .map(|p| serde_json::json!({"cluster": p.cluster, "images": p.images.len(), "epochs": p.epochs}))
        .collect();
    run.dir.update_summary(|s| {
        s.info
            .insert("experts".into(), serde_json::json!({ "plans": summary }));
    })?;
    record_skipped(run, "experts", &[train])?;
    Ok(())
}

pub(crate) fn run(run: &Run, resume: bool) -> Result<(), PipelineError> {
    let train = open_split(run, Split::Train)?;
    let plans = plans(run, &train)?;
    let group = dnc_dist::current();
    if group.is_distributed() {
        // Data-parallel: every rank trains every expert, in order, on its share of the
        // batches, on its own device.
        let all: Vec<&ExpertPlan> = plans.iter().collect();
        train_lane(run, &all, &train, &run.device, resume)?;
        return if group.is_leader() {
            record_plans(run, &plans, &train)
        } else {
            Ok(())
        };
    }
    // A configured list, even of one device, replaces the run's device.
    let devices: Vec<Device> = if run.cfg.experts.devices.is_empty() {
        vec![run.device.clone()]
    } else {
        run.cfg
            .experts
            .devices
            .iter()
            .map(|d| d.open())
            .collect::<candle_core::Result<_>>()?
    };
    let mut lanes: Vec<Vec<&ExpertPlan>> = vec![Vec::new(); devices.len()];
    for (i, plan) in plans.iter().enumerate() {
        lanes[i % devices.len()].push(plan);
    }
    let results: Vec<Result<(), PipelineError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = lanes
            .iter()
            .zip(&devices)
            .map(|(lane, device)| {
                let train = train.clone();
                scope.spawn(move || train_lane(run, lane, &train, device, resume))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(PipelineError::Other("an expert thread panicked".into()))
                })
            })
            .collect()
    });
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    record_plans(run, &plans, &train)
}

/// Which experts one expert job trains (`dnc stage experts --expert K` or `--shard I/N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpertSelection {
    /// Expert `k` alone.
    One(usize),
    /// Every expert `k` with `k mod count = index`: job `index` of `count`.
    Shard { index: usize, count: usize },
}

impl ExpertSelection {
    /// Parses a `--shard` value `I/N` (0 ≤ I < N).
    pub fn shard(text: &str) -> Result<Self, PipelineError> {
        let bad = |why: &str| PipelineError::Other(format!("--shard {text}: {why}"));
        let (i, n) = text
            .split_once('/')
            .ok_or_else(|| bad("expected I/N, e.g. 0/4"))?;
        let index: usize = i.trim().parse().map_err(|_| bad("I is not a number"))?;
        let count: usize = n.trim().parse().map_err(|_| bad("N is not a number"))?;
        if count == 0 || index >= count {
            return Err(bad("needs 0 <= I < N"));
        }
        Ok(Self::Shard { index, count })
    }

    /// Whether expert `cluster` is one of the selection.
    pub fn includes(self, cluster: usize) -> bool {
        match self {
            Self::One(k) => k == cluster,
            Self::Shard { index, count } => cluster % count == index,
        }
    }
}

/// Trains the selected experts in this process, one after another, each under its own lock
/// (`experts/expert-<k>.lock`), so that jobs on other machines can train the others. Returns
/// whether every expert of the run is now complete; the job that completes the last one
/// records the plans.
pub(crate) fn run_selected(
    run: &Run,
    selection: ExpertSelection,
    resume: bool,
) -> Result<bool, PipelineError> {
    let train = open_split(run, Split::Train)?;
    let plans = plans(run, &train)?;
    if let ExpertSelection::One(k) = selection
        && k >= plans.len()
    {
        return Err(PipelineError::Other(format!(
            "--expert {k}: the run has {} experts (0 to {})",
            plans.len(),
            plans.len().saturating_sub(1)
        )));
    }
    let base_vars = base_vars(run, &run.device)?;
    let mut metrics = run.metrics()?;
    run.dir.stage_dir(Stage::Experts.name())?;
    for plan in plans.iter().filter(|p| selection.includes(p.cluster)) {
        let _lock = RunLock::acquire_file(run.dir.expert_lock_path(plan.cluster))?;
        let dir = run.dir.expert_dir(plan.cluster);
        if !resume && dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| PipelineError::io(&dir, e))?;
        }
        let failed = run.dir.expert_failed_path(plan.cluster);
        if failed.exists() {
            std::fs::remove_file(&failed).map_err(|e| PipelineError::io(&failed, e))?;
        }
        let trained = train_expert(
            run,
            plan,
            &train,
            &run.device,
            base_vars.as_ref(),
            &mut metrics,
            resume,
        );
        if let Err(e) = trained {
            // Best effort: `dnc status` shows it; the error itself is what the job reports.
            let _ = std::fs::write(&failed, format!("{e}\n"));
            return Err(e);
        }
    }
    let complete = plans
        .iter()
        .all(|p| run.dir.model_path(ModelRef::Expert(p.cluster)).is_file());
    if complete {
        record_plans(run, &plans, &train)?;
    }
    Ok(complete)
}

/// The base model's variables, when experts start from it.
fn base_vars(run: &Run, device: &Device) -> Result<Option<VarMap>, PipelineError> {
    Ok(match run.cfg.experts.init {
        Init::Base => {
            Some(load_encoder(&run.cfg.model, &run.dir.model_path(ModelRef::Base), device)?.1)
        }
        Init::Scratch => None,
    })
}

/// Trains the experts of one device, in sequence.
fn train_lane(
    run: &Run,
    lane: &[&ExpertPlan],
    train: &Arc<ImageFolder>,
    device: &Device,
    resume: bool,
) -> Result<(), PipelineError> {
    let mut metrics = run.metrics()?;
    let base_vars = base_vars(run, device)?;
    for plan in lane {
        train_expert(
            run,
            plan,
            train,
            device,
            base_vars.as_ref(),
            &mut metrics,
            resume,
        )?;
    }
    Ok(())
}

/// Trains one expert into `experts/expert-<k>/`, unless its model is already there.
fn train_expert(
    run: &Run,
    plan: &ExpertPlan,
    train: &Arc<ImageFolder>,
    device: &Device,
    base_vars: Option<&VarMap>,
    metrics: &mut MetricsWriter,
    resume: bool,
) -> Result<(), PipelineError> {
    let dir = run.dir.expert_dir(plan.cluster);
    let done = run.dir.model_path(ModelRef::Expert(plan.cluster)).is_file();
    // Data-parallel ranks must all train it or all skip it.
    let group = dnc_dist::current();
    let what = format!("whether expert {} is complete", plan.cluster);
    dnc_dist::agree(&**group.comm(), &what, f64::from(u8::from(done)))?;
    if done {
        tracing::info!("expert {}: done, skipped", plan.cluster);
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(|e| PipelineError::io(&dir, e))?;
    let subset = Subset::new(train.clone(), plan.images.clone())?;
    // In data-parallel training each rank records the images of its own shares.
    let rank = dnc_dist::current().rank();
    let journal = run.dir.expert_served_log_path(plan.cluster, rank);
    let audited = Arc::new(Audited::new(subset, &journal, resume)?);
    let job = MoclrJob {
        name: format!("expert-{}", plan.cluster),
        train: run.cfg.expert_train(),
        epochs: plan.epochs,
        seed: run.cfg.seed.wrapping_add(1 + plan.cluster as u64),
        init: base_vars,
        checkpoints: run.dir.checkpoints_dir(ModelRef::Expert(plan.cluster)),
        model: run.dir.model_path(ModelRef::Expert(plan.cluster)),
    };
    tracing::info!(
        "expert {}: {} images, {} epochs",
        plan.cluster,
        plan.images.len(),
        plan.epochs
    );
    train_moclr(&run.cfg, job, audited.clone(), device, metrics, resume)?;
    audited.write_served(&run.dir.expert_served_path(plan.cluster, rank))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportional_split_gives_every_expert_the_budget_over_its_own_images() {
        let clusters = [0, 1, 1, 1, 0, 2, 1, 1];
        let plans = expert_plan(&clusters, 10, BudgetSplit::Proportional);
        assert_eq!(plans.len(), 3);
        assert_eq!(plans[0].images, vec![0, 4]);
        assert_eq!(plans[1].images, vec![1, 2, 3, 6, 7]);
        assert_eq!(plans[2].images, vec![5]);
        assert!(plans.iter().all(|p| p.epochs == 10));
        // Images processed = Σ epochs·N_k = 10 · 8: ten full-dataset epochs in all.
        let images: usize = plans.iter().map(|p| p.epochs * p.images.len()).sum();
        assert_eq!(images, 80);
    }

    #[test]
    fn equal_split_gives_every_expert_the_same_number_of_images() {
        let clusters = [0, 0, 0, 0, 0, 0, 1, 1];
        let plans = expert_plan(&clusters, 3, BudgetSplit::Equal);
        // N = 8, K = 2: each expert gets 3·8/2 = 12 images: 2 epochs of 6, 6 epochs of 2.
        assert_eq!(plans[0].epochs, 2);
        assert_eq!(plans[1].epochs, 6);
    }

    #[test]
    fn unassigned_images_belong_to_no_expert() {
        // Images 2 and 5 were skipped by the embed stage.
        let clusters = [0, 1, UNASSIGNED, 1, 0, UNASSIGNED, 1, 1];
        let plans = expert_plan(&clusters, 3, BudgetSplit::Proportional);
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].images, vec![0, 4]);
        assert_eq!(plans[1].images, vec![1, 3, 6, 7]);
        // The equal split shares the 6 assigned images: 3·6/2 = 9 images per expert.
        let plans = expert_plan(&clusters, 3, BudgetSplit::Equal);
        assert_eq!(plans[0].epochs, 5);
        assert_eq!(plans[1].epochs, 2);
        assert!(expert_plan(&[UNASSIGNED; 4], 3, BudgetSplit::Equal).is_empty());
    }
}
