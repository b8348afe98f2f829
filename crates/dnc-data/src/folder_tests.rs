//! Tests of [`ImageFolder`] on generated folders of PNG, JPEG, junk and corrupt files.

use std::fs;
use std::path::Path;

use image::{GrayImage, Rgb, RgbImage};

use super::*;

/// A 4×3 image whose pixel (x, y) is (seed + x, seed + 10·y, seed + 40).
fn pattern(seed: u8) -> RgbImage {
    RgbImage::from_fn(4, 3, |x, y| {
        Rgb([seed + x as u8, seed + 10 * y as u8, seed + 40])
    })
}

fn write_png(path: &Path, seed: u8) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    pattern(seed).save(path).unwrap();
}

/// root/{cat: a.png b.PNG c.jpg notes.txt, dog: x.jpeg y.png, emu: 1.png 2.png 3.png}
fn class_tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    write_png(&r.join("cat/a.png"), 1);
    write_png(&r.join("cat/b.PNG"), 2);
    fs::create_dir_all(r.join("dog")).unwrap();
    pattern(3).save(r.join("cat/c.jpg")).unwrap();
    fs::write(r.join("cat/notes.txt"), b"not an image").unwrap();
    pattern(4).save(r.join("dog/x.jpeg")).unwrap();
    write_png(&r.join("dog/y.png"), 5);
    for (i, name) in ["1.png", "2.png", "3.png"].iter().enumerate() {
        write_png(&r.join("emu").join(name), 10 + i as u8);
    }
    tmp
}

fn file_name(folder: &ImageFolder, i: usize) -> String {
    let path = folder.path(i).unwrap();
    let class = path
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy();
    format!("{class}/{}", path.file_name().unwrap().to_string_lossy())
}

#[test]
fn class_folders_give_sorted_labels_and_decoded_pixels() {
    let tmp = class_tree();
    let f = ImageFolder::open(tmp.path(), &ImageFolderConfig::default()).unwrap();
    assert_eq!(f.classes(), ["cat", "dog", "emu"]);
    assert!(f.is_labelled());
    assert_eq!(f.len(), 8);
    let names: Vec<_> = (0..f.len()).map(|i| file_name(&f, i)).collect();
    assert_eq!(
        names,
        [
            "cat/a.png",
            "cat/b.PNG",
            "cat/c.jpg",
            "dog/x.jpeg",
            "dog/y.png",
            "emu/1.png",
            "emu/2.png",
            "emu/3.png"
        ]
    );
    let labels: Vec<_> = f.labels().into_iter().map(Option::unwrap).collect();
    assert_eq!(labels, [0, 0, 0, 1, 1, 2, 2, 2]);
    // PNG is lossless: exact pixels.
    let item = f.get(1).unwrap();
    assert_eq!((item.index, item.label), (1, Some(0)));
    assert_eq!(item.image, pattern(2));
    // JPEG is lossy: right size, pixels close.
    let jpeg = f.get(3).unwrap().image;
    assert_eq!(jpeg.dimensions(), (4, 3));
    let worst = jpeg
        .as_raw()
        .iter()
        .zip(pattern(4).as_raw())
        .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
        .max()
        .unwrap();
    assert!(worst <= 24, "JPEG error {worst}");
    assert!(matches!(
        f.get(8),
        Err(DataError::IndexOutOfRange { index: 8, len: 8 })
    ));
}

#[test]
fn flat_folder_is_unlabelled_and_grayscale_becomes_rgb() {
    let tmp = tempfile::tempdir().unwrap();
    GrayImage::from_fn(2, 2, |x, y| image::Luma([(50 * (x + 2 * y)) as u8]))
        .save(tmp.path().join("b.png"))
        .unwrap();
    write_png(&tmp.path().join("a.png"), 7);
    fs::write(tmp.path().join("readme.md"), b"# junk").unwrap();
    let f = ImageFolder::open(tmp.path(), &ImageFolderConfig::default()).unwrap();
    assert!(!f.is_labelled() && f.classes().is_empty());
    assert_eq!(f.labels(), vec![None, None]);
    assert_eq!(f.get(0).unwrap().image, pattern(7));
    let gray = f.get(1).unwrap();
    assert_eq!(gray.label, None);
    assert_eq!(gray.image.get_pixel(1, 1), &Rgb([150, 150, 150]));
}

