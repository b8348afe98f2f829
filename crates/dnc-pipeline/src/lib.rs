//! The Divide and Contrast recipe end to end (Tian, Hénaff & van den Oord, arXiv 2105.08054).
//!
//! - [`RunConfig`]: one TOML file composed of every crate's configuration, validated once and
//!   saved as `runs/<name>/config.toml` before any work;
//! - [`Run`]: a run directory and its stages ([`Stage`]): base → embed → cluster → experts →
//!   distill → (baseline) → eval, each skipped once done and resumable from its checkpoints.
//!   The modules are layered in that order: the run context (`run`, `run_dir`, `config`) at the
//!   bottom, the stages (`stages::*`) on it and never on each other, the orchestrator
//!   (`orchestrate`), the report and the status on top (`tests/module_layers.rs` keeps it so);
//! - [`RunDir`] and [`Summary`]: the run-directory contract (`summary.json`, `metrics.jsonl`,
//!   `report.md`, one folder per stage);
//! - [`apply_overrides`]: `--set key.path=value` on top of a config file.

mod adopt;
mod assignments;
mod audit;
pub mod config;
mod datasets;
mod error;
mod feature_store;
mod features;
mod layers;
mod lock;
mod orchestrate;
mod overrides;
mod report;
mod run;
mod run_dir;
mod sources;
mod stage;
mod stages;
mod status;
mod train;
mod validate;
mod weights;

pub use assignments::{ClusterInfo, UNASSIGNED, load_assignments};
pub use config::{HeadInit, Init, Partition, RunConfig, StudentInit, Teachers};
pub use datasets::{Split, open_split};
pub use error::PipelineError;
pub use feature_store::write_npy_f32;
pub use layers::changed_keys;
pub use lock::RunLock;
pub use overrides::apply_overrides;
pub use report::{ordered_models, results_table, write_report};
pub use run::Run;
pub use run_dir::{
    ModelEval, ModelRef, RunDir, StageStatus, Summary, process_peak_rss_mib, write_atomic,
};
pub use stage::Stage;
pub use stages::{ExpertPlan, ExpertSelection, GroupScores, expert_plan};
pub use status::{ExpertState, RunStatus, StageState};
pub use validate::validate;
pub use weights::{fresh_encoder, load_encoder, save_encoder};
