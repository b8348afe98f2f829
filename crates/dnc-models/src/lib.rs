//! Models of dnc: backbones, heads and target networks for Divide and Contrast
//! (Tian, Hénaff & van den Oord, arXiv 2105.08054).
//!
//! - [`Backbone`]: ResNet-18/34/50 ([`ResNet`], ImageNet or CIFAR [`Stem`]) or the CPU-sized
//!   [`TinyConvNet`], returning pooled features;
//! - [`Projector`] and [`RegressionHead`]: the MLP heads of the encoder and the DnC student;
//! - [`Encoder`]: backbone + projector under `backbone.*` / `projector.*`;
//! - [`ema_update`], [`copy_vars`], [`momentum_schedule`]: the EMA target network of MoCLR;
//! - [`Precision`] and [`autocast`]: bf16 compute with f32 master weights;
//! - building blocks: [`BatchNorm`] with PyTorch's training semantics, [`Conv2d`], [`linear`],
//!   and pooling with gradients ([`max_pool_3x3_s2`]).
//!
//! Layers take a `candle_nn::VarBuilder` and use torchvision's variable names, so a map built
//! through `dnc_core::SeededVarMap` saves as safetensors that PyTorch loads; anything that
//! behaves differently in training takes `forward_t(xs, train)`.

pub mod backbone;
pub mod batch_norm;
pub mod blocks;
pub mod conv;
pub mod ema;
pub mod encoder;
pub mod error;
pub mod head;
pub mod linear;
pub mod macs;
pub mod pool;
pub mod precision;
pub mod resnet;
pub mod tiny;

pub use backbone::{Arch, Backbone, BackboneConfig};
pub use batch_norm::{BatchNorm, BatchNormConfig};
pub use blocks::{BasicBlock, Block, BlockConfig, BlockKind, Bottleneck};
pub use conv::{Conv2d, Conv2dConfig};
pub use ema::{copy_vars, ema_update, frozen_tensors, momentum_schedule};
pub use encoder::{Encoder, EncoderConfig, EncoderOutput};
pub use error::ModelError;
pub use head::{
    MlpHead, Projector, ProjectorConfig, ProjectorOutput, RegressionHead, RegressionHeadConfig,
};
pub use linear::linear;
pub use pool::{global_avg_pool, max_pool_2x2, max_pool_3x3_s2};
pub use precision::{AutocastGuard, Precision, autocast, current_precision};
pub use resnet::{ResNet, ResNetConfig, Stem};
pub use tiny::{TINY_WIDTHS, TinyConvNet};

#[cfg(test)]
mod test_util;
