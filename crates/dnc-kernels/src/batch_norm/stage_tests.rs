//! The fused convolution + batch-norm ops against the chained ops and finite differences.

use super::{
    batch_norm_relu_max_pool2x2_train, batch_norm_relu_train, batch_norm_train,
    conv2d_batch_norm_relu_max_pool2x2_train, conv2d_batch_norm_relu_train,
    conv2d_batch_norm_train,
};
use crate::conv2d;
use crate::test_util::{
    assert_grads_match_finite_differences, assert_rel_close, output_and_grads, randn,
};
use candle_core::{DType, Device, Result, Tensor, Var};
use dnc_core::testing::assert_close;

fn fused([x, k, w, b]: [&Tensor; 4]) -> Result<Tensor> {
    Ok(conv2d_batch_norm_relu_max_pool2x2_train(x, k, w, b, 1, 1, 1e-3)?.0)
}

fn chained([x, k, w, b]: [&Tensor; 4]) -> Result<Tensor> {
    Ok(batch_norm_relu_max_pool2x2_train(&conv2d(x, k, 1, 1)?, w, b, 1e-3)?.0)
}

/// Input `[N, C, H, W]`, a 3×3 kernel to `o` channels, batch-norm weight and bias.
fn inputs(seed: u64, x: [usize; 4], o: usize, dtype: DType) -> Result<[Tensor; 4]> {
    Ok([
        randn(seed, &x, dtype)?,
        randn(seed + 1, &[o, x[1], 3, 3], dtype)?,
        randn(seed + 2, &[o], dtype)?,
        randn(seed + 3, &[o], dtype)?,
    ])
}

#[test]
fn matches_convolution_then_the_fused_tail() -> Result<()> {
    for (i, (x, o)) in [
        ([6usize, 3, 8, 8], 5),
        ([4, 2, 7, 5], 3),
        ([20, 4, 2, 2], 2),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 200 + 10 * i as u64;
        let t = inputs(seed, x, o, DType::F32)?;
        let g = randn(seed + 4, &[x[0], o, x[2] / 2, x[3] / 2], DType::F32)?;
        let ours = output_and_grads(fused, t.each_ref(), &g)?;
        let theirs = output_and_grads(chained, t.each_ref(), &g)?;
        assert_close(&ours[0], &theirs[0], 0.0);
        for (name, (a, b)) in ["dx", "dk", "dw", "db"]
            .iter()
            .zip(ours[1..].iter().zip(&theirs[1..]))
        {
            assert_rel_close(&format!("input {x:?}: {name}"), a, b, 1e-5);
        }
        let (_, mean, var) =
            conv2d_batch_norm_relu_max_pool2x2_train(&t[0], &t[1], &t[2], &t[3], 1, 1, 1e-3)?;
        let conv = conv2d(&t[0], &t[1], 1, 1)?;
        let (_, want_mean, want_var) =
            batch_norm_relu_max_pool2x2_train(&conv, &t[2], &t[3], 1e-3)?;
        assert_close(&mean, &want_mean, 0.0);
        assert_close(&var, &want_var, 0.0);
    }
    Ok(())
}

#[test]
fn gradients_match_finite_differences_in_f64() -> Result<()> {
    let t = inputs(31, [3, 2, 4, 6], 2, DType::F64)?;
    let g = randn(37, &[3, 2, 2, 3], DType::F64)?;
    assert_grads_match_finite_differences(fused, t.each_ref(), &g, 1e-6, 1e-6)
}

#[test]
fn frozen_inputs_get_no_gradient() -> Result<()> {
    let [x, k, w, b] = inputs(50, [4, 3, 4, 4], 2, DType::F32)?;
    let kv = Var::from_tensor(&k)?;
    let y = conv2d_batch_norm_relu_max_pool2x2_train(&x, kv.as_tensor(), &w, &b, 1, 1, 1e-5)?.0;
    assert_eq!(y.dims(), [4, 2, 2, 2]);
    let grads = y.sum_all()?.backward()?;
    assert!(grads.get(&x).is_none() && grads.get(&w).is_none() && grads.get(&b).is_none());
    assert!(grads.get(kv.as_tensor()).is_some());
    // Without any tracked input the op records nothing.
    let y = conv2d_batch_norm_relu_max_pool2x2_train(&x, &k, &w, &b, 1, 1, 1e-5)?.0;
    assert!(!y.track_op());
    Ok(())
}

