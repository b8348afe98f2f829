//! Errors at the crate boundary: configuration values that cannot be used are kept apart from
//! failures during training (data, non-finite losses, checkpoints, tensor maths).

use std::path::PathBuf;

/// A configuration value that cannot be used, found before any training step runs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid {field} = {value}: {reason}")]
pub struct ConfigError {
    /// The configuration key, e.g. `optimizer.momentum`.
    pub field: &'static str,
    /// The offending value, as written.
    pub value: String,
    /// What a valid value looks like.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(
        field: &'static str,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            field,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Names that differ between a checkpoint file and the variables it is loaded into.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NameMismatch {
    /// In the model, absent from the file.
    pub missing: Vec<String>,
    /// In the file, absent from the model.
    pub unexpected: Vec<String>,
    /// In both, with a different shape or dtype: `name: file [..] F32 vs model [..] F32`.
    pub mismatched: Vec<String>,
}

impl NameMismatch {
    /// `true` when the file and the model agree.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

impl std::fmt::Display for NameMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (label, names) in [
            ("missing", &self.missing),
            ("unexpected", &self.unexpected),
            ("mismatched", &self.mismatched),
        ] {
            if !names.is_empty() {
                parts.push(format!("{label} [{}]", names.join(", ")));
            }
        }
        write!(f, "{}", parts.join("; "))
    }
}

/// Everything that can stop [`fit`](fn@crate::fit) or a checkpoint operation.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A configuration value is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The batch source failed.
    #[error("data error in epoch {epoch}, batch {batch}: {source}")]
    Data {
        epoch: usize,
        batch: usize,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The loss was NaN or infinite. Nothing was updated or written for this step.
    #[error(
        "non-finite loss {loss} at step {step} (epoch {epoch}, batch {batch}): training stopped, \
         the last good checkpoint is kept"
    )]
    NonFiniteLoss {
        step: usize,
        epoch: usize,
        batch: usize,
        loss: f64,
    },
    /// The forward pass, backward pass or optimiser update of a step failed.
    #[error("step {step}: {source}")]
    Step {
        step: usize,
        #[source]
        source: candle_core::Error,
    },
    /// A checkpoint file holds other variables than the ones it is loaded into.
    #[error("{path}: checkpoint does not match the model: {mismatch}")]
    StateMismatch {
        path: PathBuf,
        mismatch: NameMismatch,
    },
    /// A checkpoint is incomplete, from another format or from an incompatible run.
    #[error("{path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A tensor operation outside a training step failed (e.g. reading a safetensors file).
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

impl EngineError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_values() {
        let e = EngineError::from(ConfigError::new("fit.epochs", 0, "must be at least 1"));
        assert_eq!(e.to_string(), "invalid fit.epochs = 0: must be at least 1");
        let e = EngineError::NonFiniteLoss {
            step: 5,
            epoch: 1,
            batch: 1,
            loss: f64::NAN,
        };
        assert!(
            e.to_string()
                .starts_with("non-finite loss NaN at step 5 (epoch 1, batch 1)")
        );
        let m = NameMismatch {
            missing: vec!["c".into()],
            unexpected: vec![],
            mismatched: vec!["a: file [2] F32 vs model [3] F32".into()],
        };
        assert_eq!(
            m.to_string(),
            "missing [c]; mismatched [a: file [2] F32 vs model [3] F32]"
        );
        assert!(!m.is_empty() && NameMismatch::default().is_empty());
    }
}
