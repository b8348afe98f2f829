//! Per-channel moment sums of a contiguous `[N, C, L]` tensor: the statistics of the forward
//! pass and the two gradient sums of the backward pass.
//!
//! Slabs of consecutive images are reduced in parallel, each reading its memory front to back
//! (a channel's runs are `L` values apart from other channels', but contiguous within an image);
//! partial sums are added in a fixed order, so results do not depend on scheduling. Values are
//! summed around a per-channel shift, in lanes of the element type for at most
//! [`FLUSH_VALUES`] values per channel, then in `f64`, so that `E[x²] − E[x]²` does not cancel.

use crate::float::Float;
use crate::simd::multiversion;
use rayon::prelude::*;

/// Slabs of images reduced in parallel (fewer when there are fewer images).
const SLABS: usize = 16;

/// Values per channel summed in the element type before adding into `f64`.
const FLUSH_VALUES: usize = 4096;

/// Lanes of the element-type accumulators (wide enough for the compiler to vectorise).
const LANES: usize = 8;

/// A batch-norm input viewed as `[n, c, l]`: `n` images, `c` channels, `l` values per channel
/// and image (`H·W` for 2-d inputs, 1 for `[N, C]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Nlc {
    pub(crate) n: usize,
    pub(crate) c: usize,
    pub(crate) l: usize,
}

impl Nlc {
    /// Values per channel over the batch.
    pub(crate) fn count(&self) -> usize {
        self.n * self.l
    }

    /// Values per image.
    pub(crate) fn row(&self) -> usize {
        self.c * self.l
    }
}

/// The first operand of [`channel_moments`]: values `u`, a per-channel shift, and an optional
/// gate that zeroes `u` wherever the gate is not positive (the ReLU mask of a fused backward).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gated<'a, T> {
    pub(crate) values: &'a [T],
    pub(crate) shift: &'a [T],
    pub(crate) gate: Option<&'a [T]>,
}

/// Per-channel sums `(Σ ũ, Σ ũ·(v − sv))` over images and positions, where
/// `ũ = (u − su)·[gate > 0]` and `su`, `sv` are per-channel shifts.
///
/// # Shapes
/// `u`, its gate and `v`: `[n, c, l]`; the shifts: `[c]` → `c` pairs.
pub(crate) fn channel_moments<T: Float>(
    s: Nlc,
    u: Gated<'_, T>,
    v: &[T],
    v_shift: &[T],
) -> Vec<(f64, f64)> {
    let per_slab = s.n.div_ceil(SLABS).max(1);
    let partials: Vec<Vec<(f64, f64)>> = (0..s.n.div_ceil(per_slab))
        .into_par_iter()
        .map(|k| {
            let images = k * per_slab..((k + 1) * per_slab).min(s.n);
            if s.l >= LANES {
                slab_by_channel(s, images, u, v, v_shift)
            } else {
                slab_by_position(s, images, u, v, v_shift)
            }
        })
        .collect();
    let mut sums = vec![(0.0, 0.0); s.c];
    for part in &partials {
        for (t, p) in sums.iter_mut().zip(part) {
            t.0 += p.0;
            t.1 += p.1;
        }
    }
    sums
}

/// Moments of a slab of images whose runs hold at least [`LANES`] values: one set of lane
/// accumulators per channel.
fn slab_by_channel<T: Float>(
    s: Nlc,
    images: std::ops::Range<usize>,
    u: Gated<'_, T>,
    v: &[T],
    v_shift: &[T],
) -> Vec<(f64, f64)> {
    let flush_every = (FLUSH_VALUES / s.l).max(1);
    let mut sums = vec![(0.0, 0.0); s.c];
    let mut lanes = vec![([T::ZERO; LANES], [T::ZERO; LANES]); s.c];
    for (count, img) in images.clone().enumerate() {
        for (ch, acc) in lanes.iter_mut().enumerate() {
            let run = (img * s.c + ch) * s.l..(img * s.c + ch + 1) * s.l;
            let gate = u.gate.map(|g| &g[run.clone()]);
            let (su, sv) = (u.shift[ch], v_shift[ch]);
            let tail = run_lanes(&u.values[run.clone()], su, gate, &v[run.clone()], sv, acc);
            sums[ch].0 += tail.0;
            sums[ch].1 += tail.1;
        }
        if (count + 1) % flush_every == 0 || img + 1 == images.end {
            for (sum, acc) in sums.iter_mut().zip(lanes.iter_mut()) {
                sum.0 += acc.0.iter().map(|t| t.to_f64()).sum::<f64>();
                sum.1 += acc.1.iter().map(|t| t.to_f64()).sum::<f64>();
                *acc = ([T::ZERO; LANES], [T::ZERO; LANES]);
            }
        }
    }
    sums
}

multiversion! {
/// Adds one run into the lane accumulators; returns the sums of the values past the last full
/// group of lanes (in `f64`).
fn run_lanes<T: Float>(
    u: &[T],
    su: T,
    gate: Option<&[T]>,
    v: &[T],
    sv: T,
    acc: &mut ([T; LANES], [T; LANES]),
) -> (f64, f64) {
    let (s1, s2) = acc;
    let (uc, vc) = (u.chunks_exact(LANES), v.chunks_exact(LANES));
    match gate {
        None => {
            for (uu, vv) in uc.zip(vc) {
                for i in 0..LANES {
                    let du = uu[i] - su;
                    s1[i] += du;
                    s2[i] += du * (vv[i] - sv);
                }
            }
        }
        Some(gate) => {
            for ((uu, vv), gg) in uc.zip(vc).zip(gate.chunks_exact(LANES)) {
                for i in 0..LANES {
                    // Computed first and then selected, so that the loop compiles to a blend.
                    let du = uu[i] - su;
                    let du = if gg[i] > T::ZERO { du } else { T::ZERO };
                    s1[i] += du;
                    s2[i] += du * (vv[i] - sv);
                }
            }
        }
    }
    let (mut a, mut b) = (0.0, 0.0);
    for i in u.len() / LANES * LANES..u.len() {
        if gate.is_none_or(|g| g[i] > T::ZERO) {
            let du = (u[i] - su).to_f64();
            a += du;
            b += du * (v[i] - sv).to_f64();
        }
    }
    (a, b)
}
}