#[test]
fn bad_folders_are_errors_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let open = |p: &Path| ImageFolder::open(p, &ImageFolderConfig::default()).unwrap_err();
    let missing = tmp.path().join("nope");
    let e = open(&missing);
    assert!(matches!(e, DataError::MissingFolder { .. }), "{e:?}");
    assert!(e.to_string().contains(&*missing.to_string_lossy()), "{e}");

    let file = tmp.path().join("file.png");
    fs::write(&file, b"x").unwrap();
    let e = open(&file);
    assert!(matches!(e, DataError::NotADirectory { .. }), "{e:?}");
    assert!(e.to_string().contains("file.png"), "{e}");

    let junk = tmp.path().join("junk");
    fs::create_dir(&junk).unwrap();
    fs::write(junk.join("a.txt"), b"x").unwrap();
    let e = open(&junk);
    assert!(matches!(e, DataError::NoImages { .. }), "{e:?}");
    assert!(e.to_string().contains("junk"), "{e}");

    let classes = tmp.path().join("classes");
    write_png(&classes.join("a/1.png"), 0);
    fs::create_dir_all(classes.join("b")).unwrap();
    fs::write(classes.join("b/readme.txt"), b"x").unwrap();
    let e = open(&classes);
    assert!(matches!(e, DataError::EmptyClass { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains(&*classes.join("b").to_string_lossy()),
        "{e}"
    );
}

fn tree_with_corrupt_file() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    write_png(&tmp.path().join("a/0.png"), 1);
    fs::write(tmp.path().join("a/1.jpg"), b"\xff\xd8 this is not a JPEG").unwrap();
    write_png(&tmp.path().join("a/2.png"), 3);
    tmp
}

#[test]
fn corrupt_image_fails_with_the_file_and_decoder_message() {
    let tmp = tree_with_corrupt_file();
    let f = ImageFolder::open(tmp.path(), &ImageFolderConfig::default()).unwrap();
    assert_eq!(f.len(), 3);
    assert_eq!(f.get(0).unwrap().image, pattern(1));
    match f.get(1) {
        Err(DataError::Decode { path, message }) => {
            assert!(path.ends_with("a/1.jpg"), "{path:?}");
            assert!(!message.is_empty());
        }
        other => panic!("expected Decode, got {other:?}"),
    }
    assert_eq!(f.corrupt_count(), 0);
}

#[test]
fn corrupt_image_is_skipped_and_counted_once() {
    let tmp = tree_with_corrupt_file();
    let config = ImageFolderConfig {
        on_corrupt: OnCorrupt::Skip,
        ..Default::default()
    };
    let f = ImageFolder::open(tmp.path(), &config).unwrap();
    for _ in 0..3 {
        let e = f.get(1).unwrap_err();
        assert!(e.is_skipped(), "{e:?}");
    }
    assert_eq!(f.get(2).unwrap().image, pattern(3));
    assert_eq!(f.corrupt_count(), 1);
    let skipped = f.corrupt_paths();
    assert_eq!(skipped[0].0, 1);
    assert!(skipped[0].1.ends_with("a/1.jpg"));
}

fn cached(dir: &Path, side: u32) -> ImageFolderConfig {
    ImageFolderConfig {
        resized_cache: Some(ResizedCacheConfig {
            dir: dir.to_path_buf(),
            side,
            threads: 2,
        }),
        on_corrupt: OnCorrupt::Skip,
        ..Default::default()
    }
}

fn cache_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".images"))
        .collect();
    names.sort();
    names
}

