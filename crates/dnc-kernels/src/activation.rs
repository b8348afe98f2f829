//! ReLU as a custom op whose backward pass is one fused masking pass.
//!
//! candle's own ReLU backward builds `grad · (x ≥ 0)` from four full-size temporaries (zeros,
//! comparison, cast, product); here the gradient is `dy` where the output is positive, written in
//! one pass. NaN inputs propagate, as in PyTorch.

use crate::float::{Float, has_cpu_kernel, output, storage_slice, with_slice};
use crate::simd::multiversion;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// Elements per parallel task of the element-wise kernels.
pub(crate) const CHUNK: usize = 1 << 15;

/// `max(x, 0)` element-wise, with gradient `dy · [y > 0]`.
///
/// On the CPU in `f32` or `f64` this runs a fused kernel; elsewhere it calls candle's
/// `Tensor::relu`.
///
/// # Shapes
/// `x`: any shape → same shape.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if has_cpu_kernel(x) {
        x.contiguous()?.apply_op1(Relu)
    } else {
        x.relu()
    }
}

/// `y = max(x, 0)`, keeping NaN.
pub(crate) fn relu_forward<T: Float>(x: &[T]) -> Vec<T> {
    let mut y = output(x.len());
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(y, x)| relu_run(y, x));
    y
}

multiversion! {
fn relu_run<T: Float>(y: &mut [T], x: &[T]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = if *x < T::ZERO { T::ZERO } else { *x };
    }
}
}

/// `dx = dy` where `y > 0`, else 0.
pub(crate) fn relu_backward<T: Float>(y: &[T], dy: &[T]) -> Vec<T> {
    let mut dx = output(y.len());
    dx.par_chunks_mut(CHUNK)
        .zip(y.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(dx, (y, dy))| relu_grad_run(dx, y, dy));
    dx
}

multiversion! {
fn relu_grad_run<T: Float>(dx: &mut [T], y: &[T], dy: &[T]) {
    for ((dx, y), dy) in dx.iter_mut().zip(y).zip(dy) {
        *dx = if *y > T::ZERO { *dy } else { T::ZERO };
    }
}
}

struct Relu;

impl Relu {
    fn grad<T: Float>(&self, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
        let dx = with_slice::<T, _>(self.name(), y, |ys| {
            with_slice::<T, _>(self.name(), dy, |dys| Ok(relu_backward(ys, dys)))
        })?;
        Tensor::from_vec(dx, y.shape(), y.device())
    }
}

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "dnc-relu"
    }

    fn cpu_fwd(&self, x: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let y = match x {
            CpuStorage::F32(_) => CpuStorage::F32(relu_forward::<f32>(storage_slice(op, x, xl)?)),
            CpuStorage::F64(_) => CpuStorage::F64(relu_forward::<f64>(storage_slice(op, x, xl)?)),
            other => bail!("{op}: no kernel for {:?}", other.dtype()),
        };
        Ok((y, xl.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        if !x.track_op() {
            return Ok(None);
        }
        let dx = match y.dtype() {
            DType::F32 => self.grad::<f32>(y, dy)?,
            DType::F64 => self.grad::<f64>(y, dy)?,
            other => bail!("{}: no kernel for {other:?}", self.name()),
        };
        Ok(Some(dx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_rel_close, randn};
    use candle_core::{Device, Var};

    #[test]
    fn values_and_gradient_match_hand_values() -> Result<()> {
        let x = Var::new(&[-1.5f32, 0.0, 2.0, f32::NAN, 3.0], &Device::Cpu)?;
        let y = relu(x.as_tensor())?;
        let v = y.to_vec1::<f32>()?;
        assert_eq!(&v[..3], &[0.0, 0.0, 2.0]);
        assert!(v[3].is_nan());
        assert_eq!(v[4], 3.0);
        let g = Tensor::new(&[1f32, 2.0, 3.0, 4.0, 5.0], &Device::Cpu)?;
        let grads = (y * &g)?.sum_all()?.backward()?;
        // The gradient at 0 is 0 (as in PyTorch); NaN rows get none.
        assert_eq!(
            grads.get(x.as_tensor()).unwrap().to_vec1::<f32>()?,
            [0.0, 0.0, 3.0, 0.0, 5.0]
        );
        Ok(())
    }

    #[test]
    fn matches_candle_on_a_large_tensor() -> Result<()> {
        let x = Var::from_tensor(&randn(3, &[5, 7, 33, 31], DType::F32)?)?;
        let g = randn(4, x.dims(), DType::F32)?;
        let ours = (relu(x.as_tensor())? * &g)?.sum_all()?.backward()?;
        let theirs = (x.as_tensor().relu()? * &g)?.sum_all()?.backward()?;
        let grad = |s: &candle_core::backprop::GradStore| s.get(x.as_tensor()).unwrap().clone();
        assert_rel_close("relu dx", &grad(&ours), &grad(&theirs), 0.0);
        assert_rel_close("relu y", &relu(x.as_tensor())?, &x.as_tensor().relu()?, 0.0);
        Ok(())
    }
}
