//! SGD with momentum and weight decay, as PyTorch's `torch.optim.SGD` (no dampening).

use candle_core::backprop::GradStore;
use candle_core::{Result, Var};
use dnc_core::is_no_decay;

use super::{MomentumBuffers, Optimizer, SgdConfig, add_weight_decay, apply, gradient};
use crate::error::ConfigError;

/// SGD with momentum: `d = g + wd·w` (no decay for rank < 2), `buf = μ·buf + d` (`buf = d` on
/// the first step), `w ← w − lr·buf` (or `w ← w − lr·(d + μ·buf)` with Nesterov momentum).
#[derive(Debug, Clone)]
pub struct Sgd {
    config: SgdConfig,
    buffers: MomentumBuffers,
}

impl Sgd {
    /// An optimiser with empty momentum buffers; fails on invalid settings.
    pub fn new(config: SgdConfig) -> std::result::Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            buffers: MomentumBuffers::new(),
        })
    }

    pub fn config(&self) -> &SgdConfig {
        &self.config
    }
}

impl Optimizer for Sgd {
    fn name(&self) -> &'static str {
        "sgd"
    }

    fn base_lr(&self) -> f64 {
        self.config.base_lr
    }

    fn step(&mut self, params: &[(String, Var)], grads: &GradStore, lr: f64) -> Result<()> {
        let SgdConfig {
            momentum,
            weight_decay,
            nesterov,
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
                add_weight_decay(d, &w, weight_decay)?
            };
            let direction = self.buffers.advance(name, d, momentum, nesterov)?;
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
