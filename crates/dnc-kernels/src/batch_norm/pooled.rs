//! The end of a stage of a plain conv net, `max_pool2d(relu(bn(x)), 2)`, as one training-mode
//! custom op.
//!
//! Composed from separate ops, the stage writes the full-size `relu(bn(x))`, keeps it alive for
//! the pool's backward pass, and autograd accumulates a full-size gradient for it (a zeroed
//! tensor plus an addition). Fused, the op normalises two input rows at a time into a scratch
//! buffer and writes only the pooled output; the backward pass normalises the rows again to
//! route each output gradient to its window's first maximum (where the ReLU lets it through),
//! then runs the batch-norm backward of [`super::batch_norm_relu_train`].

use super::affine::normalize_run;
use super::moments::Nlc;
use super::op::{BatchNormOp, Grads, batch_stats, check_args};
use crate::activation::CHUNK;
use crate::error::KernelError;
use crate::float::{Float, has_cpu_kernel, output, with_slices};
use crate::op3::{Grads3, Kernel3, Op3};
use crate::pool::max::{pool_row, unpool_row};
use candle_core::{DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// `y = max_pool2d(max(0, bn(x)), kernel 2, stride 2)`, with `bn` the training-mode batch
/// normalisation of [`super::batch_norm_train`] (batch statistics of `x`, then `weight` and
/// `bias`) and the pool of [`crate::max_pool2d`] (floor mode: an odd last row or column is
/// dropped; the gradient goes to the first maximum of each window).
///
/// Returns `(y, mean, var)`, `mean` and `var` being the batch statistics of `x` as in
/// [`super::batch_norm_train`]. Gradients flow to `x`, `weight` and `bias`.
///
/// Runs on the CPU in `f32` or `f64` only; elsewhere, compose [`super::batch_norm_relu_train`]
/// and a pool.
///
/// # Shapes
/// `x`: `[N, C, H, W]` with `H, W ≥ 2`; `weight`, `bias`: `[C]` →
/// (`y`: `[N, C, H/2, W/2]`, `mean`: `[C]`, `var`: `[C]`).
pub fn batch_norm_relu_max_pool2x2_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "batch_norm_relu_max_pool2x2_train";
    let s = check_args(x, weight, bias, eps)?;
    let &[_, _, h, w] = x.dims() else {
        Err(KernelError::Shape {
            op,
            what: format!("needs a 4-d input, got {:?}", x.dims()),
        })?
    };
    if h < 2 || w < 2 {
        Err(KernelError::Shape {
            op,
            what: format!("needs images of at least 2x2, got {:?}", x.dims()),
        })?
    }
    if !has_cpu_kernel(x) {
        bail!(
            "{op}: needs an f32 or f64 tensor on the CPU, got {:?} on {:?}",
            x.dtype(),
            x.device()
        )
    }
    match x.dtype() {
        DType::F32 => cpu_batch_norm_relu_pool::<f32>(s, h, w, x, weight, bias, eps),
        _ => cpu_batch_norm_relu_pool::<f64>(s, h, w, x, weight, bias, eps),
    }
}

fn cpu_batch_norm_relu_pool<T: Float>(
    s: Nlc,
    h: usize,
    w: usize,
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let x = x.contiguous()?;
    let (stats, mean, var) = batch_stats::<T>(s, &x, eps)?;
    let op = BatchNormReluPool {
        bn: BatchNormOp {
            s,
            stats,
            relu: true,
        },
        h,
        w,
    };
    let y = x.apply_op3(&weight.contiguous()?, &bias.contiguous()?, Op3(op))?;
    Ok((y, mean, var))
}

/// The CPU op over `(x, weight, bias)` for `H × W` planes; its slice kernels also serve the
/// fused convolution stage.
pub(super) struct BatchNormReluPool {
    pub(super) bn: BatchNormOp,
    pub(super) h: usize,
    pub(super) w: usize,
}

impl BatchNormReluPool {
    fn out_plane(&self) -> usize {
        (self.h / 2) * (self.w / 2)
    }

    /// Planes per rayon task: enough for a task to cover about [`CHUNK`] input values.
    fn planes_per_task(&self) -> usize {
        (CHUNK / (self.h * self.w)).max(1)
    }

