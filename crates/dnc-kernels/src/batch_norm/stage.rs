//! A convolution followed by training-mode batch normalisation, as one custom op: the start of a
//! residual block (`relu(bn(conv2d(x, w)))`, or `bn(conv2d(x, w))` for a projection shortcut)
//! and a whole stage of a plain conv net (`max_pool2d(relu(bn(conv2d(x, w))), 2)`).
//!
//! With the convolution a separate op, its output is a node of candle's autograd graph: the
//! backward pass adds that node's full-size gradient into a freshly zeroed tensor before the
//! convolution's backward reads it. Fused, the batch-norm backward hands its input gradient
//! straight to the convolution's backward. The op keeps the convolution's output for its
//! backward pass, as the separate op's output tensor was kept before.

use super::moments::Nlc;
use super::op::{BatchNormOp, Grads, Stats, cast, check_eps, slice_stats};
use super::pooled::BatchNormReluPool;
use crate::conv::Conv2dGeometry;
use crate::conv::kernels;
use crate::error::KernelError;
use crate::float::{Float, grad_tensor, has_cpu_kernel, with_slices};
use crate::op3::{Grads3, Kernel3, Op3};
use candle_core::{CpuStorage, DType, Layout, Result, Shape, Tensor, bail};
use std::sync::{Arc, Mutex};

/// `y = bn(conv2d(x, conv_weight, stride, padding))` in training mode: [`crate::conv2d`]
/// followed by [`super::batch_norm_train`], in one op.
///
/// Returns `(y, mean, var)`, `mean` and `var` being the batch statistics of the convolution's
/// output (the variance biased, as in [`super::batch_norm_train`]). Gradients flow to `x`,
/// `conv_weight`, `bn_weight` and `bn_bias`.
///
/// Runs on the CPU in `f32` or `f64` only; elsewhere, compose the two.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `conv_weight`: `[O, C, kh, kw]`, `bn_weight`, `bn_bias`: `[O]` →
/// (`y`: `[N, O, out_h, out_w]`, `mean`, `var`: `[O]`).
pub fn conv2d_batch_norm_train(
    x: &Tensor,
    conv_weight: &Tensor,
    bn_weight: &Tensor,
    bn_bias: &Tensor,
    stride: usize,
    padding: usize,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let params = [bn_weight, bn_bias];
    conv_stage(
        x,
        conv_weight,
        params,
        (stride, padding),
        eps,
        Tail::Norm { relu: false },
    )
}

/// [`conv2d_batch_norm_train`] followed by a ReLU: `y = max(0, bn(conv2d(x, conv_weight)))`.
///
/// # Shapes
/// As [`conv2d_batch_norm_train`].
pub fn conv2d_batch_norm_relu_train(
    x: &Tensor,
    conv_weight: &Tensor,
    bn_weight: &Tensor,
    bn_bias: &Tensor,
    stride: usize,
    padding: usize,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let params = [bn_weight, bn_bias];
    conv_stage(
        x,
        conv_weight,
        params,
        (stride, padding),
        eps,
        Tail::Norm { relu: true },
    )
}

/// `y = max_pool2d(max(0, bn(conv2d(x, conv_weight, stride, padding))), 2)`: [`crate::conv2d`]
/// followed by [`super::batch_norm_relu_max_pool2x2_train`], in one op.
///
/// Returns `(y, mean, var)` as [`conv2d_batch_norm_train`] does.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `conv_weight`: `[O, C, kh, kw]`, `bn_weight`, `bn_bias`: `[O]`, with a
/// convolution output of at least 2×2 → (`y`: `[N, O, out_h/2, out_w/2]`, `mean`, `var`: `[O]`).
pub fn conv2d_batch_norm_relu_max_pool2x2_train(
    x: &Tensor,
    conv_weight: &Tensor,
    bn_weight: &Tensor,
    bn_bias: &Tensor,
    stride: usize,
    padding: usize,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let params = [bn_weight, bn_bias];
    conv_stage(
        x,
        conv_weight,
        params,
        (stride, padding),
        eps,
        Tail::ReluMaxPool2x2,
    )
}

