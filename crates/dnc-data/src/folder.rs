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
use std::sync::Mutex;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::balanced::{SubsetRule, subset_named};
use crate::cache::{ResizedCache, ResizedCacheConfig, shrink_to_side};
use crate::decode::{
    DEFAULT_MAX_IMAGE_PIXELS, LoadFailure, SizeRequest, decode, full_size, size_for_side,
};
use crate::scan::{Layout, ScanCounts, scan, scan_tree};
use crate::shards::{Member, expand_pattern, index_shards, is_shard_spec, read_member};
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageFolderConfig {
    /// Decode every image once, resized to a side, into a memory-mapped file
    /// ([`ResizedCacheConfig`]); `None` decodes the files at every read.
    pub resized_cache: Option<ResizedCacheConfig>,
    /// What to do with unreadable or undecodable images.
    pub on_corrupt: OnCorrupt,
    /// Keep a deterministic subset of this many images: shared among class folders by
    /// `subset` (class-balanced by the reference rule, see
    /// [`balanced_subset`](crate::balanced_subset), or in proportion), the first files by name
    /// for a flat folder. `None` keeps everything.
    pub limit: Option<usize>,
    /// How `limit` is shared among the classes.
    pub subset: SubsetRule,
    /// The largest image decoded, in pixels (width × height as the file's header declares it):
    /// a larger one is an unreadable image under `on_corrupt`, found before any pixel is decoded.
    pub max_image_pixels: u64,
}

impl Default for ImageFolderConfig {
    fn default() -> Self {
        Self {
            resized_cache: None,
            on_corrupt: OnCorrupt::default(),
            limit: None,
            subset: SubsetRule::default(),
            max_image_pixels: DEFAULT_MAX_IMAGE_PIXELS,
        }
    }
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
        if self.max_image_pixels == 0 {
            return Err(DataError::invalid(
                "max_image_pixels",
                0,
                "must be at least 1",
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

/// A class folder whose name starts with this holds images without a label (e.g. the
/// out-of-distribution distractors of an uncurated set, `~distractors`): they are trained on, and
/// left out of every class count, accuracy and cluster score.
pub const UNLABELLED_PREFIX: char = '~';

/// Images under a root folder: `root/<class>/<file>` (labels from the sorted class names; a
/// folder named `~…` is unlabelled, [`UNLABELLED_PREFIX`]) or `root/<file>` (unlabelled), or
/// without labels from a tree of any depth, a list file or WebDataset shards
/// ([`open_unlabelled`](Self::open_unlabelled)). Files are ordered by class, then by file name;
/// a file is an image by its extension ([`IMAGE_EXTENSIONS`](crate::IMAGE_EXTENSIONS)) or its
/// content, other files are ignored. Decoding happens in [`Dataset::get`].
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    /// Each image's file, or for a shard's sample `<shard>/<member>` (the name it is reported by).
    paths: Vec<PathBuf>,
    /// Opened from WebDataset shards: the shard files and each image's member.
    shards: Option<(Vec<PathBuf>, Vec<Member>)>,
    labels: Vec<Option<u32>>,
    scan_counts: ScanCounts,
    on_corrupt: OnCorrupt,
    max_pixels: u64,
    cache: Option<ResizedCache>,
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
        let source = Source::files(paths, ScanCounts::default());
        Self::build(root, classes, source, labels, config)
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
        let source = Source::files(tree.images, tree.counts);
        Self::build(root, Vec::new(), source, labels, config)
    }

    /// Images to train on without labels, from whichever source `spec` names: WebDataset shards
    /// (a brace pattern such as `shards/{000000..000099}.tar`, or one `.tar` file, see
    /// [`open_shards`](Self::open_shards)), a list file (any other file, see
    /// [`open_list`](Self::open_list)) or a folder tree ([`open_tree`](Self::open_tree)).
    pub fn open_unlabelled(
        spec: impl AsRef<Path>,
        config: &ImageFolderConfig,
    ) -> Result<Self, DataError> {
        let spec = spec.as_ref();
        if is_shard_spec(spec) {
            let expanded = expand_pattern(&spec.to_string_lossy())?;
            let shards: Vec<PathBuf> = expanded.into_iter().map(PathBuf::from).collect();
            return Self::open_shards(spec, &shards, config);
        }
        match std::fs::metadata(spec) {
            Ok(meta) if meta.is_file() => Self::open_list(spec, config),
            _ => Self::open_tree(spec, config),
        }
    }

    /// The images listed in a text file, one path per line (relative paths are taken from the
    /// list's folder; blank lines and lines starting with `#` are left out), in the list's order.
    /// A listed file that does not exist is an error naming the list, the line and the file
    /// under [`OnCorrupt::Fail`], and is left out and counted as unreadable under
    /// [`OnCorrupt::Skip`].
    pub fn open_list(
        list: impl AsRef<Path>,
        config: &ImageFolderConfig,
    ) -> Result<Self, DataError> {
        config.validate()?;
        let list = list.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&list).map_err(|source| DataError::Io {
            path: list.clone(),
            source,
        })?;
        let base = list.parent().unwrap_or(Path::new(""));
        let mut paths = Vec::new();
        let mut counts = ScanCounts::default();
        for (n, line) in text.lines().enumerate() {
            let entry = line.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let path = base.join(entry);
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => paths.push(path),
                Ok(_) => counts.not_images += 1,
                Err(_) if config.on_corrupt == OnCorrupt::Skip => {
                    tracing::warn!(list = %list.display(), line = n + 1, path = %path.display(), "leaving out a listed file that does not exist");
                    counts.unreadable += 1;
                }
                Err(_) => {
                    return Err(DataError::MissingListed {
                        list,
                        line: n + 1,
                        path,
                    });
                }
            }
        }
        if paths.is_empty() {
            return Err(DataError::EmptyList { path: list });
        }
        let labels = vec![None; paths.len()];
        Self::build(
            list,
            Vec::new(),
            Source::files(paths, counts),
            labels,
            config,
        )
    }

