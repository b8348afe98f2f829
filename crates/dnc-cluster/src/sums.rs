//! Per-cluster sums of the points, accumulated chunk by chunk during the assignment pass.
//!
//! No `[N, K]` one-hot matrix is ever built. On the CPU, rows read in place are added into
//! per-thread column blocks (f32 partial sums over at least `8·K` rows, flushed into f64 totals);
//! on other devices, one `index_add` per chunk accumulates on the device.

use crate::points::Points;
use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;

/// Narrowest column block given to one thread.
const MIN_BLOCK_COLS: usize = 32;

/// Most bytes of one column block's f32 partial sums (`K × width`).
const PART_BYTES: usize = 128 << 10;

/// Sums of the points as the algorithm sees them (normalised rows in cosine mode) per cluster.
pub(crate) enum Sums {
    Host(HostSums),
    /// `[K, D]` f32 on the data's device.
    Device(Tensor),
}

impl Sums {
    /// Empty sums for `k` clusters, of the kind that suits `points`.
    pub(crate) fn new(points: &Points, k: usize) -> Result<Self> {
        Ok(if points.host {
            Self::Host(HostSums::new(k, points.d))
        } else {
            Self::Device(Tensor::zeros((k, points.d), DType::F32, points.device())?)
        })
    }

    /// Adds rows `start..start + len`, given as the f32 chunk tensor the pass already holds, with
    /// their labels.
    ///
    /// # Shapes
    /// `chunk`: `[len, D]`, `labels`: `len`.
    pub(crate) fn add_chunk(
        &mut self,
        points: &Points,
        start: usize,
        chunk: &Tensor,
        labels: &[u32],
    ) -> Result<()> {
        let len = labels.len();
        let inv = points.inv_norms.as_deref().map(|v| &v[start..start + len]);
        match self {
            Self::Host(h) => {
                let d = points.d;
                let done =
                    points.with_host(|x| h.add_rows(&x[start * d..(start + len) * d], labels, inv));
                if done.is_none() {
                    candle_core::bail!("host sums need CPU f32 contiguous data")
                }
            }
            Self::Device(acc) => {
                let dev = chunk.device();
                let x = match inv {
                    Some(inv) => chunk.broadcast_mul(&Tensor::from_slice(inv, (len, 1), dev)?)?,
                    None => chunk.clone(),
                };
                let ids = Tensor::from_slice(labels, len, dev)?;
                *acc = acc.index_add(&ids, &x, 0)?;
            }
        }
        Ok(())
    }

    /// The sums, row-major `[K * D]`, in f64.
    pub(crate) fn finish(self) -> Result<Vec<f64>> {
        match self {
            Self::Host(h) => Ok(h.finish()),
            Self::Device(acc) => {
                let acc: Vec<f32> = acc.flatten_all()?.to_vec1()?;
                Ok(acc.into_iter().map(f64::from).collect())
            }
        }
    }
}

/// Sums of the given rows per cluster, in one chunked pass.
pub(crate) fn cluster_sums(points: &Points, labels: &[u32], k: usize) -> Result<Vec<f64>> {
    let mut sums = Sums::new(points, k)?;
    for (start, len) in points.chunks() {
        let chunk = points.chunk(start, len)?;
        sums.add_chunk(points, start, &chunk, &labels[start..start + len])?;
    }
    sums.finish()
}

/// Column blocks of the sums, one per thread.
pub(crate) struct HostSums {
    k: usize,
    d: usize,
    blocks: Vec<ColumnBlock>,
    pending_rows: usize,
    flush_every: usize,
}

struct ColumnBlock {
    c0: usize,
    w: usize,
    total: Vec<f64>,
    part: Vec<f32>,
}

impl ColumnBlock {
    /// Adds this block's columns of every row (row-major `[len * d]`) to its cluster's partial sum.
    fn add_rows(&mut self, x: &[f32], d: usize, labels: &[u32], weights: Option<&[f32]>) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { self.add_rows_avx2(x, d, labels, weights) };
        }
        self.add_rows_portable(x, d, labels, weights);
    }

    /// The same loop compiled with AVX2, for 8 lanes per add instead of SSE2's 4.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn add_rows_avx2(&mut self, x: &[f32], d: usize, labels: &[u32], weights: Option<&[f32]>) {
        self.add_rows_portable(x, d, labels, weights);
    }

    #[inline(always)]
    fn add_rows_portable(&mut self, x: &[f32], d: usize, labels: &[u32], weights: Option<&[f32]>) {
        let (c0, w) = (self.c0, self.w);
        for (i, &label) in labels.iter().enumerate() {
            let src = &x[i * d + c0..i * d + c0 + w];
            let dst = &mut self.part[label as usize * w..(label as usize + 1) * w];
            match weights {
                Some(wt) => dst.iter_mut().zip(src).for_each(|(a, v)| *a += v * wt[i]),
                None => dst.iter_mut().zip(src).for_each(|(a, v)| *a += v),
            }
        }
    }
}

