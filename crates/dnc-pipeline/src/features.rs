//! Embedding a split without augmentation (resize + centre crop + normalise), in dataset order,
//! on the loader's worker threads, with a progress bar.

use crate::config::RunConfig;
use crate::error::PipelineError;
use candle_core::{Device, Tensor};
use dnc_augment::{EvalConfig, EvalMapper};
use dnc_data::{Dataset, ImageItem, Loader, LoaderConfig, stack_chw};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;

/// What an embedding pass returns: one row per image that could be read.
pub(crate) struct Embedded {
    /// One `[N, D_i]` matrix per output of the embedding function.
    pub outputs: Vec<Tensor>,
    /// Dataset index of every row.
    pub indices: Vec<usize>,
    /// Label of every row (`None` for unlabelled data).
    pub labels: Vec<Option<u32>>,
}

impl Embedded {
    /// The rows with a label, and those labels: what accuracy is measured on. Images of
    /// unlabelled folders (`~distractors`) in a labelled split are left out.
    pub(crate) fn labelled(self) -> Result<Labelled, PipelineError> {
        if self.labels.iter().all(Option::is_some) {
            return Ok(Labelled {
                labels: self.labels.into_iter().flatten().collect(),
                outputs: self.outputs,
                indices: self.indices,
            });
        }
        let rows: Vec<u32> = (0..self.labels.len() as u32)
            .filter(|&r| self.labels[r as usize].is_some())
            .collect();
        let device = match self.outputs.first() {
            Some(t) => t.device().clone(),
            None => Device::Cpu,
        };
        let ids = Tensor::new(rows.as_slice(), &device)?;
        let outputs = self
            .outputs
            .iter()
            .map(|t| t.index_select(&ids, 0))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let indices = rows.iter().map(|&r| self.indices[r as usize]).collect();
        let labels = self.labels.into_iter().flatten().collect();
        Ok(Labelled {
            outputs,
            indices,
            labels,
        })
    }
}

/// The labelled rows of an [`Embedded`] pass.
pub(crate) struct Labelled {
    pub outputs: Vec<Tensor>,
    pub indices: Vec<usize>,
    pub labels: Vec<u32>,
}

/// The evaluation transform matching the training views' size and normalisation.
pub(crate) fn eval_config(run: &RunConfig) -> EvalConfig {
    let view = &run.augment.view1;
    EvalConfig {
        resize: view.size,
        crop: view.size,
        mean: view.mean,
        std: view.std,
    }
}

/// One embedded batch: the outputs of the embedding function, and each row's dataset index and
/// label.
pub(crate) struct EmbeddedBatch {
    pub outputs: Vec<Tensor>,
    pub indices: Vec<usize>,
    pub labels: Vec<Option<u32>>,
}

/// Streams `dataset` through `embed` (which returns one or more `[B, D_i]` tensors per batch) in
/// batches of `batch_size` and hands each embedded batch to `sink`, in dataset order, holding no
/// more than one batch.
pub(crate) fn for_each_embedded<D, F, S>(
    run: &RunConfig,
    batch_size: usize,
    dataset: Arc<D>,
    device: &Device,
    label: &str,
    mut embed: F,
    mut sink: S,
) -> Result<(), PipelineError>
where
    D: Dataset<Item = ImageItem> + 'static,
    F: FnMut(&Tensor) -> candle_core::Result<Vec<Tensor>>,
    S: FnMut(EmbeddedBatch) -> Result<(), PipelineError>,
{
    let eval = eval_config(run);
    let size = eval.crop as usize;
    let mapper = EvalMapper::new(eval).map_err(|e| PipelineError::Other(e.to_string()))?;
    let loader_cfg = LoaderConfig {
        batch_size,
        shuffle: false,
        shuffle_buffer: 0,
        drop_last: false,
        seed: 0,
        workers: run.data.workers,
        prefetch_batches: run.data.prefetch_batches.max(1),
    };
    let n = dataset.len();
    let loader = Loader::new(dataset, Arc::new(mapper), loader_cfg)?;
    let bar = progress(n as u64, label);
    for batch in loader.epoch(0, 0) {
        let batch = batch?;
        bar.inc((batch.items.len() + batch.skipped.len()) as u64);
        if batch.items.is_empty() {
            continue;
        }
        let images = stack_chw(
            batch.items.iter().map(|it| it.image.as_slice()),
            (3, size, size),
            device,
        )?;
        let outputs = embed(&images)?.into_iter().map(|t| t.detach()).collect();
        sink(EmbeddedBatch {
            outputs,
            indices: batch.indices.clone(),
            labels: batch.items.iter().map(|it| it.label).collect(),
        })?;
    }
    bar.finish_and_clear();
    Ok(())
}

/// Streams `dataset` through `embed` and keeps every row in memory (for the evaluation splits;
/// the training split's features go to disk, [`crate::feature_store`]).
pub(crate) fn embed_dataset<D, F>(
    run: &RunConfig,
    dataset: Arc<D>,
    device: &Device,
    label: &str,
    embed: F,
) -> Result<Embedded, PipelineError>
where
    D: Dataset<Item = ImageItem> + 'static,
    F: FnMut(&Tensor) -> candle_core::Result<Vec<Tensor>>,
{
    let n = dataset.len();
    let mut parts: Vec<Vec<Tensor>> = Vec::new();
    let (mut indices, mut labels) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for_each_embedded(
        run,
        run.eval.batch_size,
        dataset,
        device,
        label,
        embed,
        |batch| {
            for (i, out) in batch.outputs.into_iter().enumerate() {
                if parts.len() <= i {
                    parts.push(Vec::new());
                }
                parts[i].push(out);
            }
            indices.extend(batch.indices);
            labels.extend(batch.labels);
            Ok(())
        },
    )?;
    let outputs = parts
        .iter()
        .map(|p| Tensor::cat(p, 0))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Embedded {
        outputs,
        indices,
        labels,
    })
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub(crate) fn progress(len: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {pos}/{len} images {per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}