#[test]
fn the_resized_cache_serves_images_after_the_files_are_gone() {
    let tmp = class_tree();
    let cache = tempfile::tempdir().unwrap();
    let plain = ImageFolder::open(tmp.path(), &ImageFolderConfig::default()).unwrap();
    let f = ImageFolder::open(tmp.path(), &cached(cache.path(), 8)).unwrap();
    // Images no larger than the side are kept as they are.
    for i in 0..f.len() {
        assert_eq!(f.get(i).unwrap(), plain.get(i).unwrap());
    }
    assert_eq!(cache_files(cache.path()).len(), 1);
    // A second opening reuses the file.
    let again = ImageFolder::open(tmp.path(), &cached(cache.path(), 8)).unwrap();
    assert_eq!(cache_files(cache.path()).len(), 1);
    for i in 0..f.len() {
        fs::remove_file(f.path(i).unwrap()).unwrap();
    }
    assert_eq!(f.get(0).unwrap().image, pattern(1));
    assert_eq!(again.get(7).unwrap().image, pattern(12));
}

#[test]
fn the_resized_cache_shrinks_large_images_and_keeps_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    RgbImage::from_fn(40, 20, |x, _| Rgb([(x * 6) as u8, 0, 0]))
        .save(r.join("a.png"))
        .unwrap();
    RgbImage::from_fn(9, 30, |_, y| Rgb([0, (y * 8) as u8, 0]))
        .save(r.join("b.png"))
        .unwrap();
    fs::write(r.join("c.jpg"), b"\xFF\xD8 not really").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let f = ImageFolder::open(r, &cached(cache.path(), 10)).unwrap();
    assert_eq!(f.get(0).unwrap().image.dimensions(), (20, 10));
    // Its shorter side is already below 10.
    assert_eq!(f.get(1).unwrap().image.dimensions(), (9, 30));
    // Red rises from left to right in the shrunk image too.
    let row: Vec<u8> = (0..20)
        .map(|x| f.get(0).unwrap().image.get_pixel(x, 5)[0])
        .collect();
    assert!(
        row.windows(2).all(|w| w[0] <= w[1]) && row[19] > 200,
        "{row:?}"
    );
    match f.get(2) {
        Err(DataError::Skipped { path, message, .. }) => {
            assert!(path.ends_with("c.jpg"));
            assert!(!message.is_empty());
        }
        other => panic!("expected Skipped, got {other:?}"),
    }
    assert_eq!(f.corrupt_count(), 1);
    // Another side, or a changed file, is another cache.
    ImageFolder::open(r, &cached(cache.path(), 12)).unwrap();
    assert_eq!(cache_files(cache.path()).len(), 2);
    RgbImage::new(50, 50).save(r.join("a.png")).unwrap();
    let changed = ImageFolder::open(r, &cached(cache.path(), 10)).unwrap();
    assert_eq!(cache_files(cache.path()).len(), 3);
    assert_eq!(changed.get(0).unwrap().image.dimensions(), (10, 10));
}

#[test]
fn processes_opening_one_cache_together_build_it_once() {
    let tmp = class_tree();
    let cache = tempfile::tempdir().unwrap();
    let config = cached(cache.path(), 8);
    let opened: Vec<ImageFolder> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| ImageFolder::open(tmp.path(), &config).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(cache_files(cache.path()).len(), 1);
    let leftovers: Vec<_> = fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    for f in &opened {
        assert_eq!(f.get(0).unwrap().image, pattern(1));
    }
}

#[test]
fn limit_takes_the_reference_balanced_subset() {
    let tmp = class_tree(); // cat: 3, dog: 2, emu: 3
    let open = |n| {
        ImageFolder::open(
            tmp.path(),
            &ImageFolderConfig {
                limit: Some(n),
                ..Default::default()
            },
        )
    };
    // n = 5, C = 3: 5 // 3 = 1 each, remainder 2 to cat and dog.
    let f = open(5).unwrap();
    let names: Vec<_> = (0..f.len()).map(|i| file_name(&f, i)).collect();
    assert_eq!(
        names,
        [
            "cat/a.png",
            "cat/b.PNG",
            "dog/x.jpeg",
            "dog/y.png",
            "emu/1.png"
        ]
    );
    let labels: Vec<_> = f.labels().into_iter().map(Option::unwrap).collect();
    assert_eq!(labels, [0, 0, 1, 1, 2]);
    assert_eq!(f.get(4).unwrap().image, pattern(10));
    // n = 7: counts 3, 2, 2.
    assert_eq!(open(7).unwrap().len(), 7);
    // n = 8: counts 3, 3, 2 but dog has 2.
    match open(8) {
        Err(DataError::NotEnoughItems {
            class,
            requested: 8,
            asked: 3,
            available: 2,
        }) => assert!(class.ends_with("dog"), "{class}"),
        other => panic!("expected NotEnoughItems, got {other:?}"),
    }
    assert!(open(0).unwrap_err().is_parameter_error());
}