    /// The samples of WebDataset tar shards, in shard order, without labels (see the
    /// [`shards`](crate::shards) module for the format). `spec` is the pattern the shards came
    /// from, kept as the dataset's root. A missing shard, or one that is not a tar file, is an
    /// error naming it; a shard damaged part-way keeps the samples before the damage under
    /// [`OnCorrupt::Skip`].
    pub fn open_shards(
        spec: impl AsRef<Path>,
        shards: &[PathBuf],
        config: &ImageFolderConfig,
    ) -> Result<Self, DataError> {
        config.validate()?;
        let spec = spec.as_ref().to_path_buf();
        let index = index_shards(shards, config.on_corrupt == OnCorrupt::Skip)?;
        if index.members.is_empty() {
            return Err(DataError::NoImages { path: spec });
        }
        let labels = vec![None; index.members.len()];
        let source = Source {
            paths: index.names,
            shards: Some((index.shards, index.members)),
            counts: index.counts,
        };
        Self::build(spec, Vec::new(), source, labels, config)
    }

    fn build(
        root: PathBuf,
        classes: Vec<String>,
        source: Source,
        mut labels: Vec<Option<u32>>,
        config: &ImageFolderConfig,
    ) -> Result<Self, DataError> {
        let Source {
            mut paths,
            mut shards,
            counts: scan_counts,
        } = source;
        if let Some(n) = config.limit {
            let keep = limit_indices(&root, &classes, &labels, n, config.subset)?;
            paths = keep.iter().map(|&i| paths[i].clone()).collect();
            labels = keep.iter().map(|&i| labels[i]).collect();
            if let Some((_, members)) = &mut shards {
                *members = keep.iter().map(|&i| members[i]).collect();
            }
        }
        tracing::info!(
            root = %root.display(),
            images = paths.len(),
            classes = classes.len(),
            "opened image folder"
        );
        let mut folder = Self {
            root,
            classes,
            paths,
            shards,
            labels,
            scan_counts,
            on_corrupt: config.on_corrupt,
            max_pixels: config.max_image_pixels,
            cache: None,
            corrupt: Mutex::new(BTreeMap::new()),
        };
        if let Some(cache) = &config.resized_cache {
            let side = cache.side;
            let path = cache
                .dir
                .join(format!("{:016x}.images", folder.cache_key(side)));
            let built = ResizedCache::open_or_build(
                &path,
                folder.paths.len(),
                side,
                cache.threads,
                &folder.root.display().to_string(),
                |i| {
                    let image = folder.decode(i, &|w, h| size_for_side(w, h, side))?;
                    Ok(shrink_to_side(image, side))
                },
            )?;
            tracing::info!(cache = %built.path().display(), "reading resized images from the cache");
            folder.cache = Some(built);
        }
        Ok(folder)
    }

