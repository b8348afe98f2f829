//! A `[N, D]` data tensor prepared for k-means: checked, with its row norms, cut into chunks.
//!
//! The data is never copied as a whole. Every pass walks it in chunks of rows sized from the
//! memory budget; on the CPU, f32 contiguous data is also read in place by the host kernels.

use crate::error::{KMeansError, Result};
use crate::params::Metric;
use candle_core::{DType, Storage, Tensor};
use rayon::prelude::*;

/// Norms below this are clamped before dividing (as `dnc_core::l2_normalize` does).
const NORM_EPS: f32 = 1e-12;

/// Most bytes of data rows the host kernels take per chunk.
const HOST_CHUNK_BYTES: usize = 16 << 20;

/// Rows handled by one rayon task in the host kernels.
pub(crate) const HOST_TASK_ROWS: usize = 256;

/// The data as the algorithm sees it.
pub(crate) struct Points {
    data: Tensor,
    pub(crate) n: usize,
    pub(crate) d: usize,
    pub(crate) metric: Metric,
    /// `‖x_i − μ‖²`, with `μ` the centre when there is one, else `‖x_i‖²`.
    pub(crate) sq_norms: Vec<f32>,
    /// In Euclidean mode, the data's mean when the data sits farther from the origin than its
    /// spread: distances are then computed relative to it (see `Centroids`).
    pub(crate) centre: Option<Vec<f32>>,
    /// Mean per-feature variance of the points as the algorithm sees them (the scale of `tol`).
    pub(crate) mean_variance: f64,
    /// `1 / ‖x_i‖` in cosine mode (what normalises a row), `None` in Euclidean mode.
    pub(crate) inv_norms: Option<Vec<f32>>,
    pub(crate) chunk_rows: usize,
    /// CPU, f32 and contiguous: the host kernels can read the rows in place.
    pub(crate) host: bool,
}

/// `(N, D)` of a data tensor, or the error that says why it is not a usable `[N, D]` matrix.
pub(crate) fn matrix_dims(data: &Tensor) -> Result<(usize, usize)> {
    match data.dims() {
        &[n, d] if n > 0 && d > 0 => Ok((n, d)),
        dims => Err(KMeansError::BadShape {
            shape: dims.to_vec(),
        }),
    }
}

/// Runs `f` on the elements of a CPU, f32, contiguous tensor, read in place; `None` otherwise.
pub(crate) fn with_host_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return None;
    };
    let slice = cpu.as_slice::<f32>().ok()?;
    let (start, end) = layout.contiguous_offsets()?;
    Some(f(&slice[start..end]))
}

impl Points {
    /// Checks the shape and values of `data` and computes its row norms and moments (two or, for
    /// off-centre Euclidean data, three chunked passes).
    ///
    /// `columns` is the widest distance block a pass will compute (K, or the k-means++ trials).
    pub(crate) fn prepare(
        data: &Tensor,
        metric: Metric,
        chunk_bytes: usize,
        columns: usize,
    ) -> Result<Self> {
        let (n, d) = matrix_dims(data)?;
        let host = data.device().is_cpu() && data.dtype() == DType::F32 && data.is_contiguous();
        // Per row: the [rows, K] f32 block and up to two temporaries of it, plus up to two
        // f32 copies of the row (dtype conversion, cosine weighting) on the tensor path.
        let row_bytes = if host {
            4 * columns.max(1)
        } else {
            4 * (3 * columns.max(1) + 2 * d)
        };
        let mut chunk_rows = chunk_bytes / row_bytes;
        if host {
            // Blocks that stay in cache between the matmul and the argmin run faster.
            chunk_rows = chunk_rows
                .min(HOST_CHUNK_BYTES / (4 * d))
                .max(HOST_TASK_ROWS.min(chunk_rows));
        }
        let chunk_rows = chunk_rows.clamp(1, n);
        let mut points = Self {
            data: data.clone(),
            n,
            d,
            metric,
            sq_norms: Vec::new(),
            centre: None,
            mean_variance: 0.0,
            inv_norms: None,
            chunk_rows,
            host,
        };
        points.sq_norms = points.row_sq_norms(None)?;
        points.check_finite()?;
        if metric == Metric::Cosine {
            let inv = points.sq_norms.iter().map(|s| 1.0 / s.sqrt().max(NORM_EPS));
            points.inv_norms = Some(inv.collect());
        }
        points.moments()?;
        Ok(points)
    }

