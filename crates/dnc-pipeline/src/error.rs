//! Errors of the pipeline: bad configuration (named key and value) apart from runtime failures.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A configuration value that cannot work, with the key and the value.
    #[error("config: `{key}` = {value}: {reason}")]
    BadConfig {
        key: String,
        value: String,
        reason: String,
    },
    /// A configuration file that does not parse (unknown keys, wrong types), naming the file.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{0} is not a run directory (no config.toml); start one with `dnc init`")]
    NotARun(PathBuf),
    #[error("stage {stage:?} needs stage {needs:?} to be done first")]
    StageOrder { stage: String, needs: String },
    /// Another process runs stages in this run directory.
    #[error(
        "{path}: the run is in use by process {pid} on {host}; wait for it, or remove the lock \
         once that process is gone"
    )]
    Locked {
        path: PathBuf,
        pid: u32,
        host: String,
    },
    #[error("unknown stage {0:?}")]
    UnknownStage(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Data(#[from] dnc_data::DataError),
    #[error(transparent)]
    Engine(#[from] dnc_engine::EngineError),
    #[error(transparent)]
    Cluster(#[from] dnc_cluster::KMeansError),
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    /// Boxed: hub errors carry whole lists of tensor names.
    #[error(transparent)]
    Hub(Box<dnc_hub::HubError>),
    #[error("{0}")]
    Other(String),
}

impl From<dnc_hub::HubError> for PipelineError {
    fn from(e: dnc_hub::HubError) -> Self {
        Self::Hub(Box::new(e))
    }
}

impl PipelineError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn bad_config(key: &str, value: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Self::BadConfig {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