#[test]
fn limit_on_a_flat_folder_takes_the_first_files() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, name) in ["c.png", "a.png", "b.png"].iter().enumerate() {
        write_png(&tmp.path().join(name), i as u8);
    }
    let open = |n| {
        ImageFolder::open(
            tmp.path(),
            &ImageFolderConfig {
                limit: Some(n),
                ..Default::default()
            },
        )
    };
    let f = open(2).unwrap();
    assert_eq!(f.len(), 2);
    assert!(f.path(1).unwrap().ends_with("b.png"));
    let e = open(4).unwrap_err();
    assert!(
        e.is_parameter_error() && e.to_string().contains("holds only 3"),
        "{e}"
    );
}

#[test]
fn config_reads_from_toml_and_rejects_unknown_keys() {
    let c: ImageFolderConfig = toml::from_str("on_corrupt = \"skip\"\nlimit = 100").unwrap();
    assert_eq!(c.on_corrupt, OnCorrupt::Skip);
    assert_eq!(c.limit, Some(100));
    assert!(c.resized_cache.is_none());
    assert!(toml::from_str::<ImageFolderConfig>("cache = true").is_err());
    let back: ImageFolderConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn tilde_folders_hold_unlabelled_images_beside_the_classes() {
    let tmp = class_tree(); // cat: 3, dog: 2, emu: 3
    write_png(&tmp.path().join("~distractors/n1.png"), 30);
    write_png(&tmp.path().join("~distractors/n2.png"), 31);
    let f = ImageFolder::open(tmp.path(), &ImageFolderConfig::default()).unwrap();
    assert_eq!(f.classes(), ["cat", "dog", "emu"]);
    assert!(f.is_labelled());
    assert_eq!(f.len(), 10);
    let labels = f.labels();
    assert_eq!(labels[..8].iter().flatten().count(), 8);
    assert_eq!(labels[8..], [None, None]);
    assert_eq!(f.get(9).unwrap().label, None);
    // A limit takes the unlabelled folders as one more group: 8 = 2 of each of 4 groups.
    let limited = ImageFolder::open(
        tmp.path(),
        &ImageFolderConfig {
            limit: Some(8),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(limited.labels().iter().filter(|l| l.is_none()).count(), 2);
}

/// A JPEG of `image` with an EXIF APP1 segment whose orientation tag is `orientation`.
fn jpeg_with_orientation(image: &RgbImage, orientation: u16) -> Vec<u8> {
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(image.clone())
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    // "Exif\0\0", a big-endian TIFF header, one IFD entry: 0x0112 SHORT 1 = orientation.
    let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
    exif.extend(orientation.to_be_bytes());
    exif.extend([0, 0, 0, 0, 0, 0]);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((exif.len() + 2) as u16).to_be_bytes());
    out.extend(exif);
    out.extend(&jpeg[2..]);
    out
}

#[test]
fn a_tree_of_any_depth_and_format_is_read_without_labels() {
    use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    let deep = r.join("2019/06/trip/day1/cam/raw");
    fs::create_dir_all(&deep).unwrap();
    let wide = RgbImage::from_fn(8, 4, |x, y| Rgb([x as u8 * 30, y as u8 * 60, 200]));
    let save = |path: &Path, image: DynamicImage, format: ImageFormat| {
        image.save_with_format(path, format).unwrap();
    };
    save(
        &deep.join("a.webp"),
        DynamicImage::ImageRgb8(wide.clone()),
        ImageFormat::WebP,
    );
    save(
        &r.join("2019/b.bmp"),
        DynamicImage::ImageRgb8(wide.clone()),
        ImageFormat::Bmp,
    );
    save(
        &r.join("2019/06/c.gif"),
        DynamicImage::ImageRgb8(wide.clone()),
        ImageFormat::Gif,
    );
    save(
        &r.join("d.tiff"),
        DynamicImage::ImageRgb8(wide.clone()),
        ImageFormat::Tiff,
    );
    let rgba = RgbaImage::from_pixel(5, 5, Rgba([10, 20, 30, 0]));
    save(
        &r.join("e.png"),
        DynamicImage::ImageRgba8(rgba),
        ImageFormat::Png,
    );
    let grey16 = image::ImageBuffer::<image::Luma<u16>, _>::from_pixel(3, 3, image::Luma([65535]));
    save(
        &r.join("f16.png"),
        DynamicImage::ImageLuma16(grey16),
        ImageFormat::Png,
    );
    // A JPEG without an extension, one rotated by EXIF (6: turn 90° clockwise), one cut short.
    save(
        &r.join("photo"),
        DynamicImage::ImageRgb8(wide.clone()),
        ImageFormat::Jpeg,
    );
    fs::write(r.join("2019/rotated.jpg"), jpeg_with_orientation(&wide, 6)).unwrap();
    let whole = fs::read(r.join("photo")).unwrap();
    fs::write(r.join("2019/06/cut.jpg"), &whole[..whole.len() * 2 / 3]).unwrap();
    // Left out: hidden entries, other files; a link back up the tree is entered once.
    fs::create_dir_all(r.join(".thumbnails")).unwrap();
    pattern(1).save(r.join(".thumbnails/t.png")).unwrap();
    pattern(2).save(r.join(".hidden.png")).unwrap();
    fs::write(r.join("2019/notes.txt"), b"trip notes").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        std::os::unix::fs::symlink(r.join("2019"), deep.join("loop")).unwrap();
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9.png");
        pattern(3).save(r.join("2019/06").join(name)).unwrap();
    }

    let config = ImageFolderConfig {
        on_corrupt: OnCorrupt::Skip,
        ..Default::default()
    };
    let f = ImageFolder::open_tree(r, &config).unwrap();
    assert!(!f.is_labelled());
    let expected = if cfg!(unix) { 10 } else { 9 };
    assert_eq!(
        f.len(),
        expected,
        "{:?}",
        (0..f.len()).map(|i| f.path(i)).collect::<Vec<_>>()
    );
    let counts = f.scan_counts();
    assert_eq!((counts.hidden, counts.not_images), (2, 1));
    if cfg!(unix) {
        assert_eq!(counts.revisited, 1, "the link cycle is entered once");
    }
    let mut read = 0;
    for i in 0..f.len() {
        let path = f.path(i).unwrap().to_path_buf();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match f.get(i) {
            Ok(item) => {
                read += 1;
                assert_eq!(item.label, None);
                let (w, h) = item.image.dimensions();
                match name.as_str() {
                    "rotated.jpg" => assert_eq!((w, h), (4, 8), "EXIF orientation applied"),
                    "a.webp" | "b.bmp" | "c.gif" | "d.tiff" | "photo" => {
                        assert_eq!((w, h), (8, 4), "{name}")
                    }
                    "e.png" => assert_eq!(item.image.get_pixel(0, 0), &Rgb([10, 20, 30])),
                    "f16.png" => assert_eq!(item.image.get_pixel(1, 1), &Rgb([255, 255, 255])),
                    _ => {}
                }
            }
            Err(e) => {
                assert!(e.is_skipped(), "{e}");
                assert_eq!(name, "cut.jpg", "{e}");
                assert!(e.to_string().contains("truncated JPEG"), "{e}");
            }
        }
    }
    assert_eq!(read, expected - 1);
    assert_eq!(f.corrupt_count(), 1);
}

#[test]
fn an_empty_tree_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("a/b")).unwrap();
    fs::write(tmp.path().join("a/b/readme.md"), b"no images here").unwrap();
    let err = ImageFolder::open_tree(tmp.path(), &ImageFolderConfig::default()).unwrap_err();
    assert!(
        err.to_string().contains(&tmp.path().display().to_string()),
        "{err}"
    );
}

