//! Per-cluster sums of the points, accumulated chunk by chunk during the assignment pass.
//!
//! No `[N, K]` one-hot matrix is ever built. On the CPU, rows read in place are added into
//! per-thread column blocks (f32 partial sums over at least `8·K` rows, flushed into f64 totals):
//! a chunk's rows are grouped by cluster, and each cluster's rows summed in registers before
//! one add to its partial sum. On other devices, one `index_add` per chunk accumulates on the
//! device. Either way the order of the additions depends on the chunks only, not on the threads.

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

    /// The sums under a new assignment, updated from those under the `previous` one: on the host
    /// a pass then reads only the rows whose cluster changed (after a few Lloyd iterations, a few
    /// percent of them). Elsewhere, and for off-centre Euclidean data, every row is summed again:
    /// there each row is large against its distance to the mean, and the f32 rounding a cluster's
    /// total carries would outgrow the cluster once it shrinks.
    pub(crate) fn from_previous(points: &Points, k: usize, previous: Previous) -> Result<Self> {
        if !points.host || points.centre.is_some() {
            return Self::new(points, k);
        }
        assert_eq!(previous.labels.len(), points.n, "previous labels");
        assert_eq!(previous.sums.len(), k * points.d, "previous sums");
        let mut h = HostSums::new(k, points.d);
        for b in &mut h.blocks {
            for j in 0..k {
                let row = &previous.sums[j * points.d + b.c0..j * points.d + b.c0 + b.w];
                b.total[j * b.w..(j + 1) * b.w].copy_from_slice(row);
            }
        }
        h.previous = Some(previous.labels);
        Ok(Self::Host(h))
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
                let previous = h.previous.take();
                let old = previous.as_deref().map(|p| &p[start..start + len]);
                let done = points
                    .with_host(|x| h.add_rows(&x[start * d..(start + len) * d], labels, old, inv));
                h.previous = previous;
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

/// An assignment's labels with the per-cluster sums under it (row-major `[K * D]`, f64), from
/// which the next pass's sums are updated ([`Sums::from_previous`]).
pub(crate) struct Previous {
    pub(crate) labels: Vec<u32>,
    pub(crate) sums: Vec<f64>,
}

/// Column blocks of the sums, one per thread.
pub(crate) struct HostSums {
    k: usize,
    d: usize,
    blocks: Vec<ColumnBlock>,
    pending_rows: usize,
    flush_every: usize,
    /// Every point's label under the assignment the totals started from, if any.
    previous: Option<Vec<u32>>,
}

struct ColumnBlock {
    c0: usize,
    w: usize,
    total: Vec<f64>,
    part: Vec<f32>,
}

/// The rows of one [`HostSums::add_rows`] call grouped by cluster: `order[starts[j]..starts[j + 1]]`
/// are the rows of cluster `j`, ascending.
struct ByCluster {
    starts: Vec<usize>,
    order: Vec<u32>,
}

impl ByCluster {
    /// A counting sort of the rows by label: every row with its own label.
    fn new(labels: &[u32], k: usize) -> Self {
        Self::of_pairs(labels.iter().enumerate().map(|(i, &l)| (i as u32, l)), k)
    }

    /// A counting sort of `(row, label)` pairs given in increasing row order.
    fn of_pairs(pairs: impl Iterator<Item = (u32, u32)> + Clone, k: usize) -> Self {
        let mut starts = vec![0usize; k + 1];
        for (_, l) in pairs.clone() {
            starts[l as usize + 1] += 1;
        }
        for j in 0..k {
            starts[j + 1] += starts[j];
        }
        let mut next = starts.clone();
        let mut order = vec![0u32; starts[k]];
        for (i, l) in pairs {
            order[next[l as usize]] = i;
            next[l as usize] += 1;
        }
        Self { starts, order }
    }

    /// The rows whose label changed from `old` to `new`, grouped by their new label (`0`) and by
    /// their old one (`1`).
    fn moved(old: &[u32], new: &[u32], k: usize) -> (Self, Self) {
        let moved = old
            .iter()
            .zip(new)
            .enumerate()
            .filter(|(_, (o, n))| o != n)
            .map(|(i, (&o, &n))| (i as u32, o, n));
        (
            Self::of_pairs(moved.clone().map(|(i, _, n)| (i, n)), k),
            Self::of_pairs(moved.map(|(i, o, _)| (i, o)), k),
        )
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The rows of cluster `j`.
    fn rows(&self, j: usize) -> &[u32] {
        &self.order[self.starts[j]..self.starts[j + 1]]
    }
}

/// Columns summed at once in registers (8 AVX2 vectors).
const GROUP: usize = 64;

impl ColumnBlock {
    /// Adds this block's columns of rows (row-major `[len * d]`) to their clusters' partial
    /// sums: per cluster and group of [`GROUP`] columns, the rows `entering` the cluster are
    /// summed in registers, those `leaving` it subtracted, and the result added once to the
    /// partial sum, which is thus read and written once per call rather than once per row.
    fn add_rows(&mut self, x: &[f32], d: usize, moves: &Moves, weights: Option<&[f32]>) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { self.add_rows_avx2(x, d, moves, weights) };
        }
        self.add_rows_portable(x, d, moves, weights);
    }

    /// The same loop compiled with AVX2, for 8 lanes per add instead of SSE2's 4.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn add_rows_avx2(&mut self, x: &[f32], d: usize, moves: &Moves, weights: Option<&[f32]>) {
        self.add_rows_portable(x, d, moves, weights);
    }

    #[inline(always)]
    fn add_rows_portable(&mut self, x: &[f32], d: usize, moves: &Moves, weights: Option<&[f32]>) {
        let (c0, w) = (self.c0, self.w);
        let k = moves.entering.starts.len() - 1;
        for j in 0..k {
            let entering = moves.entering.rows(j);
            let leaving = moves.leaving.as_ref().map_or(&[][..], |l| l.rows(j));
            if entering.is_empty() && leaving.is_empty() {
                continue;
            }
            let part = &mut self.part[j * w..(j + 1) * w];
            let mut g0 = 0;
            while g0 < w {
                let width = (w - g0).min(GROUP);
                let mut acc = [0f32; GROUP];
                if width == GROUP {
                    let at = c0 + g0;
                    sum_group(&mut acc, x, d, at, entering, weights, 1.0);
                    sum_group(&mut acc, x, d, at, leaving, weights, -1.0);
                } else {
                    let acc = &mut acc[..width];
                    for (rows, sign) in [(entering, 1.0), (leaving, -1.0)] {
                        for &i in rows {
                            let i = i as usize;
                            let src = &x[i * d + c0 + g0..i * d + c0 + g0 + width];
                            let s = weights.map_or(sign, |wt| sign * wt[i]);
                            acc.iter_mut().zip(src).for_each(|(a, v)| *a += v * s);
                        }
                    }
                }
                for (p, a) in part[g0..g0 + width].iter_mut().zip(acc) {
                    *p += a;
                }
                g0 += width;
            }
        }
    }
}

