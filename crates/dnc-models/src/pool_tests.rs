//! Tests of the pooling functions against direct loops and finite differences.

use super::*;
use crate::test_util::{assert_err_contains, randn, values};
use candle_core::{DType, Device, Var};
use dnc_core::testing::{assert_close, finite_difference_grad};

/// Max-pool of one `h × w` plane by the definition: window `k`, stride `s`, padding `p`
/// (padded positions never win).
fn direct_max_pool(x: &[f64], h: usize, w: usize, k: usize, s: usize, p: usize) -> Vec<f64> {
    let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    let mut out = Vec::with_capacity(ho * wo);
    for i in 0..ho {
        for j in 0..wo {
            let mut m = f64::NEG_INFINITY;
            for di in 0..k {
                for dj in 0..k {
                    let (r, c) = (
                        (i * s + di) as isize - p as isize,
                        (j * s + dj) as isize - p as isize,
                    );
                    if r >= 0 && c >= 0 && (r as usize) < h && (c as usize) < w {
                        m = m.max(x[r as usize * w + c as usize]);
                    }
                }
            }
            out.push(m);
        }
    }
    out
}

fn check_values(
    pool: fn(&Tensor) -> Result<Tensor>,
    (h, w): (usize, usize),
    (k, s, p): (usize, usize, usize),
) {
    let x = randn((2, 3, h, w), DType::F32, (h * 31 + w) as u64);
    let y = pool(&x).unwrap();
    let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    assert_eq!(y.dims(), &[2, 3, ho, wo], "input {h}×{w}");
    let xs = values(&x);
    let ys = values(&y);
    for plane in 0..6 {
        let want = direct_max_pool(&xs[plane * h * w..(plane + 1) * h * w], h, w, k, s, p);
        assert_eq!(
            &ys[plane * ho * wo..(plane + 1) * ho * wo],
            want.as_slice(),
            "{h}×{w}"
        );
    }
}

#[test]
fn max_pool_3x3_s2_matches_a_direct_loop() {
    for size in [(1, 1), (2, 3), (5, 5), (6, 7), (8, 8), (9, 4)] {
        check_values(max_pool_3x3_s2, size, (3, 2, 1));
    }
}

#[test]
fn max_pool_2x2_matches_a_direct_loop_on_odd_sizes() {
    for size in [(2, 2), (5, 4), (7, 7), (8, 6)] {
        check_values(max_pool_2x2, size, (2, 2, 0));
    }
    let x = Tensor::zeros((1, 1, 1, 4), DType::F32, &Device::Cpu).unwrap();
    assert_err_contains(max_pool_2x2(&x), &["at least 2×2", "[1, 1, 1, 4]"]);
}

fn check_gradient(pool: fn(&Tensor) -> Result<Tensor>, shape: (usize, usize, usize, usize)) {
    // Random values have no ties, so the max-pool is differentiable at this point.
    let x = Var::from_tensor(&randn(shape, DType::F64, 9)).unwrap();
    let y_shape = pool(x.as_tensor()).unwrap().shape().clone();
    let w = randn(y_shape, DType::F64, 10);
    let f = |x: &Tensor| pool(x)?.mul(&w)?.sum_all();
    let grads = f(x.as_tensor()).unwrap().backward().unwrap();
    let numeric = finite_difference_grad(f, x.as_tensor(), 1e-6).unwrap();
    assert_close(grads.get(x.as_tensor()).unwrap(), &numeric, 1e-7);
}

#[test]
fn max_pool_3x3_s2_gradient_matches_finite_differences() {
    check_gradient(max_pool_3x3_s2, (2, 2, 5, 6));
}

#[test]
fn max_pool_2x2_gradient_matches_finite_differences_on_odd_sizes() {
    check_gradient(max_pool_2x2, (1, 2, 5, 7));
    check_gradient(max_pool_2x2, (2, 1, 4, 4));
}

#[test]
fn global_avg_pool_is_the_spatial_mean() {
    let x = Tensor::arange(0f32, 24.0, &Device::Cpu)
        .unwrap()
        .reshape((2, 3, 2, 2))
        .unwrap();
    // Plane k holds 4k, 4k+1, 4k+2, 4k+3: its mean is 4k + 1.5.
    let want: Vec<f64> = (0..6).map(|k| 4.0 * k as f64 + 1.5).collect();
    let y = global_avg_pool(&x).unwrap();
    assert_eq!(y.dims(), &[2, 3]);
    assert_eq!(values(&y), want);
}
