//! The distillation training step.

use crate::cached::CachedTargets;
use crate::options::{DistillOptions, HeadBatchNorm};
use crate::provider::Provider;
use crate::teacher::Teacher;
use candle_core::{DType, Device, Result, Tensor, Var, bail};
use candle_nn::{VarBuilder, VarMap};
use dnc_core::{SeededVarMap, l2_normalize, trainable_parameters};
use dnc_engine::{StepContext, StepOutput, TrainStep};
use dnc_models::{
    Encoder, EncoderConfig, RegressionHead, copy_vars, ema_update, frozen_tensors,
    momentum_schedule,
};
use dnc_objectives::{info_nce, moclr_loss_in};

/// One augmented view per image and the cluster of each image, a second view when the student
/// trains with its own MoCLR term, and each image's dataset index when the targets are cached.
///
/// # Shapes
/// `images`, `second_view`: `[B, 3, H, W]`; `clusters`: `B` cluster ids in `0..K`; `indices`:
/// `B` dataset indices.
#[derive(Debug, Clone)]
pub struct DistillBatch {
    pub images: Tensor,
    pub clusters: Vec<u32>,
    pub second_view: Option<Tensor>,
    /// The dataset index of every image, which [`CachedTargets`] are looked up by.
    pub indices: Option<Vec<usize>>,
}

impl DistillBatch {
    /// A batch of one view per image.
    pub fn new(images: Tensor, clusters: Vec<u32>) -> Self {
        Self {
            images,
            clusters,
            second_view: None,
            indices: None,
        }
    }

    /// The batch with the dataset index of every image.
    pub fn with_indices(mut self, indices: Vec<usize>) -> Self {
        self.indices = Some(indices);
        self
    }
}

/// The student's EMA target network, for its MoCLR term.
struct StudentTarget {
    encoder: Encoder,
    vars: VarMap,
    /// The student's encoder variables (shared with the student's map, without the heads).
    student_vars: VarMap,
}

/// A student encoder with K + 1 regression heads, trained against frozen teachers.
///
/// Variables: `backbone.*`, `projector.*` (as any encoder) and `heads.<k>.*`, head 0 for the
/// base and head `c + 1` for expert `c`. Each expert runs only on the sub-batch of its own
/// cluster's images (no wasted teacher forwards), and only those images enter its head's loss.
/// With [`CachedTargets`] no teacher runs at all: a step is one forward and backward of the
/// student. With no experts the student distils the base alone (the paper's Table 11 control);
/// cluster ids are then ignored.
pub struct DistillStep {
    student: Encoder,
    heads: Vec<RegressionHead>,
    vars: VarMap,
    provider: Provider,
    n_experts: usize,
    params: Vec<(String, Var)>,
    options: DistillOptions,
    target: Option<StudentTarget>,
}

impl DistillStep {
    /// A fresh student (seeded) for `base` and one expert per cluster, trained the paper's way.
    pub fn new(
        model: &EncoderConfig,
        base: Teacher,
        experts: Vec<Teacher>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        Self::with_options(
            model,
            base,
            experts,
            seed,
            device,
            DistillOptions::default(),
        )
    }

    /// As [`new`](Self::new), with the training options of `options`.
    pub fn with_options(
        model: &EncoderConfig,
        base: Teacher,
        experts: Vec<Teacher>,
        seed: u64,
        device: &Device,
        options: DistillOptions,
    ) -> Result<Self> {
        let provider = Provider::Teachers {
            base: Box::new(base),
            experts,
        };
        Self::build(model, provider, seed, device, options)
    }

    /// A fresh student (seeded) trained on `targets`, computed beforehand for every image of
    /// the dataset that the batches' indices name: no teacher runs during training.
    pub fn with_cached_targets(
        model: &EncoderConfig,
        targets: CachedTargets,
        seed: u64,
        device: &Device,
        options: DistillOptions,
    ) -> Result<Self> {
        Self::build(model, Provider::Cached(targets), seed, device, options)
    }

