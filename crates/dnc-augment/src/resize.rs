//! Resizing for the evaluation transform: a separable triangle (bilinear) filter whose support
//! widens with the downscaling factor, as PIL's and torchvision's antialiased bilinear resize.
//! When enlarging it is plain bilinear interpolation with align_corners=False.

use image::RgbImage;

/// The source pixels and weights of one output coordinate.
#[derive(Debug, Clone, PartialEq)]
struct Taps {
    start: usize,
    weights: Vec<f32>,
}

/// Taps of the outputs `first..first + count` when `len_in` pixels are resized to `len_out`.
fn axis_taps(len_in: usize, len_out: usize, first: usize, count: usize) -> Vec<Taps> {
    let scale = len_in as f64 / len_out as f64;
    let support_scale = scale.max(1.0);
    let support = support_scale; // the triangle filter has support 1
    (first..first + count)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
            let hi = ((center + support + 0.5).floor() as usize)
                .min(len_in)
                .max(lo + 1);
            let mut weights: Vec<f64> = (lo..hi)
                .map(|x| {
                    let d = (x as f64 + 0.5 - center) / support_scale;
                    (1.0 - d.abs()).max(0.0)
                })
                .collect();
            let sum: f64 = weights.iter().sum();
            if sum > 0.0 {
                weights.iter_mut().for_each(|w| *w /= sum);
            } else {
                weights = vec![1.0; 1];
            }
            Taps {
                start: lo,
                weights: weights.into_iter().map(|w| w as f32).collect(),
            }
        })
        .collect()
}

