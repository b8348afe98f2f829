//! The backbone `f` of Divide and Contrast (arXiv 2105.08054): which network, configured once.

use crate::error::ModelError;
use crate::resnet::{ResNet, ResNetConfig, Stem};
use crate::tiny::{TINY_WIDTHS, TinyConvNet};
use candle_core::{Result, Tensor, bail};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Backbone architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// torch_ref's 4-stage conv net (256 features): the CPU-budget model.
    Tiny,
    /// ResNet-18, 512 features.
    Resnet18,
    /// ResNet-34, 512 features.
    Resnet34,
    /// ResNet-50, 2048 features: the paper's backbone.
    #[default]
    Resnet50,
}

/// The backbone section of a model configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackboneConfig {
    /// `tiny | resnet18 | resnet34 | resnet50` (default `resnet50`, the paper's).
    pub arch: Arch,
    /// ResNet stem: `imagenet` (default, 7×7/2 + max-pool) or `cifar` (3×3/1, for 32×32 images).
    /// The tiny net has its own first stage and ignores it.
    pub stem: Stem,
    /// Start every residual branch's last BatchNorm at γ = 0 (ResNets only; default false).
    pub zero_init_residual: bool,
    /// Output channels of the tiny net's stages (default 32, 64, 128, 256, as torch_ref).
    pub tiny_widths: Vec<usize>,
}

impl Default for BackboneConfig {
    fn default() -> Self {
        Self {
            arch: Arch::default(),
            stem: Stem::default(),
            zero_init_residual: false,
            tiny_widths: TINY_WIDTHS.to_vec(),
        }
    }
}

impl BackboneConfig {
    /// Checks the values once, when the configuration is loaded.
    pub fn validate(&self) -> std::result::Result<(), ModelError> {
        if self.arch == Arch::Tiny && (self.tiny_widths.is_empty() || self.tiny_widths.contains(&0))
        {
            return Err(ModelError::InvalidConfig {
                field: "backbone.tiny_widths",
                reason: format!(
                    "must be a non-empty list of non-zero widths, got {:?}",
                    self.tiny_widths
                ),
            });
        }
        Ok(())
    }

    /// The ResNet configuration for the ResNet archs, `None` for the tiny net.
    pub fn resnet(&self) -> Option<ResNetConfig> {
        let cfg = match self.arch {
            Arch::Tiny => return None,
            Arch::Resnet18 => ResNetConfig::resnet18(self.stem),
            Arch::Resnet34 => ResNetConfig::resnet34(self.stem),
            Arch::Resnet50 => ResNetConfig::resnet50(self.stem),
        };
        Some(ResNetConfig {
            zero_init_residual: self.zero_init_residual,
            ..cfg
        })
    }

    /// Width of the backbone's features.
    pub fn out_dim(&self) -> usize {
        match self.resnet() {
            Some(cfg) => cfg.out_dim(),
            None => self.tiny_widths.last().copied().unwrap_or(0),
        }
    }
}

/// A backbone of any supported architecture.
#[derive(Debug, Clone)]
pub enum Backbone {
    Tiny(TinyConvNet),
    ResNet(ResNet),
}

impl Backbone {
    /// Builds the configured network, with its variables directly under `vb`.
    pub fn new(cfg: &BackboneConfig, vb: VarBuilder) -> Result<Self> {
        if let Err(e) = cfg.validate() {
            bail!("{e}")
        }
        Ok(match cfg.resnet() {
            Some(resnet) => Self::ResNet(ResNet::new(resnet, vb)?),
            None => Self::Tiny(TinyConvNet::new(&cfg.tiny_widths, vb)?),
        })
    }

    pub fn out_dim(&self) -> usize {
        match self {
            Self::Tiny(net) => net.out_dim(),
            Self::ResNet(net) => net.out_dim(),
        }
    }

    /// Pooled features.
    ///
    /// # Shapes
    /// `xs`: `[N, 3, H, W]` → `[N, out_dim]`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Self::Tiny(net) => net.forward_t(xs, train),
            Self::ResNet(net) => net.forward_t(xs, train),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{names_and_shapes, randn};
    use candle_core::{DType, Device};
    use dnc_core::SeededVarMap;

    #[test]
    fn config_parses_lowercase_names_and_rejects_unknown_keys() {
        let cfg: BackboneConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, BackboneConfig::default());
        assert_eq!(
            (cfg.arch, cfg.stem, cfg.out_dim()),
            (Arch::Resnet50, Stem::Imagenet, 2048)
        );
        let cfg: BackboneConfig = toml::from_str("arch = \"tiny\"\ntiny_widths = [8, 16]").unwrap();
        assert_eq!((cfg.arch, cfg.out_dim()), (Arch::Tiny, 16));
        let cfg: BackboneConfig = toml::from_str("arch = \"resnet18\"\nstem = \"cifar\"").unwrap();
        assert_eq!(
            (cfg.arch, cfg.stem, cfg.out_dim()),
            (Arch::Resnet18, Stem::Cifar, 512)
        );
        let back: BackboneConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        let err = toml::from_str::<BackboneConfig>("stems = \"cifar\"").unwrap_err();
        assert!(err.to_string().contains("stems"), "{err}");
        assert!(toml::from_str::<BackboneConfig>("arch = \"ResNet18\"").is_err());
    }

    #[test]
    fn invalid_tiny_widths_are_rejected_before_building() {
        let cfg = BackboneConfig {
            arch: Arch::Tiny,
            tiny_widths: vec![],
            ..Default::default()
        };
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(
            msg.contains("backbone.tiny_widths") && msg.contains("[]"),
            "{msg}"
        );
        let map = SeededVarMap::new(0);
        let err = Backbone::new(&cfg, map.var_builder(DType::F32, &Device::Cpu)).unwrap_err();
        assert!(err.to_string().contains("backbone.tiny_widths"), "{err}");
    }

    #[test]
    fn dispatches_to_the_configured_network() {
        let x = randn((2, 3, 32, 32), DType::F32, 0);
        for (arch, dim, first) in [
            (Arch::Tiny, 256, "features.0.weight"),
            (Arch::Resnet18, 512, "bn1.bias"),
        ] {
            let cfg = BackboneConfig {
                arch,
                stem: Stem::Cifar,
                ..Default::default()
            };
            let map = SeededVarMap::new(0);
            let net = Backbone::new(&cfg, map.var_builder(DType::F32, &Device::Cpu)).unwrap();
            assert_eq!(net.out_dim(), dim);
            assert_eq!(net.forward_t(&x, true).unwrap().dims(), &[2, dim]);
            assert_eq!(names_and_shapes(map.varmap())[0].0, first);
        }
    }
}
