//! Decompression bombs: small files whose headers declare billions of pixels, in every format
//! the decoder reads, are refused from the header, fast, and skipped or failed by the folder.

use std::time::{Duration, Instant};

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

use super::*;
use crate::test_images::{TiffImage, crc32, tiff_file};
use crate::{Dataset, ImageFolder, ImageFolderConfig, OnCorrupt, ResizedCacheConfig};

/// What every bomb declares: 50,000 × 50,000 = 2.5 billion pixels (7.5 GB as RGB).
const SIDE: u32 = 50_000;

fn encoded(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

fn tiny() -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, Rgb([200, 100, 50])))
}

/// A PNG chunk: length, type, data, CRC of type and data.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let body = [kind.as_slice(), data].concat();
    [
        &(data.len() as u32).to_be_bytes()[..],
        &body,
        &crc32(&body).to_be_bytes(),
    ]
    .concat()
}

/// A PNG declaring `SIDE × SIDE` RGB pixels, with one deflated row of zeros as its data.
fn png_bomb() -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&SIDE.to_be_bytes());
    ihdr.extend_from_slice(&SIDE.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    // A zlib stream with one stored block of 4 zero bytes (filter byte and one pixel).
    let idat = [0x78, 0x01, 0x01, 4, 0, !4, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1];
    [
        &b"\x89PNG\r\n\x1a\n"[..],
        &chunk(b"IHDR", &ihdr),
        &chunk(b"IDAT", &idat),
        &chunk(b"IEND", &[]),
    ]
    .concat()
}

/// An 8×8 JPEG whose start-of-frame says `SIDE × SIDE`.
fn jpeg_bomb() -> Vec<u8> {
    let mut bytes = encoded(&tiny(), ImageFormat::Jpeg);
    let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    let side = (SIDE as u16).to_be_bytes();
    bytes[sof + 5..sof + 7].copy_from_slice(&side);
    bytes[sof + 7..sof + 9].copy_from_slice(&side);
    bytes
}

/// An 8×8 GIF whose logical screen is `SIDE × SIDE`.
fn gif_bomb() -> Vec<u8> {
    let mut bytes = encoded(&tiny(), ImageFormat::Gif);
    let side = (SIDE as u16).to_le_bytes();
    bytes[6..8].copy_from_slice(&side);
    bytes[8..10].copy_from_slice(&side);
    bytes
}

/// An 8×8 BMP whose header says `SIDE × SIDE`.
fn bmp_bomb() -> Vec<u8> {
    let mut bytes = encoded(&tiny(), ImageFormat::Bmp);
    bytes[18..22].copy_from_slice(&(SIDE as i32).to_le_bytes());
    bytes[22..26].copy_from_slice(&(SIDE as i32).to_le_bytes());
    bytes
}

/// A TIFF of `SIDE × SIDE` grey pixels in one strip of 8 bytes, with or without a palette.
fn tiff_bomb(palette: bool) -> Vec<u8> {
    tiff_file(&TiffImage {
        width: SIDE,
        height: SIDE,
        bits: 8,
        photometric: if palette { 3 } else { 1 },
        samples: 1,
        pixels: vec![0; 8],
        colour_map: palette.then(|| vec![0; 3 * 256]),
    })
}

/// The largest side a simple WebP declares (14-bit fields): 16,383 × 16,383 is 268 million pixels.
const WEBP_SIDE: u32 = (1 << 14) - 1;

/// A lossless WebP whose header declares `WEBP_SIDE × WEBP_SIDE`.
fn webp_lossless_bomb() -> Vec<u8> {
    let bits = (WEBP_SIDE - 1) | (WEBP_SIDE - 1) << 14;
    let vp8l = [&[0x2F][..], &bits.to_le_bytes(), &[0; 8]].concat();
    riff(&[(b"VP8L", vp8l)])
}

/// A lossy WebP whose key frame declares `WEBP_SIDE × WEBP_SIDE`.
fn webp_lossy_bomb() -> Vec<u8> {
    let side = (WEBP_SIDE as u16).to_le_bytes();
    // Frame tag: key frame, version 0, shown, first partition of 16 bytes.
    let tag = (1 << 4 | 16 << 5) as u32;
    let vp8 = [
        &tag.to_le_bytes()[..3],
        &[0x9D, 0x01, 0x2A],
        &side,
        &side,
        &[0; 16],
    ]
    .concat();
    riff(&[(b"VP8 ", vp8)])
}

/// An extended WebP whose canvas is `SIDE × SIDE` (24-bit fields), holding a 1×1 lossless image.
fn webp_extended_bomb() -> Vec<u8> {
    let side = (SIDE - 1).to_le_bytes();
    let vp8x = [&[0u8; 4][..], &side[..3], &side[..3]].concat();
    let vp8l = [&[0x2F][..], &0u32.to_le_bytes(), &[0; 8]].concat();
    riff(&[(b"VP8X", vp8x), (b"VP8L", vp8l)])
}

