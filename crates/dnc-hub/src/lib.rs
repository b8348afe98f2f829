//! Hugging Face hub integration for dnc: start from pretrained ResNet weights, publish trained ones.
//!
//! - [`HubUri`]: `hf://ORG/NAME[@REVISION][/FILE]` references;
//! - [`resolve()`]: such a reference to local files through the `hf-hub` client and the
//!   `huggingface_hub` cache ([`HubOptions`] reads `HF_HOME`, `HF_HUB_CACHE`, `HF_HUB_OFFLINE`,
//!   `HF_TOKEN`); [`insert_cached_file`] seeds that cache by hand;
//! - [`load_into`] / [`load_weights`]: safetensors checkpoints with torchvision, timm or
//!   transformers names ([`Naming`]) into a model's variables, every tensor checked, all
//!   problems listed in one error;
//! - [`export_backbone`]: a trained backbone as a hub-ready folder (`model.safetensors` with
//!   torchvision names, `config.json` for timm, a model card `README.md` with the run's
//!   configuration and accuracies).
//!
//! ResNet-18/50 forward passes on weights loaded here match PyTorch within 1e-4 (the parity
//! tests; `scripts/torch_parity.py` (repository root) makes their fixtures).

mod atomic;
pub mod cache;
pub mod card;
pub mod error;
pub mod export;
pub mod load;
pub mod naming;
pub mod options;
pub mod problems;
pub mod resolve;
pub mod uri;

pub use cache::insert_cached_file;
pub use card::{Accuracy, ModelCard, read_accuracies};
pub use error::{HubError, Result};
pub use export::{BackboneInfo, ExportedFiles, Preprocessing, export_backbone};
pub use load::{LoadReport, LoadedWeights, load_into, load_weights, tensor_names};
pub use naming::Naming;
pub use options::HubOptions;
pub use problems::LoadProblems;
pub use resolve::{ResolvedFiles, resolve, resolve_checkpoint};
pub use uri::HubUri;

#[cfg(test)]
mod parity_tests;
