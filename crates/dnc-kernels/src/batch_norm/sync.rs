//! Batch statistics over several processes (synchronised BatchNorm in data-parallel training).
//!
//! While a [`SyncedBatchNorm`] guard lives on a thread, every training-mode batch norm the
//! kernels run there takes its statistics over all processes of the group: the forward pass
//! sums the per-channel `Σx`, `Σx²` and value counts through the guard's [`MomentSums`], and the
//! backward pass sums the two per-channel sums of the input gradient (`Σ dy`, `Σ dy·(x − μ)`)
//! the same way, so that `dx` is the gradient of the whole batch's normalisation. The weight
//! and bias gradients stay this process's own; summed over the processes (as data-parallel
//! training does) they are the whole batch's. The sums are captured by the op when it runs, so
//! the backward pass may run after the guard is gone.

use std::cell::RefCell;
use std::sync::Arc;

/// Sums values over the processes of a data-parallel group, in place; every process calls it
/// with the same length at the same point.
pub trait MomentSums: Send + Sync {
    fn sum(&self, values: &mut [f64]) -> candle_core::Result<()>;
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<dyn MomentSums>>> = const { RefCell::new(None) };
}

/// Batch norms on this thread take their statistics through `sums` until the guard is dropped.
pub fn synced_batch_norm(sums: Arc<dyn MomentSums>) -> SyncedBatchNorm {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(sums));
    SyncedBatchNorm { previous }
}

/// See [`synced_batch_norm`].
#[must_use = "the statistics are synchronised only while the guard lives"]
pub struct SyncedBatchNorm {
    previous: Option<Arc<dyn MomentSums>>,
}

impl Drop for SyncedBatchNorm {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// The sums of the guard alive on this thread, if any.
pub(crate) fn current() -> Option<Arc<dyn MomentSums>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Sums `values` through `sums`. The kernels' passes cannot return an error, and a failed
/// collective leaves the processes out of step, so it ends this one.
pub(crate) fn sum_or_panic(sums: &dyn MomentSums, values: &mut [f64]) {
    if let Err(e) = sums.sum(values) {
        panic!("synchronised batch norm: summing the statistics over processes failed: {e}");
    }
}
