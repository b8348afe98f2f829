//! [`Loader`]: seeded shuffling, batching and parallel loading of a dataset.
//!
//! The order of an epoch is a permutation derived from `(seed, epoch)` only, so resuming at
//! batch `k` of epoch `e` costs nothing (skipped batches are never loaded) and gives exactly the
//! batches an uninterrupted run would have seen. Items are loaded (`Dataset::get` then
//! `Mapper::map`) on worker threads and put back in order, so the batch sequence is the same for
//! any number of workers.

mod config;
mod epoch;
mod pool;

use std::sync::Arc;

use dnc_core::SeededRng;

pub use config::LoaderConfig;
pub use epoch::EpochIter;
pub(crate) use pool::panic_message;

use crate::{DataError, Dataset, Mapper};

/// Stream tag of the shuffling order, so that it never coincides with an augmentation stream
/// derived from the same seed.
const SHUFFLE_STREAM: u64 = 0x5348_5546_464c_4531;

/// The order of [`LoaderConfig::shuffle_buffer`]: the dataset's read groups (an item without one
/// is a group of its own) in a random order, each group's items in index order, streamed
/// through a buffer of `buffer` items from which each next item is drawn at random.
fn buffered_order<D: Dataset + ?Sized>(
    dataset: &D,
    buffer: usize,
    rng: &mut SeededRng,
) -> Vec<usize> {
    let n = dataset.len();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut slot_of: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    for i in 0..n {
        match dataset.read_group(i) {
            Some(g) => {
                let slot = *slot_of.entry(g).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[slot].push(i);
            }
            None => groups.push(vec![i]),
        }
    }
    let stream = rng
        .permutation(groups.len())
        .into_iter()
        .flat_map(|g| std::mem::take(&mut groups[g]));
    let mut held: Vec<usize> = Vec::with_capacity(buffer.min(n));
    let mut order = Vec::with_capacity(n);
    for i in stream {
        if held.len() < buffer {
            held.push(i);
        } else {
            let j = rng.below(buffer as u64) as usize;
            order.push(std::mem::replace(&mut held[j], i));
        }
    }
    rng.shuffle(&mut held);
    order.extend(held);
    order
}

/// One batch of mapped items, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch<T> {
    /// The mapped items.
    pub items: Vec<T>,
    /// The dataset index of each item.
    pub indices: Vec<usize>,
    /// The index of each item in the dataset the loaded one was cut from
    /// ([`Dataset::source_index`]), e.g. the original image of a [`Subset`](crate::Subset) item.
    pub source_indices: Vec<usize>,
    /// Dataset indices of this batch that were left out ([`DataError::Skipped`], e.g. corrupt
    /// images under `OnCorrupt::Skip`).
    pub skipped: Vec<usize>,
    /// The epoch the batch belongs to.
    pub epoch: u64,
    /// The batch's position in its epoch (counting batches that were skipped or left empty).
    pub batch_index: usize,
}

