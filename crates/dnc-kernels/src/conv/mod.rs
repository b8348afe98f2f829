//! 2-d convolution: geometry, patch matrices, CPU kernels and the custom op.

mod geometry;
mod im2col;
mod kernels;
mod op;
#[cfg(test)]
mod tests;

pub use geometry::Conv2dGeometry;
pub use op::conv2d;
