//! The worker threads of an epoch: items are loaded out of order and handed back by position.
//!
//! The consumer dispatches the items of at most `prefetch` batches ahead of the one it waits
//! for, so at most `prefetch × batch_size` items are in flight and both channels (bounded to that
//! size) never block. Dropping the pool raises a cancel flag and closes both channels: workers
//! stop after the item in hand, and the pool joins them.

use std::any::Any;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::{DataError, Dataset, ItemContext, Mapper};

/// Loads and maps one item; a panic in the dataset or the mapper becomes an error.
pub(super) fn load_item<D, M>(
    dataset: &D,
    mapper: &M,
    epoch: u64,
    index: usize,
) -> Result<M::Output, DataError>
where
    D: Dataset,
    M: Mapper<D::Item>,
{
    catch_unwind(AssertUnwindSafe(|| {
        let ctx = ItemContext {
            epoch,
            index,
            source_index: dataset.source_index(index),
        };
        let item = dataset.get_sized(index, &|w, h| mapper.decode_size(ctx, w, h))?;
        mapper.map(item, ctx)
    }))
    .unwrap_or_else(|payload| {
        Err(DataError::WorkerPanicked {
            index,
            message: panic_message(payload.as_ref()),
        })
    })
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// One item to load: slot `slot` of the batch at plan position `pos`.
struct Job {
    pos: usize,
    slot: usize,
    index: usize,
}

/// A loaded item.
struct Done<O> {
    pos: usize,
    slot: usize,
    result: Result<O, DataError>,
}

/// The results of one dispatched batch, filled in as they arrive.
struct Pending<O> {
    slots: Vec<Option<Result<O, DataError>>>,
    missing: usize,
}

/// Worker threads loading the items of one epoch.
pub(super) struct Pool<O> {
    jobs: Option<Sender<Job>>,
    results: Option<Receiver<Done<O>>>,
    cancel: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
    pending: HashMap<usize, Pending<O>>,
    dispatched: usize,
    prefetch: usize,
}

impl<O: Send + 'static> Pool<O> {
    /// Starts `workers` threads.
    pub(super) fn start<D, M>(
        dataset: Arc<D>,
        mapper: Arc<M>,
        epoch: u64,
        workers: usize,
        prefetch: usize,
        batch_size: usize,
    ) -> Result<Self, DataError>
    where
        D: Dataset + 'static,
        M: Mapper<D::Item, Output = O> + 'static,
    {
        let capacity = prefetch * batch_size;
        let (job_tx, job_rx) = bounded::<Job>(capacity);
        let (done_tx, done_rx) = bounded::<Done<O>>(capacity);
        let mut pool = Self {
            jobs: Some(job_tx),
            results: Some(done_rx),
            cancel: Arc::new(AtomicBool::new(false)),
            handles: Vec::with_capacity(workers),
            pending: HashMap::new(),
            dispatched: 0,
            prefetch,
        };
        for w in 0..workers {
            let (dataset, mapper) = (dataset.clone(), mapper.clone());
            let (jobs, results, cancel) = (job_rx.clone(), done_tx.clone(), pool.cancel.clone());
            let handle = std::thread::Builder::new()
                .name(format!("dnc-loader-{w}"))
                .spawn(move || {
                    while let Ok(job) = jobs.recv() {
                        if cancel.load(Ordering::Relaxed) {
                            return;
                        }
                        let result = load_item(&*dataset, &*mapper, epoch, job.index);
                        let done = Done {
                            pos: job.pos,
                            slot: job.slot,
                            result,
                        };
                        if results.send(done).is_err() {
                            return;
                        }
                    }
                })
                .map_err(DataError::Spawn)?; // `pool` is dropped here, stopping the others.
            pool.handles.push(handle);
        }
        Ok(pool)
    }

    /// The results of the batch at plan position `pos`, in slot order, after dispatching the
    /// batches up to `pos + prefetch`.
    pub(super) fn batch(
        &mut self,
        pos: usize,
        plan: &[Vec<usize>],
        batch_index: usize,
    ) -> Result<Vec<Result<O, DataError>>, DataError> {
        self.dispatch_until((pos + self.prefetch).min(plan.len()), plan);
        let results = self
            .results
            .as_ref()
            .ok_or(DataError::WorkersGone { batch_index })?;
        while self.pending.get(&pos).is_some_and(|p| p.missing > 0) {
            let done = results
                .recv()
                .map_err(|_| DataError::WorkersGone { batch_index })?;
            let Some(pending) = self.pending.get_mut(&done.pos) else {
                continue;
            };
            pending.slots[done.slot] = Some(done.result);
            pending.missing -= 1;
        }
        let pending = self
            .pending
            .remove(&pos)
            .ok_or(DataError::WorkersGone { batch_index })?;
        Ok(pending.slots.into_iter().flatten().collect())
    }

    fn dispatch_until(&mut self, end: usize, plan: &[Vec<usize>]) {
        let Some(jobs) = self.jobs.as_ref() else {
            return;
        };
        while self.dispatched < end {
            let pos = self.dispatched;
            let indices = &plan[pos];
            for (slot, &index) in indices.iter().enumerate() {
                // Never blocks: at most `prefetch` batches are in flight (see the module doc), and
                // a send fails only once every worker has stopped, which `batch` then reports.
                if jobs.send(Job { pos, slot, index }).is_err() {
                    return;
                }
            }
            self.pending.insert(
                pos,
                Pending {
                    slots: (0..indices.len()).map(|_| None).collect(),
                    missing: indices.len(),
                },
            );
            self.dispatched += 1;
        }
    }
}

impl<O> Pool<O> {
    /// Stops and joins the workers: they finish the item in hand and see the cancel flag or the
    /// closed channels.
    pub(super) fn shutdown(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        self.jobs = None;
        self.results = None;
        self.pending.clear();
        for handle in self.handles.drain(..) {
            // A worker cannot panic (items are loaded under `catch_unwind`); a join error would
            // only repeat what the batch results already reported.
            let _ = handle.join();
        }
    }
}

impl<O> Drop for Pool<O> {
    fn drop(&mut self) {
        self.shutdown();
    }
}
