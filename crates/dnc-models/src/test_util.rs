//! Helpers shared by this crate's unit tests.

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::VarMap;
use dnc_core::SeededRng;

/// A tensor of standard-normal values drawn from a seeded generator.
pub(crate) fn randn<S: Into<Shape>>(shape: S, dtype: DType, seed: u64) -> Tensor {
    let shape: Shape = shape.into();
    let mut rng = SeededRng::new(seed);
    let values: Vec<f64> = (0..shape.elem_count()).map(|_| rng.normal()).collect();
    Tensor::from_vec(values, shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .expect("a valid tensor")
}

/// The values of a tensor as one flat `Vec<f64>`.
pub(crate) fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .expect("readable values")
}

/// The variables of a map, sorted by name.
pub(crate) fn sorted_vars(map: &VarMap) -> Vec<(String, Var)> {
    let data = map.data().lock().expect("varmap lock");
    let mut vars: Vec<_> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// `(name, shape)` of every variable of a map, sorted by name.
pub(crate) fn names_and_shapes(map: &VarMap) -> Vec<(String, Vec<usize>)> {
    sorted_vars(map)
        .into_iter()
        .map(|(k, v)| (k, v.dims().to_vec()))
        .collect()
}

/// Asserts that `f` fails with a message containing every one of `needles`.
#[track_caller]
pub(crate) fn assert_err_contains<T: std::fmt::Debug>(r: Result<T>, needles: &[&str]) {
    let msg = r.expect_err("an error").to_string();
    for n in needles {
        assert!(msg.contains(n), "{msg:?} does not mention {n:?}");
    }
}
