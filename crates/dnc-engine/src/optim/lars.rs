//! LARS: SGD with momentum and a layer-wise trust ratio (You, Gitman & Ginsburg, "Large Batch
//! Training of Convolutional Networks", arXiv 1708.03888), in the form used by SimCLR, BYOL and
//! Divide and Contrast (arXiv 2105.08054), and by the `LARS` class of `anchors/torch_ref.py`.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use dnc_core::is_no_decay;

use super::{LarsConfig, MomentumBuffers, Optimizer, add_weight_decay, apply, gradient};
use crate::error::ConfigError;

/// LARS. For parameters of rank ≥ 2: `d = g + wd·w`, then `d ← d · η‖w‖/‖d‖` when both norms
/// are positive (trust 1 otherwise). Biases and normalisation parameters (rank < 2) get neither
/// weight decay nor the trust ratio. Then momentum as in [`Sgd`](super::Sgd):
/// `buf = μ·buf + d`, `w ← w − lr·buf`.
#[derive(Debug, Clone)]
pub struct Lars {
    config: LarsConfig,
    buffers: MomentumBuffers,
}

impl Lars {
    /// An optimiser with empty momentum buffers; fails on invalid settings.
    pub fn new(config: LarsConfig) -> std::result::Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            buffers: MomentumBuffers::new(),
        })
    }

    pub fn config(&self) -> &LarsConfig {
        &self.config
    }
}

/// `η‖w‖/‖d‖` if both norms are positive, else 1, computed on the device (no host sync).
///
/// # Shapes
/// `w`, `d`: the same shape; returns a scalar (rank 0) tensor.
pub fn trust_ratio(w: &Tensor, d: &Tensor, eta: f64) -> Result<Tensor> {
    let w_norm = w.sqr()?.sum_all()?.sqrt()?;
    let d_norm = d.sqr()?.sum_all()?.sqrt()?;
    let both_positive = (w_norm.gt(0.0)? * d_norm.gt(0.0)?)?;
    let ratio = (w_norm.affine(eta, 0.0)? / &d_norm)?;
    both_positive.where_cond(&ratio, &w_norm.ones_like()?)
}

impl Optimizer for Lars {
    fn name(&self) -> &'static str {
        "lars"
    }

    fn base_lr(&self) -> f64 {
        self.config.base_lr
    }

    fn step(&mut self, params: &[(String, Var)], grads: &GradStore, lr: f64) -> Result<()> {
        let LarsConfig {
            momentum,
            weight_decay,
            eta,
            ..
        } = self.config;
        for (name, var) in params {
            let Some(d) = gradient(name, var, grads)? else {
                continue;
            };
            let w = var.as_detached_tensor();
            let d = if is_no_decay(var.rank()) {
                d
            } else {
                let d = add_weight_decay(d, &w, weight_decay)?;
                d.broadcast_mul(&trust_ratio(&w, &d, eta)?)?
            };
            let direction = self.buffers.advance(name, d, momentum, false)?;
            apply(var, &w, &direction, lr)?;
        }
        Ok(())
    }

    fn buffers(&self) -> &MomentumBuffers {
        &self.buffers
    }

    fn buffers_mut(&mut self) -> &mut MomentumBuffers {
        &mut self.buffers
    }
}
