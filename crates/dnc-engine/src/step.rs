//! The two seams of the engine: a [`TrainStep`] (what one step computes) and a [`BatchSource`]
//! (where the batches come from).
//!
//! Modelled on burn-train's learner: the model-specific code is a small trait, and
//! [`fit`](fn@crate::fit) owns the loop, backward pass, optimiser, schedule, logging and
//! checkpoints. MoCLR (base and experts), distillation and the linear probe are `TrainStep`s.

use candle_core::{Tensor, Var};
use candle_nn::VarMap;

/// Where a step stands in the run, handed to every [`TrainStep`] call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepContext {
    /// The epoch this step belongs to (from 0).
    pub epoch: usize,
    /// The batch's position in its epoch (from 0).
    pub batch: usize,
    /// The global step index (from 0): the number of updates done before this one.
    pub step: usize,
    /// The number of steps of the whole run (`epochs · steps_per_epoch`).
    pub total_steps: usize,
    /// The number of steps (batches) in one epoch.
    pub steps_per_epoch: usize,
    /// The learning rate of this step's update.
    pub lr: f64,
}

/// What the forward pass of one batch produced.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// The scalar loss, still attached to the autograd graph.
    pub loss: Tensor,
    /// The number of examples in the batch (for images/s and averages).
    pub batch_size: usize,
    /// Named scalar metrics to log, averaged over the logging window and the epoch.
    pub metrics: Vec<(String, f64)>,
}

impl StepOutput {
    /// An output with no extra metrics.
    pub fn new(loss: Tensor, batch_size: usize) -> Self {
        Self {
            loss,
            batch_size,
            metrics: Vec::new(),
        }
    }

    /// Adds a named metric.
    pub fn with_metric(mut self, name: impl Into<String>, value: f64) -> Self {
        self.metrics.push((name.into(), value));
        self
    }
}

/// One training step of a model: forward pass and loss, plus what the engine needs to update
/// and checkpoint it.
pub trait TrainStep {
    /// What one batch holds.
    type Batch;

    /// Forward pass of one batch in training mode: the scalar loss (still attached to the
    /// graph), the batch size and named metrics.
    fn forward(
        &mut self,
        batch: &Self::Batch,
        ctx: &StepContext,
    ) -> candle_core::Result<StepOutput>;

    /// Called after every optimiser update, e.g. to move an EMA target network.
    fn after_update(&mut self, _ctx: &StepContext) -> candle_core::Result<()> {
        Ok(())
    }

    /// The trainable variables by name. Buffers (BatchNorm running statistics) are left out;
    /// the rank of each variable decides its weight-decay group (`dnc_core::is_no_decay`).
    fn parameters(&self) -> Vec<(String, Var)>;

    /// Every variable map to checkpoint, by a short key (`"online"`, `"target"`, ...). The key
    /// names the file, so it must be a plain word.
    fn state(&self) -> Vec<(String, VarMap)>;

    /// Extra state to checkpoint beside the weights, such as a random generator owned by the
    /// step. Restored with [`load_extra_state`](Self::load_extra_state) on resume.
    fn extra_state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Restores what [`extra_state`](Self::extra_state) saved.
    fn load_extra_state(&mut self, _state: &serde_json::Value) -> candle_core::Result<()> {
        Ok(())
    }
}

/// The positions of one epoch as a [`BatchSource`] yields them: a batch, `None` for a position
/// without enough examples to train on, or the error that ends the epoch.
pub type EpochBatches<'a, B, E> = Box<dyn Iterator<Item = Result<Option<B>, E>> + 'a>;

/// A sequence of epochs of batches, deterministic given `(epoch, position)`, so that a resumed
/// run sees exactly the batches an uninterrupted one would have seen.
pub trait BatchSource {
    /// What one batch holds.
    type Batch;
    /// Why a batch could not be produced.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The number of batches in every epoch (at least 1).
    fn batches_per_epoch(&self) -> usize;

    /// The nominal number of examples per batch, which scales the learning rate
    /// (`lr = base_lr · batch_size / 256`).
    fn batch_size(&self) -> usize;

    /// The batches of `epoch`, starting after the first `skip_batches` ones: one item per
    /// position of the epoch, `None` for a position left without enough examples to train on
    /// (e.g. every image of the batch was unreadable). A `None` position still counts as a
    /// step of the schedule, with no update, so positions and steps stay aligned for resume.
    fn epoch(
        &self,
        epoch: usize,
        skip_batches: usize,
    ) -> EpochBatches<'_, Self::Batch, Self::Error>;

    /// The number of examples in `batch`, when the source can tell. In data-parallel training
    /// the ranks' shares of a position must be equally large (their contrastive negatives are
    /// gathered row for row); a position where they differ (unreadable images left out of one
    /// share) is skipped by every rank. `None` skips the check.
    fn examples(&self, _batch: &Self::Batch) -> Option<usize> {
        None
    }
}
