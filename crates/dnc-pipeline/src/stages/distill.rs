//! Distil the base model and the experts into one student (SPEC step 4).
//!
//! Writes `distill/student.safetensors` (student with its K + 1 heads, or one head when
//! `distill.teachers = "base"`) and `distill/model.safetensors` (its encoder: the DnC model);
//! with `distill.targets = "cached"`, first `distill/targets.safetensors` ([`targets`]).

mod targets;

use crate::assignments::{UNASSIGNED, cluster_count, load_assignments};
use crate::config::{StudentInit, Teachers};
use crate::datasets::{Split, open_split, record_skipped};
use crate::error::PipelineError;
use crate::run::Run;
use crate::run_dir::ModelRef;
use crate::sources::{DistillSource, DistillViewMapper};
use crate::stage::Stage;
use crate::train::{diverged, fit_config, train_loader_config};
use crate::weights::{load_encoder, save_encoder, save_vars};
use candle_core::Var;
use candle_nn::VarMap;
use dnc_data::{Dataset, Loader};
use dnc_distill::{DistillStep, TargetSource, Teacher};
use dnc_engine::{FitIo, fit};
use std::sync::Arc;

/// Seed offset of the student, so it never starts from the base's initial weights by accident.
const STUDENT_SEED: u64 = 0x5354_5544;

/// The experts merged into one set of weights (`sizes`: each expert's number of images).
///
/// `sum_changes = false`: the mean of the experts, weighted by their sizes. `true`: the base plus
/// the sum of every expert's change from it (buffers, the BatchNorm running statistics, still
/// take the weighted mean: a sum of statistics' changes has no meaning).
/// Experts trained from the base on the clusters of a proportional budget together took one
/// step per batch of the whole data per epoch, so to first order the sum of their changes is
/// what the same epochs on all the data would have added to the base: the student starts
/// where the experts' training has taken the base, not where the base stopped.
fn merge_experts(
    base: &VarMap,
    experts: &[VarMap],
    sizes: &[usize],
    sum_scale: Option<f64>,
) -> Result<VarMap, PipelineError> {
    let total: usize = sizes.iter().sum();
    if experts.is_empty() || total == 0 {
        return Err(PipelineError::Other(
            "distill.init merges the experts but there is no expert with images".into(),
        ));
    }
    let base = base.data().lock().expect("varmap lock poisoned");
    let merged = VarMap::new();
    let mut out = merged.data().lock().expect("varmap lock poisoned");
    for (name, base_var) in base.iter() {
        let base_t = base_var.as_tensor();
        let mean_only = sum_scale.is_none() || dnc_core::names::is_buffer(name);
        let mut acc = if mean_only {
            base_t.zeros_like()?
        } else {
            base_t.clone()
        };
        for (c, (model, &n)) in experts.iter().zip(sizes).enumerate() {
            let vars = model.data().lock().expect("varmap lock poisoned");
            let Some(var) = vars.get(name) else {
                return Err(PipelineError::Other(format!(
                    "expert {c} has no variable {name:?}: the experts and the base differ"
                )));
            };
            let part = match sum_scale {
                Some(scale) if !mean_only => (var.as_tensor() - base_t)?.affine(scale, 0.0)?,
                _ => var.as_tensor().affine(n as f64 / total as f64, 0.0)?,
            };
            acc = (acc + part)?;
        }
        out.insert(name.clone(), Var::from_tensor(&acc)?);
    }
    drop(out);
    Ok(merged)
}

