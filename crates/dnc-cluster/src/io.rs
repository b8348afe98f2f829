//! Cluster assignments on disk: a safetensors file (centroids, the cluster of every image, the
//! image ids) that PyTorch users can open, and a JSON summary of the cluster sizes.
//!
//! The safetensors file holds `centroids` (f32 `[K, D]`), `assignments` (u32 `[N]`) and
//! `image_ids` (i64 `[N]`), with metadata `format = "dnc-cluster"`, `version = "1"` and
//! `metric`. Both files are written to a temporary sibling and renamed, so a reader never sees a
//! half-written file.

use crate::algorithm::KMeansFit;
use crate::error::{KMeansError, Result};
use crate::params::Metric;
use candle_core::{DType, Device, Tensor};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

const FORMAT: &str = "dnc-cluster";
const VERSION: &str = "1";

/// Which cluster every image belongs to, and the centroids.
#[derive(Debug, Clone)]
pub struct ClusterAssignments {
    /// The dataset's id of each assigned image.
    pub image_ids: Vec<u64>,
    /// The cluster of each image, in `0..K`.
    pub labels: Vec<u32>,
    /// `[K, D]` f32.
    pub centroids: Tensor,
    pub metric: Metric,
}

impl ClusterAssignments {
    /// Checks that ids and labels pair up and that every label names a centroid.
    pub fn new(
        image_ids: Vec<u64>,
        labels: Vec<u32>,
        centroids: Tensor,
        metric: Metric,
    ) -> Result<Self> {
        let (k, _) = crate::points::matrix_dims(&centroids)?;
        if image_ids.len() != labels.len() {
            return Err(KMeansError::Labels(format!(
                "{} image ids for {} labels",
                image_ids.len(),
                labels.len()
            )));
        }
        crate::metrics::cluster_sizes(&labels, k)?;
        let centroids = centroids.to_dtype(DType::F32)?;
        Ok(Self {
            image_ids,
            labels,
            centroids,
            metric,
        })
    }

    /// The assignments of a fit, paired with the ids of the rows that were clustered.
    pub fn from_fit(fit: &KMeansFit, image_ids: Vec<u64>) -> Result<Self> {
        let centroids = fit.model.centroids.clone();
        Self::new(
            image_ids,
            fit.assignments.clone(),
            centroids,
            fit.model.metric,
        )
    }

    /// Number of clusters K.
    pub fn n_clusters(&self) -> usize {
        self.centroids.dims()[0]
    }

    /// Number of images in each cluster.
    pub fn sizes(&self) -> Vec<usize> {
        crate::update::counts(&self.labels, self.n_clusters())
    }

    /// The ids of the images in `cluster`, in file order (what an expert trains on).
    pub fn members(&self, cluster: u32) -> Vec<u64> {
        let pairs = self.image_ids.iter().zip(&self.labels);
        pairs
            .filter(|(_, l)| **l == cluster)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Writes the safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let (k, d) = self.centroids.dims2()?;
        let centroids: Vec<f32> = self.centroids.flatten_all()?.to_vec1()?;
        let centroids = le_bytes(&centroids, |v| v.to_le_bytes());
        let labels = le_bytes(&self.labels, |v| v.to_le_bytes());
        let ids: Vec<i64> = self.image_ids.iter().map(|&i| i as i64).collect();
        if let Some(big) = self.image_ids.iter().find(|&&i| i > i64::MAX as u64) {
            return Err(KMeansError::Labels(format!(
                "image id {big} does not fit in an i64"
            )));
        }
        let ids = le_bytes(&ids, |v| v.to_le_bytes());
        let n = self.labels.len();
        let tensors = [
            ("centroids", view(path, Dtype::F32, vec![k, d], &centroids)?),
            ("assignments", view(path, Dtype::U32, vec![n], &labels)?),
            ("image_ids", view(path, Dtype::I64, vec![n], &ids)?),
        ];
        let metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("version".to_string(), VERSION.to_string()),
            ("metric".to_string(), metric_name(self.metric).to_string()),
        ]);
        safetensors::serialize_to_file(tensors, Some(metadata), path).map_err(|e| match e {
            safetensors::SafeTensorError::IoError(source) => KMeansError::Io {
                path: path.to_path_buf(),
                source,
            },
            other => format_error(path, other),
        })
    }

    /// Reads a file written by [`save`](Self::save); the centroids are put on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| KMeansError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let metric = read_metadata(path, &bytes)?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| format_error(path, e))?;
        let (shape, raw) = tensor_bytes(path, &st, "centroids", Dtype::F32)?;
        let [k, d] = shape[..] else {
            let reason = format!("centroids have shape {shape:?}, expected [K, D]");
            return Err(format_error(path, reason));
        };
        let centroids = Tensor::from_vec(decode(raw, f32::from_le_bytes), (k, d), device)?;
        let (_, raw) = tensor_bytes(path, &st, "assignments", Dtype::U32)?;
        let labels = decode(raw, u32::from_le_bytes);
        let (_, raw) = tensor_bytes(path, &st, "image_ids", Dtype::I64)?;
        let ids = decode(raw, i64::from_le_bytes);
        if let Some(neg) = ids.iter().find(|&&i| i < 0) {
            return Err(format_error(path, format!("negative image id {neg}")));
        }
        let ids = ids.into_iter().map(|i| i as u64).collect();
        Self::new(ids, labels, centroids, metric).map_err(|e| format_error(path, e))
    }
}

