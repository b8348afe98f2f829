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