fn riff(chunks: &[(&[u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut body = b"WEBP".to_vec();
    for (kind, data) in chunks {
        body.extend_from_slice(*kind);
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        if data.len() % 2 == 1 {
            body.push(0);
        }
    }
    [&b"RIFF"[..], &(body.len() as u32).to_le_bytes(), &body].concat()
}

fn bombs() -> Vec<(&'static str, Vec<u8>, (u32, u32))> {
    let webp = (WEBP_SIDE, WEBP_SIDE);
    vec![
        ("png", png_bomb(), (SIDE, SIDE)),
        ("jpg", jpeg_bomb(), (SIDE, SIDE)),
        ("gif", gif_bomb(), (SIDE, SIDE)),
        ("bmp", bmp_bomb(), (SIDE, SIDE)),
        ("tif", tiff_bomb(false), (SIDE, SIDE)),
        ("palette.tif", tiff_bomb(true), (SIDE, SIDE)),
        ("webp", webp_lossless_bomb(), webp),
        ("lossy.webp", webp_lossy_bomb(), webp),
        ("extended.webp", webp_extended_bomb(), (SIDE, SIDE)),
    ]
}

#[test]
fn a_bomb_in_every_format_is_refused_from_its_header() {
    for (name, bytes, (w, h)) in bombs() {
        assert!(bytes.len() < 2000, "{name}: {} bytes", bytes.len());
        let started = Instant::now();
        let err = decode(&bytes, &full_size, DEFAULT_MAX_IMAGE_PIXELS).unwrap_err();
        let took = started.elapsed();
        let declared = format!("{w} × {h} = {} pixels", u64::from(w) * u64::from(h));
        assert!(
            err.message.contains(&declared)
                && err.message.contains("89478485")
                && err.message.contains("data.max_image_pixels"),
            "{name}: {}",
            err.message
        );
        assert!(err.io_kind.is_none(), "{name}");
        assert!(took < Duration::from_secs(1), "{name} took {took:?}");
    }
}

#[test]
fn an_image_at_the_limit_decodes_and_one_pixel_more_does_not() {
    let image = DynamicImage::ImageRgb8(RgbImage::from_fn(30, 20, |x, y| {
        Rgb([x as u8 * 8, y as u8 * 12, 90])
    }));
    for format in [ImageFormat::Png, ImageFormat::Bmp, ImageFormat::Tiff] {
        let bytes = encoded(&image, format);
        let at = decode(&bytes, &full_size, 600).unwrap();
        assert_eq!(at, image.to_rgb8(), "{format:?}");
        let err = decode(&bytes, &full_size, 599).unwrap_err();
        assert!(
            err.message.contains("30 × 20 = 600 pixels"),
            "{}",
            err.message
        );
    }
    let palette = tiff_file(&TiffImage {
        width: 3,
        height: 2,
        bits: 8,
        photometric: 3,
        samples: 1,
        pixels: vec![0, 1, 2, 2, 1, 0],
        colour_map: Some((0..3 * 256).map(|i| (i % 256 * 257) as u16).collect()),
    });
    assert_eq!(
        decode(&palette, &full_size, 6).unwrap().dimensions(),
        (3, 2)
    );
    assert!(decode(&palette, &full_size, 5).is_err());
}

#[test]
fn a_folder_skips_and_counts_bombs_or_fails_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    std::fs::create_dir_all(&dir).unwrap();
    tiny().to_rgb8().save(dir.join("a-good.png")).unwrap();
    for (name, bytes, _) in bombs() {
        std::fs::write(dir.join(format!("bomb.{name}")), bytes).unwrap();
    }
    let skip = ImageFolderConfig {
        on_corrupt: OnCorrupt::Skip,
        ..Default::default()
    };
    let started = Instant::now();
    let folder = ImageFolder::open_tree(&dir, &skip).unwrap();
    folder.check_readable().unwrap();
    for i in 0..folder.len() {
        let item = folder.get(i);
        assert_eq!(item.is_ok(), i == 0, "{:?}", folder.path(i));
        if let Err(e) = item {
            assert!(e.is_skipped(), "{e}");
            assert!(e.to_string().contains("bomb."), "{e}");
        }
    }
    assert_eq!(folder.corrupt_count(), bombs().len());

    // The resized cache's pass decodes none of them either, and records them as unreadable.
    let cached = ImageFolderConfig {
        resized_cache: Some(ResizedCacheConfig {
            dir: tmp.path().join("cache"),
            side: 4,
            threads: 2,
        }),
        ..skip.clone()
    };
    let folder = ImageFolder::open_tree(&dir, &cached).unwrap();
    folder.check_readable().unwrap();
    let err = folder.get(1).unwrap_err();
    assert!(
        err.is_skipped() && err.to_string().contains("data.max_image_pixels"),
        "{err}"
    );
    // Another limit is another cache: at 10 pixels, even the 8 × 8 image is over it.
    let lowered = ImageFolderConfig {
        max_image_pixels: 10,
        ..cached
    };
    let folder = ImageFolder::open_tree(&dir, &lowered).unwrap();
    assert!(
        folder
            .get(0)
            .unwrap_err()
            .to_string()
            .contains("8 × 8 = 64")
    );
    let caches = std::fs::read_dir(tmp.path().join("cache"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "images"))
        })
        .count();
    assert_eq!(caches, 2);
    assert!(started.elapsed() < Duration::from_secs(10));

    // Under `fail`, the first bomb is an error naming the file, its size and the limit.
    std::fs::remove_file(dir.join("a-good.png")).unwrap();
    let folder = ImageFolder::open_tree(&dir, &Default::default()).unwrap();
    let err = folder.check_readable().unwrap_err().to_string();
    assert!(
        err.contains("bomb.") && err.contains("50000 × 50000") && err.contains("89478485"),
        "{err}"
    );

    let zero = ImageFolderConfig {
        max_image_pixels: 0,
        ..Default::default()
    };
    let err = zero.validate().unwrap_err().to_string();
    assert!(err.contains("max_image_pixels"), "{err}");
}