pub(crate) fn run(run: &Run, resume: bool) -> Result<(), PipelineError> {
    let cfg = &run.cfg;
    let train = open_split(run, Split::Train)?;
    let clusters = load_assignments(run, train.len())?;
    let k = cluster_count(&clusters);
    let base_path = run.dir.model_path(ModelRef::Base);
    let (_, base_vars) = load_encoder(&cfg.model, &base_path, &run.device)?;
    let n_experts = match cfg.distill.teachers {
        Teachers::All => k,
        Teachers::Base => 0,
    };
    let merges = matches!(
        cfg.distill.init,
        StudentInit::ExpertMean | StudentInit::ExpertSum
    );
    let loaded = if n_experts > 0 || merges { k } else { 0 };
    let expert_vars = (0..loaded)
        .map(|c| {
            let path = run.dir.model_path(ModelRef::Expert(c));
            Ok(load_encoder(&cfg.model, &path, &run.device)?.1)
        })
        .collect::<Result<Vec<_>, PipelineError>>()?;
    let student_init = match cfg.distill.init {
        StudentInit::Scratch => None,
        StudentInit::Base => Some(base_vars.clone()),
        StudentInit::ExpertMean | StudentInit::ExpertSum => {
            let assigned: Vec<u32> = clusters
                .iter()
                .copied()
                .filter(|&c| c != UNASSIGNED)
                .collect();
            let sizes = dnc_cluster::cluster_sizes(&assigned, k)?;
            let scale =
                (cfg.distill.init == StudentInit::ExpertSum).then_some(cfg.distill.merge_scale);
            Some(merge_experts(&base_vars, &expert_vars, &sizes, scale)?)
        }
    };
    let experts = expert_vars
        .into_iter()
        .take(n_experts)
        .map(|vars| Ok(Teacher::new(&cfg.model, vars, &run.device)?))
        .collect::<Result<Vec<_>, PipelineError>>()?;
    let base = Teacher::new(&cfg.model, base_vars.clone(), &run.device)?;
    let seed = cfg.seed ^ STUDENT_SEED;
    let (mut step, clusters) = match cfg.distill.targets {
        TargetSource::Augmented => {
            let options = cfg.distill_options();
            let step =
                DistillStep::with_options(&cfg.model, base, experts, seed, &run.device, options)?;
            (step, clusters)
        }
        TargetSource::Cached => {
            // The teachers run here, once per image, and are dropped before training.
            let cached = targets::prepare(run, &train, &clusters, base, experts, resume)?;
            let step = DistillStep::with_cached_targets(
                &cfg.model,
                cached.targets,
                seed,
                &run.device,
                cfg.distill_options(),
            )?;
            (step, cached.clusters)
        }
    };
    if let Some(init) = &student_init {
        step.init_student_from(init)?;
    }
    let second_view = (cfg.distill.student_moclr_weight > 0.0).then(|| cfg.augment.view2.clone());
    let mapper = Arc::new(DistillViewMapper::new(
        cfg.augment.view1.clone(),
        second_view,
        seed,
    ));
    let group = dnc_dist::current();
    let loader = Loader::new(
        train.clone(),
        mapper,
        train_loader_config(cfg, cfg.distill.batch_size, seed),
    )
    .and_then(|l| l.with_share(group.rank(), group.world_size()))
    .map_err(|e| crate::train::name_batch_size(e, "distill.batch_size", "distill"))?;
    let source = DistillSource::new(
        loader,
        Arc::new(clusters),
        cfg.augment.view1.size,
        run.device.clone(),
    );
    let mut optimizer = cfg
        .distill
        .optimizer
        .build()
        .map_err(|e| PipelineError::Other(e.to_string()))?;
    let d = &cfg.distill;
    let fit_cfg = fit_config(
        d.epochs,
        d.warmup_epochs,
        d.log_every,
        d.checkpoint_every,
        d.keep_checkpoints,
        d.clip_grad_norm,
    );
    run.dir.stage_dir(Stage::Distill.name())?;
    let mut metrics = run.metrics()?;
    let io = FitIo::new("distill")
        .with_checkpoints(run.dir.checkpoints_dir(ModelRef::Dnc))
        .with_metrics(&mut metrics)
        .with_resume(resume);
    {
        // Each rank normalises the student's heads with its own share's statistics: the
        // experts' heads see a different number of images on every rank (some none), which
        // synchronised statistics cannot take.
        let _per_rank_statistics = dnc_dist::scoped(group.clone().with_sync_batch_norm(false));
        fit(&mut step, &source, optimizer.as_mut(), &fit_cfg, io)
            .map_err(|e| diverged(e, "distill", d.optimizer.base_lr(), d.warmup_epochs))?;
    }
    if !group.is_leader() {
        return Ok(());
    }
    save_vars(step.vars(), &run.dir.student_path(), |_| true)?;
    // The merged experts the student started from, so evaluation can tell what the merge gave
    // from what distillation added; a re-run with another start leaves no stale file behind.
    let start = run.dir.model_path(ModelRef::DncStart);
    if let (true, Some(init)) = (merges, &student_init) {
        save_encoder(init, &start)?;
    } else if start.is_file() {
        std::fs::remove_file(&start).map_err(|e| PipelineError::io(&start, e))?;
    }
    save_encoder(step.vars(), &run.dir.model_path(ModelRef::Dnc))?;
    record_skipped(run, "distill", &[&train])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn model(a: f32, b: f32) -> VarMap {
        let map = VarMap::new();
        let mut data = map.data().lock().unwrap();
        let t = |v: f32| Var::from_tensor(&Tensor::new(&[v, 2.0 * v], &Device::Cpu).unwrap());
        data.insert("w".into(), t(a).unwrap());
        data.insert("bn.running_mean".into(), t(b).unwrap());
        drop(data);
        map
    }

    fn values(map: &VarMap, name: &str) -> Vec<f32> {
        map.data().lock().unwrap()[name]
            .as_tensor()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn the_expert_mean_weighs_each_expert_by_its_images() {
        let base = model(10.0, 10.0);
        let experts = [model(1.0, 0.0), model(4.0, 3.0)];
        let mean = merge_experts(&base, &experts, &[2, 1], None).unwrap();
        assert_eq!(values(&mean, "w"), [2.0, 4.0]);
        assert_eq!(values(&mean, "bn.running_mean"), [1.0, 2.0]);
        assert!(merge_experts(&base, &[], &[], None).is_err());
    }

    #[test]
    fn the_expert_sum_adds_every_change_to_the_base_and_averages_statistics() {
        let base = model(1.0, 5.0);
        let experts = [model(2.0, 0.0), model(4.0, 3.0)];
        let sum = merge_experts(&base, &experts, &[1, 1], Some(1.0)).unwrap();
        // 1 + (2 - 1) + (4 - 1) = 5, and twice that in the second element.
        assert_eq!(values(&sum, "w"), [5.0, 10.0]);
        assert_eq!(values(&sum, "bn.running_mean"), [1.5, 3.0]);
        // Half the summed changes: 1 + (1 + 3) / 2 = 3; statistics are still averaged.
        let half = merge_experts(&base, &experts, &[1, 1], Some(0.5)).unwrap();
        assert_eq!(values(&half, "w"), [3.0, 6.0]);
        assert_eq!(values(&half, "bn.running_mean"), [1.5, 3.0]);
    }

    #[test]
    fn an_expert_without_a_base_variable_is_an_error_naming_it() {
        let base = model(1.0, 1.0);
        let expert = VarMap::new();
        let Err(err) = merge_experts(&base, &[expert], &[1], Some(1.0)) else {
            panic!("an expert without the base's variables was merged");
        };
        let err = err.to_string();
        assert!(
            err.contains("expert 0") && (err.contains("\"w\"") || err.contains("running_mean")),
            "{err}"
        );
    }
}
