//! Opening the run's train and test splits.

use crate::config::RunConfig;
use crate::error::PipelineError;
use crate::run::Run;
use dnc_data::{ImageFolder, ImageFolderConfig, ResizedCacheConfig};
use std::path::{Path, PathBuf};
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

fn folder_config(run: &Run, limit: usize) -> ImageFolderConfig {
    let cfg = &run.cfg.data;
    ImageFolderConfig {
        resized_cache: cfg.cache_resized.then(|| resized_cache(run)),
        on_corrupt: cfg.on_corrupt,
        limit: (limit > 0).then_some(limit),
        subset: cfg.subset,
        max_image_pixels: cfg.max_image_pixels,
    }
}

/// `data.cache_resized`: images shrunk to the views' size (the larger of the two, which the
/// evaluation transform also uses) in `<run>/cache/`, built on every core.
fn resized_cache(run: &Run) -> ResizedCacheConfig {
    let augment = &run.cfg.augment;
    ResizedCacheConfig {
        dir: run.dir.resized_cache_dir(),
        side: augment.view1.size.max(augment.view2.size),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// Opens a split with the configured subset, cache and corrupt-image policy: the training
/// images (`data.train`: a folder tree, a list file or WebDataset shards; else `<root>/train`)
/// or `<root>/test`.
pub fn open_split(run: &Run, split: Split) -> Result<Arc<ImageFolder>, PipelineError> {
    let cfg = &run.cfg.data;
    let folder = match (split, &cfg.train) {
        (Split::Train, Some(tree)) => {
            ImageFolder::open_unlabelled(tree, &folder_config(run, cfg.train_limit))?
        }
        (Split::Train, None) => ImageFolder::open(
            cfg.root.join(split.folder()),
            &folder_config(run, cfg.train_limit),
        )?,
        (Split::Test, _) => ImageFolder::open(
            cfg.root.join(split.folder()),
            &folder_config(run, cfg.test_limit),
        )?,
    };
    folder.check_readable()?;
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
pub(crate) fn open_eval_splits(run: &Run) -> Result<Option<EvalSplits>, PipelineError> {
    let cfg = &run.cfg;
    let Some(root) = eval_root(cfg) else {
        return Ok(None);
    };
    let data = &cfg.data;
    // The run's own train split keeps its subset; another folder is read whole.
    let trains_here = data.train.is_none() && root == data.root;
    let bank = match &data.eval_bank {
        Some(bank) => ImageFolder::open(bank, &folder_config(run, data.eval_bank_limit))?,
        None => ImageFolder::open(
            root.join(Split::Train.folder()),
            &folder_config(run, if trains_here { data.train_limit } else { 0 }),
        )?,
    };
    let test = ImageFolder::open(
        root.join(Split::Test.folder()),
        &folder_config(run, data.test_limit),
    )?;
    bank.check_readable()?;
    test.check_readable()?;
    Ok(Some(EvalSplits {
        bank: Arc::new(bank),
        test: Arc::new(test),
    }))
}

/// How many skipped files a stage names, in its warning and in `summary.json`.
const NAMED_SKIPS: usize = 20;

/// Records the images a stage skipped as unreadable or undecodable: a warning naming up to 20 of
/// them, and `info.<stage>.skipped` in `summary.json` (`count` and up to 20 `examples`). Returns
/// the count.
pub(crate) fn record_skipped(
    run: &Run,
    stage: &str,
    folders: &[&ImageFolder],
) -> Result<usize, PipelineError> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for folder in folders {
        paths.extend(folder.corrupt_paths().into_iter().map(|(_, p)| p));
    }
    paths.sort();
    paths.dedup();
    for path in paths.iter().take(NAMED_SKIPS) {
        tracing::warn!(stage, "skipped unreadable image {}", path.display());
    }
    if paths.len() > NAMED_SKIPS {
        tracing::warn!(
            stage,
            "... and {} more unreadable images",
            paths.len() - NAMED_SKIPS
        );
    }
    let record = serde_json::json!({
        "count": paths.len(),
        "examples": paths.iter().take(NAMED_SKIPS).map(|p| p.display().to_string()).collect::<Vec<_>>(),
    });
    run.dir.update_summary(|s| {
        let entry = s
            .info
            .entry(stage.to_string())
            .or_insert_with(|| serde_json::json!({}));
        if !entry.is_object() {
            *entry = serde_json::json!({});
        }
        entry["skipped"] = record;
    })?;
    Ok(paths.len())
}
