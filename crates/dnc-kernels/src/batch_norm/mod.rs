//! Training-mode batch normalisation: CPU kernels and the custom op.

mod affine;
mod moments;
mod op;
mod residual;
#[cfg(test)]
mod tests;

pub use op::{batch_norm_relu_train, batch_norm_train};
pub use residual::batch_norm_add_relu_train;
