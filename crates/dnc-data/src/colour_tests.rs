//! Every colour mode of every format the decoder reads (JPEG, PNG, WebP, BMP, GIF, TIFF) becomes
//! the right 8-bit RGB: palette, grey, grey + alpha, RGB, RGBA, CMYK and 16-bit samples. Each
//! file is written here, by the `image`, `png` and `tiff` crates' encoders or, for modes that
//! none of them writes, by hand ([`crate::test_images`]). Alpha is dropped, not composited.
//! TIFF's modes are tested beside [`crate::tiff_modes`], with the helpers here.

use std::io::Cursor;

use image::{DynamicImage, ExtendedColorType, ImageFormat, Rgb, RgbImage};

use super::*;
use crate::test_images::cmyk_jpeg;

pub(crate) const W: u32 = 5;
pub(crate) const H: u32 = 3;

/// A 5 × 3 pattern of distinct colours (odd width: rows of packed indices end mid-byte).
pub(crate) fn colour(x: u32, y: u32) -> [u8; 3] {
    [
        (x * 50 + y * 7) as u8,
        (250 - x * 30 - y * 60) as u8,
        (x * y * 20 + 15) as u8,
    ]
}

pub(crate) fn alpha(x: u32, y: u32) -> u8 {
    (x * 60 + y * 5) as u8
}

pub(crate) fn grey(x: u32, y: u32) -> u8 {
    (x * 40 + y * 70 + 3) as u8
}

pub(crate) fn rgb_of(f: impl Fn(u32, u32) -> [u8; 3]) -> RgbImage {
    RgbImage::from_fn(W, H, |x, y| Rgb(f(x, y)))
}

pub(crate) fn grey_rgb() -> RgbImage {
    rgb_of(|x, y| [grey(x, y); 3])
}

/// Decodes `bytes` whole and compares every pixel with `expected`, within `tolerance`.
pub(crate) fn check(name: &str, bytes: &[u8], expected: &RgbImage, tolerance: u8) {
    let got = decode(bytes, &full_size, DEFAULT_MAX_IMAGE_PIXELS)
        .unwrap_or_else(|e| panic!("{name}: {}", e.message));
    assert_eq!(got.dimensions(), expected.dimensions(), "{name}");
    for (x, y, p) in got.enumerate_pixels() {
        let want = expected.get_pixel(x, y);
        let worst = (0..3).map(|c| p[c].abs_diff(want[c])).max().unwrap();
        assert!(
            worst <= tolerance,
            "{name}: pixel ({x}, {y}) is {p:?}, expected {want:?}"
        );
    }
}

pub(crate) fn write(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

/// Grey, grey + alpha, RGB and RGBA at 8 bits, and at 16 bits where the format has them.
pub(crate) fn direct_modes(sixteen: bool) -> Vec<(&'static str, DynamicImage, RgbImage)> {
    let wide = |v: u8| u16::from(v) * 257;
    let mut modes = vec![
        (
            "grey",
            DynamicImage::ImageLuma8(image::GrayImage::from_fn(W, H, |x, y| {
                image::Luma([grey(x, y)])
            })),
            grey_rgb(),
        ),
        (
            "grey + alpha",
            DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_fn(W, H, |x, y| {
                image::LumaA([grey(x, y), alpha(x, y)])
            })),
            grey_rgb(),
        ),
        (
            "RGB",
            DynamicImage::ImageRgb8(rgb_of(colour)),
            rgb_of(colour),
        ),
        (
            "RGBA",
            DynamicImage::ImageRgba8(image::RgbaImage::from_fn(W, H, |x, y| {
                let [r, g, b] = colour(x, y);
                image::Rgba([r, g, b, alpha(x, y)])
            })),
            rgb_of(colour),
        ),
    ];
    if sixteen {
        modes.extend([
            (
                "16-bit grey",
                DynamicImage::ImageLuma16(image::ImageBuffer::from_fn(W, H, |x, y| {
                    image::Luma([wide(grey(x, y))])
                })),
                grey_rgb(),
            ),
            (
                "16-bit grey + alpha",
                DynamicImage::ImageLumaA16(image::ImageBuffer::from_fn(W, H, |x, y| {
                    image::LumaA([wide(grey(x, y)), 1000])
                })),
                grey_rgb(),
            ),
            (
                "16-bit RGB",
                DynamicImage::ImageRgb16(image::ImageBuffer::from_fn(W, H, |x, y| {
                    image::Rgb(colour(x, y).map(wide))
                })),
                rgb_of(colour),
            ),
            (
                "16-bit RGBA",
                DynamicImage::ImageRgba16(image::ImageBuffer::from_fn(W, H, |x, y| {
                    let [r, g, b] = colour(x, y).map(wide);
                    image::Rgba([r, g, b, 40_000])
                })),
                rgb_of(colour),
            ),
        ]);
    }
    modes
}

