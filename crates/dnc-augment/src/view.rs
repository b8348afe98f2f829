//! One augmented view ([`augment_view`]) and the deterministic evaluation transform
//! ([`eval_transform`]).
//!
//! The view recipe is BYOL's (Grill et al., 2020, arXiv 2006.07733, appendix B), used by
//! Divide and Contrast (arXiv 2105.08054) for every training stage.

use dnc_core::SeededRng;
use image::RgbImage;

use crate::ViewConfig;
use crate::blur::gaussian_blur;
use crate::color::{
    adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation, normalize, solarize,
    to_grayscale,
};
use crate::crop::{resized_crop, sample_crop_box};
use crate::resize::resize_center_crop;

/// One random view of `image`: random resized crop to `size × size`, horizontal flip, colour
/// jitter (in a random order), grayscale, Gaussian blur, solarize, each with its probability,
/// then normalisation. All randomness comes from `rng`; `config` should have been validated.
///
/// # Shapes
/// Returns a `[3, size, size]` buffer in row-major (CHW) order.
///
/// # Panics
/// If `image` has no pixels.
pub fn augment_view(image: &RgbImage, config: &ViewConfig, rng: &mut SeededRng) -> Vec<f32> {
    let (width, height) = image.dimensions();
    assert!(width > 0 && height > 0, "cannot augment an empty image");
    let crop = sample_crop_box(width, height, config.scale, config.ratio, rng);
    let flip = rng.bernoulli(config.flip_p);
    let mut img = resized_crop(image, crop, config.size, flip);
    color_jitter(&mut img, config, rng);
    if rng.bernoulli(config.grayscale_p) {
        to_grayscale(&mut img);
    }
    if rng.bernoulli(config.blur_p) {
        let sigma = rng.uniform_range(config.blur_sigma[0], config.blur_sigma[1]) as f32;
        let side = config.size as usize;
        gaussian_blur(&mut img, side, side, config.kernel_size(), sigma);
    }
    if rng.bernoulli(config.solarize_p) {
        solarize(&mut img, config.solarize_threshold as f32);
    }
    normalize(&mut img, config.mean, config.std);
    img
}

/// The smallest image, of a `width × height` one's aspect ratio, from which [`augment_view`]
/// (given `rng` in the state it is passed here) still crops at least `config.size` pixels per
/// side: the decoder may shrink the image by the factor that brings its crop down to the output
/// size, not further. The view drawn from the smaller image has the same distribution; its crop
/// box differs from this one's, scaled, only by rounding.
pub fn view_decode_size(
    width: u32,
    height: u32,
    config: &ViewConfig,
    rng: &mut SeededRng,
) -> (u32, u32) {
    let crop = sample_crop_box(width, height, config.scale, config.ratio, rng);
    let size = f64::from(config.size);
    let scale = (size / f64::from(crop.width)).max(size / f64::from(crop.height));
    scaled_at_least(width, height, scale)
}

/// The smallest image, of a `width × height` one's aspect ratio, whose shorter side is still
/// `resize` (what [`eval_transform`] resizes to).
pub fn eval_decode_size(width: u32, height: u32, resize: u32) -> (u32, u32) {
    dnc_data::size_for_side(width, height, resize)
}

/// `width × height` scaled by `scale` (at most 1), rounded up; the whole size for a scale of 1
/// or more (or NaN, from an empty crop).
fn scaled_at_least(width: u32, height: u32, scale: f64) -> (u32, u32) {
    if scale.is_nan() || scale >= 1.0 {
        return (width, height);
    }
    let up = |x: u32| ((f64::from(x) * scale).ceil() as u32).clamp(1, x.max(1));
    (up(width), up(height))
}

/// torchvision's `ColorJitter` applied with probability `jitter_p`: brightness, contrast and
/// saturation factors uniform in `[max(0, 1 − x), 1 + x]`, a hue shift uniform in `[−h, h]`,
/// the four operations in a random order.
///
/// # Shapes
/// `img`: `[3, H, W]` on `[0, 1]`, changed in place.
pub fn color_jitter(img: &mut [f32], config: &ViewConfig, rng: &mut SeededRng) {
    if !rng.bernoulli(config.jitter_p) {
        return;
    }
    let order = rng.permutation(4);
    let mut factor = |x: f64| rng.uniform_range((1.0 - x).max(0.0), 1.0 + x) as f32;
    let brightness = factor(config.brightness);
    let contrast = factor(config.contrast);
    let saturation = factor(config.saturation);
    let hue = rng.uniform_range(-config.hue, config.hue) as f32;
    for op in order {
        match op {
            0 => adjust_brightness(img, brightness),
            1 => adjust_contrast(img, contrast),
            2 => adjust_saturation(img, saturation),
            _ => adjust_hue(img, hue),
        }
    }
}

/// The evaluation transform: resize so that the shorter side is `resize` (antialiased bilinear),
/// cut the centred `crop × crop` square, normalise with `mean` and `std`. A 32×32 image with
/// `resize = crop = 32` is only normalised.
///
/// # Shapes
/// Returns a `[3, crop, crop]` buffer in row-major (CHW) order.
///
/// # Panics
/// If `image` has no pixels, `crop` is 0 or `crop > resize`.
pub fn eval_transform(
    image: &RgbImage,
    resize: u32,
    crop: u32,
    mean: [f32; 3],
    std: [f32; 3],
) -> Vec<f32> {
    let mut img = resize_center_crop(image, resize, crop);
    normalize(&mut img, mean, std);
    img
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
