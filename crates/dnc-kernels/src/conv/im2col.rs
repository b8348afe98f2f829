//! Patch matrices: `im2col` lays the receptive fields of a group of images out as the columns of
//! a matrix, so that a convolution becomes one matrix product; `col2im` scatters the gradient
//! of that matrix back onto the images.
//!
//! Layout: for `G` images with `P = out_h · out_w` output pixels, the patch matrix is row-major
//! `[K, G·P]` with row `(c, kh, kw)` (`K = in_channels · kernel_h · kernel_w`) and column
//! `g·P + oh·out_w + ow`. Padding contributes zeros.

use super::geometry::Conv2dGeometry;
use crate::float::Float;

/// Output positions `o` whose input position `o·stride + k − padding` lies inside `0..in_len`,
/// as a half-open range (empty when the tap only ever sees padding).
fn valid_range(
    out_len: usize,
    in_len: usize,
    k: usize,
    stride: usize,
    padding: usize,
) -> (usize, usize) {
    let lo = padding.saturating_sub(k).div_ceil(stride);
    let hi = if in_len + padding > k {
        ((in_len - 1 + padding - k) / stride + 1).min(out_len)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// One kernel tap `(kh, kw)`: which output rows and columns see real input, and where.
#[derive(Debug, Clone, Copy)]
struct Tap {
    rows: (usize, usize),
    cols: (usize, usize),
    kh: usize,
    /// Input column of the first valid output column.
    first_iw: usize,
}

impl Tap {
    fn new(geo: &Conv2dGeometry, kh: usize, kw: usize) -> Self {
        let (s, pad) = (geo.stride, geo.padding);
        let rows = valid_range(geo.out_h, geo.in_h, kh, s, pad);
        let cols = valid_range(geo.out_w, geo.in_w, kw, s, pad);
        Self {
            rows,
            cols,
            kh,
            first_iw: (cols.0 * s + kw).saturating_sub(pad),
        }
    }

    /// Input row read by output row `oh` (which must lie in `rows`).
    fn input_row(&self, geo: &Conv2dGeometry, oh: usize) -> usize {
        oh * geo.stride + self.kh - geo.padding
    }
}

/// Fills `col` (`[K, G·P]`) with the patches of the `G` images in `x` (`[G, C, H, W]`).
pub(crate) fn im2col<T: Float>(geo: &Conv2dGeometry, x: &[T], col: &mut [T]) {
    let images = x.len() / geo.in_image();
    let (plane, width) = (geo.out_plane(), images * geo.out_plane());
    debug_assert_eq!(col.len(), geo.patch_len() * width);
    let mut rows = col.chunks_exact_mut(width);
    for c in 0..geo.in_channels {
        for kh in 0..geo.kernel_h {
            for kw in 0..geo.kernel_w {
                let tap = Tap::new(geo, kh, kw);
                let row = rows.next().expect("patch matrix has K rows");
                for (g, dst) in row.chunks_exact_mut(plane).enumerate() {
                    let start = g * geo.in_image() + c * geo.in_plane();
                    fill_tap(geo, &tap, &x[start..start + geo.in_plane()], dst);
                }
            }
        }
    }
}

/// Writes the values one tap sees over one input plane into `dst` (`[out_h · out_w]`).
fn fill_tap<T: Float>(geo: &Conv2dGeometry, tap: &Tap, src: &[T], dst: &mut [T]) {
    let (lo, hi) = tap.cols;
    for (oh, out_row) in dst.chunks_exact_mut(geo.out_w).enumerate() {
        if oh < tap.rows.0 || oh >= tap.rows.1 {
            out_row.fill(T::ZERO);
            continue;
        }
        let ih = tap.input_row(geo, oh);
        let in_row = &src[ih * geo.in_w..(ih + 1) * geo.in_w];
        out_row[..lo].fill(T::ZERO);
        out_row[hi..].fill(T::ZERO);
        if lo == hi {
            continue;
        }
        let out_valid = &mut out_row[lo..hi];
        if geo.stride == 1 {
            out_valid.copy_from_slice(&in_row[tap.first_iw..tap.first_iw + (hi - lo)]);
        } else {
            let taps = in_row[tap.first_iw..].iter().step_by(geo.stride);
            for (d, v) in out_valid.iter_mut().zip(taps) {
                *d = *v;
            }
        }
    }
}

/// Adds the patch-matrix gradient `col` (`[K, G·P]`) onto the `G` images in `dx`
/// (`[G, C, H, W]`): the adjoint of [`im2col`].
pub(crate) fn col2im<T: Float>(geo: &Conv2dGeometry, col: &[T], dx: &mut [T]) {
    let images = dx.len() / geo.in_image();
    let (plane, width) = (geo.out_plane(), images * geo.out_plane());
    debug_assert_eq!(col.len(), geo.patch_len() * width);
    let taps: Vec<Tap> = (0..geo.kernel_h)
        .flat_map(|kh| (0..geo.kernel_w).map(move |kw| (kh, kw)))
        .map(|(kh, kw)| Tap::new(geo, kh, kw))
        .collect();
    // Image-major order keeps one input plane hot in cache while all its taps land on it.
    for (g, image) in dx.chunks_exact_mut(geo.in_image()).enumerate() {
        for (c, dst) in image.chunks_exact_mut(geo.in_plane()).enumerate() {
            for (t, tap) in taps.iter().enumerate() {
                let row = (c * taps.len() + t) * width + g * plane;
                add_tap(geo, tap, &col[row..row + plane], dst);
            }
        }
    }
}

/// Adds the gradient of one tap (`[out_h · out_w]`) onto one input plane.
fn add_tap<T: Float>(geo: &Conv2dGeometry, tap: &Tap, src: &[T], dst: &mut [T]) {
    let (lo, hi) = tap.cols;
    if lo == hi {
        return;
    }
    for oh in tap.rows.0..tap.rows.1 {
        let ih = tap.input_row(geo, oh);
        let in_row = &mut dst[ih * geo.in_w..(ih + 1) * geo.in_w];
        let grads = &src[oh * geo.out_w + lo..oh * geo.out_w + hi];
        if geo.stride == 1 {
            let targets = &mut in_row[tap.first_iw..tap.first_iw + (hi - lo)];
            for (d, g) in targets.iter_mut().zip(grads) {
                *d += *g;
            }
        } else {
            let targets = in_row[tap.first_iw..].iter_mut().step_by(geo.stride);
            for (d, g) in targets.zip(grads) {
                *d += *g;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Patch matrix by the definition, one element at a time.
    fn naive_im2col(geo: &Conv2dGeometry, x: &[f64]) -> Vec<f64> {
        let images = x.len() / geo.in_image();
        let (p, width) = (geo.out_plane(), images * geo.out_plane());
        let mut col = vec![0.0; geo.patch_len() * width];
        for g in 0..images {
            for c in 0..geo.in_channels {
                for kh in 0..geo.kernel_h {
                    for kw in 0..geo.kernel_w {
                        let row = (c * geo.kernel_h + kh) * geo.kernel_w + kw;
                        for oh in 0..geo.out_h {
                            for ow in 0..geo.out_w {
                                let ih = (oh * geo.stride + kh) as isize - geo.padding as isize;
                                let iw = (ow * geo.stride + kw) as isize - geo.padding as isize;
                                let inside = (0..geo.in_h as isize).contains(&ih)
                                    && (0..geo.in_w as isize).contains(&iw);
                                if inside {
                                    let src = g * geo.in_image()
                                        + c * geo.in_plane()
                                        + ih as usize * geo.in_w
                                        + iw as usize;
                                    col[row * width + g * p + oh * geo.out_w + ow] = x[src];
                                }
                            }
                        }
                    }
                }
            }
        }
        col
    }

    fn geometries() -> Vec<Conv2dGeometry> {
        [
            ([2, 2, 5, 6], [1, 2, 3, 3], 1, 1),
            ([2, 3, 7, 5], [1, 3, 3, 3], 2, 1),
            ([1, 2, 9, 9], [1, 2, 7, 7], 2, 3),
            ([3, 2, 4, 4], [1, 2, 1, 1], 2, 0),
            ([1, 1, 3, 3], [1, 1, 3, 3], 1, 2),
            ([1, 1, 6, 6], [1, 1, 2, 2], 3, 0),
        ]
        .iter()
        .map(|(x, w, s, p)| Conv2dGeometry::new(x, w, *s, *p).unwrap())
        .collect()
    }

    #[test]
    fn im2col_matches_the_definition() {
        for geo in geometries() {
            let x: Vec<f64> = (0..geo.batch * geo.in_image())
                .map(|i| i as f64 + 1.0)
                .collect();
            let mut col = vec![f64::NAN; geo.patch_len() * geo.batch * geo.out_plane()];
            im2col(&geo, &x, &mut col);
            assert_eq!(col, naive_im2col(&geo, &x), "{geo:?}");
        }
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), c> = <x, col2im(c)> for all x and c.
        for geo in geometries() {
            let n_col = geo.patch_len() * geo.batch * geo.out_plane();
            let x: Vec<f64> = (0..geo.batch * geo.in_image())
                .map(|i| (i as f64 * 0.7).sin())
                .collect();
            let c: Vec<f64> = (0..n_col).map(|i| (i as f64 * 1.3).cos()).collect();
            let mut col = vec![0.0; n_col];
            im2col(&geo, &x, &mut col);
            let mut dx = vec![0.0; x.len()];
            col2im(&geo, &c, &mut dx);
            let lhs: f64 = col.iter().zip(&c).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-9, "{geo:?}: {lhs} vs {rhs}");
        }
    }
}
