//! `batch_norm_relu_max_pool2x2_train` against the chained ops and finite differences.

use super::batch_norm_relu_max_pool2x2_train;
use crate::batch_norm::batch_norm_relu_train;
use crate::max_pool2d;
use crate::test_util::{
    assert_grads_match_finite_differences, assert_rel_close, output_and_grads, randn,
};
use candle_core::{DType, Device, Result, Tensor, Var};
use dnc_core::testing::assert_close;

fn fused([x, w, b]: [&Tensor; 3]) -> Result<Tensor> {
    Ok(batch_norm_relu_max_pool2x2_train(x, w, b, 1e-3)?.0)
}

fn chained([x, w, b]: [&Tensor; 3]) -> Result<Tensor> {
    max_pool2d(&batch_norm_relu_train(x, w, b, 1e-3)?.0, 2, 2, 0)
}

fn inputs(seed: u64, dims: &[usize], dtype: DType) -> Result<[Tensor; 3]> {
    let c = dims[1];
    Ok([
        randn(seed, dims, dtype)?.affine(2.0, 5.0)?,
        randn(seed + 1, &[c], dtype)?,
        randn(seed + 2, &[c], dtype)?,
    ])
}

fn pooled_dims(dims: &[usize]) -> [usize; 4] {
    [dims[0], dims[1], dims[2] / 2, dims[3] / 2]
}

#[test]
fn matches_batch_norm_relu_then_max_pool() -> Result<()> {
    // Even planes, odd planes (the last row and column are dropped), and the smallest plane.
    for (i, dims) in [[6usize, 5, 8, 6], [4, 3, 7, 5], [30, 2, 2, 2]]
        .iter()
        .enumerate()
    {
        let seed = 130 + 10 * i as u64;
        let t = inputs(seed, dims, DType::F32)?;
        let g = randn(seed + 4, &pooled_dims(dims), DType::F32)?;
        let ours = output_and_grads(fused, t.each_ref(), &g)?;
        let theirs = output_and_grads(chained, t.each_ref(), &g)?;
        // The forward pass computes the same expressions: identical values.
        assert_close(&ours[0], &theirs[0], 0.0);
        for (name, (a, b)) in ["dx", "dw", "db"]
            .iter()
            .zip(ours[1..].iter().zip(&theirs[1..]))
        {
            assert_rel_close(&format!("shape {dims:?}: {name}"), a, b, 1e-4);
        }
        let (_, mean, var) = batch_norm_relu_max_pool2x2_train(&t[0], &t[1], &t[2], 1e-3)?;
        let (_, want_mean, want_var) = batch_norm_relu_train(&t[0], &t[1], &t[2], 1e-3)?;
        assert_close(&mean, &want_mean, 0.0);
        assert_close(&var, &want_var, 0.0);
    }
    Ok(())
}

#[test]
fn gradients_match_finite_differences_in_f64() -> Result<()> {
    let dims = [3usize, 2, 4, 5];
    let t = inputs(7, &dims, DType::F64)?;
    let g = randn(11, &pooled_dims(&dims), DType::F64)?;
    assert_grads_match_finite_differences(fused, t.each_ref(), &g, 1e-6, 1e-6)
}

#[test]
fn frozen_inputs_get_no_gradient() -> Result<()> {
    let [x, w, b] = inputs(40, &[4, 3, 4, 4], DType::F32)?;
    let wv = Var::from_tensor(&w)?;
    let y = batch_norm_relu_max_pool2x2_train(&x, wv.as_tensor(), &b, 1e-5)?.0;
    assert_eq!(y.dims(), [4, 3, 2, 2]);
    let grads = y.sum_all()?.backward()?;
    assert!(grads.get(&x).is_none() && grads.get(&b).is_none());
    assert!(grads.get(wv.as_tensor()).is_some());
    Ok(())
}

#[test]
fn bad_inputs_are_reported() {
    let err = |x: &Tensor| {
        let c = x.dim(1).unwrap();
        let w = Tensor::ones(c, x.dtype(), x.device()).unwrap();
        batch_norm_relu_max_pool2x2_train(x, &w, &w, 1e-5)
            .unwrap_err()
            .to_string()
    };
    let cpu = &Device::Cpu;
    let flat = Tensor::zeros((4, 3, 5), DType::F32, cpu).unwrap();
    assert!(err(&flat).contains("needs a 4-d input, got [4, 3, 5]"));
    let thin = Tensor::zeros((4, 3, 1, 6), DType::F32, cpu).unwrap();
    assert!(err(&thin).contains("at least 2x2, got [4, 3, 1, 6]"));
    let half = Tensor::zeros((4, 3, 2, 2), DType::F16, cpu).unwrap();
    assert!(err(&half).contains("needs an f32 or f64 tensor on the CPU, got F16"));
}
