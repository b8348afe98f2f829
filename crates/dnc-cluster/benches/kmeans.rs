//! k-means fit time on N = 50,000 points: D ∈ {128, 4096}, K ∈ {10, 100}, exactly 20 Lloyd
//! iterations (tol = 0), random initialisation as faiss does, Euclidean (faiss's metric) and
//! cosine. Reference on a 2-core machine: faiss-cpu takes about 0.22 s (K = 10) and 0.29 s
//! (K = 100) at D = 128.
//!
//! `cargo bench -p dnc-cluster` (criterion's minimum of 10 samples per case keeps the whole run
//! to a few minutes; the D = 4096, K = 100 case dominates).

use candle_core::{Device, Tensor};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dnc_cluster::{InitMethod, KMeansConfig, Metric, fit};
use dnc_core::SeededRng;
use std::time::Duration;

const N: usize = 50_000;
const ITERATIONS: usize = 20;

/// Standard normal data: no structure, so Lloyd never converges early.
fn data(d: usize) -> Tensor {
    let mut rng = SeededRng::new(d as u64);
    let v: Vec<f32> = (0..N * d).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(v, (N, d), &Device::Cpu).expect("bench data")
}

fn config(k: usize, metric: Metric) -> KMeansConfig {
    KMeansConfig {
        n_clusters: k,
        metric,
        init: InitMethod::Random,
        max_iter: ITERATIONS,
        tol: 0.0,
        ..KMeansConfig::default()
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("kmeans_fit_n50000_iter20");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    for d in [128, 4096] {
        let x = data(d);
        for k in [10, 100] {
            let metrics: &[Metric] = if d == 128 {
                &[Metric::Euclidean, Metric::Cosine]
            } else {
                &[Metric::Euclidean]
            };
            for &metric in metrics {
                let cfg = config(k, metric);
                let fitted = fit(&x, &cfg).expect("fit");
                assert_eq!(
                    fitted.model.n_iter, ITERATIONS,
                    "the bench needs a fixed iteration count"
                );
                let id =
                    BenchmarkId::new(format!("{metric:?}").to_lowercase(), format!("d{d}_k{k}"));
                group.bench_with_input(id, &cfg, |b, cfg| b.iter(|| fit(&x, cfg).expect("fit")));
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
