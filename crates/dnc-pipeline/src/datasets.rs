//! Opening the run's train and test splits.

use crate::config::{DataConfig, RunConfig};
use crate::error::PipelineError;
use dnc_data::{ImageFolder, ImageFolderConfig};
use std::path::Path;
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

fn folder_config(cfg: &DataConfig, limit: usize) -> ImageFolderConfig {
    ImageFolderConfig {
        cache_decoded: cfg.cache_decoded,
        on_corrupt: cfg.on_corrupt,
        limit: (limit > 0).then_some(limit),
    }
}

/// Opens a split with the configured subset, cache and corrupt-image policy: the training
/// images (`data.train`'s tree, else `<root>/train`) or `<root>/test`.
pub fn open_split(cfg: &DataConfig, split: Split) -> Result<Arc<ImageFolder>, PipelineError> {
    let folder = match (split, &cfg.train) {
        (Split::Train, Some(tree)) => {
            ImageFolder::open_tree(tree, &folder_config(cfg, cfg.train_limit))?
        }
        (Split::Train, None) => ImageFolder::open(
            cfg.root.join(split.folder()),
            &folder_config(cfg, cfg.train_limit),
        )?,
        (Split::Test, _) => ImageFolder::open(
            cfg.root.join(split.folder()),
            &folder_config(cfg, cfg.test_limit),
        )?,
    };
    Ok(Arc::new(folder))
}

/// The labelled folder evaluation reads (`train/` and `test/`): `eval.data`, else `data.root`
/// when the run trains on `<root>/train`; `None` when the run has no labelled data.
pub(crate) fn eval_root(cfg: &RunConfig) -> Option<&Path> {
    match (&cfg.eval.data, &cfg.data.train) {
        (Some(data), _) => Some(data),
        (None, None) => Some(&cfg.data.root),
        (None, Some(_)) => None,
    }
}

/// The labelled images of evaluation.
pub(crate) struct EvalSplits {
    /// The k-NN memory bank and linear-probe training set.
    pub(crate) bank: Arc<ImageFolder>,
    pub(crate) test: Arc<ImageFolder>,
}

/// The labelled images evaluation uses: the k-NN bank and probe training set (`data.eval_bank`
/// when set, else the evaluation folder's `train/`) and the test split; `None` without labelled
/// data.
pub(crate) fn open_eval_splits(cfg: &RunConfig) -> Result<Option<EvalSplits>, PipelineError> {
    let Some(root) = eval_root(cfg) else {
        return Ok(None);
    };
    let data = &cfg.data;
    // The run's own train split keeps its subset; another folder is read whole.
    let trains_here = data.train.is_none() && root == data.root;
    let bank = match &data.eval_bank {
        Some(bank) => ImageFolder::open(bank, &folder_config(data, data.eval_bank_limit))?,
        None => ImageFolder::open(
            root.join(Split::Train.folder()),
            &folder_config(data, if trains_here { data.train_limit } else { 0 }),
        )?,
    };
    let test = ImageFolder::open(
        root.join(Split::Test.folder()),
        &folder_config(data, data.test_limit),
    )?;
    Ok(Some(EvalSplits {
        bank: Arc::new(bank),
        test: Arc::new(test),
    }))
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
