use image::Rgb;

use super::*;
use crate::decode::size_for_side;

#[test]
fn sizes_for_a_side_keep_the_aspect_ratio() {
    assert_eq!(size_for_side(500, 375, 32), (43, 32));
    assert_eq!(size_for_side(375, 500, 32), (32, 43));
    assert_eq!(size_for_side(20, 30, 32), (20, 30));
    let img = shrink_to_side(RgbImage::new(500, 375), 32);
    assert_eq!(img.dimensions(), (43, 32));
    let img = shrink_to_side(RgbImage::new(10, 4000), 3);
    assert_eq!(img.dimensions(), (3, 1200));
    assert_eq!(shrink_to_side(RgbImage::new(7, 9), 8).dimensions(), (7, 9));
}

#[test]
fn a_damaged_cache_file_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.images");
    let image = |i: usize| -> Result<RgbImage, LoadFailure> {
        match i {
            1 => Err(LoadFailure {
                io_kind: None,
                message: "bad file".into(),
            }),
            _ => Ok(RgbImage::from_pixel(3, 2, Rgb([i as u8, 1, 2]))),
        }
    };
    let cache = ResizedCache::open_or_build(&path, 3, 8, 2, "test", image).unwrap();
    assert_eq!(cache.get(2).unwrap(), image(2).unwrap());
    assert_eq!(cache.get(1).unwrap_err().message, "bad file");
    assert!(cache.get(1).unwrap_err().io_kind.is_none());
    let bytes = std::fs::read(&path).unwrap();
    // Cut short: refused on opening, then built again.
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    assert!(ResizedCache::open(&path, 3, 8).is_err());
    let cache = ResizedCache::open_or_build(&path, 3, 8, 1, "test", image).unwrap();
    assert_eq!(cache.get(0).unwrap(), image(0).unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    // Another count or side does not match.
    assert!(ResizedCache::open(&path, 4, 8).is_err());
    assert!(ResizedCache::open(&path, 3, 9).is_err());
}

#[test]
fn a_panicking_decoder_fails_its_image_only_and_read_errors_are_marked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.images");
    let load = |i: usize| -> Result<RgbImage, LoadFailure> {
        match i {
            2 => panic!("broken codec"),
            4 => Err(LoadFailure::io(&std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "denied",
            ))),
            _ => Ok(RgbImage::from_pixel(2, 2, Rgb([i as u8, 0, 0]))),
        }
    };
    let cache = ResizedCache::open_or_build(&path, 6, 8, 2, "test", load).unwrap();
    let panicked = cache.get(2).unwrap_err();
    assert!(
        panicked.message.contains("broken codec"),
        "{}",
        panicked.message
    );
    assert!(cache.get(4).unwrap_err().io_kind.is_some());
    assert_eq!(
        cache.get(5).unwrap(),
        RgbImage::from_pixel(2, 2, Rgb([5, 0, 0]))
    );
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 2, "the cache and its lock file only");
}
