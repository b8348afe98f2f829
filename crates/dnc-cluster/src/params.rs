//! The k-means configuration: plain serde values, validated once before any data is read.

use crate::error::ParamError;
use serde::{Deserialize, Serialize};

/// The default memory budget for one chunk of rows (256 MiB).
pub const DEFAULT_CHUNK_BYTES: usize = 256 << 20;

/// How points are compared with centroids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Spherical k-means: points and centroids are compared after L2 normalisation and centroids
    /// are unit vectors (the mean direction of their points). DnC clusters this way.
    #[default]
    Cosine,
    /// Classic k-means on squared Euclidean distances.
    Euclidean,
}

/// How the first centroids are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitMethod {
    /// Greedy k-means++ (Arthur & Vassilvitskii 2007; the greedy variant of scikit-learn): each new
    /// centroid is the best of a few D²-sampled candidates.
    #[default]
    KMeansPlusPlus,
    /// `K` distinct points drawn uniformly (the faiss default).
    Random,
}

/// Parameters of [`fit`](crate::fit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KMeansConfig {
    /// Number of clusters K (the paper uses 5 or 10).
    pub n_clusters: usize,
    /// Distance: `cosine` (spherical, the paper's choice on projector features) or `euclidean`.
    pub metric: Metric,
    /// Initialisation: `k-means-plus-plus` or `random`.
    pub init: InitMethod,
    /// Candidates tried per new centroid by greedy k-means++; `None` = `2 + ⌊ln K⌋` (scikit-learn).
    pub n_local_trials: Option<usize>,
    /// Independent restarts (different seeds); the one with the lowest inertia is kept.
    pub n_init: usize,
    /// Maximum number of Lloyd iterations per restart.
    pub max_iter: usize,
    /// Convergence threshold on the total squared centroid shift, relative to the mean
    /// per-feature variance of the (normalised, in cosine mode) data, as in scikit-learn. With 0,
    /// a restart stops early only when an iteration leaves the centroids exactly unchanged.
    pub tol: f64,
    /// Seed of every random choice (initialisation, restarts, sampling).
    pub seed: u64,
    /// Fit the centroids on this many randomly drawn points, then assign every point; `None` fits
    /// on all of them.
    pub sample_size: Option<usize>,
    /// Memory budget for one chunk of rows (the `[rows, K]` distance block and its temporaries).
    pub chunk_bytes: usize,
}

impl Default for KMeansConfig {
    fn default() -> Self {
        Self {
            n_clusters: 10,
            metric: Metric::Cosine,
            init: InitMethod::KMeansPlusPlus,
            n_local_trials: None,
            n_init: 1,
            max_iter: 100,
            tol: 1e-4,
            seed: 0,
            sample_size: None,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        }
    }
}

impl KMeansConfig {
    /// A default configuration with `n_clusters` clusters.
    pub fn new(n_clusters: usize) -> Self {
        Self {
            n_clusters,
            ..Self::default()
        }
    }

    /// Checks every value that does not depend on the data.
    pub fn validate(&self) -> Result<(), ParamError> {
        if self.n_clusters == 0 {
            return Err(ParamError::ZeroClusters);
        }
        if self.n_init == 0 {
            return Err(ParamError::ZeroRuns);
        }
        if self.max_iter == 0 {
            return Err(ParamError::ZeroMaxIter);
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return Err(ParamError::Tolerance(self.tol));
        }
        if self.chunk_bytes == 0 {
            return Err(ParamError::ZeroChunkBytes);
        }
        if self.n_local_trials == Some(0) {
            return Err(ParamError::ZeroLocalTrials);
        }
        if let Some(sample_size) = self.sample_size.filter(|&s| s < self.n_clusters) {
            return Err(ParamError::SampleTooSmall {
                sample_size,
                n_clusters: self.n_clusters,
            });
        }
        Ok(())
    }

    /// Candidates per new centroid in greedy k-means++.
    pub(crate) fn local_trials(&self) -> usize {
        self.n_local_trials
            .unwrap_or(2 + (self.n_clusters as f64).ln().floor() as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let cfg: KMeansConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, KMeansConfig::default());
        cfg.validate().unwrap();
        let text = "n_clusters = 5\nmetric = \"euclidean\"\ninit = \"random\"\nsample_size = 1000";
        let cfg: KMeansConfig = toml::from_str(text).unwrap();
        assert_eq!(
            (cfg.n_clusters, cfg.metric, cfg.init, cfg.sample_size),
            (5, Metric::Euclidean, InitMethod::Random, Some(1000))
        );
        let back: KMeansConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        let err = toml::from_str::<KMeansConfig>("n_cluster = 3").unwrap_err();
        assert!(err.to_string().contains("n_cluster"), "{err}");
    }

    #[test]
    fn local_trials_follow_scikit_learn() {
        // 2 + ⌊ln K⌋: K = 1 → 2, K = 10 → 2 + 2 = 4, K = 100 → 2 + 4 = 6.
        assert_eq!(KMeansConfig::new(1).local_trials(), 2);
        assert_eq!(KMeansConfig::new(10).local_trials(), 4);
        assert_eq!(KMeansConfig::new(100).local_trials(), 6);
    }

    #[test]
    fn every_bad_value_is_named() {
        let bad = |f: fn(&mut KMeansConfig)| {
            let mut cfg = KMeansConfig::default();
            f(&mut cfg);
            cfg.validate().unwrap_err().to_string()
        };
        assert_eq!(
            bad(|c| c.n_clusters = 0),
            "n_clusters must be at least 1, got 0"
        );
        assert!(bad(|c| c.n_init = 0).contains("n_init"));
        assert!(bad(|c| c.max_iter = 0).contains("max_iter"));
        assert!(bad(|c| c.tol = -1.0).contains("got -1"));
        assert!(bad(|c| c.tol = f64::NAN).contains("NaN"));
        assert!(bad(|c| c.chunk_bytes = 0).contains("chunk_bytes"));
        assert!(bad(|c| c.n_local_trials = Some(0)).contains("n_local_trials"));
        assert_eq!(
            bad(|c| c.sample_size = Some(3)),
            "sample_size = 3 is smaller than n_clusters = 10"
        );
    }
}
