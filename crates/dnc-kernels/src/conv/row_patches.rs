//! Stride-1 convolution with a patch matrix of the horizontal taps only.
//!
//! A full patch matrix has a row per `(c, kh, kw)`. For stride 1, the rows of two vertical taps
//! `kh` and `kh + 1` hold the same values, one output row apart. So this path writes a patch
//! matrix `R` of the horizontal taps only, rows `(c, kw)`, over the image's rows with the
//! vertical padding included (`Hp = H + 2·padding` rows of `out_w` columns each), and reads the
//! matrix of vertical tap `kh` out of it as a view starting `kh·out_w` columns in: the
//! convolution is `Σ_kh W_kh · R_kh`, `kernel_h` products with `K = C·kernel_w`. `R` has
//! `C·kernel_w·Hp·out_w` elements, about a third of the full matrix for a 3×3 kernel, and no
//! output column is wasted.
//!
//! The backward pass runs the same products transposed: the weight gradient of vertical tap
//! `kh` is `R_kh · dYᵀ`, and the input gradient adds `W_khᵀ · dY` onto `dR` at the tap's offset,
//! then folds the horizontal taps of `dR` back onto the image.

use super::geometry::Conv2dGeometry;
use crate::float::{Float, output};
use crate::matmul::{MatMut, MatRef, matmul, matmul_into};
use gemm::Parallelism;

/// Fewest output pixels per image (8×8) for which `kernel_h` products over one image each beat
/// one product over a batch of images' full patch matrices (measured; at 4×4 they are slower).
const MIN_OUT_PLANE: usize = 64;

/// Fewest input channels: below, the products' depth `C·kernel_w` is too shallow for gemm
/// (measured slower for the 3-channel first layer).
const MIN_CHANNELS: usize = 16;

/// Whether the forward and backward passes of this geometry use the horizontal-tap matrix.
pub(crate) fn applies(geo: &Conv2dGeometry) -> bool {
    geo.stride == 1
        && geo.kernel_h > 1
        && geo.in_channels >= MIN_CHANNELS
        && geo.out_plane() >= MIN_OUT_PLANE
}

/// Columns of `R` per channel and horizontal tap: `Hp · out_w`.
fn row_len(geo: &Conv2dGeometry) -> usize {
    (geo.in_h + 2 * geo.padding) * geo.out_w
}

/// Rows of `R`: `C · kernel_w`.
fn taps_len(geo: &Conv2dGeometry) -> usize {
    geo.in_channels * geo.kernel_w
}

/// The weights regrouped by vertical tap: `[kernel_h, O, C·kernel_w]`, so that each tap's
/// `[O, C·kernel_w]` matrix is dense.
pub(crate) fn weights_by_row<T: Float>(geo: &Conv2dGeometry, w: &[T]) -> Vec<T> {
    let (kh_n, kw_n) = (geo.kernel_h, geo.kernel_w);
    let mut out = output(w.len());
    for (o, filter) in w.chunks_exact(geo.patch_len()).enumerate() {
        for (c, taps) in filter.chunks_exact(kh_n * kw_n).enumerate() {
            for (kh, row) in taps.chunks_exact(kw_n).enumerate() {
                let start = (kh * geo.out_channels + o) * taps_len(geo) + c * kw_n;
                out[start..start + kw_n].copy_from_slice(row);
            }
        }
    }
    out
}

/// The output columns `lo..hi` whose input column `ow + kw − padding` lies inside the image
/// for horizontal tap `kw`, and the input column `first` of output column `lo`.
fn tap_columns(geo: &Conv2dGeometry, kw: usize) -> (usize, usize, usize) {
    let (p, ow_n) = (geo.padding, geo.out_w);
    let lo = p.saturating_sub(kw).min(ow_n);
    let hi = (geo.in_w + p).saturating_sub(kw).clamp(lo, ow_n);
    // When no column is inside (`lo == hi`), `first` may lie past the row; it is then unused.
    (lo, hi, (lo + kw).saturating_sub(p))
}

/// Fills `r` (`[C·kernel_w, Hp·out_w]`) from one image `x` (`[C, H, W]`).
fn fill_rows<T: Float>(geo: &Conv2dGeometry, x: &[T], r: &mut [T]) {
    let (p, ow_n) = (geo.padding, geo.out_w);
    let mut rows = r.chunks_exact_mut(row_len(geo));
    for plane in x.chunks_exact(geo.in_plane()) {
        for kw in 0..geo.kernel_w {
            let dst = rows.next().expect("R has C·kernel_w rows");
            let (lo, hi, first) = tap_columns(geo, kw);
            let (top, rest) = dst.split_at_mut(p * ow_n);
            top.fill(T::ZERO);
            let (middle, bottom) = rest.split_at_mut(geo.in_h * ow_n);
            bottom.fill(T::ZERO);
            for (src, out) in plane
                .chunks_exact(geo.in_w)
                .zip(middle.chunks_exact_mut(ow_n))
            {
                out[..lo].fill(T::ZERO);
                if lo < hi {
                    out[lo..hi].copy_from_slice(&src[first..first + hi - lo]);
                }
                out[hi..].fill(T::ZERO);
            }
        }
    }
}

