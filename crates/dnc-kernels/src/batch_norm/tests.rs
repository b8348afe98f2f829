//! `batch_norm_train` against hand values, the composed candle formula and finite differences.

use super::{batch_norm_relu_train, batch_norm_train};
use crate::test_util::{assert_rel_close, randn};
use candle_core::{D, DType, Device, Result, Tensor, Var};
use dnc_core::testing::{assert_close, finite_difference_grad};

/// The textbook formula from candle ops, independent of this crate's code.
fn reference(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (n, c) = (dims[0], dims[1]);
    let xs = x.reshape((n, c, ()))?.transpose(0, 1)?.flatten_from(1)?; // [C, N·L]
    let mean = xs.mean_keepdim(D::Minus1)?;
    let var = xs.broadcast_sub(&mean)?.sqr()?.mean_keepdim(D::Minus1)?;
    let xhat = xs
        .broadcast_sub(&mean)?
        .broadcast_div(&(var + eps)?.sqrt()?)?;
    let y = xhat
        .broadcast_mul(&w.unsqueeze(1)?)?
        .broadcast_add(&b.unsqueeze(1)?)?;
    let l: usize = dims[2..].iter().product();
    y.reshape((c, n, l))?.transpose(0, 1)?.reshape(dims)
}

type Outputs = (Tensor, Tensor, Tensor, Tensor);

/// `(y, dx, dw, db)` for `L = Σ y·g`.
fn run(
    bn: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    g: &Tensor,
) -> Result<Outputs> {
    let (x, w, b) = (
        Var::from_tensor(x)?,
        Var::from_tensor(w)?,
        Var::from_tensor(b)?,
    );
    let y = bn(x.as_tensor(), w.as_tensor(), b.as_tensor())?;
    let grads = (&y * g)?.sum_all()?.backward()?;
    let get = |v: &Var| grads.get(v.as_tensor()).expect("gradient").clone();
    Ok((y, get(&x), get(&w), get(&b)))
}

#[test]
fn normalises_to_hand_computed_values() -> Result<()> {
    // Channel 0 holds 1, 3, 5, 7 (mean 4, biased var 5); channel 1 holds 2, 2, 2, 2 (var 0).
    let x = Tensor::new(
        &[[[1f32, 3.0], [2.0, 2.0]], [[5.0, 7.0], [2.0, 2.0]]],
        &Device::Cpu,
    )?;
    let (w, b) = (
        Tensor::new(&[2f32, 1.0], x.device())?,
        Tensor::new(&[0.5f32, -1.0], x.device())?,
    );
    let (y, mean, var) = batch_norm_train(&x, &w, &b, 0.0)?;
    assert_eq!(mean.to_vec1::<f32>()?, [4.0, 2.0]);
    assert_eq!(var.to_vec1::<f32>()?, [5.0, 0.0]);
    let s = 2.0 / 5f32.sqrt();
    let want = Tensor::new(
        &[
            [[0.5 - 3.0 * s, 0.5 - s], [f32::NAN, f32::NAN]],
            [[0.5 + s, 0.5 + 3.0 * s], [f32::NAN, f32::NAN]],
        ],
        x.device(),
    )?;
    // Channel 1 has zero variance and eps 0: its values are 0/0; compare channel 0 only.
    assert_close(&y.narrow(1, 0, 1)?, &want.narrow(1, 0, 1)?, 1e-6);
    let (y, _, _) = batch_norm_train(&x, &w, &b, 1e-5)?;
    assert_eq!(
        y.narrow(1, 1, 1)?.flatten_all()?.to_vec1::<f32>()?,
        [-1.0; 4]
    );
    Ok(())
}

