//! k-means on candle tensors, on whatever device the data lives on.
//!
//! - [`fit`]: seeded greedy k-means++ (or random) initialisation, Lloyd iterations whose
//!   distances are computed over chunks of rows (memory bounded by
//!   [`KMeansConfig::chunk_bytes`], never an `N × K` matrix; on an AVX2 or AVX-512 CPU by
//!   the crate's own dot-product kernels, elsewhere by matrix products; on the host each pass
//!   updates the per-cluster sums from the points that changed cluster), cosine (spherical) or
//!   Euclidean [`Metric`], empty-cluster repair, restarts keeping the lowest inertia, and
//!   fit-on-a-sample then assign-everything for large N. Euclidean data far from the origin is
//!   handled relative to its mean so that f32 distances stay accurate;
//! - [`KMeansModel`]: the centroids; [`KMeansModel::predict`] assigns new data;
//! - [`metrics`]: inertia, cluster sizes, NMI, ARI and majority-vote accuracy on plain slices;
//! - [`ClusterAssignments`] and [`SizesSummary`]: assignments, centroids and image ids as
//!   safetensors, and a JSON summary of the sizes;
//! - [`gaussian_blobs`]: labelled synthetic data for tests and benchmarks.
//!
//! Divide and Contrast (arXiv 2105.08054, §3.2) uses it to split a dataset into the subsets on
//! which its experts train.

pub mod algorithm;
mod assign;
mod dots;
pub mod error;
mod init;
pub mod io;
pub mod metrics;
pub mod model;
pub mod params;
mod points;
mod sums;
pub mod synthetic;
mod update;

pub use algorithm::{KMeansFit, fit, sample_rows};

/// The dot-product kernel [`fit`] uses for f32 data on this CPU in this build: `avx512`,
/// `avx2+fma`, or `matmul` (candle's matrix product: other CPUs, or `DNC_KMEANS_MATMUL=1`).
/// Benchmarks record it beside their timings.
pub fn assignment_kernel() -> &'static str {
    dots::Simd::detect().map_or("matmul", dots::Simd::name)
}
pub use assign::Assignment;
pub use error::{KMeansError, ParamError};
pub use io::{ClusterAssignments, SizesSummary};
pub use metrics::{ari, cluster_sizes, inertia, majority_vote_accuracy, nmi};
pub use model::KMeansModel;
pub use params::{DEFAULT_CHUNK_BYTES, InitMethod, KMeansConfig, Metric};
pub use synthetic::gaussian_blobs;
pub use update::{CentroidSums, centroids_of};
