//! The implementation of every stage.

mod cluster;
mod diagnostics;
mod distill;
mod embed;
mod eval;
mod experts;
mod pretrain;

use crate::error::PipelineError;
use crate::run::Run;
use crate::stage::Stage;

pub use cluster::{ClusterInfo, UNASSIGNED, load_assignments};
pub(crate) use diagnostics::Diagnostics;
pub use experts::{ExpertPlan, ExpertSelection, expert_plan};
pub(crate) use experts::{FAILED_FILE, expert_dir, expert_lock_path};

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
