//! `max_pool2d` against candle's pooling, a naive loop, finite differences and hand values.

use super::max_pool2d;
use crate::test_util::{assert_rel_close, randn};
use candle_core::{DType, Device, Result, Tensor, Var};
use dnc_core::testing::{assert_close, finite_difference_grad};

/// Gradient of `Σ max_pool(x)·g` for 2×2 windows, stride 2, by the definition.
fn naive_2x2_grad(x: &[f32], g: &[f32], (h, w): (usize, usize)) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let mut dx = vec![0.0; x.len()];
    for p in 0..x.len() / (h * w) {
        for (oh, ow) in (0..ho).flat_map(|i| (0..wo).map(move |j| (i, j))) {
            let idx = [(0, 0), (0, 1), (1, 0), (1, 1)]
                .map(|(a, b)| p * h * w + (2 * oh + a) * w + 2 * ow + b);
            let best = idx
                .into_iter()
                .fold(idx[0], |m, i| if x[i] > x[m] { i } else { m });
            dx[best] += g[(p * ho + oh) * wo + ow];
        }
    }
    dx
}

#[test]
fn two_by_two_pooling_matches_candle_values_and_a_naive_gradient() -> Result<()> {
    // Odd sizes: the last row and column are dropped (floor mode). candle's own backward is not
    // a reference: it scales each gradient by the fraction of maxima in the window (1/4), and
    // misplaces it on odd sizes.
    let x = Var::from_tensor(&randn(1, &[3, 4, 9, 7], DType::F32)?)?;
    let y = max_pool2d(x.as_tensor(), 2, 2, 0)?;
    let want = x.as_tensor().max_pool2d_with_stride(2, 2)?;
    assert_eq!(y.dims(), &[3, 4, 4, 3]);
    assert_rel_close("y", &y, &want, 0.0);
    let g = randn(2, y.dims(), DType::F32)?;
    let grads = (y * &g)?.sum_all()?.backward()?;
    let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
    let want = naive_2x2_grad(&flat(x.as_tensor())?, &flat(&g)?, (9, 7));
    assert_eq!(flat(grads.get(x.as_tensor()).unwrap())?, want);
    Ok(())
}

#[test]
fn padded_strided_windows_match_finite_differences() -> Result<()> {
    // The ImageNet ResNet stem's pool (3×3 windows, stride 2, padding 1), overlapping and
    // strided windows, and 2×2 pooling of an odd-sized input.
    for (k, s, p) in [(3, 2, 1), (3, 1, 1), (2, 1, 0), (4, 3, 2), (2, 2, 0)] {
        let x = randn(3, &[2, 2, 7, 6], DType::F64)?;
        let y = max_pool2d(&x, k, s, p)?;
        let g = randn(4, y.dims(), DType::F64)?;
        let xv = Var::from_tensor(&x)?;
        let grads = (max_pool2d(xv.as_tensor(), k, s, p)? * &g)?
            .sum_all()?
            .backward()?;
        let f = |x: &Tensor| (max_pool2d(x, k, s, p)? * &g)?.sum_all();
        let numeric = finite_difference_grad(f, &x, 1e-7)?;
        assert_close(grads.get(xv.as_tensor()).unwrap(), &numeric, 1e-6);
    }
    Ok(())
}

#[test]
fn windows_follow_the_pytorch_definition() -> Result<()> {
    // x = 0..16 on a 4×4 plane, 3×3 windows, stride 2, padding 1: windows cover rows/cols
    // {0,1}, {1,2,3}: maxima 5, 7, 13, 15.
    let x = Tensor::arange(0f32, 16.0, &Device::Cpu)?.reshape((1, 1, 4, 4))?;
    let y = max_pool2d(&x, 3, 2, 1)?.flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(y, [5.0, 7.0, 13.0, 15.0]);
    Ok(())
}

#[test]
fn ties_send_the_gradient_to_the_first_maximum_and_nan_propagates() -> Result<()> {
    let x = Var::new(
        &[[[[1f32, 1.0], [1.0, 0.0]], [[0.0, f32::NAN], [2.0, 1.0]]]],
        &Device::Cpu,
    )?;
    let y = max_pool2d(x.as_tensor(), 2, 2, 0)?;
    let v = y.flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(v[0], 1.0);
    assert!(v[1].is_nan());
    let grads = y.sum_all()?.backward()?;
    let dx = grads
        .get(x.as_tensor())
        .unwrap()
        .flatten_all()?
        .to_vec1::<f32>()?;
    assert_eq!(dx, [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    Ok(())
}

#[test]
fn bad_arguments_are_reported() {
    let x = Tensor::zeros((1, 1, 4, 4), DType::F32, &Device::Cpu).unwrap();
    let err = max_pool2d(&x, 2, 2, 2).unwrap_err().to_string();
    assert!(err.contains("padding 2 at most half the kernel"), "{err}");
    let err = max_pool2d(&x, 7, 1, 1).unwrap_err().to_string();
    assert!(err.contains("larger than the padded input 6x6"), "{err}");
}
