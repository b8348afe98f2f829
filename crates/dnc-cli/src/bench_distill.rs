//! `dnc bench distill`: what a distillation step costs against a MoCLR step, side by side in one
//! process, with the teachers run live on every step and with their targets cached beforehand.
//!
//! Divide and Contrast at a total of T epochs spends T/2 on the base and T/4 on the experts
//! (MoCLR steps both) and T/4 on distillation, so its training costs
//! `0.75 + 0.25 · (distillation step / MoCLR step)` of MoCLR's at the same total. The steps run
//! on the same few batches held in memory (the loader is left out: it runs beside training on
//! its own threads in both), in rounds that take each kind in turn, so that a machine's drift
//! reaches all three alike.

use crate::bench::{StepBenchArgs, encoder_for, open_images};
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use clap::Args;
use dnc_augment::{TwoViewConfig, TwoViewMapper};
use dnc_core::SeededVarMap;
use dnc_data::{Loader, LoaderConfig, stack_chw};
use dnc_distill::{
    CachedTargets, DistillBatch, DistillOptions, DistillStep, StudentMoclr, Teacher,
};
use dnc_engine::{OptimizerConfig, SgdConfig, StepContext, TrainStep};
use dnc_moclr::{MoclrConfig, MoclrStep, ViewPair};
use dnc_models::{Encoder, EncoderConfig, Precision};
use std::time::Instant;