fn png_bytes(seed: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    pattern(seed)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

#[test]
fn a_list_file_gives_its_images_in_order_relative_to_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    write_png(&r.join("imgs/b.png"), 2);
    write_png(&r.join("imgs/deep/a.png"), 1);
    write_png(&r.join("elsewhere/c.png"), 3);
    let absolute = r.join("elsewhere/c.png");
    fs::create_dir_all(r.join("lists")).unwrap();
    let list = r.join("lists/train.txt");
    fs::write(
        &list,
        format!(
            "# my images\n../imgs/b.png\n\n  ../imgs/deep/a.png  \r\n{}\n../imgs\n",
            absolute.display()
        ),
    )
    .unwrap();
    let f = ImageFolder::open_unlabelled(&list, &ImageFolderConfig::default()).unwrap();
    assert_eq!(f.len(), 3);
    assert!(!f.is_labelled());
    let seeds: Vec<_> = (0..3).map(|i| f.get(i).unwrap().image).collect();
    assert_eq!(seeds, [pattern(2), pattern(1), pattern(3)]);
    // The folder line is not an image.
    assert_eq!(f.scan_counts().not_images, 1);

    // A missing file: an error naming the list, the line and the file, or a counted skip.
    fs::write(&list, "../imgs/b.png\n../imgs/gone.png\n").unwrap();
    let err = ImageFolder::open_list(&list, &ImageFolderConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train.txt") && err.contains("line 2") && err.contains("gone.png"),
        "{err}"
    );
    let skip = ImageFolderConfig {
        on_corrupt: OnCorrupt::Skip,
        ..Default::default()
    };
    let f = ImageFolder::open_list(&list, &skip).unwrap();
    assert_eq!((f.len(), f.scan_counts().unreadable), (1, 1));

    fs::write(&list, "# nothing\n\n").unwrap();
    let err = ImageFolder::open_list(&list, &skip)
        .unwrap_err()
        .to_string();
    assert!(err.contains("names no images"), "{err}");
}

