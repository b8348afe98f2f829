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

use image::{ImageDecoder, RgbImage};
use serde::{Deserialize, Serialize};

use crate::balanced::balanced_subset_named;
use crate::scan::{Layout, ScanCounts, scan, scan_tree};
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

/// A class folder whose name starts with this holds images without a label (e.g. the
/// out-of-distribution distractors of an uncurated set, `~distractors`): they are trained on, and
/// left out of every class count, accuracy and cluster score.
pub const UNLABELLED_PREFIX: char = '~';

/// Images under a root folder: `root/<class>/<file>` (labels from the sorted class names; a
/// folder named `~…` is unlabelled, [`UNLABELLED_PREFIX`]) or `root/<file>` (unlabelled). Files are ordered by class, then by file name; `.jpg`, `.jpeg` and
/// `.png` files (any case) are images, other files are ignored. Decoding happens in
/// [`Dataset::get`].
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    paths: Vec<PathBuf>,
    labels: Vec<Option<u32>>,
    scan_counts: ScanCounts,
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
        let (classes, paths, labels) = match scan(&root)? {
            Layout::Flat(paths) => {
                let labels = vec![None; paths.len()];
                (Vec::new(), paths, labels)
            }
            Layout::Classes(list) => {
                let mut classes = Vec::with_capacity(list.len());
                let (mut paths, mut labels) = (Vec::new(), Vec::new());
                for (name, files) in list {
                    let label = if name.starts_with(UNLABELLED_PREFIX) {
                        None
                    } else {
                        classes.push(name);
                        Some(classes.len() as u32 - 1)
                    };
                    labels.extend(std::iter::repeat_n(label, files.len()));
                    paths.extend(files);
                }
                (classes, paths, labels)
            }
        };
        Self::build(root, classes, paths, labels, ScanCounts::default(), config)
    }

    /// Every image under `root` at any depth, without labels: a photo dump, a crawl, an archive.
    /// Symbolic links are followed (each folder once, so a cycle ends); hidden entries and files
    /// that are not images are left out and counted ([`scan_counts`](Self::scan_counts)).
    pub fn open_tree(
        root: impl AsRef<Path>,
        config: &ImageFolderConfig,
    ) -> Result<Self, DataError> {
        config.validate()?;
        let root = root.as_ref().to_path_buf();
        let tree = scan_tree(&root)?;
        if tree.images.is_empty() {
            return Err(DataError::NoImages { path: root });
        }
        let c = &tree.counts;
        if c.hidden + c.not_images + c.revisited + c.unreadable > 0 {
            tracing::info!(
                root = %root.display(),
                hidden = c.hidden,
                not_images = c.not_images,
                links_seen_twice = c.revisited,
                unreadable = c.unreadable,
                "entries left out of the image tree"
            );
        }
        let labels = vec![None; tree.images.len()];
        Self::build(root, Vec::new(), tree.images, labels, tree.counts, config)
    }

    fn build(
        root: PathBuf,
        classes: Vec<String>,
        mut paths: Vec<PathBuf>,
        mut labels: Vec<Option<u32>>,
        scan_counts: ScanCounts,
        config: &ImageFolderConfig,
    ) -> Result<Self, DataError> {
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
            scan_counts,
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

    /// What the scan left out (hidden entries, files that are not images, links seen twice).
    pub fn scan_counts(&self) -> &ScanCounts {
        &self.scan_counts
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

/// Whether a JPEG stream ends its last scan: an end-of-image marker (`FF D9`) after the last
/// start-of-scan (`FF DA`). Inside scan data a `FF` byte is always stuffed or a restart marker,
/// and an EXIF thumbnail's markers come before the main image's scans.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let marker = |m: u8| move |w: &[u8]| w == [0xFF, m];
    match bytes.windows(2).rposition(marker(0xDA)) {
        Some(sos) => bytes[sos..].windows(2).any(marker(0xD9)),
        None => false,
    }
}

/// Reads and decodes one file (format from its content, the first frame of an animation),
/// applies its EXIF orientation, and converts any colour mode (greyscale, palette, alpha, 16-bit,
/// CMYK) to 8-bit RGB.
fn decode(path: &Path) -> Result<RgbImage, LoadFailure> {
    let bytes = std::fs::read(path).map_err(|e| LoadFailure {
        io_kind: Some(e.kind()),
        message: e.to_string(),
    })?;
    let bad = |e: image::ImageError| LoadFailure {
        io_kind: None,
        message: e.to_string(),
    };
    if bytes.is_empty() {
        return Err(LoadFailure {
            io_kind: None,
            message: "the file is empty".into(),
        });
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| bad(e.into()))?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(&bytes) {
        // The JPEG decoder fills a cut-off scan with grey rather than failing.
        return Err(LoadFailure {
            io_kind: None,
            message: "truncated JPEG: no end-of-image marker after the last scan".into(),
        });
    }
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = image::DynamicImage::from_decoder(decoder).map_err(bad)?;
    image.apply_orientation(orientation);
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
    // Images of unlabelled folders form one more group of the balanced choice.
    let unlabelled = classes.len() as u32;
    let groups = classes.len() + usize::from(labels.contains(&None));
    let ids: Vec<u32> = labels.iter().map(|l| l.unwrap_or(unlabelled)).collect();
    balanced_subset_named(&ids, groups, n, |c| match classes.get(c) {
        Some(class) => root.join(class).display().to_string(),
        None => format!(
            "the unlabelled folders (`{UNLABELLED_PREFIX}…`) of {}",
            root.display()
        ),
    })
}

#[cfg(test)]
#[path = "folder_tests.rs"]
mod tests;