#[derive(Args)]
pub(crate) struct DistillBench {
    #[command(flatten)]
    common: StepBenchArgs,
    /// Experts beside the base (the clusters of the batch's images are spread over them).
    #[arg(long, default_value_t = 5)]
    experts: usize,
    /// Timed steps of each kind per round.
    #[arg(long, default_value_t = 4)]
    steps: usize,
    /// Rounds, each timing MoCLR, live and cached distillation steps in turn (the first step of
    /// each kind is untimed).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// Two views of a batch of images and their dataset indices.
struct Views {
    view1: Tensor,
    view2: Tensor,
    indices: Vec<usize>,
}

/// A fresh encoder's weights as a frozen teacher (its values do not change a step's cost).
fn teacher(model: &EncoderConfig, seed: u64, device: &Device) -> Result<Teacher> {
    let map = SeededVarMap::new(seed);
    Encoder::new(model, map.var_builder(DType::F32, device))?;
    Ok(Teacher::new(model, map.varmap().clone(), device)?)
}

/// One training step of `step` on `views`; its seconds.
fn timed<S: TrainStep>(
    step: &mut S,
    batch: &S::Batch,
    opt: &mut dyn dnc_engine::Optimizer,
    at: usize,
) -> Result<f64> {
    let start = Instant::now();
    let ctx = StepContext {
        epoch: 0,
        batch: at,
        step: at,
        total_steps: 1_000,
        steps_per_epoch: 1_000,
        lr: 0.01,
    };
    let out = step.forward(batch, &ctx)?;
    let grads = out.loss.backward()?;
    opt.step(&step.parameters(), &grads, ctx.lr)?;
    step.after_update(&ctx)?;
    out.loss.to_scalar::<f32>()?; // synchronise (GPU)
    Ok(start.elapsed().as_secs_f64())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

pub(crate) fn bench_distill(a: DistillBench) -> Result<serde_json::Value> {
    anyhow::ensure!(a.experts >= 1, "--experts must be at least 1");
    anyhow::ensure!(
        a.steps >= 1 && a.rounds >= 1,
        "--steps and --rounds must be at least 1"
    );
    let device = a.common.device.open()?;
    let model = encoder_for(&a.common.model, Precision::F32)?;
    // Two batches of views, held in memory.
    let images = open_images(&a.common.data, Some(2 * a.common.batch), true)?;
    let n_images = dnc_data::Dataset::len(&*images);
    let mapper = std::sync::Arc::new(TwoViewMapper::new(TwoViewConfig::cifar(), 1)?);
    let loader_cfg = LoaderConfig {
        batch_size: a.common.batch,
        ..Default::default()
    };
    let loader = Loader::new(images, mapper, loader_cfg)?;
    let chw = (3, 32, 32);
    let mut batches = Vec::new();
    for batch in loader.epoch(0, 0) {
        let batch = batch?;
        batches.push(Views {
            view1: stack_chw(batch.items.iter().map(|t| t.view1.as_slice()), chw, &device)?,
            view2: stack_chw(batch.items.iter().map(|t| t.view2.as_slice()), chw, &device)?,
            indices: batch.items.iter().map(|t| t.index).collect(),
        });
    }
    anyhow::ensure!(
        !batches.is_empty(),
        "{} holds less than one batch of {} images",
        a.common.data.display(),
        a.common.batch
    );

    let mut moclr = MoclrStep::new(
        &model,
        MoclrConfig {
            ema_momentum: 0.99,
            ..Default::default()
        },
        0,
        &device,
    )?;
    // The preset's distillation: zero-initialised heads (past their warm-up) and the student's
    // own MoCLR term on the second view.
    let options = DistillOptions {
        zero_init_heads: true,
        student_moclr: Some(StudentMoclr {
            weight: 1.0,
            temperature: 0.2,
            ema_momentum: 0.99,
            anneal: false,
        }),
        ..DistillOptions::default()
    };
    let experts = (0..a.experts)
        .map(|k| teacher(&model, 2 + k as u64, &device))
        .collect::<Result<Vec<_>>>()?;
    let mut live = DistillStep::with_options(
        &model,
        teacher(&model, 1, &device)?,
        experts,
        0,
        &device,
        options,
    )?;
    let dim = model.projector.out;
    let targets = CachedTargets::new(
        Tensor::randn(0f32, 1.0, (n_images, dim), &device)?,
        Some(Tensor::randn(0f32, 1.0, (n_images, dim), &device)?),
        a.experts,
    )?;
    let mut cached = DistillStep::with_cached_targets(&model, targets, 0, &device, options)?;

    let pairs: Vec<ViewPair> = batches
        .iter()
        .map(|v| ViewPair {
            view1: v.view1.clone(),
            view2: v.view2.clone(),
        })
        .collect();
    let distill_batches: Vec<DistillBatch> = batches
        .iter()
        .map(|v| DistillBatch {
            second_view: Some(v.view2.clone()),
            ..DistillBatch::new(
                v.view1.clone(),
                v.indices.iter().map(|&i| (i % a.experts) as u32).collect(),
            )
            .with_indices(v.indices.clone())
        })
        .collect();
    let sgd = || OptimizerConfig::Sgd(SgdConfig::default()).build();
    let (mut opt_m, mut opt_l, mut opt_c) = (sgd()?, sgd()?, sgd()?);
    let (mut t_moclr, mut t_live, mut t_cached) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..a.rounds {
        // The first step of each kind in a round is untimed (caches, allocator).
        for s in 0..=a.steps {
            let i = (round * a.steps + s) % pairs.len();
            let t = timed(&mut moclr, &pairs[i], opt_m.as_mut(), s)?;
            if s > 0 {
                t_moclr.push(t);
            }
        }
        for s in 0..=a.steps {
            let i = (round * a.steps + s) % pairs.len();
            let t = timed(&mut live, &distill_batches[i], opt_l.as_mut(), s)?;
            if s > 0 {
                t_live.push(t);
            }
        }
        for s in 0..=a.steps {
            let i = (round * a.steps + s) % pairs.len();
            let t = timed(&mut cached, &distill_batches[i], opt_c.as_mut(), s)?;
            if s > 0 {
                t_cached.push(t);
            }
        }
    }
    let (m, l, c) = (median(t_moclr), median(t_live), median(t_cached));
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    Ok(serde_json::json!({
        "model": a.common.model, "batch_size": a.common.batch, "experts": a.experts,
        "timed_steps_each": a.steps * a.rounds, "threads": a.common.threads,
        "device": format!("{device:?}"),
        "cpu": dnc_kernels::machine::cpu_model(), "simd": dnc_kernels::machine::simd_level(),
        "s_per_step": {"moclr": round(m), "distill_live": round(l), "distill_cached": round(c)},
        "over_moclr": {"distill_live": round(l / m), "distill_cached": round(c / m)},
        // Base T/2 and experts T/4 in MoCLR steps, distillation T/4; embedding, k-means and
        // the cached targets' pass are not counted.
        "dnc_training_over_moclr_at_equal_epochs": {
            "live": round(0.75 + 0.25 * l / m),
            "cached": round(0.75 + 0.25 * c / m),
        },
        "cpu_pressure_some": crate::bench::cpu_pressure(),
    }))
}
