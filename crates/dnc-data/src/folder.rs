//! [`ImageFolder`]: images on disk, in class subfolders or in one flat folder.
//!
//! Corrupt images are handled in the loader, deterministically: under [`OnCorrupt::Skip`],
//! [`ImageFolder::get`] answers an undecodable or unreadable file with
//! [`DataError::Skipped`], records its path (see [`ImageFolder::corrupt_paths`]), and the
//! [`Loader`](crate::Loader) drops that item from its batch. Which items are dropped depends only
//! on the files, never on thread scheduling, and batch boundaries do not move.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::balanced::balanced_subset_named;
use crate::scan::{Layout, scan};
use crate::{DataError, Dataset};

/// What to do with an image that cannot be read or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnCorrupt {
    /// Fail with an error naming the file and the decoder's message (default).
    #[default]
    Fail,
    /// Leave the item out of its batch and count it.
    Skip,
}

/// How an [`ImageFolder`] is opened.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageFolderConfig {
    /// Keep decoded images in memory after their first use (for small datasets such as CIFAR).
    pub cache_decoded: bool,
    /// What to do with unreadable or undecodable images.
    pub on_corrupt: OnCorrupt,
    /// Keep a deterministic subset of this many images: class-balanced by the reference rule
    /// (see [`balanced_subset`](crate::balanced_subset)) for class folders, the first files by
    /// name for a flat folder. `None` keeps everything.
    pub limit: Option<usize>,
}

impl ImageFolderConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), DataError> {
        if self.limit == Some(0) {
            return Err(DataError::invalid(
                "limit",
                0,
                "must be at least 1 (leave it unset to keep every image)",
            ));
        }
        Ok(())
    }
}

/// One decoded image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageItem {
    /// The image's index in the [`ImageFolder`] (kept through [`Subset`](crate::Subset)s).
    pub index: usize,
    /// The pixels, converted to 8-bit RGB.
    pub image: RgbImage,
    /// The class id (position of the class folder by name), `None` for a flat folder.
    pub label: Option<u32>,
}

/// Why an image could not be loaded, in a form that can be cached and turned into an error.
#[derive(Debug, Clone)]
struct LoadFailure {
    io_kind: Option<std::io::ErrorKind>,
    message: String,
}

/// Images under a root folder: `root/<class>/<file>` (labels from the sorted class names) or
/// `root/<file>` (unlabelled). Files are ordered by class, then by file name; `.jpg`, `.jpeg` and
/// `.png` files (any case) are images, other files are ignored. Decoding happens in
/// [`Dataset::get`].
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    paths: Vec<PathBuf>,
    labels: Vec<Option<u32>>,
    on_corrupt: OnCorrupt,
    cache: Option<Vec<OnceLock<Result<RgbImage, LoadFailure>>>>,
    corrupt: Mutex<BTreeMap<usize, PathBuf>>,
}

impl fmt::Debug for ImageFolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageFolder")
            .field("root", &self.root)
            .field("images", &self.paths.len())
            .field("classes", &self.classes)
            .field("on_corrupt", &self.on_corrupt)
            .field("cached", &self.cache.is_some())
            .finish()
    }
}

impl ImageFolder {
    /// Scans `root`. Errors name the path: a missing folder, a file instead of a folder, a folder
    /// with no images, a class folder with no images; a `limit` larger than the data is an error
    /// naming the class and the counts.
    pub fn open(root: impl AsRef<Path>, config: &ImageFolderConfig) -> Result<Self, DataError> {
        config.validate()?;
        let root = root.as_ref().to_path_buf();
        let (classes, mut paths, mut labels) = match scan(&root)? {
            Layout::Flat(paths) => {
                let labels = vec![None; paths.len()];
                (Vec::new(), paths, labels)
            }
            Layout::Classes(list) => {
                let mut classes = Vec::with_capacity(list.len());
                let (mut paths, mut labels) = (Vec::new(), Vec::new());
                for (label, (name, files)) in list.into_iter().enumerate() {
                    labels.extend(std::iter::repeat_n(Some(label as u32), files.len()));
                    paths.extend(files);
                    classes.push(name);
                }
                (classes, paths, labels)
            }
        };
        if let Some(n) = config.limit {
            let keep = limit_indices(&root, &classes, &labels, n)?;
            paths = keep.iter().map(|&i| paths[i].clone()).collect();
            labels = keep.iter().map(|&i| labels[i]).collect();
        }
        tracing::info!(
            root = %root.display(),
            images = paths.len(),
            classes = classes.len(),
            "opened image folder"
        );
        let cache = config
            .cache_decoded
            .then(|| (0..paths.len()).map(|_| OnceLock::new()).collect());
        Ok(Self {
            root,
            classes,
            paths,
            labels,
            on_corrupt: config.on_corrupt,
            cache,
            corrupt: Mutex::new(BTreeMap::new()),
        })
    }

