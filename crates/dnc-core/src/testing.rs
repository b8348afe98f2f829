//! Test helpers: finite-difference gradients and closeness assertions.
//!
//! Every loss in dnc keeps a finite-difference gradient test, because some candle ops silently
//! produce no gradient (see the objectives crate).

use candle_core::{DType, Result, Tensor};

/// Central finite-difference gradient of the scalar function `f` at `x` (computed in f64).
///
/// # Shapes
/// `x`: any shape; returns a tensor of the same shape.
pub fn finite_difference_grad<F>(f: F, x: &Tensor, eps: f64) -> Result<Tensor>
where
    F: Fn(&Tensor) -> Result<Tensor>,
{
    let shape = x.shape().clone();
    let base: Vec<f64> = x.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let eval = |v: &[f64]| -> Result<f64> {
        let t = Tensor::from_slice(v, shape.clone(), x.device())?.to_dtype(x.dtype())?;
        f(&t)?.to_dtype(DType::F64)?.to_scalar::<f64>()
    };
    let mut grad = Vec::with_capacity(base.len());
    let mut v = base.clone();
    for i in 0..base.len() {
        v[i] = base[i] + eps;
        let plus = eval(&v)?;
        v[i] = base[i] - eps;
        let minus = eval(&v)?;
        v[i] = base[i];
        grad.push((plus - minus) / (2.0 * eps));
    }
    Tensor::from_vec(grad, shape, x.device())?.to_dtype(x.dtype())
}

/// Largest absolute element-wise difference of two tensors of the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.shape() != b.shape() {
        candle_core::bail!(
            "max_abs_diff: shapes differ, {:?} vs {:?}",
            a.shape(),
            b.shape()
        )
    }
    (a.to_dtype(DType::F64)? - b.to_dtype(DType::F64)?)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()
}

/// Panics with both tensors' sizes and the worst difference when they differ by more than `tol`.
#[track_caller]
pub fn assert_close(a: &Tensor, b: &Tensor, tol: f64) {
    let d = max_abs_diff(a, b).expect("comparable tensors");
    assert!(
        d <= tol,
        "tensors differ by {d:e} > {tol:e} (shape {:?})",
        a.shape()
    );
}
