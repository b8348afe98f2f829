//! TIFF in every colour mode becomes the right 8-bit RGB: grey (black or white is zero), grey +
//! alpha and palettes of 1 to 8 bits (which the `image` crate refuses; [`super::decode`] reads
//! them), RGB, RGBA, CMYK and 16-bit samples. Helpers and patterns: [`crate::decode::colour_tests`].

use std::io::Cursor;

use image::{ImageFormat, Rgb};

use crate::decode::colour_tests::{
    H, W, alpha, check, colour, direct_modes, grey, grey_rgb, index, packed, palette, palette_rgb,
    rgb_of, write,
};
use crate::decode::{decode, full_size};
use crate::test_images::{TiffImage, tiff_file, tiff_file_with};

#[test]
fn tiff_every_mode() {
    for (mode, image, expected) in direct_modes(true) {
        let image = match mode {
            // `image` writes no grey + alpha TIFF: by hand below.
            "grey + alpha" | "16-bit grey + alpha" => continue,
            _ => image,
        };
        check(
            &format!("TIFF {mode}"),
            &write(&image, ImageFormat::Tiff),
            &expected,
            0,
        );
    }
    let samples = |f: &dyn Fn(u32, u32) -> Vec<u8>| -> Vec<u8> {
        (0..H)
            .flat_map(|y| (0..W).flat_map(move |x| f(x, y)))
            .collect()
    };
    let by_hand = |photometric, samples_per_pixel, bits, pixels| {
        tiff_file(&TiffImage {
            width: W,
            height: H,
            bits,
            photometric,
            samples: samples_per_pixel,
            pixels,
            colour_map: None,
        })
    };
    let grey_alpha = samples(&|x, y| vec![grey(x, y), alpha(x, y)]);
    check(
        "TIFF grey + alpha",
        &by_hand(1, 2, 8, grey_alpha),
        &grey_rgb(),
        0,
    );
    let inverted = samples(&|x, y| vec![255 - grey(x, y), alpha(x, y)]);
    check(
        "TIFF white-is-zero grey + alpha",
        &by_hand(0, 2, 8, inverted),
        &grey_rgb(),
        0,
    );
    let wide = samples(&|x, y| {
        let [lo, hi] = (u16::from(grey(x, y)) * 257).to_le_bytes();
        vec![lo, hi, 0x34, 0x12]
    });
    check(
        "TIFF 16-bit grey + alpha",
        &by_hand(1, 2, 16, wide),
        &grey_rgb(),
        0,
    );
    let white_is_zero = samples(&|x, y| vec![255 - grey(x, y)]);
    check(
        "TIFF grey, white is zero",
        &by_hand(0, 1, 8, white_is_zero),
        &grey_rgb(),
        0,
    );
    let ink = |x: u32, y: u32| {
        let [c, m, y_] = colour(x, y);
        [c / 2, m / 3, y_, grey(x, y) / 4]
    };
    let cmyk = samples(&|x, y| ink(x, y).to_vec());
    let expected = rgb_of(|x, y| {
        let [c, m, y_, k] = ink(x, y).map(f64::from);
        [c, m, y_].map(|v| ((255.0 - v) * (255.0 - k) / 255.0).round() as u8)
    });
    check("TIFF CMYK", &by_hand(5, 4, 8, cmyk), &expected, 1);
}

#[test]
fn tiff_palettes_of_every_depth() {
    for bits in [1u32, 2, 4, 8] {
        let map: Vec<u16> = (0..3)
            .flat_map(|c| {
                palette(bits)
                    .into_iter()
                    .map(move |rgb| u16::from(rgb[c]) * 257)
            })
            .collect();
        let bytes = tiff_file(&TiffImage {
            width: W,
            height: H,
            bits: bits as u16,
            photometric: 3,
            samples: 1,
            pixels: packed(bits),
            colour_map: Some(map),
        });
        check(
            &format!("TIFF {bits}-bit palette"),
            &bytes,
            &palette_rgb(bits),
            0,
        );
    }
    check(
        "TIFF 8-bit palette, LZW, by the tiff crate",
        &tiff_crate_palette(),
        &palette_rgb(8),
        0,
    );
}

/// The `tiff` crate's encoder has no palette colour type: this one is its 8-bit grey under the
/// palette's photometric interpretation.
struct Palette8;

impl tiff::encoder::colortype::ColorType for Palette8 {
    type Inner = u8;
    const TIFF_VALUE: tiff::tags::PhotometricInterpretation =
        tiff::tags::PhotometricInterpretation::RGBPalette;
    const BITS_PER_SAMPLE: &'static [u16] = &[8];
    const SAMPLE_FORMAT: &'static [tiff::tags::SampleFormat] = &[tiff::tags::SampleFormat::Uint];

    fn horizontal_predict(row: &[u8], result: &mut Vec<u8>) {
        result.extend_from_slice(row);
    }
}

fn tiff_crate_palette() -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    let mut encoder = tiff::encoder::TiffEncoder::new(&mut bytes)
        .unwrap()
        .with_compression(tiff::encoder::Compression::Lzw);
    let mut image = encoder.new_image::<Palette8>(W, H).unwrap();
    let map: Vec<u16> = (0..3)
        .flat_map(|c| {
            palette(8)
                .into_iter()
                .map(move |rgb| u16::from(rgb[c]) << 8)
        })
        .collect();
    image
        .encoder()
        .write_tag(tiff::tags::Tag::ColorMap, map.as_slice())
        .unwrap();
    let indices: Vec<u8> = (0..W * H).map(|i| index(i % W, i / W, 8)).collect();
    image.write_data(&indices).unwrap();
    bytes.into_inner()
}

#[test]
fn a_palette_tiff_is_turned_by_its_orientation_and_a_bad_colour_map_fails() {
    let mut file = TiffImage {
        width: 2,
        height: 1,
        bits: 8,
        photometric: 3,
        samples: 1,
        pixels: vec![0, 1],
        colour_map: Some(vec![0u16; 3 * 256]),
    };
    file.colour_map.as_mut().unwrap()[1] = 0xFF00; // index 1 is red
    let plain = decode(&tiff_file(&file), &full_size, 100).unwrap();
    assert_eq!(plain.dimensions(), (2, 1));
    assert_eq!(plain.get_pixel(1, 0), &Rgb([255, 0, 0]));
    // Orientation 6: turned 90° clockwise, the left pixel goes to the top.
    let turned = decode(&tiff_file_with(&file, &[(274, 6)]), &full_size, 100).unwrap();
    assert_eq!(turned.dimensions(), (1, 2));
    assert_eq!(turned.get_pixel(0, 1), &Rgb([255, 0, 0]));

    // A ColorMap of the wrong length names both lengths.
    file.colour_map = Some(vec![0; 6]);
    let err = decode(&tiff_file(&file), &full_size, 100).unwrap_err();
    assert!(
        err.message.contains("ColorMap of 6 values"),
        "{}",
        err.message
    );
}
