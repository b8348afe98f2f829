//! Global average pooling as a custom op: one pass forward, one broadcast pass backward.

use crate::float::{Float, has_cpu_kernel, output, storage_slice, with_slice};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, D, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// Mean over all positions of each channel: `y[b, c] = mean(x[b, c, ...])`.
///
/// On the CPU in `f32` or `f64` this runs fused kernels; elsewhere it is candle's `mean`.
///
/// # Shapes
/// `x`: `[B, C, ...]` (rank 3 or more, e.g. `[B, C, H, W]`) → `[B, C]`.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    let dims = x.dims();
    if dims.len() < 3 || dims.contains(&0) {
        bail!("global_avg_pool: needs a non-empty input of rank 3 or more, got {dims:?}")
    }
    let (b, c) = (dims[0], dims[1]);
    if has_cpu_kernel(x) {
        x.contiguous()?.apply_op1(GlobalAvgPool { b, c })
    } else {
        x.reshape((b, c, ()))?.mean(D::Minus1)
    }
}

struct GlobalAvgPool {
    b: usize,
    c: usize,
}

fn forward<T: Float>(x: &[T], planes: usize) -> Vec<T> {
    let plane = x.len() / planes;
    let scale = 1.0 / plane as f64;
    x.par_chunks(plane)
        .map(|p| T::from_f64(p.iter().map(|v| v.to_f64()).sum::<f64>() * scale))
        .collect()
}

fn backward<T: Float>(dy: &[T], plane: usize) -> Vec<T> {
    let scale = 1.0 / plane as f64;
    let mut dx = output(dy.len() * plane);
    dx.par_chunks_mut(plane)
        .zip(dy.par_iter())
        .for_each(|(dx, g)| {
            dx.fill(T::from_f64(g.to_f64() * scale));
        });
    dx
}

impl GlobalAvgPool {
    fn grad<T: Float>(&self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        let plane = x.elem_count() / (self.b * self.c);
        let dx = with_slice::<T, _>(self.name(), dy, |dys| Ok(backward(dys, plane)))?;
        Tensor::from_vec(dx, x.shape(), x.device())
    }
}

impl CustomOp1 for GlobalAvgPool {
    fn name(&self) -> &'static str {
        "dnc-global-avg-pool"
    }

    fn cpu_fwd(&self, x: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (op, planes) = (self.name(), self.b * self.c);
        let y = match x {
            CpuStorage::F32(_) => {
                CpuStorage::F32(forward::<f32>(storage_slice(op, x, xl)?, planes))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(forward::<f64>(storage_slice(op, x, xl)?, planes))
            }
            other => bail!("{op}: no kernel for {:?}", other.dtype()),
        };
        Ok((y, Shape::from((self.b, self.c))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        if !x.track_op() {
            return Ok(None);
        }
        let dx = match x.dtype() {
            DType::F32 => self.grad::<f32>(x, dy)?,
            DType::F64 => self.grad::<f64>(x, dy)?,
            other => bail!("{}: no kernel for {other:?}", self.name()),
        };
        Ok(Some(dx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_rel_close, randn};
    use candle_core::Var;
    use dnc_core::testing::{assert_close, finite_difference_grad};

    #[test]
    fn means_and_gradients_match_candle_and_finite_differences() -> Result<()> {
        let x = Var::from_tensor(&randn(1, &[3, 4, 5, 7], DType::F64)?)?;
        let g = randn(2, &[3, 4], DType::F64)?;
        let y = global_avg_pool(x.as_tensor())?;
        assert_rel_close("mean", &y, &x.as_tensor().flatten_from(2)?.mean(2)?, 1e-12);
        let dx = (y * &g)?
            .sum_all()?
            .backward()?
            .get(x.as_tensor())
            .unwrap()
            .clone();
        let f = |x: &Tensor| (global_avg_pool(x)? * &g)?.sum_all();
        assert_close(&dx, &finite_difference_grad(f, x.as_tensor(), 1e-6)?, 1e-8);
        Ok(())
    }

    #[test]
    fn rejects_inputs_without_positions() {
        let x = Tensor::zeros((2, 3), DType::F32, &candle_core::Device::Cpu).unwrap();
        let err = global_avg_pool(&x).unwrap_err().to_string();
        assert!(err.contains("rank 3 or more, got [2, 3]"), "{err}");
    }
}
