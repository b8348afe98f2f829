//! InfoNCE and the symmetric MoCLR loss.
//!
//! InfoNCE: van den Oord, Li & Vinyals, "Representation Learning with Contrastive Predictive
//! Coding", arXiv 1807.03748. MoCLR as used by Divide and Contrast: Tian, Hénaff & van den Oord,
//! "Divide and Contrast: Self-supervised Learning from Uncurated Data", arXiv 2105.08054, §3:
//! the online projections of both views are contrasted with the target network's projections of
//! the other view, with the other images of the batch as negatives (no memory queue).

use crate::check;
use candle_core::{D, Result, Tensor};

/// InfoNCE with in-batch negatives: `mean_i −log softmax_j(q_i·k_j / τ)[i]`.
///
/// Row `i` of `k` is the positive of row `i` of `q`; the other `B − 1` rows of `k` are its
/// negatives. Both inputs are expected to be L2-normalised already (this function does not
/// normalise them). Gradients flow into `q` and `k`; pass a detached `k` for a target network.
///
/// # Shapes
/// `q`, `k`: `[B, D]` with `B ≥ 2` → scalar.
pub fn info_nce(q: &Tensor, k: &Tensor, tau: f64) -> Result<Tensor> {
    check::same_matrix(q, k, "info_nce", ("q", "k"))?;
    info_nce_in(q, k, 0, tau)
}

/// InfoNCE of a share of a larger batch: row `i` of `q` has its positive at row `first + i`
/// of `k`, and every other row of `k` is a negative. With `k` gathered from every rank of a
/// data-parallel group and `first` this rank's offset, the mean over ranks equals
/// [`info_nce`] on the whole batch.
///
/// # Shapes
/// `q`: `[b, D]`, `k`: `[N, D]` with `first + b ≤ N` and `N ≥ 2` → scalar.
pub fn info_nce_in(q: &Tensor, k: &Tensor, first: usize, tau: f64) -> Result<Tensor> {
    check::temperature(tau, "info_nce")?;
    let (b, n) = check::share_of(q, k, first, "info_nce", ("q", "k"))?;
    check::contrastive_batch(n, "info_nce")?;
    let logits = q.matmul(&k.t()?)?.affine(1.0 / tau, 0.0)?;
    let log_p = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let targets = Tensor::arange(first as u32, (first + b) as u32, q.device())?;
    check::mean_nll(&log_p, &targets)
}

/// The MoCLR loss: `InfoNCE(q1, k2) + InfoNCE(q2, k1)`.
///
/// `q1`, `q2` are the online network's normalised projections of views 1 and 2; `k1`, `k2` the
/// target (EMA) network's projections of the same views, which callers pass detached.
///
/// # Shapes
/// `q1`, `q2`, `k1`, `k2`: `[B, D]` with `B ≥ 2` → scalar.
pub fn moclr_loss(q1: &Tensor, q2: &Tensor, k1: &Tensor, k2: &Tensor, tau: f64) -> Result<Tensor> {
    info_nce(q1, k2, tau)? + info_nce(q2, k1, tau)?
}

