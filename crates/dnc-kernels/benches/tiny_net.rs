//! One training step (forward and backward) of the tiny conv net at batch 256, built from this
//! crate's fused ops against the same net from plain candle ops.
//!
//! Stages of conv 3×3 → BatchNorm → ReLU → max-pool 2×2 with 32, 64, 128, 256 channels, then a
//! global average pool (the "tiny" backbone of `anchors/torch_ref.py`). The candle baseline
//! composes BatchNorm from reductions and the pool from `maximum`, as a model without custom
//! kernels does. `cargo bench -p dnc-kernels --bench tiny_net`.

// Shared with the per-op benchmarks; this one uses only `rand`.
#[allow(dead_code)]
mod common;

use candle_core::{D, DType, Device, Result, Tensor, Var};
use common::rand;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dnc_kernels::{
    batch_norm_relu_train, conv2d, global_avg_pool, max_pool2d, retain_freed_buffers,
};
use std::hint::black_box;
use std::time::Duration;

const BATCH: usize = 256;
const WIDTHS: [usize; 4] = [32, 64, 128, 256];

struct Stage {
    w: Var,
    gamma: Var,
    beta: Var,
}

fn stages() -> Result<Vec<Stage>> {
    let mut cin = 3;
    let mut out = Vec::new();
    for (i, &c) in WIDTHS.iter().enumerate() {
        let scale = (2.0 / (9 * cin) as f64).sqrt();
        let w = (rand(10 + i as u64, &[c, cin, 3, 3])? * scale)?;
        out.push(Stage {
            w: Var::from_tensor(&w)?,
            gamma: Var::ones(c, DType::F32, &Device::Cpu)?,
            beta: Var::zeros(c, DType::F32, &Device::Cpu)?,
        });
        cin = c;
    }
    Ok(out)
}

/// Pooled features from this crate's ops.
fn dnc_forward(stages: &[Stage], x: &Tensor) -> Result<Tensor> {
    let mut h = x.clone();
    for s in stages {
        let z = conv2d(&h, s.w.as_tensor(), 1, 1)?;
        let y = batch_norm_relu_train(&z, s.gamma.as_tensor(), s.beta.as_tensor(), 1e-5)?.0;
        h = max_pool2d(&y, 2, 2, 0)?;
    }
    global_avg_pool(&h)
}

/// Pooled features from plain candle ops.
fn candle_forward(stages: &[Stage], x: &Tensor) -> Result<Tensor> {
    let mut h = x.clone();
    for s in stages {
        let z = h.conv2d(s.w.as_tensor(), 1, 1, 1, 1)?;
        let (n, c, hh, ww) = z.dims4()?;
        let zs = z.reshape((n, c, hh * ww))?;
        let count = (n * hh * ww) as f64;
        let mean = (zs.sum_keepdim(2)?.sum_keepdim(0)? / count)?;
        let centred = zs.broadcast_sub(&mean)?;
        let var = (centred.sqr()?.sum_keepdim(2)?.sum_keepdim(0)? / count)?;
        let scale = s
            .gamma
            .as_tensor()
            .reshape((1, c, 1))?
            .broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        let shift = s.beta.as_tensor().reshape((1, c, 1))?;
        let y = centred
            .broadcast_mul(&scale)?
            .broadcast_add(&shift)?
            .relu()?;
        let y = y.reshape((n, c, hh / 2, 2, ww))?;
        let rows = y.narrow(3, 0, 1)?.maximum(&y.narrow(3, 1, 1)?)?;
        let cols = rows.reshape((n, c, hh / 2, ww / 2, 2))?;
        h = cols
            .narrow(4, 0, 1)?
            .maximum(&cols.narrow(4, 1, 1)?)?
            .squeeze(4)?;
    }
    h.flatten_from(2)?.mean(D::Minus1)
}

type Forward = fn(&[Stage], &Tensor) -> Result<Tensor>;

fn step(c: &mut Criterion) {
    let stages = stages().unwrap();
    let x = rand(1, &[BATCH, 3, 32, 32]).unwrap();
    let g = rand(2, &[BATCH, WIDTHS[3]]).unwrap();
    let mut group = c.benchmark_group("tiny_net_step_b256");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(BATCH as u64));
    let impls: [(&str, Forward); 2] = [("dnc", dnc_forward), ("candle", candle_forward)];
    for (name, forward) in impls {
        group.bench_function(name, |b| {
            b.iter(|| {
                let loss = (forward(&stages, &x).unwrap() * &g)
                    .unwrap()
                    .sum_all()
                    .unwrap();
                black_box(loss.backward().unwrap())
            })
        });
    }
    // The same step with freed buffers kept for reuse (see `retain_freed_buffers`); this
    // changes the allocator for the rest of the process, so it runs last.
    assert!(retain_freed_buffers() || !cfg!(all(target_os = "linux", target_env = "gnu")));
    group.bench_function("dnc_retain_freed_buffers", |b| {
        b.iter(|| {
            let loss = (dnc_forward(&stages, &x).unwrap() * &g)
                .unwrap()
                .sum_all()
                .unwrap();
            black_box(loss.backward().unwrap())
        })
    });
    group.finish();
}

criterion_group!(benches, step);
criterion_main!(benches);
