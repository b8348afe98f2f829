//! Dot products of data rows with every centroid, in AVX-512 or AVX2 + FMA registers.
//!
//! The host assignment pass calls [`row_dots`] on a block of rows small enough to stay in L2,
//! then takes the argmin of that block at once. Unlike a matrix-product library, nothing is
//! packed: rows and centroids are read where they lie, with the SIMD lanes along `D`, and every
//! dot product ends in one horizontal sum. At `D = 4096` packing the rows cost as much as a tenth
//! of a k-means pass, since each row is used against only K centroids.
//!
//! Each product is summed in the same order wherever its row falls in a block or a tile, so the
//! result does not depend on the block sizes or the number of threads.

/// The instruction set a [`row_dots`] call runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Simd {
    /// 16 lanes, tiles of 4 rows × 6 centroids (24 of the 32 registers accumulate).
    Avx512,
    /// 8 lanes, tiles of 3 rows × 4 centroids (12 of the 16 registers accumulate).
    Avx2,
}

impl Simd {
    /// The widest kernel this CPU runs and this build allows: AVX-512 only with the crate's
    /// `avx512` feature, so a build without it runs what an AVX2 machine runs. `None` where
    /// neither applies (other architectures, CPUs without AVX2 + FMA): the caller then uses a
    /// matrix product. `DNC_KMEANS_MATMUL=1` asks for the matrix product everywhere (for A/B
    /// timings).
    pub(crate) fn detect() -> Option<Self> {
        if std::env::var_os("DNC_KMEANS_MATMUL").is_some_and(|v| v == "1") {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if cfg!(feature = "avx512") && std::is_x86_feature_detected!("avx512f") {
                return Some(Self::Avx512);
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Some(Self::Avx2);
            }
        }
        None
    }

    /// Every kernel this CPU can run (for tests that compare them).
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Self> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                out.push(Self::Avx512);
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                out.push(Self::Avx2);
            }
        }
        out
    }
}

