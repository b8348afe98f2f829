//! 2-d convolution: geometry, patch matrices (full, and of the horizontal taps only for stride
//! 1), CPU kernels and the custom op, and the tensor-op path for other devices and dtypes.

mod geometry;
mod im2col;
pub(crate) mod kernels;
mod op;
mod row_patches;
mod tensor_ops;
#[cfg(test)]
mod tests;
mod winograd;

pub use geometry::Conv2dGeometry;
pub use op::conv2d;
pub use winograd::winograd_enabled;
