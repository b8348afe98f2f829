//! Scanning a data folder: class subfolders, a flat folder of images, or a whole tree.
//!
//! A file is an image by its extension ([`IMAGE_EXTENSIONS`]) or, without one of those, by its
//! first bytes (a JPEG saved as `photo`, a PNG named `.dat`). Names starting with `.` are hidden
//! and left out.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use crate::DataError;

/// The extensions read as images, compared case-insensitively.
pub const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "jfif",
];

/// What a scan of a tree found besides its images.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanCounts {
    /// Hidden files and folders (names starting with `.`), not entered.
    pub hidden: usize,
    /// Files that are not images, by extension and by content.
    pub not_images: usize,
    /// Folders reached a second time through a symbolic link (a cycle, or two links to one
    /// folder), entered once.
    pub revisited: usize,
    /// Entries whose type could not be read (e.g. a broken link without an image extension).
    pub unreadable: usize,
}

/// The images of a tree, sorted by path, and what was left out.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Tree {
    pub(crate) images: Vec<PathBuf>,
    pub(crate) counts: ScanCounts,
}

fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// Whether the file's first bytes are those of a format the decoder reads.
fn has_image_content(path: &Path) -> bool {
    let mut head = [0u8; 16];
    let Ok(mut file) = fs::File::open(path) else {
        return false;
    };
    let mut len = 0;
    while len < head.len() {
        match file.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(_) => return false,
        }
    }
    image::guess_format(&head[..len]).is_ok_and(|f| f.reading_enabled())
}

/// Whether a file is read as an image: by extension, else by content.
fn is_image_file(path: &Path, name: &OsStr) -> bool {
    is_image_name(name) || has_image_content(path)
}

