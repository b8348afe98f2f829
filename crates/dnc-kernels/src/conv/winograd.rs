//! Winograd F(2×2, 3×3) convolutions (Lavin & Gray, "Fast Algorithms for Convolutional Neural
//! Networks", arXiv 1509.09308): 3×3, stride 1, padding 1, in 2.25× fewer multiplications.
//!
//! Each 2×2 block of outputs is `Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A` for the 4×4 input tile `d` around it
//! and the 3×3 kernel `g`. Over all tiles and channels that is 16 matrix products, one per point
//! of the 4×4 transform domain: `M[e] = U[e] · V[e]` with `U[e]` the `[O, C]` transformed
//! kernels and `V[e]` the `[C, tiles]` transformed input tiles.
//!
//! The backward pass is two more of the same kind:
//! - the input gradient of a stride-1, padding-1 3×3 convolution is the same convolution of the
//!   output gradient with the kernels flipped and their channels swapped, so it runs [`forward`];
//! - the weight gradient correlates each 4×4 input tile with the 2×2 output-gradient block it
//!   produced, F(3×3, 2×2): `dW = Aₖᵀ[Σ_tiles (Gₖ dy Gₖᵀ) ⊙ (Bᵀ d B)]Aₖ`, one product per point of
//!   the transform domain that reduces over the tiles.
//!
//! Work is split over groups of whole images as in the im2col path, each with single-threaded
//! products on thread-local scratch buffers; the weight gradient is reduced over a fixed number of
//! slabs in order, so results do not depend on the number of threads.

use super::geometry::Conv2dGeometry;
use super::kernels::{slab_images, sum_in_order};
use crate::float::{Float, output};
use crate::matmul::{MatRef, matmul};
use gemm::Parallelism;
use rayon::prelude::*;

/// Points of the 4×4 transform domain.
const POINTS: usize = 16;

/// Tiles (2×2 output blocks) a group of images aims for.
const TARGET_TILES: usize = 64;

/// Whether 3×3 convolutions may take the Winograd path: yes, unless the environment variable
/// `DNC_WINOGRAD` is `0` (read once), which keeps every convolution on the patch-matrix paths
/// (for comparisons, and to reproduce results computed before this path existed).
pub fn winograd_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("DNC_WINOGRAD").map_or(true, |v| v.trim() != "0"))
}

/// Whether the Winograd path serves this geometry: a 3×3 kernel at stride 1 with padding 1
/// (output as large as the input), an even output size of at least 4×4, and at least 64 input
/// and 16 output channels. Below 64 input channels the transforms cost more than the products
/// save (measured: the tiny net's 32→64 convolution at 16×16 ran its backward pass 16% slower).
pub(crate) fn applies(geo: &Conv2dGeometry) -> bool {
    winograd_enabled() && fits(geo)
}

/// [`applies`] without the switch.
pub(crate) fn fits(geo: &Conv2dGeometry) -> bool {
    geo.kernel_h == 3
        && geo.kernel_w == 3
        && geo.stride == 1
        && geo.padding == 1
        && geo.out_h.is_multiple_of(2)
        && geo.out_w.is_multiple_of(2)
        && geo.out_h >= 4
        && geo.out_w >= 4
        && geo.in_channels >= 64
        && geo.out_channels >= 16
}

fn tiles_per_image(geo: &Conv2dGeometry) -> usize {
    (geo.out_h / 2) * (geo.out_w / 2)
}

/// Images per group.
fn group_size(geo: &Conv2dGeometry) -> usize {
    (TARGET_TILES / tiles_per_image(geo).max(1)).clamp(1, geo.batch.max(1))
}

