//! The evaluation of one model: k-NN and (optionally) linear-probe accuracy.

use crate::accuracy::ClassAccuracy;
use crate::config::EvalConfig;
use crate::error::EvalError;
use crate::knn::knn_evaluate;
use crate::linear::linear_probe_evaluate;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// Accuracies of one frozen backbone on the test split, as stored in a run's `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// Weighted k-NN top-1 accuracy in `[0, 1]`.
    pub knn_top1: f64,
    /// Linear-probe top-1 accuracy in `[0, 1]`, when the probe was run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_top1: Option<f64>,
    /// k-NN correct / total per class index.
    pub per_class_knn: Vec<ClassAccuracy>,
    /// Linear-probe correct / total per class index, when the probe was run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_class_linear: Option<Vec<ClassAccuracy>>,
}

/// Evaluates features of the train split (k-NN memory bank, probe training set) against those
/// of the test split: the k-NN always, the linear probe when `config.linear_probe` is set.
///
/// # Shapes
/// `train`: `[N, D]`, `test`: `[M, D]`, labels one per row, below `num_classes`.
pub fn evaluate(
    train: &Tensor,
    train_labels: &[u32],
    test: &Tensor,
    test_labels: &[u32],
    num_classes: usize,
    config: &EvalConfig,
) -> Result<EvalResult, EvalError> {
    config.validate()?;
    let knn = knn_evaluate(
        train,
        train_labels,
        test,
        test_labels,
        num_classes,
        &config.knn,
    )?;
    let linear = if config.linear_probe {
        Some(linear_probe_evaluate(
            train,
            train_labels,
            test,
            test_labels,
            num_classes,
            &config.linear,
        )?)
    } else {
        None
    };
    tracing::info!(
        knn_top1 = knn.top1,
        linear_top1 = linear.as_ref().map(|l| l.top1),
        "evaluation done"
    );
    Ok(EvalResult {
        knn_top1: knn.top1,
        linear_top1: linear.as_ref().map(|l| l.top1),
        per_class_knn: knn.per_class,
        per_class_linear: linear.map(|l| l.per_class),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn evaluates_both_protocols_and_round_trips_through_json() {
        // Class 0 near +x, class 1 near −x: both protocols are exact.
        let train = Tensor::new(
            &[
                [1f32, 0.2],
                [1.0, -0.2],
                [0.9, 0.0],
                [-1.0, 0.1],
                [-1.0, -0.3],
                [-0.8, 0.0],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let test = Tensor::new(&[[2f32, 0.1], [-2.0, 0.0]], &Device::Cpu).unwrap();
        let (train_y, test_y) = ([0, 0, 0, 1, 1, 1], [0, 1]);
        let mut config = EvalConfig::default();
        let r = evaluate(&train, &train_y, &test, &test_y, 2, &config).unwrap();
        assert_eq!((r.knn_top1, r.linear_top1), (1.0, Some(1.0)));
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<EvalResult>(&json).unwrap(), r);
        config.linear_probe = false;
        let r = evaluate(&train, &train_y, &test, &test_y, 2, &config).unwrap();
        assert_eq!((r.linear_top1, &r.per_class_linear), (None, &None));
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"knn_top1":1.0,"per_class_knn":[{"correct":1,"total":1},{"correct":1,"total":1}]}"#
        );
    }
}
