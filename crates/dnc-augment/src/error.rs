//! The error type of the augmentation crate.

/// A bad augmentation setting, or an image that cannot be augmented.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AugmentError {
    /// A configuration value out of its range, named by its path in the configuration.
    #[error("invalid {field} = {value}: {reason}")]
    InvalidConfig {
        field: String,
        value: String,
        reason: &'static str,
    },
    /// An image with no pixels.
    #[error("image {index} has no pixels ({width}x{height})")]
    EmptyImage {
        index: usize,
        width: u32,
        height: u32,
    },
}

impl AugmentError {
    pub(crate) fn invalid(field: &str, value: impl std::fmt::Debug, reason: &'static str) -> Self {
        Self::InvalidConfig {
            field: field.to_string(),
            value: format!("{value:?}"),
            reason,
        }
    }

    /// The same error with its field name prefixed, e.g. `view2.` + `blur_p`.
    pub(crate) fn within(self, prefix: &str) -> Self {
        match self {
            Self::InvalidConfig {
                field,
                value,
                reason,
            } => Self::InvalidConfig {
                field: format!("{prefix}.{field}"),
                value,
                reason,
            },
            other => other,
        }
    }
}
