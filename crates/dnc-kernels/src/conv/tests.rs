//! `conv2d` against candle's own convolution (values and gradients) and finite differences.

use super::conv2d;
use crate::test_util::{assert_rel_close, randn};
use candle_core::{DType, Result, Tensor, Var};
use dnc_core::testing::{assert_close, finite_difference_grad};

/// `(x dims, w dims, stride, padding)`: strides 1/2, padding 0/1/3, kernels 1/3/7, odd sizes,
/// batches 1 and 3, and shapes whose images are grouped into several slabs.
///
/// candle's own backward sizes the input gradient from the height alone, so it fails when the
/// width drops a different remainder under the stride (e.g. 7×6 with stride 2); such shapes are
/// checked against finite differences instead.
const CASES: &[([usize; 4], [usize; 4], usize, usize)] = &[
    ([1, 3, 8, 8], [4, 3, 3, 3], 1, 1),
    ([3, 2, 7, 9], [5, 2, 3, 3], 2, 1),
    ([3, 3, 11, 9], [4, 3, 7, 7], 2, 3),
    ([3, 4, 5, 5], [6, 4, 1, 1], 1, 0),
    ([1, 4, 7, 7], [3, 4, 1, 1], 2, 0),
    ([3, 3, 9, 7], [4, 3, 3, 3], 2, 0),
    ([1, 2, 5, 5], [3, 2, 3, 3], 1, 0),
    ([70, 3, 4, 4], [5, 3, 3, 3], 1, 1),
    ([300, 2, 4, 4], [3, 2, 1, 1], 1, 0),
    ([130, 2, 6, 6], [4, 2, 3, 3], 2, 1),
    // Stride 1, at least 16 channels and 64 output pixels: the horizontal-tap path.
    ([2, 16, 8, 8], [4, 16, 3, 3], 1, 1),
    ([3, 16, 9, 11], [3, 16, 5, 3], 1, 2),
    ([2, 17, 10, 12], [3, 17, 3, 3], 1, 0),
    ([1, 16, 9, 8], [2, 16, 3, 1], 1, 1),
    // 3×3, stride 1, padding 1, at least 64 channels in and 16 out, even sizes: Winograd.
    ([3, 64, 8, 8], [16, 64, 3, 3], 1, 1),
    ([70, 64, 4, 6], [20, 64, 3, 3], 1, 1),
];

/// `(y, dL/dx, dL/dw)` for `L = Σ y·g` through `conv`.
fn run(
    conv: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
    x: &Tensor,
    w: &Tensor,
    g: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (x, w) = (Var::from_tensor(x)?, Var::from_tensor(w)?);
    let y = conv(x.as_tensor(), w.as_tensor())?;
    let grads = (&y * g)?.sum_all()?.backward()?;
    let dx = grads.get(x.as_tensor()).expect("dx").clone();
    let dw = grads.get(w.as_tensor()).expect("dw").clone();
    Ok((y, dx, dw))
}

#[test]
fn values_and_gradients_match_candle() -> Result<()> {
    for (i, &(xd, wd, s, p)) in CASES.iter().enumerate() {
        let seed = 10 * i as u64;
        let x = randn(seed, &xd, DType::F32)?;
        let w = randn(seed + 1, &wd, DType::F32)?;
        let g = randn(seed + 2, conv2d(&x, &w, s, p)?.dims(), DType::F32)?;
        let ours = run(|x, w| conv2d(x, w, s, p), &x, &w, &g)?;
        let theirs = run(|x, w| x.conv2d(w, p, s, 1, 1), &x, &w, &g)?;
        let case = format!("case {i}: x {xd:?} w {wd:?} stride {s} padding {p}");
        assert_eq!(ours.0.dims(), theirs.0.dims(), "{case}");
        assert_rel_close(&format!("{case}: y"), &ours.0, &theirs.0, 1e-5);
        assert_rel_close(&format!("{case}: dx"), &ours.1, &theirs.1, 1e-5);
        assert_rel_close(&format!("{case}: dw"), &ours.2, &theirs.2, 1e-5);
    }
    Ok(())
}