/// What follows the batch normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// Nothing, or a ReLU.
    Norm { relu: bool },
    /// A ReLU and a 2×2 max pool.
    ReluMaxPool2x2,
}

impl Tail {
    fn op_name(self) -> &'static str {
        match self {
            Self::Norm { relu: false } => "conv2d_batch_norm_train",
            Self::Norm { relu: true } => "conv2d_batch_norm_relu_train",
            Self::ReluMaxPool2x2 => "conv2d_batch_norm_relu_max_pool2x2_train",
        }
    }
}

/// The three public ops: checks, then the CPU op.
fn conv_stage(
    x: &Tensor,
    conv_weight: &Tensor,
    [bn_weight, bn_bias]: [&Tensor; 2],
    (stride, padding): (usize, usize),
    eps: f64,
    tail: Tail,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = tail.op_name();
    let geo = Conv2dGeometry::new(x.dims(), conv_weight.dims(), stride, padding)?;
    let [n, o, h, w] = geo.out_dims();
    for t in [conv_weight, bn_weight, bn_bias] {
        if t.dtype() != x.dtype() || !t.device().same_device(x.device()) {
            Err(KernelError::Mismatch {
                op,
                what: format!(
                    "input is {:?} on {:?}, a parameter is {:?} on {:?}",
                    x.dtype(),
                    x.device(),
                    t.dtype(),
                    t.device()
                ),
            })?
        }
    }
    if bn_weight.dims() != [o] || bn_bias.dims() != [o] {
        Err(KernelError::Shape {
            op,
            what: format!(
                "the convolution has {o} output channels but the batch-norm weight is {:?} \
                 and bias {:?}",
                bn_weight.dims(),
                bn_bias.dims()
            ),
        })?
    }
    if tail == Tail::ReluMaxPool2x2 && (h < 2 || w < 2) {
        Err(KernelError::Shape {
            op,
            what: format!(
                "the convolution output {:?} is smaller than 2x2",
                geo.out_dims()
            ),
        })?
    }
    check_eps(op, eps)?;
    if !has_cpu_kernel(x) {
        bail!(
            "{op}: needs f32 or f64 tensors on the CPU, got {:?} on {:?}",
            x.dtype(),
            x.device()
        )
    }
    // A custom op takes at most three tensors: the batch-norm weight and bias travel as the
    // rows of one `[2, O]` tensor, whose gradient candle splits back through the stack.
    let params = Tensor::stack(&[bn_weight, bn_bias], 0)?;
    let saved = Arc::new(Mutex::new(None));
    let stage = ConvStage {
        geo,
        s: Nlc { n, c: o, l: h * w },
        eps,
        tail,
        saved: Arc::clone(&saved),
    };
    let y = x
        .contiguous()?
        .apply_op3(&conv_weight.contiguous()?, &params, Op3(stage))?;
    let guard = saved.lock().expect("stage state");
    let state = guard.as_ref().expect("the forward pass saves its state");
    let stat = |v: &[f64]| match x.dtype() {
        DType::F32 => Tensor::from_vec(cast::<f32>(v), o, x.device()),
        _ => Tensor::from_vec(cast::<f64>(v), o, x.device()),
    };
    Ok((y, stat(&state.stats.mean)?, stat(&state.var)?))
}

/// What the forward pass leaves for the backward pass and the caller.
struct Saved {
    /// The convolution's output.
    conv_out: CpuStorage,
    stats: Arc<Stats>,
    /// The biased batch variance.
    var: Vec<f64>,
}

/// The CPU op over `(x, conv_weight, [bn_weight; bn_bias])`.
struct ConvStage {
    geo: Conv2dGeometry,
    /// The convolution output's layout.
    s: Nlc,
    eps: f64,
    tail: Tail,
    saved: Arc<Mutex<Option<Saved>>>,
}

