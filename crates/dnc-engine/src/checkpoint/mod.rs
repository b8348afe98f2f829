//! Checkpoints (STYLE §10): one directory per checkpoint inside a stage directory, holding every
//! variable map of the train step (`<key>.safetensors`), the optimiser's momentum buffers
//! (`optimizer.safetensors`) and `state.json`. A checkpoint is written into a temporary folder
//! and renamed into place, so a crash never leaves a half-written `step-*` directory.

mod state;
mod store;
pub(crate) mod tensors;

pub(crate) use state::unix_seconds;
pub use state::{FORMAT_VERSION, TrainingState};
pub use store::{Checkpoint, CheckpointStore, OPTIMIZER_FILE, STATE_FILE};
pub use tensors::{load_varmap, save_varmap};
