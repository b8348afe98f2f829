//! [`EpochIter`]: the batches of one epoch, loaded inline or by a worker pool.

use std::sync::Arc;

use super::pool::{Pool, load_item};
use super::{Batch, LoaderConfig};
use crate::{DataError, Dataset, Mapper};

/// The batches of one epoch, in order, as `Result`s; the first error ends the iteration.
///
/// A batch whose items were all left out ([`DataError::Skipped`]) is not yielded; the batch
/// indices of the others stay those of the full plan.
pub struct EpochIter<D, M>
where
    D: Dataset,
    M: Mapper<D::Item>,
{
    dataset: Arc<D>,
    mapper: Arc<M>,
    epoch: u64,
    first_batch: usize,
    plan: Vec<Vec<usize>>,
    next: usize,
    pool: Option<Pool<M::Output>>,
    error: Option<DataError>,
    finished: bool,
}

impl<D, M> EpochIter<D, M>
where
    D: Dataset + 'static,
    M: Mapper<D::Item> + 'static,
{
    pub(super) fn new(
        dataset: Arc<D>,
        mapper: Arc<M>,
        config: &LoaderConfig,
        epoch: u64,
        first_batch: usize,
        plan: Vec<Vec<usize>>,
    ) -> Self {
        let mut iter = Self {
            dataset,
            mapper,
            epoch,
            first_batch,
            plan,
            next: 0,
            pool: None,
            error: None,
            finished: false,
        };
        if config.workers > 0 && !iter.plan.is_empty() {
            match Pool::start(
                iter.dataset.clone(),
                iter.mapper.clone(),
                epoch,
                config.workers,
                config.prefetch_batches,
                config.batch_size,
            ) {
                Ok(pool) => iter.pool = Some(pool),
                Err(e) => iter.error = Some(e),
            }
        }
        iter
    }

    /// An iterator that yields `error` once.
    pub(super) fn failed(dataset: Arc<D>, mapper: Arc<M>, epoch: u64, error: DataError) -> Self {
        Self {
            dataset,
            mapper,
            epoch,
            first_batch: 0,
            plan: Vec::new(),
            next: 0,
            pool: None,
            error: Some(error),
            finished: false,
        }
    }

    /// The number of batches not yet yielded (an upper bound when items are left out).
    pub fn remaining(&self) -> usize {
        if self.finished {
            0
        } else {
            self.plan.len() - self.next
        }
    }

    fn finish(&mut self) {
        self.finished = true;
        if let Some(mut pool) = self.pool.take() {
            pool.shutdown();
        }
    }

    /// Loads the batch at plan position `pos`.
    fn load(&mut self, pos: usize) -> Result<Batch<M::Output>, DataError> {
        let batch_index = self.first_batch + pos;
        let results = match self.pool.as_mut() {
            Some(pool) => pool.batch(pos, &self.plan, batch_index)?,
            None => self.plan[pos]
                .iter()
                .map(|&i| load_item(&*self.dataset, &*self.mapper, self.epoch, i))
                .collect(),
        };
        let mut batch = Batch {
            items: Vec::with_capacity(results.len()),
            indices: Vec::with_capacity(results.len()),
            source_indices: Vec::with_capacity(results.len()),
            skipped: Vec::new(),
            epoch: self.epoch,
            batch_index,
        };
        for (&index, result) in self.plan[pos].iter().zip(results) {
            match result {
                Ok(item) => {
                    batch.items.push(item);
                    batch.indices.push(index);
                    batch.source_indices.push(self.dataset.source_index(index));
                }
                Err(e) if e.is_skipped() => batch.skipped.push(index),
                Err(e) => return Err(e),
            }
        }
        Ok(batch)
    }
}

impl<D, M> Iterator for EpochIter<D, M>
where
    D: Dataset + 'static,
    M: Mapper<D::Item> + 'static,
{
    type Item = Result<Batch<M::Output>, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.finished {
                return None;
            }
            if let Some(e) = self.error.take() {
                self.finish();
                return Some(Err(e));
            }
            if self.next >= self.plan.len() {
                self.finish();
                return None;
            }
            let pos = self.next;
            self.next += 1;
            match self.load(pos) {
                Ok(batch) if batch.is_empty() => {
                    tracing::warn!(
                        epoch = self.epoch,
                        batch = batch.batch_index,
                        "every item of the batch was skipped"
                    );
                }
                Ok(batch) => return Some(Ok(batch)),
                Err(e) => {
                    self.finish();
                    return Some(Err(e));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (
            0,
            Some(self.remaining() + usize::from(self.error.is_some())),
        )
    }
}