impl HostSums {
    fn new(k: usize, d: usize) -> Self {
        let n_blocks = rayon::current_num_threads()
            .min(d.div_ceil(MIN_BLOCK_COLS))
            .max(1);
        // At least one block per thread, and blocks narrow enough that their f32 partial sums
        // stay in L2 while the rows stream past (wide blocks at large K·D missed it).
        let cache_width = (PART_BYTES / (4 * k.max(1))).next_multiple_of(16);
        let width = d.div_ceil(n_blocks).min(cache_width.max(MIN_BLOCK_COLS));
        let blocks = (0..d)
            .step_by(width)
            .map(|c0| {
                let w = width.min(d - c0);
                ColumnBlock {
                    c0,
                    w,
                    total: vec![0.0; k * w],
                    part: vec![0.0; k * w],
                }
            })
            .collect();
        // Flushing costs K·w adds per block: at most an eighth of the row adds in between.
        Self {
            k,
            d,
            blocks,
            pending_rows: 0,
            flush_every: (8 * k).max(1024),
        }
    }

    /// Adds rows (row-major `[len * D]`) with their labels and optional weights.
    fn add_rows(&mut self, x: &[f32], labels: &[u32], weights: Option<&[f32]>) {
        let d = self.d;
        self.blocks
            .par_iter_mut()
            .for_each(|b| b.add_rows(x, d, labels, weights));
        self.pending_rows += labels.len();
        if self.pending_rows >= self.flush_every {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.blocks.par_iter_mut().for_each(|b| {
            for (t, p) in b.total.iter_mut().zip(b.part.iter_mut()) {
                *t += f64::from(*p);
                *p = 0.0;
            }
        });
        self.pending_rows = 0;
    }

    fn finish(mut self) -> Vec<f64> {
        self.flush();
        let (k, d) = (self.k, self.d);
        let mut sums = vec![0f64; k * d];
        for b in &self.blocks {
            for j in 0..k {
                sums[j * d + b.c0..j * d + b.c0 + b.w]
                    .copy_from_slice(&b.total[j * b.w..(j + 1) * b.w]);
            }
        }
        sums
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Metric;
    use candle_core::Device;

    fn points(rows: &[[f32; 2]], metric: Metric, dtype: DType) -> Points {
        let x = Tensor::from_vec(rows.concat(), (rows.len(), 2), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        Points::prepare(&x, metric, 24, 3).unwrap()
    }

    #[test]
    fn sums_agree_on_both_paths_and_match_hand_values() {
        let rows = [[1.0, 2.0], [3.0, 4.0], [0.0, 5.0], [-1.0, 1.0]];
        let labels = [0, 2, 0, 2];
        // Euclidean: cluster 0 = [1,2] + [0,5] = [1,7]; cluster 1 empty; cluster 2 = [2,5].
        for dtype in [DType::F32, DType::F64] {
            let p = points(&rows, Metric::Euclidean, dtype);
            assert_eq!(p.host, dtype == DType::F32);
            let s = cluster_sums(&p, &labels, 3).unwrap();
            assert_eq!(s, vec![1.0, 7.0, 0.0, 0.0, 2.0, 5.0], "{dtype:?}");
        }
        // Cosine: normalised rows; cluster 2 = [0.6, 0.8] + [−1, 1]/√2.
        let h = std::f64::consts::FRAC_1_SQRT_2;
        for dtype in [DType::F32, DType::F64] {
            let p = points(&rows, Metric::Cosine, dtype);
            let s = cluster_sums(&p, &labels, 3).unwrap();
            assert!((s[4] - (0.6 - h)).abs() < 1e-6 && (s[5] - (0.8 + h)).abs() < 1e-6);
            assert!((s[1] - (2.0 / 5f64.sqrt() + 1.0)).abs() < 1e-6, "{s:?}");
        }
    }

    #[test]
    fn host_sums_flush_and_split_columns_exactly() {
        // 3000 rows of small integers over 70 columns and 2 clusters: every partial sum is exact
        // in f32, so the result must equal a plain f64 sum whatever the flushes and blocks.
        let (n, d, k) = (3000, 70, 2);
        let x: Vec<f32> = (0..n * d).map(|i| ((i * 7919) % 13) as f32).collect();
        let labels: Vec<u32> = (0..n).map(|i| (i % 3 == 0) as u32).collect();
        let mut h = HostSums::new(k, d);
        for start in (0..n).step_by(700) {
            let end = (start + 700).min(n);
            h.add_rows(&x[start * d..end * d], &labels[start..end], None);
        }
        let got = h.finish();
        let mut expected = vec![0f64; k * d];
        for i in 0..n {
            for c in 0..d {
                expected[labels[i] as usize * d + c] += f64::from(x[i * d + c]);
            }
        }
        assert_eq!(got, expected);
    }
}
