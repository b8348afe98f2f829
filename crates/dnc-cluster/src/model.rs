//! A fitted k-means model: centroids and how they were obtained; assigns new data.

use crate::assign::{Assignment, Centroids, assign};
use crate::error::{KMeansError, Result};
use crate::params::{DEFAULT_CHUNK_BYTES, Metric};
use crate::points::{Points, matrix_dims};
use candle_core::{DType, Tensor};

/// Centroids plus the facts of the fit that produced them.
#[derive(Debug, Clone)]
pub struct KMeansModel {
    /// `[K, D]` f32 on the device of the fitted data; unit rows in cosine mode.
    pub centroids: Tensor,
    /// The metric the centroids were fitted with and that [`predict`](Self::predict) uses.
    pub metric: Metric,
    /// Sum of squared distances of the fitted points to their centroids (see [`Assignment`]);
    /// NaN for a model built from given centroids.
    pub inertia: f64,
    /// Lloyd iterations (centroid updates) of the kept restart.
    pub n_iter: usize,
    /// Whether the kept restart met the tolerance before `max_iter`.
    pub converged: bool,
    /// Inertia of the kept restart at each assignment step: entry `t` is measured against the
    /// centroids after `t` updates, so the list has `n_iter + 1` entries and never increases.
    /// With `sample_size` set, these are inertias on the sample.
    pub inertia_history: Vec<f64>,
    /// Memory budget per chunk of rows in [`predict`](Self::predict).
    pub chunk_bytes: usize,
}

impl KMeansModel {
    /// A model from given centroids (e.g. loaded from disk), ready to predict.
    ///
    /// In cosine mode the rows are normalised; a zero row is an error.
    ///
    /// # Shapes
    /// `centroids`: `[K, D]`, any float dtype.
    pub fn from_centroids(centroids: &Tensor, metric: Metric) -> Result<Self> {
        let (k, d) = matrix_dims(centroids)?;
        let mut host: Vec<f32> = centroids.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        if let Some(i) = host.iter().position(|v| !v.is_finite()) {
            return Err(KMeansError::InvalidCentroids(format!(
                "centroid {}, column {} holds {}",
                i / d,
                i % d,
                host[i]
            )));
        }
        if metric == Metric::Cosine {
            for (j, row) in host.chunks_exact_mut(d).enumerate() {
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                if norm < 1e-12 {
                    return Err(KMeansError::InvalidCentroids(format!(
                        "centroid {j} is a zero vector and has no direction for cosine k-means"
                    )));
                }
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Ok(Self {
            centroids: Tensor::from_vec(host, (k, d), centroids.device())?,
            metric,
            inertia: f64::NAN,
            n_iter: 0,
            converged: false,
            inertia_history: Vec::new(),
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        })
    }

    /// Number of clusters K.
    pub fn n_clusters(&self) -> usize {
        self.centroids.dims()[0]
    }

    /// Feature dimension D.
    pub fn dim(&self) -> usize {
        self.centroids.dims()[1]
    }

    /// The nearest centroid of every row of `data`.
    ///
    /// # Shapes
    /// `data`: `[N, D]` on any device, any float dtype → `N` labels.
    pub fn predict(&self, data: &Tensor) -> Result<Vec<u32>> {
        Ok(self.predict_with_distances(data)?.labels)
    }

    /// The nearest centroid of every row of `data` and the squared distance to it.
    ///
    /// # Shapes
    /// `data`: `[N, D]` → `N` labels and distances.
    pub fn predict_with_distances(&self, data: &Tensor) -> Result<Assignment> {
        let (_, d) = matrix_dims(data)?;
        if d != self.dim() {
            return Err(KMeansError::DimensionMismatch {
                expected: self.dim(),
                got: d,
            });
        }
        let points = Points::prepare(data, self.metric, self.chunk_bytes, self.n_clusters())?;
        let host: Vec<f32> = self
            .centroids
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let centroids = Centroids::new(host, self.n_clusters(), &points)?;
        Ok(assign(&points, &centroids)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn predicts_from_given_centroids_and_checks_dims() {
        let dev = Device::Cpu;
        let c = Tensor::new(&[[2f32, 0.0], [0.0, 3.0]], &dev).unwrap();
        let model = KMeansModel::from_centroids(&c, Metric::Cosine).unwrap();
        assert_eq!(
            model.centroids.to_vec2::<f32>().unwrap(),
            vec![vec![1.0, 0.0], vec![0.0, 1.0]]
        );
        assert!(model.inertia.is_nan());
        // Cosine ignores scale: [10, 1] is nearer [1, 0]; [-1, 5] nearer [0, 1] with
        // ‖x̂ − c‖² = 2 − 2·5/√26.
        let x = Tensor::new(&[[10f64, 1.0], [-1.0, 5.0]], &dev).unwrap();
        let a = model.predict_with_distances(&x).unwrap();
        assert_eq!(a.labels, vec![0, 1]);
        assert!((f64::from(a.distances[1]) - (2.0 - 10.0 / 26f64.sqrt())).abs() < 1e-6);
        let wide = Tensor::zeros((4, 3), DType::F32, &dev).unwrap();
        let err = model.predict(&wide).unwrap_err().to_string();
        assert_eq!(
            err,
            "dimension mismatch: the centroids have D = 2, the data has D = 3"
        );
        let nan = Tensor::new(&[[0f32, 1.0], [f32::NAN, 1.0]], &dev).unwrap();
        let err = KMeansModel::from_centroids(&nan, Metric::Euclidean).unwrap_err();
        assert!(
            err.to_string().contains("centroid 1, column 0 holds NaN"),
            "{err}"
        );
        let zero = Tensor::new(&[[0f32, 0.0], [1.0, 1.0]], &dev).unwrap();
        assert!(KMeansModel::from_centroids(&zero, Metric::Cosine).is_err());
        let euclid = KMeansModel::from_centroids(&zero, Metric::Euclidean).unwrap();
        assert_eq!(euclid.predict(&x).unwrap(), vec![1, 1]);
    }
}
