//! What a benchmark ran on: the CPU model, the SIMD level the kernels use, and the machine's
//! peak single-precision FLOP/s, with how that peak was found (used by `dnc bench train` and
//! printed by this crate's criterion benches, whose throughputs are FLOP/s).

/// The SIMD level of the matrix-product and convolution kernels in this build on this CPU:
/// `avx512` (needs this crate's `avx512` feature and a CPU with AVX-512F), `avx2+fma`, or
/// `baseline`.
pub fn simd_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if cfg!(feature = "avx512") && std::is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return "avx2+fma";
        }
    }
    "baseline"
}

fn cpuinfo_field(name: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The CPU's model name (`/proc/cpuinfo`), or `unknown`.
pub fn cpu_model() -> String {
    cpuinfo_field("model name").unwrap_or_else(|| "unknown".into())
}

/// Peak f32 FLOP/s of `threads` cores at the SIMD level in use, and how it was found:
/// cores × 2 FMA pipes × lanes × 2 FLOP × clock. Lanes: 16 for AVX-512 on Intel and on AMD
/// from Zen 5 (family 26), 8 for AVX2 and for AVX-512 on Zen 4, which runs 512-bit FMAs on
/// 256-bit pipes. Clock: `cpu MHz` of `/proc/cpuinfo` (the nominal clock on most virtual
/// machines; turbo can exceed it). `None` without a clock.
pub fn peak_gflops(threads: usize) -> Option<(f64, String)> {
    let mhz: f64 = cpuinfo_field("cpu MHz")?.parse().ok()?;
    let vendor = cpuinfo_field("vendor_id").unwrap_or_default();
    let family: u32 = cpuinfo_field("cpu family")
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    let level = simd_level();
    let wide = level == "avx512" && (vendor != "AuthenticAMD" || family >= 26);
    let lanes = match level {
        "baseline" => 4.0,
        _ if wide => 16.0,
        _ => 8.0,
    };
    let per_cycle = 2.0 * lanes * 2.0;
    let gflops = threads as f64 * per_cycle * mhz / 1000.0;
    let basis = format!(
        "{threads} cores x {per_cycle} FLOP/cycle (2 FMA pipes x {lanes} f32 lanes x 2, {level}) x {mhz:.0} MHz (/proc/cpuinfo)"
    );
    Some((gflops, basis))
}

/// Peak f32 GFLOP/s as measured: `threads` threads at once, each running 12 independent chains
/// of FMAs in registers at the SIMD level in use (no memory traffic), for about `millis`
/// milliseconds; the sum over threads. Unlike [`peak_gflops`] it sees the clock the cores really
/// run at under load (turbo included), so a fraction of it is an absolute efficiency. `None`
/// below AVX2 + FMA.
pub fn measured_peak_gflops(threads: usize, millis: u64) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let level = simd_level();
        if level == "baseline" {
            return None;
        }
        let budget = std::time::Duration::from_millis(millis.max(1));
        let rates: Vec<f64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads.max(1))
                .map(|_| {
                    s.spawn(move || {
                        let start = std::time::Instant::now();
                        let mut flops = 0.0;
                        while start.elapsed() < budget {
                            // SAFETY: `simd_level` checked the CPU's features.
                            flops += unsafe {
                                if level == "avx512" {
                                    fma_chains_avx512(1 << 20)
                                } else {
                                    fma_chains_avx2(1 << 20)
                                }
                            };
                        }
                        flops / start.elapsed().as_secs_f64()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0.0))
                .collect()
        });
        Some(rates.iter().sum::<f64>() / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (threads, millis);
        None
    }
}

/// Defines a function running `steps` rounds of 12 independent register FMAs and returning the
/// FLOP done (the result is kept alive through `black_box`).
macro_rules! fma_chains {
    ($name:ident, $features:literal, $lanes:literal, $vector:ty, $set1:ident, $fma:ident) => {
        /// # Safety
        /// The CPU must have the named features.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(steps: usize) -> f64 {
            use std::arch::x86_64::*;
            let mut acc: [$vector; 12] = std::array::from_fn(|i| $set1(i as f32 * 1e-3));
            let (a, b) = ($set1(0.999_999), $set1(1e-7));
            for _ in 0..steps {
                for v in &mut acc {
                    *v = $fma(*v, a, b);
                }
            }
            std::hint::black_box(acc);
            (steps * 12 * $lanes * 2) as f64
        }
    };
}

fma_chains!(
    fma_chains_avx2,
    "avx2,fma",
    8,
    __m256,
    _mm256_set1_ps,
    _mm256_fmadd_ps
);
fma_chains!(
    fma_chains_avx512,
    "avx512f",
    16,
    __m512,
    _mm512_set1_ps,
    _mm512_fmadd_ps
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_measured_peak_is_a_positive_rate_where_fma_runs() {
        let measured = measured_peak_gflops(1, 20);
        if simd_level() == "baseline" {
            assert_eq!(measured, None);
        } else {
            let g = measured.expect("a rate on an AVX2 or AVX-512 CPU");
            // One core does at least a few GFLOP/s with FMA, and no core does 10 TFLOP/s.
            assert!(g.is_finite() && g > 1.0 && g < 10_000.0, "{g}");
        }
    }
}