/// A tar shard written member by member, as another tool might write it.
fn write_tar(path: &Path, members: &[(&str, Vec<u8>)]) {
    let mut builder = tar::Builder::new(fs::File::create(path).unwrap());
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, name, bytes.as_slice())
            .unwrap();
    }
    builder.finish().unwrap();
}

#[test]
fn webdataset_shards_give_one_image_per_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shards");
    fs::create_dir_all(&dir).unwrap();
    write_tar(
        &dir.join("000000.tar"),
        &[
            ("s0.jpg", {
                let mut b = Vec::new();
                pattern(1)
                    .write_to(&mut std::io::Cursor::new(&mut b), image::ImageFormat::Jpeg)
                    .unwrap();
                b
            }),
            ("s0.cls", b"3".to_vec()),
            ("s1.png", png_bytes(2)),
            ("s1.seg.png", png_bytes(9)),
            ("s1.json", b"{}".to_vec()),
            ("captions.txt", b"no image in this sample".to_vec()),
        ],
    );
    write_tar(
        &dir.join("000001.tar"),
        &[
            ("nested/dir.v2/s2.png", png_bytes(3)),
            ("s3.png", b"not a png".to_vec()),
            ("s4.PNG", png_bytes(4)),
        ],
    );
    let spec = dir.join("{000000..000001}.tar");
    let skip = ImageFolderConfig {
        on_corrupt: OnCorrupt::Skip,
        ..Default::default()
    };
    let f = ImageFolder::open_unlabelled(&spec, &skip).unwrap();
    assert_eq!(f.len(), 5);
    assert!(!f.is_labelled());
    // cls, the second image of s1, json and the caption-only sample.
    assert_eq!(f.scan_counts().not_images, 4);
    assert_eq!(f.get(0).unwrap().image.dimensions(), (4, 3));
    assert_eq!(f.get(1).unwrap().image, pattern(2));
    assert_eq!(f.get(2).unwrap().image, pattern(3));
    assert_eq!(f.get(4).unwrap().image, pattern(4));
    assert_eq!(
        f.path(2).unwrap(),
        dir.join("000001.tar").join("nested/dir.v2/s2.png")
    );
    // A member that does not decode is skipped and reported by its shard and name.
    let err = f.get(3).unwrap_err();
    assert!(err.is_skipped(), "{err}");
    assert!(err.to_string().contains("000001.tar/s3.png"), "{err}");

    // The limit keeps the first samples, with their members.
    let limited = ImageFolder::open_unlabelled(
        &spec,
        &ImageFolderConfig {
            limit: Some(2),
            ..skip.clone()
        },
    )
    .unwrap();
    assert_eq!(limited.get(1).unwrap().image, pattern(2));

    // A shard missing from the pattern is an error naming it.
    let err = ImageFolder::open_unlabelled(dir.join("{000000..000002}.tar"), &skip)
        .unwrap_err()
        .to_string();
    assert!(err.contains("000002.tar"), "{err}");
    // A file that is not a tar archive is an error naming it under `fail`, and left out
    // (counted as unreadable) under `skip`.
    fs::write(dir.join("000002.tar"), vec![7u8; 1000]).unwrap();
    let err = ImageFolder::open_unlabelled(
        dir.join("{000000..000002}.tar"),
        &ImageFolderConfig::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("000002.tar"), "{err}");
    let f = ImageFolder::open_unlabelled(dir.join("{000000..000002}.tar"), &skip).unwrap();
    assert_eq!((f.len(), f.scan_counts().unreadable), (5, 1));
}

