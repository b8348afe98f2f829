//! Training-mode batch normalisation: CPU kernels and the custom op.

mod affine;
mod moments;
mod op;
mod pooled;
#[cfg(test)]
mod pooled_tests;
mod residual;
mod stage;
#[cfg(test)]
mod stage_tests;
mod sync;
#[cfg(test)]
mod tests;

pub use op::{batch_norm_relu_train, batch_norm_train};
pub use pooled::batch_norm_relu_max_pool2x2_train;
pub use residual::batch_norm_add_relu_train;
pub use stage::{
    conv2d_batch_norm_relu_max_pool2x2_train, conv2d_batch_norm_relu_train, conv2d_batch_norm_train,
};
pub use sync::{MomentSums, SyncedBatchNorm, synced_batch_norm};
