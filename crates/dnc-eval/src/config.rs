//! Evaluation settings: plain serde values, validated once before any data is touched.

use crate::error::ParamError;
use serde::{Deserialize, Serialize};

/// Weighted k-NN classifier settings (InstDisc, Wu et al. 2018; lightly's benchmark protocol).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnnConfig {
    /// Number of neighbours that vote (200 in the protocol); capped at the bank size.
    pub k: usize,
    /// Temperature τ of the vote weights `exp(cos / τ)` (0.1 in the protocol).
    pub temperature: f64,
    /// Queries per chunk: at most a `[chunk, N_bank]` similarity block exists at a time.
    pub chunk: usize,
}

impl Default for KnnConfig {
    fn default() -> Self {
        Self {
            k: 200,
            temperature: 0.1,
            chunk: 512,
        }
    }
}

impl KnnConfig {
    /// Checks every value that does not depend on the data.
    pub fn validate(&self) -> Result<(), ParamError> {
        if self.k == 0 {
            return Err(ParamError::ZeroK);
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(ParamError::Temperature(self.temperature));
        }
        if self.chunk == 0 {
            return Err(ParamError::ZeroChunk);
        }
        Ok(())
    }
}

/// Linear-probe settings: multinomial logistic regression on standardised frozen features,
/// trained by mini-batch SGD (momentum 0.9) with a cosine learning-rate decay to zero.
///
/// The defaults fit a 10-class probe on 10k 512-d features in a few seconds on a CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearProbeConfig {
    /// Passes over the training features.
    pub epochs: usize,
    /// Peak learning rate (the first step's); decays to 0 along a cosine over all steps.
    pub lr: f64,
    /// L2 penalty `½·wd·‖W‖²` on the weight matrix (not on the bias).
    pub weight_decay: f64,
    /// Training features per SGD step.
    pub batch_size: usize,
    /// Seed of the per-epoch shuffles; the same seed gives the same probe.
    pub seed: u64,
}

impl Default for LinearProbeConfig {
    fn default() -> Self {
        Self {
            epochs: 30,
            lr: 0.05,
            weight_decay: 1e-4,
            batch_size: 256,
            seed: 0,
        }
    }
}

impl LinearProbeConfig {
    /// Checks every value that does not depend on the data.
    pub fn validate(&self) -> Result<(), ParamError> {
        if self.epochs == 0 {
            return Err(ParamError::ZeroEpochs);
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(ParamError::LearningRate(self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(ParamError::WeightDecay(self.weight_decay));
        }
        if self.batch_size == 0 {
            return Err(ParamError::ZeroBatchSize);
        }
        Ok(())
    }
}

/// Settings of a full evaluation ([`evaluate`](crate::evaluate)): k-NN always, linear probe by
/// choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    pub knn: KnnConfig,
    pub linear: LinearProbeConfig,
    /// Train and score the linear probe as well (it costs more than the k-NN).
    pub linear_probe: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            knn: KnnConfig::default(),
            linear: LinearProbeConfig::default(),
            linear_probe: true,
        }
    }
}

impl EvalConfig {
    /// Checks both parts; the linear settings are checked even when the probe is off, so a bad
    /// value is found when the config is written, not when the probe is switched on.
    pub fn validate(&self) -> Result<(), ParamError> {
        self.knn.validate()?;
        self.linear.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_protocol_values_and_valid() {
        let c = EvalConfig::default();
        assert_eq!((c.knn.k, c.knn.temperature), (200, 0.1));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn bad_values_are_rejected_with_their_value() {
        let knn = |f: fn(&mut KnnConfig)| {
            let mut c = KnnConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(knn(|c| c.k = 0), ParamError::ZeroK);
        assert_eq!(knn(|c| c.temperature = 0.0), ParamError::Temperature(0.0));
        assert!(
            matches!(knn(|c| c.temperature = f64::NAN), ParamError::Temperature(t) if t.is_nan())
        );
        assert_eq!(knn(|c| c.chunk = 0), ParamError::ZeroChunk);
        let lin = |f: fn(&mut LinearProbeConfig)| {
            let mut c = LinearProbeConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(lin(|c| c.epochs = 0), ParamError::ZeroEpochs);
        assert_eq!(lin(|c| c.lr = -1.0), ParamError::LearningRate(-1.0));
        assert_eq!(
            lin(|c| c.weight_decay = -0.5),
            ParamError::WeightDecay(-0.5)
        );
        assert_eq!(lin(|c| c.batch_size = 0), ParamError::ZeroBatchSize);
        assert!(knn(|c| c.temperature = -2.0).to_string().contains("-2"));
    }

    #[test]
    fn toml_fills_defaults_and_rejects_unknown_keys() {
        let c: EvalConfig = toml::from_str("linear_probe = false\n[knn]\nk = 20\n").unwrap();
        assert_eq!(c.knn.k, 20);
        assert_eq!(c.knn.temperature, 0.1);
        assert!(!c.linear_probe);
        assert_eq!(c.linear, LinearProbeConfig::default());
        let err = toml::from_str::<EvalConfig>("[knn]\nkk = 20\n").unwrap_err();
        assert!(err.to_string().contains("kk"), "{err}");
    }
}
