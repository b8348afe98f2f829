//! The candle `CustomOp3` shared by the crate's three-input ops (the batch-norm family): each op
//! implements [`Kernel3`] once, generic over [`Float`], and [`Op3`] picks the `f32` or `f64`
//! copy.

use crate::float::{Float, storage_slice};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, bail};

/// The generic halves of a `CustomOp3` with CPU kernels.
pub(crate) trait Kernel3 {
    /// The op's name, for errors.
    fn op_name(&self) -> &'static str;

    /// The output shape, given the first input's layout (by default, that input's shape).
    fn out_shape(&self, a: &Layout) -> Shape {
        a.shape().clone()
    }

    /// The forward pass on three contiguous inputs.
    fn forward<T: Float>(&self, a: &[T], b: &[T], c: &[T]) -> Vec<T>;

    /// The gradients of the three inputs (`None` for those not asked for), given the output
    /// `y` and its gradient `dy`.
    fn gradients<T: Float>(
        &self,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<Grads3>;
}

/// Gradients of the three inputs of a `CustomOp3`.
pub(crate) type Grads3 = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

/// A [`Kernel3`] as a candle custom op.
pub(crate) struct Op3<K>(pub(crate) K);

impl<K: Kernel3 + Send + Sync> CustomOp3 for Op3<K> {
    fn name(&self) -> &'static str {
        self.0.op_name()
    }

    fn cpu_fwd(
        &self,
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
        c: &CpuStorage,
        cl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = cpu_forward(&self.0, (a, al), (b, bl), (c, cl))?;
        Ok((y, self.0.out_shape(al)))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, c: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Grads3> {
        backward(&self.0, a, b, c, y, dy)
    }
}

/// The forward pass on `f32` or `f64` storages.
fn cpu_forward<K: Kernel3>(
    kernel: &K,
    (a, al): (&CpuStorage, &Layout),
    (b, bl): (&CpuStorage, &Layout),
    (c, cl): (&CpuStorage, &Layout),
) -> Result<CpuStorage> {
    let op = kernel.op_name();
    Ok(match a {
        CpuStorage::F32(_) => CpuStorage::F32(kernel.forward::<f32>(
            storage_slice(op, a, al)?,
            storage_slice(op, b, bl)?,
            storage_slice(op, c, cl)?,
        )),
        CpuStorage::F64(_) => CpuStorage::F64(kernel.forward::<f64>(
            storage_slice(op, a, al)?,
            storage_slice(op, b, bl)?,
            storage_slice(op, c, cl)?,
        )),
        other => bail!("{op}: no kernel for {:?}", other.dtype()),
    })
}

/// Nothing when no input takes a gradient, else the gradients in the inputs' element type.
fn backward<K: Kernel3>(
    kernel: &K,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    y: &Tensor,
    dy: &Tensor,
) -> Result<Grads3> {
    if !(a.track_op() || b.track_op() || c.track_op()) {
        return Ok((None, None, None));
    }
    match a.dtype() {
        DType::F32 => kernel.gradients::<f32>(a, b, c, y, dy),
        DType::F64 => kernel.gradients::<f64>(a, b, c, y, dy),
        other => bail!("{}: no kernel for {other:?}", kernel.op_name()),
    }
}
