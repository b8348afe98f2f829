//! Shapes and inputs shared by the benchmarks.

use candle_core::{DType, Device, Result, Tensor};
use criterion::{BenchmarkGroup, measurement::WallTime};
use dnc_core::SeededRng;
use std::time::Duration;

/// A convolution benchmark case: name, input dims, output channels (3×3 kernel, stride 1,
/// padding 1 throughout: the tiny net's stages at batch 512 and a ResNet-18 CIFAR stage).
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) x: [usize; 4],
    pub(crate) out_channels: usize,
}

pub(crate) const CASES: [Case; 7] = [
    Case {
        name: "tiny1_3to32_32x32_b512",
        x: [512, 3, 32, 32],
        out_channels: 32,
    },
    Case {
        name: "tiny2_32to64_16x16_b512",
        x: [512, 32, 16, 16],
        out_channels: 64,
    },
    Case {
        name: "tiny3_64to128_8x8_b512",
        x: [512, 64, 8, 8],
        out_channels: 128,
    },
    Case {
        name: "tiny4_128to256_4x4_b512",
        x: [512, 128, 4, 4],
        out_channels: 256,
    },
    Case {
        name: "resnet18_64to64_32x32_b64",
        x: [64, 64, 32, 32],
        out_channels: 64,
    },
    Case {
        name: "resnet18_128to128_16x16_b64",
        x: [64, 128, 16, 16],
        out_channels: 128,
    },
    Case {
        name: "resnet18_256to256_8x8_b64",
        x: [64, 256, 8, 8],
        out_channels: 256,
    },
];

/// Uniform values in `[-1, 1)` from a seeded stream.
pub(crate) fn rand(seed: u64, dims: &[usize]) -> Result<Tensor> {
    let mut rng = SeededRng::new(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| rng.uniform_range(-1.0, 1.0) as f32)
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu)?.to_dtype(DType::F32)
}

/// Few, short samples: the slowest candle baselines take seconds per iteration. The first call
/// prints the CPU, the kernels' SIMD level and the machine's peak, against which the
/// convolutions' throughputs (`elem/s`, one element per FLOP) read as a fraction.
pub(crate) fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    static MACHINE: std::sync::Once = std::sync::Once::new();
    MACHINE.call_once(|| {
        use dnc_kernels::machine::{cpu_model, peak_gflops, simd_level};
        let threads = rayon::current_num_threads();
        let peak = peak_gflops(threads)
            .map(|(g, basis)| format!("peak {g:.1} GFLOP/s = {basis}"))
            .unwrap_or_else(|| "peak unknown (no clock in /proc/cpuinfo)".into());
        eprintln!(
            "{} | kernels {} | {threads} threads | {peak}\n\
             conv throughputs count FLOPs (1 elem = 1 FLOP), to read against the peak; \
             batch-norm ones count tensor elements, tiny_net ones images",
            cpu_model(),
            simd_level()
        );
    });
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
}
