//! Collectives on values and on candle tensors, the tensor ones with a backward pass.
//!
//! In data-parallel training every rank back-propagates its own loss `L_r`. Where a value
//! depends on every rank (a statistic summed over ranks, negatives gathered from all of them),
//! the gradient of the total `Σ_s L_s` with respect to this rank's input sums what every rank
//! sent back, so the backward pass of both collectives is itself an all-reduce. Summed (or
//! averaged, [`average_gradients`]) over ranks, the parameters' gradients are then those of
//! one process computing every rank's loss.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use candle_core::backend::BackendStorage;
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor, Var};

use crate::{Communicator, DistError};

/// Nanoseconds this process has spent in collectives, waiting for other ranks included.
static COMMUNICATION_NANOS: AtomicU64 = AtomicU64::new(0);

/// Seconds this process has spent in collectives so far (sending, receiving and waiting for
/// the other ranks): the difference over a step is the step's communication time.
pub fn communication_seconds() -> f64 {
    COMMUNICATION_NANOS.load(Ordering::Relaxed) as f64 * 1e-9
}

/// Runs one collective, adding its time to [`communication_seconds`].
fn timed<T>(collective: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = collective();
    COMMUNICATION_NANOS.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
}

/// Every rank's `local`, concatenated in rank order ([`Communicator::all_gather_f64`]), its
/// time counted in [`communication_seconds`]. Callers outside this crate gather through here.
pub fn all_gather_f64(comm: &dyn Communicator, local: &[f64]) -> Result<Vec<f64>> {
    Ok(timed(|| comm.all_gather_f64(local))?)
}

/// Sums `values` over ranks in place, in rank order (the same bits on every rank).
pub fn all_reduce_sum_f32(comm: &dyn Communicator, values: &mut [f32]) -> Result<()> {
    let world = comm.world_size();
    if world == 1 {
        return Ok(());
    }
    let all = timed(|| comm.all_gather_f32(values))?;
    sum_in_rank_order(&all, values);
    Ok(())
}

/// As [`all_reduce_sum_f32`], in `f64`.
pub fn all_reduce_sum_f64(comm: &dyn Communicator, values: &mut [f64]) -> Result<()> {
    if comm.world_size() == 1 {
        return Ok(());
    }
    let all = all_gather_f64(comm, values)?;
    sum_in_rank_order(&all, values);
    Ok(())
}

fn sum_in_rank_order<T: Copy + std::ops::Add<Output = T>>(all: &[T], out: &mut [T]) {
    let n = out.len();
    out.copy_from_slice(&all[..n]);
    for part in all[n..].chunks_exact(n.max(1)) {
        for (o, &v) in out.iter_mut().zip(part) {
            *o = *o + v;
        }
    }
}

/// The mean of each of `values` over ranks.
pub fn mean_over_ranks(comm: &dyn Communicator, values: &[f64]) -> Result<Vec<f64>> {
    let mut sums = values.to_vec();
    all_reduce_sum_f64(comm, &mut sums)?;
    let world = comm.world_size() as f64;
    Ok(sums.into_iter().map(|s| s / world).collect())
}

/// `Σ_ranks x`, element-wise, with a backward pass (the gradient reaching each rank's `x` is
/// the sum of every rank's gradient of the result). `x` has the same shape on every rank and
/// is `f32` or `f64`; on a GPU it goes through host memory.
pub fn all_reduce_sum(x: &Tensor, comm: &Arc<dyn Communicator>) -> Result<Tensor> {
    if comm.world_size() == 1 {
        return Ok(x.clone());
    }
    through_host(x, |host| {
        host.apply_op1(AllReduceSum { comm: comm.clone() })
    })
}

/// Every rank's `x` stacked along dimension 0 in rank order (`[W·B, ...]` from `[B, ...]`),
/// with a backward pass (each rank's `x` gets its rows of the summed gradient). `x` has the
/// same shape on every rank.
pub fn all_gather_rows(x: &Tensor, comm: &Arc<dyn Communicator>) -> Result<Tensor> {
    if comm.world_size() == 1 {
        return Ok(x.clone());
    }
    through_host(x, |host| {
        host.apply_op1(AllGatherRows { comm: comm.clone() })
    })
}

/// Runs `op` on a contiguous host copy of `x` and brings the result back to `x`'s device.
fn through_host(x: &Tensor, op: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let host = x.to_device(&Device::Cpu)?.contiguous()?;
    op(&host)?.to_device(x.device())
}

/// The contiguous values of a host tensor.
fn values<'a, T: candle_core::WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
) -> Result<&'a [T]> {
    let slice = storage.as_slice::<T>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&slice[start..end]),
        None => candle_core::bail!("a collective needs a contiguous tensor"),
    }
}

