//! `conv2d` as a candle custom op with a gemm-based backward pass.
//!
//! candle's own CPU backward computes the input gradient with a direct (loop-nest)
//! `conv_transpose2d`; here both gradients are matrix products on patch matrices, like the
//! forward pass (He et al., arXiv 1512.03385, use exactly these bias-free convolutions).

use super::geometry::Conv2dGeometry;
use super::kernels::{backward, forward};
use super::tensor_ops::conv2d_by_matmul;
use crate::error::KernelError;
use crate::float::{Float, grad_tensor, has_cpu_kernel, storage_slice, with_slices};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, bail};

/// 2-d convolution without bias, dilation or groups: `y[b, o] = Σ_c x[b, c] ⋆ w[o, c]`, with
/// square `stride` and zero `padding` on all four sides.
///
/// On the CPU in `f32` or `f64` this runs im2col + gemm kernels (forward and backward) in
/// parallel over images; elsewhere (CUDA, half precision) it is an im2col gather and one matrix
/// product built from candle tensor ops, whose backward is matrix products and a col2im scatter
/// rather than candle's direct `conv_transpose2d` kernel. Gradients flow to `x` and `w`.
///
/// # Shapes
/// `x`: `[B, C, H, W]`, `w`: `[O, C, kh, kw]` → `[B, O, (H + 2p − kh)/s + 1, (W + 2p − kw)/s + 1]`.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let geo = Conv2dGeometry::new(x.dims(), w.dims(), stride, padding)?;
    if x.dtype() != w.dtype() || !x.device().same_device(w.device()) {
        Err(KernelError::Mismatch {
            op: "conv2d",
            what: format!(
                "input is {:?} on {:?}, kernel is {:?} on {:?}",
                x.dtype(),
                x.device(),
                w.dtype(),
                w.device()
            ),
        })?
    }
    if has_cpu_kernel(x) {
        x.contiguous()?
            .apply_op2(&w.contiguous()?, Conv2dOp { geo })
    } else {
        conv2d_by_matmul(x, w, &geo)
    }
}

/// The CPU custom op; its geometry was checked by [`conv2d`].
struct Conv2dOp {
    geo: Conv2dGeometry,
}

impl Conv2dOp {
    fn grads<T: Float>(
        &self,
        x: &Tensor,
        w: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (need_dx, need_dw) = (x.track_op(), w.track_op());
        let op = self.name();
        let (dx, dw) = with_slices::<T, _, 3>(op, [x, w, dy], |[xs, ws, dys]| {
            Ok(backward(&self.geo, xs, ws, dys, need_dx, need_dw))
        })?;
        let (dx, dw) = (grad_tensor(dx, x)?, grad_tensor(dw, w)?);
        Ok((dx, dw))
    }
}

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "dnc-conv2d"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let y = match x {
            CpuStorage::F32(_) => CpuStorage::F32(forward::<f32>(
                &self.geo,
                storage_slice(op, x, xl)?,
                storage_slice(op, w, wl)?,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(forward::<f64>(
                &self.geo,
                storage_slice(op, x, xl)?,
                storage_slice(op, w, wl)?,
            )),
            other => bail!("{op}: no kernel for {:?}", other.dtype()),
        };
        Ok((y, Shape::from(self.geo.out_dims().to_vec())))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if !(x.track_op() || w.track_op()) {
            return Ok((None, None));
        }
        match x.dtype() {
            DType::F32 => self.grads::<f32>(x, w, dy),
            DType::F64 => self.grads::<f64>(x, w, dy),
            other => bail!("{}: no kernel for {other:?}", self.name()),
        }
    }
}
