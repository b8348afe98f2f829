//! Checks on the feature matrices and label vectors handed to the evaluators.

use crate::error::EvalError;
use candle_core::{DType, Tensor};

/// The `(N, D)` of a feature matrix, after checking that it is `[N, D]` with `N, D ≥ 1` and
/// holds only finite values.
pub(crate) fn feature_dims(x: &Tensor, what: &'static str) -> Result<(usize, usize), EvalError> {
    let bad = || EvalError::BadShape {
        what,
        shape: x.dims().to_vec(),
    };
    let (n, d) = x.dims2().map_err(|_| bad())?;
    if n == 0 || d == 0 {
        return Err(bad());
    }
    // A sum propagates every NaN and infinity; it is one cheap reduction on the device.
    let sum = x.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?;
    if !sum.is_finite() {
        return Err(EvalError::NonFinite { what });
    }
    Ok((n, d))
}

/// Checks that two feature matrices have the same width and returns it.
pub(crate) fn same_dim(
    (left, left_dim): (&'static str, usize),
    (right, right_dim): (&'static str, usize),
) -> Result<usize, EvalError> {
    if left_dim != right_dim {
        return Err(EvalError::DimensionMismatch {
            left,
            left_dim,
            right,
            right_dim,
        });
    }
    Ok(left_dim)
}

/// Checks that there is one label per row and that every label is a class index.
pub(crate) fn check_labels(
    labels: &[u32],
    rows: usize,
    num_classes: usize,
    what: &'static str,
) -> Result<(), EvalError> {
    if num_classes == 0 {
        return Err(EvalError::NoClasses);
    }
    if labels.len() != rows {
        return Err(EvalError::LabelCount {
            what,
            labels: labels.len(),
            rows,
        });
    }
    match labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= num_classes)
    {
        Some((index, &label)) => Err(EvalError::LabelOutOfRange {
            what,
            index,
            label,
            num_classes,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn shapes_values_and_labels_are_checked() {
        let dev = Device::Cpu;
        let ok = Tensor::new(&[[1f32, 2.0], [3.0, 4.0]], &dev).unwrap();
        assert_eq!(feature_dims(&ok, "bank").unwrap(), (2, 2));
        let flat = Tensor::new(&[1f32, 2.0], &dev).unwrap();
        let err = feature_dims(&flat, "bank").unwrap_err().to_string();
        assert!(err.contains("bank") && err.contains("[2]"), "{err}");
        let empty = Tensor::zeros((0, 3), DType::F32, &dev).unwrap();
        assert!(matches!(
            feature_dims(&empty, "queries"),
            Err(EvalError::BadShape { .. })
        ));
        let nan = Tensor::new(&[[1f32, f32::NAN]], &dev).unwrap();
        assert!(matches!(
            feature_dims(&nan, "queries"),
            Err(EvalError::NonFinite { what: "queries" })
        ));
        assert!(same_dim(("a", 3), ("b", 3)).is_ok());
        let err = same_dim(("bank", 3), ("queries", 4))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bank has D = 3") && err.contains("queries has D = 4"));
        assert!(check_labels(&[0, 1, 2], 3, 3, "labels").is_ok());
        assert!(matches!(
            check_labels(&[0, 1], 3, 3, "labels"),
            Err(EvalError::LabelCount {
                labels: 2,
                rows: 3,
                ..
            })
        ));
        let err = check_labels(&[0, 3, 1], 3, 3, "bank_labels").unwrap_err();
        assert_eq!(
            err.to_string(),
            "bank_labels[1] = 3 is not below num_classes = 3"
        );
        assert!(matches!(
            check_labels(&[], 0, 0, "labels"),
            Err(EvalError::NoClasses)
        ));
    }
}
