//! Errors for arguments a kernel cannot handle.
//!
//! [`crate::Conv2dGeometry::new`] and [`crate::MaxPoolGeometry::new`] return a typed
//! [`KernelError`], so that a model can validate its configuration once, at construction. The
//! tensor functions return `candle_core::Result`, like the rest of candle; a `KernelError` raised
//! inside them converts into a `candle_core::Error` that keeps its message.

/// Why a kernel rejected its arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// A tensor has the wrong rank or a dimension that does not fit the others.
    #[error("{op}: bad shape: {what}")]
    Shape { op: &'static str, what: String },
    /// A hyper-parameter is out of range (zero stride, kernel larger than the padded input, ...).
    #[error("{op}: bad parameter: {what}")]
    Parameter { op: &'static str, what: String },
    /// The arguments live on different devices or have different dtypes.
    #[error("{op}: mismatched arguments: {what}")]
    Mismatch { op: &'static str, what: String },
}

impl From<KernelError> for candle_core::Error {
    fn from(err: KernelError) -> Self {
        candle_core::Error::wrap(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converted_errors_keep_their_message() {
        let err = KernelError::Parameter {
            op: "conv2d",
            what: "stride 0".into(),
        };
        let candle: candle_core::Error = err.into();
        // A backtrace may follow the message when RUST_BACKTRACE is set.
        assert!(
            candle
                .to_string()
                .starts_with("conv2d: bad parameter: stride 0")
        );
    }
}
