//! A bounds-checked wrapper around the `gemm` crate's strided matrix product.
//!
//! The kernels call it from inside rayon tasks with [`gemm::Parallelism::None`], one product per
//! task, so that two cores work on two images instead of splitting one small product.

use crate::float::Float;
use gemm::Parallelism;

/// A read-only strided matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T: Float> MatRef<'a, T> {
    /// A dense row-major `rows × cols` matrix at the start of `data`.
    pub(crate) fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        let view = Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        };
        view.check();
        view
    }

    /// A strided view of `rows × cols` elements: `(i, j)` is `data[i * row_stride + j *
    /// col_stride]`. Panics when it reaches past the end of `data`.
    pub(crate) fn strided(
        data: &'a [T],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        let view = Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        };
        view.check();
        view
    }

    /// The transposed view (no copy).
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    fn check(&self) {
        check_extent(
            self.rows,
            self.cols,
            self.row_stride,
            self.col_stride,
            self.data.len(),
        );
    }
}

/// A writable strided matrix view whose rows do not overlap (so that gemm may write it).
#[derive(Debug)]
pub(crate) struct MatMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a, T: Float> MatMut<'a, T> {
    /// `rows × cols` elements with unit column stride: `(i, j)` is `data[i * row_stride + j]`.
    /// Panics when rows would overlap or the view reaches past the end of `data`.
    pub(crate) fn strided(data: &'a mut [T], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(
            rows <= 1 || cols <= row_stride,
            "writable matrix view: rows of {cols} overlap at stride {row_stride}"
        );
        check_extent(rows, cols, row_stride, 1, data.len());
        Self {
            data,
            rows,
            cols,
            row_stride,
        }
    }
}

fn check_extent(rows: usize, cols: usize, row_stride: usize, col_stride: usize, len: usize) {
    if rows > 0 && cols > 0 {
        let last = (rows - 1) * row_stride + (cols - 1) * col_stride;
        assert!(
            last < len,
            "matrix view {rows}x{cols} (strides {row_stride}, {col_stride}) overruns a buffer of {len}"
        );
    }
}

/// `dst ← lhs · rhs` (or `dst ← dst + lhs · rhs` when `accumulate`), with `dst` a dense
/// row-major `lhs.rows × rhs.cols` matrix at the start of the slice.
///
/// Panics when the shapes do not fit: the kernels size every buffer themselves, so a mismatch is
/// a bug, not a user error.
pub(crate) fn matmul<T: Float>(
    dst: &mut [T],
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    accumulate: bool,
    parallelism: Parallelism,
) {
    let (m, n) = (lhs.rows, rhs.cols);
    assert!(
        dst.len() >= m * n,
        "matmul: destination of {} cannot hold {m}x{n}",
        dst.len()
    );
    matmul_into(
        MatMut::strided(&mut dst[..m * n], m, n, n),
        lhs,
        rhs,
        accumulate,
        parallelism,
    );
}

/// [`matmul`] into a strided destination view.
pub(crate) fn matmul_into<T: Float>(
    dst: MatMut<'_, T>,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    accumulate: bool,
    parallelism: Parallelism,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(
        k, rhs.rows,
        "matmul: inner dimensions differ ({m}x{k} · {}x{n})",
        rhs.rows
    );
    assert_eq!(
        (dst.rows, dst.cols),
        (m, n),
        "matmul: destination view does not hold {m}x{n}"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in dst.data.chunks_mut(dst.row_stride).take(m) {
                row[..n].fill(T::ZERO);
            }
        }
        return;
    }
    // SAFETY: the views were checked to lie inside their slices (`check_extent` runs on
    // construction and a transpose keeps the same extent), the rows of `dst` do not overlap, and
    // the mutable borrow of `dst` excludes aliasing with the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            dst.row_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            T::from_f64(1.0),
            T::from_f64(1.0),
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn products_and_transposed_views_match_a_naive_loop() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.91).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        let mut got = vec![0.0; m * n];
        let (lhs, rhs) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
        matmul(&mut got, lhs, rhs, false, Parallelism::None);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
        // (bᵀ)ᵀ through a transposed copy, accumulated onto the first result: twice the product.
        let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let rhs_t = MatRef::row_major(&bt, n, k).t();
        matmul(&mut got, lhs, rhs_t, true, Parallelism::None);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - 2.0 * w).abs() < 1e-12, "{g} vs 2·{w}");
        }
    }

    #[test]
    #[should_panic(expected = "overruns")]
    fn views_outside_their_buffer_are_refused() {
        let a = vec![0f32; 5];
        MatRef::row_major(&a, 2, 3);
    }
}