/// `y = conv2d(x, w)` for one image: `x` `[C, H, W]` → `y` `[O, out_h, out_w]`, with `w_rows`
/// from [`weights_by_row`].
pub(crate) fn forward_image<T: Float>(geo: &Conv2dGeometry, x: &[T], w_rows: &[T], y: &mut [T]) {
    let (k, o, n) = (taps_len(geo), geo.out_channels, geo.out_plane());
    let len = row_len(geo);
    T::with_scratch(k * len, |r| {
        fill_rows(geo, x, r);
        for (kh, w) in w_rows.chunks_exact(o * k).enumerate() {
            let inputs = MatRef::strided(&r[kh * geo.out_w..], k, n, len, 1);
            matmul(
                y,
                MatRef::row_major(w, o, k),
                inputs,
                kh > 0,
                Parallelism::None,
            );
        }
    });
}

/// The backward pass of one image: `dw_rows_t` (`[kernel_h, C·kernel_w, O]`, the transposed
/// weight gradient by vertical tap) accumulates this image's part, and `dx` (`[C, H, W]`)
/// receives its input gradient, for those given.
pub(crate) fn backward_image<T: Float>(
    geo: &Conv2dGeometry,
    x: &[T],
    w_rows: &[T],
    dy: &[T],
    dx: Option<&mut [T]>,
    dw_rows_t: Option<&mut [T]>,
) {
    let (k, o, n) = (taps_len(geo), geo.out_channels, geo.out_plane());
    let len = row_len(geo);
    let dy = MatRef::row_major(dy, o, n);
    T::with_scratch(k * len, |r| {
        if let Some(acc) = dw_rows_t {
            fill_rows(geo, x, r);
            for (kh, acc) in acc.chunks_exact_mut(k * o).enumerate() {
                let inputs = MatRef::strided(&r[kh * geo.out_w..], k, n, len, 1);
                matmul(acc, inputs, dy.t(), true, Parallelism::None);
            }
        }
        if let Some(dx) = dx {
            for (kh, w) in w_rows.chunks_exact(o * k).enumerate() {
                let dst = MatMut::strided(&mut r[kh * geo.out_w..], k, n, len);
                let w = MatRef::row_major(w, o, k).t();
                matmul_into(dst, w, dy, kh > 0, Parallelism::None);
                if kh == 0 {
                    // The first product wrote columns `..n` of each row; the rest is added to.
                    for row in r.chunks_exact_mut(len) {
                        row[n..].fill(T::ZERO);
                    }
                }
            }
            fold_rows(geo, r, dx);
        }
    });
}

/// `dx` (`[C, H, W]`) ← the horizontal taps of `dr` (`[C·kernel_w, Hp·out_w]`) added onto the
/// input columns they read: the adjoint of [`fill_rows`].
fn fold_rows<T: Float>(geo: &Conv2dGeometry, dr: &[T], dx: &mut [T]) {
    let (p, ow_n) = (geo.padding, geo.out_w);
    let mut rows = dr.chunks_exact(row_len(geo));
    for plane in dx.chunks_exact_mut(geo.in_plane()) {
        for kw in 0..geo.kernel_w {
            let src = rows.next().expect("dR has C·kernel_w rows");
            let (lo, hi, first) = tap_columns(geo, kw);
            let middle = &src[p * ow_n..(p + geo.in_h) * ow_n];
            for (grads, out) in middle
                .chunks_exact(ow_n)
                .zip(plane.chunks_exact_mut(geo.in_w))
            {
                if kw == 0 {
                    out.fill(T::ZERO);
                }
                if lo < hi {
                    let targets = out[first..first + hi - lo].iter_mut();
                    for (d, g) in targets.zip(&grads[lo..hi]) {
                        *d += *g;
                    }
                }
            }
        }
    }
}

