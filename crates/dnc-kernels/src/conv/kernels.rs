//! CPU convolution kernels: im2col + gemm forward, and the two gradients of the backward pass.
//! Stride-1 convolutions that [`row_patches::applies`] to take the horizontal-tap path instead,
//! image by image.
//!
//! Work is split over groups of whole images, one rayon task per group, each running
//! single-threaded gemm calls on thread-local scratch buffers. A group holds enough images for
//! its patch matrix to reach [`TARGET_COLUMNS`] columns, so that small late-layer feature maps
//! (4×4 pixels) still give gemm a wide matrix. The group size depends on the shapes only, and
//! the weight gradient is reduced over a fixed number of slabs in a fixed order: results do not
//! depend on the number of threads or on scheduling.

use super::geometry::Conv2dGeometry;
use super::im2col::{col2im, im2col};
use super::row_patches;
use super::winograd;
use crate::float::{Float, output};
use crate::matmul::{MatRef, matmul};
use gemm::Parallelism;
use rayon::prelude::*;

/// Patch-matrix width (images × output pixels) a group of images aims for.
const TARGET_COLUMNS: usize = 512;

/// Weight-gradient partial sums: at most this many, added in order at the end.
const WEIGHT_SLABS: usize = 8;

/// Images per group for this geometry.
fn group_size(geo: &Conv2dGeometry) -> usize {
    (TARGET_COLUMNS / geo.out_plane().max(1)).clamp(1, geo.batch.max(1))
}

/// `y = conv2d(x, w)`.
///
/// # Shapes
/// `x`: `[B, C, H, W]`, `w`: `[O, C, kh, kw]` (both contiguous) → `[B, O, out_h, out_w]`.
pub(crate) fn forward<T: Float>(geo: &Conv2dGeometry, x: &[T], w: &[T]) -> Vec<T> {
    if winograd::applies(geo) {
        return winograd::forward(geo, x, w);
    }
    let mut y = output(geo.batch * geo.out_image());
    if row_patches::applies(geo) {
        let w_rows = row_patches::weights_by_row(geo, w);
        y.par_chunks_mut(geo.out_image())
            .zip(x.par_chunks(geo.in_image()))
            .for_each(|(y, x)| row_patches::forward_image(geo, x, &w_rows, y));
        return y;
    }
    let group = group_size(geo);
    let (k, p, o) = (geo.patch_len(), geo.out_plane(), geo.out_channels);
    let w = MatRef::row_major(w, o, k);
    y.par_chunks_mut(group * geo.out_image())
        .zip(x.par_chunks(group * geo.in_image()))
        .for_each(|(y, x)| {
            let images = x.len() / geo.in_image();
            if images == 1 && geo.is_pointwise() {
                matmul(y, w, MatRef::row_major(x, k, p), false, Parallelism::None);
                return;
            }
            let cols = images * p;
            T::with_scratch(k * cols + o * cols, |buf| {
                let (col, out) = buf.split_at_mut(k * cols);
                im2col(geo, x, col);
                let col = MatRef::row_major(col, k, cols);
                if images == 1 {
                    matmul(y, w, col, false, Parallelism::None);
                } else {
                    matmul(out, w, col, false, Parallelism::None);
                    unpack_channels(out, y, images, p);
                }
            });
        });
    y
}

/// `[O, G·P]` (channel-major, as gemm writes it) → `[G, O, P]` (image-major).
fn unpack_channels<T: Float>(src: &[T], dst: &mut [T], images: usize, plane: usize) {
    let channels = src.len() / (images * plane);
    for (o, row) in src.chunks_exact(images * plane).enumerate() {
        for (g, part) in row.chunks_exact(plane).enumerate() {
            let start = (g * channels + o) * plane;
            dst[start..start + plane].copy_from_slice(part);
        }
    }
}

