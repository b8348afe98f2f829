//! The end of a residual block, `relu(bn(x) + r)`, as one training-mode custom op.
//!
//! Composed from separate ops, the block's tail keeps three full-size tensors alive for the
//! backward pass (the normalised `bn(x)`, the sum, and the ReLU output) and makes three passes
//! over memory; fused, it keeps only its output (whose sign is the ReLU mask) and makes one.
//! The gradient of `r` is `dy·[y > 0]`; that of `x`, `weight` and `bias` is the batch-norm
//! backward with the same mask, as in [`super::batch_norm_relu_train`].

use super::affine::normalize_add_relu;
use super::moments::Nlc;
use super::op::{BatchNormOp, Grads, batch_stats, check_args, composed_batch_norm};
use crate::activation::relu_backward;
use crate::error::KernelError;
use crate::float::{Float, grad_tensor, has_cpu_kernel, output, with_slices};
use crate::op3::{Grads3, Kernel3, Op3};
use candle_core::{DType, Result, Tensor};

/// `y = max(0, bn(x) + residual)`, with `bn` the training-mode batch normalisation of
/// [`super::batch_norm_train`] (batch statistics of `x`, then `weight` and `bias`).
///
/// Returns `(y, mean, var)`, `mean` and `var` being the batch statistics of `x` as in
/// [`super::batch_norm_train`]. Gradients flow to `x`, `weight`, `bias` and `residual`.
///
/// On the CPU in `f32` or `f64` this runs one fused kernel; elsewhere it is composed from candle
/// ops, with the same results and gradients.
///
/// # Shapes
/// `x`, `residual`: `[N, C, ...]` (the same shape); `weight`, `bias`: `[C]` →
/// (`y`: shape of `x`, `mean`: `[C]`, `var`: `[C]`).
pub fn batch_norm_add_relu_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    residual: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let s = check_args(x, weight, bias, eps)?;
    let op = "batch_norm_add_relu_train";
    if residual.dims() != x.dims() {
        Err(KernelError::Shape {
            op,
            what: format!(
                "input is {:?} but residual is {:?}",
                x.dims(),
                residual.dims()
            ),
        })?
    }
    if residual.dtype() != x.dtype() || !residual.device().same_device(x.device()) {
        Err(KernelError::Mismatch {
            op,
            what: format!(
                "input is {:?} on {:?}, residual is {:?} on {:?}",
                x.dtype(),
                x.device(),
                residual.dtype(),
                residual.device()
            ),
        })?
    }
    if !has_cpu_kernel(x) {
        let (y, mean, var) = composed_batch_norm(s, x, weight, bias, eps)?;
        return Ok(((y + residual)?.relu()?, mean, var));
    }
    match x.dtype() {
        DType::F32 => cpu_batch_norm_add_relu::<f32>(s, x, weight, bias, residual, eps),
        _ => cpu_batch_norm_add_relu::<f64>(s, x, weight, bias, residual, eps),
    }
}

fn cpu_batch_norm_add_relu<T: Float>(
    s: Nlc,
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    residual: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let x = x.contiguous()?;
    let (stats, mean, var) = batch_stats::<T>(s, &x, eps)?;
    // A custom op takes at most three tensors: weight and bias travel as the rows of one
    // `[2, C]` tensor, whose gradient candle splits back through the stack.
    let params = Tensor::stack(&[weight, bias], 0)?;
    let op = BatchNormAddRelu(BatchNormOp {
        s,
        stats,
        relu: true,
    });
    let y = x.apply_op3(&residual.contiguous()?, &params, Op3(op))?;
    Ok((y, mean, var))
}

/// The CPU op over `(x, residual, [weight; bias])`.
struct BatchNormAddRelu(BatchNormOp);

impl Kernel3 for BatchNormAddRelu {
    fn op_name(&self) -> &'static str {
        "dnc-batch-norm-add-relu-train"
    }

    fn forward<T: Float>(&self, x: &[T], r: &[T], params: &[T]) -> Vec<T> {
        let (w, b) = params.split_at(self.0.s.c);
        let (scale, offset) = self.0.scale_offset(w, b);
        let mut y = output(x.len());
        normalize_add_relu(self.0.s, &mut y, x, r, &scale, &offset);
        y
    }

    fn gradients<T: Float>(
        &self,
        x: &Tensor,
        r: &Tensor,
        params: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<Grads3> {
        let op = "batch_norm_add_relu_train";
        let c = self.0.s.c;
        let (g, dr) = with_slices::<T, _, 4>(op, [x, params, y, dy], |[xs, ps, ys, dys]| {
            let g = self.0.grads(&ps[..c], xs, dys, Some(ys), x.track_op());
            let dr = r.track_op().then(|| relu_backward(ys, dys));
            Ok((g, dr))
        })?;
        let dx = grad_tensor(g.dx, x)?;
        let dr = grad_tensor(dr, r)?;
        let dparams = Grads::stacked(g.dw, g.db, params)?;
        Ok((dx, dr, dparams))
    }
}

#[cfg(test)]
#[path = "residual_tests.rs"]
mod tests;
