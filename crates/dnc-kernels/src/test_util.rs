//! Helpers shared by this crate's tests: seeded random tensors, relative comparisons, and the
//! gradients of an op against finite differences.

use candle_core::{DType, Device, Result, Tensor, Var};
use dnc_core::SeededRng;
use dnc_core::testing::{assert_close, finite_difference_grad, max_abs_diff};

/// A tensor of standard-normal values from a seeded stream.
pub(crate) fn randn(seed: u64, dims: &[usize], dtype: DType) -> Result<Tensor> {
    let mut rng = SeededRng::new(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    Tensor::from_vec(v, dims, &Device::Cpu)?.to_dtype(dtype)
}

/// Panics unless `max |a − b| <= rtol · max(1, max |b|)`.
#[track_caller]
pub(crate) fn assert_rel_close(what: &str, a: &Tensor, b: &Tensor, rtol: f64) {
    let diff = max_abs_diff(a, b).expect("comparable tensors");
    let scale = b
        .to_dtype(DType::F64)
        .and_then(|t| t.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>())
        .expect("finite reference")
        .max(1.0);
    assert!(
        diff <= rtol * scale,
        "{what}: differs by {diff:e} (scale {scale:e}, rtol {rtol:e}), shape {:?}",
        a.shape()
    );
}

/// `op(inputs)` followed by the gradient of `L = Σ op(inputs)·g` with respect to each input:
/// `[y, dL/d inputs[0], dL/d inputs[1], ...]`.
pub(crate) fn output_and_grads<const N: usize>(
    op: impl Fn([&Tensor; N]) -> Result<Tensor>,
    inputs: [&Tensor; N],
    g: &Tensor,
) -> Result<Vec<Tensor>> {
    let vars = inputs.map(|t| Var::from_tensor(t).expect("var"));
    let tracked = vars.each_ref().map(|v| v.as_tensor());
    let y = op(tracked)?;
    let grads = (&y * g)?.sum_all()?.backward()?;
    let mut out = vec![y.clone()];
    for t in tracked {
        out.push(grads.get(t).expect("gradient").clone());
    }
    Ok(out)
}

/// Asserts that the gradient of `L = Σ op(inputs)·g` with respect to each input matches central
/// finite differences of `L` with step `eps`, within `tol`.
#[track_caller]
pub(crate) fn assert_grads_match_finite_differences<const N: usize>(
    op: impl Fn([&Tensor; N]) -> Result<Tensor>,
    inputs: [&Tensor; N],
    g: &Tensor,
    eps: f64,
    tol: f64,
) -> Result<()> {
    let grads = output_and_grads(&op, inputs, g)?;
    for k in 0..N {
        let loss = |v: &Tensor| {
            let mut args: [&Tensor; N] = inputs;
            args[k] = v;
            (op(args)? * g)?.sum_all()
        };
        assert_close(
            &grads[k + 1],
            &finite_difference_grad(loss, inputs[k], eps)?,
            tol,
        );
    }
    Ok(())
}