    fn build(
        model: &EncoderConfig,
        provider: Provider,
        seed: u64,
        device: &Device,
        options: DistillOptions,
    ) -> Result<Self> {
        options.validate()?;
        let n_experts = provider.n_experts();
        let map = SeededVarMap::new(seed);
        let vb = map.var_builder(DType::F32, device);
        let student = Encoder::new(model, vb.clone())?;
        let (in_dim, head_cfg) = options.target.head_shape(model, &student);
        provider.check_width(head_cfg.out, options.target)?;
        let heads = (0..=n_experts)
            .map(|k| RegressionHead::new(in_dim, &head_cfg, vb.pp("heads").pp(k.to_string())))
            .collect::<Result<Vec<_>>>()?;
        let vars = map.varmap().clone();
        if options.zero_init_heads {
            zero_last_layers(&vars)?;
        }
        let params = trainable_parameters(&vars);
        let target = match options.student_moclr {
            Some(_) => Some(student_target(model, &vars, seed, device)?),
            None => None,
        };
        Ok(Self {
            student,
            heads,
            vars,
            provider,
            n_experts,
            params,
            options,
            target,
        })
    }

    pub fn options(&self) -> &DistillOptions {
        &self.options
    }

    /// Starts the student's backbone and projector from `init` (e.g. the base model); the heads
    /// keep their fresh initialisation.
    pub fn init_student_from(&self, init: &VarMap) -> Result<()> {
        let src = init.data().lock().expect("varmap lock poisoned");
        let dst = self.vars.data().lock().expect("varmap lock poisoned");
        for (name, var) in dst.iter().filter(|(n, _)| !n.starts_with("heads.")) {
            let Some(from) = src.get(name) else {
                bail!("init_student_from: {name:?} is missing from the initial weights")
            };
            var.set(&from.as_detached_tensor().copy()?)?;
        }
        drop(dst);
        if let Some(t) = &self.target {
            copy_vars(&t.vars, &t.student_vars).map_err(candle_core::Error::wrap)?;
        }
        Ok(())
    }

    /// The student encoder; its backbone is the DnC model.
    pub fn student(&self) -> &Encoder {
        &self.student
    }

    /// All student variables (`backbone.*`, `projector.*`, `heads.*`).
    pub fn vars(&self) -> &VarMap {
        &self.vars
    }

    pub fn num_experts(&self) -> usize {
        self.n_experts
    }

    /// Whether the targets are cached (no teacher runs in a step).
    pub fn cached_targets(&self) -> bool {
        matches!(self.provider, Provider::Cached(_))
    }

    /// The frozen teachers (base, experts), `None` with cached targets.
    pub fn teachers(&self) -> Option<(&Teacher, &[Teacher])> {
        self.provider.teachers()
    }

    /// The heads' input (the student's layer of `options.target`) for the first view, and its
    /// MoCLR loss over both views when that term is on (one forward pass over both views, as
    /// MoCLR trains).
    fn student_forward(&self, batch: &DistillBatch) -> Result<(Tensor, Option<Tensor>)> {
        let layer = self.options.target;
        let (Some(target), Some(m)) = (&self.target, &self.options.student_moclr) else {
            let out = self.student.forward_t(&batch.images, true)?;
            return Ok((layer.layer(&out).clone(), None));
        };
        let Some(view2) = &batch.second_view else {
            bail!("the student's MoCLR term needs a second view in every distill batch")
        };
        let b = batch.images.dim(0)?;
        let x = Tensor::cat(&[&batch.images, view2], 0)?;
        let out = self.student.forward_t(&x, true)?;
        let q = l2_normalize(&out.z)?;
        let k = l2_normalize(&target.encoder.forward_t(&x, true)?.z)?.detach();
        // In data-parallel training the keys (the negatives) come from every rank's share.
        let group = dnc_dist::current();
        let comm = group.comm();
        let k1 = dnc_dist::all_gather_rows(&k.narrow(0, 0, b)?, comm)?;
        let k2 = dnc_dist::all_gather_rows(&k.narrow(0, b, b)?, comm)?;
        let loss = moclr_loss_in(
            &q.narrow(0, 0, b)?,
            &q.narrow(0, b, b)?,
            &k1,
            &k2,
            comm.rank() * b,
            m.temperature,
        )?;
        Ok((layer.layer(&out).narrow(0, 0, b)?, Some(loss)))
    }