    /// Mean variance per feature and, for off-centre Euclidean data, the centre and the
    /// centred norms.
    fn moments(&mut self) -> Result<()> {
        let n = self.n as f64;
        let sums = crate::sums::cluster_sums(self, &vec![0; self.n], 1)?;
        let mean: Vec<f64> = sums.iter().map(|s| s / n).collect();
        let weighted = |i: usize| f64::from(self.sq_norms[i]) * f64::from(self.weight(i)).powi(2);
        let second_moment = (0..self.n).map(weighted).sum::<f64>() / n;
        let mean_sq: f64 = mean.iter().map(|m| m * m).sum();
        let total_variance = (second_moment - mean_sq).max(0.0);
        self.mean_variance = total_variance / self.d as f64;
        if self.metric == Metric::Euclidean && mean_sq > total_variance {
            let centre: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
            self.sq_norms = self.row_sq_norms(Some(&centre))?;
            self.centre = Some(centre);
        }
        Ok(())
    }

    /// The same points restricted to `rows`, given in increasing order (a copy of those rows only).
    pub(crate) fn subset(&self, rows: &[usize]) -> Result<Self> {
        let data = self.gather_rows(rows)?;
        let pick = |v: &[f32]| rows.iter().map(|&i| v[i]).collect::<Vec<f32>>();
        let host = data.device().is_cpu() && data.dtype() == DType::F32;
        Ok(Self {
            n: rows.len(),
            d: self.d,
            metric: self.metric,
            sq_norms: pick(&self.sq_norms),
            centre: self.centre.clone(),
            mean_variance: self.mean_variance,
            inv_norms: self.inv_norms.as_deref().map(pick),
            chunk_rows: self.chunk_rows.min(rows.len()),
            host,
            data,
        })
    }

    /// The device the data lives on.
    pub(crate) fn device(&self) -> &candle_core::Device {
        self.data.device()
    }

    /// Copies the given rows (in increasing order), chunk by chunk when the data is a strided view.
    fn gather_rows(&self, rows: &[usize]) -> candle_core::Result<Tensor> {
        let dev = self.data.device();
        let select = |x: &Tensor, ids: Vec<u32>| {
            let n = ids.len();
            x.index_select(&Tensor::from_vec(ids, n, dev)?, 0)
        };
        if self.data.is_contiguous() {
            return select(&self.data, rows.iter().map(|&i| i as u32).collect());
        }
        let mut parts = Vec::new();
        let mut next = 0;
        for (start, len) in self.chunks() {
            let end = next + rows[next..].partition_point(|&i| i < start + len);
            if end > next {
                let local = rows[next..end]
                    .iter()
                    .map(|&i| (i - start) as u32)
                    .collect();
                let chunk = self.data.narrow(0, start, len)?.contiguous()?;
                parts.push(select(&chunk, local)?);
            }
            next = end;
        }
        Tensor::cat(&parts, 0)
    }

    /// `(start, len)` of every chunk of rows, in order.
    pub(crate) fn chunks(&self) -> impl Iterator<Item = (usize, usize)> + use<> {
        self.chunks_of(self.chunk_rows)
    }

    /// `(start, len)` of every chunk of at most `rows` rows (and at most the memory budget's).
    pub(crate) fn chunks_of(&self, rows: usize) -> impl Iterator<Item = (usize, usize)> + use<> {
        let (n, step) = (self.n, rows.clamp(1, self.chunk_rows));
        (0..n).step_by(step).map(move |s| (s, step.min(n - s)))
    }

    /// Rows `start..start + len` as a contiguous f32 tensor (a view when the data already is one).
    ///
    /// # Shapes
    /// → `[len, D]`.
    pub(crate) fn chunk(&self, start: usize, len: usize) -> candle_core::Result<Tensor> {
        self.data
            .narrow(0, start, len)?
            .contiguous()?
            .to_dtype(DType::F32)
    }

