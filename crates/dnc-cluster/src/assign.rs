//! Nearest-centroid assignment, chunk by chunk: the dot products of a chunk's rows with every
//! centroid, then an argmin.
//!
//! Squared distances come from `‖x‖² − 2·x·cᵀ + ‖c‖²`, so the only `[rows, K]` block alive at
//! any time is the current chunk's. On a CPU with AVX2 or AVX-512, f32 data is read in place by
//! the [`crate::dots`] kernels a block of rows at a time, each block's argmin taken while it is
//! in cache; elsewhere the products are one matmul per chunk on the data's device.
//!
//! In cosine mode the centroids are unit vectors and the data is never normalised: the nearest
//! centroid of `x` is the one with the largest `x·c`, and `‖x/‖x‖ − c‖² = 2 − 2·x·c/‖x‖`.

use crate::dots::{DotCentroids, Simd, row_dots};
use crate::params::Metric;
use crate::points::{HOST_TASK_ROWS, Points, with_host_f32};
use crate::sums::{Previous, Sums};
use candle_core::{Result, Tensor};
use rayon::prelude::*;

/// Centroids in the forms the kernels use.
///
/// When the points are centred on their mean `μ` (Euclidean data far from the origin), the
/// tensor holds `c' = c − μ` and `‖x − c‖² = ‖x − μ‖² + b − 2·x·c'` with the bias
/// `b = ‖c'‖² + 2·μ·c'`: the products `x·c'` are then small and f32 keeps the distances
/// accurate. Without a centre, `c' = c` and `b = ‖c‖²`.
pub(crate) struct Centroids {
    pub(crate) k: usize,
    pub(crate) d: usize,
    /// Row-major `[K * D]`, in the data's own coordinates.
    pub(crate) host: Vec<f32>,
    /// `[K, D]` f32 `c'` on the data's device.
    pub(crate) tensor: Tensor,
    /// `c'` on the host, laid out for the [`crate::dots`] kernels; `None` for data off the host,
    /// which the kernels never read.
    shifted: Option<DotCentroids>,
    /// `b_j`.
    pub(crate) bias: Vec<f32>,
    /// What the nearest centroid minimises beside `−x·c'_j`: `b_j / 2` in Euclidean mode (half
    /// of `b_j − 2·x·c'_j`), 0 in cosine mode (the largest dot product wins).
    argmin_offset: Vec<f32>,
}

impl Centroids {
    /// Centroids (row-major `[K * D]`) for use against `points`.
    pub(crate) fn new(host: Vec<f32>, k: usize, points: &Points) -> Result<Self> {
        let d = points.d;
        let (shifted, bias): (Vec<f32>, Vec<f32>) = match &points.centre {
            Some(mu) => {
                let shifted: Vec<f32> = host
                    .chunks_exact(d)
                    .flat_map(|c| c.iter().zip(mu).map(|(a, m)| a - m))
                    .collect();
                let bias = shifted
                    .chunks_exact(d)
                    .map(|c| c.iter().zip(mu).map(|(a, m)| a * a + 2.0 * m * a).sum())
                    .collect();
                (shifted, bias)
            }
            None => {
                let bias = host
                    .chunks_exact(d)
                    .map(|c| c.iter().map(|v| v * v).sum())
                    .collect();
                (host.clone(), bias)
            }
        };
        let tensor = Tensor::from_slice(&shifted, (k, d), points.device())?;
        let argmin_offset = match points.metric {
            Metric::Euclidean => bias.iter().map(|s| 0.5 * s).collect(),
            Metric::Cosine => vec![0.0; k],
        };
        Ok(Self {
            k,
            d,
            host,
            tensor,
            shifted: points.host.then(|| DotCentroids::new(shifted, k, d)),
            bias,
            argmin_offset,
        })
    }
}

/// The cluster of every point and its squared distance to that cluster's centroid.
///
/// In cosine mode the distance is between the L2-normalised point and the unit centroid,
/// `2 − 2·cos`, so that inertia keeps its meaning of a sum of squared distances.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Cluster index of each point, in `0..K`.
    pub labels: Vec<u32>,
    /// Squared distance of each point to its centroid.
    pub distances: Vec<f32>,
}

impl Assignment {
    /// Sum of the squared distances, accumulated in f64.
    pub fn inertia(&self) -> f64 {
        crate::metrics::inertia(&self.distances)
    }
}