/// Every image under `root`, at any depth, following symbolic links (each folder entered once,
/// so a link cycle ends), in path order.
pub(crate) fn scan_tree(root: &Path) -> Result<Tree, DataError> {
    check_folder(root)?;
    let mut tree = Tree::default();
    let mut visited = BTreeSet::new();
    let canonical = fs::canonicalize(root).map_err(|source| DataError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    visited.insert(canonical);
    let mut pending = vec![root.to_path_buf()];
    // Depth first, children in name order: the same order on every machine.
    while let Some(dir) = pending.pop() {
        let mut entries: Vec<(OsString, PathBuf)> = fs::read_dir(&dir)
            .map_err(|source| DataError::Io {
                path: dir.clone(),
                source,
            })?
            .map(|e| {
                e.map(|e| (e.file_name(), e.path()))
                    .map_err(|source| DataError::Io {
                        path: dir.clone(),
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        entries.sort();
        let mut subdirs = Vec::new();
        for (name, path) in entries {
            if is_hidden(&name) {
                tree.counts.hidden += 1;
                continue;
            }
            match fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => match fs::canonicalize(&path) {
                    Ok(real) => {
                        if visited.insert(real) {
                            subdirs.push(path);
                        } else {
                            tree.counts.revisited += 1;
                        }
                    }
                    Err(_) => tree.counts.unreadable += 1,
                },
                Ok(_) if is_image_file(&path, &name) => tree.images.push(path),
                Ok(_) => tree.counts.not_images += 1,
                // Reported when loaded, like any unreadable image.
                Err(_) if is_image_name(&name) => tree.images.push(path),
                Err(_) => tree.counts.unreadable += 1,
            }
        }
        pending.extend(subdirs.into_iter().rev());
    }
    tree.images.sort();
    Ok(tree)
}

/// What a data folder holds.
#[derive(Debug, PartialEq)]
pub(crate) enum Layout {
    /// One subfolder per class, sorted by name; each with its image files sorted by name.
    Classes(Vec<(String, Vec<PathBuf>)>),
    /// Image files directly in the folder, sorted by name, without labels.
    Flat(Vec<PathBuf>),
}

/// Whether a file name has an image extension.
pub(crate) fn is_image_name(name: &OsStr) -> bool {
    Path::new(name)
        .extension()
        .and_then(OsStr::to_str)
        .is_some_and(|ext| {
            IMAGE_EXTENSIONS
                .iter()
                .any(|known| ext.eq_ignore_ascii_case(known))
        })
}

/// Scans `root`: subfolders make a class layout (image files beside them are ignored, with a
/// warning); otherwise the folder's own images make a flat layout. Other files are ignored.
pub(crate) fn scan(root: &Path) -> Result<Layout, DataError> {
    check_folder(root)?;
    let (dirs, images) = list(root)?;
    if dirs.is_empty() {
        if images.is_empty() {
            return Err(DataError::NoImages {
                path: root.to_path_buf(),
            });
        }
        return Ok(Layout::Flat(images));
    }
    if !images.is_empty() {
        tracing::warn!(
            root = %root.display(),
            ignored = images.len(),
            "images directly in a folder of class folders are ignored"
        );
    }
    let mut classes = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let (_, files) = list(&dir)?;
        if files.is_empty() {
            return Err(DataError::EmptyClass { path: dir });
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        classes.push((name, files));
    }
    Ok(Layout::Classes(classes))
}

fn check_folder(root: &Path) -> Result<(), DataError> {
    match fs::metadata(root) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(DataError::NotADirectory {
            path: root.to_path_buf(),
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(DataError::MissingFolder {
            path: root.to_path_buf(),
        }),
        Err(source) => Err(DataError::Io {
            path: root.to_path_buf(),
            source,
        }),
    }
}

/// The subfolders and the image files of `dir`, each sorted by file name. Entries whose type
/// cannot be read (e.g. broken links) count as files, so that an unreadable image is reported
/// when it is loaded rather than silently dropped.
fn list(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), DataError> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut dirs: Vec<(OsString, PathBuf)> = Vec::new();
    let mut images: Vec<(OsString, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let name = entry.file_name();
        if is_hidden(&name) {
            continue;
        }
        let is_dir = fs::metadata(&path).is_ok_and(|m| m.is_dir());
        if is_dir {
            dirs.push((name, path));
        } else if is_image_file(&path, &name) {
            images.push((name, path));
        }
    }
    dirs.sort();
    images.sort();
    Ok((
        dirs.into_iter().map(|(_, p)| p).collect(),
        images.into_iter().map(|(_, p)| p).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_extensions_are_case_insensitive() {
        for name in [
            "a.jpg", "b.JPEG", "c.Png", "d.e.jpg", "e.webp", "f.TIF", "g.gif",
        ] {
            assert!(is_image_name(OsStr::new(name)), "{name}");
        }
        for name in ["a.txt", "jpg", "b.svg", ".png.bak", "c"] {
            assert!(!is_image_name(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn layouts_and_ordering() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for (dir, file) in [
            ("b", "2.png"),
            ("b", "10.png"),
            ("a", "x.jpg"),
            ("b", "n.txt"),
        ] {
            fs::create_dir_all(root.join(dir)).unwrap();
            fs::write(root.join(dir).join(file), b"").unwrap();
        }
        fs::write(root.join("loose.png"), b"").unwrap();
        let Layout::Classes(classes) = scan(root).unwrap() else {
            panic!("expected classes")
        };
        let names: Vec<_> = classes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        // Byte order, as Python's sorted(): "10.png" < "2.png".
        let files: Vec<_> = classes[1]
            .1
            .iter()
            .map(|p| p.file_name().unwrap())
            .collect();
        assert_eq!(files, ["10.png", "2.png"]);

        let flat = tempfile::tempdir().unwrap();
        fs::write(flat.path().join("b.PNG"), b"").unwrap();
        fs::write(flat.path().join("a.jpeg"), b"").unwrap();
        fs::write(flat.path().join("notes.md"), b"").unwrap();
        let Layout::Flat(files) = scan(flat.path()).unwrap() else {
            panic!("expected a flat layout")
        };
        let files: Vec<_> = files.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(files, ["a.jpeg", "b.PNG"]);
    }
}
