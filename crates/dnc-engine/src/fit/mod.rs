//! [`fit`]: the training loop of every stage (STYLE §9, after burn-train's learner).
//!
//! `fit` owns the epoch/step loop, the learning-rate schedule, the backward pass, the optimiser
//! update, [`TrainStep::after_update`], logging (`metrics.jsonl`, `tracing`, a progress bar),
//! checkpoints and resuming. A NaN or infinite loss stops the run before anything is updated or
//! written for that step, so the last checkpoint on disk stays the last good one.

mod config;
mod persist;
mod trainer;

pub use config::{BestMode, FitConfig, KeepBest};

use std::path::PathBuf;

use crate::error::{ConfigError, EngineError};
use crate::metrics::MetricsWriter;
use crate::optim::Optimizer;
use crate::report::FitReport;
use crate::schedule::{LrSchedule, scaled_lr, warmup_steps};
use crate::step::{BatchSource, TrainStep};
use trainer::Trainer;

/// Where a `fit` call reads and writes: its stage name, checkpoint folder and metrics file,
/// and whether it resumes.
#[derive(Debug)]
pub struct FitIo<'a> {
    /// The stage name, written in `state.json` and in every metrics record.
    pub stage: String,
    /// The stage's checkpoint folder; `None` trains without checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    /// Where metrics records go; `None` keeps them in `tracing` only.
    pub metrics: Option<&'a mut MetricsWriter>,
    /// Continue from the latest checkpoint of `checkpoint_dir`, if there is one. Without it, a
    /// folder that already holds checkpoints is an error rather than silently mixed runs.
    pub resume: bool,
    /// Simulated crash, for tests: stop once this many steps are done in total (after that
    /// step's checkpoint, if one is due) and write nothing more.
    pub stop_after: Option<usize>,
}

impl<'a> FitIo<'a> {
    /// No checkpoints, no metrics file, no resume.
    pub fn new(stage: impl Into<String>) -> Self {
        Self {
            stage: stage.into(),
            checkpoint_dir: None,
            metrics: None,
            resume: false,
            stop_after: None,
        }
    }

    pub fn with_checkpoints(mut self, dir: impl Into<PathBuf>) -> Self {
        self.checkpoint_dir = Some(dir.into());
        self
    }

    pub fn with_metrics(mut self, writer: &'a mut MetricsWriter) -> Self {
        self.metrics = Some(writer);
        self
    }

    pub fn with_resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    pub fn with_stop_after(mut self, steps: usize) -> Self {
        self.stop_after = Some(steps);
        self
    }
}

/// The step counts and schedule of a run, fixed before the first step.
#[derive(Debug, Clone, Copy)]
struct Plan {
    epochs: usize,
    steps_per_epoch: usize,
    total_steps: usize,
    /// `total_steps`, or `max_steps` when smaller.
    stop_at: usize,
    schedule: LrSchedule,
}

impl Plan {
    fn new(
        cfg: &FitConfig,
        steps_per_epoch: usize,
        batch_size: usize,
        base_lr: f64,
    ) -> Result<Self, ConfigError> {
        if steps_per_epoch == 0 {
            return Err(ConfigError::new(
                "batches_per_epoch",
                0,
                "the batch source must yield at least one batch per epoch",
            ));
        }
        if batch_size == 0 {
            return Err(ConfigError::new("batch_size", 0, "must be at least 1"));
        }
        let total_steps = steps_per_epoch * cfg.epochs;
        let peak = scaled_lr(base_lr, batch_size);
        let warmup = warmup_steps(cfg.warmup_epochs, steps_per_epoch);
        Ok(Self {
            epochs: cfg.epochs,
            steps_per_epoch,
            total_steps,
            stop_at: cfg.max_steps.map_or(total_steps, |m| m.min(total_steps)),
            schedule: LrSchedule::new(peak, warmup, total_steps),
        })
    }
}

/// Trains `step` on the batches of `source` with `optimizer` for `cfg.epochs` epochs.
///
/// The learning rate of step `s` is [`LrSchedule::at`]`(s)` with peak
/// `optimizer.base_lr() · source.batch_size() / 256` and `cfg.warmup_epochs` of warm-up. Each
/// step runs [`TrainStep::forward`], checks the loss, back-propagates, updates the parameters
/// and calls [`TrainStep::after_update`]. Checkpoints are written every `cfg.checkpoint_every`
/// steps, at each epoch end and at the end; with `io.resume` the run continues from the latest
/// one, inside its epoch, and reproduces an uninterrupted run bit for bit when the step and
/// the source are deterministic.
pub fn fit<T, S>(
    step: &mut T,
    source: &S,
    optimizer: &mut dyn Optimizer,
    cfg: &FitConfig,
    io: FitIo<'_>,
) -> Result<FitReport, EngineError>
where
    T: TrainStep,
    S: BatchSource<Batch = T::Batch> + ?Sized,
{
    cfg.validate()?;
    let plan = Plan::new(
        cfg,
        source.batches_per_epoch(),
        source.batch_size(),
        optimizer.base_lr(),
    )?;
    let resume = io.resume;
    let mut trainer = Trainer::new(step, optimizer, cfg, io, plan);
    trainer.resume(resume)?;
    let outcome = trainer.run(source)?;
    Ok(trainer.report(outcome))
}

#[cfg(test)]
mod distributed_tests;
#[cfg(test)]
mod harness;
#[cfg(test)]
mod resume_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod toy;