    /// The folder that was opened.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Class names in label order (empty for a flat folder).
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Whether the images have labels (class folders).
    pub fn is_labelled(&self) -> bool {
        !self.classes.is_empty()
    }

    /// The label of every image, in index order.
    pub fn labels(&self) -> Vec<Option<u32>> {
        self.labels.clone()
    }

    /// The file of image `index`.
    pub fn path(&self, index: usize) -> Option<&Path> {
        self.paths.get(index).map(PathBuf::as_path)
    }

    /// How many distinct images have been skipped as corrupt so far.
    pub fn corrupt_count(&self) -> usize {
        self.corrupt_map().len()
    }

    /// The indices and files of the images skipped as corrupt so far, by index.
    pub fn corrupt_paths(&self) -> Vec<(usize, PathBuf)> {
        self.corrupt_map()
            .iter()
            .map(|(&i, p)| (i, p.clone()))
            .collect()
    }

    fn corrupt_map(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, PathBuf>> {
        // The map stays consistent even if a holder panicked: entries are inserted whole.
        self.corrupt.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn load(&self, index: usize) -> Result<RgbImage, LoadFailure> {
        match &self.cache {
            Some(cache) => cache[index]
                .get_or_init(|| decode(&self.paths[index]))
                .clone(),
            None => decode(&self.paths[index]),
        }
    }

    fn failure(&self, index: usize, failure: LoadFailure) -> DataError {
        let path = self.paths[index].clone();
        match (self.on_corrupt, failure.io_kind) {
            (OnCorrupt::Fail, Some(kind)) => DataError::Io {
                path,
                source: std::io::Error::new(kind, failure.message),
            },
            (OnCorrupt::Fail, None) => DataError::Decode {
                path,
                message: failure.message,
            },
            (OnCorrupt::Skip, _) => {
                if self.corrupt_map().insert(index, path.clone()).is_none() {
                    tracing::warn!(path = %path.display(), error = %failure.message, "skipping corrupt image");
                }
                DataError::Skipped {
                    index,
                    path,
                    message: failure.message,
                }
            }
        }
    }
}

impl Dataset for ImageFolder {
    type Item = ImageItem;

    fn len(&self) -> usize {
        self.paths.len()
    }

    fn get(&self, index: usize) -> Result<ImageItem, DataError> {
        if index >= self.paths.len() {
            return Err(DataError::IndexOutOfRange {
                index,
                len: self.paths.len(),
            });
        }
        match self.load(index) {
            Ok(image) => Ok(ImageItem {
                index,
                image,
                label: self.labels[index],
            }),
            Err(failure) => Err(self.failure(index, failure)),
        }
    }
}

/// Reads and decodes one file (format from its content), converting to 8-bit RGB.
fn decode(path: &Path) -> Result<RgbImage, LoadFailure> {
    let bytes = std::fs::read(path).map_err(|e| LoadFailure {
        io_kind: Some(e.kind()),
        message: e.to_string(),
    })?;
    let image = image::load_from_memory(&bytes).map_err(|e| LoadFailure {
        io_kind: None,
        message: e.to_string(),
    })?;
    Ok(image.into_rgb8())
}

/// The indices kept by `limit = n`: balanced over classes, or the first `n` of a flat folder.
fn limit_indices(
    root: &Path,
    classes: &[String],
    labels: &[Option<u32>],
    n: usize,
) -> Result<Vec<usize>, DataError> {
    if classes.is_empty() {
        if n > labels.len() {
            return Err(DataError::invalid(
                "limit",
                n,
                format!("{} holds only {} images", root.display(), labels.len()),
            ));
        }
        return Ok((0..n).collect());
    }
    let ids: Vec<u32> = labels.iter().map(|l| l.unwrap_or(0)).collect();
    balanced_subset_named(&ids, classes.len(), n, |c| {
        root.join(&classes[c]).display().to_string()
    })
}

#[cfg(test)]
#[path = "folder_tests.rs"]
mod tests;
