//! Pooling with fused backward passes: max pooling (any window, stride and padding, as the
//! ImageNet ResNet stem and the tiny net need) and global average pooling.

mod avg;
pub(crate) mod max;
#[cfg(test)]
#[path = "max_tests.rs"]
mod max_tests;

pub use avg::global_avg_pool;
pub use max::{MaxPoolGeometry, max_pool2d};
