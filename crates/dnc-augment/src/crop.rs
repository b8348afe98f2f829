//! Random resized crop (torchvision's `RandomResizedCrop`): box sampling and a bilinear sampler
//! that crops, resizes and optionally flips in one pass.

use dnc_core::SeededRng;
use image::RgbImage;

/// A crop box in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    pub top: u32,
    pub left: u32,
    pub height: u32,
    pub width: u32,
}

/// Samples a crop box of a `width × height` image as torchvision's
/// `RandomResizedCrop.get_params` does: up to 10 tries of an area fraction uniform in `scale`
/// and a log-uniform aspect ratio (width / height) in `ratio`, rounded half to even, accepted
/// when the box fits; otherwise a centre crop of the whole image clamped to `ratio`.
pub fn sample_crop_box(
    width: u32,
    height: u32,
    scale: [f64; 2],
    ratio: [f64; 2],
    rng: &mut SeededRng,
) -> CropBox {
    let area = f64::from(width) * f64::from(height);
    let log_ratio = [ratio[0].ln(), ratio[1].ln()];
    for _ in 0..10 {
        let target_area = area * rng.uniform_range(scale[0], scale[1]);
        let aspect = rng.uniform_range(log_ratio[0], log_ratio[1]).exp();
        let w = (target_area * aspect).sqrt().round_ties_even();
        let h = (target_area / aspect).sqrt().round_ties_even();
        if w > 0.0 && w <= f64::from(width) && h > 0.0 && h <= f64::from(height) {
            let (w, h) = (w as u32, h as u32);
            let top = rng.below(u64::from(height - h) + 1) as u32;
            let left = rng.below(u64::from(width - w) + 1) as u32;
            return CropBox {
                top,
                left,
                height: h,
                width: w,
            };
        }
    }
    center_crop_box(width, height, ratio)
}

/// torchvision's fallback: the whole image, cut to the nearest allowed aspect ratio, centred.
fn center_crop_box(width: u32, height: u32, ratio: [f64; 2]) -> CropBox {
    let in_ratio = f64::from(width) / f64::from(height);
    let (w, h) = if in_ratio < ratio[0] {
        (
            width,
            (f64::from(width) / ratio[0]).round_ties_even() as u32,
        )
    } else if in_ratio > ratio[1] {
        (
            (f64::from(height) * ratio[1]).round_ties_even() as u32,
            height,
        )
    } else {
        (width, height)
    };
    let (w, h) = (w.clamp(1, width), h.clamp(1, height));
    CropBox {
        top: (height - h) / 2,
        left: (width - w) / 2,
        height: h,
        width: w,
    }
}

/// Source taps of one output coordinate: two neighbouring pixels and the weight of the second.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    t: f32,
}

/// Taps for resizing `len` pixels starting at `start` to `out` pixels, with align_corners=False:
/// output `o` samples source coordinate `(o + 0.5)·len/out − 0.5`, clamped to the crop.
fn taps(start: u32, len: u32, out: u32) -> Vec<Tap> {
    let scale = f64::from(len) / f64::from(out);
    let last = f64::from(len - 1);
    (0..out)
        .map(|o| {
            let src = ((f64::from(o) + 0.5) * scale - 0.5).clamp(0.0, last);
            let x0 = src.floor();
            let i0 = x0 as usize;
            let i1 = (i0 + 1).min(len as usize - 1);
            Tap {
                i0: start as usize + i0,
                i1: start as usize + i1,
                t: (src - x0) as f32,
            }
        })
        .collect()
}

