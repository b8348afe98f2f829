//! Initial centroids: greedy k-means++ or uniformly drawn points, seeded.
//!
//! k-means++: Arthur & Vassilvitskii, "k-means++: The Advantages of Careful Seeding", SODA 2007.
//! The greedy variant (as in scikit-learn) draws a few candidates per step with probability
//! proportional to their squared distance to the nearest chosen centroid and keeps the one that
//! lowers the total most.

use crate::assign::{Centroids, distances_to};
use crate::params::{InitMethod, KMeansConfig};
use crate::points::Points;
use candle_core::Result;
use dnc_core::SeededRng;
use std::collections::HashSet;

/// `k` distinct indices of `0..n`, drawn uniformly (Floyd's algorithm), in draw order.
pub(crate) fn sample_distinct(n: usize, k: usize, rng: &mut SeededRng) -> Vec<usize> {
    let mut seen = HashSet::with_capacity(k);
    let mut out = Vec::with_capacity(k);
    for j in n - k..n {
        let t = rng.below(j as u64 + 1) as usize;
        let pick = if seen.contains(&t) { j } else { t };
        seen.insert(pick);
        out.push(pick);
    }
    out
}

/// Initial centroids, row-major `[K * D]` (unit rows in cosine mode).
pub(crate) fn initial_centroids(
    points: &Points,
    cfg: &KMeansConfig,
    rng: &mut SeededRng,
) -> Result<Vec<f32>> {
    let k = cfg.n_clusters;
    let ids = match cfg.init {
        InitMethod::Random => sample_distinct(points.n, k, rng),
        InitMethod::KMeansPlusPlus => plus_plus(points, k, cfg.local_trials(), rng)?,
    };
    let mut out = Vec::with_capacity(k * points.d);
    for i in ids {
        out.extend(points.point(i)?);
    }
    Ok(out)
}

/// Indices of the points chosen by greedy k-means++.
fn plus_plus(points: &Points, k: usize, trials: usize, rng: &mut SeededRng) -> Result<Vec<usize>> {
    let first = rng.below(points.n as u64) as usize;
    let mut chosen = vec![first];
    let mut closest = distances_to(points, &centres(points, &[first])?)?;
    while chosen.len() < k {
        let candidates = draw_candidates(&closest, trials, rng);
        let dist = distances_to(points, &centres(points, &candidates)?)?;
        let m = candidates.len();
        // Potential after adding each candidate: Σ_i min(closest_i, d(x_i, candidate)²).
        let mut pots = vec![0f64; m];
        for (row, &c) in dist.chunks_exact(m).zip(&closest) {
            for (p, &v) in pots.iter_mut().zip(row) {
                *p += f64::from(v.min(c));
            }
        }
        let best = (0..m)
            .min_by(|&a, &b| pots[a].total_cmp(&pots[b]))
            .unwrap_or(0);
        for (c, row) in closest.iter_mut().zip(dist.chunks_exact(m)) {
            *c = c.min(row[best]);
        }
        chosen.push(candidates[best]);
    }
    Ok(chosen)
}

/// `trials` indices drawn with probability proportional to `closest`; uniform when every point
/// already sits on a chosen centroid.
fn draw_candidates(closest: &[f32], trials: usize, rng: &mut SeededRng) -> Vec<usize> {
    let n = closest.len();
    let mut cumulative = Vec::with_capacity(n);
    let mut acc = 0f64;
    for &v in closest {
        acc += f64::from(v);
        cumulative.push(acc);
    }
    if acc <= 0.0 {
        return (0..trials).map(|_| rng.below(n as u64) as usize).collect();
    }
    (0..trials)
        .map(|_| {
            let r = rng.uniform() * acc;
            // First index whose cumulative weight exceeds r; never a zero-weight point.
            cumulative.partition_point(|&c| c <= r).min(n - 1)
        })
        .collect()
}

/// The given points as a small set of centres.
fn centres(points: &Points, ids: &[usize]) -> Result<Centroids> {
    let mut host = Vec::with_capacity(ids.len() * points.d);
    for &i in ids {
        host.extend(points.point(i)?);
    }
    Centroids::new(host, ids.len(), points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Metric;
    use candle_core::{Device, Tensor};

    #[test]
    fn sample_distinct_is_distinct_and_seeded() {
        let mut a = sample_distinct(50, 50, &mut SeededRng::new(1));
        a.sort_unstable();
        assert_eq!(a, (0..50).collect::<Vec<_>>());
        let b = sample_distinct(1000, 10, &mut SeededRng::new(2));
        assert_eq!(b, sample_distinct(1000, 10, &mut SeededRng::new(2)));
        assert_eq!(b.iter().collect::<HashSet<_>>().len(), 10);
    }

    #[test]
    fn candidates_follow_the_weights() {
        // Weights 0, 1, 3: index 0 is never drawn, index 2 three times as often as index 1.
        let mut rng = SeededRng::new(3);
        let draws = draw_candidates(&[0.0, 1.0, 3.0], 40_000, &mut rng);
        let ones = draws.iter().filter(|&&i| i == 1).count() as f64;
        assert!(!draws.contains(&0));
        assert!((ones / 40_000.0 - 0.25).abs() < 0.01, "{ones}");
    }

    #[test]
    fn plus_plus_picks_one_point_per_separated_group() {
        // Four tight groups far apart: greedy k-means++ puts one centroid in each.
        let mut rows = Vec::new();
        for (g, centre) in [[0f32, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]]
            .iter()
            .enumerate()
        {
            for i in 0..10 {
                rows.push([centre[0] + (i as f32) * 0.01, centre[1] + g as f32 * 0.01]);
            }
        }
        let x = Tensor::from_vec(rows.concat(), (40, 2), &Device::Cpu).unwrap();
        for seed in 0..5 {
            let p = Points::prepare(&x, Metric::Euclidean, 1 << 20, 8).unwrap();
            let ids = plus_plus(&p, 4, 3, &mut SeededRng::new(seed)).unwrap();
            let mut groups: Vec<usize> = ids.iter().map(|i| i / 10).collect();
            groups.sort_unstable();
            assert_eq!(groups, vec![0, 1, 2, 3], "seed {seed}: {ids:?}");
        }
    }

    #[test]
    fn duplicates_do_not_break_plus_plus() {
        // Three distinct points, K = 3, many copies: all three are found, and with K larger than
        // the number of distinct points the draw falls back to uniform without failing.
        let x = Tensor::new(
            &[[1f32, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [-1.0, 0.0]],
            &Device::Cpu,
        )
        .unwrap();
        let p = Points::prepare(&x, Metric::Cosine, 1 << 20, 8).unwrap();
        let ids = plus_plus(&p, 3, 2, &mut SeededRng::new(0)).unwrap();
        let mut firsts: Vec<f32> = ids.iter().map(|&i| p.point(i).unwrap()[0]).collect();
        firsts.sort_by(f32::total_cmp);
        assert_eq!(firsts, vec![-1.0, 0.0, 1.0]);
        assert_eq!(
            plus_plus(&p, 5, 2, &mut SeededRng::new(0)).unwrap().len(),
            5
        );
    }
}
