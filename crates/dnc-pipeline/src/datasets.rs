//! Opening the run's train and test splits.

use crate::config::DataConfig;
use crate::error::PipelineError;
use dnc_data::{ImageFolder, ImageFolderConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// A split of the data folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    fn folder(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "test",
        }
    }
}

/// The path of a split: `<root>/train` or `<root>/test`.
pub(crate) fn split_path(cfg: &DataConfig, split: Split) -> PathBuf {
    cfg.root.join(split.folder())
}

/// Opens a split with the configured subset, cache and corrupt-image policy.
pub fn open_split(cfg: &DataConfig, split: Split) -> Result<Arc<ImageFolder>, PipelineError> {
    let limit = match split {
        Split::Train => cfg.train_limit,
        Split::Test => cfg.test_limit,
    };
    let folder_cfg = ImageFolderConfig {
        cache_decoded: cfg.cache_decoded,
        on_corrupt: cfg.on_corrupt,
        limit: (limit > 0).then_some(limit),
    };
    Ok(Arc::new(ImageFolder::open(
        split_path(cfg, split),
        &folder_cfg,
    )?))
}

/// The labelled images evaluation uses as k-NN bank and probe training set: `data.eval_bank`
/// when set, else the train split.
pub(crate) fn open_eval_bank(cfg: &DataConfig) -> Result<Arc<ImageFolder>, PipelineError> {
    let Some(bank) = &cfg.eval_bank else {
        return open_split(cfg, Split::Train);
    };
    let folder_cfg = ImageFolderConfig {
        cache_decoded: cfg.cache_decoded,
        on_corrupt: cfg.on_corrupt,
        limit: (cfg.eval_bank_limit > 0).then_some(cfg.eval_bank_limit),
    };
    Ok(Arc::new(ImageFolder::open(bank, &folder_cfg)?))
}

/// Reports the images a split skipped as corrupt (a warning, and the count for the summary).
pub(crate) fn report_corrupt(folder: &ImageFolder, split: Split) -> usize {
    let skipped = folder.corrupt_paths();
    for (_, path) in skipped.iter().take(20) {
        tracing::warn!("skipped corrupt image {}", path.display());
    }
    if skipped.len() > 20 {
        tracing::warn!(
            "... and {} more corrupt images in {:?}",
            skipped.len() - 20,
            split
        );
    }
    skipped.len()
}