/// Squared distance from a dot product `x·c'`, in the given metric (`x_sq = ‖x − μ‖²`,
/// `bias` = `b`, see [`Centroids`]).
#[inline]
fn sq_distance(metric: Metric, dot: f32, x_sq: f32, inv_norm: f32, bias: f32) -> f32 {
    match metric {
        Metric::Euclidean => (x_sq + bias - 2.0 * dot).max(0.0),
        Metric::Cosine => (2.0 - 2.0 * dot * inv_norm).max(0.0),
    }
}

/// Assigns every point to its nearest centroid.
pub(crate) fn assign(points: &Points, c: &Centroids) -> Result<Assignment> {
    assign_pass(points, c, None)
}

/// Assigns every point and, in the same pass over the data, sums the points per new cluster
/// (row-major `[K * D]`, f64). With the `previous` assignment and its sums, the sums are updated
/// from those, reading only the points that changed cluster where the data is on the host.
pub(crate) fn assign_and_sum(
    points: &Points,
    c: &Centroids,
    previous: Option<Previous>,
) -> Result<(Assignment, Vec<f64>)> {
    let mut sums = match previous {
        Some(p) => Sums::from_previous(points, c.k, p)?,
        None => Sums::new(points, c.k)?,
    };
    let assignment = assign_pass(points, c, Some(&mut sums))?;
    Ok((assignment, sums.finish()?))
}

fn assign_pass(points: &Points, c: &Centroids, sums: Option<&mut Sums>) -> Result<Assignment> {
    assign_pass_with(points, c, Simd::detect(), sums)
}

/// [`assign_pass`] with the given dot-product kernel (`None`: matmul).
fn assign_pass_with(
    points: &Points,
    c: &Centroids,
    simd: Option<Simd>,
    mut sums: Option<&mut Sums>,
) -> Result<Assignment> {
    let mut labels = vec![0u32; points.n];
    let mut distances = vec![0f32; points.n];
    let ct = c.tensor.t()?;
    // The tensor argmin's `[1, K]` bias, made on first use (never on the kernel path).
    let mut bias_row = None;
    let simd = simd.filter(|_| points.host);
    // The kernel reads rows in place, so its chunks can be small enough to be still in cache
    // when the sums read them again; a matmul wants large chunks.
    let chunk_rows = match simd {
        Some(simd) => kernel_chunk_rows(points.d, simd),
        None => usize::MAX,
    };
    for (start, len) in points.chunks_of(chunk_rows) {
        let chunk = points.chunk(start, len)?;
        let (l, d) = (
            &mut labels[start..start + len],
            &mut distances[start..start + len],
        );
        let in_place = simd.is_some_and(|simd| kernel_nearest(points, c, simd, start, l, d));
        if !in_place {
            let dots = chunk.matmul(&ct)?;
            if !(points.host && host_nearest(points, c, &dots, start, l, d)) {
                if bias_row.is_none() {
                    bias_row = Some(Tensor::from_slice(&c.bias, (1, c.k), c.tensor.device())?);
                }
                let bias_row = bias_row.as_ref().expect("made just above");
                tensor_nearest(points, c, bias_row, &dots, start, l, d)?;
            }
        }
        if let Some(sums) = sums.as_deref_mut() {
            sums.add_chunk(points, start, &chunk, l)?;
        }
    }
    Ok(Assignment { labels, distances })
}

/// Bytes of data rows per [`row_dots`] block: with one tile of centroids, well inside L2.
const DOT_BLOCK_BYTES: usize = 256 << 10;

/// Most bytes of data rows per chunk on the kernel path: small enough to be in L2 or L3 when
/// the per-cluster sums read the chunk after its argmin (16 MiB chunks came back from memory).
const KERNEL_CHUNK_BYTES: usize = 4 << 20;

/// Rows `start..start + labels.len()` through the [`row_dots`] kernel, read in place, in blocks
/// of rows on rayon tasks; `false` if the data is not on the host.
fn kernel_nearest(
    points: &Points,
    c: &Centroids,
    simd: Simd,
    start: usize,
    labels: &mut [u32],
    distances: &mut [f32],
) -> bool {
    let Some(shifted) = &c.shifted else {
        return false;
    };
    let (d, k) = (points.d, c.k);
    let block_rows = kernel_block_rows(d, simd);
    points
        .with_host(|x| {
            let tasks = labels.par_chunks_mut(block_rows);
            let tasks = tasks.zip(distances.par_chunks_mut(block_rows));
            tasks.enumerate().for_each(|(t, (labels, distances))| {
                let first = start + t * block_rows;
                let rows = &x[first * d..(first + labels.len()) * d];
                let mut dots = vec![0f32; labels.len() * k];
                row_dots(simd, rows, shifted, &mut dots);
                nearest_in_block(points, c, &dots, first, labels, distances);
            });
        })
        .is_some()
}

