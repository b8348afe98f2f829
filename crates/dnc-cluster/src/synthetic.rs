//! Gaussian blobs with known labels, for tests, examples and benchmarks (like scikit-learn's
//! `make_blobs`: centres uniform in `[−10, 10]^D`, isotropic noise).

use candle_core::{Device, Result, Tensor, bail};
use dnc_core::SeededRng;

/// `n` points in `d` dimensions around `k` random centres, with noise of standard deviation
/// `std`, and the index of each point's centre. Labels are balanced (`n / k` each, ±1) and
/// shuffled. The same arguments always give the same points.
///
/// # Shapes
/// → data `[n, d]` f32 on `device`, labels `n`.
pub fn gaussian_blobs(
    n: usize,
    d: usize,
    k: usize,
    std: f64,
    seed: u64,
    device: &Device,
) -> Result<(Tensor, Vec<u32>)> {
    if k == 0 || d == 0 || !(std.is_finite() && std >= 0.0) {
        bail!(
            "gaussian_blobs: need k >= 1, d >= 1 and a finite std >= 0, got k = {k}, d = {d}, std = {std}"
        )
    }
    let mut rng = SeededRng::derive(seed, &[0]);
    let centres: Vec<f64> = (0..k * d).map(|_| rng.uniform_range(-10.0, 10.0)).collect();
    let mut labels: Vec<u32> = (0..n).map(|i| (i % k) as u32).collect();
    rng.shuffle(&mut labels);
    let mut data = Vec::with_capacity(n * d);
    for &l in &labels {
        let c = &centres[l as usize * d..(l as usize + 1) * d];
        data.extend(c.iter().map(|m| (m + std * rng.normal()) as f32));
    }
    Ok((Tensor::from_vec(data, (n, d), device)?, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_seeded_balanced_and_spread_as_asked() {
        let (x, labels) = gaussian_blobs(3000, 4, 3, 0.5, 7, &Device::Cpu).unwrap();
        let (y, again) = gaussian_blobs(3000, 4, 3, 0.5, 7, &Device::Cpu).unwrap();
        assert_eq!(labels, again);
        assert_eq!(x.to_vec2::<f32>().unwrap(), y.to_vec2::<f32>().unwrap());
        assert_eq!(
            crate::metrics::cluster_sizes(&labels, 3).unwrap(),
            vec![1000; 3]
        );
        // Within-cluster variance per coordinate ≈ std² = 0.25.
        let rows = x.to_vec2::<f32>().unwrap();
        let members: Vec<&Vec<f32>> = rows
            .iter()
            .zip(&labels)
            .filter(|(_, l)| **l == 0)
            .map(|(r, _)| r)
            .collect();
        let mean = members.iter().map(|r| f64::from(r[0])).sum::<f64>() / members.len() as f64;
        let var = members
            .iter()
            .map(|r| (f64::from(r[0]) - mean).powi(2))
            .sum::<f64>()
            / members.len() as f64;
        assert!((var - 0.25).abs() < 0.03, "{var}");
        assert!(gaussian_blobs(10, 2, 0, 1.0, 0, &Device::Cpu).is_err());
    }
}