    /// The gradients for the pooled output `y` and its gradient `dy` (that of `x` when
    /// `need_dx`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backward<T: Float>(
        &self,
        xs: &[T],
        w: &[T],
        b: &[T],
        ys: &[T],
        dys: &[T],
        need_dx: bool,
    ) -> Grads<T> {
        let (scale, offset) = self.bn.scale_offset(w, b);
        let (c, width, out_w) = (self.bn.s.c, self.w, self.w / 2);
        let (in_plane, out_plane) = (self.h * self.w, self.out_plane());
        let even = self.h.is_multiple_of(2) && self.w.is_multiple_of(2);
        // The gradient of relu(bn(x)): dy at each window's first maximum when that maximum is
        // positive (the ReLU's mask), zero elsewhere.
        let mut d_act = output(xs.len());
        d_act
            .par_chunks_mut(in_plane)
            .zip(xs.par_chunks(in_plane))
            .zip(ys.par_chunks(out_plane).zip(dys.par_chunks(out_plane)))
            .enumerate()
            .with_min_len(self.planes_per_task())
            .for_each(|(plane, ((d, x), (y, dy)))| {
                if !even {
                    // An odd last row or column lies in no window.
                    d.fill(T::ZERO);
                }
                let (a, o) = (scale[plane % c], offset[plane % c]);
                T::with_scratch(2 * width + out_w, |buf| {
                    let (r0, rest) = buf.split_at_mut(width);
                    let (r1, gated) = rest.split_at_mut(width);
                    let rows = y.chunks_exact(out_w).zip(dy.chunks_exact(out_w));
                    for (oh, (y, dy)) in rows.enumerate() {
                        let x = &x[2 * oh * width..(2 * oh + 2) * width];
                        normalize_run(r0, &x[..width], a, o, true);
                        normalize_run(r1, &x[width..], a, o, true);
                        for ((g, &m), &v) in gated.iter_mut().zip(y).zip(dy) {
                            *g = if m > T::ZERO { v } else { T::ZERO };
                        }
                        let (d0, d1) = d[2 * oh * width..(2 * oh + 2) * width].split_at_mut(width);
                        unpool_row(r0, r1, y, gated, d0, d1);
                    }
                });
            });
        self.bn.grads(w, xs, &d_act, None, need_dx)
    }
}

impl Kernel3 for BatchNormReluPool {
    fn op_name(&self) -> &'static str {
        "dnc-batch-norm-relu-max-pool2x2-train"
    }

    fn out_shape(&self, x: &Layout) -> Shape {
        let dims = x.dims();
        Shape::from((dims[0], dims[1], self.h / 2, self.w / 2))
    }

    fn forward<T: Float>(&self, x: &[T], w: &[T], b: &[T]) -> Vec<T> {
        let (scale, offset) = self.bn.scale_offset(w, b);
        let (c, width, out_w) = (self.bn.s.c, self.w, self.w / 2);
        let mut y = output(x.len() / (self.h * self.w) * self.out_plane());
        y.par_chunks_mut(self.out_plane())
            .zip(x.par_chunks(self.h * self.w))
            .enumerate()
            .with_min_len(self.planes_per_task())
            .for_each(|(plane, (y, x))| {
                let (a, o) = (scale[plane % c], offset[plane % c]);
                T::with_scratch(2 * width, |rows| {
                    let (r0, r1) = rows.split_at_mut(width);
                    for (oh, y) in y.chunks_exact_mut(out_w).enumerate() {
                        let x = &x[2 * oh * width..(2 * oh + 2) * width];
                        normalize_run(r0, &x[..width], a, o, true);
                        normalize_run(r1, &x[width..], a, o, true);
                        pool_row(r0, r1, y);
                    }
                });
            });
        y
    }

    fn gradients<T: Float>(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<Grads3> {
        let op = "batch_norm_relu_max_pool2x2_train";
        let g = with_slices::<T, _, 5>(op, [x, w, b, y, dy], |[xs, ws, bs, ys, dys]| {
            Ok(self.backward(xs, ws, bs, ys, dys, x.track_op()))
        })?;
        g.into_tensors(x, w, b)
    }
}