/// Checks the header's `format` and returns its `metric`.
fn read_metadata(path: &Path, bytes: &[u8]) -> Result<Metric> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format_error(path, e))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let format = meta.get("format").map(String::as_str);
    if format != Some(FORMAT) {
        let reason = format!("metadata format is {format:?}, expected {FORMAT:?}");
        return Err(format_error(path, reason));
    }
    match meta.get("metric").map(String::as_str) {
        Some("cosine") => Ok(Metric::Cosine),
        Some("euclidean") => Ok(Metric::Euclidean),
        other => Err(format_error(path, format!("unknown metric {other:?}"))),
    }
}

/// Shape and little-endian bytes of tensor `name`, which must have `dtype`.
fn tensor_bytes<'a>(
    path: &Path,
    st: &SafeTensors<'a>,
    name: &str,
    dtype: Dtype,
) -> Result<(Vec<usize>, &'a [u8])> {
    let t = st.tensor(name).map_err(|e| format_error(path, e))?;
    if t.dtype() != dtype {
        let reason = format!("{name} has dtype {:?}, expected {dtype:?}", t.dtype());
        return Err(format_error(path, reason));
    }
    Ok((t.shape().to_vec(), t.data()))
}

/// Little-endian values of `B` bytes each.
fn decode<T, const B: usize>(raw: &[u8], f: impl Fn([u8; B]) -> T) -> Vec<T> {
    raw.chunks_exact(B)
        .map(|b| f(b.try_into().unwrap_or([0; B])))
        .collect()
}

/// The sizes of the clusters of a fit, as people and scripts read them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizesSummary {
    pub n_clusters: usize,
    pub n_points: usize,
    pub metric: Metric,
    pub sizes: Vec<usize>,
    /// `None` when unknown (centroids given rather than fitted).
    pub inertia: Option<f64>,
    pub n_iter: usize,
    pub converged: bool,
}

impl SizesSummary {
    pub fn from_fit(fit: &KMeansFit) -> Self {
        let m = &fit.model;
        Self {
            n_clusters: m.n_clusters(),
            n_points: fit.assignments.len(),
            metric: m.metric,
            sizes: fit.sizes.clone(),
            inertia: m.inertia.is_finite().then_some(m.inertia),
            n_iter: m.n_iter,
            converged: m.converged,
        }
    }

    /// Writes pretty-printed JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| format_error(path, e))?;
        write_atomic(path, &json)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| KMeansError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| format_error(path, e))
    }
}

fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "cosine",
        Metric::Euclidean => "euclidean",
    }
}

fn le_bytes<T: Copy, const B: usize>(values: &[T], f: impl Fn(T) -> [u8; B]) -> Vec<u8> {
    values.iter().flat_map(|&v| f(v)).collect()
}

fn view<'a>(
    path: &Path,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: &'a [u8],
) -> Result<TensorView<'a>> {
    TensorView::new(dtype, shape, bytes).map_err(|e| format_error(path, e))
}

fn format_error(path: &Path, reason: impl std::fmt::Display) -> KMeansError {
    KMeansError::Format {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Writes `bytes` to a temporary sibling of `path`, then renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| KMeansError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests;
