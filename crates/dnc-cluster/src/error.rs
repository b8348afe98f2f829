//! Errors of the k-means crate: bad parameters, bad input data and runtime failures are kept apart.

use std::path::PathBuf;

/// A [`KMeansConfig`](crate::KMeansConfig) value that cannot be used, found before any data is read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("n_clusters must be at least 1, got 0")]
    ZeroClusters,
    #[error("n_init (number of restarts) must be at least 1, got 0")]
    ZeroRuns,
    #[error("max_iter must be at least 1, got 0")]
    ZeroMaxIter,
    #[error("tol must be a finite number >= 0, got {0}")]
    Tolerance(f64),
    #[error("chunk_bytes must be at least 1, got 0")]
    ZeroChunkBytes,
    #[error("n_local_trials must be at least 1 when set, got 0")]
    ZeroLocalTrials,
    #[error("sample_size = {sample_size} is smaller than n_clusters = {n_clusters}")]
    SampleTooSmall {
        sample_size: usize,
        n_clusters: usize,
    },
}

/// Everything that can go wrong in fitting, predicting, scoring or reading/writing clusters.
#[derive(Debug, thiserror::Error)]
pub enum KMeansError {
    /// A configuration value is invalid.
    #[error("invalid k-means parameter: {0}")]
    Params(#[from] ParamError),
    /// The data is not a `[N, D]` matrix with `N, D ≥ 1`.
    #[error("data must be a [N, D] matrix with N >= 1 and D >= 1, got shape {shape:?}")]
    BadShape { shape: Vec<usize> },
    /// More clusters than points.
    #[error("n_clusters = {n_clusters} is larger than the number of points N = {n_points}")]
    TooManyClusters { n_clusters: usize, n_points: usize },
    /// Data and centroids have different feature dimensions.
    #[error("dimension mismatch: the centroids have D = {expected}, the data has D = {got}")]
    DimensionMismatch { expected: usize, got: usize },
    /// The data holds a NaN or an infinity (or values whose squares overflow f32).
    #[error(
        "data row {row}, column {col} holds {value}: NaN, infinite or overflowing values cannot be clustered"
    )]
    NonFinite { row: usize, col: usize, value: f32 },
    /// Given centroids cannot be used (e.g. a zero centroid in cosine mode).
    #[error("invalid centroids: {0}")]
    InvalidCentroids(String),
    /// Labels passed to a metric or to I/O are inconsistent.
    #[error("labels: {0}")]
    Labels(String),
    /// A cluster file is not what this crate writes.
    #[error("{path}: not a valid cluster file: {reason}")]
    Format { path: PathBuf, reason: String },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A tensor operation failed at run time (device, memory, dtype support).
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl KMeansError {
    /// Whether the error is the caller's input (parameters, data, labels, file contents) rather
    /// than a runtime failure of the device or the file system.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Io { .. } | Self::Tensor(_))
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, KMeansError>;
