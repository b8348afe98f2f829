//! How the distillation step trains: the paper's recipe by default, and the options measured
//! against it (`docs/dnc.md` has the numbers).

use candle_core::{Result, Tensor, bail};
use dnc_models::{Encoder, EncoderConfig, EncoderOutput, RegressionHeadConfig};
use serde::{Deserialize, Serialize};

/// Which layer the heads read from the student and regress on every teacher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistillTarget {
    /// The student's projection `z` → each teacher's L2-normalised projection (the paper).
    #[default]
    Projection,
    /// The student's backbone features → each teacher's L2-normalised backbone features: the
    /// layer that evaluation reads and the DnC model keeps.
    Features,
}

impl DistillTarget {
    /// The layer of `out` that this target names.
    pub fn layer(self, out: &EncoderOutput) -> &Tensor {
        match self {
            DistillTarget::Projection => &out.z,
            DistillTarget::Features => &out.features,
        }
    }

    /// Input width and shape of a regression head for a student `encoder` of architecture
    /// `model`: the projector's layers, with the chosen layer's width at both ends.
    pub fn head_shape(
        self,
        model: &EncoderConfig,
        encoder: &Encoder,
    ) -> (usize, RegressionHeadConfig) {
        let mut cfg = model.projector.regression_head();
        let width = match self {
            DistillTarget::Projection => encoder.out_dim(),
            DistillTarget::Features => encoder.backbone().out_dim(),
        };
        cfg.out = width;
        (width, cfg)
    }
}

/// Where the teachers' targets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetSource {
    /// The frozen teachers run on every step's augmented view (the paper's main recipe).
    #[default]
    Augmented,
    /// Computed once from each training image's centre crop and read back every step, which
    /// then runs the student alone ([`CachedTargets`](crate::CachedTargets); the paper's
    /// appendix: 75.6% against 75.8% linear top-1 with augmented views).
    Cached,
}

/// Where the expert heads' BatchNorm takes its batch statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadBatchNorm {
    /// Every expert head runs on the whole batch (statistics over all its images); only its
    /// own cluster's rows enter the loss. Stable whatever the clusters' share of a batch.
    #[default]
    Batch,
    /// Every expert head runs on its cluster's sub-batch only (statistics over a few images).
    /// A sub-batch of one image uses the head's running statistics instead.
    Cluster,
}

/// A MoCLR term on the student itself, beside the regression: its projections of two views
/// against its own EMA target network's, as the base model was trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StudentMoclr {
    pub weight: f64,
    pub temperature: f64,
    /// Initial momentum of the target network (raised to 1 on a cosine, as in MoCLR).
    pub ema_momentum: f64,
    /// Lower the weight from `weight` at the first step (0) to 0 at the last (`total_steps - 1`),
    /// on a cosine: the student's own term carries it early, and the teachers' targets have the
    /// last word.
    pub anneal: bool,
}

impl StudentMoclr {
    /// The term's weight at `step` (counted from 0) of `total_steps`.
    pub fn weight_at(&self, step: usize, total_steps: usize) -> f64 {
        if !self.anneal {
            return self.weight;
        }
        let last = total_steps.saturating_sub(1).max(1);
        let t = step.min(last) as f64 / last as f64;
        self.weight * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// Options of [`DistillStep`](crate::DistillStep).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DistillOptions {
    /// Weight of the regression terms (1: the paper; the scale against the other terms).
    pub regression_weight: f64,
    /// Epochs at the start during which only the heads learn: the student's projection is
    /// detached, so that the random heads' first gradients cannot reach the trained backbone.
    pub head_warmup_epochs: f64,
    /// Start every head's last linear layer at zero: predictions start at 0 and the loss at
    /// ½ per term, and the student's first gradients are zero.
    pub zero_init_heads: bool,
    pub head_batch_norm: HeadBatchNorm,
    /// Weight of an in-batch contrastive term beside the regression (0 = none, the paper): for
    /// each head, InfoNCE between its L2-normalised predictions and its targets, the other
    /// images of the (cluster's) batch as negatives.
    pub contrastive_weight: f64,
    /// Temperature of the contrastive term.
    pub contrastive_temperature: f64,
    /// The student's own MoCLR term (None: the paper); batches then carry a second view.
    pub student_moclr: Option<StudentMoclr>,
    /// The layer the heads read and regress.
    pub target: DistillTarget,
}

impl Default for DistillOptions {
    fn default() -> Self {
        Self {
            regression_weight: 1.0,
            head_warmup_epochs: 0.0,
            zero_init_heads: false,
            head_batch_norm: HeadBatchNorm::Batch,
            contrastive_weight: 0.0,
            contrastive_temperature: 0.1,
            student_moclr: None,
            target: DistillTarget::Projection,
        }
    }
}

impl DistillOptions {
    pub fn validate(&self) -> Result<()> {
        if !(self.regression_weight.is_finite() && self.regression_weight > 0.0) {
            bail!(
                "regression_weight must be a finite number > 0, got {}",
                self.regression_weight
            )
        }
        if !(self.head_warmup_epochs.is_finite() && self.head_warmup_epochs >= 0.0) {
            bail!(
                "head_warmup_epochs must be a finite number >= 0, got {}",
                self.head_warmup_epochs
            )
        }
        if !(self.contrastive_weight.is_finite() && self.contrastive_weight >= 0.0) {
            bail!(
                "contrastive_weight must be a finite number >= 0, got {}",
                self.contrastive_weight
            )
        }
        if !(self.contrastive_temperature.is_finite() && self.contrastive_temperature > 0.0) {
            bail!(
                "contrastive_temperature must be a finite number > 0, got {}",
                self.contrastive_temperature
            )
        }
        if self.zero_init_heads && self.contrastive_weight > 0.0 {
            bail!(
                "contrastive_weight {} needs heads that do not start at zero: the contrastive term \
                 normalises the predictions, and a zero prediction has no direction (its gradient \
                 is unbounded)",
                self.contrastive_weight
            )
        }
        if let Some(m) = &self.student_moclr {
            if !(m.weight.is_finite() && m.weight > 0.0) {
                bail!(
                    "student MoCLR weight must be a finite number > 0, got {}",
                    m.weight
                )
            }
            if !(m.temperature.is_finite() && m.temperature > 0.0) {
                bail!(
                    "student MoCLR temperature must be a finite number > 0, got {}",
                    m.temperature
                )
            }
            if !(0.0..=1.0).contains(&m.ema_momentum) {
                bail!(
                    "student MoCLR ema_momentum must be in [0, 1], got {}",
                    m.ema_momentum
                )
            }
        }
        Ok(())
    }

    /// Whether the step at `step` (of `steps_per_epoch` per epoch) is still in the heads'
    /// warm-up.
    pub fn heads_only(&self, step: usize, steps_per_epoch: usize) -> bool {
        (step as f64) < self.head_warmup_epochs * steps_per_epoch as f64
    }
}
