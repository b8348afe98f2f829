//! Scanning a data folder: class subfolders or a flat folder of images.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::DataError;

/// The extensions read as images, compared case-insensitively.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

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
        let is_dir = fs::metadata(&path).is_ok_and(|m| m.is_dir());
        if is_dir {
            dirs.push((name, path));
        } else if is_image_name(&name) {
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
        for name in ["a.jpg", "b.JPEG", "c.Png", "d.e.jpg"] {
            assert!(is_image_name(OsStr::new(name)), "{name}");
        }
        for name in ["a.txt", "jpg", "b.gif", ".png.bak", "c"] {
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
