//! 2-d max pooling with PyTorch's semantics (`F.max_pool2d`, floor mode, implicit −∞ padding)
//! and a backward pass that routes each output gradient to the first maximum of its window.
//!
//! candle's own `max_pool2d` has a backward only when kernel == stride and no padding; composing
//! the pool from `maximum` ops instead costs a dozen full-size temporaries in the backward pass.

use crate::activation::CHUNK;
use crate::error::KernelError;
use crate::float::{Float, has_cpu_kernel, output, storage_slice, with_slices};
use crate::simd::multiversion;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// The sizes of one `max_pool2d` call: input `[batch, channels, in_h, in_w]`, square window
/// `kernel`, `stride`, `padding` → output `[batch, channels, out_h, out_w]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaxPoolGeometry {
    pub batch: usize,
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl MaxPoolGeometry {
    /// Checks the arguments as PyTorch does (padding at most half the window, so every window
    /// holds a real value) and computes `out = (in + 2·padding − kernel) / stride + 1`.
    pub fn new(
        x: &[usize],
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> std::result::Result<Self, KernelError> {
        let op = "max_pool2d";
        let &[batch, channels, in_h, in_w] = x else {
            return Err(KernelError::Shape {
                op,
                what: format!("needs a 4-d input, got {x:?}"),
            });
        };
        if x.contains(&0) {
            return Err(KernelError::Shape {
                op,
                what: format!("needs a non-empty input, got {x:?}"),
            });
        }
        if kernel == 0 || stride == 0 || 2 * padding > kernel {
            return Err(KernelError::Parameter {
                op,
                what: format!(
                    "kernel {kernel} and stride {stride} must be non-zero and \
                     padding {padding} at most half the kernel"
                ),
            });
        }
        let (ph, pw) = (in_h + 2 * padding, in_w + 2 * padding);
        if kernel > ph || kernel > pw {
            return Err(KernelError::Parameter {
                op,
                what: format!("kernel {kernel} is larger than the padded input {ph}x{pw}"),
            });
        }
        Ok(Self {
            batch,
            channels,
            in_h,
            in_w,
            kernel,
            stride,
            padding,
            out_h: (ph - kernel) / stride + 1,
            out_w: (pw - kernel) / stride + 1,
        })
    }

    /// Output dims `[batch, channels, out_h, out_w]`.
    pub fn out_dims(&self) -> [usize; 4] {
        [self.batch, self.channels, self.out_h, self.out_w]
    }

    /// The input rows (or columns) window `o` covers, clipped to the image.
    fn window(&self, o: usize, len: usize) -> std::ops::Range<usize> {
        let start = (o * self.stride).saturating_sub(self.padding);
        let end = (o * self.stride + self.kernel - self.padding).min(len);
        start..end
    }

    /// Index in the plane of the first maximum of output `(oh, ow)`'s window (NaN wins, as in
    /// PyTorch), and that maximum.
    fn argmax<T: Float>(&self, plane: &[T], oh: usize, ow: usize) -> (usize, T) {
        let cols = self.window(ow, self.in_w);
        let mut best = (usize::MAX, T::ZERO);
        for ih in self.window(oh, self.in_h) {
            let row = ih * self.in_w;
            for (iw, &v) in plane[row + cols.start..row + cols.end].iter().enumerate() {
                #[allow(clippy::eq_op)] // `v != v` is the NaN test for a generic float.
                let is_nan = v != v;
                if best.0 == usize::MAX || v > best.1 || is_nan {
                    best = (row + cols.start + iw, v);
                    if is_nan {
                        return best;
                    }
                }
            }
        }
        best
    }
}

/// Max pooling over square windows: `y[b, c, i, j]` is the largest `x[b, c]` value in the
/// `kernel × kernel` window at `(i·stride − padding, j·stride − padding)`; padding never wins.
/// The gradient goes to the first maximum of each window (row-major order), as in PyTorch.
///
/// On the CPU in `f32` or `f64` this runs fused kernels in parallel over planes; elsewhere it
/// calls candle's `max_pool2d_with_stride`, which supports neither padding nor (for kernel ≠
/// stride) a backward pass.
///
/// # Shapes
/// `x`: `[B, C, H, W]` → `[B, C, (H + 2p − k)/s + 1, (W + 2p − k)/s + 1]`.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let geo = MaxPoolGeometry::new(x.dims(), kernel, stride, padding)?;
    if has_cpu_kernel(x) {
        x.contiguous()?.apply_op1(MaxPool { geo })
    } else if padding == 0 {
        x.max_pool2d_with_stride(kernel, stride)
    } else {
        bail!(
            "max_pool2d: padding {padding} needs the CPU kernel, got {:?} on {:?}",
            x.dtype(),
            x.device()
        )
    }
}

