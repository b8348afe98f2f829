//! `batch_norm_train` forward and backward against the same computation from candle ops, and
//! the fused residual tail `batch_norm_add_relu_train` and stage tail
//! `batch_norm_relu_max_pool2x2_train` against the chained ops.
//!
//! `cargo bench -p dnc-kernels --bench batch_norm [-- FILTER]`; compare only runs made back to
//! back, the machine is shared.

mod common;

use candle_core::{Result, Tensor, Var};
use common::{CASES, configure, rand};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dnc_kernels::{
    batch_norm_add_relu_train, batch_norm_relu_max_pool2x2_train, batch_norm_relu_train,
    batch_norm_train, max_pool2d, relu,
};
use std::hint::black_box;

/// Training-mode batch norm from candle ops on a free `[N, C, L]` view: per-channel mean and
/// biased variance, then one scale and shift (as a model without fused kernels computes it).
fn composed(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (n, c) = (dims[0], dims[1]);
    let xs = x.reshape((n, c, ()))?;
    let count = xs.elem_count() as f64 / c as f64;
    let mean = (xs.sum_keepdim(2)?.sum_keepdim(0)? / count)?;
    let centred = xs.broadcast_sub(&mean)?;
    let var = (centred.sqr()?.sum_keepdim(2)?.sum_keepdim(0)? / count)?;
    let scale = w
        .reshape((1, c, 1))?
        .broadcast_div(&(var + 1e-5)?.sqrt()?)?;
    let shift = b
        .reshape((1, c, 1))?
        .broadcast_sub(&mean.broadcast_mul(&scale)?)?;
    xs.broadcast_mul(&scale)?
        .broadcast_add(&shift)?
        .reshape(dims)
}

type BnFn = fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>;

const IMPLS: [(&str, BnFn); 2] = [
    ("dnc", |x, w, b| Ok(batch_norm_train(x, w, b, 1e-5)?.0)),
    ("candle", composed),
];

/// The convolution cases' outputs are the batch-norm inputs.
fn input_dims(x: [usize; 4], out_channels: usize) -> [usize; 4] {
    [x[0], out_channels, x[2], x[3]]
}

fn forward(c: &mut Criterion) {
    for case in &CASES {
        let dims = input_dims(case.x, case.out_channels);
        let x = rand(1, &dims).unwrap();
        let (w, b) = (rand(2, &dims[1..2]).unwrap(), rand(3, &dims[1..2]).unwrap());
        let mut group = c.benchmark_group(format!("bn_forward/{}", case.name));
        configure(&mut group);
        group.throughput(Throughput::Elements(x.elem_count() as u64));
        for (name, f) in IMPLS {
            group.bench_function(name, |bch| bch.iter(|| black_box(f(&x, &w, &b).unwrap())));
        }
        group.finish();
    }
}

fn backward(c: &mut Criterion) {
    for case in &CASES {
        let dims = input_dims(case.x, case.out_channels);
        let x = Var::from_tensor(&rand(1, &dims).unwrap()).unwrap();
        let w = Var::from_tensor(&rand(2, &dims[1..2]).unwrap()).unwrap();
        let b = Var::from_tensor(&rand(3, &dims[1..2]).unwrap()).unwrap();
        let mut group = c.benchmark_group(format!("bn_backward/{}", case.name));
        configure(&mut group);
        group.throughput(Throughput::Elements(x.elem_count() as u64));
        for (name, f) in IMPLS {
            // Differentiated with candle's all-ones seed gradient, as in the conv benchmark.
            let y = f(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap();
            group.bench_function(name, |bch| bch.iter(|| black_box(y.backward().unwrap())));
        }
        group.finish();
    }
}

/// `relu(bn(x) + r)` forward and backward: one fused op against batch norm, an add and a ReLU.
fn residual_tail(c: &mut Criterion) {
    type TailFn = fn(&Tensor, &Tensor, &Tensor, &Tensor) -> Result<Tensor>;
    let impls: [(&str, TailFn); 2] = [
        ("fused", |x, w, b, r| {
            Ok(batch_norm_add_relu_train(x, w, b, r, 1e-5)?.0)
        }),
        ("chained", |x, w, b, r| {
            relu(&(batch_norm_train(x, w, b, 1e-5)?.0 + r)?)
        }),
    ];
    for case in &CASES {
        let dims = input_dims(case.x, case.out_channels);
        let x = Var::from_tensor(&rand(1, &dims).unwrap()).unwrap();
        let w = Var::from_tensor(&rand(2, &dims[1..2]).unwrap()).unwrap();
        let b = Var::from_tensor(&rand(3, &dims[1..2]).unwrap()).unwrap();
        let r = Var::from_tensor(&rand(4, &dims).unwrap()).unwrap();
        let mut group = c.benchmark_group(format!("bn_add_relu_fwd_bwd/{}", case.name));
        configure(&mut group);
        group.throughput(Throughput::Elements(x.elem_count() as u64));
        for (name, f) in impls {
            group.bench_function(name, |bch| {
                bch.iter(|| {
                    let y = f(x.as_tensor(), w.as_tensor(), b.as_tensor(), r.as_tensor()).unwrap();
                    black_box(y.backward().unwrap())
                })
            });
        }
        group.finish();
    }
}

/// `max_pool2d(relu(bn(x)), 2)` forward and backward: one fused op against batch norm + ReLU and
/// a max pool.
fn stage_tail(c: &mut Criterion) {
    let impls: [(&str, BnFn); 2] = [
        ("fused", |x, w, b| {
            Ok(batch_norm_relu_max_pool2x2_train(x, w, b, 1e-5)?.0)
        }),
        ("chained", |x, w, b| {
            max_pool2d(&batch_norm_relu_train(x, w, b, 1e-5)?.0, 2, 2, 0)
        }),
    ];
    for case in &CASES {
        let dims = input_dims(case.x, case.out_channels);
        let x = Var::from_tensor(&rand(1, &dims).unwrap()).unwrap();
        let w = Var::from_tensor(&rand(2, &dims[1..2]).unwrap()).unwrap();
        let b = Var::from_tensor(&rand(3, &dims[1..2]).unwrap()).unwrap();
        let mut group = c.benchmark_group(format!("bn_relu_pool_fwd_bwd/{}", case.name));
        configure(&mut group);
        group.throughput(Throughput::Elements(x.elem_count() as u64));
        for (name, f) in impls {
            group.bench_function(name, |bch| {
                bch.iter(|| {
                    let y = f(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap();
                    black_box(y.backward().unwrap())
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, forward, backward, residual_tail, stage_tail);
criterion_main!(benches);
