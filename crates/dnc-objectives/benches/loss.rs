//! MoCLR and NT-Xent losses, forward and backward, at a CIFAR-sized batch (B = 256, D = 128).
//!
//! `cargo bench -p dnc-objectives --bench loss`

use candle_core::{Device, Tensor, Var};
use criterion::{Criterion, criterion_group, criterion_main};
use dnc_core::{SeededRng, l2_normalize};
use dnc_objectives::{moclr_loss, nt_xent};
use std::hint::black_box;

fn unit_rows(seed: u64, b: usize, d: usize) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let v: Vec<f32> = (0..b * d).map(|_| rng.normal() as f32).collect();
    l2_normalize(&Tensor::from_vec(v, (b, d), &Device::Cpu).unwrap()).unwrap()
}

fn losses(c: &mut Criterion) {
    let (b, d) = (256, 128);
    let q1 = Var::from_tensor(&unit_rows(1, b, d)).unwrap();
    let q2 = Var::from_tensor(&unit_rows(2, b, d)).unwrap();
    let (k1, k2) = (unit_rows(3, b, d), unit_rows(4, b, d));
    let mut group = c.benchmark_group("loss_b256_d128");
    group.sample_size(30);
    group.bench_function("moclr_forward_backward", |bench| {
        bench.iter(|| {
            let loss = moclr_loss(q1.as_tensor(), q2.as_tensor(), &k1, &k2, 0.1).unwrap();
            black_box(loss.backward().unwrap());
        })
    });
    group.bench_function("nt_xent_forward_backward", |bench| {
        bench.iter(|| {
            let loss = nt_xent(q1.as_tensor(), q2.as_tensor(), 0.1).unwrap();
            black_box(loss.backward().unwrap());
        })
    });
    group.finish();
}

criterion_group!(benches, losses);
criterion_main!(benches);
