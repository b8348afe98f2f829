//! NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR.
//!
//! Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning of Visual
//! Representations", arXiv 2002.05709, eq. (1): the `2B` projections of a batch's two views are
//! pooled; each one's positive is the other view of its image and its negatives are the remaining
//! `2B − 2` projections. The loss is averaged over all `2B` anchors.

use crate::check;
use candle_core::{D, DType, Result, Tensor};

/// The logit given to an anchor's similarity with itself, so that `exp` of it underflows to 0.
///
/// Setting the entry to 0 instead (e.g. by multiplying by a mask) would still add `exp(0) = 1` to
/// every denominator. f16 cannot hold −1e9, so it gets a value that is still far below any
/// `cos / τ` that can occur.
fn self_mask_value(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => -3.0e4,
        _ => -1.0e9,
    }
}

/// SimCLR's NT-Xent over the `2B` samples `[z1; z2]`.
///
/// Inputs are expected to be L2-normalised already. Gradients flow into both views.
///
/// # Shapes
/// `z1`, `z2`: `[B, D]` with `B ≥ 2` → scalar.
pub fn nt_xent(z1: &Tensor, z2: &Tensor, tau: f64) -> Result<Tensor> {
    check::same_matrix(z1, z2, "nt_xent", ("z1", "z2"))?;
    nt_xent_in(z1, z2, z1, z2, 0, tau)
}

