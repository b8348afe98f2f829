//! A small, seeded, serialisable random number generator (xoshiro256++).
//!
//! Every random choice in dnc (weight initialisation, shuffling, augmentation, k-means seeding)
//! draws from a [`SeededRng`] derived from the run seed and a few integers that say *what* is
//! being drawn, e.g. `(seed, epoch, image index, view)`. Streams are therefore independent of the
//! number of worker threads and of the order in which work is done, and a checkpoint can store a
//! generator's state exactly.

use serde::{Deserialize, Serialize};

/// SplitMix64 step: a bijective mixer used to seed xoshiro and to combine stream ids.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256++ (Blackman & Vigna, 2019): fast, 256-bit state, good statistical quality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededRng {
    s: [u64; 4],
}

impl SeededRng {
    /// A generator seeded from one integer.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Self { s }
    }

    /// An independent stream for `(seed, ids...)`: the same arguments always give the same
    /// stream, and changing any id gives an unrelated one.
    pub fn derive(seed: u64, ids: &[u64]) -> Self {
        let mut h = seed ^ 0x6A09_E667_F3BC_C908;
        let mut acc = splitmix64(&mut h);
        for &id in ids {
            let mut x = acc ^ id.wrapping_mul(0xD1B5_4A32_D192_ED03);
            acc = splitmix64(&mut x) ^ acc.rotate_left(17);
        }
        Self::new(acc)
    }

    /// A stream derived from a string key, e.g. a variable name.
    pub fn derive_str(seed: u64, key: &str) -> Self {
        // FNV-1a over the bytes, then the usual derivation.
        Self::derive(seed, &[crate::fnv1a(key.as_bytes())])
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform_range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// `true` with probability `p`.
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Uniform integer in `[0, n)`; `n` must be positive. Uses Lemire's unbiased method.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SeededRng::below(0)");
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// Standard normal sample (Box–Muller, one value per call).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            xs.swap(i, j);
        }
    }

    /// A random permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        self.shuffle(&mut p);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_derivations_differ() {
        let mut a = SeededRng::new(7);
        let mut b = SeededRng::new(7);
        assert_eq!(
            (0..8).map(|_| a.next_u64()).collect::<Vec<_>>(),
            (0..8).map(|_| b.next_u64()).collect::<Vec<_>>()
        );
        let x = SeededRng::derive(1, &[2, 3]).next_u64();
        assert_eq!(x, SeededRng::derive(1, &[2, 3]).next_u64());
        assert_ne!(x, SeededRng::derive(1, &[3, 2]).next_u64());
        assert_ne!(x, SeededRng::derive(2, &[2, 3]).next_u64());
        assert_ne!(
            SeededRng::derive_str(0, "a.weight").next_u64(),
            SeededRng::derive_str(0, "b.weight").next_u64()
        );
    }

    #[test]
    fn moments_are_right() {
        let mut r = SeededRng::new(1);
        let n = 200_000;
        let (mut s1, mut s2, mut u) = (0.0, 0.0, 0.0);
        for _ in 0..n {
            let z = r.normal();
            s1 += z;
            s2 += z * z;
            u += r.uniform();
        }
        let n = n as f64;
        assert!((s1 / n).abs() < 0.01, "mean {}", s1 / n);
        assert!((s2 / n - 1.0).abs() < 0.02, "var {}", s2 / n);
        assert!((u / n - 0.5).abs() < 0.01);
        let mut counts = [0usize; 3];
        for _ in 0..30_000 {
            counts[r.below(3) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = SeededRng::new(3).permutation(100);
        p.sort_unstable();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut r = SeededRng::new(5);
        r.next_u64();
        let json = serde_json::to_string(&r).unwrap();
        let mut back: SeededRng = serde_json::from_str(&json).unwrap();
        assert_eq!(back.next_u64(), r.next_u64());
    }
}