#[test]
fn values_statistics_and_gradients_match_the_composed_formula() -> Result<()> {
    // Rank 4 with long runs (channel-wise sums), short runs and rank 2 (row-wise sums).
    let shapes: &[&[usize]] = &[
        &[3, 4, 8, 9],
        &[5, 3, 2, 3],
        &[17, 6],
        &[1, 2, 7, 7],
        &[64, 5, 4, 4],
    ];
    for (i, dims) in shapes.iter().enumerate() {
        let seed = 100 * i as u64;
        let c = dims[1];
        // An offset keeps E[x²] − E[x]² honest: naive one-pass variance would lose digits.
        let x = randn(seed, dims, DType::F32)?.affine(3.0, 50.0)?;
        let w = randn(seed + 1, &[c], DType::F32)?;
        let b = randn(seed + 2, &[c], DType::F32)?;
        let g = randn(seed + 3, dims, DType::F32)?;
        let ours = run(
            |x, w, b| Ok(batch_norm_train(x, w, b, 1e-5)?.0),
            &x,
            &w,
            &b,
            &g,
        )?;
        let theirs = run(|x, w, b| reference(x, w, b, 1e-5), &x, &w, &b, &g)?;
        let case = format!("shape {dims:?}");
        assert_rel_close(&format!("{case}: y"), &ours.0, &theirs.0, 1e-4);
        assert_rel_close(&format!("{case}: dx"), &ours.1, &theirs.1, 1e-4);
        assert_rel_close(&format!("{case}: dw"), &ours.2, &theirs.2, 1e-4);
        assert_rel_close(&format!("{case}: db"), &ours.3, &theirs.3, 1e-4);
        let (_, mean, var) = batch_norm_train(&x, &w, &b, 1e-5)?;
        let xs = x
            .to_dtype(DType::F64)?
            .reshape((dims[0], c, ()))?
            .transpose(0, 1)?
            .flatten_from(1)?;
        let want_mean = xs.mean(1)?;
        let want_var = xs.broadcast_sub(&want_mean.unsqueeze(1)?)?.sqr()?.mean(1)?;
        assert_rel_close(&format!("{case}: mean"), &mean, &want_mean, 1e-6);
        assert_rel_close(&format!("{case}: var"), &var, &want_var, 1e-5);
    }
    Ok(())
}

#[test]
fn fused_relu_matches_batch_norm_then_relu() -> Result<()> {
    for (i, dims) in [&[6usize, 5, 7, 7][..], &[40, 3, 2, 2], &[9, 4]]
        .iter()
        .enumerate()
    {
        let seed = 50 + 10 * i as u64;
        let c = dims[1];
        let x = randn(seed, dims, DType::F32)?;
        let w = randn(seed + 1, &[c], DType::F32)?;
        let b = randn(seed + 2, &[c], DType::F32)?;
        let g = randn(seed + 3, dims, DType::F32)?;
        let fused = run(
            |x, w, b| Ok(batch_norm_relu_train(x, w, b, 1e-5)?.0),
            &x,
            &w,
            &b,
            &g,
        )?;
        let chained = run(|x, w, b| reference(x, w, b, 1e-5)?.relu(), &x, &w, &b, &g)?;
        let case = format!("shape {dims:?}");
        assert_rel_close(&format!("{case}: y"), &fused.0, &chained.0, 1e-5);
        assert_rel_close(&format!("{case}: dx"), &fused.1, &chained.1, 1e-4);
        assert_rel_close(&format!("{case}: dw"), &fused.2, &chained.2, 1e-4);
        assert_rel_close(&format!("{case}: db"), &fused.3, &chained.3, 1e-4);
        let (_, mean, _) = batch_norm_relu_train(&x, &w, &b, 1e-5)?;
        assert_rel_close(
            &format!("{case}: mean"),
            &mean,
            &batch_norm_train(&x, &w, &b, 1e-5)?.1,
            0.0,
        );
    }
    Ok(())
}

#[test]
fn gradients_match_finite_differences_in_f64() -> Result<()> {
    for dims in [&[3usize, 2, 3, 2][..], &[5, 3]] {
        let c = dims[1];
        let x = randn(1, dims, DType::F64)?;
        let w = randn(2, &[c], DType::F64)?;
        let b = randn(3, &[c], DType::F64)?;
        let g = randn(4, dims, DType::F64)?;
        let (_, dx, dw, db) = run(
            |x, w, b| Ok(batch_norm_train(x, w, b, 1e-3)?.0),
            &x,
            &w,
            &b,
            &g,
        )?;
        let loss = |x: &Tensor, w: &Tensor, b: &Tensor| {
            (batch_norm_train(x, w, b, 1e-3)?.0 * &g)?.sum_all()
        };
        assert_close(
            &dx,
            &finite_difference_grad(|x| loss(x, &w, &b), &x, 1e-6)?,
            1e-7,
        );
        assert_close(
            &dw,
            &finite_difference_grad(|w| loss(&x, w, &b), &w, 1e-6)?,
            1e-7,
        );
        assert_close(
            &db,
            &finite_difference_grad(|b| loss(&x, &w, b), &b, 1e-6)?,
            1e-7,
        );
        // The fused ReLU variant, away from its kink (no output within 1e-4 of zero).
        let (dx, dw, db) = {
            let r = run(
                |x, w, b| Ok(batch_norm_relu_train(x, w, b, 1e-3)?.0),
                &x,
                &w,
                &b,
                &g,
            )?;
            (r.1, r.2, r.3)
        };
        let y = batch_norm_train(&x, &w, &b, 1e-3)?.0;
        assert!(y.abs()?.flatten_all()?.min(0)?.to_scalar::<f64>()? > 1e-4);
        let loss = |x: &Tensor, w: &Tensor, b: &Tensor| {
            (batch_norm_relu_train(x, w, b, 1e-3)?.0 * &g)?.sum_all()
        };
        assert_close(
            &dx,
            &finite_difference_grad(|x| loss(x, &w, &b), &x, 1e-6)?,
            1e-7,
        );
        assert_close(
            &dw,
            &finite_difference_grad(|w| loss(&x, w, &b), &w, 1e-6)?,
            1e-7,
        );
        assert_close(
            &db,
            &finite_difference_grad(|b| loss(&x, &w, b), &b, 1e-6)?,
            1e-7,
        );
    }
    Ok(())
}

