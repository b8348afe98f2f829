//! The centroid update of a Lloyd iteration, with empty-cluster repair.

use crate::assign::{Assignment, Centroids};
use crate::params::Metric;
use crate::points::Points;
use candle_core::Result;

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
    for j in (0..k).filter(|&j| counts[j] > 0) {
        let s = &sums[j * d..(j + 1) * d];
        let scale = match points.metric {
            Metric::Euclidean => 1.0 / counts[j] as f64,
            Metric::Cosine => {
                let norm = s.iter().map(|v| v * v).sum::<f64>().sqrt();
                // Points that cancel out have no mean direction: keep the old centroid.
                if norm < 1e-12 {
                    continue;
                }
                1.0 / norm
            }
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
    })
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
    use candle_core::{DType, Device, Tensor};

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
}