/// `[G, O, P]` → `[O, G·P]`: the inverse of [`unpack_channels`].
fn pack_channels<T: Float>(src: &[T], dst: &mut [T], images: usize, plane: usize) {
    let channels = src.len() / (images * plane);
    for (o, row) in dst.chunks_exact_mut(images * plane).enumerate() {
        for (g, part) in row.chunks_exact_mut(plane).enumerate() {
            let start = (g * channels + o) * plane;
            part.copy_from_slice(&src[start..start + plane]);
        }
    }
}

/// Gradients of `conv2d` with respect to its input and kernel, each computed only if asked for.
///
/// # Shapes
/// `x`: `[B, C, H, W]`, `w`: `[O, C, kh, kw]`, `dy`: `[B, O, out_h, out_w]` (all contiguous) →
/// (`dx`: `[B, C, H, W]`, `dw`: `[O, C, kh, kw]`).
pub(crate) fn backward<T: Float>(
    geo: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    dy: &[T],
    need_dx: bool,
    need_dw: bool,
) -> (Option<Vec<T>>, Option<Vec<T>>) {
    if winograd::applies(geo) {
        return winograd::backward(geo, x, w, dy, need_dx, need_dw);
    }
    let path = Path::new(geo, w, need_dx);
    let group = group_size(geo);
    let slab_images = slab_images(geo.batch, group);
    // Each group zeroes its own part of `dx` on its worker thread, just before adding to it.
    let mut dx = need_dx.then(|| output(geo.batch * geo.in_image()));
    let dx_slabs: Vec<Option<&mut [T]>> = match dx.as_mut() {
        Some(dx) => dx
            .chunks_mut(slab_images * geo.in_image())
            .map(Some)
            .collect(),
        None => (0..geo.batch.div_ceil(slab_images)).map(|_| None).collect(),
    };
    let partial_dw: Vec<Option<Vec<T>>> = dx_slabs
        .into_par_iter()
        .zip(x.par_chunks(slab_images * geo.in_image()))
        .zip(dy.par_chunks(slab_images * geo.out_image()))
        .map(|((dx, x), dy)| backward_slab(geo, &path, group, x, dy, dx, need_dw))
        .collect();
    let dw = need_dw.then(|| sum_in_order(partial_dw.into_iter().flatten(), w.len()));
    (dx, dw)
}

/// How a geometry's backward pass runs, with the weights in the form it reads them.
enum Path<'a, T> {
    /// Through the full patch matrix ([`im2col`]).
    Patches { w: &'a [T] },
    /// Through the horizontal-tap matrix ([`row_patches`]); `w_rows` is empty when the input
    /// gradient is not needed.
    Rows { w_rows: Vec<T> },
}

impl<'a, T: Float> Path<'a, T> {
    fn new(geo: &Conv2dGeometry, w: &'a [T], need_dx: bool) -> Self {
        if row_patches::applies(geo) {
            let w_rows = if need_dx {
                row_patches::weights_by_row(geo, w)
            } else {
                Vec::new()
            };
            Self::Rows { w_rows }
        } else {
            Self::Patches { w }
        }
    }

    /// The weight gradient `[O, C, kh, kw]` from this path's transposed accumulator.
    fn weight_grad(&self, geo: &Conv2dGeometry, acc: &[T]) -> Vec<T> {
        match self {
            Self::Patches { .. } => transpose(acc, geo.patch_len(), geo.out_channels),
            Self::Rows { .. } => row_patches::weights_from_rows_t(geo, acc),
        }
    }
}

