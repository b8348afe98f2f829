//! Pooling with gradients: the ResNet stem's 3×3/2 max-pool, 2×2 max-pool and global average pool.
//!
//! candle's `max_pool2d` has no backward when kernel != stride, and when kernel == stride its
//! backward scales the gradient by 1/kernel² (and misplaces it on odd sizes); the tests here
//! compare against finite differences. Both max-pools are therefore built from differentiable
//! ops off the CPU; on the CPU the `dnc-kernels` pooling ops (with exact backward passes) run. The ImageNet stem's max-pool (kernel 3, stride 2, padding 1; He et al., arXiv 1512.03385)
//! pads with −∞, takes stride-2 views by reshaping (no copies), and combines them with
//! element-wise `maximum`. The 3×3 window is separable, `max over rows` then `max over columns`,
//! which needs four `maximum` ops instead of the eight of nine shifted views.

use candle_core::{D, Result, Tensor, bail};

/// Max-pool with a 3×3 window, stride 2 and padding 1 (PyTorch's `MaxPool2d(3, 2, 1)`).
///
/// # Shapes
/// `xs`: `[N, C, H, W]` → `[N, C, ⌊(H − 1)/2⌋ + 1, ⌊(W − 1)/2⌋ + 1]`.
pub fn max_pool_3x3_s2(xs: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() {
        return dnc_kernels::max_pool2d(xs, 3, 2, 1);
    }
    let (_, _, h, w) = xs.dims4()?;
    if h == 0 || w == 0 {
        bail!(
            "max_pool_3x3_s2 needs a non-empty image, got {:?}",
            xs.dims()
        )
    }
    let (ho, wo) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
    let rows = window_max_stride2(&pad_neg_inf(xs, 2, 2 * ho + 2)?, 2, ho)?;
    window_max_stride2(&pad_neg_inf(&rows, 3, 2 * wo + 2)?, 3, wo)
}

/// Pads dimension `dim` with one −∞ before and as many as needed after to reach `len`.
fn pad_neg_inf(xs: &Tensor, dim: usize, len: usize) -> Result<Tensor> {
    let mut dims = xs.dims().to_vec();
    let after = len - dims[dim] - 1;
    let fill = |n: usize, dims: &mut Vec<usize>| {
        dims[dim] = n;
        Tensor::full(f32::NEG_INFINITY, dims.as_slice(), xs.device())?.to_dtype(xs.dtype())
    };
    let before = fill(1, &mut dims)?;
    let after = fill(after, &mut dims)?;
    Tensor::cat(&[&before, xs, &after], dim)
}

/// `out[i] = max(p[2i], p[2i + 1], p[2i + 2])` along `dim` of a padded tensor of length
/// `2·out_len + 2` there. Splitting the dimension into `(out_len + 1, 2)` makes the even and odd
/// positions strided views of the same storage.
fn window_max_stride2(padded: &Tensor, dim: usize, out_len: usize) -> Result<Tensor> {
    let mut split = padded.dims().to_vec();
    split[dim] = out_len + 1;
    split.insert(dim + 1, 2);
    let pairs = padded.reshape(split)?;
    let even = pairs.narrow(dim + 1, 0, 1)?;
    let odd = pairs.narrow(dim + 1, 1, 1)?;
    let m = even
        .narrow(dim, 0, out_len)?
        .maximum(&odd.narrow(dim, 0, out_len)?)?
        .maximum(&even.narrow(dim, 1, out_len)?)?;
    m.squeeze(dim + 1)
}

/// Max-pool with a 2×2 window and stride 2 (PyTorch's `MaxPool2d(2)`); an odd last row or column
/// is dropped, as PyTorch does.
///
/// # Shapes
/// `xs`: `[N, C, H, W]` → `[N, C, ⌊H/2⌋, ⌊W/2⌋]`.
pub fn max_pool_2x2(xs: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = xs.dims4()?;
    if h < 2 || w < 2 {
        bail!(
            "max_pool_2x2 needs an image of at least 2×2, got {:?}",
            xs.dims()
        )
    }
    if xs.device().is_cpu() {
        return dnc_kernels::max_pool2d(xs, 2, 2, 0);
    }
    let (ho, wo) = (h / 2, w / 2);
    let xs = xs.narrow(2, 0, 2 * ho)?.narrow(3, 0, 2 * wo)?;
    let rows = pair_max(&xs.reshape((n, c, ho, 2, 2 * wo))?, 3)?;
    pair_max(&rows.reshape((n, c, ho, wo, 2))?, 4)?.squeeze(4)
}

/// Element-wise maximum of the two halves of a dimension of size 2, keeping it (size 1).
fn pair_max(xs: &Tensor, dim: usize) -> Result<Tensor> {
    xs.narrow(dim, 0, 1)?.maximum(&xs.narrow(dim, 1, 1)?)
}

/// Mean over all spatial positions.
///
/// # Shapes
/// `xs`: `[N, C, H, W]` → `[N, C]`.
pub fn global_avg_pool(xs: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = xs.dims4()?;
    if xs.device().is_cpu() {
        return dnc_kernels::global_avg_pool(xs);
    }
    xs.reshape((n, c, h * w))?.mean(D::Minus1)
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
