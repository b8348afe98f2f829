//! The centroid update of a Lloyd iteration, with empty-cluster repair.

use crate::assign::{Assignment, Centroids};
use crate::error::KMeansError;
use crate::params::{DEFAULT_CHUNK_BYTES, Metric};
use crate::points::Points;
use crate::sums::cluster_sums;
use candle_core::{Device, Result, Tensor};

/// Cluster sizes from labels.
pub(crate) fn counts(labels: &[u32], k: usize) -> Vec<usize> {
    let mut counts = vec![0usize; k];
    for &l in labels {
        counts[l as usize] += 1;
    }
    counts
}

/// The outcome of one update.
pub(crate) struct Update {
    /// New centroids, row-major `[K * D]`.
    pub(crate) centroids: Vec<f32>,
    /// Total squared centroid shift `Σ_j ‖c_j' − c_j‖²`.
    pub(crate) shift: f64,
    /// Empty clusters re-seeded in this update.
    pub(crate) reseeded: usize,
    /// The per-cluster sums under the assignment as re-seeding left it (row-major `[K * D]`).
    pub(crate) sums: Vec<f64>,
}

/// Moves every centroid to the mean (cosine: the mean direction) of its points, after re-seeding
/// empty clusters from the points farthest from their centroids.
///
/// Re-seeding moves a point into the empty cluster (its label and distance in `assignment` are
/// updated), as scikit-learn does: the point's cost drops to zero and its old cluster's mean can
/// only fit the remaining points better, so inertia still does not increase.
///
/// `sums` are the per-cluster sums of the points under `assignment` (row-major `[K * D]`).
pub(crate) fn update(
    points: &Points,
    old: &Centroids,
    assignment: &mut Assignment,
    mut sums: Vec<f64>,
) -> Result<Update> {
    let (k, d) = (old.k, old.d);
    let mut counts = counts(&assignment.labels, k);
    let reseeded = reseed_empty(points, &mut sums, &mut counts, assignment, d)?;
    let mut centroids = old.host.clone();
    for j in 0..k {
        let s = &sums[j * d..(j + 1) * d];
        // An empty cluster, or points that cancel out (no mean direction): keep the old centroid.
        let Some(scale) = mean_scale(s, counts[j], points.metric) else {
            continue;
        };
        for (c, v) in centroids[j * d..(j + 1) * d].iter_mut().zip(s) {
            *c = (v * scale) as f32;
        }
    }
    let shift = centroids
        .iter()
        .zip(&old.host)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    Ok(Update {
        centroids,
        shift,
        reseeded,
        sums,
    })
}

/// The factor that turns a cluster's sum of `count` points into its centroid: the mean
/// (Euclidean) or the mean direction (cosine); `None` for an empty cluster or a cosine sum too
/// short to have a direction.
fn mean_scale(sum: &[f64], count: usize, metric: Metric) -> Option<f64> {
    if count == 0 {
        return None;
    }
    match metric {
        Metric::Euclidean => Some(1.0 / count as f64),
        Metric::Cosine => {
            let norm = sum.iter().map(|v| v * v).sum::<f64>().sqrt();
            (norm >= 1e-12).then(|| 1.0 / norm)
        }
    }
}

/// The centroid of every cluster of `labels` over the points of `data` (`[N, D]`): the mean,
/// or for the cosine metric the mean direction of the L2-normalised points, as a Lloyd update
/// computes it. An empty cluster (or one whose points cancel out) gets a zero row.
///
/// # Shapes
/// `data`: `[N, D]`, `labels`: N ids in `0..k` → `[k, D]` on the CPU.
pub fn centroids_of(
    data: &Tensor,
    labels: &[u32],
    k: usize,
    metric: Metric,
) -> std::result::Result<Tensor, KMeansError> {
    let points = Points::prepare(data, metric, DEFAULT_CHUNK_BYTES, k)?;
    if labels.len() != points.n {
        return Err(KMeansError::Labels(format!(
            "centroids_of: {} labels for {} points",
            labels.len(),
            points.n
        )));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l as usize >= k) {
        return Err(KMeansError::Labels(format!(
            "centroids_of: label {bad} is not below k = {k}"
        )));
    }
    let d = points.d;
    let sums = cluster_sums(&points, labels, k)?;
    let counts = counts(labels, k);
    let mut out = vec![0f32; k * d];
    for j in 0..k {
        let s = &sums[j * d..(j + 1) * d];
        if let Some(scale) = mean_scale(s, counts[j], metric) {
            for (c, v) in out[j * d..(j + 1) * d].iter_mut().zip(s) {
                *c = (v * scale) as f32;
            }
        }
    }
    Ok(Tensor::from_vec(out, (k, d), &Device::Cpu)?)
}

