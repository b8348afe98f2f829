//! Training helpers shared by the base, expert and baseline stages: a MoCLR run of one encoder
//! on one dataset, checkpointed in its own folder, ending with `model.safetensors`.

use crate::config::{RunConfig, TrainConfig};
use crate::error::PipelineError;
use crate::sources::ViewPairSource;
use crate::weights::save_encoder;
use candle_core::Device;
use candle_nn::VarMap;
use dnc_augment::TwoViewMapper;
use dnc_data::{DataError, Dataset, ImageItem, Loader, LoaderConfig};
use dnc_engine::{FitConfig, FitIo, FitReport, MetricsWriter, fit};
use dnc_moclr::{MoclrConfig, MoclrStep};
use std::path::PathBuf;
use std::sync::Arc;

/// One MoCLR training job.
pub(crate) struct MoclrJob<'a> {
    /// Stage name in metrics and checkpoints (`base`, `expert-2`, `baseline`).
    pub name: String,
    pub train: &'a TrainConfig,
    pub epochs: usize,
    /// Seeds the weights, the shuffling and the augmentation of this job.
    pub seed: u64,
    /// Start from these weights instead of a fresh initialisation.
    pub init: Option<&'a VarMap>,
    /// The job's checkpoints folder ([`RunDir::checkpoints_dir`](crate::RunDir::checkpoints_dir)).
    pub checkpoints: PathBuf,
    /// The encoder written at the end ([`RunDir::model_path`](crate::RunDir::model_path)).
    pub model: PathBuf,
}

/// Loader settings of a training stage.
pub(crate) fn train_loader_config(run: &RunConfig, batch_size: usize, seed: u64) -> LoaderConfig {
    LoaderConfig {
        batch_size,
        shuffle: true,
        shuffle_buffer: run.data.shuffle_buffer,
        drop_last: true,
        seed,
        workers: run.data.workers,
        prefetch_batches: run.data.prefetch_batches.max(1),
    }
}

/// The fit settings of a training stage.
pub(crate) fn fit_config(
    epochs: usize,
    warmup_epochs: f64,
    log_every: usize,
    checkpoint_every: usize,
    keep: usize,
    clip_grad_norm: f64,
) -> FitConfig {
    FitConfig {
        epochs,
        warmup_epochs,
        log_every,
        checkpoint_every,
        keep_last: keep.max(1),
        clip_grad_norm,
        ..FitConfig::default()
    }
}

/// A loader's refusal of its batch size as an error naming the config key and the stage.
pub(crate) fn name_batch_size(e: DataError, key: &str, stage: &str) -> PipelineError {
    match e {
        DataError::InvalidParameter {
            name: "batch_size",
            value,
            reason,
        } => PipelineError::bad_config(key, value, format!("{reason} ({stage})")),
        other => other.into(),
    }
}

/// A training error, with what to change when the loss diverged: the settings of `section`
/// (`base`, `experts.train`, `distill`) that decide the step size, by name and value.
pub(crate) fn diverged(
    e: dnc_engine::EngineError,
    section: &str,
    base_lr: f64,
    warmup_epochs: f64,
) -> PipelineError {
    match e {
        dnc_engine::EngineError::NonFiniteLoss { .. } => PipelineError::Other(format!(
            "{e}. The loss diverged: lower {section}.optimizer.base_lr (now {base_lr}) or \
             lengthen {section}.warmup_epochs (now {warmup_epochs}), then train the stage again"
        )),
        other => other.into(),
    }
}

/// Trains one MoCLR encoder on `dataset` and writes `job.model`.
pub(crate) fn train_moclr<D>(
    run: &RunConfig,
    job: MoclrJob<'_>,
    dataset: Arc<D>,
    device: &Device,
    metrics: &mut MetricsWriter,
    resume: bool,
) -> Result<FitReport, PipelineError>
where
    D: Dataset<Item = ImageItem> + 'static,
{
    let mapper = Arc::new(
        TwoViewMapper::new(run.augment.clone(), job.seed)
            .map_err(|e| PipelineError::bad_config("augment", "", e.to_string()))?,
    );
    let loader_cfg = train_loader_config(run, job.train.batch_size, job.seed);
    let batch_key = if job.name.starts_with("expert") && run.experts.train.is_some() {
        "experts.train.batch_size"
    } else {
        "base.batch_size"
    };
    let group = dnc_dist::current();
    let loader = Loader::new(dataset, mapper, loader_cfg)
        .and_then(|l| l.with_share(group.rank(), group.world_size()))
        .map_err(|e| name_batch_size(e, batch_key, &job.name))?;
    let source = ViewPairSource::new(loader, run.augment.view1.size, device.clone());
    let moclr = MoclrConfig {
        objective: job.train.objective.clone(),
        ema_momentum: job.train.ema_momentum,
    };
    let mut step = MoclrStep::new(&run.model, moclr, job.seed, device)?;
    if let Some(init) = job.init {
        step.init_from(init)?;
    }
    let mut optimizer = job
        .train
        .optimizer
        .build()
        .map_err(|e| PipelineError::Other(e.to_string()))?;
    let fit_cfg = fit_config(
        job.epochs,
        job.train.warmup_epochs,
        job.train.log_every,
        job.train.checkpoint_every,
        job.train.keep_checkpoints,
        job.train.clip_grad_norm,
    );
    let io = FitIo::new(job.name.clone())
        .with_checkpoints(job.checkpoints.clone())
        .with_metrics(metrics)
        .with_resume(resume);
    let section = if job.name.starts_with("expert") && run.experts.train.is_some() {
        "experts.train"
    } else {
        "base"
    };
    let report = fit(&mut step, &source, optimizer.as_mut(), &fit_cfg, io).map_err(|e| {
        diverged(
            e,
            section,
            job.train.optimizer.base_lr(),
            job.train.warmup_epochs,
        )
    })?;
    if group.is_leader() {
        save_encoder(step.online_vars(), &job.model)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diverged_loss_names_the_settings_to_change() {
        let e = dnc_engine::EngineError::NonFiniteLoss {
            step: 77,
            epoch: 11,
            batch: 0,
            loss: f64::NAN,
        };
        let msg = diverged(e, "distill", 0.06, 3.0).to_string();
        assert!(
            msg.contains("step 77")
                && msg.contains("distill.optimizer.base_lr (now 0.06)")
                && msg.contains("distill.warmup_epochs (now 3)"),
            "{msg}"
        );
        // Other errors pass through unchanged.
        let other = dnc_engine::EngineError::Step {
            step: 3,
            source: candle_core::Error::Msg("boom".into()),
        };
        let msg = diverged(other, "base", 0.1, 0.0).to_string();
        assert!(msg.contains("boom") && !msg.contains("base_lr"), "{msg}");
    }
}
