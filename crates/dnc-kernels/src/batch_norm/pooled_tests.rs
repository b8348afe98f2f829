//! `batch_norm_relu_max_pool2x2_train` against the chained ops and finite differences.

use super::batch_norm_relu_max_pool2x2_train;
use crate::batch_norm::batch_norm_relu_train;
use crate::max_pool2d;
use crate::test_util::{assert_rel_close, randn};
use candle_core::{DType, Device, Result, Tensor, Var};
use dnc_core::testing::{assert_close, finite_difference_grad};

/// `(y, dx, dw, db)` for `L = Σ y·g`.
fn run(
    op: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
    inputs: [&Tensor; 3],
    g: &Tensor,
) -> Result<[Tensor; 4]> {
    let vars = inputs.map(|t| Var::from_tensor(t).expect("var"));
    let [x, w, b] = vars.each_ref().map(|v| v.as_tensor());
    let y = op(x, w, b)?;
    let grads = (&y * g)?.sum_all()?.backward()?;
    let get = |t: &Tensor| grads.get(t).expect("gradient").clone();
    Ok([y.clone(), get(x), get(w), get(b)])
}

fn fused(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(batch_norm_relu_max_pool2x2_train(x, w, b, 1e-3)?.0)
}

fn chained(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
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
        let ours = run(fused, t.each_ref(), &g)?;
        let theirs = run(chained, t.each_ref(), &g)?;
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
    let grads = run(fused, t.each_ref(), &g)?;
    for k in 0..3 {
        let loss = |v: &Tensor| {
            let mut args = t.clone();
            args[k] = v.clone();
            (fused(&args[0], &args[1], &args[2])? * &g)?.sum_all()
        };
        assert_close(
            &grads[k + 1],
            &finite_difference_grad(loss, &t[k], 1e-6)?,
            1e-6,
        );
    }
    Ok(())
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