/// The weight gradient `[O, C, kernel_h, kernel_w]` from its by-row transposed form
/// `[kernel_h, C·kernel_w, O]`.
pub(crate) fn weights_from_rows_t<T: Float>(geo: &Conv2dGeometry, rows_t: &[T]) -> Vec<T> {
    let (kh_n, kw_n, o_n) = (geo.kernel_h, geo.kernel_w, geo.out_channels);
    let mut w = output(rows_t.len());
    for (kh, tap) in rows_t.chunks_exact(taps_len(geo) * o_n).enumerate() {
        for (j, row) in tap.chunks_exact(o_n).enumerate() {
            let (c, kw) = (j / kw_n, j % kw_n);
            for (o, v) in row.iter().enumerate() {
                w[o * geo.patch_len() + (c * kh_n + kh) * kw_n + kw] = *v;
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(y, dx, dw)` of `conv2d` by its definition, for one image.
    fn naive(
        geo: &Conv2dGeometry,
        x: &[f64],
        w: &[f64],
        dy: &[f64],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut y = vec![0.0; geo.out_image()];
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        for o in 0..geo.out_channels {
            for c in 0..geo.in_channels {
                for kh in 0..geo.kernel_h {
                    for kw in 0..geo.kernel_w {
                        let wi =
                            ((o * geo.in_channels + c) * geo.kernel_h + kh) * geo.kernel_w + kw;
                        for oh in 0..geo.out_h {
                            for ow in 0..geo.out_w {
                                let ih = (oh + kh) as isize - geo.padding as isize;
                                let iw = (ow + kw) as isize - geo.padding as isize;
                                if !(0..geo.in_h as isize).contains(&ih)
                                    || !(0..geo.in_w as isize).contains(&iw)
                                {
                                    continue;
                                }
                                let xi = (c * geo.in_h + ih as usize) * geo.in_w + iw as usize;
                                let yi = (o * geo.out_h + oh) * geo.out_w + ow;
                                y[yi] += w[wi] * x[xi];
                                dx[xi] += w[wi] * dy[yi];
                                dw[wi] += x[xi] * dy[yi];
                            }
                        }
                    }
                }
            }
        }
        (y, dx, dw)
    }

    fn values(n: usize, seed: f64) -> Vec<f64> {
        (0..n).map(|i| (i as f64 * seed).sin()).collect()
    }

    #[test]
    fn forward_and_backward_match_the_definition() {
        // Square and oblong kernels, padding 0 up to wider than the kernel reaches, one channel.
        for (x, w, padding) in [
            ([1, 2, 5, 6], [3, 2, 3, 3], 1),
            ([1, 1, 4, 5], [2, 1, 3, 2], 0),
            ([1, 3, 6, 5], [2, 3, 5, 5], 2),
            ([1, 2, 7, 7], [2, 2, 3, 3], 2),
            ([1, 2, 6, 4], [3, 2, 2, 3], 1),
            // Kernel wider than input and one side's padding: tap 0 sees only padding.
            ([1, 1, 3, 1], [1, 1, 3, 6], 3),
        ] {
            let geo = Conv2dGeometry::new(&x, &w, 1, padding).unwrap();
            let x = values(geo.in_image(), 0.7);
            let w = values(geo.out_channels * geo.patch_len(), 1.3);
            let dy = values(geo.out_image(), 0.3);
            let (want_y, want_dx, want_dw) = naive(&geo, &x, &w, &dy);
            let w_rows = weights_by_row(&geo, &w);
            let mut y = vec![f64::NAN; geo.out_image()];
            forward_image(&geo, &x, &w_rows, &mut y);
            let mut dx = vec![f64::NAN; x.len()];
            // Accumulated onto a non-zero start, as the kernels accumulate over images.
            let mut acc = vec![1.0; w.len()];
            backward_image(&geo, &x, &w_rows, &dy, Some(&mut dx), Some(&mut acc));
            let ones = weights_from_rows_t(&geo, &vec![1.0; w.len()]);
            let dw: Vec<f64> = weights_from_rows_t(&geo, &acc)
                .iter()
                .zip(&ones)
                .map(|(a, b)| a - b)
                .collect();
            for (name, got, want) in [
                ("y", &y, &want_y),
                ("dx", &dx, &want_dx),
                ("dw", &dw, &want_dw),
            ] {
                for (i, (g, e)) in got.iter().zip(want.iter()).enumerate() {
                    assert!((g - e).abs() < 1e-12, "{geo:?} {name}[{i}]: {g} vs {e}");
                }
            }
        }
    }

    #[test]
    fn weight_regrouping_round_trips() {
        let geo = Conv2dGeometry::new(&[1, 3, 5, 5], &[4, 3, 3, 2], 1, 1).unwrap();
        let w = values(4 * geo.patch_len(), 0.9);
        let rows = weights_by_row(&geo, &w);
        // `[kh, O, C·kw]` → `[kh, C·kw, O]`, the layout the weight gradient comes back in.
        let k = taps_len(&geo);
        let mut rows_t = vec![0.0; w.len()];
        for (kh, tap) in rows.chunks_exact(4 * k).enumerate() {
            for o in 0..4 {
                for j in 0..k {
                    rows_t[(kh * k + j) * 4 + o] = tap[o * k + j];
                }
            }
        }
        assert_eq!(weights_from_rows_t(&geo, &rows_t), w);
    }

    #[test]
    fn applies_to_stride_one_convolutions_over_wide_enough_inputs() {
        let geo = |x: [usize; 4], w: [usize; 4], s| Conv2dGeometry::new(&x, &w, s, 1).unwrap();
        assert!(applies(&geo([2, 64, 32, 32], [64, 64, 3, 3], 1)));
        assert!(applies(&geo([2, 256, 8, 8], [256, 256, 3, 3], 1)));
        assert!(
            !applies(&geo([2, 64, 32, 32], [128, 64, 3, 3], 2)),
            "strided"
        );
        assert!(
            !applies(&geo([2, 3, 32, 32], [64, 3, 3, 3], 1)),
            "3 channels"
        );
        assert!(!applies(&geo([2, 512, 4, 4], [512, 512, 3, 3], 1)), "4×4");
    }
}
