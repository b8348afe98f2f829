//! [`FitConfig`]: the training-loop settings of one stage (serde, validated once).

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// How long to train, how often to log and checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitConfig {
    /// Epochs to train. Default 200 (the paper's shortest base schedule, 200 + 600 + 200).
    pub epochs: usize,
    /// Linear learning-rate warm-up, in epochs (rounded to steps). Default 10, as in the paper.
    pub warmup_epochs: f64,
    /// Write a step record (means over the window) every this many steps; 0 writes only epoch
    /// records. Default 10.
    pub log_every: usize,
    /// Checkpoint every this many steps, besides each epoch end and the end; 0 checkpoints only
    /// there. Default 0.
    pub checkpoint_every: usize,
    /// Step checkpoints to keep (at least 1). Default 2.
    pub keep_last: usize,
    /// Also keep the checkpoint with the best epoch mean of a metric in `best/`. Default none.
    pub keep_best: Option<KeepBest>,
    /// Stop once this many steps are done in total, with a final checkpoint (benches, smoke
    /// runs). Default none.
    pub max_steps: Option<usize>,
    /// No progress bar. Default false (the bar still hides itself when stderr is no terminal).
    pub quiet: bool,
    /// Scale the gradients down to this global L2 norm when they exceed it, and log their norm
    /// before clipping (`grad_norm`); 0 (the default) leaves them as they are.
    pub clip_grad_norm: f64,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            epochs: 200,
            warmup_epochs: 10.0,
            log_every: 10,
            checkpoint_every: 0,
            keep_last: 2,
            keep_best: None,
            max_steps: None,
            quiet: false,
            clip_grad_norm: 0.0,
        }
    }
}

/// Which metric selects the `best/` checkpoint, and in which direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeepBest {
    /// `"loss"` or the name of a metric the train step reports. Default `"loss"`.
    pub metric: String,
    /// Default `min`.
    pub mode: BestMode,
}

impl Default for KeepBest {
    fn default() -> Self {
        Self {
            metric: "loss".into(),
            mode: BestMode::Min,
        }
    }
}

/// Whether smaller or larger values are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BestMode {
    Min,
    Max,
}

impl BestMode {
    /// `true` when `candidate` beats `best` (a non-finite candidate never does).
    pub fn improves(self, candidate: f64, best: Option<f64>) -> bool {
        if !candidate.is_finite() {
            return false;
        }
        match (self, best) {
            (_, None) => true,
            (Self::Min, Some(b)) => candidate < b,
            (Self::Max, Some(b)) => candidate > b,
        }
    }
}

impl FitConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.epochs == 0 {
            return Err(ConfigError::new("fit.epochs", 0, "must be at least 1"));
        }
        if !(self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0) {
            return Err(ConfigError::new(
                "fit.warmup_epochs",
                self.warmup_epochs,
                "must be a finite number >= 0",
            ));
        }
        if !(self.clip_grad_norm.is_finite() && self.clip_grad_norm >= 0.0) {
            return Err(ConfigError::new(
                "fit.clip_grad_norm",
                self.clip_grad_norm,
                "must be a finite number >= 0 (0: no clipping)",
            ));
        }
        if self.keep_last == 0 {
            return Err(ConfigError::new("fit.keep_last", 0, "must be at least 1"));
        }
        if self.max_steps == Some(0) {
            return Err(ConfigError::new(
                "fit.max_steps",
                0,
                "must be at least 1 when set",
            ));
        }
        if self.keep_best.as_ref().is_some_and(|b| b.metric.is_empty()) {
            return Err(ConfigError::new(
                "fit.keep_best.metric",
                "\"\"",
                "must name a metric",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_defaults_and_validation() {
        let c: FitConfig =
            toml::from_str("epochs = 3\n[keep_best]\nmode = \"max\"\nmetric = \"acc\"").unwrap();
        assert_eq!(c.epochs, 3);
        assert_eq!(c.warmup_epochs, 10.0);
        assert_eq!(c.keep_best.as_ref().unwrap().mode, BestMode::Max);
        assert!(toml::from_str::<FitConfig>("epoch = 3").is_err());
        c.validate().unwrap();
        let bad = FitConfig {
            epochs: 0,
            ..FitConfig::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "invalid fit.epochs = 0: must be at least 1"
        );
        let bad = FitConfig {
            warmup_epochs: -1.0,
            ..FitConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("fit.warmup_epochs = -1")
        );
        let bad = FitConfig {
            keep_last: 0,
            ..FitConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn best_mode_compares_in_its_direction() {
        assert!(BestMode::Min.improves(1.0, None));
        assert!(BestMode::Min.improves(1.0, Some(2.0)));
        assert!(!BestMode::Min.improves(2.0, Some(2.0)));
        assert!(BestMode::Max.improves(3.0, Some(2.0)));
        assert!(!BestMode::Max.improves(f64::NAN, None));
    }
}
