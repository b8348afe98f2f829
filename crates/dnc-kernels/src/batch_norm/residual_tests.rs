//! `batch_norm_add_relu_train` against the chained ops and finite differences.

use super::batch_norm_add_relu_train;
use crate::batch_norm::batch_norm_train;
use crate::test_util::{
    assert_grads_match_finite_differences, assert_rel_close, output_and_grads, randn,
};
use candle_core::{DType, Device, Result, Tensor, Var};
use dnc_core::testing::assert_close;

fn fused([x, w, b, r]: [&Tensor; 4]) -> Result<Tensor> {
    Ok(batch_norm_add_relu_train(x, w, b, r, 1e-3)?.0)
}

fn chained([x, w, b, r]: [&Tensor; 4]) -> Result<Tensor> {
    (batch_norm_train(x, w, b, 1e-3)?.0 + r)?.relu()
}

fn inputs(seed: u64, dims: &[usize], dtype: DType) -> Result<[Tensor; 4]> {
    let c = dims[1];
    Ok([
        randn(seed, dims, dtype)?.affine(2.0, 5.0)?,
        randn(seed + 1, &[c], dtype)?,
        randn(seed + 2, &[c], dtype)?,
        randn(seed + 3, dims, dtype)?,
    ])
}

#[test]
fn matches_batch_norm_then_add_then_relu() -> Result<()> {
    for (i, dims) in [&[6usize, 5, 7, 7][..], &[40, 3, 2, 2], &[9, 4]]
        .iter()
        .enumerate()
    {
        let seed = 70 + 10 * i as u64;
        let t = inputs(seed, dims, DType::F32)?;
        let g = randn(seed + 4, dims, DType::F32)?;
        let ours = output_and_grads(fused, t.each_ref(), &g)?;
        let theirs = output_and_grads(chained, t.each_ref(), &g)?;
        for (name, (a, b)) in ["y", "dx", "dw", "db", "dr"]
            .iter()
            .zip(ours.iter().zip(&theirs))
        {
            assert_rel_close(&format!("shape {dims:?}: {name}"), a, b, 1e-4);
        }
        let (_, mean, var) = batch_norm_add_relu_train(&t[0], &t[1], &t[2], &t[3], 1e-3)?;
        let (_, want_mean, want_var) = batch_norm_train(&t[0], &t[1], &t[2], 1e-3)?;
        assert_close(&mean, &want_mean, 0.0);
        assert_close(&var, &want_var, 0.0);
    }
    Ok(())
}

#[test]
fn gradients_match_finite_differences_in_f64() -> Result<()> {
    for dims in [&[3usize, 2, 3, 2][..], &[5, 3]] {
        let t = inputs(5, dims, DType::F64)?;
        let g = randn(9, dims, DType::F64)?;
        // Away from the ReLU's kink: no pre-activation within 1e-4 of zero.
        let pre = (batch_norm_train(&t[0], &t[1], &t[2], 1e-3)?.0 + &t[3])?;
        assert!(pre.abs()?.flatten_all()?.min(0)?.to_scalar::<f64>()? > 1e-4);
        assert_grads_match_finite_differences(fused, t.each_ref(), &g, 1e-6, 1e-7)?;
    }
    Ok(())
}

#[test]
fn frozen_inputs_get_no_gradient_and_other_dtypes_fall_back() -> Result<()> {
    let [x, w, b, r] = inputs(20, &[4, 3, 3, 3], DType::F32)?;
    let wv = Var::from_tensor(&w)?;
    let y = batch_norm_add_relu_train(&x, wv.as_tensor(), &b, &r, 1e-5)?.0;
    let grads = y.sum_all()?.backward()?;
    assert!(grads.get(&x).is_none() && grads.get(&r).is_none() && grads.get(&b).is_none());
    assert!(grads.get(wv.as_tensor()).is_some());
    let half = |t: &Tensor| t.to_dtype(DType::F16);
    let yh = batch_norm_add_relu_train(&half(&x)?, &half(&w)?, &half(&b)?, &half(&r)?, 1e-5)?.0;
    assert_eq!(yh.dtype(), DType::F16);
    assert_rel_close("f16 y", &yh, &y, 1e-2);
    Ok(())
}

#[test]
fn mismatched_residuals_are_reported() {
    let x = Tensor::zeros((4, 3, 2, 2), DType::F32, &Device::Cpu).unwrap();
    let w = Tensor::ones(3, DType::F32, x.device()).unwrap();
    let r = Tensor::zeros((4, 3, 2, 1), DType::F32, x.device()).unwrap();
    let err = batch_norm_add_relu_train(&x, &w, &w, &r, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("input is [4, 3, 2, 2] but residual is [4, 3, 2, 1]"),
        "{err}"
    );
    let r = Tensor::zeros((4, 3, 2, 2), DType::F64, x.device()).unwrap();
    let err = batch_norm_add_relu_train(&x, &w, &w, &r, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("residual is F64"), "{err}");
}
