//! [`LoaderConfig`]: batching, shuffling and threading of a [`Loader`](crate::Loader).

use serde::{Deserialize, Serialize};

use crate::DataError;

/// How a [`Loader`](crate::Loader) batches a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoaderConfig {
    /// Items per batch (the paper trains with 4096; 256 is the usual single-device choice).
    pub batch_size: usize,
    /// Visit the items in a random order, a new one each epoch, derived from `(seed, epoch)`.
    pub shuffle: bool,
    /// 0: shuffle all items at once. N > 0: read the dataset's groups (the samples of one tar
    /// shard, [`Dataset::read_group`](crate::Dataset::read_group)) whole, in index order, the
    /// groups in a seeded random order, through a shuffle buffer of N items (each item out is
    /// drawn at random from the N held, as WebDataset does), so that reads move through a few
    /// shards at a time instead of seeking across all of them.
    pub shuffle_buffer: usize,
    /// Leave out the last, incomplete batch of an epoch (contrastive losses want full batches).
    pub drop_last: bool,
    /// Seed of the shuffling order.
    pub seed: u64,
    /// Threads that decode and map items; 0 loads on the caller's thread.
    pub workers: usize,
    /// Batches loaded ahead of the one being consumed (with `workers > 0`), at least 1.
    pub prefetch_batches: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            shuffle: true,
            shuffle_buffer: 0,
            drop_last: true,
            seed: 0,
            workers: 2,
            prefetch_batches: 2,
        }
    }
}

impl LoaderConfig {
    /// Checks the values on their own (the dataset size is checked by [`Loader::new`](crate::Loader::new)).
    pub fn validate(&self) -> Result<(), DataError> {
        if self.batch_size == 0 {
            return Err(DataError::invalid("batch_size", 0, "must be at least 1"));
        }
        if self.prefetch_batches == 0 {
            return Err(DataError::invalid(
                "prefetch_batches",
                0,
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The number of batches in an epoch over `len` items.
    pub fn batches_for(&self, len: usize) -> usize {
        if self.drop_last {
            len / self.batch_size
        } else {
            len.div_ceil(self.batch_size)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_counts_and_validation() {
        let mut c = LoaderConfig {
            batch_size: 4,
            ..Default::default()
        };
        assert_eq!(c.batches_for(10), 2);
        c.drop_last = false;
        assert_eq!(
            (c.batches_for(10), c.batches_for(8), c.batches_for(0)),
            (3, 2, 0)
        );
        assert!(c.validate().is_ok());
        c.batch_size = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("batch_size = 0")
        );
        let c = LoaderConfig {
            prefetch_batches: 0,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().is_parameter_error());
    }

    #[test]
    fn reads_from_toml() {
        let c: LoaderConfig = toml::from_str("batch_size = 64\nworkers = 0").unwrap();
        assert_eq!((c.batch_size, c.workers, c.prefetch_batches), (64, 0, 2));
        assert!(toml::from_str::<LoaderConfig>("threads = 4").is_err());
    }
}