/// Crops `crop` out of `image`, resizes it bilinearly to `size × size` and flips it horizontally
/// if asked, returning values on `[0, 1]`.
///
/// # Shapes
/// Returns a `[3, size, size]` buffer in row-major (CHW) order.
///
/// # Panics
/// If the box is empty or does not fit in the image.
pub fn resized_crop(image: &RgbImage, crop: CropBox, size: u32, flip: bool) -> Vec<f32> {
    let (width, height) = image.dimensions();
    assert!(
        crop.width > 0
            && crop.height > 0
            && crop.left + crop.width <= width
            && crop.top + crop.height <= height,
        "crop box {crop:?} does not fit a {width}x{height} image"
    );
    let mut xs = taps(crop.left, crop.width, size);
    if flip {
        xs.reverse();
    }
    let ys = taps(crop.top, crop.height, size);
    let raw = image.as_raw();
    let stride = width as usize * 3;
    let plane = (size * size) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (oy, y) in ys.iter().enumerate() {
        let (row0, row1) = (
            &raw[y.i0 * stride..][..stride],
            &raw[y.i1 * stride..][..stride],
        );
        for (ox, x) in xs.iter().enumerate() {
            let o = oy * size as usize + ox;
            for c in 0..3 {
                let p = |row: &[u8], i: usize| f32::from(row[i * 3 + c]);
                let top = p(row0, x.i0) + (p(row0, x.i1) - p(row0, x.i0)) * x.t;
                let bottom = p(row1, x.i0) + (p(row1, x.i1) - p(row1, x.i0)) * x.t;
                out[c * plane + o] = (top + (bottom - top) * y.t) * (1.0 / 255.0);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;

    #[test]
    fn sampled_boxes_respect_scale_and_ratio() {
        let mut rng = SeededRng::new(3);
        let (w, h) = (200u32, 150u32);
        let (scale, ratio) = ([0.08, 1.0], [3.0 / 4.0, 4.0 / 3.0]);
        let mut fractions = Vec::new();
        for _ in 0..2000 {
            let b = sample_crop_box(w, h, scale, ratio, &mut rng);
            assert!(b.left + b.width <= w && b.top + b.height <= h, "{b:?}");
            let frac = f64::from(b.width * b.height) / f64::from(w * h);
            let aspect = f64::from(b.width) / f64::from(b.height);
            // Rounding to whole pixels moves area and aspect a little past the sampled values.
            assert!((0.07..=1.0).contains(&frac), "{b:?} area {frac}");
            assert!((0.70..=1.42).contains(&aspect), "{b:?} aspect {aspect}");
            fractions.push(frac);
        }
        // Accepted tries are biased to small areas (large ones often do not fit), but both ends occur.
        let small = fractions.iter().filter(|&&f| f < 0.2).count();
        let large = fractions.iter().filter(|&&f| f > 0.7).count();
        assert!(small > 200 && large > 50, "small {small}, large {large}");
        let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
        assert!((0.3..0.55).contains(&mean), "mean area fraction {mean}");
    }

    #[test]
    fn impossible_tries_fall_back_to_a_centre_crop() {
        let mut rng = SeededRng::new(0);
        // A 100x10 strip: area fractions >= 0.9 with aspect <= 4/3 never fit in 10 rows.
        let b = sample_crop_box(100, 10, [0.9, 1.0], [3.0 / 4.0, 4.0 / 3.0], &mut rng);
        // Aspect 10 > 4/3: full height, width round(10 · 4/3) = 13, centred: left = (100 − 13) / 2.
        assert_eq!(
            b,
            CropBox {
                top: 0,
                left: 43,
                height: 10,
                width: 13
            }
        );
        // A tall strip is clamped to the lower ratio.
        let b = center_crop_box(10, 100, [3.0 / 4.0, 4.0 / 3.0]);
        assert_eq!(
            b,
            CropBox {
                top: 43,
                left: 0,
                height: 13,
                width: 10
            }
        );
        // A square image inside the ratio range keeps everything.
        assert_eq!(
            center_crop_box(8, 8, [0.75, 1.5]),
            CropBox {
                top: 0,
                left: 0,
                height: 8,
                width: 8
            }
        );
    }

    /// An image whose red channel is 10·x, green 20·y, blue 7.
    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([(10 * x) as u8, (20 * y) as u8, 7]))
    }

    #[test]
    fn bilinear_resize_of_a_gradient_matches_hand_values() {
        // Upsampling 4 pixels (left 2..6 of an 8-wide image) to 8: scale 0.5, source coordinate
        // (o + 0.5)/2 − 0.5 = −0.25, 0.25, 0.75, …, 3.25, clamped to [0, 3]; red = 10·(2 + s).
        let img = gradient(8, 4);
        let crop = CropBox {
            top: 1,
            left: 2,
            height: 2,
            width: 4,
        };
        let out = resized_crop(&img, crop, 8, false);
        let red_row0: Vec<f32> = out[..8].iter().map(|v| v * 255.0).collect();
        let expected = [20.0, 22.5, 27.5, 32.5, 37.5, 42.5, 47.5, 50.0];
        for (a, e) in red_row0.iter().zip(expected) {
            assert!((a - e).abs() < 1e-4, "{red_row0:?}");
        }
        // Green along the rows: rows 1..3 (values 20, 40) to 8 rows: y = (o + 0.5)/4 − 0.5.
        let green_col0: Vec<f32> = (0..8).map(|oy| out[64 + oy * 8] * 255.0).collect();
        let expected = [20.0, 20.0, 22.5, 27.5, 32.5, 37.5, 40.0, 40.0];
        for (a, e) in green_col0.iter().zip(expected) {
            assert!((a - e).abs() < 1e-4, "{green_col0:?}");
        }
        assert!(out[128..].iter().all(|&b| (b * 255.0 - 7.0).abs() < 1e-4));
        // Downsampling 8 → 4: coordinate 2o + 0.5, halfway between two columns.
        let down = resized_crop(
            &img,
            CropBox {
                top: 0,
                left: 0,
                height: 4,
                width: 8,
            },
            4,
            false,
        );
        let red: Vec<f32> = down[..4].iter().map(|v| v * 255.0).collect();
        for (a, e) in red.iter().zip([5.0, 25.0, 45.0, 65.0]) {
            assert!((a - e).abs() < 1e-4, "{red:?}");
        }
    }

    #[test]
    fn full_box_reproduces_the_input_and_flip_reverses_columns() {
        let sq = RgbImage::from_fn(4, 4, |x, y| {
            Rgb([(x * 60) as u8, (y * 70 + x) as u8, (x * y * 9) as u8])
        });
        let full = CropBox {
            top: 0,
            left: 0,
            height: 4,
            width: 4,
        };
        let same = resized_crop(&sq, full, 4, false);
        let mirror = resized_crop(&sq, full, 4, true);
        for c in 0..3 {
            for y in 0..4 {
                for x in 0..4 {
                    let v = f32::from(sq.get_pixel(x, y)[c]) / 255.0;
                    assert!((same[c * 16 + (y * 4 + x) as usize] - v).abs() < 1e-7);
                    assert!((mirror[c * 16 + (y * 4 + 3 - x) as usize] - v).abs() < 1e-7);
                }
            }
        }
        // For any box, flipping reverses the output columns.
        let img = gradient(9, 7);
        let crop = CropBox {
            top: 1,
            left: 2,
            height: 5,
            width: 6,
        };
        let (out, flipped) = (
            resized_crop(&img, crop, 5, false),
            resized_crop(&img, crop, 5, true),
        );
        for c in 0..3 {
            for y in 0..5 {
                for x in 0..5 {
                    assert_eq!(out[c * 25 + y * 5 + x], flipped[c * 25 + y * 5 + 4 - x]);
                }
            }
        }
    }
}
