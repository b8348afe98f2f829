//! Self-supervised objectives of Divide and Contrast, as pure functions on tensors.
//!
//! - [`info_nce`] and [`moclr_loss`]: the MoCLR objective used for the base model and the
//!   experts (DnC, arXiv 2105.08054, section 3);
//! - [`nt_xent`]: SimCLR's NT-Xent with 2B−2 negatives (arXiv 2002.05709);
//! - [`regression_loss`] and [`masked_regression_loss`]: the distillation losses of the DnC student;
//! - [`ObjectiveConfig`]: which contrastive objective to train with, and its temperature.
//!
//! Every loss returns a scalar tensor that keeps the autograd graph of its inputs.

mod check;
pub mod config;
pub mod info_nce;
pub mod nt_xent;
pub mod regression;

pub use config::{Objective, ObjectiveConfig, ObjectiveError};
pub use info_nce::{info_nce, info_nce_in, moclr_loss, moclr_loss_in};
pub use nt_xent::{nt_xent, nt_xent_in};
pub use regression::{masked_regression_loss, regression_loss};
