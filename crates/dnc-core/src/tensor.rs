//! Differentiable tensor helpers candle does not have.

use candle_core::{D, Result, Tensor};

/// Norms below this are clamped before dividing, as PyTorch's `F.normalize` does.
pub const NORMALIZE_EPS: f64 = 1e-12;

/// L2-normalises `x` along its last dimension: `x / max(‖x‖₂, 1e-12)`.
///
/// Built from differentiable ops only, so gradients flow through it (candle has no normalise op).
/// The norm is `sqrt(Σx² + 1e-24)`: the same value for any row not within 1e-12 of zero, and a
/// finite gradient for a zero row (a bare `sqrt` has an infinite derivative at 0, which makes
/// the gradient of a zero row NaN).
///
/// # Shapes
/// `x`: `[..., D]` → `[..., D]`.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let squared = x.sqr()?.sum_keepdim(D::Minus1)?;
    let norm = (squared + NORMALIZE_EPS * NORMALIZE_EPS)?.sqrt()?;
    let norm = norm.maximum(NORMALIZE_EPS)?;
    x.broadcast_div(&norm)
}

/// Cosine similarity of every row of `a` with every row of `b`.
///
/// # Shapes
/// `a`: `[N, D]`, `b`: `[M, D]` → `[N, M]`.
pub fn cosine_matrix(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (_, da) = a.dims2()?;
    let (_, db) = b.dims2()?;
    if da != db {
        candle_core::bail!("cosine_matrix: feature dims differ, a is {da}, b is {db}")
    }
    l2_normalize(a)?.matmul(&l2_normalize(b)?.t()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, finite_difference_grad};
    use candle_core::{Device, Var};

    #[test]
    fn normalises_rows_and_keeps_zero_rows_finite() {
        let x = Tensor::new(&[[3f32, 4.0], [0.0, 0.0]], &Device::Cpu).unwrap();
        let y = l2_normalize(&x).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(y, vec![vec![0.6, 0.8], vec![0.0, 0.0]]);
    }

    #[test]
    fn zero_row_has_a_finite_gradient() {
        // A zero-initialised prediction head outputs zero rows at its first step.
        let x = Var::new(&[[0f32, 0.0, 0.0], [1.0, 2.0, 2.0]], &Device::Cpu).unwrap();
        let w = Tensor::new(&[[1f32, -2.0, 3.0], [1.0, 1.0, 1.0]], &Device::Cpu).unwrap();
        let loss = l2_normalize(x.as_tensor())
            .unwrap()
            .mul(&w)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let g = grads.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        assert!(g.iter().flatten().all(|v| v.is_finite()), "{g:?}");
    }

    #[test]
    fn cosine_matrix_matches_hand_values() {
        let a = Tensor::new(&[[1f32, 0.0], [1.0, 1.0]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[0f32, 2.0]], &Device::Cpu).unwrap();
        let c = cosine_matrix(&a, &b).unwrap().to_vec2::<f32>().unwrap();
        assert!((c[0][0] - 0.0).abs() < 1e-6);
        assert!((c[1][0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        let bad = Tensor::zeros((1, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(
            cosine_matrix(&a, &bad)
                .unwrap_err()
                .to_string()
                .contains("a is 2, b is 3")
        );
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let x = Var::new(&[[0.3f64, -1.2, 2.0], [1.0, 0.5, -0.25]], &Device::Cpu).unwrap();
        let w = Tensor::new(&[[1.0f64, 2.0, -3.0], [0.5, -1.0, 4.0]], &Device::Cpu).unwrap();
        let f = |x: &Tensor| l2_normalize(x)?.mul(&w)?.sum_all();
        let analytic = f(x.as_tensor()).unwrap().backward().unwrap();
        let analytic = analytic.get(x.as_tensor()).unwrap();
        let numeric = finite_difference_grad(f, x.as_tensor(), 1e-6).unwrap();
        assert_close(analytic, &numeric, 1e-6);
    }
}