/// NT-Xent of a share of a larger batch: the anchors are the share's `[z1; z2]`, rows
/// `first..first + b` of the whole batch's `all1` and `all2`, and the candidates are all `2N`
/// projections of the whole batch (less the anchor itself). With `all1`, `all2` gathered from
/// every rank of a data-parallel group, the mean over ranks equals [`nt_xent`] on the whole
/// batch.
///
/// # Shapes
/// `z1`, `z2`: `[b, D]`; `all1`, `all2`: `[N, D]` with `N ≥ 2` → scalar.
pub fn nt_xent_in(
    z1: &Tensor,
    z2: &Tensor,
    all1: &Tensor,
    all2: &Tensor,
    first: usize,
    tau: f64,
) -> Result<Tensor> {
    check::temperature(tau, "nt_xent")?;
    check::same_matrix(z1, z2, "nt_xent", ("z1", "z2"))?;
    check::same_matrix(all1, all2, "nt_xent", ("all1", "all2"))?;
    let (b, n) = check::share_of(z1, all1, first, "nt_xent", ("z1", "all1"))?;
    check::contrastive_batch(n, "nt_xent")?;
    let dev = z1.device();
    let anchors = Tensor::cat(&[z1, z2], 0)?;
    let candidates = Tensor::cat(&[all1, all2], 0)?;
    let logits = anchors.matmul(&candidates.t()?)?.affine(1.0 / tau, 0.0)?;
    // Anchor i of view 1 is candidate first + i, its positive N + first + i; anchor i of view 2
    // is candidate N + first + i, its positive first + i.
    let own = |i: usize| if i < b { first + i } else { n + first + i - b };
    let positive = |i: usize| if i < b { n + first + i } else { first + i - b };
    let mut is_self = vec![0u8; 2 * b * 2 * n];
    for i in 0..2 * b {
        is_self[i * 2 * n + own(i)] = 1;
    }
    let is_self = Tensor::from_vec(is_self, (2 * b, 2 * n), dev)?;
    let fill =
        Tensor::full(self_mask_value(z1.dtype()), (2 * b, 2 * n), dev)?.to_dtype(z1.dtype())?;
    let logits = is_self.where_cond(&fill, &logits)?;
    let log_p = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let targets: Vec<u32> = (0..2 * b).map(|i| positive(i) as u32).collect();
    let targets = Tensor::from_vec(targets, 2 * b, dev)?;
    check::mean_nll(&log_p, &targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
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

    /// A scalar-loop transcription of SimCLR's eq. (1), skipping k = i.
    fn reference(z1: &[Vec<f64>], z2: &[Vec<f64>], tau: f64) -> f64 {
        let z: Vec<&Vec<f64>> = z1.iter().chain(z2).collect();
        let n = z.len();
        let sim = |i: usize, j: usize| z[i].iter().zip(z[j]).map(|(a, b)| a * b).sum::<f64>() / tau;
        let mut total = 0.0;
        for i in 0..n {
            let pos = (i + n / 2) % n;
            let denom: f64 = (0..n).filter(|&k| k != i).map(|k| sim(i, k).exp()).sum();
            total += -sim(i, pos) + denom.ln();
        }
        total / n as f64
    }

    #[test]
    fn shares_of_a_batch_average_to_the_whole_batch_loss() {
        let (z1, z2) = (random_unit(6, 4, 40), random_unit(6, 4, 41));
        let whole = scalar(nt_xent(&z1, &z2, 0.3).unwrap());
        let shares: f64 = [0, 3]
            .iter()
            .map(|&first| {
                let (s1, s2) = (
                    z1.narrow(0, first, 3).unwrap(),
                    z2.narrow(0, first, 3).unwrap(),
                );
                scalar(nt_xent_in(&s1, &s2, &z1, &z2, first, 0.3).unwrap())
            })
            .sum();
        assert!((shares / 2.0 - whole).abs() < 1e-12, "{shares} vs {whole}");
    }

    #[test]
    fn hand_computed_value_masks_self_out() {
        // z1 = z2 = I₂, τ = 1: z = [e1, e2, e1, e2]. Anchor 0 sees (without itself) sims
        // [0 (e2), 1 (e1, positive), 0 (e2)]: loss = −1 + ln(1 + e + 1) = ln(2 + e) − 1 = 0.551445.
        // All four anchors are alike. Zeroing the self-similarity instead of masking it would give
        // ln(3 + e) − 1 = 0.743668.
        let eye = Tensor::eye(2, DType::F64, &Device::Cpu).unwrap();
        let l = scalar(nt_xent(&eye, &eye, 1.0).unwrap());
        let expected = (2.0 + std::f64::consts::E).ln() - 1.0;
        assert!(
            (l - expected).abs() < 1e-12 && (l - 0.551_445).abs() < 1e-6,
            "{l}"
        );
    }

    #[test]
    fn matches_scalar_reference_and_is_symmetric() {
        let (z1, z2) = (random_unit(5, 4, 1), random_unit(5, 4, 2));
        let expected = reference(
            &z1.to_vec2::<f64>().unwrap(),
            &z2.to_vec2::<f64>().unwrap(),
            0.5,
        );
        let l12 = scalar(nt_xent(&z1, &z2, 0.5).unwrap());
        let l21 = scalar(nt_xent(&z2, &z1, 0.5).unwrap());
        assert!((l12 - expected).abs() < 1e-12, "{l12} vs {expected}");
        assert!((l12 - l21).abs() < 1e-12);
        let (a, b) = (
            z1.to_dtype(DType::F32).unwrap(),
            z2.to_dtype(DType::F32).unwrap(),
        );
        assert!((scalar(nt_xent(&a, &b, 0.5).unwrap()) - expected).abs() < 1e-5);
    }

    #[test]
    fn temperature_limits() {
        // τ → ∞: uniform over the 2B − 1 others, the loss → ln(2B − 1).
        let (z1, z2) = (random_unit(3, 4, 3), random_unit(3, 4, 4));
        let l = scalar(nt_xent(&z1, &z2, 1e6).unwrap());
        assert!((l - 5f64.ln()).abs() < 1e-5, "{l}");
        // τ → 0 with identical views of orthogonal images: the positive dominates, loss → 0.
        let eye = Tensor::eye(3, DType::F64, &Device::Cpu).unwrap();
        assert!(scalar(nt_xent(&eye, &eye, 1e-3).unwrap()) < 1e-12);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (z1, z2) = (random_unit(3, 3, 5), random_unit(3, 3, 6));
        let (v1, v2) = (
            Var::from_tensor(&z1).unwrap(),
            Var::from_tensor(&z2).unwrap(),
        );
        let grads = nt_xent(v1.as_tensor(), v2.as_tensor(), 0.4)
            .unwrap()
            .backward()
            .unwrap();
        let n1 = finite_difference_grad(|x| nt_xent(x, &z2, 0.4), &z1, 1e-6).unwrap();
        let n2 = finite_difference_grad(|x| nt_xent(&z1, x, 0.4), &z2, 1e-6).unwrap();
        let g1 = grads.get(v1.as_tensor()).expect("gradient reaches z1");
        assert_close(g1, &n1, 1e-7);
        assert_close(grads.get(v2.as_tensor()).unwrap(), &n2, 1e-7);
        assert!(scalar(g1.abs().unwrap().sum_all().unwrap()) > 1e-3);
    }

    #[test]
    fn f16_inputs_stay_finite() {
        let (z1, z2) = (random_unit(4, 8, 7), random_unit(4, 8, 8));
        let expected = scalar(nt_xent(&z1, &z2, 0.1).unwrap());
        let (a, b) = (
            z1.to_dtype(DType::F16).unwrap(),
            z2.to_dtype(DType::F16).unwrap(),
        );
        let l = scalar(nt_xent(&a, &b, 0.1).unwrap());
        assert!((l - expected).abs() < 0.05, "{l} vs {expected}");
    }

    #[test]
    fn bad_arguments_are_errors() {
        let z = random_unit(3, 2, 9);
        assert!(
            nt_xent(&z, &z, -1.0)
                .unwrap_err()
                .to_string()
                .contains("-1")
        );
        let one = random_unit(1, 2, 10);
        assert!(
            nt_xent(&one, &one, 0.1)
                .unwrap_err()
                .to_string()
                .contains("B = 1")
        );
        let other = random_unit(2, 2, 11);
        let msg = nt_xent(&z, &other, 0.1).unwrap_err().to_string();
        assert!(msg.contains("[3, 2]") && msg.contains("[2, 2]"), "{msg}");
    }
}