/// A palette of `2^bits` colours (index i: (17·i, 255 − 13·i, 90 + i), modulo 256).
pub(crate) fn palette(bits: u32) -> Vec<[u8; 3]> {
    (0..1u32 << bits)
        .map(|i| [(17 * i) as u8, 255 - (13 * i) as u8, (90 + i) as u8])
        .collect()
}

/// The palette index of pixel (x, y).
pub(crate) fn index(x: u32, y: u32, bits: u32) -> u8 {
    ((x * 3 + y * 5) % (1 << bits)) as u8
}

pub(crate) fn palette_rgb(bits: u32) -> RgbImage {
    let p = palette(bits);
    rgb_of(|x, y| p[usize::from(index(x, y, bits))])
}

/// The indices in rows of `bits`-bit samples, most significant first, padded to whole bytes.
pub(crate) fn packed(bits: u32) -> Vec<u8> {
    let row_bytes = (W * bits).div_ceil(8) as usize;
    let mut out = vec![0u8; row_bytes * H as usize];
    for y in 0..H {
        for x in 0..W {
            let bit = (x * bits) as usize;
            let shift = 8 - bits as usize - bit % 8;
            out[y as usize * row_bytes + bit / 8] |= index(x, y, bits) << shift;
        }
    }
    out
}

#[test]
fn png_every_mode() {
    for (mode, image, expected) in direct_modes(true) {
        check(
            &format!("PNG {mode}"),
            &write(&image, ImageFormat::Png),
            &expected,
            0,
        );
    }
    for (bits, depth) in [
        (1, png::BitDepth::One),
        (2, png::BitDepth::Two),
        (4, png::BitDepth::Four),
        (8, png::BitDepth::Eight),
    ] {
        for transparent in [false, true] {
            let mut bytes = Vec::new();
            let mut encoder = png::Encoder::new(&mut bytes, W, H);
            encoder.set_color(png::ColorType::Indexed);
            encoder.set_depth(depth);
            encoder.set_palette(palette(bits).concat());
            if transparent {
                encoder.set_trns(vec![0u8, 128]);
            }
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(&packed(bits)).unwrap();
            writer.finish().unwrap();
            let name = format!("PNG {bits}-bit palette, transparency {transparent}");
            check(&name, &bytes, &palette_rgb(bits), 0);
        }
    }
}