/// `U[e][o][c]`: the kernels in the transform domain, `G g Gᵀ` with
/// `G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]`.
fn transform_kernels<T: Float>(w: &[T], out_ch: usize, in_ch: usize) -> Vec<T> {
    let mut u = vec![T::ZERO; POINTS * out_ch * in_ch];
    let plane = out_ch * in_ch;
    for (oc, g) in w.chunks_exact(9).enumerate() {
        let g: [f64; 9] = std::array::from_fn(|i| g[i].to_f64());
        // Rows: t = G g (4×3).
        let mut t = [[0.0; 3]; 4];
        for j in 0..3 {
            let (a, b, c) = (g[j], g[3 + j], g[6 + j]);
            t[0][j] = a;
            t[1][j] = 0.5 * (a + b + c);
            t[2][j] = 0.5 * (a - b + c);
            t[3][j] = c;
        }
        // Columns: t Gᵀ (4×4).
        for (i, row) in t.iter().enumerate() {
            let (a, b, c) = (row[0], row[1], row[2]);
            let v = [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
            for (j, value) in v.into_iter().enumerate() {
                u[(i * 4 + j) * plane + oc] = T::from_f64(value);
            }
        }
    }
    u
}

/// Where row `i` of a tile's 4×4 transform goes: the starts of the four points `4i .. 4i + 4`
/// in `[e][channel][tile]` planes of `plane` values, at `base` (channel and first tile) in each.
fn row_offsets(i: usize, plane: usize, base: usize) -> [usize; 4] {
    std::array::from_fn(|j| (i * 4 + j) * plane + base)
}

/// The transformed input tiles of a group of images: `v[e][c][p]` = `(Bᵀ d B)[e]` for the 4×4
/// tile `d` of tile `p` (image-major, then tile rows, then tile columns), with
/// `Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]`. `x`: `[G, C, H, W]`, H and
/// W even.
///
/// Row by row of tiles: the four padded input rows of a tile row are combined into `Bᵀ`'s four
/// rows with whole-row vector operations, then each of those into four columns per tile.
fn transform_input<T: Float>(x: &[T], channels: usize, h: usize, w: usize, v: &mut [T]) {
    let (th, tw) = (h / 2, w / 2);
    let images = x.len() / (channels * h * w);
    let tiles = images * th * tw;
    let plane = channels * tiles;
    let pw = w + 2;
    // The image's rows with one zero column on each side; rows outside the image are zeros.
    let mut padded = vec![T::ZERO; (h + 2) * pw];
    let mut t = vec![T::ZERO; 4 * pw];
    for n in 0..images {
        for ch in 0..channels {
            let img = &x[(n * channels + ch) * h * w..][..h * w];
            for (r, row) in img.chunks_exact(w).enumerate() {
                padded[(r + 1) * pw + 1..][..w].copy_from_slice(row);
            }
            for ty in 0..th {
                let rows: [&[T]; 4] = std::array::from_fn(|i| &padded[(2 * ty + i) * pw..][..pw]);
                let (t0, rest) = t.split_at_mut(pw);
                let (t1, rest) = rest.split_at_mut(pw);
                let (t2, t3) = rest.split_at_mut(pw);
                for j in 0..pw {
                    let (d0, d1, d2, d3) = (rows[0][j], rows[1][j], rows[2][j], rows[3][j]);
                    t0[j] = d0 - d2;
                    t1[j] = d1 + d2;
                    t2[j] = d2 - d1;
                    t3[j] = d1 - d3;
                }
                let p0 = (n * th + ty) * tw;
                for (i, ti) in [&*t0, &*t1, &*t2, &*t3].into_iter().enumerate() {
                    let [o0, o1, o2, o3] = row_offsets(i, plane, ch * tiles + p0);
                    for tx in 0..tw {
                        let (a, b, c, d) =
                            (ti[2 * tx], ti[2 * tx + 1], ti[2 * tx + 2], ti[2 * tx + 3]);
                        v[o0 + tx] = a - c;
                        v[o1 + tx] = b + c;
                        v[o2 + tx] = c - b;
                        v[o3 + tx] = b - d;
                    }
                }
            }
            // Only the border stays zero for the next plane: the inside is overwritten.
        }
    }
}

/// `y = Aᵀ m A` for every tile, `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`, from `m[e][o][p]` into
/// `y`: `[G, O, H, W]`; tile row by tile row, over all the row's tiles at once.
fn inverse_output<T: Float>(m: &[T], channels: usize, h: usize, w: usize, y: &mut [T]) {
    let (th, tw) = (h / 2, w / 2);
    let images = y.len() / (channels * h * w);
    let tiles = images * th * tw;
    let plane = channels * tiles;
    // Aᵀ's two rows applied down each column of the 4×4 transform: 2 rows × 4 columns per tile.
    let mut t = vec![T::ZERO; 8 * tw];
    for n in 0..images {
        for ch in 0..channels {
            let out = &mut y[(n * channels + ch) * h * w..][..h * w];
            for ty in 0..th {
                let p0 = ch * tiles + (n * th + ty) * tw;
                let s = |e: usize| &m[e * plane + p0..][..tw];
                for j in 0..4 {
                    let (s0, s1, s2, s3) = (s(j), s(4 + j), s(8 + j), s(12 + j));
                    let (a, b) = t.split_at_mut(4 * tw);
                    let (a, b) = (&mut a[j * tw..][..tw], &mut b[j * tw..][..tw]);
                    for tx in 0..tw {
                        a[tx] = s0[tx] + s1[tx] + s2[tx];
                        b[tx] = s1[tx] - s2[tx] - s3[tx];
                    }
                }
                for i in 0..2 {
                    let r = &t[i * 4 * tw..][..4 * tw];
                    let row = &mut out[(2 * ty + i) * w..][..w];
                    for tx in 0..tw {
                        let (c0, c1, c2, c3) = (r[tx], r[tw + tx], r[2 * tw + tx], r[3 * tw + tx]);
                        row[2 * tx] = c0 + c1 + c2;
                        row[2 * tx + 1] = c1 - c2 - c3;
                    }
                }
            }
        }
    }
}

/// `y = conv2d(x, w)` for a geometry this path [`applies`] to.
///
/// # Shapes
/// `x`: `[B, C, H, W]`, `w`: `[O, C, 3, 3]` (contiguous) → `[B, O, H, W]`.
pub(crate) fn forward<T: Float>(geo: &Conv2dGeometry, x: &[T], w: &[T]) -> Vec<T> {
    let u = transform_kernels(w, geo.out_channels, geo.in_channels);
    let mut y = output(geo.batch * geo.out_image());
    forward_with(geo, x, &u, &mut y);
    y
}

/// [`forward`] with the kernels already transformed (`u[e][o][c]`).
fn forward_with<T: Float>(geo: &Conv2dGeometry, x: &[T], u: &[T], y: &mut [T]) {
    let group = group_size(geo);
    let (c, o, h, w) = (geo.in_channels, geo.out_channels, geo.in_h, geo.in_w);
    y.par_chunks_mut(group * geo.out_image())
        .zip(x.par_chunks(group * geo.in_image()))
        .for_each(|(y, x)| {
            let tiles = (x.len() / geo.in_image()) * tiles_per_image(geo);
            T::with_scratch(POINTS * (c + o) * tiles, |buf| {
                let (v, m) = buf.split_at_mut(POINTS * c * tiles);
                transform_input(x, c, h, w, v);
                for e in 0..POINTS {
                    let ue = MatRef::row_major(&u[e * o * c..][..o * c], o, c);
                    let ve = MatRef::row_major(&v[e * c * tiles..][..c * tiles], c, tiles);
                    matmul(
                        &mut m[e * o * tiles..][..o * tiles],
                        ue,
                        ve,
                        false,
                        Parallelism::None,
                    );
                }
                inverse_output(m, o, h, w, y);
            });
        });
}

/// The kernels of the input gradient: `w'[c][o] = w[o][c]` rotated by 180°.
fn flipped_kernels<T: Float>(w: &[T], out_ch: usize, in_ch: usize) -> Vec<T> {
    let mut f = vec![T::ZERO; w.len()];
    for o in 0..out_ch {
        for c in 0..in_ch {
            let src = &w[(o * in_ch + c) * 9..][..9];
            let dst = &mut f[(c * out_ch + o) * 9..][..9];
            for (i, v) in src.iter().enumerate() {
                dst[8 - i] = *v;
            }
        }
    }
    f
}

/// The transformed output-gradient blocks of a group: `t[e][o][p]` = `(Gₖ b Gₖᵀ)[e]` for the 2×2
/// block `b` of tile `p`, `Gₖ = [[1, 0], [½, ½], [½, −½], [0, 1]]`. `dy`: `[G, O, H, W]`; tile
/// row by tile row.
fn transform_output_grad<T: Float>(dy: &[T], channels: usize, h: usize, w: usize, t: &mut [T]) {
    let (th, tw) = (h / 2, w / 2);
    let images = dy.len() / (channels * h * w);
    let tiles = images * th * tw;
    let plane = channels * tiles;
    let half = T::from_f64(0.5);
    // Gₖ down each column: the block's two rows become four, `w` values each.
    let mut rows4 = vec![T::ZERO; 4 * w];
    for n in 0..images {
        for ch in 0..channels {
            let img = &dy[(n * channels + ch) * h * w..][..h * w];
            for ty in 0..th {
                let (r0, r1) = (&img[2 * ty * w..][..w], &img[(2 * ty + 1) * w..][..w]);
                {
                    let (g0, rest) = rows4.split_at_mut(w);
                    let (g1, rest) = rest.split_at_mut(w);
                    let (g2, g3) = rest.split_at_mut(w);
                    for j in 0..w {
                        let (a, c) = (r0[j], r1[j]);
                        g0[j] = a;
                        g1[j] = (a + c) * half;
                        g2[j] = (a - c) * half;
                        g3[j] = c;
                    }
                }
                let base = ch * tiles + (n * th + ty) * tw;
                for i in 0..4 {
                    let gi = &rows4[i * w..][..w];
                    let [o0, o1, o2, o3] = row_offsets(i, plane, base);
                    for tx in 0..tw {
                        let (a, c) = (gi[2 * tx], gi[2 * tx + 1]);
                        t[o0 + tx] = a;
                        t[o1 + tx] = (a + c) * half;
                        t[o2 + tx] = (a - c) * half;
                        t[o3 + tx] = c;
                    }
                }
            }
        }
    }
}

/// `dW[o][c] = Aₖᵀ s Aₖ` (3×3) from the summed products `s[e][o][c]`,
/// `Aₖᵀ = [[1, 1, 1, 0], [0, 1, −1, 0], [0, 1, 1, −1]]`.
fn inverse_weight_grad<T: Float>(s: &[T], out_ch: usize, in_ch: usize) -> Vec<T> {
    let plane = out_ch * in_ch;
    let mut dw = vec![T::ZERO; plane * 9];
    for oc in 0..plane {
        let m: [T; 16] = std::array::from_fn(|e| s[e * plane + oc]);
        let mut t = [[T::ZERO; 4]; 3];
        for j in 0..4 {
            t[0][j] = m[j] + m[4 + j] + m[8 + j];
            t[1][j] = m[4 + j] - m[8 + j];
            t[2][j] = m[4 + j] + m[8 + j] - m[12 + j];
        }
        let out = &mut dw[oc * 9..][..9];
        for (i, r) in t.iter().enumerate() {
            out[i * 3] = r[0] + r[1] + r[2];
            out[i * 3 + 1] = r[1] - r[2];
            out[i * 3 + 2] = r[1] + r[2] - r[3];
        }
    }
    dw
}

/// Gradients of [`forward`] with respect to its input and kernels, each only if asked for.
///
/// # Shapes
/// `x`: `[B, C, H, W]`, `w`: `[O, C, 3, 3]`, `dy`: `[B, O, H, W]` → (`dx`: `[B, C, H, W]`,
/// `dw`: `[O, C, 3, 3]`).
pub(crate) fn backward<T: Float>(
    geo: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    dy: &[T],
    need_dx: bool,
    need_dw: bool,
) -> (Option<Vec<T>>, Option<Vec<T>>) {
    let dx = need_dx.then(|| {
        // The input gradient is the convolution of `dy` with the flipped, transposed kernels.
        let transposed = Conv2dGeometry {
            in_channels: geo.out_channels,
            out_channels: geo.in_channels,
            ..*geo
        };
        let u = transform_kernels(
            &flipped_kernels(w, geo.out_channels, geo.in_channels),
            geo.in_channels,
            geo.out_channels,
        );
        let mut dx = output(geo.batch * geo.in_image());
        forward_with(&transposed, dy, &u, &mut dx);
        dx
    });
    let dw = need_dw.then(|| weight_grad(geo, x, dy));
    (dx, dw)
}

/// `dW` over the batch: per slab of images, `S[e] += T[e] · V[e]ᵀ` group by group; the slabs'
/// sums added in order, then brought back from the transform domain.
fn weight_grad<T: Float>(geo: &Conv2dGeometry, x: &[T], dy: &[T]) -> Vec<T> {
    let group = group_size(geo);
    let slab_images = slab_images(geo.batch, group);
    let (c, o, h, w) = (geo.in_channels, geo.out_channels, geo.in_h, geo.in_w);
    let partial: Vec<Vec<T>> = x
        .par_chunks(slab_images * geo.in_image())
        .zip(dy.par_chunks(slab_images * geo.out_image()))
        .map(|(x, dy)| {
            let mut s = vec![T::ZERO; POINTS * o * c];
            let x_groups = x.chunks(group * geo.in_image());
            for (x, dy) in x_groups.zip(dy.chunks(group * geo.out_image())) {
                let tiles = (x.len() / geo.in_image()) * tiles_per_image(geo);
                T::with_scratch(POINTS * (c + o) * tiles, |buf| {
                    let (v, t) = buf.split_at_mut(POINTS * c * tiles);
                    transform_input(x, c, h, w, v);
                    transform_output_grad(dy, o, h, w, t);
                    for e in 0..POINTS {
                        let te = MatRef::row_major(&t[e * o * tiles..][..o * tiles], o, tiles);
                        let ve = MatRef::row_major(&v[e * c * tiles..][..c * tiles], c, tiles);
                        matmul(
                            &mut s[e * o * c..][..o * c],
                            te,
                            ve.t(),
                            true,
                            Parallelism::None,
                        );
                    }
                });
            }
            s
        })
        .collect();
    let total = sum_in_order(partial.into_iter(), POINTS * o * c);
    inverse_weight_grad(&total, o, c)
}

#[cfg(test)]
#[path = "winograd_tests.rs"]
mod tests;
