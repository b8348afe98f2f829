//! Tests of the whole view pipeline and the evaluation transform.

use image::Rgb;

use super::*;
use crate::{CIFAR10_MEAN, CIFAR10_STD};

fn textured(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 7 + y * 3) as u8,
            (x * x + y * 11) as u8,
            (200 - x * 2 - y) as u8,
        ])
    })
}

/// A view config where every random op is off and the output is the image on [0, 1].
fn identity(size: u32) -> ViewConfig {
    ViewConfig {
        size,
        scale: [1.0, 1.0],
        ratio: [1.0, 1.0],
        flip_p: 0.0,
        jitter_p: 0.0,
        grayscale_p: 0.0,
        blur_p: 0.0,
        solarize_p: 0.0,
        mean: [0.0; 3],
        std: [1.0; 3],
        ..ViewConfig::cifar()
    }
}

fn as_unit(img: &RgbImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let mut out = Vec::with_capacity((3 * w * h) as usize);
    for c in 0..3 {
        out.extend(img.pixels().map(|p| f32::from(p[c]) / 255.0));
    }
    assert_eq!(out.len(), (3 * w * h) as usize);
    out
}

fn assert_all_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
    }
}

#[test]
fn all_ops_off_gives_the_image_and_normalisation_applies() {
    let img = textured(16, 16);
    let out = augment_view(&img, &identity(16), &mut SeededRng::new(0));
    assert_all_close(&out, &as_unit(&img), 1e-6);
    let cfg = ViewConfig {
        mean: CIFAR10_MEAN,
        std: CIFAR10_STD,
        ..identity(16)
    };
    let out = augment_view(&img, &cfg, &mut SeededRng::new(0));
    let expected: Vec<f32> = as_unit(&img)
        .chunks(256)
        .enumerate()
        .flat_map(|(c, plane)| {
            plane
                .iter()
                .map(move |x| (x - CIFAR10_MEAN[c]) / CIFAR10_STD[c])
                .collect::<Vec<_>>()
        })
        .collect();
    assert_all_close(&out, &expected, 1e-5);
}

#[test]
fn single_ops_at_probability_one() {
    let img = textured(8, 8);
    let unit = as_unit(&img);
    let gray = augment_view(
        &img,
        &ViewConfig {
            grayscale_p: 1.0,
            ..identity(8)
        },
        &mut SeededRng::new(1),
    );
    assert_eq!(gray[..64], gray[64..128]);
    assert_eq!(gray[..64], gray[128..]);
    let sol = augment_view(
        &img,
        &ViewConfig {
            solarize_p: 1.0,
            ..identity(8)
        },
        &mut SeededRng::new(1),
    );
    let expected: Vec<f32> = unit
        .iter()
        .map(|&x| if x >= 0.5 { 1.0 - x } else { x })
        .collect();
    assert_all_close(&sol, &expected, 1e-6);
    let flip = augment_view(
        &img,
        &ViewConfig {
            flip_p: 1.0,
            ..identity(8)
        },
        &mut SeededRng::new(1),
    );
    assert_all_close(&flip[7..8], &unit[0..1], 1e-6);
    // Brightness alone: one factor in [0.6, 1.4] for the whole image (no value reaches 1 here).
    let cfg = ViewConfig {
        jitter_p: 1.0,
        brightness: 0.4,
        contrast: 0.0,
        saturation: 0.0,
        hue: 0.0,
        ..identity(8)
    };
    let bright = augment_view(&img, &cfg, &mut SeededRng::new(4));
    let factor = bright[9] / unit[9];
    assert!((0.6..=1.4).contains(&factor), "{factor}");
    let expected: Vec<f32> = unit.iter().map(|&x| (x * factor).min(1.0)).collect();
    assert_all_close(&bright, &expected, 1e-5);
    // A blurred constant image stays constant.
    let flat = RgbImage::from_pixel(12, 12, Rgb([90, 20, 200]));
    let blurred = augment_view(
        &flat,
        &ViewConfig {
            blur_p: 1.0,
            ..identity(12)
        },
        &mut SeededRng::new(2),
    );
    assert_all_close(&blurred, &as_unit(&flat), 1e-6);
}

#[test]
fn flip_and_grayscale_happen_at_their_rates() {
    // Left half black, right half white: a flipped view starts white.
    let img = RgbImage::from_fn(8, 8, |x, _| {
        if x < 4 {
            Rgb([0, 0, 0])
        } else {
            Rgb([255, 0, 0])
        }
    });
    let cfg = ViewConfig {
        flip_p: 0.5,
        grayscale_p: 0.2,
        ..identity(8)
    };
    let (mut flips, mut grays) = (0, 0);
    for i in 0..2000 {
        let v = augment_view(&img, &cfg, &mut SeededRng::derive(7, &[i]));
        flips += usize::from(v[0] > 0.1);
        grays += usize::from(v[64..128] == v[..64]);
    }
    assert!((900..1100).contains(&flips), "{flips} flips of 2000");
    assert!(
        (320..480).contains(&grays),
        "{grays} grayscale views of 2000"
    );
}

#[test]
fn views_are_deterministic_per_stream_and_differ_across_streams() {
    let img = textured(40, 30);
    let cfg = ViewConfig::byol_view2(24);
    let a = augment_view(&img, &cfg, &mut SeededRng::derive(1, &[0, 5, 0]));
    let b = augment_view(&img, &cfg, &mut SeededRng::derive(1, &[0, 5, 0]));
    let c = augment_view(&img, &cfg, &mut SeededRng::derive(1, &[0, 5, 1]));
    assert_eq!(a.len(), 3 * 24 * 24);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.iter().all(|v| v.is_finite()));
}

#[test]
fn eval_transform_of_a_cifar_image_is_normalisation() {
    let img = textured(32, 32);
    let out = eval_transform(&img, 32, 32, CIFAR10_MEAN, CIFAR10_STD);
    let cfg = ViewConfig {
        mean: CIFAR10_MEAN,
        std: CIFAR10_STD,
        ..identity(32)
    };
    let expected = augment_view(&img, &cfg, &mut SeededRng::new(0));
    assert_all_close(&out, &expected, 1e-5);
    // A larger image: shorter side 20 → 30×20, centre crop 16 (offsets 7 and 2).
    let big = eval_transform(&textured(45, 30), 20, 16, [0.0; 3], [1.0; 3]);
    assert_eq!(big.len(), 3 * 16 * 16);
}