fn forward<T: Float>(geo: &MaxPoolGeometry, x: &[T]) -> Vec<T> {
    let (in_plane, out_plane) = (geo.in_h * geo.in_w, geo.out_h * geo.out_w);
    let planes = (CHUNK / in_plane).max(1);
    let mut y = output(geo.batch * geo.channels * out_plane);
    y.par_chunks_mut(planes * out_plane)
        .zip(x.par_chunks(planes * in_plane))
        .for_each(|(y, x)| {
            for (y, x) in y.chunks_exact_mut(out_plane).zip(x.chunks_exact(in_plane)) {
                if geo.kernel == 2 && geo.stride == 2 && geo.padding == 0 {
                    pool_2x2(geo, x, y);
                } else {
                    for (o, y) in y.iter_mut().enumerate() {
                        *y = geo.argmax(x, o / geo.out_w, o % geo.out_w).1;
                    }
                }
            }
        });
    y
}

/// The common 2×2, stride-2 window, two input rows at a time.
fn pool_2x2<T: Float>(geo: &MaxPoolGeometry, x: &[T], y: &mut [T]) {
    let w = geo.in_w;
    for (oh, y) in y.chunks_exact_mut(geo.out_w).enumerate() {
        let x = &x[2 * oh * w..(2 * oh + 2) * w];
        pool_row(&x[..w], &x[w..], y);
    }
}

multiversion! {
/// One output row of [`pool_2x2`] from input rows `x0` and `x1`.
pub(crate) fn pool_row<T: Float>(x0: &[T], x1: &[T], y: &mut [T]) {
    // The first of two equal values, or a NaN, wins, as in PyTorch; the non-short-circuit `|`
    // keeps the loop free of branches, so that it vectorises.
    #[allow(clippy::eq_op)] // `a != a` is the NaN test for a generic float.
    let max = |a: T, b: T| if (a >= b) | (a != a) { a } else { b };
    for ((y, x0), x1) in y.iter_mut().zip(x0.chunks_exact(2)).zip(x1.chunks_exact(2)) {
        *y = max(max(x0[0], x0[1]), max(x1[0], x1[1]));
    }
}
}

/// The backward pass of [`pool_2x2`] for one plane: windows do not overlap, so every input
/// position is written once, with the gradient at its window's first maximum (found by
/// comparing with the pooled value `y`; NaN matches NaN) and zero elsewhere.
fn unpool_2x2<T: Float>(geo: &MaxPoolGeometry, x: &[T], y: &[T], dy: &[T], dx: &mut [T]) {
    let w = geo.in_w;
    let rows = y.chunks_exact(geo.out_w).zip(dy.chunks_exact(geo.out_w));
    for (oh, (y, dy)) in rows.enumerate() {
        let (top, bottom) = dx[2 * oh * w..(2 * oh + 2) * w].split_at_mut(w);
        let x = &x[2 * oh * w..(2 * oh + 2) * w];
        unpool_row(&x[..w], &x[w..], y, dy, top, bottom);
    }
}

