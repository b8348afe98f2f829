//! Helpers shared by this crate's tests: seeded random tensors and relative comparisons.

use candle_core::{DType, Device, Result, Tensor};
use dnc_core::SeededRng;
use dnc_core::testing::max_abs_diff;

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
