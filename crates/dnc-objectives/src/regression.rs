//! The regression losses of DnC's distillation step.
//!
//! Tian, Hénaff & van den Oord, "Divide and Contrast", arXiv 2105.08054, §3.3: each head `r` of the
//! student regresses a frozen teacher's L2-normalised projection `t` with `½‖r(z) − t‖²`, the base
//! head on every image and an expert's head only on the images of its cluster.

use candle_core::{DType, Result, Tensor, bail};

/// `mean_i ½‖pred_i − target_i‖²`.
///
/// # Shapes
/// `pred`, `target`: `[B, D]` with `B ≥ 1` → scalar.
pub fn regression_loss(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    let (b, _) = crate::check::same_matrix(pred, target, "regression_loss", ("pred", "target"))?;
    if b == 0 {
        bail!("regression_loss: empty batch (B = 0)")
    }
    (pred - target)?
        .sqr()?
        .sum_all()?
        .affine(0.5 / b as f64, 0.0)
}

/// `Σ_i mask_i · ½‖pred_i − target_i‖² / B`, with `mask_i ∈ {0, 1}`.
///
/// The sum is divided by the full batch size `B`, not by the number of selected rows: an expert
/// head then contributes in proportion to how many of the batch's images belong to its cluster,
/// and the base head (mask of ones) and the expert heads are on the same per-image scale, as in
/// the paper's per-image loss `½‖r_0 − t_0‖² + ½‖r_c − t_c‖²`. An all-zero mask gives 0.
///
/// The mask carries no gradient. Its values are checked, which reads it back to the host.
///
/// # Shapes
/// `pred`, `target`: `[B, D]` with `B ≥ 1`; `mask`: `[B]`, any dtype → scalar.
pub fn masked_regression_loss(pred: &Tensor, target: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let op = "masked_regression_loss";
    let (b, _) = crate::check::same_matrix(pred, target, op, ("pred", "target"))?;
    if b == 0 {
        bail!("{op}: empty batch (B = 0)")
    }
    if mask.dims() != [b] {
        bail!(
            "{op}: mask must have shape [{b}] (one entry per row), got {:?}",
            mask.dims()
        )
    }
    let values: Vec<f64> = mask.to_dtype(DType::F64)?.to_vec1()?;
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .find(|(_, v)| **v != 0.0 && **v != 1.0)
    {
        bail!("{op}: mask values must be 0 or 1, got {v} at row {i}")
    }
    let per_row = (pred - target)?.sqr()?.sum(1)?;
    let mask = mask.to_dtype(pred.dtype())?.detach();
    (per_row * mask)?.sum_all()?.affine(0.5 / b as f64, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use dnc_core::testing::{assert_close, finite_difference_grad};

    fn scalar(t: Tensor) -> f64 {
        t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
    }

    fn inputs() -> (Tensor, Tensor) {
        let dev = Device::Cpu;
        let pred = Tensor::new(&[[1f64, 2.0], [0.0, -1.0], [3.0, 0.5]], &dev).unwrap();
        let target = Tensor::new(&[[0f64, 2.0], [1.0, 1.0], [3.0, 0.0]], &dev).unwrap();
        (pred, target)
    }

    #[test]
    fn hand_computed_values() {
        // Row errors: [1, 0] → ‖·‖² = 1; [−1, −2] → 5; [0, 0.5] → 0.25.
        // Unmasked: ½ (1 + 5 + 0.25) / 3 = 1.041667.
        // Mask [1, 0, 1]: ½ (1 + 0.25) / 3 = 0.208333 (divided by the full batch of 3).
        let (pred, target) = inputs();
        let l = scalar(regression_loss(&pred, &target).unwrap());
        assert!((l - 6.25 / 6.0).abs() < 1e-12, "{l}");
        let mask = Tensor::new(&[1u8, 0, 1], &Device::Cpu).unwrap();
        let m = scalar(masked_regression_loss(&pred, &target, &mask).unwrap());
        assert!((m - 1.25 / 6.0).abs() < 1e-12, "{m}");
        let ones = Tensor::ones(3, DType::F32, &Device::Cpu).unwrap();
        let full = scalar(masked_regression_loss(&pred, &target, &ones).unwrap());
        assert!((full - l).abs() < 1e-12);
        let zeros = Tensor::zeros(3, DType::U32, &Device::Cpu).unwrap();
        assert_eq!(
            scalar(masked_regression_loss(&pred, &target, &zeros).unwrap()),
            0.0
        );
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (pred, target) = inputs();
        let mask = Tensor::new(&[0f64, 1.0, 1.0], &Device::Cpu).unwrap();
        let (pv, tv) = (
            Var::from_tensor(&pred).unwrap(),
            Var::from_tensor(&target).unwrap(),
        );
        let g = regression_loss(pv.as_tensor(), tv.as_tensor())
            .unwrap()
            .backward()
            .unwrap();
        let np = finite_difference_grad(|x| regression_loss(x, &target), &pred, 1e-6).unwrap();
        let nt = finite_difference_grad(|x| regression_loss(&pred, x), &target, 1e-6).unwrap();
        assert_close(g.get(pv.as_tensor()).unwrap(), &np, 1e-8);
        assert_close(g.get(tv.as_tensor()).unwrap(), &nt, 1e-8);

        let g = masked_regression_loss(pv.as_tensor(), tv.as_tensor(), &mask)
            .unwrap()
            .backward()
            .unwrap();
        let f = |x: &Tensor| masked_regression_loss(x, &target, &mask);
        let np = finite_difference_grad(f, &pred, 1e-6).unwrap();
        let f = |x: &Tensor| masked_regression_loss(&pred, x, &mask);
        let nt = finite_difference_grad(f, &target, 1e-6).unwrap();
        let gp = g.get(pv.as_tensor()).unwrap();
        assert_close(gp, &np, 1e-8);
        assert_close(g.get(tv.as_tensor()).unwrap(), &nt, 1e-8);
        // The masked-out row gets no gradient; the others do: (pred − target) / B.
        let gp = gp.to_vec2::<f64>().unwrap();
        assert_eq!(gp[0], vec![0.0, 0.0]);
        assert!((gp[1][1] - (-2.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn bad_arguments_are_errors_with_values() {
        let (pred, target) = inputs();
        let msg = |r: Result<Tensor>| r.unwrap_err().to_string();
        let short = Tensor::ones(2, DType::F64, &Device::Cpu).unwrap();
        assert!(msg(masked_regression_loss(&pred, &target, &short)).contains("[3]"));
        let soft = Tensor::new(&[1f64, 0.5, 0.0], &Device::Cpu).unwrap();
        let m = msg(masked_regression_loss(&pred, &target, &soft));
        assert!(m.contains("0.5") && m.contains("row 1"), "{m}");
        let narrow = pred.narrow(1, 0, 1).unwrap();
        assert!(msg(regression_loss(&narrow, &target)).contains("[3, 1]"));
        let f32_target = target.to_dtype(DType::F32).unwrap();
        assert!(msg(regression_loss(&pred, &f32_target)).contains("F32"));
    }
}
