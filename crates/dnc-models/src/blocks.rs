//! Residual blocks of ResNet (He et al., arXiv 1512.03385), as torchvision builds them.
//!
//! [`BasicBlock`] (two 3×3 convolutions) makes ResNet-18/34; [`Bottleneck`] (1×1, 3×3, 1×1,
//! expansion 4) makes ResNet-50, with the stride on the 3×3 convolution ("ResNet v1.5", as in
//! torchvision). Variable names are torchvision's: `conv1`, `bn1`, ..., `downsample.0` (the
//! projection shortcut's convolution) and `downsample.1` (its BatchNorm).

use crate::batch_norm::{BatchNorm, BatchNormConfig};
use crate::conv::{Conv2d, Conv2dConfig};
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

/// Which residual block a ResNet stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Basic,
    Bottleneck,
}

impl BlockKind {
    /// Output channels per unit of `planes` (torchvision's `expansion`).
    pub fn expansion(self) -> usize {
        match self {
            Self::Basic => 1,
            Self::Bottleneck => 4,
        }
    }
}

/// Shape of one block: input channels, `planes` (the 3×3 convolution's width), stride, and
/// whether its last BatchNorm starts with γ = 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockConfig {
    pub in_channels: usize,
    pub planes: usize,
    pub stride: usize,
    pub zero_init_last_bn: bool,
}

/// A convolution followed by its BatchNorm.
#[derive(Debug, Clone)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    fn new(
        cfg: Conv2dConfig,
        bn: BatchNormConfig,
        vb: &VarBuilder,
        names: (&str, &str),
    ) -> Result<Self> {
        let conv = Conv2d::new(cfg, vb.pp(names.0))?;
        let bn = BatchNorm::new(cfg.out_channels, bn, vb.pp(names.1))?;
        Ok(Self { conv, bn })
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_conv_t(&self.conv, xs, train)
    }

    fn forward_relu_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_conv_relu_t(&self.conv, xs, train)
    }

    /// `relu(bn(conv(xs)) + residual)`.
    fn forward_add_relu_t(&self, xs: &Tensor, residual: &Tensor, train: bool) -> Result<Tensor> {
        self.bn
            .forward_add_relu_t(&self.conv.forward(xs)?, residual, train)
    }
}

fn last_bn(cfg: &BlockConfig) -> BatchNormConfig {
    BatchNormConfig {
        weight_init: if cfg.zero_init_last_bn { 0.0 } else { 1.0 },
        ..Default::default()
    }
}

/// The projection shortcut when the block changes resolution or width, `None` otherwise.
fn downsample(cfg: &BlockConfig, out: usize, vb: &VarBuilder) -> Result<Option<ConvBn>> {
    if cfg.stride == 1 && cfg.in_channels == out {
        return Ok(None);
    }
    let conv = Conv2dConfig::new(cfg.in_channels, out, 1, cfg.stride, 0);
    let vb = vb.pp("downsample");
    Ok(Some(ConvBn::new(
        conv,
        BatchNormConfig::default(),
        &vb,
        ("0", "1"),
    )?))
}

/// The block's input as its shortcut branch sees it: projected when the block has a
/// downsample, unchanged otherwise.
fn shortcut(xs: &Tensor, downsample: &Option<ConvBn>, train: bool) -> Result<Tensor> {
    match downsample {
        Some(ds) => ds.forward_t(xs, train),
        None => Ok(xs.clone()),
    }
}

/// Two 3×3 convolutions with a residual connection (ResNet-18/34).
#[derive(Debug, Clone)]
pub struct BasicBlock {
    first: ConvBn,
    second: ConvBn,
    downsample: Option<ConvBn>,
}

impl BasicBlock {
    pub fn new(cfg: BlockConfig, vb: VarBuilder) -> Result<Self> {
        let p = cfg.planes;
        let c1 = Conv2dConfig::new(cfg.in_channels, p, 3, cfg.stride, 1);
        let c2 = Conv2dConfig::new(p, p, 3, 1, 1);
        Ok(Self {
            first: ConvBn::new(c1, BatchNormConfig::default(), &vb, ("conv1", "bn1"))?,
            second: ConvBn::new(c2, last_bn(&cfg), &vb, ("conv2", "bn2"))?,
            downsample: downsample(&cfg, p, &vb)?,
        })
    }

    /// # Shapes
    /// `xs`: `[N, in, H, W]` → `[N, planes, H/stride, W/stride]` (rounded up).
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let ys = self.first.forward_relu_t(xs, train)?;
        let identity = shortcut(xs, &self.downsample, train)?;
        self.second.forward_add_relu_t(&ys, &identity, train)
    }
}

/// 1×1 reduce, 3×3 (strided), 1×1 expand ×4, with a residual connection (ResNet-50).
#[derive(Debug, Clone)]
pub struct Bottleneck {
    reduce: ConvBn,
    spatial: ConvBn,
    expand: ConvBn,
    downsample: Option<ConvBn>,
}

