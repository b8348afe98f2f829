//! Tests of the colour operations against direct formulas on small images.

use dnc_core::SeededRng;

use super::*;

/// A 2×2 image: pixels (R, G, B) = (0.2, 0.4, 0.6), (0.9, 0.1, 0.3), (0.5, 0.5, 0.5), (1, 0.8, 0).
fn small() -> Vec<f32> {
    vec![
        0.2, 0.9, 0.5, 1.0, // R
        0.4, 0.1, 0.5, 0.8, // G
        0.6, 0.3, 0.5, 0.0, // B
    ]
}

fn assert_all_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol,
            "element {i}: {x} vs {y}\n{a:?}\n{b:?}"
        );
    }
}

#[test]
fn brightness_scales_and_clamps() {
    let mut img = small();
    adjust_brightness(&mut img, 1.5);
    let expected = [
        0.3, 1.0, 0.75, 1.0, 0.6, 0.15, 0.75, 1.0, 0.9, 0.45, 0.75, 0.0,
    ];
    assert_all_close(&img, &expected, 1e-6);
}

#[test]
fn contrast_blends_with_the_mean_gray() {
    // Gray values: 0.299·R + 0.587·G + 0.114·B per pixel.
    let grays = [0.3630, 0.3620, 0.5, 0.7686];
    let mean: f32 = grays.iter().sum::<f32>() / 4.0; // 0.4982
    let mut img = small();
    adjust_contrast(&mut img, 1.6);
    let expected: Vec<f32> = small()
        .iter()
        .map(|&x| (1.6 * x - 0.6 * mean).clamp(0.0, 1.0))
        .collect();
    assert_all_close(&img, &expected, 1e-5);
    // Factor 0 gives the flat mean image.
    let mut flat = small();
    adjust_contrast(&mut flat, 0.0);
    assert_all_close(&flat, &[mean; 12], 1e-5);
}

#[test]
fn saturation_blends_each_pixel_with_its_gray() {
    let grays = [0.3630f32, 0.3620, 0.5, 0.7686];
    let mut img = small();
    adjust_saturation(&mut img, 0.5);
    let mut expected = small();
    for c in 0..3 {
        for p in 0..4 {
            expected[c * 4 + p] = 0.5 * expected[c * 4 + p] + 0.5 * grays[p];
        }
    }
    assert_all_close(&img, &expected, 1e-5);
    // Over-saturation clamps: pixel 1's red 0.9 → 2·0.9 − 0.362 = 1.438 → 1.
    let mut more = small();
    adjust_saturation(&mut more, 2.0);
    assert_eq!(more[1], 1.0);
    assert!((more[5] - 0.0).abs() < 1e-6); // 2·0.1 − 0.362 < 0
}

#[test]
fn grayscale_uses_the_luma_weights() {
    let mut img = vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
    to_grayscale(&mut img);
    let expected = [0.299, 0.587, 0.114];
    for c in 0..3 {
        assert_all_close(&img[c * 3..c * 3 + 3], &expected, 1e-7);
    }
}

#[test]
fn hue_rotation_by_zero_is_identity_and_by_a_third_permutes_primaries() {
    let mut rng = SeededRng::new(1);
    let original: Vec<f32> = (0..3 * 50).map(|_| rng.uniform() as f32).collect();
    let mut img = original.clone();
    adjust_hue(&mut img, 0.0);
    assert_all_close(&img, &original, 1e-6);
    // Pixels red, green, blue, dark red (0.5, 0, 0).
    let mut prim = vec![1.0, 0.0, 0.0, 0.5, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    adjust_hue(&mut prim, 1.0 / 3.0);
    // Red → green, green → blue, blue → red, dark red → dark green.
    let expected = [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.5, 0.0, 1.0, 0.0, 0.0];
    assert_all_close(&prim, &expected, 1e-5);
}

#[test]
fn hue_rotation_matches_hand_computed_hsv() {
    // Orange (1, 0.5, 0) has hue 30°; +180° is azure (0, 0.5, 1). Half-saturated magenta
    // (1, 0.5, 1) has hue 300°; −90° gives 210°: (0.5, 0.75, 1).
    let mut img = vec![1.0, 1.0, 0.5, 0.5, 0.0, 1.0];
    adjust_hue(&mut img, 0.5);
    let (h, s, v) = rgb_to_hsv(1.0, 0.5, 1.0);
    assert!((h - 300.0 / 360.0).abs() < 1e-6 && (s - 0.5).abs() < 1e-6 && v == 1.0);
    assert_all_close(&[img[0], img[2], img[4]], &[0.0, 0.5, 1.0], 1e-6);
    let mut magenta = vec![1.0, 0.5, 1.0];
    adjust_hue(&mut magenta, -0.25);
    assert_all_close(&magenta, &[0.5, 0.75, 1.0], 1e-6);
}

#[test]
fn hsv_round_trips() {
    let mut rng = SeededRng::new(2);
    for _ in 0..1000 {
        let (r, g, b) = (
            rng.uniform() as f32,
            rng.uniform() as f32,
            rng.uniform() as f32,
        );
        let (h, s, v) = rgb_to_hsv(r, g, b);
        assert!((0.0..1.0).contains(&h) && (0.0..=1.0).contains(&s));
        let (r2, g2, b2) = hsv_to_rgb(h, s, v);
        assert_all_close(&[r2, g2, b2], &[r, g, b], 1e-5);
    }
}

#[test]
fn solarize_inverts_at_and_above_the_threshold() {
    let mut img = vec![0.1, 0.39, 0.4, 0.9, 0.0, 1.0];
    solarize(&mut img, 0.4);
    assert_all_close(&img, &[0.1, 0.39, 0.6, 0.1, 0.0, 0.0], 1e-6);
}

#[test]
fn normalize_per_channel() {
    let mut img = small();
    normalize(&mut img, [0.5, 0.4, 0.3], [0.25, 0.5, 0.1]);
    let expected = [
        -1.2, 1.6, 0.0, 2.0, // (R − 0.5) / 0.25
        0.0, -0.6, 0.2, 0.8, // (G − 0.4) / 0.5
        3.0, 0.0, 2.0, -3.0, // (B − 0.3) / 0.1
    ];
    assert_all_close(&img, &expected, 1e-5);
}
