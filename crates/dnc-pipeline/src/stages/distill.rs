//! Distil the base model and the experts into one student (SPEC step 4).
//!
//! Writes `distill/student.safetensors` (student with its K + 1 heads, or one head when
//! `distill.teachers = "base"`) and `distill/model.safetensors` (its encoder: the DnC model).

use super::cluster::load_assignments;
use super::experts::{cluster_count, expert_dir};
use crate::config::{Init, Teachers};
use crate::datasets::{Split, open_split};
use crate::error::PipelineError;
use crate::run::Run;
use crate::sources::{DistillSource, DistillViewMapper};
use crate::train::{fit_config, train_loader_config};
use crate::weights::{load_encoder, save_encoder, save_vars};
use dnc_data::{Dataset, Loader};
use dnc_distill::{DistillStep, Teacher};
use dnc_engine::{FitIo, fit};
use std::sync::Arc;

/// Seed offset of the student, so it never starts from the base's initial weights by accident.
const STUDENT_SEED: u64 = 0x5354_5544;

pub(crate) fn run(run: &Run, resume: bool) -> Result<(), PipelineError> {
    let cfg = &run.cfg;
    let train = open_split(&cfg.data, Split::Train)?;
    let clusters = load_assignments(run, train.len())?;
    let k = cluster_count(&clusters);
    let base_path = run.dir.root().join("base/model.safetensors");
    let (_, base_vars) = load_encoder(&cfg.model, &base_path, &run.device)?;
    let n_experts = match cfg.distill.teachers {
        Teachers::All => k,
        Teachers::Base => 0,
    };
    let experts = (0..n_experts)
        .map(|c| {
            let (_, vars) = load_encoder(
                &cfg.model,
                &expert_dir(run, c).join("model.safetensors"),
                &run.device,
            )?;
            Ok(Teacher::new(&cfg.model, vars, &run.device)?)
        })
        .collect::<Result<Vec<_>, PipelineError>>()?;
    let seed = cfg.seed ^ STUDENT_SEED;
    let mut step = DistillStep::with_options(
        &cfg.model,
        Teacher::new(&cfg.model, base_vars.clone(), &run.device)?,
        experts,
        seed,
        &run.device,
        cfg.distill_options(),
    )?;
    if cfg.distill.init == Init::Base {
        step.init_student_from(&base_vars)?;
    }
    let second_view = (cfg.distill.student_moclr_weight > 0.0).then(|| cfg.augment.view2.clone());
    let mapper = Arc::new(DistillViewMapper::new(
        cfg.augment.view1.clone(),
        second_view,
        seed,
    ));
    let loader = Loader::new(
        train,
        mapper,
        train_loader_config(cfg, cfg.distill.batch_size, seed),
    )?;
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
    );
    let dir = run.dir.stage_dir("distill")?;
    let mut metrics = run.metrics()?;
    let io = FitIo::new("distill")
        .with_checkpoints(dir.join("checkpoints"))
        .with_metrics(&mut metrics)
        .with_resume(resume);
    fit(&mut step, &source, optimizer.as_mut(), &fit_cfg, io)?;
    save_vars(step.vars(), &dir.join("student.safetensors"), |_| true)?;
    save_encoder(step.vars(), &dir.join("model.safetensors"))
}
