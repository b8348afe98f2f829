//! Optimiser configuration: plain serde structs with the defaults of the SPEC and of
//! `anchors/torch_ref.py`, validated once.

use serde::{Deserialize, Serialize};

use super::{Lars, Optimizer, Sgd};
use crate::error::ConfigError;

/// Which optimiser trains a stage, tagged by `kind` (`"sgd"` or `"lars"`).
///
/// In TOML: `[optimizer]` then `kind = "lars"` and any field of [`LarsConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "lowercase",
    try_from = "RawOptimizerConfig"
)]
pub enum OptimizerConfig {
    Sgd(SgdConfig),
    Lars(LarsConfig),
}

/// The optimiser's table as written, read as one struct so that a value of the wrong type is
/// reported at its key (a tagged enum is read through a buffer that loses the key), then checked
/// against its `kind`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptimizerConfig {
    kind: OptimizerKind,
    base_lr: Option<f64>,
    momentum: Option<f64>,
    weight_decay: Option<f64>,
    nesterov: Option<bool>,
    eta: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum OptimizerKind {
    Sgd,
    Lars,
}

impl TryFrom<RawOptimizerConfig> for OptimizerConfig {
    type Error = String;

    fn try_from(raw: RawOptimizerConfig) -> Result<Self, String> {
        let other = |key: &str, of: &str, kind: &str| {
            format!("`{key}` is a setting of kind = \"{of}\", not of kind = \"{kind}\"")
        };
        Ok(match raw.kind {
            OptimizerKind::Sgd => {
                if raw.eta.is_some() {
                    return Err(other("eta", "lars", "sgd"));
                }
                let d = SgdConfig::default();
                Self::Sgd(SgdConfig {
                    base_lr: raw.base_lr.unwrap_or(d.base_lr),
                    momentum: raw.momentum.unwrap_or(d.momentum),
                    weight_decay: raw.weight_decay.unwrap_or(d.weight_decay),
                    nesterov: raw.nesterov.unwrap_or(d.nesterov),
                })
            }
            OptimizerKind::Lars => {
                if raw.nesterov.is_some() {
                    return Err(other("nesterov", "sgd", "lars"));
                }
                let d = LarsConfig::default();
                Self::Lars(LarsConfig {
                    base_lr: raw.base_lr.unwrap_or(d.base_lr),
                    momentum: raw.momentum.unwrap_or(d.momentum),
                    weight_decay: raw.weight_decay.unwrap_or(d.weight_decay),
                    eta: raw.eta.unwrap_or(d.eta),
                })
            }
        })
    }
}

impl Default for OptimizerConfig {
    /// LARS, the optimiser of the paper.
    fn default() -> Self {
        Self::Lars(LarsConfig::default())
    }
}

impl OptimizerConfig {
    /// The learning rate at batch size 256.
    pub fn base_lr(&self) -> f64 {
        match self {
            Self::Sgd(c) => c.base_lr,
            Self::Lars(c) => c.base_lr,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::Sgd(c) => c.validate(),
            Self::Lars(c) => c.validate(),
        }
    }

    /// A fresh optimiser (empty momentum buffers).
    pub fn build(&self) -> Result<Box<dyn Optimizer>, ConfigError> {
        Ok(match self {
            Self::Sgd(c) => Box::new(Sgd::new(c.clone())?),
            Self::Lars(c) => Box::new(Lars::new(c.clone())?),
        })
    }
}

/// SGD with momentum ([`Sgd`]). Defaults: the small-batch alternative of the SPEC, as tuned in
/// `anchors/torch_ref.py` for the CPU budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    /// Learning rate at batch size 256 (`lr = base_lr · B / 256`). Default 0.01.
    pub base_lr: f64,
    /// Momentum μ. Default 0.9.
    pub momentum: f64,
    /// L2 weight decay on parameters of rank ≥ 2. Default 5e-4.
    pub weight_decay: f64,
    /// Nesterov momentum. Default false.
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            base_lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
        }
    }
}

impl SgdConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_common("sgd", self.base_lr, self.momentum, self.weight_decay)?;
        if self.nesterov && self.momentum == 0.0 {
            return Err(ConfigError::new(
                "optimizer.nesterov",
                true,
                "Nesterov momentum needs momentum > 0",
            ));
        }
        Ok(())
    }
}

/// LARS ([`Lars`]). Defaults: the paper's MoCLR recipe (base lr 0.3, weight decay 1.5e-6)
/// with the trust coefficient of `anchors/torch_ref.py`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LarsConfig {
    /// Learning rate at batch size 256 (`lr = base_lr · B / 256`). Default 0.3.
    pub base_lr: f64,
    /// Momentum μ. Default 0.9.
    pub momentum: f64,
    /// L2 weight decay on parameters of rank ≥ 2. Default 1.5e-6.
    pub weight_decay: f64,
    /// Trust coefficient η. Default 0.001.
    pub eta: f64,
}

