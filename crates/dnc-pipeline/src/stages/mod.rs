//! The implementation of every stage, in order: base ([`pretrain`]) → embed → cluster → experts
//! → distill → eval (with its diagnostics); the baseline is [`pretrain`] too.
//!
//! A stage depends on the run context ([`Run`], its [`RunDir`](crate::RunDir) paths and its
//! configuration) and on what earlier stages left in the run directory (read through
//! [`crate::assignments`]), never on another stage's module.

mod cluster;
mod distill;
mod embed;
mod eval;
mod experts;
mod pretrain;

use crate::error::PipelineError;
use crate::run::Run;
use crate::stage::Stage;

pub(crate) use eval::Diagnostics;
pub use eval::GroupScores;
pub use experts::{ExpertPlan, ExpertSelection, expert_plan};

/// Runs `stage` of `run`.
pub(crate) fn run(run: &Run, stage: Stage, resume: bool) -> Result<(), PipelineError> {
    match stage {
        Stage::Base => pretrain::base(run, resume),
        Stage::Baseline => pretrain::baseline(run, resume),
        Stage::Embed => embed::run(run),
        Stage::Cluster => cluster::run(run),
        Stage::Experts => experts::run(run, resume),
        Stage::Distill => distill::run(run, resume),
        Stage::Eval => eval::run(run),
    }
}

/// Trains the selected experts in this process (an expert job); whether every expert of the run
/// is now complete.
pub(crate) fn run_selected_experts(
    run: &Run,
    selection: ExpertSelection,
    resume: bool,
) -> Result<bool, PipelineError> {
    experts::run_selected(run, selection, resume)
}