#[test]
fn statistics_carry_no_gradient_and_frozen_inputs_get_none() -> Result<()> {
    let x = randn(9, &[4, 3, 5, 5], DType::F32)?;
    let w = Var::from_tensor(&randn(10, &[3], DType::F32)?)?;
    let b = Tensor::zeros(3, DType::F32, x.device())?;
    let (y, mean, var) = batch_norm_train(&x, w.as_tensor(), &b, 1e-5)?;
    assert!(!mean.track_op() && !var.track_op());
    let grads = (y.sum_all()? + mean.sum_all()?)?.backward()?;
    assert!(grads.get(&x).is_none() && grads.get(&b).is_none());
    // Σ_i x̂_i = 0 per channel, so the weight gradient of Σ y is zero.
    let dw = grads.get(w.as_tensor()).expect("dw");
    assert_close(dw, &Tensor::zeros(3, DType::F32, x.device())?, 1e-4);
    Ok(())
}

#[test]
fn fallback_dtypes_match_the_kernel() -> Result<()> {
    let x = randn(11, &[4, 3, 3, 3], DType::F32)?;
    let w = randn(12, &[3], DType::F32)?;
    let b = randn(13, &[3], DType::F32)?;
    let (y, mean, var) = batch_norm_train(&x, &w, &b, 1e-5)?;
    let half = |t: &Tensor| t.to_dtype(DType::F16);
    let (yh, mh, vh) = batch_norm_train(&half(&x)?, &half(&w)?, &half(&b)?, 1e-5)?;
    assert_eq!(
        (yh.dtype(), mh.dims(), vh.dims()),
        (DType::F16, &[3][..], &[3][..])
    );
    assert_rel_close("f16 y", &yh, &y, 1e-2);
    assert_rel_close("f16 mean", &mh, &mean, 1e-2);
    assert_rel_close("f16 var", &vh, &var, 1e-2);
    Ok(())
}

#[test]
fn bad_arguments_are_reported() {
    let x = Tensor::zeros((4, 3, 2, 2), DType::F32, &Device::Cpu).unwrap();
    let w = Tensor::ones(2, DType::F32, x.device()).unwrap();
    let err = batch_norm_train(&x, &w, &w, 1e-5).unwrap_err().to_string();
    assert!(err.contains("3 channels but weight is [2]"), "{err}");
    let w = Tensor::ones(3, DType::F32, x.device()).unwrap();
    let err = batch_norm_train(&x, &w, &w, -1.0).unwrap_err().to_string();
    assert!(err.contains("eps must be finite and >= 0, got -1"), "{err}");
    let err = batch_norm_train(&x.flatten_all().unwrap(), &w, &w, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("rank 2 or more"), "{err}");
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() -> Result<()> {
    // Long runs (lane sums) and short runs (position sums), over several slabs of images.
    for dims in [&[40usize, 3, 6, 6][..], &[40, 5]] {
        let x = randn(30, dims, DType::F32)?;
        let w = randn(31, &dims[1..2], DType::F32)?;
        let b = randn(32, &dims[1..2], DType::F32)?;
        let g = randn(33, dims, DType::F32)?;
        let in_pool = |threads: usize| -> Result<Outputs> {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(candle_core::Error::wrap)?;
            let bn =
                |x: &Tensor, w: &Tensor, b: &Tensor| Ok(batch_norm_relu_train(x, w, b, 1e-5)?.0);
            pool.install(|| run(bn, &x, &w, &b, &g))
        };
        let (one, three) = (in_pool(1)?, in_pool(3)?);
        for (a, b) in [
            (&one.0, &three.0),
            (&one.1, &three.1),
            (&one.2, &three.2),
            (&one.3, &three.3),
        ] {
            assert_close(a, b, 0.0);
        }
    }
    Ok(())
}
