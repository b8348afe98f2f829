//! Writing files into a hub cache laid out as `huggingface_hub` lays it out, without a network:
//! to seed an air-gapped machine's cache with checkpoints copied by hand, and in tests.
//!
//! ```text
//! <cache>/models--ORG--NAME/blobs/<etag>                    the bytes
//! <cache>/models--ORG--NAME/snapshots/<commit>/<file>       a relative link to the blob
//! <cache>/models--ORG--NAME/refs/<revision>                 the commit hash (for branch/tag names)
//! ```

use crate::error::{HubError, Result};
use std::path::{Path, PathBuf};

/// The cache folder of model repo `ORG/NAME`: `models--ORG--NAME`.
pub fn repo_folder(repo_id: &str) -> String {
    std::iter::once("models")
        .chain(repo_id.split('/'))
        .collect::<Vec<_>>()
        .join("--")
}

/// Stores `contents` as `file` of model repo `repo_id` at `commit` (40 hex digits) in the
/// cache at `cache_dir`, and points `revision` (a branch or tag; ignored when it is the
/// commit itself) at that commit. Returns the snapshot path, which is what a resolve returns.
pub fn insert_cached_file(
    cache_dir: &Path,
    repo_id: &str,
    revision: &str,
    commit: &str,
    file: &str,
    contents: &[u8],
) -> Result<PathBuf> {
    if commit.len() != 40 || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(HubError::InvalidArgument {
            what: "commit",
            reason: format!("expected 40 hexadecimal digits, got {commit:?}"),
        });
    }
    let repo = cache_dir.join(repo_folder(repo_id));
    let etag = format!("{:016x}{:08x}", fnv1a(contents), contents.len());
    let blob = repo.join("blobs").join(&etag);
    write(&blob, contents)?;
    let snapshot = repo.join("snapshots").join(commit).join(file);
    let depth = file.split('/').count() + 1;
    let target: PathBuf = std::iter::repeat_n("..", depth)
        .collect::<PathBuf>()
        .join("blobs")
        .join(&etag);
    link_or_copy(&target, &blob, &snapshot)?;
    if revision != commit {
        write(&repo.join("refs").join(revision), commit.as_bytes())?;
    }
    Ok(snapshot)
}

fn write(path: &Path, contents: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| HubError::io("cannot create", parent, e))?;
    }
    std::fs::write(path, contents).map_err(|e| HubError::io("cannot write", path, e))
}

#[cfg(unix)]
fn link_or_copy(relative_target: &Path, _blob: &Path, link: &Path) -> Result<()> {
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).map_err(|e| HubError::io("cannot create", parent, e))?;
    }
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(link).map_err(|e| HubError::io("cannot replace", link, e))?;
    }
    std::os::unix::fs::symlink(relative_target, link)
        .map_err(|e| HubError::io("cannot link", link, e))
}

/// Without symbolic links the snapshot holds a copy, as `huggingface_hub` does on Windows.
#[cfg(not(unix))]
fn link_or_copy(_relative_target: &Path, blob: &Path, link: &Path) -> Result<()> {
    let contents = std::fs::read(blob).map_err(|e| HubError::io("cannot read", blob, e))?;
    write(link, &contents)
}

/// 64-bit FNV-1a: a stable content name for blobs (not a security hash).
pub(crate) use dnc_core::fnv1a;
