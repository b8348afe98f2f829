//! Errors at the crate boundary: a bad `hf://` URI or option, kept apart from files that cannot
//! be found, checkpoints that do not fit the model, and I/O or tensor failures.

use crate::problems::LoadProblems;
use std::path::PathBuf;

/// Why a hub file could not be resolved, loaded or exported.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A `hf://ORG/NAME[@REVISION][/FILE]` URI that cannot be parsed; `part` names the bad piece.
    #[error("invalid hub URI {uri:?}: bad {part}: {reason}")]
    InvalidUri {
        uri: String,
        part: &'static str,
        reason: String,
    },
    /// An argument that cannot be used (an empty prefix match, a bad card field, ...).
    #[error("invalid argument {what}: {reason}")]
    InvalidArgument { what: &'static str, reason: String },
    /// The file is neither in the local cache nor (when online) on the hub.
    #[error(
        "{file:?} of model repo {repo:?} at revision {revision:?} was not found {where_}: {detail}"
    )]
    NotFound {
        repo: String,
        revision: String,
        file: String,
        /// Where it was looked for: "in the local cache `DIR` (offline)" or "on the hub or in
        /// the local cache `DIR`".
        where_: String,
        detail: String,
    },
    /// The hub could not be asked (network, authentication, rate limit, ...).
    #[error(
        "downloading {file:?} of model repo {repo:?} at revision {revision:?} failed: {detail}"
    )]
    Download {
        repo: String,
        revision: String,
        file: String,
        detail: String,
    },
    /// The checkpoint does not fit the model: every missing, unexpected and mismatched key.
    #[error("{0}")]
    Mismatch(Box<LoadProblems>),
    /// A file that is not valid safetensors or JSON.
    #[error("cannot parse {path}: {detail}")]
    Format { path: PathBuf, detail: String },
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl HubError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, detail: impl ToString) -> Self {
        Self::Format {
            path: path.into(),
            detail: detail.to_string(),
        }
    }
}

/// Result of this crate's public functions.
pub type Result<T> = std::result::Result<T, HubError>;