impl Default for LarsConfig {
    fn default() -> Self {
        Self {
            base_lr: 0.3,
            momentum: 0.9,
            weight_decay: 1.5e-6,
            eta: 0.001,
        }
    }
}

impl LarsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_common("lars", self.base_lr, self.momentum, self.weight_decay)?;
        if !(self.eta.is_finite() && self.eta > 0.0) {
            return Err(ConfigError::new(
                "optimizer.eta",
                self.eta,
                "the trust coefficient must be a finite number > 0",
            ));
        }
        Ok(())
    }
}

fn check_common(
    kind: &str,
    base_lr: f64,
    momentum: f64,
    weight_decay: f64,
) -> Result<(), ConfigError> {
    if !(base_lr.is_finite() && base_lr >= 0.0) {
        return Err(ConfigError::new(
            "optimizer.base_lr",
            base_lr,
            format!("{kind}: must be a finite number >= 0"),
        ));
    }
    if !(0.0..1.0).contains(&momentum) {
        return Err(ConfigError::new(
            "optimizer.momentum",
            momentum,
            format!("{kind}: must be in [0, 1)"),
        ));
    }
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        return Err(ConfigError::new(
            "optimizer.weight_decay",
            weight_decay,
            format!("{kind}: must be a finite number >= 0"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_spec_values() {
        assert_eq!(
            OptimizerConfig::default(),
            OptimizerConfig::Lars(LarsConfig {
                base_lr: 0.3,
                momentum: 0.9,
                weight_decay: 1.5e-6,
                eta: 0.001
            })
        );
        let s = SgdConfig::default();
        assert_eq!(
            (s.base_lr, s.momentum, s.weight_decay, s.nesterov),
            (0.01, 0.9, 5e-4, false)
        );
    }

    #[test]
    fn toml_is_tagged_and_strict() {
        let c: OptimizerConfig = toml::from_str("kind = \"sgd\"\nbase_lr = 0.05").unwrap();
        assert_eq!(
            c,
            OptimizerConfig::Sgd(SgdConfig {
                base_lr: 0.05,
                ..SgdConfig::default()
            })
        );
        let c: OptimizerConfig = toml::from_str("kind = \"lars\"").unwrap();
        assert_eq!(c, OptimizerConfig::default());
        let err = toml::from_str::<OptimizerConfig>("kind = \"lars\"\nbase_rl = 0.1").unwrap_err();
        assert!(err.to_string().contains("base_rl"), "{err}");
        let err = toml::from_str::<OptimizerConfig>("kind = \"adam\"").unwrap_err();
        assert!(err.to_string().contains("adam"), "{err}");
        // A value of the wrong type is reported at its key.
        let err =
            toml::from_str::<OptimizerConfig>("kind = \"sgd\"\nmomentum = \"high\"").unwrap_err();
        assert!(err.to_string().contains("momentum = \"high\""), "{err}");
        // A setting of the other kind is refused by name.
        let err = toml::from_str::<OptimizerConfig>("kind = \"sgd\"\neta = 0.1").unwrap_err();
        assert!(
            err.to_string()
                .contains("`eta` is a setting of kind = \"lars\""),
            "{err}"
        );
        let err = toml::from_str::<OptimizerConfig>("base_lr = 0.1").unwrap_err();
        assert!(err.to_string().contains("kind"), "{err}");
        let back: OptimizerConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn invalid_values_are_named() {
        let bad = |c: OptimizerConfig| c.validate().unwrap_err().to_string();
        let sgd = |f: fn(&mut SgdConfig)| {
            let mut c = SgdConfig::default();
            f(&mut c);
            OptimizerConfig::Sgd(c)
        };
        assert_eq!(
            bad(sgd(|c| c.momentum = 1.0)),
            "invalid optimizer.momentum = 1: sgd: must be in [0, 1)"
        );
        assert!(bad(sgd(|c| c.base_lr = f64::NAN)).contains("optimizer.base_lr = NaN"));
        assert!(bad(sgd(|c| c.weight_decay = -1.0)).contains("optimizer.weight_decay = -1"));
        assert!(
            bad(sgd(|c| {
                c.nesterov = true;
                c.momentum = 0.0;
            }))
            .contains("optimizer.nesterov")
        );
        let lars = OptimizerConfig::Lars(LarsConfig {
            eta: 0.0,
            ..LarsConfig::default()
        });
        assert!(bad(lars.clone()).contains("optimizer.eta = 0"));
        assert!(lars.build().is_err());
        let built = OptimizerConfig::default().build().unwrap();
        assert_eq!((built.name(), built.base_lr()), ("lars", 0.3));
    }
}