/// [`moclr_loss`] of a share of a larger batch ([`info_nce_in`]): the keys `k1`, `k2` hold the
/// whole batch, the share's images at rows `first..first + b`.
///
/// # Shapes
/// `q1`, `q2`: `[b, D]`; `k1`, `k2`: `[N, D]` → scalar.
pub fn moclr_loss_in(
    q1: &Tensor,
    q2: &Tensor,
    k1: &Tensor,
    k2: &Tensor,
    first: usize,
    tau: f64,
) -> Result<Tensor> {
    info_nce_in(q1, k2, first, tau)? + info_nce_in(q2, k1, first, tau)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use dnc_core::testing::{assert_close, finite_difference_grad};
    use dnc_core::{SeededRng, l2_normalize};

    fn scalar(t: Tensor) -> f64 {
        t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
    }

    fn random_unit(rows: usize, cols: usize, seed: u64) -> Tensor {
        let mut rng = SeededRng::new(seed);
        let v: Vec<f64> = (0..rows * cols).map(|_| rng.normal()).collect();
        l2_normalize(&Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()).unwrap()
    }

    /// A direct scalar-loop transcription of the formula, for comparison.
    fn reference(q: &[Vec<f64>], k: &[Vec<f64>], tau: f64) -> f64 {
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let b = q.len();
        let mut total = 0.0;
        for i in 0..b {
            let denom: f64 = (0..b).map(|j| (dot(&q[i], &k[j]) / tau).exp()).sum();
            total += -(dot(&q[i], &k[i]) / tau).exp().ln() + denom.ln();
        }
        total / b as f64
    }

    #[test]
    fn hand_computed_values() {
        let dev = Device::Cpu;
        // q = k = I₂, τ = 1: logits = I, each row loses −1 + ln(e¹ + e⁰) = ln(1 + e⁻¹) = 0.3132617.
        let eye = Tensor::new(&[[1f64, 0.0], [0.0, 1.0]], &dev).unwrap();
        let l = scalar(info_nce(&eye, &eye, 1.0).unwrap());
        assert!((l - 0.313_261_687_518_222_8).abs() < 1e-12, "{l}");
        // q = [[1,0],[0.6,0.8]], k = [[0.6,0.8],[0,1]], τ = 0.5.
        // q·kᵀ = [[0.6, 0], [1.0, 0.8]], /τ → [[1.2, 0], [2.0, 1.6]].
        // row 0: −1.2 + ln(e^1.2 + e^0) = ln(1 + e^−1.2) = 0.2633 (positive wins);
        // row 1: −1.6 + ln(e^2.0 + e^1.6) = ln(1 + e^0.4) = 0.9130 (a negative wins);
        // mean = (0.263282 + 0.913015) / 2 = 0.588149.
        let q = Tensor::new(&[[1f64, 0.0], [0.6, 0.8]], &dev).unwrap();
        let k = Tensor::new(&[[0.6f64, 0.8], [0.0, 1.0]], &dev).unwrap();
        let expected = ((1.0 + (-1.2f64).exp()).ln() + (1.0 + 0.4f64.exp()).ln()) / 2.0;
        let l = scalar(info_nce(&q, &k, 0.5).unwrap());
        assert!(
            (l - expected).abs() < 1e-12 && (l - 0.588_149).abs() < 1e-6,
            "{l}"
        );
        // MoCLR on the same pairs with the views swapped is the sum of the two directions.
        let m = scalar(moclr_loss(&q, &k, &q, &k, 0.5).unwrap());
        let other = scalar(info_nce(&k, &q, 0.5).unwrap());
        assert!((m - (other + l)).abs() < 1e-12, "{m}");
    }

    #[test]
    fn matches_scalar_reference_in_f32_and_f64() {
        let q = random_unit(6, 5, 1);
        let k = random_unit(6, 5, 2);
        let expected = reference(
            &q.to_vec2::<f64>().unwrap(),
            &k.to_vec2::<f64>().unwrap(),
            0.2,
        );
        let got = scalar(info_nce(&q, &k, 0.2).unwrap());
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        let (q32, k32) = (
            q.to_dtype(DType::F32).unwrap(),
            k.to_dtype(DType::F32).unwrap(),
        );
        let got32 = scalar(info_nce(&q32, &k32, 0.2).unwrap());
        assert!((got32 - expected).abs() < 1e-5, "{got32} vs {expected}");
    }

    #[test]
    fn symmetries() {
        let (q1, q2) = (random_unit(5, 4, 3), random_unit(5, 4, 4));
        let (k1, k2) = (random_unit(5, 4, 5), random_unit(5, 4, 6));
        // Permuting the batch (rows of q and k together) does not change the loss.
        let perm = Tensor::new(&[3u32, 0, 4, 1, 2], &Device::Cpu).unwrap();
        let a = scalar(info_nce(&q1, &k1, 0.1).unwrap());
        let b = scalar(
            info_nce(
                &q1.index_select(&perm, 0).unwrap(),
                &k1.index_select(&perm, 0).unwrap(),
                0.1,
            )
            .unwrap(),
        );
        assert!((a - b).abs() < 1e-12);
        // MoCLR is symmetric in the two views.
        let m12 = scalar(moclr_loss(&q1, &q2, &k1, &k2, 0.1).unwrap());
        let m21 = scalar(moclr_loss(&q2, &q1, &k2, &k1, 0.1).unwrap());
        assert!((m12 - m21).abs() < 1e-12);
    }

    #[test]
    fn temperature_limits() {
        let dev = Device::Cpu;
        // τ → ∞: every logit → 0, the softmax is uniform and the loss → ln B.
        let (q, k) = (random_unit(4, 3, 7), random_unit(4, 3, 8));
        let l = scalar(info_nce(&q, &k, 1e6).unwrap());
        assert!((l - 4f64.ln()).abs() < 1e-5, "{l}");
        // τ → 0 with every positive strictly most similar: the loss → 0.
        let eye = Tensor::eye(3, DType::F64, &dev).unwrap();
        assert!(scalar(info_nce(&eye, &eye, 1e-3).unwrap()) < 1e-12);
        // τ → 0 when a negative beats the positive: the loss grows like (s_neg − s_pos) / (τ B).
        let q = Tensor::new(&[[1f64, 0.0], [0.6, 0.8]], &dev).unwrap();
        let k = Tensor::new(&[[0.6f64, 0.8], [0.0, 1.0]], &dev).unwrap();
        let tau = 1e-3;
        let l = scalar(info_nce(&q, &k, tau).unwrap());
        let asymptote = (1.0 - 0.8) / tau / 2.0;
        assert!((l - asymptote).abs() < 1e-6, "{l} vs {asymptote}");
    }

    #[test]
    fn gradients_match_finite_differences_and_reach_q() {
        let (q, k) = (random_unit(4, 3, 9), random_unit(4, 3, 10));
        let qv = Var::from_tensor(&q).unwrap();
        let kv = Var::from_tensor(&k).unwrap();
        let grads = info_nce(qv.as_tensor(), kv.as_tensor(), 0.3)
            .unwrap()
            .backward()
            .unwrap();
        let gq = grads.get(qv.as_tensor()).expect("gradient reaches q");
        let gk = grads.get(kv.as_tensor()).expect("gradient reaches k");
        let nq = finite_difference_grad(|x| info_nce(x, &k, 0.3), &q, 1e-6).unwrap();
        let nk = finite_difference_grad(|x| info_nce(&q, x, 0.3), &k, 1e-6).unwrap();
        assert_close(gq, &nq, 1e-7);
        assert_close(gk, &nk, 1e-7);
        let norm = scalar(gq.sqr().unwrap().sum_all().unwrap()).sqrt();
        assert!(norm > 1e-3, "gradient w.r.t. q is (nearly) zero: {norm}");
    }

    #[test]
    fn moclr_gradients_match_finite_differences() {
        let t: Vec<Tensor> = (0..4).map(|s| random_unit(3, 4, 20 + s)).collect();
        let vars: Vec<Var> = t.iter().map(|x| Var::from_tensor(x).unwrap()).collect();
        let vt: Vec<&Tensor> = vars.iter().map(Var::as_tensor).collect();
        let grads = moclr_loss(vt[0], vt[1], vt[2], vt[3], 0.2)
            .unwrap()
            .backward()
            .unwrap();
        for i in 0..4 {
            let f = |x: &Tensor| {
                let mut a: Vec<&Tensor> = t.iter().collect();
                a[i] = x;
                moclr_loss(a[0], a[1], a[2], a[3], 0.2)
            };
            let numeric = finite_difference_grad(f, &t[i], 1e-6).unwrap();
            assert_close(grads.get(vt[i]).unwrap(), &numeric, 1e-7);
        }
    }

    #[test]
    fn shares_of_a_batch_average_to_the_whole_batch_loss() {
        let (q1, q2) = (random_unit(6, 4, 30), random_unit(6, 4, 31));
        let (k1, k2) = (random_unit(6, 4, 32), random_unit(6, 4, 33));
        let whole = scalar(moclr_loss(&q1, &q2, &k1, &k2, 0.2).unwrap());
        let shares: f64 = [(0, 2), (2, 2), (4, 2)]
            .iter()
            .map(|&(first, b)| {
                let (s1, s2) = (
                    q1.narrow(0, first, b).unwrap(),
                    q2.narrow(0, first, b).unwrap(),
                );
                scalar(moclr_loss_in(&s1, &s2, &k1, &k2, first, 0.2).unwrap())
            })
            .sum();
        assert!((shares / 3.0 - whole).abs() < 1e-12, "{shares} vs {whole}");
        let err = info_nce_in(&q1, &k1, 1, 0.2).unwrap_err().to_string();
        assert!(err.contains("rows 1..7") && err.contains("6 rows"), "{err}");
    }

    #[test]
    fn bad_arguments_are_errors_with_values() {
        let q = random_unit(3, 2, 11);
        let err = |r: Result<Tensor>| r.unwrap_err().to_string();
        assert!(err(info_nce(&q, &q, 0.0)).contains("got 0"));
        assert!(err(info_nce(&q, &q, f64::NAN)).contains("NaN"));
        let k = random_unit(3, 4, 12);
        assert!(err(info_nce(&q, &k, 0.1)).contains("[3, 2]"));
        let one = random_unit(1, 2, 13);
        assert!(err(info_nce(&one, &one, 0.1)).contains("B = 1"));
        let flat = Tensor::zeros(6, DType::F64, &Device::Cpu).unwrap();
        assert!(err(info_nce(&flat, &flat, 0.1)).contains("[6]"));
    }
}
