//! Gaussian blur as torchvision's `GaussianBlur`: a separable, normalised Gaussian kernel over
//! `kernel_size` taps with reflect padding.

/// The 1-D kernel: `exp(−x²/2σ²)` at `x = −(k−1)/2 … (k−1)/2`, normalised to sum 1.
pub fn gaussian_kernel(size: usize, sigma: f32) -> Vec<f32> {
    let half = (size as f32 - 1.0) * 0.5;
    let mut k: Vec<f32> = (0..size)
        .map(|i| {
            let x = (i as f32 - half) / sigma;
            (-0.5 * x * x).exp()
        })
        .collect();
    let sum: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    k
}

/// Reflects an index into `0..n` without repeating the edge (`−1 → 1`, `n → n − 2`).
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m >= n as isize { period - m } else { m }) as usize
}

/// Blurs a CHW image in place with a `kernel_size × kernel_size` Gaussian of standard
/// deviation `sigma` (separable: rows, then columns).
///
/// # Shapes
/// `img`: `[C, height, width]` in row-major order.
///
/// # Panics
/// If `img.len()` is not a multiple of `height·width`.
pub fn gaussian_blur(img: &mut [f32], height: usize, width: usize, kernel_size: usize, sigma: f32) {
    let plane = height * width;
    assert!(
        plane > 0 && img.len() / plane * plane == img.len(),
        "gaussian_blur: {} values do not form planes of {height}x{width}",
        img.len()
    );
    let kernel = gaussian_kernel(kernel_size, sigma);
    let r = (kernel_size / 2) as isize;
    let col_index: Vec<Vec<usize>> = (0..width as isize)
        .map(|x| (-r..=r).map(|d| reflect(x + d, width)).collect())
        .collect();
    let mut tmp = vec![0.0f32; plane];
    for channel in img.chunks_exact_mut(plane) {
        // Rows: tmp[y][x] = Σ_k kernel[k] · img[y][reflect(x + k − r)].
        for (src, dst) in channel.chunks_exact(width).zip(tmp.chunks_exact_mut(width)) {
            for (d, taps) in dst.iter_mut().zip(&col_index) {
                *d = taps.iter().zip(&kernel).map(|(&i, &w)| w * src[i]).sum();
            }
        }
        // Columns: img[y] = Σ_k kernel[k] · tmp[reflect(y + k − r)], a whole row at a time.
        for y in 0..height {
            let dst = &mut channel[y * width..(y + 1) * width];
            dst.fill(0.0);
            for (d, &w) in (-r..=r).zip(&kernel) {
                let src = &tmp[reflect(y as isize + d, height) * width..][..width];
                for (o, &s) in dst.iter_mut().zip(src) {
                    *o += w * s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_the_normalised_gaussian() {
        let k = gaussian_kernel(5, 1.0);
        // exp(−x²/2) at x = 0, 1, 2: 1, 0.60653066, 0.13533528; sum 2.48373188.
        let sum = 1.0 + 2.0 * 0.606_530_66 + 2.0 * 0.135_335_28;
        let expected = [
            0.135_335_28 / sum,
            0.606_530_66 / sum,
            1.0 / sum,
            0.606_530_66 / sum,
            0.135_335_28 / sum,
        ];
        for (a, e) in k.iter().zip(expected) {
            assert!((a - e).abs() < 1e-6, "{k:?}");
        }
    }

    #[test]
    fn reflection_does_not_repeat_the_edge() {
        let idx: Vec<usize> = (-3..8).map(|i| reflect(i, 5)).collect();
        assert_eq!(idx, [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]);
        assert_eq!(reflect(-4, 1), 0);
        // Kernels wider than the image fold back and forth.
        assert_eq!(reflect(-7, 3), 1);
    }

    #[test]
    fn constant_image_stays_constant() {
        let mut img = vec![0.37f32; 3 * 6 * 5];
        gaussian_blur(&mut img, 6, 5, 5, 1.3);
        assert!(img.iter().all(|v| (v - 0.37).abs() < 1e-6), "{img:?}");
    }

    #[test]
    fn delta_becomes_the_outer_product_of_kernels() {
        let (h, w, k, sigma) = (9, 11, 5, 0.8);
        let mut img = vec![0.0f32; h * w];
        img[4 * w + 5] = 1.0;
        gaussian_blur(&mut img, h, w, k, sigma);
        let g = gaussian_kernel(k, sigma);
        for y in 0..h {
            for x in 0..w {
                let (dy, dx) = (y as isize - 4, x as isize - 5);
                let expected = if dy.abs() <= 2 && dx.abs() <= 2 {
                    g[(dy + 2) as usize] * g[(dx + 2) as usize]
                } else {
                    0.0
                };
                assert!((img[y * w + x] - expected).abs() < 1e-7, "({y}, {x})");
            }
        }
        let total: f32 = img.iter().sum();
        assert!((total - 1.0).abs() < 1e-5);
    }

    #[test]
    fn delta_at_the_edge_is_reflected() {
        // 1-D check along a row: a delta at column 0 of a 1×4 image with kernel 3 (weights a, b, a):
        // out[0] = b·1 (+ a·x[1] + a·x[−1 → 1] = 0), out[1] = a·x[0] = a.
        let mut img = vec![1.0, 0.0, 0.0, 0.0];
        gaussian_blur(&mut img, 1, 4, 3, 1.0);
        let g = gaussian_kernel(3, 1.0);
        assert!(
            (img[0] - g[1]).abs() < 1e-7 && (img[1] - g[0]).abs() < 1e-7,
            "{img:?}"
        );
        assert_eq!((img[2], img[3]), (0.0, 0.0));
    }
}
