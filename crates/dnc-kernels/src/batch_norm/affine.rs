//! Element-wise per-channel passes of batch normalisation over a contiguous `[N, C, L]`
//! tensor: the normalisation (with an optional fused ReLU) and the closed-form input gradient.
//! Both run in parallel over images.

use super::moments::{Gated, Nlc};
use crate::float::Float;
use crate::simd::multiversion;
use rayon::prelude::*;

/// `y = x·scale[c] + offset[c]` element-wise, then `max(y, 0)` when `relu`, in parallel over
/// images.
///
/// # Shapes
/// `y`, `x`: `[n, c, l]`; `scale`, `offset`: `[c]`.
pub(crate) fn normalize<T: Float>(
    s: Nlc,
    y: &mut [T],
    x: &[T],
    scale: &[T],
    offset: &[T],
    relu: bool,
) {
    let row = s.c * s.l;
    y.par_chunks_mut(row)
        .zip(x.par_chunks(row))
        .for_each(|(y, x)| {
            for (ch, (y, x)) in y.chunks_exact_mut(s.l).zip(x.chunks_exact(s.l)).enumerate() {
                normalize_run(y, x, scale[ch], offset[ch], relu);
            }
        });
}

multiversion! {
/// `y = x·a + c` over one run, clamped at 0 when `relu`.
pub(super) fn normalize_run<T: Float>(y: &mut [T], x: &[T], a: T, c: T, relu: bool) {
    if relu {
        for (y, x) in y.iter_mut().zip(x) {
            let v = *x * a + c;
            *y = if v < T::ZERO { T::ZERO } else { v };
        }
    } else {
        for (y, x) in y.iter_mut().zip(x) {
            *y = *x * a + c;
        }
    }
}
}

/// `y = max(x·scale[c] + offset[c] + r, 0)` element-wise: normalisation, a residual addition
/// and a ReLU in one pass, in parallel over images.
///
/// # Shapes
/// `y`, `x`, `r`: `[n, c, l]`; `scale`, `offset`: `[c]`.
pub(crate) fn normalize_add_relu<T: Float>(
    s: Nlc,
    y: &mut [T],
    x: &[T],
    r: &[T],
    scale: &[T],
    offset: &[T],
) {
    let row = s.c * s.l;
    y.par_chunks_mut(row)
        .zip(x.par_chunks(row).zip(r.par_chunks(row)))
        .for_each(|(y, (x, r))| {
            let runs = y
                .chunks_exact_mut(s.l)
                .zip(x.chunks_exact(s.l).zip(r.chunks_exact(s.l)));
            for (ch, (y, (x, r))) in runs.enumerate() {
                normalize_add_relu_run(y, x, r, scale[ch], offset[ch]);
            }
        });
}

multiversion! {
/// `y = max(x·a + c + r, 0)` over one run.
fn normalize_add_relu_run<T: Float>(y: &mut [T], x: &[T], r: &[T], a: T, c: T) {
    for ((y, x), r) in y.iter_mut().zip(x).zip(r) {
        let v = *x * a + c + *r;
        *y = if v < T::ZERO { T::ZERO } else { v };
    }
}
}

/// Per-channel coefficients of the closed-form input gradient `dx = k1·dỹ + k2·x + k3`.
#[derive(Debug, Clone)]
pub(crate) struct InputGradCoefficients<T> {
    pub(crate) k1: Vec<T>,
    pub(crate) k2: Vec<T>,
    pub(crate) k3: Vec<T>,
}

/// `dx = k1[c]·dỹ + k2[c]·x + k3[c]` element-wise with `dỹ = dy·[gate > 0]`, in parallel over
/// images.
///
/// # Shapes
/// `dx`, `dy`, `gate`, `x`: `[n, c, l]`; the coefficients: `[c]`.
pub(crate) fn input_grad<T: Float>(
    s: Nlc,
    dx: &mut [T],
    dy: Gated<'_, T>,
    x: &[T],
    k: &InputGradCoefficients<T>,
) {
    let row = s.c * s.l;
    let rows = dx
        .par_chunks_mut(row)
        .zip(dy.values.par_chunks(row))
        .zip(x.par_chunks(row));
    rows.enumerate().for_each(|(img, ((dx, dy_row), x))| {
        let gate = dy.gate.map(|g| &g[img * row..(img + 1) * row]);
        let dy = dy_row;
        let runs = dx
            .chunks_exact_mut(s.l)
            .zip(dy.chunks_exact(s.l))
            .zip(x.chunks_exact(s.l));
        for (ch, ((dx, dy), x)) in runs.enumerate() {
            let g = gate.map(|g| &g[ch * s.l..(ch + 1) * s.l]);
            input_grad_run(dx, dy, g, x, [k.k1[ch], k.k2[ch], k.k3[ch]]);
        }
    });
}

multiversion! {
/// `dx = k1·dỹ + k2·x + k3` over one run.
fn input_grad_run<T: Float>(dx: &mut [T], dy: &[T], gate: Option<&[T]>, x: &[T], k: [T; 3]) {
    let [a, b, c] = k;
    match gate {
        None => {
            for ((dx, dy), x) in dx.iter_mut().zip(dy).zip(x) {
                *dx = *dy * a + *x * b + c;
            }
        }
        Some(g) => {
            for (((dx, dy), x), g) in dx.iter_mut().zip(dy).zip(x).zip(g) {
                let dy = if *g > T::ZERO { *dy } else { T::ZERO };
                *dx = dy * a + *x * b + c;
            }
        }
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_wise_passes_use_per_channel_coefficients() {
        let s = Nlc { n: 2, c: 2, l: 2 };
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let mut out = [0.0; 8];
        normalize(s, &mut out, &x, &[2.0, -1.0], &[0.5, 0.0], false);
        assert_eq!(out, [2.5, 4.5, -3.0, -4.0, 10.5, 12.5, -7.0, -8.0]);
        normalize(s, &mut out, &x, &[2.0, -1.0], &[0.5, 0.0], true);
        assert_eq!(out, [2.5, 4.5, 0.0, 0.0, 10.5, 12.5, 0.0, 0.0]);
        let dy = [1.0; 8];
        let gate = [1.0, -1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let k = InputGradCoefficients {
            k1: vec![1.0, 2.0],
            k2: vec![10.0, 20.0],
            k3: vec![0.0, 1.0],
        };
        let dy = Gated {
            values: &dy,
            shift: &[0.0, 0.0],
            gate: Some(&gate),
        };
        input_grad(s, &mut out, dy, &x, &k);
        assert_eq!(out, [11.0, 20.0, 63.0, 81.0, 51.0, 61.0, 143.0, 163.0]);
        let r = [0.0, -5.0, 4.0, 1.0, -20.0, 0.0, 0.0, 9.0];
        normalize_add_relu(s, &mut out, &x, &r, &[2.0, -1.0], &[0.5, 0.0]);
        assert_eq!(out, [2.5, 0.0, 1.0, 0.0, 0.0, 12.5, 0.0, 1.0]);
    }
}
