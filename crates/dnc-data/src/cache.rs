//! [`ResizedCache`]: every image of a folder decoded once, resized so that its shorter side is
//! the training resolution, and kept as 8-bit RGB in one memory-mapped file on disk.
//!
//! Epochs after the first then read a few kilobytes per image instead of decoding a JPEG, and
//! the decoded dataset is never held in the process's own memory: the OS pages the file in and
//! out. The file is built once, by several threads (in index order, so that its bytes do not
//! depend on their number), into a temporary file that is renamed into
//! place; a second process that needs the same cache waits on a lock file and then opens it.
//! Its name is a hash of the side and of every image's path, size and modification time, so a
//! changed dataset gets a new cache.
//!
//! Layout (little-endian): a 64-byte header (`DNCIMG01`, side, image count, offset of the
//! table, offset and length of the failures), the pixels, a table of `(offset u64, width u32,
//! height u32)` per image (width 0: the image could not be read), then the failures as JSON
//! (`{"index": {"message": …, "io": …}}`; an image whose file could not be read is read again
//! from the file when it is asked for, rather than failing until the cache is rebuilt).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::RgbImage;
use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use crate::DataError;
use crate::decode::LoadFailure;

const MAGIC: &[u8; 8] = b"DNCIMG01";
const HEADER_BYTES: u64 = 64;
const ENTRY_BYTES: usize = 16;

/// Where an [`ImageFolder`](crate::ImageFolder) keeps its resized images, and at what size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizedCacheConfig {
    /// The folder of cache files (created when missing).
    pub dir: PathBuf,
    /// The shorter side of every cached image; smaller images are kept at their own size.
    pub side: u32,
    /// Threads that decode while the cache is built.
    pub threads: usize,
}

/// Where one image of a cache is.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u64,
    width: u32,
    height: u32,
}

/// Why an image is not in a cache: the message, and whether reading the file failed (worth
/// trying again when the image is read) rather than decoding it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Failure {
    message: String,
    io: bool,
}

/// A built cache, memory-mapped.
pub(crate) struct ResizedCache {
    path: PathBuf,
    side: u32,
    map: Mmap,
    entries: Vec<Entry>,
    failures: BTreeMap<usize, Failure>,
}

impl std::fmt::Debug for ResizedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResizedCache")
            .field("path", &self.path)
            .field("images", &self.entries.len())
            .finish()
    }
}

/// `image` resized (antialiased, triangle filter) so that its shorter side is `side`, or itself
/// when it is no larger.
pub(crate) fn shrink_to_side(image: RgbImage, side: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let shorter = w.min(h);
    if shorter <= side {
        return image;
    }
    let scale = f64::from(side) / f64::from(shorter);
    let fit = |x: u32| {
        ((f64::from(x) * scale).round() as u32)
            .max(side.min(x))
            .max(1)
    };
    let (nw, nh) = if w <= h {
        (side, fit(h))
    } else {
        (fit(w), side)
    };
    image::imageops::resize(&image, nw, nh, image::imageops::FilterType::Triangle)
}

impl ResizedCache {
    /// Opens the cache at `path`, or builds it from `load(index)` (already resized to `side`)
    /// for `count` images on `threads` threads. Concurrent builders of the same path wait for
    /// the first one. `label` names the data in progress messages.
    pub(crate) fn open_or_build<F>(
        path: &Path,
        count: usize,
        side: u32,
        threads: usize,
        label: &str,
        load: F,
    ) -> Result<Self, DataError>
    where
        F: Fn(usize) -> Result<RgbImage, LoadFailure> + Sync,
    {
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| DataError::Io { path: p, source }
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        if let Ok(cache) = Self::open(path, count, side) {
            return Ok(cache);
        }
        let lock_path = path.with_extension("lock");
        let lock = File::create(&lock_path).map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        // Another process may have built it while this one waited.
        if let Ok(cache) = Self::open(path, count, side) {
            return Ok(cache);
        }
        remove_abandoned_builds(path);
        build(path, count, side, threads, label, &load)?;
        drop(lock);
        Self::open(path, count, side)
    }

    /// Opens a complete cache file, checking it against the expected image count and side.
    fn open(path: &Path, count: usize, side: u32) -> Result<Self, DataError> {
        let bad = |why: String| DataError::Decode {
            path: path.to_path_buf(),
            message: format!("not a usable image cache: {why}"),
        };
        let file = File::open(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // SAFETY: the file is only ever written under a temporary name and renamed into place
        // when complete; nothing writes to a cache file after that.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let u32_at = |at: usize| u32::from_le_bytes(map[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().expect("8 bytes"));
        if map.len() < HEADER_BYTES as usize || &map[..8] != MAGIC {
            return Err(bad("no header".into()));
        }
        let (file_side, file_count) = (u32_at(8), u64_at(12) as usize);
        if file_side != side || file_count != count {
            return Err(bad(format!(
                "{file_count} images at side {file_side}, expected {count} at {side}"
            )));
        }
        let (table, fail_at, fail_len) = (u64_at(20) as usize, u64_at(28) as usize, u64_at(36));
        if table + count * ENTRY_BYTES != fail_at || fail_at + fail_len as usize != map.len() {
            return Err(bad("truncated".into()));
        }
        let entries: Vec<Entry> = (0..count)
            .map(|i| {
                let at = table + i * ENTRY_BYTES;
                Entry {
                    offset: u64_at(at),
                    width: u32_at(at + 8),
                    height: u32_at(at + 12),
                }
            })
            .collect();
        if entries
            .iter()
            .any(|e| e.offset as usize + (e.width as usize * e.height as usize * 3) > table)
        {
            return Err(bad("an image lies outside the pixels".into()));
        }
        let failures: BTreeMap<usize, Failure> =
            serde_json::from_slice(&map[fail_at..]).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            side,
            map,
            entries,
            failures,
        })
    }

    /// Image `index`, or why it could not be read when the cache was built (with an I/O error
    /// kind when reading the file failed: the caller may try again).
    pub(crate) fn get(&self, index: usize) -> Result<RgbImage, LoadFailure> {
        let e = self.entries[index];
        if e.width == 0 {
            let failure = self.failures.get(&index);
            return Err(LoadFailure {
                io_kind: failure
                    .is_some_and(|f| f.io)
                    .then_some(std::io::ErrorKind::Other),
                message: failure.map_or_else(
                    || "could not be read when the cache was built".into(),
                    |f| f.message.clone(),
                ),
            });
        }
        let len = e.width as usize * e.height as usize * 3;
        let start = e.offset as usize;
        let pixels = self.map[start..start + len].to_vec();
        Ok(RgbImage::from_raw(e.width, e.height, pixels).expect("the entry's size"))
    }

    /// The cache file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The shorter side of the cached images.
    pub(crate) fn side(&self) -> u32 {
        self.side
    }
}

