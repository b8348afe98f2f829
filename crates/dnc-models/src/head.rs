//! MLP heads: the projector `g` and the distillation regression heads of Divide and Contrast
//! (arXiv 2105.08054, sections 3 and 3.3).
//!
//! The projector is `Linear(d, hidden) → BN → ReLU → Linear(hidden, out) → BN` (SimCLR v2 / BYOL
//! style; 4096 → 256 for ResNet-50); its hidden layer, after BN and ReLU, is the representation
//! DnC clusters. A regression head has the same shape without the final BatchNorm. Names follow
//! an `nn.Sequential`: `0.weight` (first Linear, no bias: the BatchNorm after it makes a bias
//! redundant), `1.*` (BatchNorm), `3.weight` and `3.bias` (second Linear), `4.*` (final BatchNorm).

use crate::batch_norm::{BatchNorm, BatchNormConfig};
use crate::error::ModelError;
use crate::linear::linear;
use crate::precision::linear_forward;
use candle_core::{Result, Tensor, bail};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

/// The projector section of a model configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectorConfig {
    /// Width of the hidden layer (paper, ResNet-50: 4096; torch_ref's CPU recipe: 512).
    pub hidden: usize,
    /// Width of the projection `z` (paper: 256; torch_ref: 128).
    pub out: usize,
    /// BatchNorm after the second Linear (paper: true; torch_ref: false).
    pub final_bn: bool,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            hidden: 4096,
            out: 256,
            final_bn: true,
        }
    }
}

impl ProjectorConfig {
    /// Checks the values once, when the configuration is loaded.
    pub fn validate(&self) -> std::result::Result<(), ModelError> {
        check_widths("projector", self.hidden, self.out)
    }

    /// The regression head of the same shape (a head has no final BatchNorm).
    pub fn regression_head(&self) -> RegressionHeadConfig {
        RegressionHeadConfig {
            hidden: self.hidden,
            out: self.out,
        }
    }
}

/// Shape of a distillation regression head: the projector's, without its final BatchNorm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegressionHeadConfig {
    /// Width of the hidden layer (paper: 4096, as the projector).
    pub hidden: usize,
    /// Width of the prediction; must equal the teachers' projection width (paper: 256).
    pub out: usize,
}

impl Default for RegressionHeadConfig {
    fn default() -> Self {
        ProjectorConfig::default().regression_head()
    }
}

impl RegressionHeadConfig {
    /// Checks the values once, when the configuration is loaded.
    pub fn validate(&self) -> std::result::Result<(), ModelError> {
        check_widths("regression head", self.hidden, self.out)
    }
}

fn check_widths(
    what: &'static str,
    hidden: usize,
    out: usize,
) -> std::result::Result<(), ModelError> {
    if hidden == 0 || out == 0 {
        return Err(ModelError::InvalidConfig {
            field: what,
            reason: format!("widths must be non-zero, got hidden {hidden} and out {out}"),
        });
    }
    Ok(())
}

/// What an MLP head computes.
#[derive(Debug, Clone)]
pub struct ProjectorOutput {
    /// The hidden layer after BatchNorm and ReLU (non-negative): DnC's clustering layer.
    pub hidden: Tensor,
    /// The head's output, not normalised.
    pub out: Tensor,
}

/// `Linear → BN → ReLU → Linear (→ BN)`.
#[derive(Debug, Clone)]
pub struct MlpHead {
    fc1: Linear,
    bn1: BatchNorm,
    fc2: Linear,
    bn2: Option<BatchNorm>,
    out_dim: usize,
}

impl MlpHead {
    pub fn new(
        in_dim: usize,
        hidden: usize,
        out: usize,
        final_bn: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        if let Err(e) = check_widths("mlp head", hidden, out) {
            bail!("{e}")
        }
        let bn = BatchNormConfig::default();
        Ok(Self {
            fc1: linear(in_dim, hidden, false, vb.pp("0"))?,
            bn1: BatchNorm::new(hidden, bn, vb.pp("1"))?,
            fc2: linear(hidden, out, true, vb.pp("3"))?,
            bn2: if final_bn {
                Some(BatchNorm::new(out, bn, vb.pp("4"))?)
            } else {
                None
            },
            out_dim: out,
        })
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// # Shapes
    /// `xs`: `[N, in_dim]` → hidden `[N, hidden]`, out `[N, out]`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<ProjectorOutput> {
        let hidden = self
            .bn1
            .forward_relu_t(&linear_forward(&self.fc1, xs)?, train)?;
        let out = linear_forward(&self.fc2, &hidden)?;
        let out = match &self.bn2 {
            Some(bn) => bn.forward_t(&out, train)?,
            None => out,
        };
        Ok(ProjectorOutput { hidden, out })
    }
}

/// The projector `g` of an encoder.
#[derive(Debug, Clone)]
pub struct Projector {
    mlp: MlpHead,
}

impl Projector {
    pub fn new(in_dim: usize, cfg: &ProjectorConfig, vb: VarBuilder) -> Result<Self> {
        let mlp = MlpHead::new(in_dim, cfg.hidden, cfg.out, cfg.final_bn, vb)?;
        Ok(Self { mlp })
    }

    pub fn out_dim(&self) -> usize {
        self.mlp.out_dim()
    }

    /// # Shapes
    /// `xs`: `[N, in_dim]` → hidden `[N, hidden]`, out `[N, out]`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<ProjectorOutput> {
        self.mlp.forward_t(xs, train)
    }
}

/// A distillation regression head `r_k` of the DnC student.
#[derive(Debug, Clone)]
pub struct RegressionHead {
    mlp: MlpHead,
}

impl RegressionHead {
    pub fn new(in_dim: usize, cfg: &RegressionHeadConfig, vb: VarBuilder) -> Result<Self> {
        let mlp = MlpHead::new(in_dim, cfg.hidden, cfg.out, false, vb)?;
        Ok(Self { mlp })
    }

    pub fn out_dim(&self) -> usize {
        self.mlp.out_dim()
    }

    /// The head's prediction, not normalised.
    ///
    /// # Shapes
    /// `xs`: `[N, in_dim]` → `[N, out]`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.mlp.forward_t(xs, train)?.out)
    }
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