    /// The expert heads' regression and contrastive sums over their clusters' images, and how
    /// many images had an expert. `cached`: the batch's cached expert targets, `[B, D]`.
    fn expert_terms(
        &self,
        batch: &DistillBatch,
        z: &Tensor,
        cached: Option<&Tensor>,
    ) -> Result<(Terms, usize)> {
        let mut terms = Terms::default();
        let mut routed = 0;
        for c in 0..self.n_experts {
            let rows: Vec<u32> = (0..batch.clusters.len() as u32)
                .filter(|&i| batch.clusters[i as usize] as usize == c)
                .collect();
            if rows.is_empty() {
                continue;
            }
            routed += rows.len();
            let idx = Tensor::new(rows.as_slice(), z.device())?;
            let target = match cached {
                Some(all) => all.index_select(&idx, 0)?,
                None => self
                    .provider
                    .expert_target(c, batch, &idx, self.options.target)?,
            };
            let head = &self.heads[c + 1];
            let pred = match self.options.head_batch_norm {
                HeadBatchNorm::Batch => head.forward_t(z, true)?.index_select(&idx, 0)?,
                HeadBatchNorm::Cluster => {
                    head.forward_t(&z.index_select(&idx, 0)?, rows.len() > 1)?
                }
            };
            terms.add(&pred, &target, &self.options)?;
        }
        Ok((terms, routed))
    }
}

/// Sums over images of the regression term and (when enabled) the contrastive term.
#[derive(Default)]
struct Terms {
    regression: Option<Tensor>,
    contrastive: Option<Tensor>,
}

impl Terms {
    fn add(&mut self, pred: &Tensor, target: &Tensor, options: &DistillOptions) -> Result<()> {
        accumulate(&mut self.regression, half_squared_error_sum(pred, target)?)?;
        let n = pred.dim(0)?;
        if options.contrastive_weight > 0.0 && n > 1 {
            let nce = info_nce(
                &l2_normalize(pred)?,
                target,
                options.contrastive_temperature,
            )?;
            accumulate(&mut self.contrastive, nce.affine(n as f64, 0.0)?)?;
        }
        Ok(())
    }
}

fn accumulate(total: &mut Option<Tensor>, term: Tensor) -> Result<()> {
    *total = Some(match total.take() {
        Some(t) => (t + term)?,
        None => term,
    });
    Ok(())
}

/// An EMA target network that starts as a copy of the student's encoder.
fn student_target(
    model: &EncoderConfig,
    student: &VarMap,
    seed: u64,
    device: &Device,
) -> Result<StudentTarget> {
    let student_vars = VarMap::new();
    {
        let src = student.data().lock().expect("varmap lock poisoned");
        let mut dst = student_vars.data().lock().expect("varmap lock poisoned");
        for (name, var) in src.iter().filter(|(n, _)| !n.starts_with("heads.")) {
            dst.insert(name.clone(), var.clone());
        }
    }
    let map = SeededVarMap::new(seed);
    Encoder::new(model, map.var_builder(DType::F32, device))?;
    let vars = map.varmap().clone();
    copy_vars(&vars, &student_vars).map_err(candle_core::Error::wrap)?;
    let frozen = VarBuilder::from_tensors(frozen_tensors(&vars), DType::F32, device);
    Ok(StudentTarget {
        encoder: Encoder::new(model, frozen)?,
        vars,
        student_vars,
    })
}

/// Sets the last linear layer (`3.weight`, `3.bias`) of every head to zero.
fn zero_last_layers(vars: &VarMap) -> Result<()> {
    let data = vars.data().lock().expect("varmap lock poisoned");
    for (name, var) in data.iter() {
        if name.starts_with("heads.") && (name.ends_with(".3.weight") || name.ends_with(".3.bias"))
        {
            var.set(&var.as_tensor().zeros_like()?)?;
        }
    }
    Ok(())
}

