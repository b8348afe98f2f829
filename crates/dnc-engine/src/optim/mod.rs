//! Optimisers with parameter groups and checkpointable state: SGD with momentum and LARS.
//!
//! candle has only plain SGD and AdamW, without momentum, parameter groups or state saving.
//! Both optimisers here follow PyTorch's SGD (momentum without dampening) and exclude biases
//! and normalisation parameters (rank < 2, [`dnc_core::is_no_decay`]) from weight decay and from
//! LARS's trust ratio, as SimCLR, BYOL and Divide and Contrast (arXiv 2105.08054) do. Updates
//! work on detached tensors and write through [`Var::set`], so they build no autograd graph.

mod buffers;
mod config;
mod lars;
mod sgd;

pub use buffers::MomentumBuffers;
pub use config::{LarsConfig, OptimizerConfig, SgdConfig};
pub use lars::{Lars, trust_ratio};
pub use sgd::Sgd;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// A first-order optimiser whose only state is its momentum buffers.
pub trait Optimizer {
    /// A short name recorded in checkpoints (`"sgd"`, `"lars"`).
    fn name(&self) -> &'static str;

    /// The learning rate at batch size 256, before the schedule.
    fn base_lr(&self) -> f64;

    /// Updates every parameter that has a gradient in `grads` with learning rate `lr`;
    /// parameters without one are left alone (their buffers too), as in PyTorch.
    fn step(&mut self, params: &[(String, Var)], grads: &GradStore, lr: f64) -> Result<()>;

    /// The momentum buffers, for checkpoints.
    fn buffers(&self) -> &MomentumBuffers;

    /// The momentum buffers, for restoring a checkpoint.
    fn buffers_mut(&mut self) -> &mut MomentumBuffers;
}

/// The detached gradient of `var`, checked against its shape; `None` when it has none.
fn gradient(name: &str, var: &Var, grads: &GradStore) -> Result<Option<Tensor>> {
    let Some(grad) = grads.get(var) else {
        return Ok(None);
    };
    if grad.shape() != var.shape() {
        candle_core::bail!(
            "gradient of {name:?} has shape {:?}, the parameter {:?}",
            grad.dims(),
            var.dims()
        )
    }
    Ok(Some(grad.detach()))
}

/// `d + wd·w`: the gradient with L2 weight decay.
fn add_weight_decay(d: Tensor, w: &Tensor, weight_decay: f64) -> Result<Tensor> {
    if weight_decay == 0.0 {
        return Ok(d);
    }
    d + w.affine(weight_decay, 0.0)?
}

/// `w ← w − lr·direction`, written in place without recording an op.
fn apply(var: &Var, w: &Tensor, direction: &Tensor, lr: f64) -> Result<()> {
    var.set(&(w - direction.affine(lr, 0.0)?)?)
}

#[cfg(test)]
mod tests;