#[test]
fn written_shards_read_back_as_the_same_images() {
    let tmp = class_tree();
    let tree = ImageFolder::open_tree(tmp.path(), &ImageFolderConfig::default()).unwrap();
    let files: Vec<_> = (0..tree.len())
        .map(|i| tree.path(i).unwrap().to_path_buf())
        .chain([tmp.path().join("gone.png")])
        .collect();
    let out = tmp.path().join("out");
    let written = crate::write_shards(&files, &out, 3).unwrap();
    assert_eq!(written.images, 8);
    assert_eq!(written.unreadable, [tmp.path().join("gone.png")]);
    assert_eq!(written.shards.len(), 3);
    assert!(written.shards[2].ends_with("000002.tar"));
    // No temporary file is left beside the shards.
    assert_eq!(fs::read_dir(&out).unwrap().count(), 3);
    let shards =
        ImageFolder::open_unlabelled(out.join("{000000..000002}.tar"), &Default::default())
            .unwrap();
    assert_eq!(shards.len(), tree.len());
    for i in 0..tree.len() {
        assert_eq!(shards.get(i).unwrap().image, tree.get(i).unwrap().image);
    }
    // Three images per shard: each sample's read group is its shard; files have none.
    let groups: Vec<Option<u32>> = (0..shards.len()).map(|i| shards.read_group(i)).collect();
    let expected: Vec<Option<u32>> = (0..8).map(|i| Some(i / 3)).collect();
    assert_eq!(groups, expected);
    assert_eq!(tree.read_group(0), None);
    // The same images give the same bytes.
    let again = crate::write_shards(&files, &tmp.path().join("again"), 3).unwrap();
    for (a, b) in written.shards.iter().zip(&again.shards) {
        assert_eq!(fs::read(a).unwrap(), fs::read(b).unwrap());
    }
    let err = crate::write_shards(&files, &out, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("shard_size"), "{err}");
}

#[test]
fn a_folder_of_only_bad_files_fails_naming_one_of_them() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("a.jpg"), b"").unwrap();
    fs::write(tmp.path().join("b.png"), b"not a png").unwrap();
    let skip = ImageFolderConfig {
        on_corrupt: OnCorrupt::Skip,
        ..Default::default()
    };
    let f = ImageFolder::open_tree(tmp.path(), &skip).unwrap();
    let err = f.check_readable().unwrap_err().to_string();
    assert!(
        err.contains("none of the 2 images") && err.contains("a.jpg") && err.contains("empty"),
        "{err}"
    );
    let f = ImageFolder::open_tree(tmp.path(), &ImageFolderConfig::default()).unwrap();
    let err = f.check_readable().unwrap_err().to_string();
    assert!(err.contains("a.jpg"), "{err}");
    write_png(&tmp.path().join("c.png"), 1);
    let f = ImageFolder::open_tree(tmp.path(), &skip).unwrap();
    f.check_readable().unwrap();
}
