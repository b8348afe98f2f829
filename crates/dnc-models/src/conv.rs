//! The one 2-d convolution every model in this crate goes through.
//!
//! Keeping all convolutions behind [`Conv2d`] means a faster implementation (a fused or
//! channels-last kernel) can be swapped in at one place. Weights use PyTorch's layout and name
//! (`weight`: `[out, in, k, k]`, optional `bias`: `[out]`) and torchvision's ResNet
//! initialisation: Kaiming-normal with fan-out and ReLU gain (He et al., arXiv 1502.01852).

use candle_core::{Result, Tensor, bail};
use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use candle_nn::{Init, VarBuilder};

/// Geometry of a square convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    /// Whether the layer adds a bias (PyTorch init: uniform ±1/√fan_in). Off by default: every
    /// convolution here is followed by a BatchNorm, which makes a bias redundant.
    pub bias: bool,
}

impl Conv2dConfig {
    /// A bias-free `kernel × kernel` convolution.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            bias: false,
        }
    }
}

/// torchvision's ResNet convolution initialisation: `kaiming_normal_(mode="fan_out", nonlinearity="relu")`.
pub const CONV_INIT: Init = Init::Kaiming {
    dist: NormalOrUniform::Normal,
    fan: FanInOut::FanOut,
    non_linearity: NonLinearity::ReLU,
};

/// A 2-d convolution layer.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    cfg: Conv2dConfig,
}

impl Conv2d {
    /// Creates (or reuses) `weight` and, if configured, `bias` under `vb`.
    pub fn new(cfg: Conv2dConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.in_channels == 0 || cfg.out_channels == 0 || cfg.kernel == 0 || cfg.stride == 0 {
            bail!("conv2d needs non-zero channels, kernel and stride, got {cfg:?}")
        }
        let shape = (cfg.out_channels, cfg.in_channels, cfg.kernel, cfg.kernel);
        let weight = vb.get_with_hints(shape, "weight", CONV_INIT)?;
        let bias = if cfg.bias {
            let bound = 1.0 / ((cfg.in_channels * cfg.kernel * cfg.kernel) as f64).sqrt();
            let init = Init::Uniform {
                lo: -bound,
                up: bound,
            };
            Some(vb.get_with_hints(cfg.out_channels, "bias", init)?)
        } else {
            None
        };
        Ok(Self { weight, bias, cfg })
    }

    pub fn config(&self) -> &Conv2dConfig {
        &self.cfg
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// # Shapes
    /// `xs`: `[N, in, H, W]` → `[N, out, (H + 2p − k)/s + 1, (W + 2p − k)/s + 1]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (_, c, _, _) = xs.dims4()?;
        if c != self.cfg.in_channels {
            bail!(
                "conv2d expects {} input channels, got an input of shape {:?}",
                self.cfg.in_channels,
                xs.dims()
            )
        }
        let (stride, padding) = (self.cfg.stride, self.cfg.padding);
        let ys = crate::precision::in_compute_dtype(xs, &self.weight, |x, w| {
            dnc_kernels::conv2d(x, w, stride, padding)
        })?;
        crate::macs::record_conv(ys.elem_count(), c, self.cfg.kernel);
        match &self.bias {
            Some(b) => ys.broadcast_add(&b.reshape((1, self.cfg.out_channels, 1, 1))?),
            None => Ok(ys),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_err_contains, randn, values};
    use candle_core::{DType, Device};
    use dnc_core::SeededVarMap;

    /// A direct loop over output positions, as the definition of a cross-correlation.
    fn direct_conv(
        x: &[f64],
        w: &[f64],
        bias: &[f64],
        c: usize,
        hw: usize,
        cfg: Conv2dConfig,
    ) -> Vec<f64> {
        let (k, s, p, o) = (cfg.kernel, cfg.stride, cfg.padding, cfg.out_channels);
        let ho = (hw + 2 * p - k) / s + 1;
        let mut out = vec![0.0; o * ho * ho];
        for oc in 0..o {
            for i in 0..ho {
                for j in 0..ho {
                    let mut acc = bias[oc];
                    for ic in 0..c {
                        for di in 0..k {
                            for dj in 0..k {
                                let (r, q) = (
                                    (i * s + di) as isize - p as isize,
                                    (j * s + dj) as isize - p as isize,
                                );
                                if r < 0 || q < 0 || r >= hw as isize || q >= hw as isize {
                                    continue;
                                }
                                let xv = x[(ic * hw + r as usize) * hw + q as usize];
                                acc += xv * w[((oc * c + ic) * k + di) * k + dj];
                            }
                        }
                    }
                    out[(oc * ho + i) * ho + j] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn matches_a_direct_loop_with_stride_padding_and_bias() {
        let map = SeededVarMap::new(1);
        let cfg = Conv2dConfig {
            bias: true,
            ..Conv2dConfig::new(2, 3, 3, 2, 1)
        };
        let conv = Conv2d::new(cfg, map.var_builder(DType::F64, &Device::Cpu)).unwrap();
        let x = randn((1, 2, 5, 5), DType::F64, 4);
        let y = conv.forward(&x).unwrap();
        assert_eq!(y.dims(), &[1, 3, 3, 3]);
        let bias = values(
            &map.varmap().data().lock().unwrap()["bias"]
                .as_tensor()
                .clone(),
        );
        let want = direct_conv(&values(&x), &values(conv.weight()), &bias, 2, 5, cfg);
        for (a, b) in values(&y).iter().zip(&want) {
            assert!((a - b).abs() < 1e-10, "{a} vs {b}");
        }
        assert!(
            bias.iter().all(|b| b.abs() <= 1.0 / 18f64.sqrt()),
            "{bias:?}"
        );
    }

    #[test]
    fn init_is_kaiming_normal_fan_out_without_bias() {
        let map = SeededVarMap::new(2);
        let conv = Conv2d::new(
            Conv2dConfig::new(16, 64, 3, 1, 1),
            map.var_builder(DType::F32, &Device::Cpu),
        )
        .unwrap();
        let w = values(conv.weight());
        let var = w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
        let expected = 2.0 / (64.0 * 9.0);
        assert!((var / expected - 1.0).abs() < 0.05, "{var} vs {expected}");
        assert_eq!(map.varmap().all_vars().len(), 1, "no bias by default");
    }

    #[test]
    fn bad_configs_and_inputs_are_reported() {
        let map = SeededVarMap::new(0);
        let vb = map.var_builder(DType::F32, &Device::Cpu);
        assert_err_contains(
            Conv2d::new(Conv2dConfig::new(3, 8, 3, 0, 1), vb.clone()),
            &["stride: 0"],
        );
        let conv = Conv2d::new(Conv2dConfig::new(3, 8, 3, 1, 1), vb).unwrap();
        let x = Tensor::zeros((1, 4, 8, 8), DType::F32, &Device::Cpu).unwrap();
        assert_err_contains(conv.forward(&x), &["3 input channels", "[1, 4, 8, 8]"]);
    }
}