impl<T> Batch<T> {
    /// The number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch has no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Loads a dataset in batches through a mapper.
pub struct Loader<D, M> {
    dataset: Arc<D>,
    mapper: Arc<M>,
    config: LoaderConfig,
    /// `(rank, world_size)`: this process loads rows `rank·b .. (rank+1)·b` of every batch,
    /// `b = batch_size / world_size` (data-parallel training).
    share: (usize, usize),
}

impl<D: Dataset, M> std::fmt::Debug for Loader<D, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("items", &self.dataset.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<D, M> Loader<D, M>
where
    D: Dataset + 'static,
    M: Mapper<D::Item> + 'static,
{
    /// A loader of `dataset` through `mapper`. Fails on invalid settings and when an epoch would
    /// hold no batch (an empty dataset, or fewer items than `batch_size` with `drop_last`).
    pub fn new(dataset: Arc<D>, mapper: Arc<M>, config: LoaderConfig) -> Result<Self, DataError> {
        config.validate()?;
        if config.batches_for(dataset.len()) == 0 {
            return Err(DataError::invalid(
                "batch_size",
                config.batch_size,
                format!(
                    "the dataset has {} items, not enough for one batch (drop_last = {})",
                    dataset.len(),
                    config.drop_last
                ),
            ));
        }
        Ok(Self {
            dataset,
            mapper,
            config,
            share: (0, 1),
        })
    }

    /// Loads only this rank's share of every batch: of each batch of the plan (which depends
    /// only on the seed and the epoch, not on the world size), the `batch_size / world_size`
    /// items from position `rank · batch_size / world_size`. The ranks' shares, in rank order,
    /// are the whole batch. Fails unless `world_size` divides the batch size and `drop_last`
    /// is on (every batch full, so every share has the same size).
    pub fn with_share(mut self, rank: usize, world_size: usize) -> Result<Self, DataError> {
        if world_size == 0 || rank >= world_size {
            return Err(DataError::invalid(
                "rank",
                rank,
                format!("must be below the world size {world_size}"),
            ));
        }
        if world_size > 1
            && (!self.config.batch_size.is_multiple_of(world_size) || !self.config.drop_last)
        {
            return Err(DataError::invalid(
                "batch_size",
                self.config.batch_size,
                format!(
                    "data-parallel training over {world_size} processes splits every batch into \
                     equal shares: the batch size must be a multiple of {world_size}, with drop_last"
                ),
            ));
        }
        self.share = (rank, world_size);
        Ok(self)
    }

    /// The settings.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// The dataset being loaded.
    pub fn dataset(&self) -> &Arc<D> {
        &self.dataset
    }

    /// The number of batches in every epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.config.batches_for(self.dataset.len())
    }

    /// The order in which epoch `epoch` visits the dataset (before dropping the last batch).
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let n = self.dataset.len();
        let mut rng = SeededRng::derive(self.config.seed, &[SHUFFLE_STREAM, epoch]);
        match (self.config.shuffle, self.config.shuffle_buffer) {
            (false, _) => (0..n).collect(),
            (true, 0) => rng.permutation(n),
            (true, buffer) => buffered_order(&*self.dataset, buffer, &mut rng),
        }
    }

    /// The dataset indices of every batch of epoch `epoch` (this rank's share of each, see
    /// [`with_share`](Self::with_share)), without loading anything.
    pub fn batch_plan(&self, epoch: u64) -> Vec<Vec<usize>> {
        let order = self.epoch_order(epoch);
        let (rank, world) = self.share;
        let per_rank = self.config.batch_size / world;
        order
            .chunks(self.config.batch_size)
            .take(self.batches_per_epoch())
            .map(|batch| {
                if world == 1 {
                    batch.to_vec()
                } else {
                    batch[rank * per_rank..(rank + 1) * per_rank].to_vec()
                }
            })
            .collect()
    }

    /// The batches of epoch `epoch` from batch `skip_batches` on. The first error ends the
    /// iteration; dropping the iterator early stops the workers. `skip_batches` equal to
    /// [`batches_per_epoch`](Self::batches_per_epoch) gives an empty epoch, a larger one an error.
    pub fn epoch(&self, epoch: u64, skip_batches: usize) -> EpochIter<D, M> {
        let total = self.batches_per_epoch();
        if skip_batches > total {
            let error = DataError::invalid(
                "skip_batches",
                skip_batches,
                format!("an epoch has {total} batches"),
            );
            return EpochIter::failed(self.dataset.clone(), self.mapper.clone(), epoch, error);
        }
        let plan: Vec<Vec<usize>> = self.batch_plan(epoch).split_off(skip_batches);
        EpochIter::new(
            self.dataset.clone(),
            self.mapper.clone(),
            &self.config,
            epoch,
            skip_batches,
            plan,
        )
    }
}

#[cfg(test)]
mod tests;
