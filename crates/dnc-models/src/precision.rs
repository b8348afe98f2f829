//! Mixed precision: bf16 compute for convolutions and matrix products, f32 everywhere else.
//!
//! Like PyTorch's `torch.autocast`, precision is a scope rather than a property of each layer:
//! inside an [`autocast`] scope with [`Precision::Bf16`], [`Conv2d`](crate::Conv2d) and the
//! heads' linear layers cast their f32 input and weight to bf16, compute, and cast the result
//! back to f32. Weights (the master copy the optimiser updates), BatchNorm and its statistics,
//! the loss and the optimiser state stay f32; gradients flow back through the casts into the f32
//! weights. [`Encoder::forward_t`](crate::Encoder::forward_t) opens the scope its
//! [`EncoderConfig::precision`](crate::EncoderConfig) asks for.
//!
//! bf16 pays on GPUs (tensor cores, half the activation traffic). On the CPU, bf16
//! convolutions leave the fast f32 kernels of `dnc-kernels` for generic tensor ops and are
//! slower than f32: the CPU path exists so that the mixed-precision code is tested everywhere.

use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::cell::Cell;

/// The compute precision of convolutions and matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// bf16 convolutions and matrix products with f32 master weights, BatchNorm, loss and
    /// optimiser state.
    Bf16,
}

impl Precision {
    /// The dtype convolutions and matrix products run in.
    pub fn compute_dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("unknown precision {other:?}: expected f32 or bf16")),
        }
    }
}

thread_local! {
    static COMPUTE: Cell<Precision> = const { Cell::new(Precision::F32) };
}

/// Restores the previous precision when dropped.
#[must_use = "the precision applies until the guard is dropped"]
pub struct AutocastGuard {
    previous: Precision,
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        COMPUTE.with(|c| c.set(self.previous));
    }
}

/// Runs convolutions and matrix products of this thread's model code in `precision` until the
/// returned guard is dropped. Scopes nest.
pub fn autocast(precision: Precision) -> AutocastGuard {
    let previous = COMPUTE.with(|c| c.replace(precision));
    AutocastGuard { previous }
}

/// The precision of the innermost open [`autocast`] scope on this thread (f32 outside any).
pub fn current_precision() -> Precision {
    COMPUTE.with(Cell::get)
}

/// Whether [`in_compute_dtype`] runs an op on `x` in `x`'s own dtype: f32 outside a
/// lower-precision scope, and every other dtype (f64 in gradient checks) always.
pub(crate) fn computes_in_input_dtype(x: &Tensor) -> bool {
    x.dtype() != DType::F32 || current_precision().compute_dtype() == DType::F32
}

/// `op(x, w)` in the current compute precision: f32 operands are cast to the compute dtype and
/// the result back to f32; other dtypes (f64 in gradient checks) are left alone.
pub(crate) fn in_compute_dtype(
    x: &Tensor,
    w: &Tensor,
    op: impl FnOnce(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if computes_in_input_dtype(x) {
        return op(x, w);
    }
    let compute = current_precision().compute_dtype();
    op(&x.to_dtype(compute)?, &w.to_dtype(compute)?)?.to_dtype(DType::F32)
}

/// `x · Wᵀ + b` of a `candle_nn::Linear`, the product in the current compute precision and the
/// bias added in f32.
pub(crate) fn linear_forward(layer: &candle_nn::Linear, x: &Tensor) -> Result<Tensor> {
    let y = in_compute_dtype(x, layer.weight(), |x, w| x.broadcast_matmul(&w.t()?))?;
    match layer.bias() {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module, Var};

    #[test]
    fn scopes_nest_and_restore() {
        assert_eq!(current_precision(), Precision::F32);
        {
            let _outer = autocast(Precision::Bf16);
            assert_eq!(current_precision(), Precision::Bf16);
            {
                let _inner = autocast(Precision::F32);
                assert_eq!(current_precision(), Precision::F32);
            }
            assert_eq!(current_precision(), Precision::Bf16);
        }
        assert_eq!(current_precision(), Precision::F32);
    }

    #[test]
    fn bf16_linear_is_close_and_its_gradients_reach_f32_weights() -> Result<()> {
        let dev = Device::Cpu;
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (8, 16), &dev)?)?;
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 8, &dev)?)?;
        let layer = candle_nn::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
        let x = Tensor::randn(0f32, 1.0, (4, 16), &dev)?;
        let want = layer.forward(&x)?;
        let _bf16 = autocast(Precision::Bf16);
        let got = linear_forward(&layer, &x)?;
        assert_eq!(got.dtype(), DType::F32);
        let diff = (&got - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff > 0.0 && diff < 0.1, "bf16 differs from f32 by {diff}");
        let grads = got.sum_all()?.backward()?;
        let dw = grads.get(w.as_tensor()).expect("weight gradient");
        assert_eq!(dw.dtype(), DType::F32);
        // d(Σ y)/dW[o, i] = Σ_n x[n, i], up to bf16 rounding of x.
        let want_dw = x.sum_keepdim(0)?.broadcast_as((8, 16))?;
        let err = (dw - want_dw)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(err < 0.1, "weight gradient off by {err}");
        Ok(())
    }
}
