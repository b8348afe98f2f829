//! Deterministic subsampling by class, with no randomness so that any language can reproduce
//! it: class-balanced ([`SubsetRule::Balanced`]) or keeping the classes' proportions
//! ([`SubsetRule::Proportional`], for long-tailed data whose tail is the point).
//!
//! The balanced rule (the `list_split` function of the PyTorch reference, `anchors/torch_ref.py`): with
//! `C` classes ordered by name and each class's files ordered by name, take the first `n / C`
//! files of every class, and one more from each of the first `n % C` classes. Asking more files
//! of a class than it holds is an error naming the class and both counts.

use serde::{Deserialize, Serialize};

use crate::DataError;

/// How a subset of `n` items is shared among the classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubsetRule {
    /// The same number of items from every class ([`balanced_counts`]).
    #[default]
    Balanced,
    /// Every class in proportion to its size, at least one item each ([`proportional_counts`]):
    /// a smaller copy of the data's class distribution, its long tail included.
    Proportional,
}

/// How many items of each class a subset of `n` keeps in proportion to the classes' sizes
/// `available`: the floor of each exact share `n · a_c / N` first, the leftover items to the
/// largest remainders (ties to the lower class id); then, when `n` allows, every non-empty
/// class left with none takes one item from the class keeping the most. Never more than a class
/// holds; `n` at or above the total keeps everything.
pub fn proportional_counts(available: &[usize], n: usize) -> Vec<usize> {
    let total: usize = available.iter().sum();
    if n >= total {
        return available.to_vec();
    }
    let mut counts = Vec::with_capacity(available.len());
    let mut remainders = Vec::with_capacity(available.len());
    for (c, &a) in available.iter().enumerate() {
        let scaled = a as u128 * n as u128;
        counts.push((scaled / total as u128) as usize);
        remainders.push((scaled % total as u128, c));
    }
    let leftover = n - counts.iter().sum::<usize>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, c) in remainders.iter().take(leftover) {
        counts[c] += 1;
    }
    let non_empty = available.iter().filter(|&&a| a > 0).count();
    if n >= non_empty {
        for c in 0..available.len() {
            if available[c] > 0 && counts[c] == 0 {
                let richest = (0..counts.len())
                    .max_by(|&a, &b| counts[a].cmp(&counts[b]).then(b.cmp(&a)))
                    .expect("a class keeps more than one item");
                counts[richest] -= 1;
                counts[c] = 1;
            }
        }
    }
    counts
}

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
    subset_named(labels, num_classes, n, SubsetRule::Balanced, |c| {
        c.to_string()
    })
}

/// The indices of a subset of `n` items by `rule`, ascending, with errors naming classes by
/// `name(class id)`; within a class, items are taken in index order.
pub(crate) fn subset_named(
    labels: &[u32],
    num_classes: usize,
    n: usize,
    rule: SubsetRule,
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
    let wanted = match rule {
        SubsetRule::Balanced => balanced_counts(num_classes, n),
        SubsetRule::Proportional => {
            let total: usize = available.iter().sum();
            if n > total {
                return Err(DataError::invalid(
                    "limit",
                    n,
                    format!("the data holds only {total} items"),
                ));
            }
            proportional_counts(&available, n)
        }
    };
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
    fn proportional_counts_keep_the_tail_and_the_total() {
        // 1,000 + 100 + 10 items, 111 kept: the exact shares.
        let counts = proportional_counts(&[1000, 100, 10], 111);
        assert_eq!(counts.iter().sum::<usize>(), 111);
        assert_eq!(counts, vec![100, 10, 1]);
        // Every class keeps at least one item when n allows, even a one-item class.
        let counts = proportional_counts(&[500, 1, 499], 10);
        assert_eq!(counts.iter().sum::<usize>(), 10);
        assert_eq!(counts[1], 1);
        // n below the class count: the largest shares only.
        assert_eq!(proportional_counts(&[5, 3, 2], 2), vec![1, 1, 0]);
        // Everything, and nothing.
        assert_eq!(proportional_counts(&[3, 0, 4], 9), vec![3, 0, 4]);
        assert_eq!(proportional_counts(&[3, 0, 4], 0), vec![0, 0, 0]);
        // Never more than a class holds, for every n.
        let available = [7, 1, 13, 2, 40];
        for n in 0..=63 {
            let counts = proportional_counts(&available, n);
            assert_eq!(counts.iter().sum::<usize>(), n.min(63), "n = {n}");
            assert!(
                counts.iter().zip(&available).all(|(c, a)| c <= a),
                "n = {n}"
            );
        }
    }

    #[test]
    fn proportional_subset_takes_the_first_items_and_refuses_too_many() {
        let labels = [0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2];
        let kept = subset_named(&labels, 3, 6, SubsetRule::Proportional, |c| c.to_string());
        // Counts 3, 1, 2: shares 3, 1, 2 of 6 exactly.
        assert_eq!(kept.unwrap(), vec![0, 1, 2, 6, 8, 9]);
        let err = subset_named(&labels, 3, 13, SubsetRule::Proportional, |c| c.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("13") && err.contains("12"), "{err}");
    }

    #[test]
    fn asking_too_much_names_the_class_and_counts() {
        let labels = [0, 0, 0, 1, 2, 2, 2];
        // n = 6: each class needs 2; class 1 has 1.
        match subset_named(&labels, 3, 6, SubsetRule::Balanced, |c| {
            ["cat", "dog", "emu"][c].into()
        }) {
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