/// Rows per [`row_dots`] call: a block of about [`DOT_BLOCK_BYTES`], in whole register tiles.
/// A block of 16 rows in tiles of 3 ended in a 1-row tile, which has 5 loads per 4 multiply-adds
/// where a full one has 7 per 12: at `D = 4096`, `K = 100` blocks of 15 ran the AVX2 kernel 7%
/// faster on one core (79–82 GFLOP/s against 74–75).
fn kernel_block_rows(d: usize, simd: Simd) -> usize {
    let rows = (DOT_BLOCK_BYTES / (4 * d)).clamp(4, HOST_TASK_ROWS);
    whole_units(rows, simd.tile_rows(d))
}

/// Rows per chunk on the kernel path: about [`KERNEL_CHUNK_BYTES`], in whole blocks.
fn kernel_chunk_rows(d: usize, simd: Simd) -> usize {
    let rows = (KERNEL_CHUNK_BYTES / (4 * d)).max(HOST_TASK_ROWS);
    whole_units(rows, kernel_block_rows(d, simd))
}

/// `rows` rounded down to a multiple of `unit`, and at least one `unit`.
fn whole_units(rows: usize, unit: usize) -> usize {
    (rows - rows % unit).max(unit)
}

/// Fused argmin over a CPU `[len, K]` block read in place; `false` if the block is not on the host.
fn host_nearest(
    points: &Points,
    c: &Centroids,
    dots: &Tensor,
    start: usize,
    labels: &mut [u32],
    distances: &mut [f32],
) -> bool {
    let k = c.k;
    with_host_f32(dots, |dots| {
        let tasks = labels.par_chunks_mut(HOST_TASK_ROWS);
        let tasks = tasks.zip(distances.par_chunks_mut(HOST_TASK_ROWS));
        tasks.enumerate().for_each(|(t, (labels, distances))| {
            let first = t * HOST_TASK_ROWS;
            let dots = &dots[first * k..(first + labels.len()) * k];
            nearest_in_block(points, c, dots, start + first, labels, distances);
        });
    })
    .is_some()
}

/// Labels and distances of rows `first..first + labels.len()` from their `[len, K]` dot products,
/// the argmin in AVX2 registers where the CPU has AVX2.
fn nearest_in_block(
    points: &Points,
    c: &Centroids,
    dots: &[f32],
    first: usize,
    labels: &mut [u32],
    distances: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { nearest_in_block_avx2(points, c, dots, first, labels, distances) };
    }
    nearest_in_block_with(
        points,
        c,
        dots,
        first,
        labels,
        distances,
        argmin_offset_minus,
    );
}

/// The loop compiled with AVX2, so that the AVX2 argmin is inlined into it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn nearest_in_block_avx2(
    points: &Points,
    c: &Centroids,
    dots: &[f32],
    first: usize,
    labels: &mut [u32],
    distances: &mut [f32],
) {
    nearest_in_block_with(points, c, dots, first, labels, distances, |o, r| {
        // SAFETY: this function runs only where the CPU has AVX2.
        unsafe { argmin_offset_minus_avx2(o, r) }
    });
}

/// [`nearest_in_block`] with `argmin(offset, row)` picking each label.
#[inline(always)]
fn nearest_in_block_with(
    points: &Points,
    c: &Centroids,
    dots: &[f32],
    first: usize,
    labels: &mut [u32],
    distances: &mut [f32],
    argmin: impl Fn(&[f32], &[f32]) -> usize,
) {
    let (k, metric) = (c.k, points.metric);
    for (r, (label, dist)) in labels.iter_mut().zip(distances).enumerate() {
        let i = first + r;
        let row = &dots[r * k..(r + 1) * k];
        let best = argmin(&c.argmin_offset, row);
        *label = best as u32;
        *dist = sq_distance(
            metric,
            row[best],
            points.sq_norms[i],
            points.weight(i),
            c.bias[best],
        );
    }
}