impl Bottleneck {
    pub fn new(cfg: BlockConfig, vb: VarBuilder) -> Result<Self> {
        let p = cfg.planes;
        let out = p * BlockKind::Bottleneck.expansion();
        let bn = BatchNormConfig::default();
        let c1 = Conv2dConfig::new(cfg.in_channels, p, 1, 1, 0);
        let c2 = Conv2dConfig::new(p, p, 3, cfg.stride, 1);
        let c3 = Conv2dConfig::new(p, out, 1, 1, 0);
        Ok(Self {
            reduce: ConvBn::new(c1, bn, &vb, ("conv1", "bn1"))?,
            spatial: ConvBn::new(c2, bn, &vb, ("conv2", "bn2"))?,
            expand: ConvBn::new(c3, last_bn(&cfg), &vb, ("conv3", "bn3"))?,
            downsample: downsample(&cfg, out, &vb)?,
        })
    }

    /// # Shapes
    /// `xs`: `[N, in, H, W]` → `[N, 4·planes, H/stride, W/stride]` (rounded up).
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let ys = self.reduce.forward_relu_t(xs, train)?;
        let ys = self.spatial.forward_relu_t(&ys, train)?;
        let identity = shortcut(xs, &self.downsample, train)?;
        self.expand.forward_add_relu_t(&ys, &identity, train)
    }
}

/// Either kind of residual block.
#[derive(Debug, Clone)]
pub enum Block {
    Basic(BasicBlock),
    Bottleneck(Bottleneck),
}

impl Block {
    pub fn new(kind: BlockKind, cfg: BlockConfig, vb: VarBuilder) -> Result<Self> {
        Ok(match kind {
            BlockKind::Basic => Self::Basic(BasicBlock::new(cfg, vb)?),
            BlockKind::Bottleneck => Self::Bottleneck(Bottleneck::new(cfg, vb)?),
        })
    }

    /// # Shapes
    /// `xs`: `[N, in, H, W]` → `[N, expansion·planes, H/stride, W/stride]` (rounded up).
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Self::Basic(b) => b.forward_t(xs, train),
            Self::Bottleneck(b) => b.forward_t(xs, train),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{randn, values};
    use candle_core::{DType, Device};
    use dnc_core::SeededVarMap;
    use dnc_core::testing::assert_close;

    fn cfg(in_channels: usize, planes: usize, stride: usize, zero: bool) -> BlockConfig {
        BlockConfig {
            in_channels,
            planes,
            stride,
            zero_init_last_bn: zero,
        }
    }

    #[test]
    fn zero_initialised_identity_block_is_relu() {
        let map = SeededVarMap::new(0);
        let vb = map.var_builder(DType::F64, &Device::Cpu);
        let x = randn((2, 8, 6, 6), DType::F64, 1);
        for kind in [BlockKind::Basic, BlockKind::Bottleneck] {
            let in_channels = 8 * kind.expansion();
            let x = if in_channels == 8 {
                x.clone()
            } else {
                randn((2, in_channels, 6, 6), DType::F64, 2)
            };
            let block = Block::new(
                kind,
                cfg(in_channels, 8, 1, true),
                vb.pp(format!("{kind:?}")),
            )
            .unwrap();
            for train in [true, false] {
                assert_close(
                    &block.forward_t(&x, train).unwrap(),
                    &x.relu().unwrap(),
                    0.0,
                );
            }
        }
    }

    #[test]
    fn zero_initialised_strided_block_is_relu_of_its_shortcut() {
        // Fresh BatchNorm statistics in evaluation scale by 1/√(1 + ε); the shortcut is a 1×1
        // stride-2 convolution, i.e. a channel mix of the even rows and columns.
        let map = SeededVarMap::new(0);
        let vb = map.var_builder(DType::F64, &Device::Cpu);
        let block = Bottleneck::new(cfg(4, 2, 2, true), vb.clone()).unwrap();
        assert_eq!(
            block.spatial.conv.config().stride,
            2,
            "v1.5: stride on the 3×3"
        );
        assert_eq!(block.reduce.conv.config().stride, 1);
        let x = randn((1, 4, 5, 5), DType::F64, 3);
        let y = block.forward_t(&x, false).unwrap();
        assert_eq!(y.dims(), &[1, 8, 3, 3]);
        let w = values(&vb.get((8, 4, 1, 1), "downsample.0.weight").unwrap());
        let xs = values(&x);
        let ys = values(&y);
        let scale = 1.0 / (1.0 + 1e-5f64).sqrt();
        for o in 0..8 {
            for (i, j) in [(0, 0), (1, 2), (2, 1)] {
                let s: f64 = (0..4)
                    .map(|c| w[o * 4 + c] * xs[(c * 5 + 2 * i) * 5 + 2 * j])
                    .sum();
                let want = (s * scale).max(0.0);
                assert!((ys[(o * 3 + i) * 3 + j] - want).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn shortcut_exists_only_when_shape_changes() {
        let map = SeededVarMap::new(0);
        let vb = map.var_builder(DType::F32, &Device::Cpu);
        assert!(
            BasicBlock::new(cfg(8, 8, 1, false), vb.pp("a"))
                .unwrap()
                .downsample
                .is_none()
        );
        assert!(
            BasicBlock::new(cfg(8, 16, 1, false), vb.pp("b"))
                .unwrap()
                .downsample
                .is_some()
        );
        assert!(
            BasicBlock::new(cfg(8, 8, 2, false), vb.pp("c"))
                .unwrap()
                .downsample
                .is_some()
        );
        assert!(
            Bottleneck::new(cfg(32, 8, 1, false), vb.pp("d"))
                .unwrap()
                .downsample
                .is_none()
        );
        assert!(
            Bottleneck::new(cfg(8, 8, 1, false), vb.pp("e"))
                .unwrap()
                .downsample
                .is_some()
        );
    }
}
