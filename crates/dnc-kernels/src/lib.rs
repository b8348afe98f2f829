//! Fast CPU training kernels for the hot operations of dnc's convolutional networks.
//!
//! Each public function takes and returns candle tensors and is differentiable through candle's
//! autograd (a custom op with its own backward pass). On the CPU in `f32` or `f64` they run the
//! kernels of this crate, parallel over images or channels with rayon and with `gemm` for the
//! matrix products; on other devices and dtypes they fall back to candle tensor ops (for the
//! convolution: an im2col gather and one matrix product, so that its backward is matrix
//! products too), so models call them unconditionally.
//!
//! - [`conv2d`]: bias-free convolution (im2col + gemm forward, gemm-based input and weight
//!   gradients instead of candle's direct `conv_transpose2d`; stride-1 convolutions build a
//!   patch matrix of the horizontal taps only and run one product per vertical tap; same-size
//!   3×3 convolutions of 64 or more input channels run Winograd F(2×2, 3×3), which
//!   [`winograd_enabled`] reports and `DNC_WINOGRAD=0` turns off);
//! - [`batch_norm_train`], [`batch_norm_relu_train`]: fused training-mode batch normalisation
//!   (optionally followed by a ReLU) with the closed-form backward, and
//!   [`batch_norm_add_relu_train`], the tail `relu(bn(x) + r)` of a residual block in one op,
//!   and [`batch_norm_relu_max_pool2x2_train`], the tail `max_pool(relu(bn(x)))` of a stage of a
//!   plain conv net ([`conv2d_batch_norm_relu_max_pool2x2_train`]: the whole stage, convolution
//!   included); [`conv2d_batch_norm_train`] and [`conv2d_batch_norm_relu_train`] run a
//!   convolution and the batch norm (and ReLU) after it as one op;
//! - [`synced_batch_norm`]: while its guard lives, the training-mode batch norms take their
//!   statistics over every process of a data-parallel group, through [`MomentSums`];
//! - [`relu`], [`max_pool2d`], [`global_avg_pool`]: element-wise and pooling ops whose backward
//!   passes are single fused passes instead of chains of full-size temporaries.
//!
//! Results do not depend on the number of threads: work is split by shapes, and partial sums are
//! added in a fixed order.

mod activation;
mod alloc;
mod batch_norm;
mod conv;
mod error;
mod float;
pub mod machine;
mod matmul;
mod op3;
mod pool;
mod simd;
#[cfg(test)]
mod test_util;

pub use activation::relu;
pub use alloc::retain_freed_buffers;
pub use batch_norm::{
    MomentSums, SyncedBatchNorm, batch_norm_add_relu_train, batch_norm_relu_max_pool2x2_train,
    batch_norm_relu_train, batch_norm_train, conv2d_batch_norm_relu_max_pool2x2_train,
    conv2d_batch_norm_relu_train, conv2d_batch_norm_train, synced_batch_norm,
};
pub use conv::{Conv2dGeometry, conv2d, winograd_enabled};
pub use error::KernelError;
pub use float::has_cpu_kernel;
pub use pool::{MaxPoolGeometry, global_avg_pool, max_pool2d};
