//! Top-1 and per-class accuracy of a set of predictions.

use crate::error::EvalError;
use crate::input::check_labels;
use serde::{Deserialize, Serialize};

/// How many test items of one class were classified correctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClassAccuracy {
    pub correct: usize,
    pub total: usize,
}

impl ClassAccuracy {
    /// `correct / total`, or `None` for a class without test items.
    pub fn accuracy(&self) -> Option<f64> {
        (self.total > 0).then(|| self.correct as f64 / self.total as f64)
    }
}

/// Top-1 accuracy over all test items and its breakdown by class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Fraction of test items whose prediction equals the label, in `[0, 1]`.
    pub top1: f64,
    /// One entry per class index `0..num_classes`.
    pub per_class: Vec<ClassAccuracy>,
}

/// Scores `predictions` against `labels` (class indices below `num_classes`).
pub fn score(
    predictions: &[u32],
    labels: &[u32],
    num_classes: usize,
) -> Result<Accuracy, EvalError> {
    check_labels(labels, predictions.len(), num_classes, "labels")?;
    check_labels(predictions, labels.len(), num_classes, "predictions")?;
    let mut per_class = vec![ClassAccuracy::default(); num_classes];
    for (&p, &l) in predictions.iter().zip(labels) {
        let class = &mut per_class[l as usize];
        class.total += 1;
        class.correct += usize::from(p == l);
    }
    let correct: usize = per_class.iter().map(|c| c.correct).sum();
    let top1 = if labels.is_empty() {
        0.0
    } else {
        correct as f64 / labels.len() as f64
    };
    Ok(Accuracy { top1, per_class })
}

/// Mean of the per-class accuracies of `classes` (a macro average, as head / medium / tail
/// figures of long-tailed benchmarks are reported); classes without test items or out of range
/// are left out, and `None` is returned when none is left.
pub fn mean_class_accuracy(per_class: &[ClassAccuracy], classes: &[usize]) -> Option<f64> {
    let accs: Vec<f64> = classes
        .iter()
        .filter_map(|&c| per_class.get(c).and_then(ClassAccuracy::accuracy))
        .collect();
    (!accs.is_empty()).then(|| accs.iter().sum::<f64>() / accs.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_hand() {
        // class 0: 2 of 3 right, class 1: 1 of 1, class 2: no items.
        let acc = score(&[0, 0, 1, 1], &[0, 0, 0, 1], 3).unwrap();
        assert_eq!(acc.top1, 0.75);
        let c = |correct, total| ClassAccuracy { correct, total };
        assert_eq!(acc.per_class, vec![c(2, 3), c(1, 1), c(0, 0)]);
        assert_eq!(acc.per_class[2].accuracy(), None);
        let mean = mean_class_accuracy(&acc.per_class, &[0, 1, 2, 7]).unwrap();
        assert!((mean - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12);
        assert_eq!(mean_class_accuracy(&acc.per_class, &[2]), None);
    }

    #[test]
    fn mismatched_or_out_of_range_inputs_fail() {
        assert!(matches!(
            score(&[0, 1], &[0], 2),
            Err(EvalError::LabelCount { .. })
        ));
        assert!(matches!(
            score(&[5], &[0], 2),
            Err(EvalError::LabelOutOfRange {
                what: "predictions",
                ..
            })
        ));
    }
}
