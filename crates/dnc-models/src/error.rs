//! Errors at the crate boundary: configuration values that cannot be used, kept apart from
//! mismatched weights and tensor failures.

/// Why a model could not be configured or its weights could not be combined.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A configuration value that cannot be used (found when the configuration is validated).
    #[error("invalid model configuration: {field} {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    /// A variable of one map has no counterpart in the other.
    #[error("variable {name:?} is in the {present} map but not in the {missing} map")]
    MissingVar {
        name: String,
        present: &'static str,
        missing: &'static str,
    },
    /// Two variables with the same name have different shapes.
    #[error(
        "variable {name:?} has shape {target:?} in the target map but {source_shape:?} in the source map"
    )]
    ShapeMismatch {
        name: String,
        target: Vec<usize>,
        source_shape: Vec<usize>,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