/// Lanes of the branch-free argmin, so that the compiler keeps them in SIMD registers.
const LANES: usize = 8;

/// First index of the smallest `offset[j] − row[j]` (finite inputs).
#[inline(always)]
fn argmin_offset_minus(offset: &[f32], row: &[f32]) -> usize {
    let mut best = [f32::INFINITY; LANES];
    let mut index = [0u32; LANES];
    let mut rows = row.chunks_exact(LANES);
    let mut offsets = offset.chunks_exact(LANES);
    for (b, (r, o)) in (&mut rows).zip(&mut offsets).enumerate() {
        for l in 0..LANES {
            let s = o[l] - r[l];
            let better = s < best[l];
            best[l] = if better { s } else { best[l] };
            index[l] = if better {
                (b * LANES + l) as u32
            } else {
                index[l]
            };
        }
    }
    let tail = row.len() - rows.remainder().len();
    for (l, (r, o)) in rows.remainder().iter().zip(offsets.remainder()).enumerate() {
        let s = o - r;
        if s < best[l] {
            (best[l], index[l]) = (s, (tail + l) as u32);
        }
    }
    // Smallest score, and among equal scores the smallest index.
    let mut pick = 0;
    for l in 1..LANES {
        if best[l] < best[pick] || (best[l] == best[pick] && index[l] < index[pick]) {
            pick = l;
        }
    }
    index[pick] as usize
}

/// [`argmin_offset_minus`] in AVX2 registers: the same result, ties included.
///
/// The running minimum is `vminps` (which keeps the earlier score on ties, as `<` does), so
/// the loop-carried chain is one instruction; the lanes' winners are merged with shuffles.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn argmin_offset_minus_avx2(offset: &[f32], row: &[f32]) -> usize {
    use std::arch::x86_64::*;
    let len = row.len();
    assert_eq!(offset.len(), len, "argmin operands");
    let mut best = _mm256_set1_ps(f32::INFINITY);
    let mut index = _mm256_setzero_si256();
    let mut lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let step = _mm256_set1_epi32(LANES as i32);
    let mut update = |s: __m256, lane: __m256i| {
        let better = _mm256_cmp_ps::<_CMP_LT_OQ>(s, best);
        index = _mm256_blendv_epi8(index, lane, _mm256_castps_si256(better));
        best = _mm256_min_ps(s, best);
    };
    let full = len - len % LANES;
    let mut j = 0;
    while j < full {
        // SAFETY: `j + LANES <= len` for both slices.
        let (o, r) = unsafe {
            (
                _mm256_loadu_ps(offset.as_ptr().add(j)),
                _mm256_loadu_ps(row.as_ptr().add(j)),
            )
        };
        update(_mm256_sub_ps(o, r), lane);
        lane = _mm256_add_epi32(lane, step);
        j += LANES;
    }
    if full < len {
        // The last `len − full` scores; lanes past the end score +∞ and never win.
        let mask = _mm256_cmpgt_epi32(
            _mm256_set1_epi32((len - full) as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        // SAFETY: the masked loads read only elements `full..len`.
        let (o, r) = unsafe {
            (
                _mm256_maskload_ps(offset.as_ptr().add(full), mask),
                _mm256_maskload_ps(row.as_ptr().add(full), mask),
            )
        };
        let s = _mm256_blendv_ps(
            _mm256_set1_ps(f32::INFINITY),
            _mm256_sub_ps(o, r),
            _mm256_castsi256_ps(mask),
        );
        update(s, lane);
    }
    // The smallest score in every lane, then the smallest index among the lanes that hold it.
    let mut m = _mm256_min_ps(best, _mm256_permute2f128_ps::<1>(best, best));
    m = _mm256_min_ps(m, _mm256_shuffle_ps::<0b0100_1110>(m, m));
    m = _mm256_min_ps(m, _mm256_shuffle_ps::<0b1011_0001>(m, m));
    let tied = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_EQ_OQ>(best, m));
    let mut i = _mm256_blendv_epi8(_mm256_set1_epi32(-1), index, tied);
    i = _mm256_min_epu32(i, _mm256_permute2x128_si256::<1>(i, i));
    i = _mm256_min_epu32(i, _mm256_shuffle_epi32::<0b0100_1110>(i));
    i = _mm256_min_epu32(i, _mm256_shuffle_epi32::<0b1011_0001>(i));
    _mm256_cvtsi256_si32(i) as u32 as usize
}

