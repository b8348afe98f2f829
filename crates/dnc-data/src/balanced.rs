//! Deterministic class-balanced subsampling, with no randomness so that any language can
//! reproduce it.
//!
//! The rule (the `list_split` function of the PyTorch reference, `anchors/torch_ref.py`): with
//! `C` classes ordered by name and each class's files ordered by name, take the first `n / C`
//! files of every class, and one more from each of the first `n % C` classes. Asking more files
//! of a class than it holds is an error naming the class and both counts.

use crate::DataError;

/// How many items of each of `num_classes` classes a balanced subset of `n` takes:
/// `n / C`, plus one for the first `n % C` classes.
pub fn balanced_counts(num_classes: usize, n: usize) -> Vec<usize> {
    if num_classes == 0 {
        return Vec::new();
    }
    let (base, extra) = (n / num_classes, n % num_classes);
    (0..num_classes)
        .map(|c| base + usize::from(c < extra))
        .collect()
}

/// The indices of a class-balanced subset of `n` items, ascending.
///
/// `labels[i]` is the class of item `i` (`< num_classes`); within a class, items are taken in
/// index order, so for a dataset ordered by class and file name (like
/// [`ImageFolder`](crate::ImageFolder)) this is exactly the reference rule.
pub fn balanced_subset(
    labels: &[u32],
    num_classes: usize,
    n: usize,
) -> Result<Vec<usize>, DataError> {
    balanced_subset_named(labels, num_classes, n, |c| c.to_string())
}

/// [`balanced_subset`] with errors naming classes by `name(class id)`.
pub(crate) fn balanced_subset_named(
    labels: &[u32],
    num_classes: usize,
    n: usize,
    name: impl Fn(usize) -> String,
) -> Result<Vec<usize>, DataError> {
    if num_classes == 0 {
        return Err(DataError::invalid(
            "num_classes",
            0,
            "a balanced subset needs at least one class",
        ));
    }
    let mut available = vec![0usize; num_classes];
    for &label in labels {
        let c = label as usize;
        if c >= num_classes {
            return Err(DataError::invalid(
                "label",
                label,
                format!("labels must be below num_classes = {num_classes}"),
            ));
        }
        available[c] += 1;
    }
    let wanted = balanced_counts(num_classes, n);
    for (c, (&asked, &have)) in wanted.iter().zip(&available).enumerate() {
        if asked > have {
            return Err(DataError::NotEnoughItems {
                class: name(c),
                requested: n,
                asked,
                available: have,
            });
        }
    }
    let mut taken = vec![0usize; num_classes];
    let mut out = Vec::with_capacity(n);
    for (i, &label) in labels.iter().enumerate() {
        let c = label as usize;
        if taken[c] < wanted[c] {
            taken[c] += 1;
            out.push(i);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_remainder_rule() {
        assert_eq!(balanced_counts(3, 7), vec![3, 2, 2]);
        assert_eq!(balanced_counts(4, 10), vec![3, 3, 2, 2]);
        assert_eq!(balanced_counts(10, 10_000), vec![1000; 10]);
        assert_eq!(balanced_counts(3, 2), vec![1, 1, 0]);
        assert!(balanced_counts(0, 5).is_empty());
    }

    #[test]
    fn subset_takes_the_first_items_of_each_class() {
        // Grouped labels: class 0 at 0..4, class 1 at 4..7, class 2 at 7..10.
        let labels = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2];
        // n = 7, C = 3: counts 3, 2, 2.
        assert_eq!(
            balanced_subset(&labels, 3, 7).unwrap(),
            vec![0, 1, 2, 4, 5, 7, 8]
        );
        // n = 5: counts 2, 2, 1.
        assert_eq!(balanced_subset(&labels, 3, 5).unwrap(), vec![0, 1, 4, 5, 7]);
        // Interleaved labels: the first items of each class in index order.
        let mixed = [2, 0, 1, 0, 2, 1, 0];
        assert_eq!(balanced_subset(&mixed, 3, 4).unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(
            balanced_subset(&mixed, 3, 6).unwrap(),
            vec![0, 1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn asking_too_much_names_the_class_and_counts() {
        let labels = [0, 0, 0, 1, 2, 2, 2];
        // n = 6: each class needs 2; class 1 has 1.
        match balanced_subset_named(&labels, 3, 6, |c| ["cat", "dog", "emu"][c].into()) {
            Err(DataError::NotEnoughItems {
                class,
                requested: 6,
                asked: 2,
                available: 1,
            }) => assert_eq!(class, "dog"),
            other => panic!("expected NotEnoughItems, got {other:?}"),
        }
        let err = balanced_subset(&labels, 3, 6).unwrap_err().to_string();
        assert!(
            err.contains("class 1") && err.contains("asks 2") && err.contains("has 1"),
            "{err}"
        );
    }

    #[test]
    fn bad_labels_and_zero_classes_are_parameter_errors() {
        assert!(
            balanced_subset(&[0, 3], 3, 1)
                .unwrap_err()
                .is_parameter_error()
        );
        assert!(balanced_subset(&[], 0, 1).unwrap_err().is_parameter_error());
    }
}