/// `out[i * k + j] = x_i · c_j` for every row `i` of `x` (row-major `[rows * d]`) and every
/// centroid `j` of `c` (row-major `[k * d]`).
///
/// # Panics
/// When the slice lengths do not match `d`, `k` and `out`'s `rows * k`, or when `simd` is not
/// supported by this CPU.
pub(crate) fn row_dots(simd: Simd, x: &[f32], d: usize, c: &[f32], k: usize, out: &mut [f32]) {
    assert!(d > 0 && k > 0, "row_dots needs d > 0 and k > 0");
    assert_eq!(x.len() % d, 0, "rows of x");
    let rows = x.len() / d;
    assert_eq!(c.len(), k * d, "centroids");
    assert_eq!(out.len(), rows * k, "output block");
    #[cfg(target_arch = "x86_64")]
    {
        let view = Block { x, c, d, k, rows };
        match simd {
            Simd::Avx512 => {
                assert!(std::is_x86_feature_detected!("avx512f"), "no AVX-512 here");
                // SAFETY: the CPU has AVX-512F (checked above); `Block` holds the shapes the
                // tiles index with, checked against the slice lengths above.
                unsafe { x86::dots_avx512(&view, out) }
            }
            Simd::Avx2 => {
                let ok =
                    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
                assert!(ok, "no AVX2 + FMA here");
                // SAFETY: as above, for AVX2 and FMA.
                unsafe { x86::dots_avx2(&view, out) }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (simd, rows);
        unreachable!("Simd::detect returns None off x86-64");
    }
}

/// The operands of one [`row_dots`] call, with lengths checked.
#[cfg(target_arch = "x86_64")]
struct Block<'a> {
    x: &'a [f32],
    c: &'a [f32],
    d: usize,
    k: usize,
    rows: usize,
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Block;
    use std::arch::x86_64::*;

    /// Walks the block in tiles of `R` rows × `S` centroids, centroid tiles outermost so that a
    /// tile of centroids is reused by every row of the block while it is in L1/L2, and calls the
    /// tile kernel for the full tiles and the smaller edge tiles.
    macro_rules! walk_tiles {
        ($b:expr, $out:expr, $tile:ident, $r:tt, $s:tt) => {{
            let (b, out) = ($b, $out);
            let mut s0 = 0;
            while s0 < b.k {
                let s = (b.k - s0).min($s);
                let mut r0 = 0;
                while r0 < b.rows {
                    let r = (b.rows - r0).min($r);
                    // SAFETY: `r0 + r <= rows` and `s0 + s <= k`, so every row and centroid
                    // the tile reads lies inside `x` and `c`, and every write inside `out`.
                    unsafe { walk_tiles!(@dispatch $tile, b, out, r0, s0, r, s, $r, $s) };
                    r0 += r;
                }
                s0 += s;
            }
        }};
        (@dispatch $tile:ident, $b:expr, $out:expr, $r0:expr, $s0:expr, $r:expr, $s:expr, 4, 6) => {
            match ($r, $s) {
                (4, 6) => $tile::<4, 6>($b, $out, $r0, $s0),
                (4, 5) => $tile::<4, 5>($b, $out, $r0, $s0),
                (4, 4) => $tile::<4, 4>($b, $out, $r0, $s0),
                (4, 3) => $tile::<4, 3>($b, $out, $r0, $s0),
                (4, 2) => $tile::<4, 2>($b, $out, $r0, $s0),
                (4, _) => $tile::<4, 1>($b, $out, $r0, $s0),
                (3, 6) => $tile::<3, 6>($b, $out, $r0, $s0),
                (3, 5) => $tile::<3, 5>($b, $out, $r0, $s0),
                (3, 4) => $tile::<3, 4>($b, $out, $r0, $s0),
                (3, 3) => $tile::<3, 3>($b, $out, $r0, $s0),
                (3, 2) => $tile::<3, 2>($b, $out, $r0, $s0),
                (3, _) => $tile::<3, 1>($b, $out, $r0, $s0),
                (2, 6) => $tile::<2, 6>($b, $out, $r0, $s0),
                (2, 5) => $tile::<2, 5>($b, $out, $r0, $s0),
                (2, 4) => $tile::<2, 4>($b, $out, $r0, $s0),
                (2, 3) => $tile::<2, 3>($b, $out, $r0, $s0),
                (2, 2) => $tile::<2, 2>($b, $out, $r0, $s0),
                (2, _) => $tile::<2, 1>($b, $out, $r0, $s0),
                (_, 6) => $tile::<1, 6>($b, $out, $r0, $s0),
                (_, 5) => $tile::<1, 5>($b, $out, $r0, $s0),
                (_, 4) => $tile::<1, 4>($b, $out, $r0, $s0),
                (_, 3) => $tile::<1, 3>($b, $out, $r0, $s0),
                (_, 2) => $tile::<1, 2>($b, $out, $r0, $s0),
                (_, _) => $tile::<1, 1>($b, $out, $r0, $s0),
            }
        };
        (@dispatch $tile:ident, $b:expr, $out:expr, $r0:expr, $s0:expr, $r:expr, $s:expr, 3, 4) => {
            match ($r, $s) {
                (3, 4) => $tile::<3, 4>($b, $out, $r0, $s0),
                (3, 3) => $tile::<3, 3>($b, $out, $r0, $s0),
                (3, 2) => $tile::<3, 2>($b, $out, $r0, $s0),
                (3, _) => $tile::<3, 1>($b, $out, $r0, $s0),
                (2, 4) => $tile::<2, 4>($b, $out, $r0, $s0),
                (2, 3) => $tile::<2, 3>($b, $out, $r0, $s0),
                (2, 2) => $tile::<2, 2>($b, $out, $r0, $s0),
                (2, _) => $tile::<2, 1>($b, $out, $r0, $s0),
                (_, 4) => $tile::<1, 4>($b, $out, $r0, $s0),
                (_, 3) => $tile::<1, 3>($b, $out, $r0, $s0),
                (_, 2) => $tile::<1, 2>($b, $out, $r0, $s0),
                (_, _) => $tile::<1, 1>($b, $out, $r0, $s0),
            }
        };
    }

    /// # Safety
    /// The CPU must have AVX-512F, and `out.len() == b.rows * b.k`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dots_avx512(b: &Block<'_>, out: &mut [f32]) {
        walk_tiles!(b, out, tile_avx512, 4, 6);
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA, and `out.len() == b.rows * b.k`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dots_avx2(b: &Block<'_>, out: &mut [f32]) {
        walk_tiles!(b, out, tile_avx2, 3, 4);
    }

    /// Rows `r0..r0 + R` against centroids `s0..s0 + S`, 16 lanes of `d` per step, the last
    /// `d % 16` elements added after the horizontal sum.
    ///
    /// # Safety
    /// AVX-512F, `r0 + R <= b.rows`, `s0 + S <= b.k`, `out.len() == b.rows * b.k`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile_avx512<const R: usize, const S: usize>(
        b: &Block<'_>,
        out: &mut [f32],
        r0: usize,
        s0: usize,
    ) {
        let d = b.d;
        let xp: [*const f32; R] = std::array::from_fn(|r| b.x[(r0 + r) * d..].as_ptr());
        let cp: [*const f32; S] = std::array::from_fn(|s| b.c[(s0 + s) * d..].as_ptr());
        let mut acc = [[_mm512_setzero_ps(); S]; R];
        let full = d - d % 16;
        let mut j = 0;
        while j < full {
            // SAFETY: `j + 16 <= d`, inside row `r0 + r` of `x` and centroid `s0 + s` of `c`.
            let mut xv = [_mm512_setzero_ps(); R];
            for r in 0..R {
                xv[r] = unsafe { _mm512_loadu_ps(xp[r].add(j)) };
            }
            for s in 0..S {
                // SAFETY: as above.
                let cv = unsafe { _mm512_loadu_ps(cp[s].add(j)) };
                for r in 0..R {
                    acc[r][s] = _mm512_fmadd_ps(xv[r], cv, acc[r][s]);
                }
            }
            j += 16;
        }
        for r in 0..R {
            for s in 0..S {
                let mut dot = _mm512_reduce_add_ps(acc[r][s]);
                for t in full..d {
                    dot = b.x[(r0 + r) * d + t].mul_add(b.c[(s0 + s) * d + t], dot);
                }
                out[(r0 + r) * b.k + s0 + s] = dot;
            }
        }
    }

    /// Rows `r0..r0 + R` against centroids `s0..s0 + S`, 8 lanes of `d` per step.
    ///
    /// # Safety
    /// AVX2 and FMA, `r0 + R <= b.rows`, `s0 + S <= b.k`, `out.len() == b.rows * b.k`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tile_avx2<const R: usize, const S: usize>(
        b: &Block<'_>,
        out: &mut [f32],
        r0: usize,
        s0: usize,
    ) {
        let d = b.d;
        let xp: [*const f32; R] = std::array::from_fn(|r| b.x[(r0 + r) * d..].as_ptr());
        let cp: [*const f32; S] = std::array::from_fn(|s| b.c[(s0 + s) * d..].as_ptr());
        let mut acc = [[_mm256_setzero_ps(); S]; R];
        let full = d - d % 8;
        let mut j = 0;
        while j < full {
            // SAFETY: `j + 8 <= d`, inside row `r0 + r` of `x` and centroid `s0 + s` of `c`.
            let mut xv = [_mm256_setzero_ps(); R];
            for r in 0..R {
                xv[r] = unsafe { _mm256_loadu_ps(xp[r].add(j)) };
            }
            for s in 0..S {
                // SAFETY: as above.
                let cv = unsafe { _mm256_loadu_ps(cp[s].add(j)) };
                for r in 0..R {
                    acc[r][s] = _mm256_fmadd_ps(xv[r], cv, acc[r][s]);
                }
            }
            j += 8;
        }
        for r in 0..R {
            for s in 0..S {
                let mut dot = hsum256(acc[r][s]);
                for t in full..d {
                    dot = b.x[(r0 + r) * d + t].mul_add(b.c[(s0 + s) * d + t], dot);
                }
                out[(r0 + r) * b.k + s0 + s] = dot;
            }
        }
    }

    /// Sum of the 8 lanes, in a fixed order.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn hsum256(v: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        let one = _mm_add_ss(pair, _mm_shuffle_ps::<0b01>(pair, pair));
        _mm_cvtss_f32(one)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = dnc_core::SeededRng::new(seed);
        (0..len).map(|_| rng.normal() as f32).collect()
    }

    #[test]
    fn every_kernel_matches_f64_dot_products_on_every_edge_tile() {
        // Row counts and centroid counts around the tile sizes, and D with and without a tail.
        for simd in Simd::available() {
            for (rows, k, d) in [
                (1, 1, 1),
                (4, 6, 16),
                (7, 13, 37),
                (9, 100, 128),
                (5, 11, 8),
            ] {
                let x = random(rows * d, (rows * k * d) as u64);
                let c = random(k * d, d as u64);
                let mut out = vec![0f32; rows * k];
                row_dots(simd, &x, d, &c, k, &mut out);
                for i in 0..rows {
                    for j in 0..k {
                        let want: f64 = (0..d)
                            .map(|t| f64::from(x[i * d + t]) * f64::from(c[j * d + t]))
                            .sum();
                        let got = f64::from(out[i * k + j]);
                        let scale = 1.0 + (d as f64).sqrt();
                        assert!(
                            (got - want).abs() < 1e-5 * scale,
                            "{simd:?} rows {rows} k {k} d {d}: ({i}, {j}) {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_rows_products_do_not_depend_on_the_block_it_is_in() {
        let (rows, k, d) = (11, 9, 70);
        let x = random(rows * d, 3);
        let c = random(k * d, 4);
        for simd in Simd::available() {
            let mut whole = vec![0f32; rows * k];
            row_dots(simd, &x, d, &c, k, &mut whole);
            for (i, row) in x.chunks_exact(d).enumerate() {
                let mut alone = vec![0f32; k];
                row_dots(simd, row, d, &c, k, &mut alone);
                assert_eq!(alone, whole[i * k..(i + 1) * k], "{simd:?} row {i}");
            }
        }
    }
}
