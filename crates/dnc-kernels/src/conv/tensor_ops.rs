//! `conv2d` composed of candle tensor ops: an im2col gather and one matrix product.
//!
//! This is the path for every device and dtype without a CPU kernel (CUDA, and half precision
//! on the CPU). Its backward pass is candle's autograd through the same ops: the matrix product's
//! gradients are two matrix products (cuBLAS on CUDA), and the gather's gradient scatters the
//! patch-matrix gradient back onto the image (col2im) with padding and additions. candle's own
//! `conv2d` backward would instead compute the input gradient with a direct `conv_transpose2d`
//! kernel, which on CUDA is an order of magnitude slower than a matrix product.
//!
//! Layout: the image is moved to channels-last (`[B, H, W, C]`) once, so that each of the
//! `kh·kw` shifted (and strided) windows is a view, the patch matrix `[B·Ho·Wo, C·kh·kw]` is one
//! stack of those views, and the product with the kernel `[O, C·kh·kw]ᵀ` is a single large GEMM.

use super::geometry::Conv2dGeometry;
use candle_core::{D, Result, Tensor};

/// `y = conv2d(x, w)` with the geometry `geo` (checked by the caller), through tensor ops.
///
/// # Shapes
/// `x`: `[B, C, H, W]`, `w`: `[O, C, kh, kw]` → `[B, O, Ho, Wo]`.
pub(crate) fn conv2d_by_matmul(x: &Tensor, w: &Tensor, geo: &Conv2dGeometry) -> Result<Tensor> {
    let (b, c, o) = (geo.batch, geo.in_channels, geo.out_channels);
    let (ho, wo, s) = (geo.out_h, geo.out_w, geo.stride);
    let (kh, kw) = (geo.kernel_h, geo.kernel_w);
    // Channels-last, zero-padded, and cut into `s × s` phases: row `s·q + r` of the padded image
    // is `[.., q, r, ..]`, so every strided window below is a view and only the stack copies.
    let (hq, wq) = ((kh - 1) / s + ho, (kw - 1) / s + wo);
    let x = x.permute((0, 2, 3, 1))?;
    let x = pad_or_cut(&x, 1, geo.padding, geo.in_h, s * hq)?;
    let x = pad_or_cut(&x, 2, geo.padding, geo.in_w, s * wq)?;
    let x = x.reshape((b, hq, s, wq, s, c))?;
    let mut windows = Vec::with_capacity(kh * kw);
    for di in 0..kh {
        for dj in 0..kw {
            // x_padded[:, di + s·i, dj + s·j, :] for i < ho, j < wo.
            let window = x
                .narrow(1, di / s, ho)?
                .narrow(2, di % s, 1)?
                .narrow(3, dj / s, wo)?
                .narrow(4, dj % s, 1)?
                .squeeze(4)?
                .squeeze(2)?;
            windows.push(window);
        }
    }
    // [B, Ho, Wo, C, kh·kw]: the inner index `c·kh·kw + di·kw + dj` matches the kernel's layout.
    let patches = Tensor::stack(&windows, D::Minus1)?.reshape((b * ho * wo, c * kh * kw))?;
    let kernel = w.reshape((o, c * kh * kw))?;
    patches
        .matmul(&kernel.t()?)?
        .reshape((b, ho, wo, o))?
        .permute((0, 3, 1, 2))?
        .contiguous()
}

/// Dimension `dim` (of size `len`) padded with `padding` zeros in front and then padded or cut
/// at the back to exactly `total` entries; contiguous.
fn pad_or_cut(x: &Tensor, dim: usize, padding: usize, len: usize, total: usize) -> Result<Tensor> {
    let x = x.pad_with_zeros(dim, padding, total.saturating_sub(padding + len))?;
    if x.dim(dim)? == total {
        x.contiguous()
    } else {
        x.narrow(dim, 0, total)?.contiguous()
    }
}