/// The backward pass over one slab of consecutive images, group by group; returns the slab's
/// weight gradient when `need_dw`, and writes the input gradient into `dx` when given.
fn backward_slab<T: Float>(
    geo: &Conv2dGeometry,
    path: &Path<'_, T>,
    group: usize,
    x: &[T],
    dy: &[T],
    mut dx: Option<&mut [T]>,
    need_dw: bool,
) -> Option<Vec<T>> {
    let mut dw_t = need_dw.then(|| vec![T::ZERO; geo.patch_len() * geo.out_channels]);
    let x_groups = x.chunks(group * geo.in_image());
    let dy_groups = dy.chunks(group * geo.out_image());
    for (i, (x, dy)) in x_groups.zip(dy_groups).enumerate() {
        let dx = dx.as_deref_mut().map(|dx| {
            let start = i * group * geo.in_image();
            &mut dx[start..start + x.len()]
        });
        match path {
            Path::Patches { w } => backward_group(geo, x, w, dy, dx, dw_t.as_deref_mut()),
            Path::Rows { w_rows } => {
                let mut dx = dx.map(|dx| dx.chunks_exact_mut(geo.in_image()));
                let images = x.chunks_exact(geo.in_image());
                for (x, dy) in images.zip(dy.chunks_exact(geo.out_image())) {
                    let dx = dx.as_mut().and_then(|dx| dx.next());
                    row_patches::backward_image(geo, x, w_rows, dy, dx, dw_t.as_deref_mut());
                }
            }
        }
    }
    dw_t.map(|t| path.weight_grad(geo, &t))
}

/// The backward pass of one group of images: `dWᵀ += col · dYᵀ` into `dw_t` and
/// `dx = col2im(Wᵀ · dY)` into `dx`, for those given.
fn backward_group<T: Float>(
    geo: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    dy: &[T],
    dx: Option<&mut [T]>,
    dw_t: Option<&mut [T]>,
) {
    let (k, o) = (geo.patch_len(), geo.out_channels);
    let images = x.len() / geo.in_image();
    let cols = images * geo.out_plane();
    let w = MatRef::row_major(w, o, k);
    let direct = images == 1 && geo.is_pointwise();
    T::with_scratch(k * cols + o * cols, |buf| {
        let (col, packed) = buf.split_at_mut(k * cols);
        // The output gradient as an `[O, G·P]` matrix, matching the patch matrix's columns.
        let dy_mat = if images == 1 {
            MatRef::row_major(dy, o, cols)
        } else {
            pack_channels(dy, packed, images, geo.out_plane());
            MatRef::row_major(&*packed, o, cols)
        };
        if let Some(dw_t) = dw_t {
            // Both operands run along the pixels; in this orientation gemm transposes the small
            // `[O, G·P]` operand while packing, not the patch matrix.
            let patches = if direct {
                MatRef::row_major(x, k, cols)
            } else {
                im2col(geo, x, col);
                MatRef::row_major(&*col, k, cols)
            };
            matmul(dw_t, patches, dy_mat.t(), true, Parallelism::None);
        }
        if let Some(dx) = dx {
            if direct {
                matmul(dx, w.t(), dy_mat, false, Parallelism::None);
            } else {
                matmul(col, w.t(), dy_mat, false, Parallelism::None);
                dx.fill(T::ZERO);
                col2im(geo, col, dx);
            }
        }
    });
}

/// The transpose of a row-major `rows × cols` matrix.
fn transpose<T: Float>(m: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut t = vec![T::ZERO; m.len()];
    for (r, row) in m.chunks_exact(cols).enumerate() {
        for (c, v) in row.iter().enumerate() {
            t[c * rows + r] = *v;
        }
    }
    t
}

/// Images per weight-gradient slab, for groups of `group` images: the batch's groups spread
/// over at most [`WEIGHT_SLABS`] slabs, whose partial sums are added in order.
pub(super) fn slab_images(batch: usize, group: usize) -> usize {
    let groups = batch.div_ceil(group);
    groups.div_ceil(WEIGHT_SLABS.min(groups).max(1)) * group
}

/// Element-wise sum of equally long vectors, in iteration order.
pub(super) fn sum_in_order<T: Float>(parts: impl Iterator<Item = Vec<T>>, len: usize) -> Vec<T> {
    let mut total = vec![T::ZERO; len];
    for part in parts {
        for (t, v) in total.iter_mut().zip(&part) {
            *t += *v;
        }
    }
    total
}
