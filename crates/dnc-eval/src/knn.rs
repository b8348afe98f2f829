//! Weighted k-nearest-neighbour classification of frozen features.
//!
//! The protocol of InstDisc (Wu et al., "Unsupervised Feature Learning via Non-Parametric
//! Instance Discrimination", CVPR 2018), used by lightly's and solo-learn's benchmarks: features
//! are L2-normalised, the `k` bank items with the highest cosine similarity to a query vote for
//! their class with weight `exp(sim / τ)`, and the class with the largest total wins.
//!
//! Similarities of one chunk of queries against the whole bank are computed on the device with
//! one matmul; the top-k selection runs on the host with a linear-time partial selection.
//! candle 0.11.1 has no top-k op, only a full per-row sort (`arg_sort_last_dim`): `O(N log N)`
//! per row on the CPU, and on CUDA a bitonic sort that keeps the whole row, padded to a power of
//! two, in one block's shared memory (4 bytes per item), which bounds the bank size it accepts.

use crate::accuracy::{Accuracy, score};
use crate::config::KnnConfig;
use crate::error::EvalError;
use crate::input::{check_labels, feature_dims, same_dim};
use candle_core::{DType, Tensor};
use dnc_core::l2_normalize;
use std::cmp::Ordering;

/// Predicts a class for every query by a weighted vote of its `k` nearest bank items.
///
/// Features need not be normalised (it is done here) and may be of any float dtype; similarities
/// are computed in f32 on the bank's device. Ties between equally similar bank items go to the
/// lower index, ties between classes with equal votes to the lower class index.
///
/// # Shapes
/// `bank`: `[N_bank, D]`, `bank_labels`: `N_bank` labels, `queries`: `[N_query, D]` → `N_query`
/// class indices.
pub fn knn_predict(
    bank: &Tensor,
    bank_labels: &[u32],
    queries: &Tensor,
    num_classes: usize,
    config: &KnnConfig,
) -> Result<Vec<u32>, EvalError> {
    config.validate()?;
    let (n_bank, d_bank) = feature_dims(bank, "bank features")?;
    let (n_query, d_query) = feature_dims(queries, "query features")?;
    same_dim(("bank features", d_bank), ("query features", d_query))?;
    check_labels(bank_labels, n_bank, num_classes, "bank labels")?;
    let k = config.k.min(n_bank);
    let bank_t = l2_normalize(&bank.to_dtype(DType::F32)?)?.t()?;
    let queries = l2_normalize(&queries.to_dtype(DType::F32)?.to_device(bank.device())?)?;
    let mut voter = Voter::new(n_bank, num_classes);
    let mut predictions = Vec::with_capacity(n_query);
    for start in (0..n_query).step_by(config.chunk) {
        let rows = config.chunk.min(n_query - start);
        let sim = queries.narrow(0, start, rows)?.matmul(&bank_t)?;
        let sim: Vec<f32> = sim.flatten_all()?.to_vec1()?;
        for row in sim.chunks_exact(n_bank) {
            predictions.push(voter.vote(row, bank_labels, k, config.temperature));
        }
    }
    tracing::debug!(n_bank, n_query, k, "k-NN predictions done");
    Ok(predictions)
}

/// Weighted k-NN top-1 and per-class accuracy of `queries` against the labelled `bank`.
///
/// # Shapes
/// `bank`: `[N_bank, D]`, `queries`: `[N_query, D]`, labels one per row.
pub fn knn_evaluate(
    bank: &Tensor,
    bank_labels: &[u32],
    queries: &Tensor,
    query_labels: &[u32],
    num_classes: usize,
    config: &KnnConfig,
) -> Result<Accuracy, EvalError> {
    let rows = queries.dims().first().copied().unwrap_or(0);
    check_labels(query_labels, rows, num_classes, "query labels")?;
    let predictions = knn_predict(bank, bank_labels, queries, num_classes, config)?;
    score(&predictions, query_labels, num_classes)
}

/// Weighted k-NN over a bank that arrives in chunks (e.g. embedded a batch at a time), so that
/// the bank is never held whole: each query keeps only its `k` most similar bank items so far.
/// [`predict`](Self::predict) gives the same classes as [`knn_predict`] on the concatenated
/// bank when the similarities come out the same (equal similarities go to the lower bank
/// position, and both sum the votes in the same order); the matrix products of a chunk and of
/// the whole bank may round differently on some devices.
///
/// Memory: the normalised queries and `k` (similarity, label, position) triples per query.
pub struct StreamingKnn {
    queries: Tensor,
    num_classes: usize,
    config: KnnConfig,
    /// Per query: its best bank items so far, `(similarity, position, label)`.
    best: Vec<Vec<(f32, u32, u32)>>,
    seen: usize,
}

impl StreamingKnn {
    /// A vote for every row of `queries` (`[N_query, D]`, any float dtype; normalised here).
    pub fn new(
        queries: &Tensor,
        num_classes: usize,
        config: &KnnConfig,
    ) -> Result<Self, EvalError> {
        config.validate()?;
        let (n_query, _) = feature_dims(queries, "query features")?;
        Ok(Self {
            queries: l2_normalize(&queries.to_dtype(DType::F32)?)?,
            num_classes,
            config: config.clone(),
            best: vec![Vec::new(); n_query],
            seen: 0,
        })
    }

