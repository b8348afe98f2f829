//! Augmentation of one 32×32 image (the CIFAR recipe) and of one 224×224 image (BYOL's first
//! view, blur included), per operation chain.
//!
//! `cargo bench -p dnc-augment --bench augment`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dnc_augment::{ViewConfig, augment_view};
use dnc_core::SeededRng;
use image::RgbImage;
use std::hint::black_box;

fn noise_image(size: u32, seed: u64) -> RgbImage {
    let mut rng = SeededRng::new(seed);
    RgbImage::from_fn(size, size, |_, _| {
        image::Rgb([
            rng.below(256) as u8,
            rng.below(256) as u8,
            rng.below(256) as u8,
        ])
    })
}

fn views(c: &mut Criterion) {
    let mut group = c.benchmark_group("augment_view");
    group.throughput(Throughput::Elements(1));
    for (name, image, cfg) in [
        ("cifar_32", noise_image(32, 1), ViewConfig::cifar()),
        (
            "byol_view1_224",
            noise_image(256, 2),
            ViewConfig::byol_view1(224),
        ),
    ] {
        let mut rng = SeededRng::new(7);
        group.bench_function(name, |bench| {
            bench.iter(|| black_box(augment_view(&image, &cfg, &mut rng)))
        });
    }
    group.finish();
}

criterion_group!(benches, views);
criterion_main!(benches);
