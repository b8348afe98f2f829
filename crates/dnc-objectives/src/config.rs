//! Which contrastive objective to train with, and its temperature.

use std::sync::Arc;

use candle_core::{Result, Tensor, bail};
use dnc_dist::{Communicator, all_gather_rows};
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

    /// [`loss`](Self::loss) of this rank's share of a data-parallel batch.
    ///
    /// The negatives are gathered from every rank of `comm` (MoCLR's target keys, SimCLR's
    /// projections, the latter with their gradient), so each rank contrasts its images with
    /// the whole global batch; the mean over ranks is the loss of one process with the whole
    /// batch. Every rank's share has the same size. With one rank this is [`loss`](Self::loss).
    ///
    /// # Shapes
    /// every tensor: `[b, D]` (this rank's share) → scalar.
    pub fn loss_over(
        &self,
        online: (&Tensor, &Tensor),
        target: Option<(&Tensor, &Tensor)>,
        comm: &Arc<dyn Communicator>,
    ) -> Result<Tensor> {
        if comm.world_size() == 1 {
            return self.loss(online, target);
        }
        let first = comm.rank() * online.0.dim(0)?;
        let tau = self.temperature;
        match (self.kind, target) {
            (Objective::Moclr, Some((k1, k2))) => {
                let (all1, all2) = (all_gather_rows(k1, comm)?, all_gather_rows(k2, comm)?);
                crate::moclr_loss_in(online.0, online.1, &all1, &all2, first, tau)
            }
            (Objective::Moclr, None) => self.loss(online, None),
            (Objective::Simclr, _) => {
                let all1 = all_gather_rows(online.0, comm)?;
                let all2 = all_gather_rows(online.1, comm)?;
                crate::nt_xent_in(online.0, online.1, &all1, &all2, first, tau)
            }
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

    /// Every rank's loss on its share, averaged, against the loss of the whole batch; and the
    /// gradients of the online projections, summed over ranks, against the whole batch's.
    #[test]
    fn the_loss_over_ranks_is_the_whole_batch_loss_with_its_gradients() {
        use candle_core::Var;
        use dnc_core::{SeededRng, l2_normalize};
        let unit = |seed: u64| {
            let mut rng = SeededRng::new(seed);
            let v: Vec<f32> = (0..8 * 3).map(|_| rng.normal() as f32).collect();
            l2_normalize(&Tensor::from_vec(v, (8, 3), &Device::Cpu).unwrap()).unwrap()
        };
        let views: Vec<Tensor> = (0..4).map(unit).collect();
        for kind in [Objective::Moclr, Objective::Simclr] {
            let cfg = ObjectiveConfig {
                kind,
                temperature: 0.2,
            };
            // Whole batch, one process.
            let (q1, q2) = (
                Var::from_tensor(&views[0]).unwrap(),
                Var::from_tensor(&views[1]).unwrap(),
            );
            let whole = cfg
                .loss(
                    (q1.as_tensor(), q2.as_tensor()),
                    Some((&views[2], &views[3])),
                )
                .unwrap();
            let grads = whole.backward().unwrap();
            let g_whole = grads.get(q1.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
            let whole = whole.to_scalar::<f32>().unwrap();
            // Two ranks, four rows each.
            let ranks: Vec<(f32, Vec<Vec<f32>>)> = dnc_dist::LocalGroup::run(2, |comm| {
                let share = |t: &Tensor| t.narrow(0, comm.rank() * 4, 4).unwrap();
                let q1 = Var::from_tensor(&share(&views[0])).unwrap();
                let q2 = Var::from_tensor(&share(&views[1])).unwrap();
                let (k1, k2) = (share(&views[2]), share(&views[3]));
                let loss = cfg
                    .loss_over((q1.as_tensor(), q2.as_tensor()), Some((&k1, &k2)), &comm)
                    .unwrap();
                let grads = loss.backward().unwrap();
                let g = grads.get(q1.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
                (loss.to_scalar::<f32>().unwrap(), g)
            });
            let mean = (ranks[0].0 + ranks[1].0) / 2.0;
            assert!((mean - whole).abs() < 1e-5, "{kind:?}: {mean} vs {whole}");
            // d(mean loss)/dq1 of the whole batch = (1/2) · (rank r's gradient of its rows).
            let stacked: Vec<Vec<f32>> = ranks.iter().flat_map(|(_, g)| g.clone()).collect();
            for (row_w, row_r) in g_whole.iter().zip(&stacked) {
                for (w, r) in row_w.iter().zip(row_r) {
                    assert!((w - r / 2.0).abs() < 1e-5, "{kind:?}: {w} vs {}", r / 2.0);
                }
            }
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
