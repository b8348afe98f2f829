//! Dot products of data rows with every centroid, in AVX-512 or AVX2 + FMA registers.
//!
//! The host assignment pass calls [`row_dots`] on a block of rows small enough to stay in cache,
//! then takes the argmin of that block at once. Unlike a matrix-product library, nothing is
//! packed: the rows are read where they lie. At `D = 4096` packing the rows cost as much as a
//! tenth of a k-means pass, since each row is used against only K centroids. Two kernels:
//!
//! - **Lanes along D** (above [`BROADCAST_MAX_D`]): a tile of rows against a tile of centroids,
//!   both read as rows; each dot product ends in one horizontal sum, which long rows amortise.
//! - **Lanes along K** (up to [`BROADCAST_MAX_D`]): each row element broadcast against a vector
//!   of centroids, read from a transposed copy made once per iteration; no horizontal sum, which
//!   at `D = 128` would cost as much as a quarter of the multiply-adds.
//!
//! Each product is summed in the same order wherever its row falls in a block or a tile, so the
//! result does not depend on the block sizes or the number of threads.

/// Largest D served by the kernel with lanes along K (measured: at `D = 128` it ran the pass
/// faster than the one with lanes along D; at `D = 4096` slower).
pub(crate) const BROADCAST_MAX_D: usize = 512;

/// Columns of the transposed centroids are padded to a multiple of this (both kernels' lanes).
const COLUMN_PAD: usize = 16;

/// Centroids in the layout [`row_dots`] reads: rows `[k * d]`, and for `d` up to
/// [`BROADCAST_MAX_D`] also columns `[d * stride]` (zero-padded to `stride` columns).
pub(crate) struct DotCentroids {
    k: usize,
    d: usize,
    rows: Vec<f32>,
    columns: Option<Vec<f32>>,
    stride: usize,
}

impl DotCentroids {
    /// Lays out `rows` (row-major `[k * d]`) for the kernel that suits `d`.
    pub(crate) fn new(rows: Vec<f32>, k: usize, d: usize) -> Self {
        Self::with_columns(rows, k, d, d <= BROADCAST_MAX_D)
    }

    /// With or without the transposed copy, whatever `d` (tests compare both kernels).
    pub(crate) fn with_columns(rows: Vec<f32>, k: usize, d: usize, columns: bool) -> Self {
        assert_eq!(rows.len(), k * d, "centroids");
        let stride = k.next_multiple_of(COLUMN_PAD);
        let columns = columns.then(|| {
            let mut t = vec![0f32; d * stride];
            for (j, row) in rows.chunks_exact(d).enumerate() {
                for (i, &v) in row.iter().enumerate() {
                    t[i * stride + j] = v;
                }
            }
            t
        });
        Self {
            k,
            d,
            rows,
            columns,
            stride,
        }
    }
}

