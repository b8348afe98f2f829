//! `conv2d` forward and backward, this crate's kernels against candle's own convolution.
//!
//! `cargo bench -p dnc-kernels --bench conv [-- FILTER]`; compare only runs made back to back,
//! the machine is shared.

mod common;

use candle_core::{Result, Tensor, Var};
use common::{CASES, configure, rand};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dnc_kernels::{Conv2dGeometry, conv2d};
use std::hint::black_box;

type ConvFn = fn(&Tensor, &Tensor) -> Result<Tensor>;

const IMPLS: [(&str, ConvFn); 2] = [
    ("dnc", |x, w| conv2d(x, w, 1, 1)),
    ("candle", |x, w| x.conv2d(w, 1, 1, 1, 1)),
];

fn forward(c: &mut Criterion) {
    for case in &CASES {
        let w_dims = [case.out_channels, case.x[1], 3, 3];
        let geo = Conv2dGeometry::new(&case.x, &w_dims, 1, 1).unwrap();
        let (x, w) = (rand(1, &case.x).unwrap(), rand(2, &w_dims).unwrap());
        let mut group = c.benchmark_group(format!("conv_forward/{}", case.name));
        configure(&mut group);
        group.throughput(Throughput::Elements(geo.forward_flops() as u64));
        for (name, f) in IMPLS {
            group.bench_function(name, |b| b.iter(|| black_box(f(&x, &w).unwrap())));
        }
        group.finish();
    }
}

/// The backward pass alone: `y` is built once, then differentiated repeatedly with candle's
/// all-ones seed gradient (the least candle bookkeeping around the op's own backward).
fn backward(c: &mut Criterion) {
    for case in &CASES {
        let w_dims = [case.out_channels, case.x[1], 3, 3];
        let geo = Conv2dGeometry::new(&case.x, &w_dims, 1, 1).unwrap();
        let x = Var::from_tensor(&rand(1, &case.x).unwrap()).unwrap();
        let w = Var::from_tensor(&rand(2, &w_dims).unwrap()).unwrap();
        let mut group = c.benchmark_group(format!("conv_backward/{}", case.name));
        configure(&mut group);
        group.throughput(Throughput::Elements(2 * geo.forward_flops() as u64));
        for (name, f) in IMPLS {
            let y = f(x.as_tensor(), w.as_tensor()).unwrap();
            group.bench_function(name, |b| b.iter(|| black_box(y.backward().unwrap())));
        }
        group.finish();
    }
}

criterion_group!(benches, forward, backward);
criterion_main!(benches);
