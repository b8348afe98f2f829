use image::{Rgb, RgbImage};

use super::*;

/// [`super::decode`] at the default pixel limit.
fn decode(bytes: &[u8], want: SizeRequest<'_>) -> Result<RgbImage, LoadFailure> {
    super::decode(bytes, want, DEFAULT_MAX_IMAGE_PIXELS)
}

/// A smooth colour gradient of `w × h`, encoded as a JPEG (quality 95).
fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (255 * x / w.max(1)) as u8,
            (255 * y / h.max(1)) as u8,
            ((x + y) % 256) as u8 / 2 + 60,
        ])
    });
    encode(&DynamicImage::ImageRgb8(img))
}

fn encode(img: &DynamicImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95);
    img.write_with_encoder(encoder).unwrap();
    bytes
}

#[test]
fn reduction_is_the_largest_that_keeps_the_needed_size() {
    assert_eq!(jpeg_reduction(500, 375, 500, 375), 1);
    assert_eq!(jpeg_reduction(500, 375, 250, 188), 2);
    // 375 / 2 rounds up to 188: a need of 188 still halves, 189 does not.
    assert_eq!(jpeg_reduction(500, 375, 10, 189), 1);
    assert_eq!(jpeg_reduction(500, 375, 125, 94), 4);
    assert_eq!(jpeg_reduction(500, 375, 63, 47), 8);
    assert_eq!(jpeg_reduction(500, 375, 1, 1), 8);
    // Either axis can hold it back.
    assert_eq!(jpeg_reduction(4000, 100, 100, 60), 1);
}

#[test]
fn a_jpeg_is_decoded_at_the_smallest_scale_that_is_large_enough() {
    let bytes = jpeg(400, 240);
    let full = decode(&bytes, &full_size).unwrap();
    assert_eq!(full.dimensions(), (400, 240));
    for (need, got) in [
        // A half-size decode is done whole (MIN_REDUCTION).
        ((200, 120), (400, 240)),
        ((101, 60), (400, 240)),
        ((100, 60), (100, 60)),
        ((60, 30), (100, 60)),
        ((50, 30), (50, 30)),
        ((1, 1), (50, 30)),
    ] {
        let img = decode(&bytes, &|_, _| need).unwrap();
        assert_eq!(img.dimensions(), got, "need {need:?}");
    }
    // The reduced decode is the image at a smaller scale: each pixel of the 1/8 decode is
    // close to the mean of its 8×8 block of the full decode.
    let small = decode(&bytes, &|_, _| (1, 1)).unwrap();
    let mut worst = 0.0f64;
    for (x, y, p) in small.enumerate_pixels() {
        for c in 0..3 {
            let mut sum = 0.0;
            for dy in 0..8 {
                for dx in 0..8 {
                    sum += f64::from(full.get_pixel(x * 8 + dx, y * 8 + dy)[c]);
                }
            }
            worst = worst.max((sum / 64.0 - f64::from(p[c])).abs());
        }
    }
    assert!(
        worst < 6.0,
        "largest difference from the block means: {worst}"
    );
}

#[test]
fn the_request_sees_the_oriented_size_and_the_result_is_oriented() {
    // An EXIF block (little-endian TIFF) with orientation 6: rotate 90° clockwise.
    let exif: Vec<u8> = [
        b"II*\0".as_slice(),
        &8u32.to_le_bytes(),
        &1u16.to_le_bytes(),
        &0x0112u16.to_le_bytes(),
        &3u16.to_le_bytes(),
        &1u32.to_le_bytes(),
        &6u16.to_le_bytes(),
        &[0, 0],
        &0u32.to_le_bytes(),
    ]
    .concat();
    let plain = jpeg(320, 160);
    // Insert an APP1 "Exif" segment after SOI.
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((exif.len() + 8) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&exif);
    let bytes = [&plain[..2], &app1, &plain[2..]].concat();

    let seen = std::sync::Mutex::new(None);
    let img = decode(&bytes, &|w, h| {
        *seen.lock().unwrap() = Some((w, h));
        (40, 80)
    })
    .unwrap();
    assert_eq!(*seen.lock().unwrap(), Some((160, 320)));
    assert_eq!(img.dimensions(), (40, 80));
    let full = decode(&bytes, &full_size).unwrap();
    assert_eq!(full.dimensions(), (160, 320));
}

#[test]
fn greyscale_jpegs_reduce_to_rgb_and_other_formats_decode_whole() {
    let grey = DynamicImage::ImageLuma8(image::GrayImage::from_fn(64, 64, |x, _| {
        image::Luma([(x * 4) as u8])
    }));
    let img = decode(&encode(&grey), &|_, _| (16, 16)).unwrap();
    assert_eq!(img.dimensions(), (16, 16));
    assert!(img.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));

    let mut png = Vec::new();
    grey.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    assert_eq!(decode(&png, &|_, _| (1, 1)).unwrap().dimensions(), (64, 64));
}

#[test]
fn truncated_and_empty_files_fail_at_any_requested_size() {
    let bytes = jpeg(64, 64);
    for want in [&full_size as SizeRequest<'_>, &|_, _| (8, 8)] {
        let cut = decode(&bytes[..bytes.len() / 2], want).unwrap_err();
        assert!(cut.message.contains("truncated JPEG"), "{}", cut.message);
        assert!(decode(&[], want).unwrap_err().message.contains("empty"));
    }
}
