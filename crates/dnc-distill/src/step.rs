//! The distillation training step.

use crate::teacher::Teacher;
use candle_core::{DType, Device, Result, Tensor, Var, bail};
use candle_nn::VarMap;
use dnc_core::{SeededVarMap, trainable_parameters};
use dnc_engine::{StepContext, StepOutput, TrainStep};
use dnc_models::{Encoder, EncoderConfig, RegressionHead};

/// One augmented view per image and the cluster of each image.
///
/// # Shapes
/// `images`: `[B, 3, H, W]`; `clusters`: `B` cluster ids in `0..K`.
#[derive(Debug, Clone)]
pub struct DistillBatch {
    pub images: Tensor,
    pub clusters: Vec<u32>,
}

/// A student encoder with K + 1 regression heads, trained against frozen teachers.
///
/// Variables: `backbone.*`, `projector.*` (as any encoder) and `heads.<k>.*`, head 0 for the
/// base and head `c + 1` for expert `c`. Each expert runs only on the sub-batch of its own
/// cluster's images (no wasted teacher forwards); each expert head sees only those images.
pub struct DistillStep {
    student: Encoder,
    heads: Vec<RegressionHead>,
    vars: VarMap,
    base: Teacher,
    experts: Vec<Teacher>,
    params: Vec<(String, Var)>,
}

impl DistillStep {
    /// A fresh student (seeded) for `base` and one expert per cluster.
    pub fn new(
        model: &EncoderConfig,
        base: Teacher,
        experts: Vec<Teacher>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if experts.is_empty() {
            bail!("distillation needs at least one expert, got none")
        }
        let map = SeededVarMap::new(seed);
        let vb = map.var_builder(DType::F32, device);
        let student = Encoder::new(model, vb.clone())?;
        let z_dim = student.projector().out_dim();
        let head_cfg = model.projector.regression_head();
        let heads = (0..=experts.len())
            .map(|k| RegressionHead::new(z_dim, &head_cfg, vb.pp("heads").pp(k.to_string())))
            .collect::<Result<Vec<_>>>()?;
        let vars = map.varmap().clone();
        let params = trainable_parameters(&vars);
        Ok(Self {
            student,
            heads,
            vars,
            base,
            experts,
            params,
        })
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
        self.experts.len()
    }

    /// Sum over the cluster sub-batches of ½‖r_c − t_c‖², and how many images had an expert.
    fn expert_terms(&self, batch: &DistillBatch, z: &Tensor) -> Result<(Option<Tensor>, usize)> {
        let mut total: Option<Tensor> = None;
        let mut routed = 0;
        for (c, expert) in self.experts.iter().enumerate() {
            let rows: Vec<u32> = (0..batch.clusters.len() as u32)
                .filter(|&i| batch.clusters[i as usize] as usize == c)
                .collect();
            if rows.is_empty() {
                continue;
            }
            routed += rows.len();
            let idx = Tensor::new(rows.as_slice(), z.device())?;
            let target = expert.target(&batch.images.index_select(&idx, 0)?)?;
            let pred = self.heads[c + 1].forward_t(&z.index_select(&idx, 0)?, true)?;
            let term = half_squared_error_sum(&pred, &target)?;
            total = Some(match total {
                Some(t) => (t + term)?,
                None => term,
            });
        }
        Ok((total, routed))
    }
}

/// Σ_i ½‖pred_i − target_i‖².
fn half_squared_error_sum(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    (pred - target)?.sqr()?.sum_all()?.affine(0.5, 0.0)
}

impl TrainStep for DistillStep {
    type Batch = DistillBatch;

    fn forward(&mut self, batch: &DistillBatch, _ctx: &StepContext) -> Result<StepOutput> {
        let b = batch.images.dim(0)?;
        if batch.clusters.len() != b {
            bail!(
                "distill batch has {b} images but {} cluster ids",
                batch.clusters.len()
            )
        }
        if let Some(&bad) = batch
            .clusters
            .iter()
            .find(|&&c| c as usize >= self.experts.len())
        {
            bail!(
                "cluster id {bad} in a batch, but there are {} experts",
                self.experts.len()
            )
        }
        let z = self.student.forward_t(&batch.images, true)?.z;
        let t0 = self.base.target(&batch.images)?;
        let r0 = self.heads[0].forward_t(&z, true)?;
        let base_term = half_squared_error_sum(&r0, &t0)?;
        let (expert_term, routed) = self.expert_terms(batch, &z)?;
        let base_loss = base_term.affine(1.0 / b as f64, 0.0)?;
        let mut out_metrics = vec![("loss_base".to_string(), scalar(&base_loss)?)];
        let loss = match expert_term {
            Some(term) => {
                let expert_loss = term.affine(1.0 / b as f64, 0.0)?;
                out_metrics.push(("loss_experts".to_string(), scalar(&expert_loss)?));
                (base_loss + expert_loss)?
            }
            None => base_loss,
        };
        debug_assert_eq!(routed, b);
        let mut out = StepOutput::new(loss, b);
        out.metrics = out_metrics;
        Ok(out)
    }

    fn parameters(&self) -> Vec<(String, Var)> {
        self.params.clone()
    }

    fn state(&self) -> Vec<(String, VarMap)> {
        vec![("student".to_string(), self.vars.clone())]
    }
}

fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)?.to_scalar::<f64>()
}

#[cfg(test)]
#[path = "step_tests.rs"]
mod tests;