    /// The name of this folder's cache at `side`: a hash of the side and of every image's path,
    /// size and modification time (for shards: each shard file's, and each member's place).
    fn cache_key(&self, side: u32) -> u64 {
        let mut h = dnc_core::Fnv1a::new();
        h.write(b"resized-v1");
        h.write(&side.to_le_bytes());
        // A cache records the images over the limit as unreadable; the default limit keeps the
        // names of caches built before the limit existed.
        if self.max_pixels != DEFAULT_MAX_IMAGE_PIXELS {
            h.write(&self.max_pixels.to_le_bytes());
        }
        let mut stamp = |path: &Path| {
            h.write(path.as_os_str().as_encoded_bytes());
            if let Ok(meta) = std::fs::metadata(path) {
                h.write(&meta.len().to_le_bytes());
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                h.write(&modified.to_le_bytes());
            }
        };
        match &self.shards {
            Some((files, members)) => {
                for file in files {
                    stamp(file);
                }
                for (path, m) in self.paths.iter().zip(members) {
                    h.write(path.as_os_str().as_encoded_bytes());
                    h.write(&m.shard.to_le_bytes());
                    h.write(&m.offset.to_le_bytes());
                }
            }
            None => {
                for path in &self.paths {
                    stamp(path);
                }
            }
        }
        h.finish()
    }

    /// Checks that at least one image loads, trying them in order: a dataset whose every file
    /// is unreadable fails here, naming its root and one file, rather than training on nothing.
    /// Under [`OnCorrupt::Fail`] the first bad file is the error.
    pub fn check_readable(&self) -> Result<(), DataError> {
        let mut first_failure = None;
        for index in 0..self.paths.len() {
            match self.get(index) {
                Ok(_) => return Ok(()),
                Err(DataError::Skipped { path, message, .. }) => {
                    first_failure.get_or_insert((path, message));
                }
                Err(e) => return Err(e),
            }
        }
        let (example, message) = first_failure.unwrap_or_default();
        Err(DataError::NothingReadable {
            root: self.root.clone(),
            count: self.paths.len(),
            example,
            message,
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

    fn load(&self, index: usize, want: SizeRequest<'_>) -> Result<RgbImage, LoadFailure> {
        match &self.cache {
            Some(cache) => match cache.get(index) {
                // Reading the file failed when the cache was built: try it again now.
                Err(failure) if failure.io_kind.is_some() => {
                    let side = cache.side();
                    let image = self.decode(index, &|w, h| size_for_side(w, h, side))?;
                    Ok(shrink_to_side(image, side))
                }
                cached => cached,
            },
            None => self.decode(index, want),
        }
    }

    fn decode(&self, index: usize, want: SizeRequest<'_>) -> Result<RgbImage, LoadFailure> {
        let bytes = match &self.shards {
            Some((files, members)) => {
                let member = &members[index];
                read_member(&files[member.shard as usize], member)
            }
            None => std::fs::read(&self.paths[index]),
        };
        let bytes = bytes.map_err(|e| LoadFailure::io(&e))?;
        decode(&bytes, want, self.max_pixels)
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
        self.get_sized(index, &full_size)
    }

    /// The shard of a sample read from WebDataset shards.
    fn read_group(&self, index: usize) -> Option<u32> {
        self.shards
            .as_ref()
            .and_then(|(_, members)| members.get(index))
            .map(|m| m.shard)
    }

    fn get_sized(&self, index: usize, want: SizeRequest<'_>) -> Result<ImageItem, DataError> {
        if index >= self.paths.len() {
            return Err(DataError::IndexOutOfRange {
                index,
                len: self.paths.len(),
            });
        }
        match self.load(index, want) {
            Ok(image) => Ok(ImageItem {
                index,
                image,
                label: self.labels[index],
            }),
            Err(failure) => Err(self.failure(index, failure)),
        }
    }
}

/// Where an [`ImageFolder`]'s images come from: files, or the samples of shards.
struct Source {
    paths: Vec<PathBuf>,
    shards: Option<(Vec<PathBuf>, Vec<Member>)>,
    counts: ScanCounts,
}

impl Source {
    fn files(paths: Vec<PathBuf>, counts: ScanCounts) -> Self {
        Self {
            paths,
            shards: None,
            counts,
        }
    }
}

/// The indices kept by `limit = n`: shared over classes by `rule`, or the first `n` of a flat
/// folder.
fn limit_indices(
    root: &Path,
    classes: &[String],
    labels: &[Option<u32>],
    n: usize,
    rule: SubsetRule,
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
    subset_named(&ids, groups, n, rule, |c| match classes.get(c) {
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