#[test]
fn gradients_match_finite_differences_in_f64() -> Result<()> {
    for &(xd, wd, s, p) in &[
        ([2, 2, 5, 4], [3, 2, 3, 3], 2, 1),
        ([1, 3, 4, 4], [2, 3, 1, 1], 1, 0),
        ([1, 2, 7, 6], [3, 2, 1, 1], 2, 0),
        ([2, 1, 6, 7], [2, 1, 3, 3], 2, 1),
        ([2, 16, 8, 9], [2, 16, 3, 3], 1, 1),
        ([1, 16, 7, 10], [2, 16, 3, 5], 1, 2),
    ] {
        let x = randn(1, &xd, DType::F64)?;
        let w = randn(2, &wd, DType::F64)?;
        let y = conv2d(&x, &w, s, p)?;
        let g = randn(3, y.dims(), DType::F64)?;
        let (_, dx, dw) = run(|x, w| conv2d(x, w, s, p), &x, &w, &g)?;
        let fx = |x: &Tensor| (conv2d(x, &w, s, p)? * &g)?.sum_all();
        let fw = |w: &Tensor| (conv2d(&x, w, s, p)? * &g)?.sum_all();
        // The loss is linear in x and in w, so central differences are exact up to rounding,
        // which a wider step keeps small.
        assert_close(&dx, &finite_difference_grad(fx, &x, 1e-3)?, 1e-9);
        assert_close(&dw, &finite_difference_grad(fw, &w, 1e-3)?, 1e-9);
    }
    Ok(())
}

#[test]
fn matches_a_hand_computed_convolution() -> Result<()> {
    // x = 1..9 on a 3×3 plane, all-ones 2×2 kernel, stride 1, no padding: sums of 2×2 windows.
    let x = Tensor::arange(1f32, 10.0, &candle_core::Device::Cpu)?.reshape((1, 1, 3, 3))?;
    let w = Tensor::ones((1, 1, 2, 2), DType::F32, x.device())?;
    let y = conv2d(&x, &w, 1, 0)?.flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(y, [12.0, 16.0, 24.0, 28.0]);
    // With padding 1 and stride 2 the corners see one, two or four values.
    let y = conv2d(&x, &w, 2, 1)?.flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(y, [1.0, 5.0, 11.0, 28.0]);
    Ok(())
}

#[test]
fn gradients_are_skipped_for_inputs_that_do_not_need_them() -> Result<()> {
    // Only the kernel is a variable: backward must still give its gradient.
    let x = randn(5, &[2, 3, 6, 6], DType::F32)?;
    let w = Var::from_tensor(&randn(6, &[4, 3, 3, 3], DType::F32)?)?;
    let grads = conv2d(&x, w.as_tensor(), 1, 1)?.sum_all()?.backward()?;
    let want = x.conv2d(w.as_tensor(), 1, 1, 1, 1)?.sum_all()?.backward()?;
    assert!(grads.get(&x).is_none());
    let (ours, theirs) = (
        grads.get(w.as_tensor()).unwrap(),
        want.get(w.as_tensor()).unwrap(),
    );
    assert_rel_close("dw", ours, theirs, 1e-5);
    Ok(())
}

#[test]
fn non_contiguous_inputs_and_fallback_dtypes_work() -> Result<()> {
    let x = randn(7, &[2, 5, 5, 3], DType::F32)?.permute((0, 3, 1, 2))?;
    let w = randn(8, &[4, 3, 3, 3], DType::F32)?;
    assert!(!x.is_contiguous());
    assert_rel_close(
        "permuted",
        &conv2d(&x, &w, 1, 1)?,
        &x.conv2d(&w, 1, 1, 1, 1)?,
        1e-5,
    );
    let (xh, wh) = (x.to_dtype(DType::F16)?, w.to_dtype(DType::F16)?);
    let y = conv2d(&xh, &wh, 1, 1)?;
    assert_eq!(y.dtype(), DType::F16);
    assert_rel_close("f16", &y, &xh.conv2d(&wh, 1, 1, 1, 1)?, 1e-3);
    Ok(())
}

