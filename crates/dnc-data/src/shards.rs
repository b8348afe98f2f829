//! WebDataset tar shards: expanding a shard pattern, indexing shards, reading a sample's image,
//! and writing shards from a folder of images.
//!
//! A shard is a tar file whose members are grouped into samples by key, the member's path up to
//! the first `.` of its file name (`000123.jpg` and `000123.cls` are the sample `000123`), with a
//! sample's members next to each other, as WebDataset writes them. A sample's first member with
//! an image extension ([`IMAGE_EXTENSIONS`]) is its image; other members (labels, captions,
//! metadata) are left out and counted.
//!
//! Each shard is indexed once, by one sequential pass over its headers (data is skipped by
//! seeking), and an image is read by seeking to its member. The loader's seeded global shuffle
//! and its exact mid-epoch resumption then work as they do on a folder of files.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::scan::{ScanCounts, is_image_name};
use crate::{DataError, IMAGE_EXTENSIONS};

/// More shards than this in one pattern is taken for a mistake.
const MAX_SHARDS: usize = 10_000_000;

/// Whether `spec` names WebDataset shards: a brace pattern (`shards/{000000..000099}.tar`) or a
/// `.tar` file.
pub fn is_shard_spec(spec: &Path) -> bool {
    let text = spec.to_string_lossy();
    text.contains('{')
        || spec
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("tar"))
}

