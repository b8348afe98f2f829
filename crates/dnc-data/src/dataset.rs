//! The [`Dataset`] trait: random access to items by index.

use crate::DataError;
use crate::decode::SizeRequest;

/// A finite collection of items addressed by `0..len()`, safe to read from many threads.
///
/// `get` does the expensive work (reading and decoding a file), so that the
/// [`Loader`](crate::Loader)'s worker threads do it in parallel.
pub trait Dataset: Send + Sync {
    /// What one index yields, e.g. a decoded image with its label.
    type Item: Send;

    /// The number of items.
    fn len(&self) -> usize;

    /// The item at `index` (`index < len()`).
    fn get(&self, index: usize) -> Result<Self::Item, DataError>;

    /// The item at `index`, decoded no larger than needed: `want(width, height)` gives, from the
    /// full image's size, the smallest size its consumer can use. A dataset of images may then
    /// decode a smaller image of the same aspect ratio, at least that large on both axes (see
    /// [`ImageFolder`](crate::ImageFolder)); any other dataset returns [`get`](Self::get).
    fn get_sized(&self, index: usize, want: SizeRequest<'_>) -> Result<Self::Item, DataError> {
        let _ = want;
        self.get(index)
    }

    /// The group item `index` is best read with, in index order: the samples of one tar shard,
    /// which a [`LoaderConfig::shuffle_buffer`](crate::LoaderConfig::shuffle_buffer) then reads
    /// near-sequentially. `None` (the default): the item stands alone.
    fn read_group(&self, index: usize) -> Option<u32> {
        let _ = index;
        None
    }

    /// Whether the dataset has no items.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index of item `index` in the dataset this one was cut from: itself for a base dataset,
    /// the original index for a [`Subset`](crate::Subset) (through any nesting).
    fn source_index(&self, index: usize) -> usize {
        index
    }
}

/// Items held in memory; each `get` clones one out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InMemory<T> {
    items: Vec<T>,
}

impl<T> InMemory<T> {
    /// A dataset of `items`, in order.
    pub fn new(items: Vec<T>) -> Self {
        Self { items }
    }

    /// The items.
    pub fn items(&self) -> &[T] {
        &self.items
    }
}

impl<T: Clone + Send + Sync> Dataset for InMemory<T> {
    type Item = T;

    fn len(&self) -> usize {
        self.items.len()
    }

    fn get(&self, index: usize) -> Result<T, DataError> {
        self.items
            .get(index)
            .cloned()
            .ok_or(DataError::IndexOutOfRange {
                index,
                len: self.items.len(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_dataset_reads_and_bounds_checks() {
        let d = InMemory::new(vec![10u32, 11, 12]);
        assert_eq!(d.len(), 3);
        assert!(!d.is_empty());
        assert_eq!(d.get(2).unwrap(), 12);
        assert_eq!(d.source_index(1), 1);
        match d.get(3) {
            Err(DataError::IndexOutOfRange { index: 3, len: 3 }) => {}
            other => panic!("expected IndexOutOfRange, got {other:?}"),
        }
        assert!(InMemory::<u8>::new(Vec::new()).is_empty());
    }
}