#[test]
fn bad_arguments_are_reported() {
    let x = Tensor::zeros((2, 3, 8, 8), DType::F32, &candle_core::Device::Cpu).unwrap();
    let w = Tensor::zeros((4, 2, 3, 3), DType::F32, x.device()).unwrap();
    let err = conv2d(&x, &w, 1, 1).unwrap_err().to_string();
    assert!(
        err.contains("3 channels but kernel [4, 2, 3, 3] expects 2"),
        "{err}"
    );
    let w64 = Tensor::zeros((4, 3, 3, 3), DType::F64, x.device()).unwrap();
    let err = conv2d(&x, &w64, 1, 1).unwrap_err().to_string();
    assert!(
        err.contains("input is F32") && err.contains("kernel is F64"),
        "{err}"
    );
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() -> Result<()> {
    // Several groups and weight slabs: 130 images of 6×6 → 3×3 outputs.
    let x = randn(20, &[130, 2, 6, 6], DType::F32)?;
    let w = randn(21, &[4, 2, 3, 3], DType::F32)?;
    let g = randn(22, &[130, 4, 3, 3], DType::F32)?;
    let in_pool = |threads: usize| -> Result<(Tensor, Tensor, Tensor)> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(candle_core::Error::wrap)?;
        pool.install(|| run(|x, w| conv2d(x, w, 2, 1), &x, &w, &g))
    };
    let (one, three) = (in_pool(1)?, in_pool(3)?);
    assert_close(&one.0, &three.0, 0.0);
    assert_close(&one.1, &three.1, 0.0);
    assert_close(&one.2, &three.2, 0.0);
    Ok(())
}

#[test]
fn tensor_op_path_matches_candle_in_values_and_gradients() -> Result<()> {
    use super::geometry::Conv2dGeometry;
    use super::tensor_ops::conv2d_by_matmul;
    for (i, &(xd, wd, s, p)) in CASES.iter().enumerate() {
        let seed = 10 * i as u64 + 3;
        let x = randn(seed, &xd, DType::F32)?;
        let w = randn(seed + 1, &wd, DType::F32)?;
        let geo = Conv2dGeometry::new(&xd, &wd, s, p)?;
        let g = randn(seed + 2, &geo.out_dims(), DType::F32)?;
        let ours = run(|x, w| conv2d_by_matmul(x, w, &geo), &x, &w, &g)?;
        // The CPU kernel is the reference: it is checked against candle and finite differences.
        let kernel = run(|x, w| conv2d(x, w, s, p), &x, &w, &g)?;
        let case = format!("case {i}: x {xd:?} w {wd:?} stride {s} padding {p}");
        assert_eq!(ours.0.dims(), kernel.0.dims(), "{case}");
        assert_rel_close(&format!("{case}: y"), &ours.0, &kernel.0, 1e-5);
        assert_rel_close(&format!("{case}: dx"), &ours.1, &kernel.1, 1e-5);
        assert_rel_close(&format!("{case}: dw"), &ours.2, &kernel.2, 1e-5);
    }
    Ok(())
}

#[test]
fn bf16_on_the_cpu_runs_through_the_tensor_op_path() -> Result<()> {
    let x = randn(30, &[3, 4, 9, 9], DType::F32)?;
    let w = randn(31, &[5, 4, 3, 3], DType::F32)?;
    let g = randn(32, &[3, 5, 5, 5], DType::F32)?;
    let want = run(|x, w| conv2d(x, w, 2, 1), &x, &w, &g)?;
    let (xb, wb) = (
        Var::from_tensor(&x.to_dtype(DType::BF16)?)?,
        Var::from_tensor(&w.to_dtype(DType::BF16)?)?,
    );
    let y = conv2d(xb.as_tensor(), wb.as_tensor(), 2, 1)?;
    assert_eq!(y.dtype(), DType::BF16);
    let grads = (y.to_dtype(DType::F32)? * &g)?.sum_all()?.backward()?;
    let f32_of = |t: &Tensor| t.to_dtype(DType::F32);
    // bf16 keeps 8 bits of mantissa: a few parts in a hundred over 36-term sums.
    assert_rel_close("y", &f32_of(&y)?, &want.0, 5e-2);
    assert_rel_close(
        "dx",
        &f32_of(grads.get(xb.as_tensor()).unwrap())?,
        &want.1,
        5e-2,
    );
    assert_rel_close(
        "dw",
        &f32_of(grads.get(wb.as_tensor()).unwrap())?,
        &want.2,
        5e-2,
    );
    Ok(())
}
