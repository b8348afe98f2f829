//! Lloyd's algorithm with restarts, sampling for large N, and the entry point [`fit`].
//!
//! Lloyd, "Least squares quantization in PCM", IEEE Trans. Inf. Theory 28(2), 1982; spherical
//! k-means: Dhillon & Modha, "Concept decompositions for large sparse text data using
//! clustering", Machine Learning 42, 2001. Divide and Contrast (arXiv 2105.08054, §3.2) clusters
//! the base model's projector features with the spherical variant.

use crate::assign::{Assignment, Centroids, assign, assign_and_sum};
use crate::error::{KMeansError, Result};
use crate::init::{initial_centroids, sample_distinct};
use crate::model::KMeansModel;
use crate::params::KMeansConfig;
use crate::points::{Points, matrix_dims};
use crate::sums::Previous;
use crate::update::{counts, update};
use candle_core::Tensor;
use dnc_core::SeededRng;

/// Random streams derived from the seed: one for the sample, one per restart.
const SAMPLE_STREAM: u64 = 1;
const RUN_STREAM: u64 = 2;

/// The result of [`fit`]: the model and the assignment of every point of the data.
#[derive(Debug, Clone)]
pub struct KMeansFit {
    pub model: KMeansModel,
    /// Cluster of every row of the data, in `0..K`.
    pub assignments: Vec<u32>,
    /// Squared distance of every row to its centroid (see [`Assignment`]).
    pub distances: Vec<f32>,
    /// Number of rows in each cluster.
    pub sizes: Vec<usize>,
}

/// One restart: initialisation, Lloyd iterations, final assignment.
struct Run {
    centroids: Centroids,
    assignment: Assignment,
    history: Vec<f64>,
    n_iter: usize,
    converged: bool,
}

/// Clusters the rows of `data` into `cfg.n_clusters` clusters.
///
/// Runs on the data's device and never holds more than one chunk's `[rows, K]` block (sized from
/// `cfg.chunk_bytes`). With `cfg.sample_size` below N, the centroids are fitted on a seeded
/// random sample and then every row is assigned. The same data and configuration always give the
/// same result.
///
/// # Shapes
/// `data`: `[N, D]`, any float dtype (computations are in f32).
pub fn fit(data: &Tensor, cfg: &KMeansConfig) -> Result<KMeansFit> {
    cfg.validate()?;
    let (n, _) = matrix_dims(data)?;
    let k = cfg.n_clusters;
    if k > n {
        return Err(KMeansError::TooManyClusters {
            n_clusters: k,
            n_points: n,
        });
    }
    let columns = k.max(cfg.local_trials());
    let all = Points::prepare(data, cfg.metric, cfg.chunk_bytes, columns)?;
    let sample = sample(&all, cfg)?;
    let fit_on = sample.as_ref().unwrap_or(&all);
    let tol = cfg.tol * fit_on.mean_variance;
    let mut best = lloyd(fit_on, cfg, tol, 0)?;
    for restart in 1..cfg.n_init {
        let run = lloyd(fit_on, cfg, tol, restart)?;
        if run.assignment.inertia() < best.assignment.inertia() {
            best = run;
        }
    }
    let assignment = match &sample {
        Some(_) => assign(&all, &best.centroids)?,
        None => best.assignment,
    };
    let inertia = assignment.inertia();
    let model = KMeansModel {
        centroids: Tensor::from_vec(best.centroids.host, (k, data.dim(1)?), data.device())?,
        metric: cfg.metric,
        inertia,
        n_iter: best.n_iter,
        converged: best.converged,
        inertia_history: best.history,
        chunk_bytes: cfg.chunk_bytes,
    };
    Ok(KMeansFit {
        sizes: counts(&assignment.labels, k),
        assignments: assignment.labels,
        distances: assignment.distances,
        model,
    })
}

/// The seeded random sample the centroids are fitted on, when `sample_size` is below N.
fn sample(all: &Points, cfg: &KMeansConfig) -> Result<Option<Points>> {
    match cfg.sample_size {
        Some(s) if s < all.n => Ok(Some(all.subset(&sample_rows(all.n, s, cfg.seed))?)),
        _ => Ok(None),
    }
}

/// The rows [`fit`] trains on when `sample_size = s` is below the number of points `n`:
/// `s` distinct rows drawn with `seed`, in increasing order. For data too large to hold, read
/// these rows, fit on them without `sample_size`, then assign the rest in chunks
/// ([`KMeansModel::predict_with_distances`]).
pub fn sample_rows(n: usize, s: usize, seed: u64) -> Vec<usize> {
    let mut rng = SeededRng::derive(seed, &[SAMPLE_STREAM]);
    let mut rows = sample_distinct(n, s.min(n), &mut rng);
    rows.sort_unstable();
    rows
}

/// One restart of Lloyd's algorithm, from its own seeded initialisation.
fn lloyd(points: &Points, cfg: &KMeansConfig, tol: f64, restart: usize) -> Result<Run> {
    let mut rng = SeededRng::derive(cfg.seed, &[RUN_STREAM, restart as u64]);
    let init = initial_centroids(points, cfg, &mut rng)?;
    iterate(points, cfg, tol, init, restart)
}

/// Passes between two full recounts of the per-cluster sums (the others update the previous
/// pass's sums from the points that changed cluster).
const RECOUNT_EVERY: usize = 16;

/// Lloyd iterations from the given centroids (row-major `[K * D]`), then a final assignment.
fn iterate(
    points: &Points,
    cfg: &KMeansConfig,
    tol: f64,
    init: Vec<f32>,
    restart: usize,
) -> Result<Run> {
    let k = cfg.n_clusters;
    let mut centroids = Centroids::new(init, k, points)?;
    let mut history = Vec::with_capacity(cfg.max_iter + 1);
    let (mut n_iter, mut converged) = (0, false);
    // The last assignment and its sums: each pass updates them from the points that moved,
    // except every `RECOUNT_EVERY`-th, which sums every point afresh so that rounding carried
    // over from pass to pass stays bounded.
    let mut previous = None;
    while n_iter < cfg.max_iter {
        let carried = previous.take().filter(|_| n_iter % RECOUNT_EVERY != 0);
        let (mut assignment, sums) = assign_and_sum(points, &centroids, carried)?;
        history.push(assignment.inertia());
        let step = update(points, &centroids, &mut assignment, sums)?;
        centroids = Centroids::new(step.centroids, k, points)?;
        previous = Some(Previous {
            labels: assignment.labels,
            sums: step.sums,
        });
        n_iter += 1;
        tracing::debug!(
            restart,
            n_iter,
            inertia = history[n_iter - 1],
            shift = step.shift,
            reseeded = step.reseeded,
            "k-means iteration"
        );
        if step.shift <= tol {
            converged = true;
            break;
        }
    }
    let assignment = assign(points, &centroids)?;
    history.push(assignment.inertia());
    tracing::info!(
        restart,
        n_iter,
        converged,
        inertia = assignment.inertia(),
        "k-means restart done"
    );
    Ok(Run {
        centroids,
        assignment,
        history,
        n_iter,
        converged,
    })
}

#[cfg(test)]
mod tests;