multiversion! {
/// One output row of [`unpool_2x2`]: input rows `x0`, `x1` and gradient rows `d0`, `d1`.
pub(crate) fn unpool_row<T: Float>(x0: &[T], x1: &[T], y: &[T], dy: &[T], d0: &mut [T], d1: &mut [T]) {
    // Non-short-circuit `|` and `&` keep the loop free of branches, so that it vectorises.
    #[allow(clippy::eq_op)] // `v != v` is the NaN test for a generic float.
    let hit = |v: T, m: T| (v == m) | ((v != v) & (m != m));
    let out = d0.chunks_exact_mut(2).zip(d1.chunks_exact_mut(2));
    let inp = x0.chunks_exact(2).zip(x1.chunks_exact(2));
    for (((d0, d1), (x0, x1)), (&m, &g)) in out.zip(inp).zip(y.iter().zip(dy)) {
        let (a, b, c, d) = (hit(x0[0], m), hit(x0[1], m), hit(x1[0], m), hit(x1[1], m));
        let (b, c, d) = (b & !a, c & !a & !b, d & !a & !b & !c);
        d0[0] = if a { g } else { T::ZERO };
        d0[1] = if b { g } else { T::ZERO };
        d1[0] = if c { g } else { T::ZERO };
        d1[1] = if d { g } else { T::ZERO };
    }
}
}

fn backward<T: Float>(geo: &MaxPoolGeometry, x: &[T], y: &[T], dy: &[T]) -> Vec<T> {
    let (in_plane, out_plane) = (geo.in_h * geo.in_w, geo.out_h * geo.out_w);
    let planes = (CHUNK / in_plane).max(1);
    let two_by_two = geo.kernel == 2 && geo.stride == 2 && geo.padding == 0;
    let writes_every_input = two_by_two && geo.in_h.is_multiple_of(2) && geo.in_w.is_multiple_of(2);
    let mut dx = output(x.len());
    dx.par_chunks_mut(planes * in_plane)
        .zip(x.par_chunks(planes * in_plane))
        .zip(
            y.par_chunks(planes * out_plane)
                .zip(dy.par_chunks(planes * out_plane)),
        )
        .for_each(|((dx, x), (y, dy))| {
            let planes = dx.chunks_exact_mut(in_plane).zip(x.chunks_exact(in_plane));
            let outs = y.chunks_exact(out_plane).zip(dy.chunks_exact(out_plane));
            for ((dx, x), (y, dy)) in planes.zip(outs) {
                // Even-sized planes are written in full by `unpool_2x2`; an odd last row or
                // column lies in no window and keeps its zero.
                if !writes_every_input {
                    dx.fill(T::ZERO);
                }
                if two_by_two {
                    unpool_2x2(geo, x, y, dy, dx);
                    continue;
                }
                // Overlapping or padded windows: gradients add up.
                for (o, &g) in dy.iter().enumerate() {
                    let (i, _) = geo.argmax(x, o / geo.out_w, o % geo.out_w);
                    dx[i] += g;
                }
            }
        });
    dx
}

struct MaxPool {
    geo: MaxPoolGeometry,
}

impl MaxPool {
    fn grad<T: Float>(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
        let op = self.name();
        let dx = with_slices::<T, _, 3>(op, [x, y, dy], |[xs, ys, dys]| {
            Ok(backward(&self.geo, xs, ys, dys))
        })?;
        Tensor::from_vec(dx, x.shape(), x.device())
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "dnc-max-pool2d"
    }

    fn cpu_fwd(&self, x: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let y = match x {
            CpuStorage::F32(_) => {
                CpuStorage::F32(forward::<f32>(&self.geo, storage_slice(op, x, xl)?))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(forward::<f64>(&self.geo, storage_slice(op, x, xl)?))
            }
            other => bail!("{op}: no kernel for {:?}", other.dtype()),
        };
        Ok((y, Shape::from(self.geo.out_dims().to_vec())))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        if !x.track_op() {
            return Ok(None);
        }
        let dx = match x.dtype() {
            DType::F32 => self.grad::<f32>(x, y, dy)?,
            DType::F64 => self.grad::<f64>(x, y, dy)?,
            other => bail!("{}: no kernel for {other:?}", self.name()),
        };
        Ok(Some(dx))
    }
}
