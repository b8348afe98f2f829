//! Training-mode batch normalisation: CPU kernels and the custom op.

mod affine;
mod moments;
mod op;
#[cfg(test)]
mod tests;

pub use op::{batch_norm_relu_train, batch_norm_train};
