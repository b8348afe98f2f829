//! The encoder of Divide and Contrast (arXiv 2105.08054): backbone `f` followed by projector `g`.
//!
//! Variables live under `backbone.*` and `projector.*` of one map, so an online network, its EMA
//! target and a distillation student all share one layout.

use crate::backbone::{Backbone, BackboneConfig};
use crate::error::ModelError;
use crate::head::{Projector, ProjectorConfig};
use crate::precision::{Precision, autocast};
use candle_core::{Result, Tensor, bail};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// The model section of a run configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncoderConfig {
    pub backbone: BackboneConfig,
    pub projector: ProjectorConfig,
    /// `f32`, or `bf16` convolutions and matrix products with f32 weights, BatchNorm and loss
    /// (see [`Precision`]).
    pub precision: Precision,
}

impl EncoderConfig {
    /// Checks the values once, when the configuration is loaded.
    pub fn validate(&self) -> std::result::Result<(), ModelError> {
        self.backbone.validate()?;
        self.projector.validate()
    }
}

/// Everything an encoder computes on a batch.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// Backbone features `f(x)`: what evaluation and the DnC student keep.
    pub features: Tensor,
    /// Projector hidden layer after BatchNorm and ReLU: what DnC clusters.
    pub hidden: Tensor,
    /// Projection `g(f(x))`, not normalised (callers apply `dnc_core::l2_normalize`).
    pub z: Tensor,
}

/// Backbone and projector.
#[derive(Debug, Clone)]
pub struct Encoder {
    backbone: Backbone,
    projector: Projector,
    precision: Precision,
}

impl Encoder {
    /// Builds the backbone under `vb.pp("backbone")` and the projector under `vb.pp("projector")`.
    pub fn new(cfg: &EncoderConfig, vb: VarBuilder) -> Result<Self> {
        if let Err(e) = cfg.validate() {
            bail!("{e}")
        }
        let backbone = Backbone::new(&cfg.backbone, vb.pp("backbone"))?;
        let projector = Projector::new(backbone.out_dim(), &cfg.projector, vb.pp("projector"))?;
        Ok(Self {
            backbone,
            projector,
            precision: cfg.precision,
        })
    }

    pub fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    pub fn projector(&self) -> &Projector {
        &self.projector
    }

    /// Width of the projection `z`.
    pub fn out_dim(&self) -> usize {
        self.projector.out_dim()
    }

    /// # Shapes
    /// `xs`: `[N, 3, H, W]` → features `[N, D]`, hidden `[N, hidden]`, z `[N, out]`.
    /// Runs in the configured [`Precision`]; the outputs are f32 either way.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<EncoderOutput> {
        let _precision = autocast(self.precision);
        let features = self.backbone.forward_t(xs, train)?;
        let proj = self.projector.forward_t(&features, train)?;
        Ok(EncoderOutput {
            features,
            hidden: proj.hidden,
            z: proj.out,
        })
    }
}

#[cfg(test)]
#[path = "encoder_tests.rs"]
mod tests;