/// Expands the brace expressions of a shard pattern, as WebDataset and bash do: a numeric
/// range `{000..099}` (zero-padded to the width of its bounds when one of them starts with
/// `0`) or alternatives `{train,extra}`; several braces give every combination, in order.
pub fn expand_pattern(pattern: &str) -> Result<Vec<String>, DataError> {
    let bad = |reason: String| DataError::BadPattern {
        pattern: pattern.to_string(),
        reason,
    };
    let Some(open) = pattern.find('{') else {
        if pattern.contains('}') {
            return Err(bad("a `}` without its `{`".into()));
        }
        return Ok(vec![pattern.to_string()]);
    };
    let close = pattern[open..]
        .find('}')
        .map(|c| open + c)
        .ok_or_else(|| bad("a `{` without its `}`".into()))?;
    let (head, body, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    if body.contains('{') {
        return Err(bad("nested braces are not supported".into()));
    }
    let choices = match body.split_once("..") {
        Some((lo, hi)) => numeric_range(lo, hi).map_err(bad)?,
        None if body.contains(',') => body.split(',').map(str::to_string).collect(),
        None => {
            return Err(bad(format!(
                "`{{{body}}}` is neither `{{A..B}}` nor `{{a,b}}`"
            )));
        }
    };
    let tails = expand_pattern(tail)?;
    if choices.len().saturating_mul(tails.len()) > MAX_SHARDS {
        return Err(bad(format!("expands to more than {MAX_SHARDS} shards")));
    }
    let mut out = Vec::with_capacity(choices.len() * tails.len());
    for choice in &choices {
        for rest in &tails {
            out.push(format!("{head}{choice}{rest}"));
        }
    }
    Ok(out)
}

fn numeric_range(lo: &str, hi: &str) -> Result<Vec<String>, String> {
    let parse = |s: &str| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{s}` in a range is not a non-negative integer"));
        }
        s.parse::<u64>().map_err(|e| format!("`{s}`: {e}"))
    };
    let (a, b) = (parse(lo)?, parse(hi)?);
    if b < a {
        return Err(format!("the range {lo}..{hi} ends before it starts"));
    }
    if b - a >= MAX_SHARDS as u64 {
        return Err(format!(
            "the range {lo}..{hi} has more than {MAX_SHARDS} values"
        ));
    }
    let padded = (lo.len() > 1 && lo.starts_with('0')) || (hi.len() > 1 && hi.starts_with('0'));
    let width = if padded { lo.len().max(hi.len()) } else { 0 };
    Ok((a..=b).map(|n| format!("{n:0width$}")).collect())
}

/// Where one sample's image lies in its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    /// Position of the shard in [`ShardIndex::shards`].
    pub(crate) shard: u32,
    /// Byte offset of the member's data in the shard.
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

/// The samples of a list of shards, in shard order, then member order.
#[derive(Debug, Default)]
pub(crate) struct ShardIndex {
    pub(crate) shards: Vec<PathBuf>,
    pub(crate) members: Vec<Member>,
    /// `<shard>/<member path>`: the name an image is reported by.
    pub(crate) names: Vec<PathBuf>,
    pub(crate) counts: ScanCounts,
}

/// A sample's key: the member's path up to the first `.` of its file name.
fn sample_key(member: &str) -> &str {
    let start = member.rfind('/').map_or(0, |s| s + 1);
    match member[start..].find('.') {
        Some(dot) => &member[..start + dot],
        None => member,
    }
}

/// Indexes `shards` in order. A shard that is missing or not a tar file is an error naming it;
/// a shard cut off part-way keeps the samples before the cut (with a warning) when `keep_partial`,
/// and is an error otherwise.
pub(crate) fn index_shards(
    shards: &[PathBuf],
    keep_partial: bool,
) -> Result<ShardIndex, DataError> {
    let mut index = ShardIndex::default();
    for (s, path) in shards.iter().enumerate() {
        let shard = u32::try_from(s).map_err(|_| DataError::BadShard {
            path: path.clone(),
            message: "more than 2^32 shards".into(),
        })?;
        let found = index_one(path, shard, &mut index);
        match found {
            Ok(()) => {}
            Err(e) if keep_partial && !matches!(e, DataError::Io { .. }) => {
                index.counts.unreadable += 1;
                tracing::warn!(shard = %path.display(), error = %e, "keeping the samples before a damaged part of a shard");
            }
            Err(e) => return Err(e),
        }
        index.shards.push(path.clone());
    }
    Ok(index)
}

fn index_one(path: &Path, shard: u32, index: &mut ShardIndex) -> Result<(), DataError> {
    let file = File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |message: String| DataError::BadShard {
        path: path.to_path_buf(),
        message,
    };
    let mut archive = tar::Archive::new(file);
    let entries = archive
        .entries_with_seek()
        .map_err(|e| bad(format!("not a tar file: {e}")))?;
    // The key of the sample being read, and whether it has its image yet.
    let mut current: Option<(String, bool)> = None;
    for (read, entry) in entries.enumerate() {
        let entry = entry.map_err(|e| bad(format!("unreadable after {read} members: {e}")))?;
        let members_read = read + 1;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| bad(format!("member {members_read}: {e}")))?
            .to_string_lossy()
            .into_owned();
        let key = sample_key(&name).to_string();
        let is_image = is_image_name(Path::new(&name).as_os_str());
        let has_image = match &mut current {
            Some((k, has)) if *k == key => has,
            _ => &mut current.insert((key, false)).1,
        };
        if is_image && !*has_image {
            *has_image = true;
            index.members.push(Member {
                shard,
                offset: entry.raw_file_position(),
                size: entry.size(),
            });
            index.names.push(path.join(&name));
        } else {
            index.counts.not_images += 1;
        }
    }
    Ok(())
}

/// The bytes of one sample's image.
pub(crate) fn read_member(shard: &Path, member: &Member) -> std::io::Result<Vec<u8>> {
    let mut file = File::open(shard)?;
    file.seek(SeekFrom::Start(member.offset))?;
    let size = usize::try_from(member.size).map_err(std::io::Error::other)?;
    let mut bytes = vec![0u8; size];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// What [`write_shards`] wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WrittenShards {
    /// The shard files, in order (`000000.tar`, `000001.tar`, ...).
    pub shards: Vec<PathBuf>,
    /// Images written.
    pub images: usize,
    /// Source files that could not be read, left out.
    pub unreadable: Vec<PathBuf>,
}

/// The member extension of an image: its own, when it is an image extension, else the format
/// its first bytes show.
fn member_extension(path: &Path, bytes: &[u8]) -> String {
    if let Some(ext) = path.extension().and_then(|e| e.to_str())
        && IMAGE_EXTENSIONS.iter().any(|k| ext.eq_ignore_ascii_case(k))
    {
        return ext.to_ascii_lowercase();
    }
    image::guess_format(bytes)
        .ok()
        .and_then(|f| f.extensions_str().first().copied())
        .unwrap_or("img")
        .to_string()
}

/// Writes `images` into WebDataset shards of `shard_size` samples each under `out`
/// (`000000.tar`, ...), one member per sample named `<9-digit index>.<extension>`, with the
/// files' bytes unchanged. Each shard is written to a hidden temporary file and renamed into
/// place, so an interrupted run leaves no partial shard. Files that cannot be read are left out
/// and listed; every written member has a fixed mode and time, so the same images give the same
/// bytes.
pub fn write_shards(
    images: &[PathBuf],
    out: &Path,
    shard_size: usize,
) -> Result<WrittenShards, DataError> {
    if shard_size == 0 {
        return Err(DataError::invalid("shard_size", 0, "must be at least 1"));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DataError::Io { path, source }
    };
    fs::create_dir_all(out).map_err(io(out))?;
    let mut written = WrittenShards::default();
    for (s, chunk) in images.chunks(shard_size).enumerate() {
        let name = format!("{s:06}.tar");
        let target = out.join(&name);
        let partial = out.join(format!(".{name}.partial"));
        let file = File::create(&partial).map_err(io(&partial))?;
        let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
        for (i, path) in chunk.iter().enumerate() {
            let bytes = match fs::read(path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "leaving out an unreadable file");
                    written.unreadable.push(path.clone());
                    continue;
                }
            };
            let key = s * shard_size + i;
            let member = format!("{key:09}.{}", member_extension(path, &bytes));
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, &member, bytes.as_slice())
                .map_err(io(&partial))?;
            written.images += 1;
        }
        let file = builder
            .into_inner()
            .map_err(io(&partial))?
            .into_inner()
            .map_err(|e| DataError::Io {
                path: partial.clone(),
                source: e.into_error(),
            })?;
        file.sync_all().map_err(io(&partial))?;
        fs::rename(&partial, &target).map_err(io(&target))?;
        tracing::info!(shard = %target.display(), samples = chunk.len(), "wrote shard");
        written.shards.push(target);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_expand_like_webdataset() {
        assert_eq!(
            expand_pattern("a/{000..002}.tar").unwrap(),
            ["a/000.tar", "a/001.tar", "a/002.tar"]
        );
        assert_eq!(
            expand_pattern("{8..10}.tar").unwrap(),
            ["8.tar", "9.tar", "10.tar"]
        );
        assert_eq!(
            expand_pattern("{x,y}-{0..1}.tar").unwrap(),
            ["x-0.tar", "x-1.tar", "y-0.tar", "y-1.tar"]
        );
        assert_eq!(expand_pattern("plain.tar").unwrap(), ["plain.tar"]);
        for (pattern, says) in [
            ("{3..1}.tar", "ends before it starts"),
            ("{a..b}.tar", "not a non-negative integer"),
            ("{000..009.tar", "without its `}`"),
            ("x}.tar", "without its `{`"),
            ("{abc}.tar", "neither"),
            ("{0..99999999999}.tar", "more than"),
        ] {
            let err = expand_pattern(pattern).unwrap_err().to_string();
            assert!(
                err.contains(pattern) && err.contains(says),
                "{pattern}: {err}"
            );
        }
    }

    #[test]
    fn sample_keys_stop_at_the_first_dot_of_the_file_name() {
        assert_eq!(sample_key("000123.jpg"), "000123");
        assert_eq!(sample_key("000123.seg.png"), "000123");
        assert_eq!(sample_key("dir.v2/000123.cls"), "dir.v2/000123");
        assert_eq!(sample_key("README"), "README");
    }

    #[test]
    fn shard_specs_are_patterns_or_tar_files() {
        assert!(is_shard_spec(Path::new("s/{000..009}.tar")));
        assert!(is_shard_spec(Path::new("s/one.TAR")));
        assert!(!is_shard_spec(Path::new("s/list.txt")));
        assert!(!is_shard_spec(Path::new("photos")));
    }
}
