//! Training engine of dnc: a small [`TrainStep`] trait and a free function, [`fit`](fn@fit), in the
//! manner of burn-train's learner rather than a framework.
//!
//! - [`step`]: the [`TrainStep`] and [`BatchSource`] seams and the [`StepContext`] of a step;
//! - [`fit`](mod@fit): the loop: schedule, backward, optimiser, logging, checkpoints, resume,
//!   NaN handling;
//! - [`optim`]: SGD with momentum and LARS with parameter groups and checkpointable buffers;
//! - [`schedule`]: linear warm-up then cosine decay, and the `base_lr · B / 256` scaling;
//! - [`checkpoint`]: atomic checkpoint folders, keep-last-N and keep-best, name-checked loading;
//! - [`metrics`]: `metrics.jsonl` records;
//! - [`report`]: epoch summaries and the [`FitReport`].

pub mod checkpoint;
pub mod error;
pub mod fit;
pub mod metrics;
pub mod optim;
mod progress;
pub mod report;
pub mod schedule;
pub mod step;

pub use checkpoint::{Checkpoint, CheckpointStore, TrainingState, load_varmap, save_varmap};
pub use error::{ConfigError, EngineError, NameMismatch};
pub use fit::{BestMode, FitConfig, FitIo, KeepBest, fit};
pub use metrics::{MetricsRecord, MetricsWriter, RecordKind};
pub use optim::{
    Lars, LarsConfig, MomentumBuffers, Optimizer, OptimizerConfig, Sgd, SgdConfig, trust_ratio,
};
pub use report::{BestRecord, EpochSummary, FitOutcome, FitReport, RunningMeans};
pub use schedule::{LrSchedule, scaled_lr, warmup_steps};
pub use step::{BatchSource, EpochBatches, StepContext, StepOutput, TrainStep};