/// Adds `sign ×` (weight ×) columns `at..at + GROUP` of the given rows to `acc`, in row order;
/// unweighted additions (`sign = 1`) are plain adds.
#[inline(always)]
fn sum_group(
    acc: &mut [f32; GROUP],
    x: &[f32],
    d: usize,
    at: usize,
    rows: &[u32],
    weights: Option<&[f32]>,
    sign: f32,
) {
    for &i in rows {
        let i = i as usize;
        let src: &[f32; GROUP] = x[i * d + at..][..GROUP].try_into().expect("a whole group");
        match weights {
            Some(wt) => {
                let s = sign * wt[i];
                for l in 0..GROUP {
                    acc[l] += src[l] * s;
                }
            }
            None if sign == 1.0 => {
                for l in 0..GROUP {
                    acc[l] += src[l];
                }
            }
            None => {
                for l in 0..GROUP {
                    acc[l] -= src[l];
                }
            }
        }
    }
}

/// The rows one [`HostSums::add_rows`] call adds to each cluster (`entering`) and, when the
/// sums are updated from a previous assignment's, subtracts from it (`leaving`).
struct Moves {
    entering: ByCluster,
    leaving: Option<ByCluster>,
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
            previous: None,
        }
    }

    /// Adds rows (row-major `[len * D]`) with their labels and optional weights. With the
    /// rows' `previous` labels (sums started from that assignment's, [`Sums::from_previous`]),
    /// only the rows whose label changed are read: added to their new cluster, subtracted from
    /// their old one.
    fn add_rows(
        &mut self,
        x: &[f32],
        labels: &[u32],
        previous: Option<&[u32]>,
        weights: Option<&[f32]>,
    ) {
        let d = self.d;
        let moves = match previous {
            None => Moves {
                entering: ByCluster::new(labels, self.k),
                leaving: None,
            },
            Some(old) => {
                let (entering, leaving) = ByCluster::moved(old, labels, self.k);
                if entering.is_empty() {
                    return;
                }
                Moves {
                    entering,
                    leaving: Some(leaving),
                }
            }
        };
        self.blocks
            .par_iter_mut()
            .for_each(|b| b.add_rows(x, d, &moves, weights));
        // The rows actually added (all of them, or those that moved).
        self.pending_rows += moves.entering.order.len();
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
        // 3000 rows of small integers and 2 clusters, weighted by powers of two or not: every
        // partial sum is exact in f32, so the result must equal a plain f64 sum whatever the
        // flushes, column blocks and register groups (D = 70: within one group; D = 200: whole
        // groups and a tail).
        let (n, k) = (3000, 2);
        for d in [70, 200] {
            let x: Vec<f32> = (0..n * d).map(|i| ((i * 7919) % 13) as f32).collect();
            let labels: Vec<u32> = (0..n).map(|i| (i % 3 == 0) as u32).collect();
            let weights: Vec<f32> = (0..n).map(|i| [0.5, 1.0, 2.0][i % 3]).collect();
            for weighted in [false, true] {
                let mut h = HostSums::new(k, d);
                for start in (0..n).step_by(700) {
                    let end = (start + 700).min(n);
                    let w = weighted.then(|| &weights[start..end]);
                    h.add_rows(&x[start * d..end * d], &labels[start..end], None, w);
                }
                let got = h.finish();
                let mut expected = vec![0f64; k * d];
                for i in 0..n {
                    let w = if weighted { f64::from(weights[i]) } else { 1.0 };
                    for c in 0..d {
                        expected[labels[i] as usize * d + c] += f64::from(x[i * d + c]) * w;
                    }
                }
                assert_eq!(got, expected, "d {d} weighted {weighted}");
            }
        }
    }

    #[test]
    fn sums_updated_from_a_previous_assignment_equal_fresh_sums() {
        // Small integers (exact in f32 and f64), 3 clusters, in chunks of 40 rows: the sums
        // under new labels, updated from the sums under old ones through the rows that moved,
        // must equal the sums taken afresh. The new labels move about a third of the rows,
        // none in the first 40 (a chunk with nothing to read) and all in the last 40.
        // D = 1100: column blocks of whole register groups and a tail, up to 16 threads.
        let (n, d, k) = (300, 1100, 3);
        let values: Vec<f32> = (0..n * d)
            .map(|i| ((i * 31 + i / d * 7) % 11) as f32)
            .collect();
        let x = Tensor::from_vec(values, (n, d), &Device::Cpu).unwrap();
        let p = Points::prepare(&x, Metric::Euclidean, 1 << 20, k).unwrap();
        let old: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
        let new: Vec<u32> = (0..n)
            .map(|i| match i {
                0..40 => old[i],
                260.. => (old[i] + 1) % 3,
                _ if i % 3 == 0 => ((i / 3) % 3) as u32,
                _ => old[i],
            })
            .collect();
        let previous = Previous {
            labels: old.clone(),
            sums: cluster_sums(&p, &old, k).unwrap(),
        };
        let mut updated = Sums::from_previous(&p, k, previous).unwrap();
        for (start, len) in p.chunks_of(40) {
            let chunk = p.chunk(start, len).unwrap();
            updated
                .add_chunk(&p, start, &chunk, &new[start..start + len])
                .unwrap();
        }
        assert_eq!(p.chunks_of(40).count(), 8);
        assert_eq!(
            updated.finish().unwrap(),
            cluster_sums(&p, &new, k).unwrap()
        );
    }
}
