//! The pure parts of the diagnostics: routing, per-cluster selection, the concatenated ceiling
//! features, cosine fidelity, the student file's heads and the verdict.

use super::ClusterKnn;
use crate::error::PipelineError;
use candle_core::{DType, Tensor};
use dnc_cluster::{KMeansModel, Metric};
use dnc_core::l2_normalize;
use std::collections::BTreeSet;

/// The nearest centroid of every row of `features`, by dnc-cluster's own assignment (in cosine
/// mode rows and centroids are compared after L2 normalisation, as the divide's k-means did).
///
/// # Shapes
/// `features`: `[N, D]` (N may be 0), `centroids`: `[K, D]` → N cluster ids in `0..K`.
pub(super) fn route(
    features: &Tensor,
    centroids: &Tensor,
    metric: Metric,
) -> Result<Vec<u32>, PipelineError> {
    if features.dims().first() == Some(&0) {
        return Ok(Vec::new());
    }
    Ok(KMeansModel::from_centroids(centroids, metric)?.predict(features)?)
}

/// The rows of each cluster: entry `c` lists, in order, the rows whose cluster is `c`.
pub(super) fn members(clusters: &[u32], k: usize) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); k];
    for (row, &c) in clusters.iter().enumerate() {
        if let Some(list) = out.get_mut(c as usize) {
            list.push(row as u32);
        }
    }
    out
}

/// `[n(a) ‖ n(b)]`: both parts of every row L2-normalised, side by side (rows of norm √2).
///
/// # Shapes
/// `a`: `[N, Da]`, `b`: `[N, Db]` → `[N, Da + Db]`.
pub(super) fn concat_normalized(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    Tensor::cat(&[l2_normalize(a)?, l2_normalize(b)?], 1)
}

/// Mean over rows of the cosine between `pred` and `target`; `None` without rows.
///
/// # Shapes
/// `pred`, `target`: `[N, D]`.
pub(super) fn mean_cosine(pred: &Tensor, target: &Tensor) -> candle_core::Result<Option<f64>> {
    let n = pred.dim(0)?;
    if n == 0 {
        return Ok(None);
    }
    let cos = (l2_normalize(pred)? * l2_normalize(target)?)?.sum(1)?;
    let cos: Vec<f64> = cos.to_dtype(DType::F64)?.to_vec1()?;
    Ok(Some(cos.iter().sum::<f64>() / n as f64))
}

/// The heads of a student file, from its tensor names (`heads.<h>.…`), ascending.
pub(super) fn head_ids<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<usize> {
    let ids: BTreeSet<usize> = names
        .into_iter()
        .filter_map(|name| name.strip_prefix("heads.")?.split('.').next()?.parse().ok())
        .collect();
    ids.into_iter().collect()
}

/// Clusters where the expert beats `rival` (the base, or the matched MoCLR baseline) on the
/// cluster's own images, and clusters where both are scored. A tie is not ahead.
pub(super) fn experts_ahead_of(
    clusters: &[ClusterKnn],
    rival: impl Fn(&ClusterKnn) -> Option<f64>,
) -> (usize, usize) {
    let pairs: Vec<(f64, f64)> = clusters
        .iter()
        .filter_map(|c| Some((c.expert?, rival(c)?)))
        .collect();
    let ahead = pairs
        .iter()
        .filter(|(expert, rival)| expert > rival)
        .count();
    (ahead, pairs.len())
}

/// One sentence: do the experts beat the base on most (more than half) of their clusters?
pub(super) fn verdict(clusters: &[ClusterKnn]) -> String {
    let (ahead, scored) = experts_ahead_of(clusters, |c| c.base);
    if scored == 0 {
        return "No cluster has both bank and test images, so the experts could not be compared \
                with the base."
            .into();
    }
    let mean = 100.0 * clusters.iter().filter_map(|c| c.delta).sum::<f64>() / scored as f64;
    if 2 * ahead > scored {
        format!(
            "Experts beat the base on {ahead} of {scored} clusters (mean {mean:+.2} k-NN points \
             on their own clusters): the divide has something to give the student."
        )
    } else {
        format!(
            "Experts beat the base on only {ahead} of {scored} clusters (mean {mean:+.2} k-NN \
             points on their own clusters): the divide has nothing to give the student on this run."
        )
    }
}

#[cfg(test)]
#[path = "compute_tests.rs"]
mod tests;