#[test]
fn jpeg_grey_rgb_and_cmyk() {
    // 4:2:0 chroma averages over 16 × 16: flat 16 × 16 blocks keep their colours.
    let blocks = |f: fn(u32, u32) -> [u8; 3]| {
        RgbImage::from_fn(16 * W, 16 * H, |x, y| Rgb(f(x / 16, y / 16)))
    };
    let rgb = blocks(colour);
    let grey_blocks = blocks(|x, y| [grey(x, y); 3]);
    let encode = |image: &DynamicImage| {
        let mut bytes = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 100);
        image.write_with_encoder(encoder).unwrap();
        bytes
    };
    let luma = DynamicImage::ImageRgb8(grey_blocks.clone()).into_luma8();
    check(
        "JPEG grey",
        &encode(&DynamicImage::ImageLuma8(luma)),
        &grey_blocks,
        2,
    );
    check(
        "JPEG RGB",
        &encode(&DynamicImage::ImageRgb8(rgb.clone())),
        &rgb,
        8,
    );

    // CMYK as Photoshop stores it (inverted: 255 is no ink), one flat 8 × 8 block per pixel
    // of the pattern; red = (255 − C)(255 − K) / 255 with C and K the inks.
    let ink = |x: u32, y: u32| {
        let [c, m, y_] = colour(x, y);
        [c / 2, m / 3, y_, grey(x, y) / 4]
    };
    let bytes = cmyk_jpeg(W as u16, H as u16, |bx, by| {
        ink(u32::from(bx), u32::from(by)).map(|v| 255 - v)
    });
    let expected = RgbImage::from_fn(8 * W, 8 * H, |x, y| {
        let [c, m, y_, k] = ink(x / 8, y / 8).map(f64::from);
        let paper = |v: f64| ((255.0 - v) * (255.0 - k) / 255.0).round() as u8;
        Rgb([paper(c), paper(m), paper(y_)])
    });
    check("JPEG CMYK", &bytes, &expected, 2);
}

#[test]
fn webp_lossless_every_mode() {
    // The `image` crate writes lossless WebP only; no encoder here writes lossy (VP8) WebP.
    for (mode, image, expected) in direct_modes(false) {
        check(
            &format!("WebP {mode}"),
            &write(&image, ImageFormat::WebP),
            &expected,
            0,
        );
    }
}

#[test]
fn bmp_every_mode() {
    for (mode, image, expected) in direct_modes(false) {
        if mode == "grey + alpha" {
            continue; // BMP has no grey + alpha; `image` writes it as RGBA
        }
        check(
            &format!("BMP {mode}"),
            &write(&image, ImageFormat::Bmp),
            &expected,
            0,
        );
    }
    let indices: Vec<u8> = (0..W * H).map(|i| index(i % W, i / W, 8)).collect();
    let mut bytes = Vec::new();
    image::codecs::bmp::BmpEncoder::new(&mut bytes)
        .encode_with_palette(&indices, W, H, ExtendedColorType::L8, Some(&palette(8)))
        .unwrap();
    check("BMP 8-bit palette", &bytes, &palette_rgb(8), 0);
    check("BMP 4-bit palette", &bmp_4bit(), &palette_rgb(4), 0);
}

/// A 4-bit palette BMP: BITMAPINFOHEADER, 16 BGRX colours, bottom-up rows padded to 4 bytes.
fn bmp_4bit() -> Vec<u8> {
    let rows = packed(4);
    let row_bytes = rows.len() / H as usize;
    let stride = row_bytes.div_ceil(4) * 4;
    let mut pixels = Vec::new();
    for row in rows.chunks(row_bytes).rev() {
        pixels.extend_from_slice(row);
        pixels.resize(pixels.len() + stride - row_bytes, 0);
    }
    let table: Vec<u8> = palette(4)
        .iter()
        .flat_map(|&[r, g, b]| [b, g, r, 0])
        .collect();
    let offset = 14 + 40 + table.len();
    let mut out = b"BM".to_vec();
    out.extend_from_slice(&((offset + pixels.len()) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(offset as u32).to_le_bytes());
    for v in [40, W, H] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    for v in [0, pixels.len() as u32, 2835, 2835, 16, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    [out, table, pixels].concat()
}

#[test]
fn gif_palette_with_and_without_transparency() {
    // GIF is a palette format: at most 256 colours are kept exactly.
    check(
        "GIF",
        &write(&DynamicImage::ImageRgb8(rgb_of(colour)), ImageFormat::Gif),
        &rgb_of(colour),
        0,
    );
    let mut rgba = DynamicImage::ImageRgb8(rgb_of(colour)).into_rgba8();
    rgba.put_pixel(1, 1, image::Rgba([9, 9, 9, 0]));
    // The transparent pixel keeps the colour its palette entry gives it.
    let mut expected = rgb_of(colour);
    expected.put_pixel(1, 1, Rgb([9, 9, 9]));
    check(
        "GIF transparent",
        &write(&DynamicImage::ImageRgba8(rgba), ImageFormat::Gif),
        &expected,
        0,
    );
}
