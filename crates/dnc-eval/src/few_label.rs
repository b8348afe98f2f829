//! Few-label linear probes: the linear probe trained on a small stratified fraction of the
//! labelled bank and scored on the whole test split (the 1% / 10% label evaluation of
//! semi-supervised learning, reported on ImageNet by the DnC paper, Tian et al. 2021,
//! arXiv 2105.08054).
//!
//! Draw `d` takes, from every class, the first items of a permutation of that class drawn from
//! `SeededRng::derive(seed, [stream, d, class])`: the same seed gives the same subsets, draws
//! differ, and a smaller fraction's subset is part of a larger one's of the same draw.

use crate::config::{LinearProbeConfig, check_fraction};
use crate::error::EvalError;
use crate::input::{check_labels, feature_dims};
use crate::linear::linear_probe_evaluate;
use candle_core::Tensor;
use dnc_core::SeededRng;
use serde::{Deserialize, Serialize};

/// Stream id of the subset draws, apart from the probe's own shuffles.
const DRAW_STREAM: u64 = 0xFE11_AB31;

/// The few-label probes of one fraction, as stored in a run's `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FewLabelScore {
    /// Fraction of each class's labelled bank items that a probe trains on.
    pub fraction: f64,
    /// Number of seeded draws of the subset, one probe each.
    pub draws: usize,
    /// Labelled items each probe trains on (the same for every draw).
    pub items: usize,
    /// Mean of `top1_per_draw`.
    pub top1_mean: f64,
    /// Top-1 accuracy on the test split of the probe of each draw, in `[0, 1]`.
    pub top1_per_draw: Vec<f64>,
}

impl FewLabelScore {
    /// The fraction in percent, as a label: `0.01` → `"1%"`, `0.005` → `"0.5%"`.
    pub fn percent(&self) -> String {
        // Rounded to 1e-6 %, so that 0.07 · 100 = 7.000000000000001 reads "7%".
        format!("{}%", (self.fraction * 1e8).round() / 1e6)
    }
}

/// Indices (increasing) of a stratified draw of `fraction` of the items labelled `labels`:
/// `round(fraction · n_c)` items of every class `c` that has `n_c ≥ 1` items, at least one, chosen
/// without replacement by the stream of `(seed, draw, c)`.
pub fn few_label_subset(
    labels: &[u32],
    fraction: f64,
    seed: u64,
    draw: usize,
) -> Result<Vec<usize>, EvalError> {
    check_fraction(fraction)?;
    let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let mut members = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        members[l as usize].push(i);
    }
    let mut subset = Vec::new();
    for (class, items) in members.iter().enumerate().filter(|(_, m)| !m.is_empty()) {
        let n = items.len();
        let take = ((fraction * n as f64).round() as usize).clamp(1, n);
        let mut rng = SeededRng::derive(seed, &[DRAW_STREAM, draw as u64, class as u64]);
        subset.extend(rng.permutation(n)[..take].iter().map(|&p| items[p]));
    }
    subset.sort_unstable();
    Ok(subset)
}

/// For every fraction of `config.few_label_fractions`, trains `config.few_label_draws` linear
/// probes, each on one [`few_label_subset`] of `train` (seeded by `config.seed`), and scores them
/// on the whole of `test`.
///
/// Each probe takes as many optimiser steps as the full probe does on all of `train` (its
/// epochs scaled up by the ratio of batches per epoch): at the full probe's epochs, a 1% subset
/// would train for only one step per epoch and stay far from its optimum.
///
/// # Shapes
/// `train`: `[N, D]`, `test`: `[M, D]`, labels one per row, below `num_classes`.
pub fn few_label_probe_evaluate(
    train: &Tensor,
    train_labels: &[u32],
    test: &Tensor,
    test_labels: &[u32],
    num_classes: usize,
    config: &LinearProbeConfig,
) -> Result<Vec<FewLabelScore>, EvalError> {
    config.validate()?;
    let (n, _) = feature_dims(train, "train features")?;
    check_labels(train_labels, n, num_classes, "train labels")?;
    let mut scores = Vec::with_capacity(config.few_label_fractions.len());
    for &fraction in &config.few_label_fractions {
        let mut top1_per_draw = Vec::with_capacity(config.few_label_draws);
        let mut items = 0;
        for draw in 0..config.few_label_draws {
            let subset = few_label_subset(train_labels, fraction, config.seed, draw)?;
            items = subset.len();
            let labels: Vec<u32> = subset.iter().map(|&i| train_labels[i]).collect();
            let rows: Vec<u32> = subset.iter().map(|&i| i as u32).collect();
            let rows = Tensor::from_vec(rows, items, train.device())?;
            let x = train.index_select(&rows, 0)?;
            let same_steps = LinearProbeConfig {
                epochs: epochs_for_equal_steps(config, n, items),
                ..config.clone()
            };
            let accuracy =
                linear_probe_evaluate(&x, &labels, test, test_labels, num_classes, &same_steps)?;
            top1_per_draw.push(accuracy.top1);
        }
        let top1_mean = top1_per_draw.iter().sum::<f64>() / top1_per_draw.len() as f64;
        tracing::info!(
            fraction,
            items,
            top1_mean,
            "few-label linear probe evaluated"
        );
        scores.push(FewLabelScore {
            fraction,
            draws: config.few_label_draws,
            items,
            top1_mean,
            top1_per_draw,
        });
    }
    Ok(scores)
}

/// The epochs over `items` rows that take as many steps as `config.epochs` over `full` rows, at
/// `config.batch_size` rows a step (the last, partial batch included).
pub(crate) fn epochs_for_equal_steps(
    config: &LinearProbeConfig,
    full: usize,
    items: usize,
) -> usize {
    let batches = |rows: usize| rows.div_ceil(config.batch_size).max(1);
    (config.epochs * batches(full)).div_ceil(batches(items))
}

#[cfg(test)]
#[path = "few_label_tests.rs"]
mod tests;