/// Removes the temporary files of builds of `path` by processes that were killed (only called
/// with the lock held, when no build of it is running).
fn remove_abandoned_builds(path: &Path) {
    let (Some(dir), Some(stem)) = (path.parent(), path.file_stem()) else {
        return;
    };
    let prefix = format!("{}.tmp-", stem.to_string_lossy());
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Removes a temporary file when dropped, unless the file was renamed into place.
struct TempFile<'a> {
    path: &'a Path,
    kept: bool,
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(self.path);
        }
    }
}

/// `load(i)`, with a panic turned into a failure of that image.
fn load_caught<F>(load: &F, i: usize) -> Result<RgbImage, LoadFailure>
where
    F: Fn(usize) -> Result<RgbImage, LoadFailure> + Sync,
{
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load(i))).map_err(|payload| {
        LoadFailure {
            io_kind: None,
            message: format!(
                "the decoder panicked: {}",
                crate::loader::panic_message(payload.as_ref())
            ),
        }
    })?
}

/// Decodes every image on `threads` threads and writes the cache file through a temporary one,
/// which an error removes.
fn build<F>(
    path: &Path,
    count: usize,
    side: u32,
    threads: usize,
    label: &str,
    load: &F,
) -> Result<(), DataError>
where
    F: Fn(usize) -> Result<RgbImage, LoadFailure> + Sync,
{
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut guard = TempFile {
        path: &tmp,
        kept: false,
    };
    let io = |source| DataError::Io {
        path: tmp.clone(),
        source,
    };
    let started = std::time::Instant::now();
    tracing::info!(
        "caching {count} images of {label} at side {side} in {}",
        path.display()
    );
    let mut out = BufWriter::new(File::create(&tmp).map_err(io)?);
    out.write_all(&[0u8; HEADER_BYTES as usize]).map_err(io)?;
    let mut entries = vec![
        Entry {
            offset: 0,
            width: 0,
            height: 0
        };
        count
    ];
    let mut failures: BTreeMap<usize, Failure> = BTreeMap::new();
    let mut offset = HEADER_BYTES;
    let next = AtomicUsize::new(0);
    let (tx, rx) = crossbeam_channel::bounded::<(usize, Result<RgbImage, LoadFailure>)>(64);
    std::thread::scope(|scope| -> Result<(), DataError> {
        for _ in 0..threads.max(1) {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count || tx.send((i, load_caught(load, i))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Written in index order (results that arrive early wait; workers take indices in
        // order, so few do), which makes the file the same for any number of threads.
        let mut pending: BTreeMap<usize, Result<RgbImage, LoadFailure>> = BTreeMap::new();
        let mut next_out = 0;
        for (i, result) in rx {
            pending.insert(i, result);
            while let Some(result) = pending.remove(&next_out) {
                match result {
                    Ok(image) => {
                        let (width, height) = image.dimensions();
                        out.write_all(image.as_raw()).map_err(io)?;
                        entries[next_out] = Entry {
                            offset,
                            width,
                            height,
                        };
                        offset += image.as_raw().len() as u64;
                    }
                    Err(failure) => {
                        let io = failure.io_kind.is_some();
                        let message = failure.message;
                        failures.insert(next_out, Failure { message, io });
                    }
                }
                next_out += 1;
                if next_out % (count / 10).max(1) == 0 {
                    tracing::info!("cached {next_out} of {count} images of {label}");
                }
            }
        }
        Ok(())
    })?;
    let table = offset;
    for e in &entries {
        out.write_all(&e.offset.to_le_bytes()).map_err(io)?;
        out.write_all(&e.width.to_le_bytes()).map_err(io)?;
        out.write_all(&e.height.to_le_bytes()).map_err(io)?;
    }
    let failures_json = serde_json::to_vec(&failures).expect("a map of strings serialises");
    out.write_all(&failures_json).map_err(io)?;
    let fail_at = table + (count * ENTRY_BYTES) as u64;
    let mut header = Vec::with_capacity(HEADER_BYTES as usize);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&side.to_le_bytes());
    header.extend_from_slice(&(count as u64).to_le_bytes());
    header.extend_from_slice(&table.to_le_bytes());
    header.extend_from_slice(&fail_at.to_le_bytes());
    header.extend_from_slice(&(failures_json.len() as u64).to_le_bytes());
    let mut file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(&header).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    guard.kept = true;
    tracing::info!(
        "cached {count} images of {label} ({:.0} MiB, {} unreadable) in {:.1} s",
        table as f64 / (1 << 20) as f64,
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
