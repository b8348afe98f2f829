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
    /// Fractions of the labelled bank for the few-label probes (the semi-supervised protocol
    /// reports 1% and 10% of the labels): each trains on `round(f · n_c)` items of every class
    /// `c`, at least one, and is scored on the whole test split. Empty: none.
    pub few_label_fractions: Vec<f64>,
    /// Seeded draws of each fraction's subset; the few-label score is their mean top-1.
    pub few_label_draws: usize,
}

impl Default for LinearProbeConfig {
    fn default() -> Self {
        Self {
            epochs: 30,
            lr: 0.05,
            weight_decay: 1e-4,
            batch_size: 256,
            seed: 0,
            few_label_fractions: vec![0.01, 0.1],
            few_label_draws: 3,
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
        for (i, &f) in self.few_label_fractions.iter().enumerate() {
            check_fraction(f)?;
            if self.few_label_fractions[..i].contains(&f) {
                return Err(ParamError::FewLabelFractionTwice(f));
            }
        }
        if self.few_label_draws == 0 {
            return Err(ParamError::ZeroFewLabelDraws);
        }
        Ok(())
    }
}

/// A few-label fraction must be a finite number in `(0, 1]`.
pub(crate) fn check_fraction(f: f64) -> Result<(), ParamError> {
    if f.is_finite() && f > 0.0 && f <= 1.0 {
        Ok(())
    } else {
        Err(ParamError::FewLabelFraction(f))
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
        assert_eq!(c.linear.few_label_fractions, [0.01, 0.1]);
        assert_eq!(c.linear.few_label_draws, 3);
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
        for bad in [0.0, -0.1, 1.5, f64::INFINITY] {
            let c = LinearProbeConfig {
                few_label_fractions: vec![0.1, bad],
                ..LinearProbeConfig::default()
            };
            assert_eq!(c.validate(), Err(ParamError::FewLabelFraction(bad)));
        }
        assert!(matches!(
            lin(|c| c.few_label_fractions = vec![f64::NAN]),
            ParamError::FewLabelFraction(f) if f.is_nan()
        ));
        assert_eq!(
            lin(|c| c.few_label_fractions = vec![0.1, 0.5, 0.1]),
            ParamError::FewLabelFractionTwice(0.1)
        );
        assert_eq!(
            lin(|c| c.few_label_draws = 0),
            ParamError::ZeroFewLabelDraws
        );
        let err = lin(|c| c.few_label_fractions = vec![2.0]).to_string();
        assert!(
            err.contains("linear.few_label_fractions") && err.contains('2'),
            "{err}"
        );
        assert!(
            lin(|c| c.few_label_draws = 0)
                .to_string()
                .contains("linear.few_label_draws")
        );
        let mut c = LinearProbeConfig {
            few_label_fractions: vec![1.0],
            ..LinearProbeConfig::default()
        };
        assert!(c.validate().is_ok());
        c.few_label_fractions.clear();
        assert!(c.validate().is_ok());
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