    /// Runs `f` on all rows in place (row-major `[N * D]`), when the host kernels apply.
    pub(crate) fn with_host<R>(&self, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
        if self.host {
            with_host_f32(&self.data, f)
        } else {
            None
        }
    }

    /// Point `i` as the algorithm sees it: the raw row, or the normalised row in cosine mode.
    pub(crate) fn point(&self, i: usize) -> candle_core::Result<Vec<f32>> {
        let row: Vec<f32> = self.chunk(i, 1)?.flatten_all()?.to_vec1()?;
        Ok(match &self.inv_norms {
            Some(inv) => row.iter().map(|v| v * inv[i]).collect(),
            None => row,
        })
    }

    /// Weight of row `i` in the centroid sums (`1 / ‖x_i‖` in cosine mode).
    pub(crate) fn weight(&self, i: usize) -> f32 {
        self.inv_norms.as_ref().map_or(1.0, |w| w[i])
    }

    /// `‖x_i − centre‖²` (or `‖x_i‖²`) of every row, accumulated in f64 on the host path.
    fn row_sq_norms(&self, centre: Option<&[f32]>) -> candle_core::Result<Vec<f32>> {
        let d = self.d;
        let zeros = vec![0f32; d];
        let mu = centre.unwrap_or(&zeros);
        let host = self.with_host(|x| {
            let mut out = vec![0f32; self.n];
            let tasks = out.par_chunks_mut(HOST_TASK_ROWS).enumerate();
            tasks.for_each(|(b, out)| {
                let rows = &x[b * HOST_TASK_ROWS * d..];
                for (r, o) in out.iter_mut().enumerate() {
                    let row = rows[r * d..(r + 1) * d].iter().zip(mu);
                    *o = row.map(|(v, m)| f64::from(v - m).powi(2)).sum::<f64>() as f32;
                }
            });
            out
        });
        if let Some(norms) = host {
            return Ok(norms);
        }
        let mu = Tensor::from_slice(mu, (1, d), self.device())?;
        let mut out = Vec::with_capacity(self.n);
        for (start, len) in self.chunks() {
            let x = self.chunk(start, len)?.broadcast_sub(&mu)?;
            out.extend(x.sqr()?.sum(1)?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// A non-finite squared norm means a NaN, an infinity or an overflow in that row: find it.
    fn check_finite(&self) -> Result<()> {
        let Some(row) = self.sq_norms.iter().position(|s| !s.is_finite()) else {
            return Ok(());
        };
        let values: Vec<f32> = self.chunk(row, 1)?.flatten_all()?.to_vec1()?;
        let (col, value) = values
            .iter()
            .copied()
            .enumerate()
            .find(|(_, v)| !v.is_finite())
            .or_else(|| {
                let big = values.iter().map(|v| v.abs()).enumerate();
                big.max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(c, _)| (c, values[c]))
            })
            .unwrap_or((0, f32::NAN));
        Err(KMeansError::NonFinite { row, col, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn tensor(rows: &[[f32; 3]]) -> Tensor {
        Tensor::from_vec(rows.concat(), (rows.len(), 3), &Device::Cpu).unwrap()
    }

    #[test]
    fn norms_and_chunks_on_both_paths() {
        let x = tensor(&[[3.0, 4.0, 0.0], [1.0, 2.0, 2.0], [0.0, 0.0, 0.0]]);
        // 4 bytes × 2 columns per row on the host path: a 20-byte budget gives chunks of 2 rows.
        let p = Points::prepare(&x, Metric::Cosine, 20, 2).unwrap();
        assert!(p.host);
        assert_eq!(p.sq_norms, vec![25.0, 9.0, 0.0]);
        assert_eq!(p.chunks().collect::<Vec<_>>(), vec![(0, 2), (2, 1)]);
        let inv = p.inv_norms.as_ref().unwrap();
        assert!((inv[0] - 0.2).abs() < 1e-7 && (inv[1] - 1.0 / 3.0).abs() < 1e-7);
        assert_eq!(p.point(0).unwrap(), vec![0.6, 0.8, 0.0]);
        // A non-contiguous f64 view takes the tensor path and gives the same norms.
        let t = x
            .to_dtype(DType::F64)
            .unwrap()
            .t()
            .unwrap()
            .contiguous()
            .unwrap()
            .t()
            .unwrap();
        // 4 × (3·2 + 2·3) = 48 bytes per row on the tensor path: one row per chunk.
        let q = Points::prepare(&t, Metric::Euclidean, 50, 2).unwrap();
        assert_eq!(q.chunk_rows, 1);
        assert!(!q.host && p.centre.is_none());
        // Euclidean: μ = [4/3, 2, 2/3], ‖μ‖² = 56/9 exceeds the total variance 102/9 − 56/9 =
        // 46/9, so the data is centred: ‖x − μ‖² = 65/9, 17/9, 56/9.
        let mu = q.centre.clone().unwrap();
        assert!((mu[0] - 4.0 / 3.0).abs() < 1e-6 && mu[1] == 2.0);
        let centred = [65.0 / 9.0, 17.0 / 9.0, 56.0 / 9.0];
        for (a, b) in q.sq_norms.iter().zip(centred) {
            assert!((a - b).abs() < 1e-5, "{:?}", q.sq_norms);
        }
        assert!(
            (q.mean_variance - 46.0 / 27.0).abs() < 1e-9,
            "{}",
            q.mean_variance
        );
        // The same data on the host path gives the same centred norms.
        let h = Points::prepare(&x, Metric::Euclidean, 1 << 20, 2).unwrap();
        assert!(h.host);
        for (a, b) in h.sq_norms.iter().zip(&q.sq_norms) {
            assert!((a - b).abs() < 1e-5);
        }
        assert_eq!(q.point(1).unwrap(), vec![1.0, 2.0, 2.0]);
        let s = q.subset(&[0, 2]).unwrap();
        assert_eq!((s.n, s.centre.clone()), (2, q.centre.clone()));
        assert_eq!(s.sq_norms, vec![q.sq_norms[0], q.sq_norms[2]]);
        assert_eq!(s.point(0).unwrap(), vec![3.0, 4.0, 0.0]);
        let s = p.subset(&[1, 2]).unwrap();
        assert_eq!(s.point(0).unwrap(), vec![1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0]);
    }

    #[test]
    fn centred_data_stays_uncentred_near_the_origin() {
        // Mean [0.5, 0]: ‖μ‖² = 0.25 is below the total variance 1.5 − 0.25 = 1.25 (0.625 per feature).
        let x = Tensor::new(&[[1f32, 1.0], [0.0, -1.0]], &Device::Cpu).unwrap();
        let p = Points::prepare(&x, Metric::Euclidean, 1 << 20, 2).unwrap();
        assert!(p.centre.is_none());
        assert_eq!(p.sq_norms, vec![2.0, 1.0]);
        assert!((p.mean_variance - 0.625).abs() < 1e-12);
    }

    #[test]
    fn bad_data_is_located() {
        let x = tensor(&[[1.0, 2.0, 3.0], [4.0, f32::NAN, 6.0]]);
        let err = Points::prepare(&x, Metric::Euclidean, 1024, 2)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "data row 1, column 1 holds NaN: NaN, infinite or overflowing values cannot be clustered"
        );
        let x = tensor(&[
            [1.0, 2.0, 3.0],
            [4.0, 5.0, 6.0],
            [7.0, f32::NEG_INFINITY, 2e30],
        ]);
        let err = Points::prepare(&x, Metric::Cosine, 1024, 2).err().unwrap();
        assert!(
            err.to_string().contains("row 2, column 1 holds -inf"),
            "{err}"
        );
        let x = tensor(&[[1.0, 2.0, 3.0], [4.0, 5.0, 3e19]]);
        let err = Points::prepare(&x, Metric::Euclidean, 1024, 2)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("row 1, column 2 holds 30000000000000000000"),
            "{err}"
        );
        let empty = Tensor::zeros((0, 3), DType::F32, &Device::Cpu).unwrap();
        let err = Points::prepare(&empty, Metric::Cosine, 1024, 2)
            .err()
            .unwrap();
        assert!(err.to_string().contains("got shape [0, 3]"), "{err}");
        let flat = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
        let err = Points::prepare(&flat, Metric::Cosine, 1024, 2)
            .err()
            .unwrap();
        assert!(err.to_string().contains("got shape [3]"), "{err}");
    }
}
