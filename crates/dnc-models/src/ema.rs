//! Exponential moving average target networks (BYOL, arXiv 2006.07733; MoCLR in DnC,
//! arXiv 2105.08054, section 3.1).
//!
//! The target's parameters follow the online network's, ξ ← m·ξ + (1 − m)·θ, after every step,
//! with m rising from m0 to 1 on a cosine schedule. BatchNorm running statistics are buffers
//! (see [`dnc_core::is_buffer`]): they are not averaged, the target keeps the statistics of its
//! own train-mode forwards.

use crate::error::ModelError;
use candle_core::{Tensor, Var};
use candle_nn::VarMap;
use dnc_core::is_buffer;
use std::collections::HashMap;

/// A snapshot of a map's variables; taken before any update so that the two maps are never
/// locked together (they may even be the same map).
fn snapshot(map: &VarMap) -> HashMap<String, Var> {
    map.data().lock().expect("varmap lock poisoned").clone()
}

/// Pairs every variable of `target` selected by `keep` with the same-named, same-shaped
/// variable of `source`; the selected name sets must be equal.
fn pairs(
    target: &VarMap,
    source: &VarMap,
    keep: fn(&str) -> bool,
) -> Result<Vec<(Var, Var)>, ModelError> {
    let (target, source) = (snapshot(target), snapshot(source));
    if let Some(name) = source.keys().find(|n| keep(n) && !target.contains_key(*n)) {
        return Err(ModelError::MissingVar {
            name: name.clone(),
            present: "source",
            missing: "target",
        });
    }
    let mut names: Vec<&String> = target.keys().filter(|n| keep(n)).collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let dst = &target[name];
        let src = source.get(name).ok_or_else(|| ModelError::MissingVar {
            name: name.clone(),
            present: "target",
            missing: "source",
        })?;
        if dst.shape() != src.shape() {
            return Err(ModelError::ShapeMismatch {
                name: name.clone(),
                target: dst.dims().to_vec(),
                source_shape: src.dims().to_vec(),
            });
        }
        out.push((dst.clone(), src.clone()));
    }
    Ok(out)
}

/// ξ ← m·ξ + (1 − m)·θ for every parameter ξ of `target` and θ of `online` (buffers are left
/// alone), without recording an autograd graph.
///
/// Errors when the parameter names or shapes of the two maps differ, or `m` is outside [0, 1];
/// nothing is updated then.
pub fn ema_update(target: &VarMap, online: &VarMap, m: f64) -> Result<(), ModelError> {
    if !(0.0..=1.0).contains(&m) {
        return Err(ModelError::InvalidConfig {
            field: "ema momentum",
            reason: format!("must be in [0, 1], got {m}"),
        });
    }
    for (xi, theta) in pairs(target, online, |n| !is_buffer(n))? {
        let theta = theta.as_detached_tensor().to_dtype(xi.dtype())?;
        let next = (xi.as_detached_tensor().affine(m, 0.0)? + theta.affine(1.0 - m, 0.0)?)?;
        xi.set(&next)?;
    }
    Ok(())
}

/// Copies every variable of `src`, parameters and buffers, into the same-named variable of
/// `dst` (to start a target network as a copy of the online one).
///
/// Errors when the names or shapes of the two maps differ; nothing is copied then.
pub fn copy_vars(dst: &VarMap, src: &VarMap) -> Result<(), ModelError> {
    for (d, s) in pairs(dst, src, |_| true)? {
        d.set(&s.as_detached_tensor().to_dtype(d.dtype())?.copy()?)?;
    }
    Ok(())
}

/// The tensors of `map` for a network that only runs forward (an EMA target, a frozen teacher),
/// sharing the map's storage: parameters come detached, so no autograd graph is recorded through
/// them and each activation is freed as soon as the next layer has used it (PyTorch's
/// `torch.no_grad()`); BatchNorm buffers come as the variables themselves, so running-statistics
/// updates land in the map. In-place updates of the map ([`ema_update`], [`copy_vars`],
/// checkpoint loads) are seen through them. Build the network with
/// `VarBuilder::from_tensors(frozen_tensors(&map), dtype, device)`.
pub fn frozen_tensors(map: &VarMap) -> HashMap<String, Tensor> {
    snapshot(map)
        .into_iter()
        .map(|(name, var)| {
            let tensor = if is_buffer(&name) {
                var.as_tensor().clone()
            } else {
                var.as_detached_tensor()
            };
            (name, tensor)
        })
        .collect()
}

/// The target momentum at `step` of `total`: m = 1 − (1 − m0)·(cos(π·step/total) + 1)/2, from
/// `m0` at step 0 to 1 at the last step (BYOL; DnC uses m0 = 0.996). Steps past `total` stay at 1.
pub fn momentum_schedule(step: u64, total: u64, m0: f64) -> f64 {
    let total = total.max(1);
    let t = step.min(total) as f64 / total as f64;
    1.0 - (1.0 - m0) * ((std::f64::consts::PI * t).cos() + 1.0) / 2.0
}

#[cfg(test)]
#[path = "ema_tests.rs"]
mod tests;
