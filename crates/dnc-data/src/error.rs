//! The error type of the data crate.
//!
//! Variants fall into three groups, kept apart so that callers can tell a bad setting from bad
//! data and from a failure while loading: bad parameters ([`DataError::InvalidParameter`],
//! [`DataError::IndexOutOfRange`], [`DataError::NotEnoughItems`]), bad input on disk (missing or
//! empty folders, unreadable or undecodable files) and runtime failures of transforms and worker
//! threads. [`DataError::Skipped`] is not a failure: it marks an item that the dataset asks the
//! loader to leave out (a corrupt image under [`OnCorrupt::Skip`](crate::OnCorrupt::Skip)).

use std::path::PathBuf;

/// A boxed error from a [`Mapper`](crate::Mapper), e.g. an augmentation crate's own error type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while opening, subsetting or loading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A configuration value that cannot be used, named with its value.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        name: &'static str,
        value: String,
        reason: String,
    },
    /// An item index past the end of a dataset.
    #[error("index {index} is out of range for a dataset of {len} items")]
    IndexOutOfRange { index: usize, len: usize },
    /// A class-balanced subset asks more items of a class than it holds.
    #[error(
        "a balanced subset of {requested} items asks {asked} items of class {class}, which has {available}"
    )]
    NotEnoughItems {
        class: String,
        requested: usize,
        asked: usize,
        available: usize,
    },
    /// The data folder does not exist.
    #[error("data folder {path} does not exist")]
    MissingFolder { path: PathBuf },
    /// The data folder is a file (or something else that is not a directory).
    #[error("data folder {path} is not a directory")]
    NotADirectory { path: PathBuf },
    /// The data folder holds neither class folders nor images.
    #[error(
        "data folder {path} holds no images (JPEG, PNG, WebP, BMP, GIF, TIFF) and no class folders"
    )]
    NoImages { path: PathBuf },
    /// A class folder holds no images.
    #[error("class folder {path} holds no images (JPEG, PNG, WebP, BMP, GIF, TIFF)")]
    EmptyClass { path: PathBuf },
    /// A shard pattern (`shards/{000000..000099}.tar`) that cannot be expanded.
    #[error("shard pattern {pattern}: {reason}")]
    BadPattern { pattern: String, reason: String },
    /// A WebDataset tar shard that is missing or cannot be indexed.
    #[error("WebDataset shard {path}: {message}")]
    BadShard { path: PathBuf, message: String },
    /// A list file names a file that does not exist (and missing files are configured to fail).
    #[error("{list}, line {line}: {path} does not exist")]
    MissingListed {
        list: PathBuf,
        line: usize,
        path: PathBuf,
    },
    /// A list file names no images.
    #[error("list file {path} names no images")]
    EmptyList { path: PathBuf },
    /// Every image of a dataset failed to load: nothing to train or evaluate on.
    #[error(
        "none of the {count} images of {root} can be read or decoded (e.g. {example}: {message})"
    )]
    NothingReadable {
        root: PathBuf,
        count: usize,
        example: PathBuf,
        message: String,
    },
    /// A file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An image file could not be decoded (and corrupt images are configured to fail).
    #[error("cannot decode image {path}: {message}")]
    Decode { path: PathBuf, message: String },
    /// An item the dataset leaves out (a corrupt image under `OnCorrupt::Skip`); the loader drops
    /// it from its batch and reports it in [`Batch::skipped`](crate::Batch::skipped).
    #[error("skipped item {index} ({path}): {message}")]
    Skipped {
        index: usize,
        path: PathBuf,
        message: String,
    },
    /// A mapper (augmentation, transform) failed on an item.
    #[error("transform of item {index} failed: {source}")]
    Transform {
        index: usize,
        #[source]
        source: BoxError,
    },
    /// A loader worker panicked while loading an item.
    #[error("a loader worker panicked on item {index}: {message}")]
    WorkerPanicked { index: usize, message: String },
    /// All loader workers stopped before delivering every item of a batch.
    #[error("the loader's worker threads stopped before batch {batch_index} was complete")]
    WorkersGone { batch_index: usize },
    /// A worker thread could not be started.
    #[error("cannot start a loader worker thread: {0}")]
    Spawn(#[source] std::io::Error),
}

impl DataError {
    /// Whether this marks an item to leave out rather than a failure.
    pub fn is_skipped(&self) -> bool {
        matches!(self, Self::Skipped { .. })
    }

    /// Whether this is a bad parameter (a configuration mistake) rather than bad data or a
    /// runtime failure.
    pub fn is_parameter_error(&self) -> bool {
        matches!(
            self,
            Self::InvalidParameter { .. }
                | Self::IndexOutOfRange { .. }
                | Self::NotEnoughItems { .. }
        )
    }

    /// Shorthand for [`DataError::InvalidParameter`].
    pub fn invalid(name: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            name,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Wraps a mapper's own error for item `index`.
    pub fn transform(index: usize, source: impl Into<BoxError>) -> Self {
        Self::Transform {
            index,
            source: source.into(),
        }
    }
}