/// [`centroids_of`] over data read a chunk at a time: [`add`](Self::add) each chunk with its
/// rows' labels, then [`centroids`](Self::centroids). Sums are kept in f64.
#[derive(Debug, Clone)]
pub struct CentroidSums {
    k: usize,
    d: usize,
    metric: Metric,
    sums: Vec<f64>,
    counts: Vec<usize>,
}

impl CentroidSums {
    /// Empty sums for `k` clusters of `d`-dimensional points.
    pub fn new(k: usize, d: usize, metric: Metric) -> Self {
        Self {
            k,
            d,
            metric,
            sums: vec![0.0; k * d],
            counts: vec![0; k],
        }
    }

    /// Adds the rows of `chunk` (`[B, D]`), row `i` to cluster `labels[i]`; with the cosine
    /// metric each row is L2-normalised first.
    pub fn add(&mut self, chunk: &Tensor, labels: &[u32]) -> std::result::Result<(), KMeansError> {
        let rows: Vec<Vec<f32>> = chunk.to_dtype(candle_core::DType::F32)?.to_vec2()?;
        if rows.len() != labels.len() || rows.first().is_some_and(|r| r.len() != self.d) {
            return Err(KMeansError::Labels(format!(
                "CentroidSums::add: {} rows of width {} with {} labels, expected width {}",
                rows.len(),
                rows.first().map_or(0, Vec::len),
                labels.len(),
                self.d
            )));
        }
        for (row, &label) in rows.iter().zip(labels) {
            let j = label as usize;
            if j >= self.k {
                return Err(KMeansError::Labels(format!(
                    "CentroidSums::add: label {label} is not below k = {}",
                    self.k
                )));
            }
            let scale = match self.metric {
                Metric::Euclidean => 1.0,
                Metric::Cosine => {
                    let norm = row
                        .iter()
                        .map(|&v| f64::from(v).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    if norm > 0.0 { 1.0 / norm } else { 0.0 }
                }
            };
            for (s, &v) in self.sums[j * self.d..(j + 1) * self.d].iter_mut().zip(row) {
                *s += f64::from(v) * scale;
            }
            self.counts[j] += 1;
        }
        Ok(())
    }

    /// The centroids, `[k, D]` on the CPU: as [`centroids_of`] computes them.
    pub fn centroids(&self) -> Result<Tensor> {
        let (k, d) = (self.k, self.d);
        let mut out = vec![0f32; k * d];
        for j in 0..k {
            let s = &self.sums[j * d..(j + 1) * d];
            if let Some(scale) = mean_scale(s, self.counts[j], self.metric) {
                for (c, v) in out[j * d..(j + 1) * d].iter_mut().zip(s) {
                    *c = (v * scale) as f32;
                }
            }
        }
        Tensor::from_vec(out, (k, d), &Device::Cpu)
    }
}

/// Gives every empty cluster the farthest point whose own cluster keeps at least one point.
fn reseed_empty(
    points: &Points,
    sums: &mut [f64],
    counts: &mut [usize],
    assignment: &mut Assignment,
    d: usize,
) -> Result<usize> {
    let empty: Vec<usize> = (0..counts.len()).filter(|&j| counts[j] == 0).collect();
    if empty.is_empty() {
        return Ok(0);
    }
    let mut order: Vec<usize> = (0..points.n).collect();
    let dist = &assignment.distances;
    order.sort_unstable_by(|&a, &b| dist[b].total_cmp(&dist[a]).then(a.cmp(&b)));
    let mut candidates = order.into_iter();
    let mut reseeded = 0;
    for j in empty {
        let Some(i) = candidates.find(|&i| counts[assignment.labels[i] as usize] > 1) else {
            break;
        };
        let from = assignment.labels[i] as usize;
        let p = points.point(i)?;
        for (c, v) in p.iter().enumerate() {
            sums[from * d + c] -= f64::from(*v);
            sums[j * d + c] = f64::from(*v);
        }
        counts[from] -= 1;
        counts[j] = 1;
        assignment.labels[i] = j as u32;
        assignment.distances[i] = 0.0;
        reseeded += 1;
    }
    tracing::debug!(reseeded, "k-means: re-seeded empty clusters");
    Ok(reseeded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn points(rows: &[[f32; 2]], metric: Metric, dtype: DType) -> Points {
        let x = Tensor::from_vec(rows.concat(), (rows.len(), 2), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        Points::prepare(&x, metric, 24, 3).unwrap()
    }

    #[test]
    fn empty_cluster_takes_the_farthest_point() {
        // Clusters 0 = {0, 1, 2} with point 2 far away, 1 empty, 2 = {3}.
        let rows = [[0.0, 0.0], [1.0, 0.0], [9.0, 0.0], [0.0, 20.0]];
        let p = points(&rows, Metric::Euclidean, DType::F32);
        let old = Centroids::new(vec![0.5, 0.0, 100.0, 100.0, 0.0, 20.0], 3, &p).unwrap();
        let mut a = crate::assign::assign(&p, &old).unwrap();
        assert_eq!(a.labels, vec![0, 0, 0, 2]);
        let sums = crate::sums::cluster_sums(&p, &a.labels, 3).unwrap();
        let u = update(&p, &old, &mut a, sums).unwrap();
        // Point 2 (distance 8.5² = 72.25) is the farthest in a cluster of more than one point;
        // point 3 is farther from nothing (distance 0) and alone in its cluster anyway.
        assert_eq!(u.reseeded, 1);
        assert_eq!(a.labels, vec![0, 0, 1, 2]);
        assert_eq!(u.centroids, vec![0.5, 0.0, 9.0, 0.0, 0.0, 20.0]);
        let expected_shift = 0.0 + (91f64.powi(2) + 100f64.powi(2)) + 0.0;
        assert!((u.shift - expected_shift).abs() < 1e-6, "{}", u.shift);
    }

    #[test]
    fn centroids_of_are_mean_directions_for_cosine_and_means_for_euclidean() {
        let data = Tensor::new(
            &[[2f32, 0.0], [0.0, 3.0], [4.0, 0.0], [1.0, 1.0]],
            &Device::Cpu,
        )
        .unwrap();
        let labels = [0, 0, 1, 1];
        let cos: Vec<Vec<f32>> = centroids_of(&data, &labels, 2, Metric::Cosine)
            .unwrap()
            .to_vec2()
            .unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (cos[0][0] - h).abs() < 1e-6 && (cos[0][1] - h).abs() < 1e-6,
            "{cos:?}"
        );
        // (1, 0) + (h, h), normalised.
        let (x, y) = (1.0 + h, h);
        let n = (x * x + y * y).sqrt();
        assert!((cos[1][0] - x / n).abs() < 1e-6 && (cos[1][1] - y / n).abs() < 1e-6);
        let euc: Vec<Vec<f32>> = centroids_of(&data, &labels, 2, Metric::Euclidean)
            .unwrap()
            .to_vec2()
            .unwrap();
        assert_eq!(euc, vec![vec![1.0, 1.5], vec![2.5, 0.5]]);
    }
}

#[cfg(test)]
mod streaming_tests {
    use super::*;
    use crate::gaussian_blobs;

    #[test]
    fn centroid_sums_over_chunks_match_centroids_of_the_whole() {
        let (data, _) = gaussian_blobs(300, 6, 4, 0.5, 3, &Device::Cpu).unwrap();
        // Far from the origin, so that a Euclidean mean computed relative to anything else
        // would show.
        let data = (data + 50.0).unwrap();
        let labels: Vec<u32> = (0..300u32).map(|i| (i * 7 + i / 13) % 4).collect();
        for metric in [Metric::Euclidean, Metric::Cosine] {
            let whole: Vec<Vec<f32>> = centroids_of(&data, &labels, 5, metric)
                .unwrap()
                .to_vec2()
                .unwrap();
            let mut sums = CentroidSums::new(5, 6, metric);
            for start in (0..300).step_by(70) {
                let len = 70.min(300 - start);
                sums.add(
                    &data.narrow(0, start, len).unwrap(),
                    &labels[start..start + len],
                )
                .unwrap();
            }
            let streamed: Vec<Vec<f32>> = sums.centroids().unwrap().to_vec2().unwrap();
            for (a, b) in whole.iter().flatten().zip(streamed.iter().flatten()) {
                assert!(
                    (a - b).abs() < 1e-4 * a.abs().max(1.0),
                    "{metric:?}: {a} vs {b}"
                );
            }
            // Cluster 4 is empty: a zero row.
            assert!(streamed[4].iter().all(|&v| v == 0.0));
        }
        let err = CentroidSums::new(2, 6, Metric::Euclidean)
            .add(&data.narrow(0, 0, 3).unwrap(), &[0, 1, 2])
            .unwrap_err();
        assert!(
            err.to_string().contains("label 2 is not below k = 2"),
            "{err}"
        );
    }
}