    /// Adds the next bank items: `chunk` (`[B, D]`) with their labels.
    pub fn add(&mut self, chunk: &Tensor, labels: &[u32]) -> Result<(), EvalError> {
        let (b, d) = feature_dims(chunk, "bank features")?;
        same_dim(
            ("bank features", d),
            ("query features", self.queries.dim(1)?),
        )?;
        check_labels(labels, b, self.num_classes, "bank labels")?;
        let bank_t = l2_normalize(
            &chunk
                .to_dtype(DType::F32)?
                .to_device(self.queries.device())?,
        )?
        .t()?;
        let k = self.config.k;
        let base = self.seen as u32;
        let n_query = self.best.len();
        let mut order: Vec<u32> = Vec::with_capacity(b);
        for start in (0..n_query).step_by(self.config.chunk) {
            let rows = self.config.chunk.min(n_query - start);
            let sim = self.queries.narrow(0, start, rows)?.matmul(&bank_t)?;
            let sim: Vec<f32> = sim.flatten_all()?.to_vec1()?;
            for (q, row) in sim.chunks_exact(b).enumerate() {
                let by_similarity = |&a: &u32, &c: &u32| -> Ordering {
                    row[c as usize].total_cmp(&row[a as usize]).then(a.cmp(&c))
                };
                order.clear();
                order.extend(0..b as u32);
                if k < order.len() {
                    order.select_nth_unstable_by(k - 1, by_similarity);
                    order.truncate(k);
                }
                let best = &mut self.best[start + q];
                best.extend(
                    order
                        .iter()
                        .map(|&i| (row[i as usize], base + i, labels[i as usize])),
                );
                if best.len() > k {
                    best.select_nth_unstable_by(k - 1, |a, c| {
                        c.0.total_cmp(&a.0).then(a.1.cmp(&c.1))
                    });
                    best.truncate(k);
                }
            }
        }
        self.seen += b;
        Ok(())
    }

    /// The bank items added so far.
    pub fn bank_len(&self) -> usize {
        self.seen
    }

    /// The class of every query, voted by its `k` nearest bank items (weights as
    /// [`knn_predict`]'s).
    pub fn predict(&self) -> Result<Vec<u32>, EvalError> {
        if self.seen == 0 {
            return Err(EvalError::BadShape {
                what: "bank features",
                shape: vec![0],
            });
        }
        let tau = self.config.temperature;
        let mut votes = vec![0.0f64; self.num_classes];
        Ok(self
            .best
            .iter()
            .map(|top| {
                // The same summation order as `knn_predict`'s vote.
                let mut top = top.clone();
                top.sort_unstable_by(|a, c| c.0.total_cmp(&a.0).then(a.1.cmp(&c.1)));
                let best = top.iter().map(|t| t.0).fold(f32::NEG_INFINITY, f32::max);
                votes.iter_mut().for_each(|v| *v = 0.0);
                for &(sim, _, label) in &top {
                    votes[label as usize] += ((f64::from(sim) - f64::from(best)) / tau).exp();
                }
                argmax_first(&votes)
            })
            .collect())
    }

    /// Top-1 and per-class accuracy against the queries' labels.
    pub fn evaluate(&self, query_labels: &[u32]) -> Result<Accuracy, EvalError> {
        check_labels(
            query_labels,
            self.best.len(),
            self.num_classes,
            "query labels",
        )?;
        score(&self.predict()?, query_labels, self.num_classes)
    }
}

/// Reusable scratch space for the vote of one query.
struct Voter {
    order: Vec<u32>,
    votes: Vec<f64>,
}

impl Voter {
    fn new(n_bank: usize, num_classes: usize) -> Self {
        Self {
            order: Vec::with_capacity(n_bank),
            votes: vec![0.0; num_classes],
        }
    }

    /// The class voted for by the `k` most similar entries of `sim` (one query's row).
    ///
    /// Weights are `exp((sim - sim_max) / τ)`: the common factor `exp(-sim_max / τ)` leaves the
    /// argmax unchanged and keeps small temperatures from overflowing.
    fn vote(&mut self, sim: &[f32], labels: &[u32], k: usize, temperature: f64) -> u32 {
        // Descending similarity, then ascending index: a total order, so the selected set is
        // unique even with ties.
        let by_similarity = |&a: &u32, &b: &u32| -> Ordering {
            sim[b as usize].total_cmp(&sim[a as usize]).then(a.cmp(&b))
        };
        self.order.clear();
        self.order.extend(0..sim.len() as u32);
        if k < self.order.len() {
            self.order.select_nth_unstable_by(k - 1, by_similarity);
        }
        let top = &mut self.order[..k];
        // Votes are summed in (similarity, index) order, so that the f64 sums, and with them a
        // tie between classes, do not depend on where the selection left the items.
        top.sort_unstable_by(by_similarity);
        let top = &*top;
        let best = top
            .iter()
            .map(|&i| sim[i as usize])
            .fold(f32::NEG_INFINITY, f32::max);
        self.votes.iter_mut().for_each(|v| *v = 0.0);
        for &i in top {
            let weight = ((f64::from(sim[i as usize]) - f64::from(best)) / temperature).exp();
            self.votes[labels[i as usize] as usize] += weight;
        }
        argmax_first(&self.votes)
    }
}

/// Index of the largest value; the first one among equals.
fn argmax_first(values: &[f64]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
#[path = "knn_tests.rs"]
mod tests;
