//! The element-type dispatch shared by the crate's three-input custom ops (the batch-norm
//! family): each op writes its forward and backward passes once, generic over [`Float`], and
//! these helpers pick the `f32` or `f64` copy.

use crate::float::{Float, storage_slice};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result, Tensor, bail};

/// The generic halves of a `CustomOp3` with CPU kernels.
pub(crate) trait Kernel3 {
    /// The op's name, for errors.
    fn op_name(&self) -> &'static str;

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

/// The body of `CustomOp3::cpu_fwd`: the forward pass on `f32` or `f64` storages.
pub(crate) fn cpu_forward<K: Kernel3>(
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

/// The body of `CustomOp3::bwd`: nothing when no input takes a gradient, else the gradients in
/// the inputs' element type.
pub(crate) fn backward<K: Kernel3>(
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
