//! ResNet-18/34/50 backbones (He et al., arXiv 1512.03385) with torchvision's weight names.
//!
//! The network ends at the global average pool (no `fc`): ResNet-18/34 return 512 features,
//! ResNet-50 2048. Two stems: torchvision's ImageNet stem (7×7/2 convolution, BatchNorm, ReLU,
//! 3×3/2 max-pool) and the CIFAR stem of SimCLR (arXiv 2002.05709, appendix B.9: a 3×3/1
//! convolution and no max-pool). Names follow `torchvision.models.resnet`: `conv1.weight`,
//! `bn1.*`, `layer{1..4}.{i}.conv1.weight`, `layer2.0.downsample.{0,1}.*`, so a map saved as
//! safetensors loads with `load_state_dict` (after adding `num_batches_tracked`, which is not
//! stored here) and torchvision checkpoints load into it.

use crate::batch_norm::{BatchNorm, BatchNormConfig};
use crate::blocks::{Block, BlockConfig, BlockKind};
use crate::conv::{Conv2d, Conv2dConfig};
use crate::pool::{global_avg_pool, max_pool_3x3_s2};
use candle_core::{Result, Tensor, bail};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// The first layers of a ResNet, before `layer1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stem {
    /// 7×7 stride-2 convolution, BatchNorm, ReLU, 3×3 stride-2 max-pool: ÷4 resolution
    /// (ImageNet-sized inputs; the paper's setting).
    #[default]
    Imagenet,
    /// 3×3 stride-1 convolution, BatchNorm, ReLU, no max-pool: full resolution (32×32 inputs).
    Cifar,
}

/// Depth and stem of a ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResNetConfig {
    pub block: BlockKind,
    /// Blocks in `layer1` .. `layer4`.
    pub layers: [usize; 4],
    pub stem: Stem,
    /// Start the last BatchNorm of every residual branch at γ = 0, so each block starts as the
    /// identity (torchvision's `zero_init_residual`; Goyal et al., arXiv 1706.02677).
    pub zero_init_residual: bool,
}

impl ResNetConfig {
    pub fn resnet18(stem: Stem) -> Self {
        Self::new(BlockKind::Basic, [2, 2, 2, 2], stem)
    }

    pub fn resnet34(stem: Stem) -> Self {
        Self::new(BlockKind::Basic, [3, 4, 6, 3], stem)
    }

    pub fn resnet50(stem: Stem) -> Self {
        Self::new(BlockKind::Bottleneck, [3, 4, 6, 3], stem)
    }

    fn new(block: BlockKind, layers: [usize; 4], stem: Stem) -> Self {
        Self {
            block,
            layers,
            stem,
            zero_init_residual: false,
        }
    }

    /// Width of the pooled features: 512 × the block's expansion.
    pub fn out_dim(&self) -> usize {
        512 * self.block.expansion()
    }
}

/// A ResNet backbone without its classifier.
#[derive(Debug, Clone)]
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    layers: Vec<Vec<Block>>,
    cfg: ResNetConfig,
}

impl ResNet {
    pub fn new(cfg: ResNetConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.layers.contains(&0) {
            bail!(
                "every ResNet stage needs at least one block, got {:?}",
                cfg.layers
            )
        }
        let stem = match cfg.stem {
            Stem::Imagenet => Conv2dConfig::new(3, 64, 7, 2, 3),
            Stem::Cifar => Conv2dConfig::new(3, 64, 3, 1, 1),
        };
        let conv1 = Conv2d::new(stem, vb.pp("conv1"))?;
        let bn1 = BatchNorm::new(64, BatchNormConfig::default(), vb.pp("bn1"))?;
        let mut in_channels = 64;
        let mut layers = Vec::with_capacity(4);
        for (stage, &blocks) in cfg.layers.iter().enumerate() {
            let vb_layer = vb.pp(format!("layer{}", stage + 1));
            let planes = 64 << stage;
            let mut layer = Vec::with_capacity(blocks);
            for i in 0..blocks {
                let block = BlockConfig {
                    in_channels,
                    planes,
                    stride: if stage > 0 && i == 0 { 2 } else { 1 },
                    zero_init_last_bn: cfg.zero_init_residual,
                };
                layer.push(Block::new(cfg.block, block, vb_layer.pp(i))?);
                in_channels = planes * cfg.block.expansion();
            }
            layers.push(layer);
        }
        Ok(Self {
            conv1,
            bn1,
            layers,
            cfg,
        })
    }

    pub fn config(&self) -> &ResNetConfig {
        &self.cfg
    }

    pub fn out_dim(&self) -> usize {
        self.cfg.out_dim()
    }

    /// Pooled features.
    ///
    /// # Shapes
    /// `xs`: `[N, 3, H, W]` → `[N, 512]` (ResNet-18/34) or `[N, 2048]` (ResNet-50).
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let mut ys = self.bn1.forward_conv_relu_t(&self.conv1, xs, train)?;
        if self.cfg.stem == Stem::Imagenet {
            ys = max_pool_3x3_s2(&ys)?;
        }
        for block in self.layers.iter().flatten() {
            ys = block.forward_t(&ys, train)?;
        }
        global_avg_pool(&ys)
    }
}

#[cfg(test)]
#[path = "resnet_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "resnet_parity_tests.rs"]
mod parity_tests;