/// Moments of a slab of images with short runs (fewer than [`LANES`] values, e.g. `[N, C]`
/// inputs): whole image rows at a time, accumulated per position.
fn slab_by_position<T: Float>(
    s: Nlc,
    images: std::ops::Range<usize>,
    u: Gated<'_, T>,
    v: &[T],
    v_shift: &[T],
) -> Vec<(f64, f64)> {
    let row = s.row();
    let expand = |shift: &[T]| -> Vec<T> {
        shift
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, s.l))
            .collect()
    };
    let (su, sv) = (expand(u.shift), expand(v_shift));
    let flush_every = FLUSH_VALUES / s.l;
    let (mut a, mut b) = (vec![0.0; row], vec![0.0; row]);
    let (mut a_run, mut b_run) = (vec![T::ZERO; row], vec![T::ZERO; row]);
    for (count, img) in images.clone().enumerate() {
        let span = img * row..(img + 1) * row;
        let gate = u.gate.map(|g| &g[span.clone()]);
        accumulate_row(
            &u.values[span.clone()],
            &su,
            gate,
            &v[span],
            &sv,
            &mut a_run,
            &mut b_run,
        );
        if (count + 1) % flush_every == 0 || img + 1 == images.end {
            for (acc, run) in [(&mut a, &mut a_run), (&mut b, &mut b_run)] {
                for (t, r) in acc.iter_mut().zip(run.iter_mut()) {
                    *t += r.to_f64();
                    *r = T::ZERO;
                }
            }
        }
    }
    let mut sums = vec![(0.0, 0.0); s.c];
    for (j, (x, y)) in a.iter().zip(&b).enumerate() {
        sums[j / s.l].0 += x;
        sums[j / s.l].1 += y;
    }
    sums
}

multiversion! {
/// `a += ũ`, `b += ũ·(v − sv)` over one image row, position by position.
fn accumulate_row<T: Float>(
    u: &[T],
    su: &[T],
    gate: Option<&[T]>,
    v: &[T],
    sv: &[T],
    a: &mut [T],
    b: &mut [T],
) {
    let terms = u.iter().zip(su).zip(v.iter().zip(sv));
    let acc = a.iter_mut().zip(b.iter_mut());
    match gate {
        None => {
            for ((a, b), ((u, su), (v, sv))) in acc.zip(terms) {
                let du = *u - *su;
                *a += du;
                *b += du * (*v - *sv);
            }
        }
        Some(gate) => {
            for (((a, b), ((u, su), (v, sv))), g) in acc.zip(terms).zip(gate) {
                let du = *u - *su;
                let du = if *g > T::ZERO { du } else { T::ZERO };
                *a += du;
                *b += du * (*v - *sv);
            }
        }
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(
        s: Nlc,
        u: &[f64],
        su: &[f64],
        gate: &[f64],
        v: &[f64],
        sv: &[f64],
    ) -> Vec<(f64, f64)> {
        let mut out = vec![(0.0, 0.0); s.c];
        for (i, (uu, vv)) in u.iter().zip(v).enumerate() {
            let ch = (i / s.l) % s.c;
            if gate[i] > 0.0 {
                out[ch].0 += uu - su[ch];
                out[ch].1 += (uu - su[ch]) * (vv - sv[ch]);
            }
        }
        out
    }

    #[test]
    fn both_reduction_paths_match_a_naive_sum_with_and_without_gate() {
        // l = 3 and 1 take the position-wise path, l = 45 the lane path (with a remainder); 40
        // images make several slabs.
        for s in [
            Nlc { n: 19, c: 3, l: 3 },
            Nlc { n: 40, c: 2, l: 45 },
            Nlc { n: 1, c: 4, l: 1 },
        ] {
            let len = s.n * s.c * s.l;
            let u: Vec<f64> = (0..len).map(|i| (i as f64 * 0.37).sin() + 3.0).collect();
            let v: Vec<f64> = (0..len).map(|i| (i as f64 * 0.11).cos()).collect();
            let gate: Vec<f64> = (0..len).map(|i| (i as f64 * 0.53).sin()).collect();
            let (su, sv): (Vec<f64>, Vec<f64>) =
                (0..s.c).map(|c| (c as f64, -0.5 * c as f64)).unzip();
            let open = vec![1.0; len];
            for (g, want_gate) in [(None, &open), (Some(gate.as_slice()), &gate)] {
                let u_in = Gated {
                    values: &u,
                    shift: &su,
                    gate: g,
                };
                let got = channel_moments(s, u_in, &v, &sv);
                for (g, w) in got.iter().zip(naive(s, &u, &su, want_gate, &v, &sv)) {
                    assert!(
                        (g.0 - w.0).abs() < 1e-10 && (g.1 - w.1).abs() < 1e-10,
                        "{s:?}: {g:?} vs {w:?}"
                    );
                }
            }
        }
    }
}
