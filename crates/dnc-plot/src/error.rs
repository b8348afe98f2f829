//! The error type returned by every chart function.

use std::path::PathBuf;

/// Why a chart could not be written.
///
/// [`PlotError::InvalidInput`] means the chart description itself is unusable (fix the caller);
/// the other variants are failures while drawing or writing the file.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The chart description cannot be drawn: no data, mismatched lengths, bad values or size.
    #[error("chart `{chart}`: {reason}")]
    InvalidInput {
        /// Title of the chart.
        chart: String,
        /// What is wrong, with the offending names and values.
        reason: String,
    },
    /// The plotting library failed while rendering or encoding the image.
    #[error("chart `{chart}`: drawing {} failed: {message}", path.display())]
    Draw {
        /// Title of the chart.
        chart: String,
        /// File the chart was being written to.
        path: PathBuf,
        /// The plotting library's message.
        message: String,
    },
    /// A file-system operation failed (temporary file, rename).
    #[error("writing {}: {source}", path.display())]
    Io {
        /// The path the operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl PlotError {
    /// Builds an [`PlotError::InvalidInput`] for the chart titled `chart`.
    pub(crate) fn invalid(chart: &str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            chart: chart.to_owned(),
            reason: reason.into(),
        }
    }
}