impl ConvStage {
    /// The batch normalisation (with the ReLU when the tail has one) for the given statistics.
    fn norm(&self, stats: Arc<Stats>) -> BatchNormOp {
        BatchNormOp {
            s: self.s,
            stats,
            relu: self.tail != Tail::Norm { relu: false },
        }
    }

    /// The batch-norm, ReLU and pool tail for the given statistics.
    fn pooled(&self, stats: Arc<Stats>) -> BatchNormReluPool {
        let [_, _, h, w] = self.geo.out_dims();
        BatchNormReluPool {
            bn: self.norm(stats),
            h,
            w,
        }
    }
}

impl Kernel3 for ConvStage {
    fn op_name(&self) -> &'static str {
        match self.tail {
            Tail::Norm { relu: false } => "dnc-conv2d-batch-norm-train",
            Tail::Norm { relu: true } => "dnc-conv2d-batch-norm-relu-train",
            Tail::ReluMaxPool2x2 => "dnc-conv2d-batch-norm-relu-max-pool2x2-train",
        }
    }

    fn out_shape(&self, _x: &Layout) -> Shape {
        let [n, o, h, w] = self.geo.out_dims();
        match self.tail {
            Tail::Norm { .. } => Shape::from((n, o, h, w)),
            Tail::ReluMaxPool2x2 => Shape::from((n, o, h / 2, w / 2)),
        }
    }

    fn forward<T: Float>(&self, x: &[T], w: &[T], params: &[T]) -> Vec<T> {
        let conv_out = kernels::forward(&self.geo, x, w);
        let (stats, var) = slice_stats(self.s, &conv_out, self.eps);
        let stats = Arc::new(stats);
        let (bn_w, bn_b) = params.split_at(self.s.c);
        let y = match self.tail {
            Tail::Norm { .. } => self.norm(Arc::clone(&stats)).forward(&conv_out, bn_w, bn_b),
            Tail::ReluMaxPool2x2 => self
                .pooled(Arc::clone(&stats))
                .forward(&conv_out, bn_w, bn_b),
        };
        *self.saved.lock().expect("stage state") = Some(Saved {
            conv_out: T::to_cpu_storage_owned(conv_out),
            stats,
            var,
        });
        y
    }

    fn gradients<T: Float>(
        &self,
        x: &Tensor,
        w: &Tensor,
        params: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<Grads3> {
        let op = self.op_name();
        let guard = self.saved.lock().expect("stage state");
        let Some(saved) = guard.as_ref() else {
            bail!("{op}: backward pass without a forward pass")
        };
        let conv_out = saved.conv_out.as_slice::<T>()?;
        let (need_dx, need_dw) = (x.track_op(), w.track_op());
        let ((dx, dw), bn_grads) =
            with_slices::<T, _, 5>(op, [x, w, params, y, dy], |[xs, ws, ps, ys, dys]| {
                let (bn_w, bn_b) = ps.split_at(self.s.c);
                let need = need_dx || need_dw;
                let stats = Arc::clone(&saved.stats);
                let g = match self.tail {
                    Tail::Norm { relu } => {
                        let gate = relu.then_some(ys);
                        self.norm(stats).grads(bn_w, conv_out, dys, gate, need)
                    }
                    Tail::ReluMaxPool2x2 => self
                        .pooled(stats)
                        .backward(conv_out, bn_w, bn_b, ys, dys, need),
                };
                let conv_grads = match &g.dx {
                    Some(dz) => kernels::backward(&self.geo, xs, ws, dz, need_dx, need_dw),
                    None => (None, None),
                };
                Ok((conv_grads, (g.dw, g.db)))
            })?;
        let (dx, dw) = (grad_tensor(dx, x)?, grad_tensor(dw, w)?);
        let dparams = Grads::stacked(bn_grads.0, bn_grads.1, params)?;
        Ok((dx, dw, dparams))
    }
}
