//! Which contrastive objective to train with, and its temperature.

use candle_core::{Result, Tensor, bail};
use serde::{Deserialize, Serialize};

/// The contrastive objective of the base model and the experts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// MoCLR (DnC's choice): online projections against an EMA target network, B − 1 negatives.
    #[default]
    Moclr,
    /// SimCLR's NT-Xent: one network, 2B − 2 negatives.
    Simclr,
}

impl Objective {
    /// Whether the objective contrasts against a target (EMA) network's projections.
    pub fn needs_target(self) -> bool {
        matches!(self, Self::Moclr)
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ObjectiveError {
    #[error("objective.temperature must be a finite number > 0, got {0}")]
    Temperature(f64),
}

/// The objective section of a run configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectiveConfig {
    /// `moclr` (default, the paper's objective) or `simclr`.
    pub kind: Objective,
    /// Softmax temperature τ. The paper does not state it; 0.1 is the usual choice (0.2 is common
    /// on CIFAR).
    pub temperature: f64,
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        Self {
            kind: Objective::Moclr,
            temperature: 0.1,
        }
    }
}

impl ObjectiveConfig {
    /// Checks the values once, when the configuration is loaded.
    pub fn validate(&self) -> std::result::Result<(), ObjectiveError> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(ObjectiveError::Temperature(self.temperature));
        }
        Ok(())
    }

    /// The configured loss for a batch of two views.
    ///
    /// `online` holds the normalised online projections of views 1 and 2. MoCLR also needs
    /// `target`, the target network's (detached) projections of the same views; SimCLR ignores it.
    ///
    /// # Shapes
    /// every tensor: `[B, D]` → scalar.
    pub fn loss(
        &self,
        online: (&Tensor, &Tensor),
        target: Option<(&Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        match (self.kind, target) {
            (Objective::Moclr, Some((k1, k2))) => {
                crate::moclr_loss(online.0, online.1, k1, k2, self.temperature)
            }
            (Objective::Moclr, None) => {
                bail!("moclr loss needs the target network's projections, none were given")
            }
            (Objective::Simclr, _) => crate::nt_xent(online.0, online.1, self.temperature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn defaults_parse_and_validate() {
        let cfg: ObjectiveConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, ObjectiveConfig::default());
        assert_eq!(cfg.kind, Objective::Moclr);
        assert_eq!(cfg.temperature, 0.1);
        cfg.validate().unwrap();
        let cfg: ObjectiveConfig = toml::from_str("kind = \"simclr\"\ntemperature = 0.2").unwrap();
        assert_eq!(cfg.kind, Objective::Simclr);
        assert!(!cfg.kind.needs_target());
        let back: ObjectiveConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn bad_values_are_rejected() {
        let err = toml::from_str::<ObjectiveConfig>("temprature = 0.1").unwrap_err();
        assert!(err.to_string().contains("temprature"), "{err}");
        assert!(toml::from_str::<ObjectiveConfig>("kind = \"byol\"").is_err());
        for bad in [0.0, -0.1, f64::INFINITY, f64::NAN] {
            let cfg = ObjectiveConfig {
                temperature: bad,
                ..Default::default()
            };
            let msg = cfg.validate().unwrap_err().to_string();
            assert!(msg.contains(&bad.to_string()), "{msg}");
        }
    }

    #[test]
    fn loss_dispatches_on_the_kind() {
        let dev = Device::Cpu;
        let a = Tensor::eye(3, DType::F64, &dev).unwrap();
        let b = a.affine(0.5, 0.1).unwrap();
        let moclr = ObjectiveConfig::default();
        let got = moclr.loss((&a, &b), Some((&b, &a))).unwrap();
        let expected = crate::moclr_loss(&a, &b, &b, &a, 0.1).unwrap();
        assert_eq!(
            got.to_scalar::<f64>().unwrap(),
            expected.to_scalar::<f64>().unwrap()
        );
        assert!(moclr.loss((&a, &b), None).is_err());
        let simclr = ObjectiveConfig {
            kind: Objective::Simclr,
            temperature: 0.1,
        };
        let got = simclr.loss((&a, &b), None).unwrap();
        let expected = crate::nt_xent(&a, &b, 0.1).unwrap();
        assert_eq!(
            got.to_scalar::<f64>().unwrap(),
            expected.to_scalar::<f64>().unwrap()
        );
    }
}