/// The same argmin with tensor ops on the block's device; only `len` labels and values come back.
fn tensor_nearest(
    points: &Points,
    c: &Centroids,
    bias_row: &Tensor,
    dots: &Tensor,
    start: usize,
    labels: &mut [u32],
    distances: &mut [f32],
) -> Result<()> {
    let (idx, best_dot) = match points.metric {
        Metric::Euclidean => {
            let scores = dots.affine(-2.0, 0.0)?.broadcast_add(bias_row)?;
            let idx = scores.argmin_keepdim(1)?;
            (idx.squeeze(1)?, dots.gather(&idx, 1)?.squeeze(1)?)
        }
        Metric::Cosine => {
            let idx = dots.argmax_keepdim(1)?;
            (idx.squeeze(1)?, dots.gather(&idx, 1)?.squeeze(1)?)
        }
    };
    labels.copy_from_slice(&idx.to_vec1::<u32>()?);
    let best_dot = best_dot.to_vec1::<f32>()?;
    for (r, (dist, dot)) in distances.iter_mut().zip(best_dot).enumerate() {
        let i = start + r;
        let c_sq_i = c.bias[labels[r] as usize];
        *dist = sq_distance(
            points.metric,
            dot,
            points.sq_norms[i],
            points.weight(i),
            c_sq_i,
        );
    }
    Ok(())
}

/// Squared distances from every point to each of a few centres, row-major `[N * M]`.
///
/// Used by k-means++, where `M` is the handful of candidates of one step. The dot products come
/// from the same kernel as [`assign`]'s, so both give a point the same distance to a centre.
pub(crate) fn distances_to(points: &Points, centres: &Centroids) -> Result<Vec<f32>> {
    distances_to_with(points, centres, Simd::detect())
}

/// [`distances_to`] with the given dot-product kernel (`None`: matmul).
fn distances_to_with(points: &Points, centres: &Centroids, simd: Option<Simd>) -> Result<Vec<f32>> {
    let m = centres.k;
    let ct = centres.tensor.t()?;
    let mut out = Vec::with_capacity(points.n * m);
    for (start, len) in points.chunks() {
        let dots = match simd.and_then(|simd| kernel_dots(points, centres, simd, start, len)) {
            Some(dots) => dots,
            None => points
                .chunk(start, len)?
                .matmul(&ct)?
                .flatten_all()?
                .to_vec1()?,
        };
        for (r, row) in dots.chunks_exact(m).enumerate() {
            let i = start + r;
            let (x_sq, w) = (points.sq_norms[i], points.weight(i));
            let dist = |(j, &dot): (usize, &f32)| {
                sq_distance(points.metric, dot, x_sq, w, centres.bias[j])
            };
            out.extend(row.iter().enumerate().map(dist));
        }
    }
    Ok(out)
}

