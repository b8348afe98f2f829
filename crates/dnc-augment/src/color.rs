//! Colour operations on CHW images with values on `[0, 1]`, following torchvision's float
//! implementations: brightness, contrast and saturation blend and then clamp to `[0, 1]`; hue
//! rotates in HSV; grayscale uses the ITU-R 601 luma weights; solarize inverts bright values.
//!
//! Every function takes a `[3, H, W]` buffer in row-major order (`3·H·W` values) and works in
//! place.

/// Luma weights of R, G and B.
pub const GRAY_WEIGHTS: [f32; 3] = [0.299, 0.587, 0.114];

/// The three channel planes of a CHW buffer.
fn planes(img: &mut [f32]) -> (&mut [f32], &mut [f32], &mut [f32]) {
    let n = img.len() / 3;
    assert!(
        3 * n == img.len(),
        "a CHW RGB buffer needs 3·H·W values, got {}",
        img.len()
    );
    let (r, gb) = img.split_at_mut(n);
    let (g, b) = gb.split_at_mut(n);
    (r, g, b)
}

#[inline]
fn gray(r: f32, g: f32, b: f32) -> f32 {
    GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b
}

/// Multiplies every value by `factor`, then clamps.
pub fn adjust_brightness(img: &mut [f32], factor: f32) {
    for v in img.iter_mut() {
        *v = (*v * factor).clamp(0.0, 1.0);
    }
}

/// Blends with the mean of the grayscale image: `factor·x + (1 − factor)·mean`, then clamps.
pub fn adjust_contrast(img: &mut [f32], factor: f32) {
    let (r, g, b) = planes(img);
    let n = r.len().max(1) as f64;
    let sum: f64 = (0..r.len())
        .map(|i| f64::from(gray(r[i], g[i], b[i])))
        .sum();
    let offset = (1.0 - factor) * (sum / n) as f32;
    for v in img.iter_mut() {
        *v = (factor * *v + offset).clamp(0.0, 1.0);
    }
}

/// Blends every pixel with its own gray value: `factor·x + (1 − factor)·gray`, then clamps.
pub fn adjust_saturation(img: &mut [f32], factor: f32) {
    let (r, g, b) = planes(img);
    for i in 0..r.len() {
        let l = (1.0 - factor) * gray(r[i], g[i], b[i]);
        r[i] = (factor * r[i] + l).clamp(0.0, 1.0);
        g[i] = (factor * g[i] + l).clamp(0.0, 1.0);
        b[i] = (factor * b[i] + l).clamp(0.0, 1.0);
    }
}

/// Rotates the hue by `shift` turns (in `[−0.5, 0.5]`): RGB → HSV, `h ← (h + shift) mod 1`, back.
pub fn adjust_hue(img: &mut [f32], shift: f32) {
    let (r, g, b) = planes(img);
    for i in 0..r.len() {
        let (h, s, v) = rgb_to_hsv(r[i], g[i], b[i]);
        (r[i], g[i], b[i]) = hsv_to_rgb((h + shift).rem_euclid(1.0), s, v);
    }
}

/// Replaces every channel with the pixel's gray value.
pub fn to_grayscale(img: &mut [f32]) {
    let (r, g, b) = planes(img);
    for i in 0..r.len() {
        let l = gray(r[i], g[i], b[i]);
        (r[i], g[i], b[i]) = (l, l, l);
    }
}

/// Inverts values at or above `threshold`: `x ← 1 − x`.
pub fn solarize(img: &mut [f32], threshold: f32) {
    for v in img.iter_mut() {
        if *v >= threshold {
            *v = 1.0 - *v;
        }
    }
}

/// `(x − mean[c]) / std[c]` per channel.
pub fn normalize(img: &mut [f32], mean: [f32; 3], std: [f32; 3]) {
    let (r, g, b) = planes(img);
    for (plane, (m, s)) in [r, g, b].into_iter().zip(mean.into_iter().zip(std)) {
        let inv = 1.0 / s;
        for v in plane.iter_mut() {
            *v = (*v - m) * inv;
        }
    }
}

/// RGB on `[0, 1]` to (hue in turns on `[0, 1)`, saturation, value), as torchvision's `_rgb2hsv`.
pub(crate) fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    let delta = maxc - minc;
    if delta <= 0.0 {
        return (0.0, 0.0, maxc);
    }
    let h = if maxc == r {
        (g - b) / delta
    } else if maxc == g {
        2.0 + (b - r) / delta
    } else {
        4.0 + (r - g) / delta
    };
    ((h / 6.0).rem_euclid(1.0), delta / maxc, maxc)
}

/// (hue in turns, saturation, value) to RGB, as torchvision's `_hsv2rgb`.
pub(crate) fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = h * 6.0;
    let sector = h6.floor();
    let f = h6 - sector;
    let p = (v * (1.0 - s)).clamp(0.0, 1.0);
    let q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
    let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
    match (sector as i32).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

#[cfg(test)]
#[path = "color_tests.rs"]
mod tests;