fn unsupported(op: &'static str, dtype: DType) -> candle_core::Error {
    DistError::Unsupported {
        op,
        reason: format!("carries f32 and f64 tensors, got {dtype:?}"),
    }
    .into()
}

struct AllReduceSum {
    comm: Arc<dyn Communicator>,
}

impl CustomOp1 for AllReduceSum {
    fn name(&self) -> &'static str {
        "all-reduce-sum"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let shape = layout.shape().clone();
        let out = match storage.dtype() {
            DType::F32 => {
                let mut v = values::<f32>(storage, layout)?.to_vec();
                all_reduce_sum_f32(&*self.comm, &mut v)?;
                CpuStorage::F32(v)
            }
            DType::F64 => {
                let mut v = values::<f64>(storage, layout)?.to_vec();
                all_reduce_sum_f64(&*self.comm, &mut v)?;
                CpuStorage::F64(v)
            }
            other => return Err(unsupported(self.name(), other)),
        };
        Ok((out, shape))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        all_reduce_sum(&grad_res.detach(), &self.comm).map(Some)
    }
}

struct AllGatherRows {
    comm: Arc<dyn Communicator>,
}

impl CustomOp1 for AllGatherRows {
    fn name(&self) -> &'static str {
        "all-gather-rows"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let mut dims = layout.dims().to_vec();
        if dims.is_empty() {
            candle_core::bail!("all_gather_rows needs a tensor with rows, got a scalar")
        }
        dims[0] *= self.comm.world_size();
        let out = match storage.dtype() {
            DType::F32 => {
                let local = values(storage, layout)?;
                CpuStorage::F32(timed(|| self.comm.all_gather_f32(local))?)
            }
            DType::F64 => {
                let local = values(storage, layout)?;
                CpuStorage::F64(timed(|| self.comm.all_gather_f64(local))?)
            }
            other => return Err(unsupported(self.name(), other)),
        };
        Ok((out, Shape::from(dims)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let rows = arg.dim(0)?;
        let summed = all_reduce_sum(&grad_res.detach(), &self.comm)?;
        summed.narrow(0, self.comm.rank() * rows, rows).map(Some)
    }
}

/// Replaces each parameter's gradient in `grads` by its mean over ranks, in one collective.
///
/// Every rank passes the same parameters in the same order. A parameter without a gradient on
/// a rank (a distillation head whose cluster has no image in that rank's share) counts as a
/// zero gradient there; when any rank has one, every rank gets the mean, so that every rank
/// updates it alike and the ranks' weights stay equal.
pub fn average_gradients(
    grads: &mut GradStore,
    params: &[(String, Var)],
    comm: &dyn Communicator,
) -> Result<()> {
    let world = comm.world_size();
    if world == 1 {
        return Ok(());
    }
    let total: usize = params.iter().map(|(_, v)| v.elem_count()).sum();
    let mut flat: Vec<f32> = Vec::with_capacity(total + params.len());
    for (_, var) in params {
        match grads.get(var.as_tensor()) {
            Some(g) => flat.extend(g.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?),
            None => flat.extend(std::iter::repeat_n(0f32, var.elem_count())),
        }
    }
    // Which parameters have a gradient here, summed into how many ranks have one.
    flat.extend(
        params
            .iter()
            .map(|(_, v)| f32::from(u8::from(grads.get(v.as_tensor()).is_some()))),
    );
    all_reduce_sum_f32(comm, &mut flat)?;
    let (sums, present) = flat.split_at(total);
    let scale = 1.0 / world as f32;
    let mut offset = 0;
    for ((_, var), &ranks_with_grad) in params.iter().zip(present) {
        let n = var.elem_count();
        if ranks_with_grad > 0.0 {
            let mean: Vec<f32> = sums[offset..offset + n].iter().map(|v| v * scale).collect();
            let mean = Tensor::from_vec(mean, var.shape(), &Device::Cpu)?
                .to_dtype(var.dtype())?
                .to_device(var.device())?;
            grads.insert(var.as_tensor(), mean);
        }
        offset += n;
    }
    Ok(())
}

/// Checks that every rank holds the same `value` (a position, a decision read from shared
/// files), so that the ranks make the same collective calls from here on; the error names
/// what disagrees and every rank's value.
pub fn agree(comm: &dyn Communicator, what: &str, value: f64) -> Result<()> {
    if comm.world_size() == 1 {
        return Ok(());
    }
    let all = all_gather_f64(comm, &[value])?;
    if all.iter().any(|v| *v != all[0]) {
        return Err(DistError::Launch(format!(
            "the ranks disagree on {what}: {all:?} (rank order); every rank must see the same run \
             directory"
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