/// The `[len, K]` dot products of rows `start..start + len` with `c'` through the [`row_dots`]
/// kernel; `None` if the data is not on the host.
fn kernel_dots(
    points: &Points,
    c: &Centroids,
    simd: Simd,
    start: usize,
    len: usize,
) -> Option<Vec<f32>> {
    let shifted = c.shifted.as_ref()?;
    let (d, k) = (points.d, c.k);
    let block_rows = kernel_block_rows(d, simd);
    points.with_host(|x| {
        let mut dots = vec![0f32; len * k];
        let tasks = dots.par_chunks_mut(block_rows * k).enumerate();
        tasks.for_each(|(t, out)| {
            let first = start + t * block_rows;
            let rows = &x[first * d..(first + out.len() / k) * d];
            row_dots(simd, rows, shifted, out);
        });
        dots
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::points::Points;
    use candle_core::{DType, Device};

    /// Brute force: every point against every centroid, in f64.
    fn brute_force(x: &[Vec<f32>], c: &[Vec<f32>], metric: Metric) -> (Vec<u32>, Vec<f64>) {
        let unit = |v: &[f32]| {
            let n = v.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
            v.iter().map(|a| f64::from(*a) / n).collect::<Vec<f64>>()
        };
        let mut labels = Vec::new();
        let mut dists = Vec::new();
        for p in x {
            let p: Vec<f64> = match metric {
                Metric::Cosine => unit(p),
                Metric::Euclidean => p.iter().map(|a| f64::from(*a)).collect(),
            };
            let d2 = |q: &Vec<f32>| -> f64 {
                p.iter()
                    .zip(q)
                    .map(|(a, b)| (a - f64::from(*b)).powi(2))
                    .sum()
            };
            let (j, d) = c
                .iter()
                .map(d2)
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            labels.push(j as u32);
            dists.push(d);
        }
        (labels, dists)
    }

    fn random(rows: usize, cols: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = dnc_core::SeededRng::new(seed);
        (0..rows)
            .map(|_| (0..cols).map(|_| rng.normal() as f32).collect())
            .collect()
    }

    /// Every kernel this machine runs: the matmul (`None`) and the SIMD ones.
    fn kernels() -> Vec<Option<Simd>> {
        let mut all = vec![None];
        all.extend(Simd::available().into_iter().map(Some));
        all
    }

    fn check(metric: Metric, dtype: DType, chunk_bytes: usize, d: usize, simd: Option<Simd>) {
        let (n, k) = (300, 9);
        let case = format!("{metric:?} {dtype:?} {chunk_bytes} d {d} {simd:?}");
        let x = random(n, d, 1);
        let mut c = random(k, d, 2);
        if metric == Metric::Cosine {
            for row in &mut c {
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        let data = Tensor::new(x.clone(), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let points = Points::prepare(&data, metric, chunk_bytes, k).unwrap();
        let flat: Vec<f32> = c.concat();
        let centroids = Centroids::new(flat, k, &points).unwrap();
        let mut sums = Sums::new(&points, k).unwrap();
        let got = assign_pass_with(&points, &centroids, simd, Some(&mut sums)).unwrap();
        let (labels, dists) = brute_force(&x, &c, metric);
        assert_eq!(got.labels, labels, "{case}");
        for (a, b) in got.distances.iter().zip(&dists) {
            assert!(
                (f64::from(*a) - b).abs() < 1e-4 * (1.0 + b),
                "{case}: {a} vs {b}"
            );
        }
        // The sums taken during the pass are those of a separate pass over the labels.
        let separate = crate::sums::cluster_sums(&points, &labels, k).unwrap();
        for (a, b) in sums.finish().unwrap().iter().zip(&separate) {
            assert!(
                (a - b).abs() < 1e-9 * (1.0 + b.abs()),
                "{case}: sums {a} vs {b}"
            );
        }
        // distances_to gives every point the same distance to its centroid as the assignment.
        let all = distances_to_with(&points, &centroids, simd).unwrap();
        for (i, row) in all.chunks_exact(k).enumerate() {
            assert_eq!(row[labels[i] as usize], got.distances[i], "{case}");
        }
    }

    #[test]
    fn branch_free_argmin_finds_the_first_minimum() {
        for len in [1, 5, 8, 13, 24, 37, 100] {
            let mut rng = dnc_core::SeededRng::new(len as u64);
            let row: Vec<f32> = (0..len).map(|_| rng.below(5) as f32).collect();
            let offset: Vec<f32> = (0..len).map(|_| rng.below(3) as f32).collect();
            let scores: Vec<f32> = offset.iter().zip(&row).map(|(o, r)| o - r).collect();
            let min = scores.iter().copied().fold(f32::INFINITY, f32::min);
            let first = scores.iter().position(|&s| s == min).unwrap();
            assert_eq!(argmin_offset_minus(&offset, &row), first, "{scores:?}");
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2; the slices have the same length.
                let got = unsafe { argmin_offset_minus_avx2(&offset, &row) };
                assert_eq!(got, first, "AVX2 {scores:?}");
            }
        }
    }

    #[test]
    fn matches_brute_force_on_every_path() {
        for metric in [Metric::Euclidean, Metric::Cosine] {
            // Host kernels (f32) and tensor kernel (f64 input), whole and in chunks of a few rows.
            for dtype in [DType::F32, DType::F64] {
                for chunk_bytes in [1 << 20, 200] {
                    // D below one SIMD register and above two (centroids as columns), and
                    // above `BROADCAST_MAX_D` (as rows, with a tail).
                    for d in [7, 37, crate::dots::BROADCAST_MAX_D + 7] {
                        for simd in kernels() {
                            check(metric, dtype, chunk_bytes, d, simd);
                        }
                    }
                }
            }
        }
    }
}