/// The instruction set a [`row_dots`] call runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Simd {
    /// 16 lanes: tiles of 4 rows × 6 centroids along D, or 6 rows × 4 vectors along K (24 of
    /// the 32 registers accumulate).
    Avx512,
    /// 8 lanes: tiles of 3 rows × 4 centroids along D (12 of the 16 registers accumulate), or
    /// 3 rows × 3 vectors along K.
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

    /// The name benchmarks record: `avx512` or `avx2+fma`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "avx512",
            Self::Avx2 => "avx2+fma",
        }
    }

    /// Rows of the register tile of the kernel that serves `d` (the tiles `dots_avx512`,
    /// `columns_avx512`, `dots_avx2` and `columns_avx2` walk): blocks of rows in multiples of it
    /// have no narrower edge tile.
    pub(crate) fn tile_rows(self, d: usize) -> usize {
        match (self, d <= BROADCAST_MAX_D) {
            (Self::Avx512, true) => 6,
            (Self::Avx512, false) => 4,
            (Self::Avx2, _) => 3,
        }
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
/// centroid `j` of `c`.
///
/// # Panics
/// When the lengths of `x` and `out` do not match `c`'s `d` and `k`, or when `simd` is not
/// supported by this CPU.
pub(crate) fn row_dots(simd: Simd, x: &[f32], c: &DotCentroids, out: &mut [f32]) {
    let (d, k) = (c.d, c.k);
    assert!(d > 0 && k > 0, "row_dots needs d > 0 and k > 0");
    assert_eq!(x.len() % d, 0, "rows of x");
    let rows = x.len() / d;
    assert_eq!(out.len(), rows * k, "output block");
    #[cfg(target_arch = "x86_64")]
    {
        let supported = match simd {
            Simd::Avx512 => std::is_x86_feature_detected!("avx512f"),
            Simd::Avx2 => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            }
        };
        assert!(supported, "this CPU does not run {simd:?}");
        if let Some(columns) = &c.columns {
            let view = Columns {
                x,
                columns,
                stride: c.stride,
                d,
                k,
                rows,
            };
            // SAFETY: the CPU has the instructions (checked above); `Columns` holds the shapes
            // the tiles index with: `x` has `rows * d` elements, `columns` `d * stride` with
            // `stride >= k` rounded up to the lanes, `out` `rows * k`.
            unsafe {
                match simd {
                    Simd::Avx512 => x86::columns_avx512(&view, out),
                    Simd::Avx2 => x86::columns_avx2(&view, out),
                }
            }
        } else {
            let view = Block {
                x,
                c: &c.rows,
                d,
                k,
                rows,
            };
            // SAFETY: as above; `Block`'s slices hold `rows * d` and `k * d` elements.
            unsafe {
                match simd {
                    Simd::Avx512 => x86::dots_avx512(&view, out),
                    Simd::Avx2 => x86::dots_avx2(&view, out),
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (simd, rows);
        unreachable!("Simd::detect returns None off x86-64");
    }
}

/// The operands of one [`row_dots`] call with the centroids as columns, lengths checked.
#[cfg(target_arch = "x86_64")]
struct Columns<'a> {
    x: &'a [f32],
    /// `[d * stride]`: element `(t, j)` is centroid `j`'s coordinate `t`.
    columns: &'a [f32],
    stride: usize,
    d: usize,
    k: usize,
    rows: usize,
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

// Register tiles are indexed by constant-bound loops, which the compiler unrolls into registers.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)]
mod x86 {
    use super::{Block, Columns};
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

    /// Defines a tile kernel of the layout with lanes along D: rows `r0..r0 + R` against
    /// centroids `s0..s0 + S`, `$lanes` elements of `d` per step, then one horizontal sum
    /// (`$sum`) per dot product and the last `d % $lanes` elements added fused.
    ///
    /// The generated function's safety contract: the CPU has `$features`, `r0 + R <= b.rows`,
    /// `s0 + S <= b.k`, `out.len() == b.rows * b.k`.
    macro_rules! row_tile {
        ($name:ident, $features:literal, $lanes:literal, $vector:ty,
         $zero:ident, $load:ident, $fma:ident, $sum:ident) => {
            /// # Safety
            /// See `row_tile!`.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn $name<const R: usize, const S: usize>(
                b: &Block<'_>,
                out: &mut [f32],
                r0: usize,
                s0: usize,
            ) {
                let d = b.d;
                let xp: [*const f32; R] = std::array::from_fn(|r| b.x[(r0 + r) * d..].as_ptr());
                let cp: [*const f32; S] = std::array::from_fn(|s| b.c[(s0 + s) * d..].as_ptr());
                let mut acc: [[$vector; S]; R] = [[$zero(); S]; R];
                let full = d - d % $lanes;
                let mut j = 0;
                while j < full {
                    let mut xv: [$vector; R] = [$zero(); R];
                    for r in 0..R {
                        // SAFETY: `j + lanes <= d`, inside row `r0 + r` of `x`.
                        xv[r] = unsafe { $load(xp[r].add(j)) };
                    }
                    for s in 0..S {
                        // SAFETY: as above, inside centroid `s0 + s` of `c`.
                        let cv = unsafe { $load(cp[s].add(j)) };
                        for r in 0..R {
                            acc[r][s] = $fma(xv[r], cv, acc[r][s]);
                        }
                    }
                    j += $lanes;
                }
                for r in 0..R {
                    for s in 0..S {
                        let mut dot = $sum(acc[r][s]);
                        for t in full..d {
                            dot = b.x[(r0 + r) * d + t].mul_add(b.c[(s0 + s) * d + t], dot);
                        }
                        out[(r0 + r) * b.k + s0 + s] = dot;
                    }
                }
            }
        };
    }

    row_tile!(
        tile_avx512,
        "avx512f",
        16,
        __m512,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_fmadd_ps,
        _mm512_reduce_add_ps
    );
    row_tile!(
        tile_avx2,
        "avx2,fma",
        8,
        __m256,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_fmadd_ps,
        hsum256
    );

    /// Defines a tile kernel of the layout with lanes along K: rows `r0..r0 + R` against
    /// centroids `j0..j0 + $lanes·V`. For each `t`, row element `t` is broadcast against
    /// `$lanes` centroids' coordinate `t`, accumulated in order of `t`; `$store` writes the
    /// columns below `k`.
    ///
    /// The generated function's safety contract: the CPU has `$features`,
    /// `r0 + R <= b.rows`, `j0 + $lanes·V <= b.stride`, `j0 < b.k`,
    /// `out.len() == b.rows * b.k`.
    macro_rules! column_tile {
        ($name:ident, $features:literal, $lanes:literal, $vector:ty,
         $zero:ident, $load:ident, $set1:ident, $fma:ident, $store:ident) => {
            /// # Safety
            /// See `column_tile!`.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn $name<const R: usize, const V: usize>(
                b: &Columns<'_>,
                out: &mut [f32],
                r0: usize,
                j0: usize,
            ) {
                let d = b.d;
                let x = b.x[r0 * d..].as_ptr();
                let cols = b.columns[j0..].as_ptr();
                let mut acc: [[$vector; V]; R] = [[$zero(); V]; R];
                for t in 0..d {
                    let mut cv: [$vector; V] = [$zero(); V];
                    for v in 0..V {
                        // SAFETY: `t * stride + j0 + lanes·(v + 1) <= d * stride`.
                        cv[v] = unsafe { $load(cols.add(t * b.stride + $lanes * v)) };
                    }
                    for r in 0..R {
                        // SAFETY: row `r0 + r`, element `t < d`.
                        let xb = $set1(unsafe { *x.add(r * d + t) });
                        for v in 0..V {
                            acc[r][v] = $fma(xb, cv[v], acc[r][v]);
                        }
                    }
                }
                for r in 0..R {
                    let dst = out[(r0 + r) * b.k..].as_mut_ptr();
                    for v in 0..V {
                        let col = j0 + $lanes * v;
                        let n = b.k.saturating_sub(col).min($lanes);
                        // SAFETY: columns `col..col + n` of row `r0 + r`, `1 <= n <= k − col`
                        // (every vector of a tile starts below `k`).
                        unsafe { $store(dst.add(col), n, acc[r][v]) };
                    }
                }
            }
        };
    }

    /// Walks a [`Columns`] block in tiles of `$r` rows × `$v` vectors of centroids, centroid
    /// tiles outermost (their columns stay in L1 while the rows pass), through `$tile::<R, V>`.
    macro_rules! walk_columns {
        ($b:expr, $out:expr, $by_rows:ident, $lanes:expr, $r:expr, $v:expr) => {{
            let (b, out) = ($b, $out);
            let mut j0 = 0;
            while j0 < b.k {
                let v = (b.k - j0).div_ceil($lanes).min($v);
                let mut r0 = 0;
                while r0 < b.rows {
                    let r = (b.rows - r0).min($r);
                    // SAFETY: rows `r0..r0 + r` lie in `x`; vectors `j0..j0 + v·lanes` lie in
                    // the padded `stride` columns; stores are masked to columns below `k`.
                    unsafe { $by_rows(b, out, r0, j0, r, v) };
                    r0 += r;
                }
                j0 += v * $lanes;
            }
        }};
    }

    /// # Safety
    /// AVX-512F, and the shapes [`Columns`] states.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn columns_avx512(b: &Columns<'_>, out: &mut [f32]) {
        walk_columns!(b, out, columns_avx512_rows, 16, 6, 4);
    }

    /// # Safety
    /// AVX2 and FMA, and the shapes [`Columns`] states.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn columns_avx2(b: &Columns<'_>, out: &mut [f32]) {
        walk_columns!(b, out, columns_avx2_rows, 8, 3, 3);
    }

    /// Dispatches a tile of `r` rows × `v` vectors to its const-sized kernel.
    ///
    /// # Safety
    /// As [`columns_tile_avx512`].
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn columns_avx512_rows(
        b: &Columns<'_>,
        out: &mut [f32],
        r0: usize,
        j0: usize,
        r: usize,
        v: usize,
    ) {
        // SAFETY: forwarded.
        unsafe {
            match r {
                6 => columns_avx512_vectors::<6>(b, out, r0, j0, v),
                5 => columns_avx512_vectors::<5>(b, out, r0, j0, v),
                4 => columns_avx512_vectors::<4>(b, out, r0, j0, v),
                3 => columns_avx512_vectors::<3>(b, out, r0, j0, v),
                2 => columns_avx512_vectors::<2>(b, out, r0, j0, v),
                _ => columns_avx512_vectors::<1>(b, out, r0, j0, v),
            }
        }
    }

    /// # Safety
    /// As [`columns_tile_avx512`].
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn columns_avx512_vectors<const R: usize>(
        b: &Columns<'_>,
        out: &mut [f32],
        r0: usize,
        j0: usize,
        v: usize,
    ) {
        // SAFETY: forwarded.
        unsafe {
            match v {
                4 => columns_tile_avx512::<R, 4>(b, out, r0, j0),
                3 => columns_tile_avx512::<R, 3>(b, out, r0, j0),
                2 => columns_tile_avx512::<R, 2>(b, out, r0, j0),
                _ => columns_tile_avx512::<R, 1>(b, out, r0, j0),
            }
        }
    }

    column_tile!(
        columns_tile_avx512,
        "avx512f,avx2,fma",
        16,
        __m512,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        store_avx512
    );

    /// Dispatches a tile of `r` rows × `v` vectors to its const-sized kernel.
    ///
    /// # Safety
    /// As [`columns_tile_avx2`].
    #[target_feature(enable = "avx2,fma")]
    unsafe fn columns_avx2_rows(
        b: &Columns<'_>,
        out: &mut [f32],
        r0: usize,
        j0: usize,
        r: usize,
        v: usize,
    ) {
        // SAFETY: forwarded.
        unsafe {
            // 3 × 3: 9 accumulators, 3 vectors and the broadcast. A 4 × 3 tile (16 registers)
            // spilled an accumulator inside the loop and ran at 50 GFLOP/s.
            match (r, v) {
                (3, 3) => columns_tile_avx2::<3, 3>(b, out, r0, j0),
                (3, 2) => columns_tile_avx2::<3, 2>(b, out, r0, j0),
                (3, _) => columns_tile_avx2::<3, 1>(b, out, r0, j0),
                (2, 3) => columns_tile_avx2::<2, 3>(b, out, r0, j0),
                (2, 2) => columns_tile_avx2::<2, 2>(b, out, r0, j0),
                (2, _) => columns_tile_avx2::<2, 1>(b, out, r0, j0),
                (_, 3) => columns_tile_avx2::<1, 3>(b, out, r0, j0),
                (_, 2) => columns_tile_avx2::<1, 2>(b, out, r0, j0),
                (_, _) => columns_tile_avx2::<1, 1>(b, out, r0, j0),
            }
        }
    }

    column_tile!(
        columns_tile_avx2,
        "avx2,fma",
        8,
        __m256,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        store_avx2
    );

    /// The first `n` (1 to 16) lanes of `v` to `dst`.
    ///
    /// # Safety
    /// AVX-512F, and `dst..dst + n` writable.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn store_avx512(dst: *mut f32, n: usize, v: __m512) {
        let mask: __mmask16 = ((1u32 << n) - 1) as u16;
        // SAFETY: the mask keeps the store to `dst..dst + n`.
        unsafe { _mm512_mask_storeu_ps(dst, mask, v) };
    }

    /// The first `n` (1 to 8) lanes of `v` to `dst`, masked only at the edge: AMD runs
    /// `vmaskmovps` stores as slow microcode.
    ///
    /// # Safety
    /// AVX2, and `dst..dst + n` writable.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn store_avx2(dst: *mut f32, n: usize, v: __m256) {
        if n == 8 {
            // SAFETY: `dst..dst + 8` is writable.
            unsafe { _mm256_storeu_ps(dst, v) };
        } else {
            let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lane);
            // SAFETY: the mask keeps the store to `dst..dst + n`.
            unsafe { _mm256_maskstore_ps(dst, mask, v) };
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

    /// Every kernel this CPU runs, with the centroids as rows and as columns.
    fn kernels() -> Vec<(Simd, bool)> {
        let simd = Simd::available();
        simd.iter().flat_map(|&s| [(s, false), (s, true)]).collect()
    }

    #[test]
    fn every_kernel_matches_f64_dot_products_on_every_edge_tile() {
        // Row and centroid counts around both kernels' tile sizes (K = 100 ends in a partial
        // vector), and D with and without a tail.
        for (simd, columns) in kernels() {
            for (rows, k, d) in [
                (1, 1, 1),
                (4, 6, 16),
                (7, 13, 37),
                (9, 100, 128),
                (5, 11, 8),
                (13, 70, 3),
            ] {
                let x = random(rows * d, (rows * k * d) as u64);
                let c = random(k * d, d as u64);
                let layout = DotCentroids::with_columns(c.clone(), k, d, columns);
                let mut out = vec![f32::NAN; rows * k];
                row_dots(simd, &x, &layout, &mut out);
                for i in 0..rows {
                    for j in 0..k {
                        let want: f64 = (0..d)
                            .map(|t| f64::from(x[i * d + t]) * f64::from(c[j * d + t]))
                            .sum();
                        let got = f64::from(out[i * k + j]);
                        let scale = 1.0 + (d as f64).sqrt();
                        assert!(
                            (got - want).abs() < 1e-5 * scale,
                            "{simd:?} columns {columns} rows {rows} k {k} d {d}: ({i}, {j}) \
                             {got} vs {want}"
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
        for (simd, columns) in kernels() {
            let layout = DotCentroids::with_columns(c.clone(), k, d, columns);
            let mut whole = vec![0f32; rows * k];
            row_dots(simd, &x, &layout, &mut whole);
            for (i, row) in x.chunks_exact(d).enumerate() {
                let mut alone = vec![0f32; k];
                row_dots(simd, row, &layout, &mut alone);
                assert_eq!(
                    alone,
                    whole[i * k..(i + 1) * k],
                    "{simd:?} {columns} row {i}"
                );
            }
        }
    }
}
