//! A small convolutional backbone for CPU-sized experiments.
//!
//! Stages of `conv 3×3 (no bias) → BatchNorm → ReLU → max-pool 2×2`, then a global average pool:
//! the "tiny" backbone of `anchors/torch_ref.py`, whose PyTorch figures are the CPU-budget
//! reference. Names follow that `nn.Sequential`: stage `i` has its convolution at
//! `features.{4i}` and its BatchNorm at `features.{4i+1}` (ReLU and pool hold no weights).

use crate::batch_norm::{BatchNorm, BatchNormConfig};
use crate::conv::{Conv2d, Conv2dConfig};
use crate::pool::global_avg_pool;
use candle_core::{Result, Tensor, bail};
use candle_nn::VarBuilder;

/// The widths of torch_ref's tiny net.
pub const TINY_WIDTHS: [usize; 4] = [32, 64, 128, 256];

/// A stack of conv-BN-ReLU-pool stages.
#[derive(Debug, Clone)]
pub struct TinyConvNet {
    stages: Vec<(Conv2d, BatchNorm)>,
}

impl TinyConvNet {
    /// One stage per entry of `widths` (output channels), on 3-channel inputs.
    pub fn new(widths: &[usize], vb: VarBuilder) -> Result<Self> {
        if widths.is_empty() || widths.contains(&0) {
            bail!("tiny conv net needs at least one stage of non-zero width, got {widths:?}")
        }
        let features = vb.pp("features");
        let mut stages = Vec::with_capacity(widths.len());
        let mut in_channels = 3;
        for (i, &out) in widths.iter().enumerate() {
            let conv = Conv2d::new(
                Conv2dConfig::new(in_channels, out, 3, 1, 1),
                features.pp(4 * i),
            )?;
            let bn = BatchNorm::new(out, BatchNormConfig::default(), features.pp(4 * i + 1))?;
            stages.push((conv, bn));
            in_channels = out;
        }
        Ok(Self { stages })
    }

    /// Width of the pooled features (the last stage's channels).
    pub fn out_dim(&self) -> usize {
        self.stages
            .last()
            .map_or(0, |(conv, _)| conv.config().out_channels)
    }

    /// Pooled features; every stage halves the resolution (rounding down).
    ///
    /// # Shapes
    /// `xs`: `[N, 3, H, W]` with `H, W ≥ 2^stages` → `[N, widths.last()]`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let mut ys = xs.clone();
        for (conv, bn) in &self.stages {
            ys = bn.forward_conv_relu_max_pool_t(conv, &ys, train)?;
        }
        global_avg_pool(&ys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{names_and_shapes, randn, values};
    use candle_core::{DType, Device};
    use dnc_core::SeededVarMap;

    #[test]
    fn names_follow_torch_ref_sequential() {
        let map = SeededVarMap::new(0);
        let net =
            TinyConvNet::new(&TINY_WIDTHS, map.var_builder(DType::F32, &Device::Cpu)).unwrap();
        let mut want = Vec::new();
        let mut cin = 3;
        for (i, c) in TINY_WIDTHS.into_iter().enumerate() {
            want.push((format!("features.{}.weight", 4 * i), vec![c, cin, 3, 3]));
            for leaf in ["bias", "running_mean", "running_var", "weight"] {
                want.push((format!("features.{}.{leaf}", 4 * i + 1), vec![c]));
            }
            cin = c;
        }
        want.sort();
        assert_eq!(names_and_shapes(map.varmap()), want);
        assert_eq!(net.out_dim(), 256);
    }

    #[test]
    fn forward_shapes_for_default_and_custom_widths() {
        let map = SeededVarMap::new(0);
        let vb = map.var_builder(DType::F32, &Device::Cpu);
        let net = TinyConvNet::new(&TINY_WIDTHS, vb.pp("a")).unwrap();
        let x = randn((2, 3, 32, 32), DType::F32, 1);
        for train in [true, false] {
            let y = net.forward_t(&x, train).unwrap();
            assert_eq!(y.dims(), &[2, 256]);
            assert!(values(&y).iter().all(|v| v.is_finite() && *v >= 0.0));
        }
        let net = TinyConvNet::new(&[4, 6], vb.pp("b")).unwrap();
        assert_eq!(
            net.forward_t(&randn((2, 3, 9, 7), DType::F32, 2), true)
                .unwrap()
                .dims(),
            &[2, 6]
        );
        let err = TinyConvNet::new(&[4, 0], vb.pp("c")).unwrap_err();
        assert!(err.to_string().contains("[4, 0]"), "{err}");
    }
}