/// Resizes `image` so that its shorter side is `shorter` (the longer one scaled and rounded
/// down, as torchvision's `Resize(int)`), then cuts the centred `crop × crop` square, returning
/// values on `[0, 1]`. Only the pixels of the crop are computed.
///
/// # Shapes
/// Returns a `[3, crop, crop]` buffer in row-major (CHW) order.
///
/// # Panics
/// If the image is empty, `crop` is 0, or `crop > shorter`.
pub fn resize_center_crop(image: &RgbImage, shorter: u32, crop: u32) -> Vec<f32> {
    let (w_in, h_in) = (image.width() as usize, image.height() as usize);
    assert!(w_in > 0 && h_in > 0, "cannot resize an empty image");
    assert!(
        crop > 0 && crop <= shorter,
        "crop {crop} must be in 1..={shorter}"
    );
    let (shorter, crop) = (shorter as usize, crop as usize);
    let (w_out, h_out) = if w_in <= h_in {
        (shorter, shorter * h_in / w_in)
    } else {
        (shorter * w_in / h_in, shorter)
    };
    // torchvision's CenterCrop: offsets rounded half to even.
    let top = ((h_out - crop) as f64 / 2.0).round_ties_even() as usize;
    let left = ((w_out - crop) as f64 / 2.0).round_ties_even() as usize;
    let xs = axis_taps(w_in, w_out, left, crop);
    let ys = axis_taps(h_in, h_out, top, crop);
    let raw = image.as_raw();
    // Horizontal pass over the source rows the vertical taps need, into [row][crop][3].
    let row_lo = ys.iter().map(|t| t.start).min().unwrap_or(0);
    let row_hi = ys
        .iter()
        .map(|t| t.start + t.weights.len())
        .max()
        .unwrap_or(0);
    let mut rows = vec![0.0f32; (row_hi - row_lo) * crop * 3];
    for (y, dst) in (row_lo..row_hi).zip(rows.chunks_exact_mut(crop * 3)) {
        let src = &raw[y * w_in * 3..(y + 1) * w_in * 3];
        for (taps, px) in xs.iter().zip(dst.chunks_exact_mut(3)) {
            for (k, &wt) in taps.weights.iter().enumerate() {
                let s = (taps.start + k) * 3;
                for c in 0..3 {
                    px[c] += wt * f32::from(src[s + c]);
                }
            }
        }
    }
    // Vertical pass into CHW.
    let plane = crop * crop;
    let mut out = vec![0.0f32; 3 * plane];
    for (oy, taps) in ys.iter().enumerate() {
        for (k, &wt) in taps.weights.iter().enumerate() {
            let row = &rows[(taps.start + k - row_lo) * crop * 3..][..crop * 3];
            for (ox, px) in row.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    out[c * plane + oy * crop + ox] += wt * px[c];
                }
            }
        }
    }
    out.iter_mut().for_each(|v| *v *= 1.0 / 255.0);
    out
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;

    #[test]
    fn same_size_is_identity() {
        let img = RgbImage::from_fn(5, 5, |x, y| {
            Rgb([(x * 40) as u8, (y * 30) as u8, (x * y) as u8])
        });
        let out = resize_center_crop(&img, 5, 5);
        for (c, plane) in out.chunks_exact(25).enumerate() {
            for (i, &v) in plane.iter().enumerate() {
                let p = img.get_pixel(i as u32 % 5, i as u32 / 5)[c];
                assert!((v - f32::from(p) / 255.0).abs() < 1e-7);
            }
        }
    }

    #[test]
    fn enlarging_is_bilinear() {
        // A 2-pixel row to 4 pixels: source coordinates −0.25, 0.25, 0.75, 1.25, clamped:
        // values a, 0.75a + 0.25b, 0.25a + 0.75b, b.
        let img = RgbImage::from_fn(2, 1, |x, _| Rgb([[40, 200][x as usize], 0, 0]));
        let taps = axis_taps(2, 4, 0, 4);
        let w: Vec<Vec<f32>> = taps.iter().map(|t| t.weights.clone()).collect();
        assert_eq!(
            w,
            vec![vec![1.0], vec![0.75, 0.25], vec![0.25, 0.75], vec![1.0]]
        );
        assert_eq!(
            taps.iter().map(|t| t.start).collect::<Vec<_>>(),
            [0, 0, 0, 1]
        );
        // Resizing the 2×1 image to a shorter side of 2 makes it 4×2; the centred 2×2 crop keeps
        // the middle columns (offset (4 − 2) / 2 = 1).
        let out = resize_center_crop(&img, 2, 2);
        let red: Vec<f32> = out[..4].iter().map(|v| v * 255.0).collect();
        for (a, e) in red.iter().zip([80.0, 160.0, 80.0, 160.0]) {
            assert!((a - e).abs() < 1e-4, "{red:?}");
        }
    }

    #[test]
    fn halving_uses_the_widened_triangle() {
        // 8 → 4: centre 2o + 1, support 2, weights 1/8, 3/8, 3/8, 1/8 on pixels 2o − 1 … 2o + 2,
        // renormalised at the borders (3/7, 3/7, 1/7 for o = 0).
        let taps = axis_taps(8, 4, 0, 4);
        assert_eq!(taps[1].start, 1);
        for (a, e) in taps[1].weights.iter().zip([0.125, 0.375, 0.375, 0.125]) {
            assert!((a - e).abs() < 1e-7, "{:?}", taps[1]);
        }
        assert_eq!(taps[0].start, 0);
        for (a, e) in taps[0]
            .weights
            .iter()
            .zip([3.0 / 7.0, 3.0 / 7.0, 1.0 / 7.0])
        {
            assert!((a - e).abs() < 1e-7, "{:?}", taps[0]);
        }
        // On an 8×8 image with red = 10·x: output column 1 = (10 + 3·20 + 3·30 + 40) / 8 = 25.
        let img = RgbImage::from_fn(8, 8, |x, _| Rgb([(10 * x) as u8, 9, 9]));
        let out = resize_center_crop(&img, 4, 4);
        assert!((out[1] * 255.0 - 25.0).abs() < 1e-3, "{}", out[1] * 255.0);
        assert!((out[16] * 255.0 - 9.0).abs() < 1e-3);
    }

    #[test]
    fn shorter_side_and_centre_crop_geometry() {
        // 6 wide × 3 high, shorter side 3 → 6×3 (no resampling), centre 3×3 crop starts at column
        // round(1.5) = 2 (half to even).
        let img = RgbImage::from_fn(6, 3, |x, y| Rgb([(x * 10) as u8, (y * 10) as u8, 0]));
        let out = resize_center_crop(&img, 3, 3);
        let red_row: Vec<f32> = out[..3].iter().map(|v| v * 255.0).collect();
        for (a, e) in red_row.iter().zip([20.0, 30.0, 40.0]) {
            assert!((a - e).abs() < 1e-4, "{red_row:?}");
        }
    }
}