#[test]
fn bad_inputs_are_reported() {
    let cpu = &Device::Cpu;
    let zeros = |dims: &[usize], dtype| Tensor::zeros(dims, dtype, cpu).unwrap();
    let err = |x: &Tensor, k: &Tensor, bn: &Tensor| {
        conv2d_batch_norm_relu_max_pool2x2_train(x, k, bn, bn, 1, 1, 1e-5)
            .unwrap_err()
            .to_string()
    };
    let x = zeros(&[2, 3, 4, 4], DType::F32);
    let k = zeros(&[5, 3, 3, 3], DType::F32);
    let e = err(&x, &k, &zeros(&[4], DType::F32));
    assert!(
        e.contains("5 output channels but the batch-norm weight is [4]"),
        "{e}"
    );
    let e = err(&x, &k, &zeros(&[5], DType::F64));
    assert!(e.contains("a parameter is F64"), "{e}");
    let e = err(
        &zeros(&[2, 3, 1, 4], DType::F32),
        &k,
        &zeros(&[5], DType::F32),
    );
    assert!(e.contains("smaller than 2x2"), "{e}");
    let half = |t: &Tensor| t.to_dtype(DType::F16).unwrap();
    let e = err(&half(&x), &half(&k), &zeros(&[5], DType::F16));
    assert!(
        e.contains("needs f32 or f64 tensors on the CPU, got F16"),
        "{e}"
    );
}

type NormFn = fn(&Tensor, &Tensor, &Tensor, &Tensor, usize, usize, f64) -> BnResult;
type BnResult = Result<(Tensor, Tensor, Tensor)>;

/// `conv2d_batch_norm_train` or, with `relu`, `conv2d_batch_norm_relu_train` (padding 1).
fn unpooled(relu: bool, [x, k, w, b]: [&Tensor; 4], stride: usize) -> BnResult {
    let op: NormFn = if relu {
        conv2d_batch_norm_relu_train
    } else {
        conv2d_batch_norm_train
    };
    op(x, k, w, b, stride, 1, 1e-3)
}

/// The same from `conv2d` and the batch-norm op.
fn unpooled_chained(relu: bool, [x, k, w, b]: [&Tensor; 4], stride: usize) -> BnResult {
    let conv = conv2d(x, k, stride, 1)?;
    if relu {
        batch_norm_relu_train(&conv, w, b, 1e-3)
    } else {
        batch_norm_train(&conv, w, b, 1e-3)
    }
}

#[test]
fn unpooled_ops_match_convolution_then_batch_norm() -> Result<()> {
    // Padded stride 1 (small, and wide enough for the horizontal-tap convolution), stride 2,
    // and a 1×1 output.
    for (i, (x, o, stride)) in [
        ([4usize, 3, 6, 5], 4, 1),
        ([2, 16, 9, 8], 3, 1),
        ([3, 2, 7, 7], 5, 2),
        ([5, 2, 2, 1], 3, 2),
    ]
    .into_iter()
    .enumerate()
    {
        for relu in [false, true] {
            let seed = 400 + 10 * i as u64;
            let t = inputs(seed, x, o, DType::F32)?;
            let (y, mean, var) = unpooled(relu, t.each_ref(), stride)?;
            let (want_y, want_mean, want_var) = unpooled_chained(relu, t.each_ref(), stride)?;
            assert_close(&y, &want_y, 0.0);
            assert_close(&mean, &want_mean, 0.0);
            assert_close(&var, &want_var, 0.0);
            let g = randn(seed + 4, y.dims(), DType::F32)?;
            let ours = output_and_grads(|t| Ok(unpooled(relu, t, stride)?.0), t.each_ref(), &g)?;
            let theirs = output_and_grads(
                |t| Ok(unpooled_chained(relu, t, stride)?.0),
                t.each_ref(),
                &g,
            )?;
            for (name, (a, b)) in ["dx", "dk", "dw", "db"]
                .iter()
                .zip(ours[1..].iter().zip(&theirs[1..]))
            {
                let case = format!("input {x:?} stride {stride} relu {relu}: {name}");
                assert_rel_close(&case, a, b, 1e-5);
            }
        }
    }
    Ok(())
}

#[test]
fn unpooled_gradients_match_finite_differences_in_f64() -> Result<()> {
    for relu in [false, true] {
        let t = inputs(61, [3, 2, 4, 5], 2, DType::F64)?;
        let g = randn(67, &[3, 2, 4, 5], DType::F64)?;
        let op = |t: [&Tensor; 4]| Ok(unpooled(relu, t, 1)?.0);
        assert_grads_match_finite_differences(op, t.each_ref(), &g, 1e-6, 1e-6)?;
    }
    Ok(())
}