/// Σ_i ½‖pred_i − target_i‖².
fn half_squared_error_sum(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    (pred - target)?.sqr()?.sum_all()?.affine(0.5, 0.0)
}

impl TrainStep for DistillStep {
    type Batch = DistillBatch;

    fn forward(&mut self, batch: &DistillBatch, ctx: &StepContext) -> Result<StepOutput> {
        let b = batch.images.dim(0)?;
        if batch.clusters.len() != b {
            bail!(
                "distill batch has {b} images but {} cluster ids",
                batch.clusters.len()
            )
        }
        if self.n_experts > 0
            && let Some(&bad) = batch
                .clusters
                .iter()
                .find(|&&c| c as usize >= self.n_experts)
        {
            bail!(
                "cluster id {bad} in a batch, but there are {} experts",
                self.n_experts
            )
        }
        let heads_only = self.options.heads_only(ctx.step, ctx.steps_per_epoch);
        let (z, student_moclr) = self.student_forward(batch)?;
        let z = if heads_only { z.detach() } else { z };
        let (t0, cached_experts) = self.provider.targets(batch, self.options.target)?;
        let r0 = self.heads[0].forward_t(&z, true)?;
        let mut base = Terms::default();
        base.add(&r0, &t0, &self.options)?;
        let (experts, routed) = self.expert_terms(batch, &z, cached_experts.as_ref())?;
        debug_assert!(self.n_experts == 0 || routed == b);
        let per_image = 1.0 / b as f64;
        let mut metrics = Vec::new();
        let mut loss: Option<Tensor> = None;
        for (name, term, weight) in [
            ("loss_base", base.regression, self.options.regression_weight),
            (
                "loss_experts",
                experts.regression,
                self.options.regression_weight,
            ),
            (
                "loss_contrastive_base",
                base.contrastive,
                self.options.contrastive_weight,
            ),
            (
                "loss_contrastive_experts",
                experts.contrastive,
                self.options.contrastive_weight,
            ),
        ] {
            let Some(term) = term else { continue };
            let mean = term.affine(per_image, 0.0)?;
            metrics.push((name.to_string(), scalar(&mean)?));
            accumulate(&mut loss, mean.affine(weight, 0.0)?)?;
        }
        if heads_only {
            metrics.push(("heads_only".to_string(), 1.0));
        }
        if let (Some(term), Some(m)) = (student_moclr, &self.options.student_moclr) {
            metrics.push(("loss_student_moclr".to_string(), scalar(&term)?));
            let weight = m.weight_at(ctx.step, ctx.total_steps);
            if m.anneal {
                metrics.push(("student_moclr_weight".to_string(), weight));
            }
            accumulate(&mut loss, term.affine(weight, 0.0)?)?;
        }
        let loss = loss.expect("the base term is always present");
        let mut out = StepOutput::new(loss, b);
        out.metrics = metrics;
        Ok(out)
    }

    fn after_update(&mut self, ctx: &StepContext) -> Result<()> {
        if let (Some(t), Some(m)) = (&self.target, &self.options.student_moclr) {
            let m = momentum_schedule(ctx.step as u64, ctx.total_steps as u64, m.ema_momentum);
            ema_update(&t.vars, &t.student_vars, m).map_err(candle_core::Error::wrap)?;
        }
        Ok(())
    }

    fn parameters(&self) -> Vec<(String, Var)> {
        self.params.clone()
    }

    fn state(&self) -> Vec<(String, VarMap)> {
        let mut state = vec![("student".to_string(), self.vars.clone())];
        if let Some(t) = &self.target {
            state.push(("target".to_string(), t.vars.clone()));
        }
        state
    }
}

fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)?.to_scalar::<f64>()
}

#[cfg(test)]
#[path = "step_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "step_cached_tests.rs"]
mod cached_tests;
