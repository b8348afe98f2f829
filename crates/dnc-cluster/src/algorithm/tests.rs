//! End-to-end tests of `fit`: recovery, exactness against brute force, monotonicity, determinism,
//! chunking, empty-cluster repair, sampling, restarts and every bad input.

use super::*;
use crate::params::{InitMethod, Metric};
use crate::{ari, gaussian_blobs};
use candle_core::{DType, Device};

fn cfg(k: usize, metric: Metric) -> KMeansConfig {
    KMeansConfig {
        n_clusters: k,
        metric,
        ..KMeansConfig::default()
    }
}

/// Unstructured data: k-means takes many small steps on it.
fn noise(n: usize, d: usize, seed: u64) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let v: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(v, (n, d), &Device::Cpu).unwrap()
}

/// Largest absolute difference between two f32 tensors of one shape.
fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Nearest centroid of every row by a plain f64 loop, and the summed squared distance.
fn brute_force(data: &Tensor, centroids: &Tensor, metric: Metric) -> (Vec<u32>, f64) {
    let x = data.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
    let c = centroids
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    let mut labels = Vec::new();
    let mut total = 0.0;
    for row in x {
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        let p: Vec<f64> = match metric {
            Metric::Cosine => row.iter().map(|v| v / norm).collect(),
            Metric::Euclidean => row,
        };
        let d2 = |c: &Vec<f64>| p.iter().zip(c).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
        let (j, best) = c
            .iter()
            .map(d2)
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        labels.push(j as u32);
        total += best;
    }
    (labels, total)
}

#[test]
fn recovers_planted_blobs_in_both_metrics() {
    let (x, truth) = gaussian_blobs(3000, 8, 5, 1.0, 11, &Device::Cpu).unwrap();
    for metric in [Metric::Euclidean, Metric::Cosine] {
        let f = fit(&x, &cfg(5, metric)).unwrap();
        let score = ari(&truth, &f.assignments).unwrap();
        assert!(score > 0.99, "{metric:?}: ARI {score}");
        assert!(f.model.converged && f.model.n_iter < 100, "{metric:?}");
        assert_eq!(f.sizes.iter().sum::<usize>(), 3000);
        assert_eq!(f.sizes, crate::cluster_sizes(&f.assignments, 5).unwrap());
    }
}

#[test]
fn data_far_from_the_origin_keeps_exact_euclidean_assignments() {
    // Blobs shifted by 3·10⁴ in every coordinate: ‖x‖² ≈ 7·10⁹, so f32 products of raw points
    // and centroids would lose every digit of the distance gaps; centring keeps them.
    let (x, truth) = gaussian_blobs(2000, 8, 4, 1.0, 12, &Device::Cpu).unwrap();
    let x = (x + 3.0e4).unwrap();
    let f = fit(&x, &cfg(4, Metric::Euclidean)).unwrap();
    assert!(ari(&truth, &f.assignments).unwrap() > 0.99);
    let (labels, total) = brute_force(&x, &f.model.centroids, Metric::Euclidean);
    assert_eq!(f.assignments, labels);
    // Within-cluster variance is 1 per coordinate: inertia ≈ 2000 · 8. The f32 products
    // `x·(c − μ)` still carry an error of about 10⁻⁷·‖x‖·‖c − μ‖ per point, ≲ 1% of the total here.
    assert!(
        (f.model.inertia - total).abs() < 1e-2 * total,
        "{} vs {total}",
        f.model.inertia
    );
    assert!((total / 16_000.0 - 1.0).abs() < 0.1, "{total}");
    assert_eq!(f.model.predict(&x).unwrap(), labels);
}

#[test]
fn assignments_and_inertia_equal_brute_force() {
    let x = noise(500, 6, 1);
    for metric in [Metric::Euclidean, Metric::Cosine] {
        let f = fit(&x, &cfg(7, metric)).unwrap();
        let (labels, total) = brute_force(&x, &f.model.centroids, metric);
        assert_eq!(f.assignments, labels, "{metric:?}");
        assert!(
            (f.model.inertia - total).abs() < 1e-4 * total,
            "{} vs {total}",
            f.model.inertia
        );
        assert_eq!(f.model.predict(&x).unwrap(), labels);
        if metric == Metric::Cosine {
            let norms = f
                .model
                .centroids
                .sqr()
                .unwrap()
                .sum(1)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
        }
    }
}

#[test]
fn inertia_never_increases() {
    let x = noise(800, 5, 2);
    for metric in [Metric::Euclidean, Metric::Cosine] {
        let c = KMeansConfig {
            tol: 0.0,
            max_iter: 60,
            init: InitMethod::Random,
            ..cfg(12, metric)
        };
        let f = fit(&x, &c).unwrap();
        let h = &f.model.inertia_history;
        assert_eq!(h.len(), f.model.n_iter + 1);
        assert!(
            f.model.n_iter > 5,
            "{metric:?}: only {} iterations",
            f.model.n_iter
        );
        for w in h.windows(2) {
            assert!(
                w[1] <= w[0] * (1.0 + 1e-6),
                "{metric:?}: {} after {}",
                w[1],
                w[0]
            );
        }
        assert!(h[h.len() - 1] < 0.95 * h[0], "{metric:?}: {h:?}");
        assert_eq!(h[h.len() - 1], f.model.inertia);
    }
}

#[test]
fn same_seed_same_result() {
    let x = noise(400, 4, 3);
    let c = KMeansConfig {
        n_init: 2,
        ..cfg(6, Metric::Cosine)
    };
    let (a, b) = (fit(&x, &c).unwrap(), fit(&x, &c).unwrap());
    assert_eq!(a.assignments, b.assignments);
    assert_eq!(a.model.inertia_history, b.model.inertia_history);
    let ca = a.model.centroids.to_vec2::<f32>().unwrap();
    assert_eq!(ca, b.model.centroids.to_vec2::<f32>().unwrap());
    let other = fit(&x, &KMeansConfig { seed: 9, ..c }).unwrap();
    assert_ne!(other.model.centroids.to_vec2::<f32>().unwrap(), ca);
}

#[test]
fn chunking_and_kernel_choice_do_not_change_the_result() {
    let x = noise(300, 5, 4);
    for metric in [Metric::Euclidean, Metric::Cosine] {
        let whole = fit(&x, &cfg(6, metric)).unwrap();
        // 64 bytes per chunk: a handful of rows at a time on every pass.
        let tiny = KMeansConfig {
            chunk_bytes: 64,
            ..cfg(6, metric)
        };
        let chunked = fit(&x, &tiny).unwrap();
        assert_eq!(whole.assignments, chunked.assignments, "{metric:?}");
        assert_eq!(whole.model.n_iter, chunked.model.n_iter);
        // f64 input goes through the tensor-op kernels (device path) instead of the host ones.
        let x64 = x.to_dtype(DType::F64).unwrap();
        let tensor_path = fit(&x64, &tiny).unwrap();
        assert_eq!(whole.assignments, tensor_path.assignments, "{metric:?}");
        let diff = max_abs_diff(&whole.model.centroids, &tensor_path.model.centroids);
        assert!(diff < 1e-5, "{metric:?}: centroids differ by {diff}");
    }
}

#[test]
fn empty_clusters_are_reseeded() {
    // Two tight groups and one outlier; K = 3 starting from two identical centroids and one far
    // away: after the first assignment one cluster is empty and must be re-seeded from the point
    // farthest from its centroid (the outlier), which gives the optimal clustering.
    let mut rows = vec![[0f32, 0.0]; 10];
    rows.extend(vec![[10.0, 0.0]; 10]);
    rows.push([5.0, 40.0]);
    let x = Tensor::from_vec(rows.concat(), (21, 2), &Device::Cpu).unwrap();
    let points = Points::prepare(&x, Metric::Euclidean, 1 << 20, 3).unwrap();
    let init = vec![5.0, 0.0, 5.0, 0.0, -100.0, -100.0];
    let c = KMeansConfig {
        tol: 0.0,
        ..cfg(3, Metric::Euclidean)
    };
    let run = iterate(&points, &c, 0.0, init, 0).unwrap();
    let sizes = counts(&run.assignment.labels, 3);
    let mut sorted = sizes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![1, 10, 10], "{sizes:?}");
    assert_eq!(run.assignment.inertia(), 0.0);
    assert!(
        run.history.windows(2).all(|w| w[1] <= w[0]),
        "{:?}",
        run.history
    );
    // Without repair the third centroid would stay at (−100, −100) and own nothing.
    assert!(
        run.centroids.host.iter().all(|v| *v >= 0.0),
        "{:?}",
        run.centroids.host
    );
}

#[test]
fn fit_on_a_sample_then_assign_everything() {
    let (x, truth) = gaussian_blobs(4000, 6, 4, 1.0, 5, &Device::Cpu).unwrap();
    let c = KMeansConfig {
        sample_size: Some(400),
        ..cfg(4, Metric::Cosine)
    };
    let f = fit(&x, &c).unwrap();
    assert_eq!(f.assignments.len(), 4000);
    assert!(ari(&truth, &f.assignments).unwrap() > 0.99);
    let (labels, total) = brute_force(&x, &f.model.centroids, Metric::Cosine);
    assert_eq!(f.assignments, labels);
    assert!((f.model.inertia - total).abs() < 1e-4 * total);
    // The history is measured on the 400-point sample: about a tenth of the full inertia.
    let last = f.model.inertia_history[f.model.n_iter];
    assert!(
        last < 0.2 * f.model.inertia,
        "{last} vs {}",
        f.model.inertia
    );
    // A sample as large as the data is the same as no sample.
    let all = KMeansConfig {
        sample_size: Some(4000),
        ..c
    };
    let plain = KMeansConfig {
        sample_size: None,
        ..c
    };
    assert_eq!(
        fit(&x, &all).unwrap().assignments,
        fit(&x, &plain).unwrap().assignments
    );
}

#[test]
fn restarts_keep_the_lowest_inertia() {
    let x = noise(300, 3, 6);
    let one = KMeansConfig {
        init: InitMethod::Random,
        ..cfg(10, Metric::Euclidean)
    };
    let four = KMeansConfig {
        n_init: 4,
        ..one.clone()
    };
    let (a, b) = (fit(&x, &one).unwrap(), fit(&x, &four).unwrap());
    // Restart 0 of the four is the single run; the kept one can only be as good or better.
    assert!(
        b.model.inertia <= a.model.inertia,
        "{} > {}",
        b.model.inertia,
        a.model.inertia
    );
}

#[test]
fn edge_cases_k_equals_n_and_half_precision() {
    let x = noise(5, 3, 7);
    let f = fit(&x, &cfg(5, Metric::Euclidean)).unwrap();
    assert_eq!(f.sizes, vec![1; 5]);
    // Every point is its own centroid. `‖x‖² + ‖c‖² − 2·x·c` cancels to f32 rounding, a few
    // 1e-7 of `‖x‖²` (about 3 here) per point, not to 0; a wrong assignment would cost about 6.
    assert!(f.model.inertia < 1e-5, "{}", f.model.inertia);
    let (x, truth) = gaussian_blobs(600, 4, 3, 0.5, 8, &Device::Cpu).unwrap();
    let f16 = fit(&x.to_dtype(DType::F16).unwrap(), &cfg(3, Metric::Euclidean)).unwrap();
    assert!(ari(&truth, &f16.assignments).unwrap() > 0.99);
    let one = fit(
        &x,
        &KMeansConfig {
            max_iter: 1,
            ..cfg(3, Metric::Euclidean)
        },
    )
    .unwrap();
    assert_eq!(one.model.n_iter, 1);
    assert_eq!(one.model.inertia_history.len(), 2);
}

#[test]
fn bad_inputs_are_typed_errors_with_values() {
    let x = noise(4, 3, 8);
    let msg = |r: Result<KMeansFit>| r.unwrap_err().to_string();
    assert_eq!(
        msg(fit(&x, &cfg(0, Metric::Cosine))),
        "invalid k-means parameter: n_clusters must be at least 1, got 0"
    );
    assert_eq!(
        msg(fit(&x, &cfg(5, Metric::Cosine))),
        "n_clusters = 5 is larger than the number of points N = 4"
    );
    let mut v = x.to_vec2::<f32>().unwrap();
    v[2][1] = f32::NAN;
    let bad = Tensor::new(v.clone(), &Device::Cpu).unwrap();
    let err = fit(&bad, &cfg(2, Metric::Cosine)).unwrap_err();
    assert!(
        matches!(err, KMeansError::NonFinite { row: 2, col: 1, .. }),
        "{err}"
    );
    v[2][1] = f32::INFINITY;
    let bad = Tensor::new(v, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    assert!(msg(fit(&bad, &cfg(2, Metric::Euclidean))).contains("row 2, column 1 holds inf"));
    let flat = x.flatten_all().unwrap();
    assert!(msg(fit(&flat, &cfg(2, Metric::Cosine))).contains("got shape [12]"));
    let f = fit(&x, &cfg(2, Metric::Cosine)).unwrap();
    let wide = noise(3, 4, 9);
    let err = f.model.predict(&wide).unwrap_err();
    assert!(
        matches!(
            err,
            KMeansError::DimensionMismatch {
                expected: 3,
                got: 4
            }
        ),
        "{err}"
    );
    assert!(err.is_bad_input());
    let c = KMeansConfig {
        sample_size: Some(1),
        ..cfg(2, Metric::Cosine)
    };
    assert!(msg(fit(&x, &c)).contains("sample_size = 1 is smaller than n_clusters = 2"));
}

#[test]
fn the_result_does_not_depend_on_the_thread_count() {
    // Enough rows for several kernel blocks and chunks, and D with a SIMD tail.
    let x = noise(3000, 37, 11);
    for metric in [Metric::Euclidean, Metric::Cosine] {
        let cfg = KMeansConfig {
            max_iter: 8,
            chunk_bytes: 64 << 10,
            ..cfg(12, metric)
        };
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| fit(&x, &cfg).unwrap())
        };
        let (one, three) = (on(1), on(3));
        assert_eq!(one.assignments, three.assignments, "{metric:?}");
        assert_eq!(one.distances, three.distances, "{metric:?}");
        let centroids = |f: &KMeansFit| f.model.centroids.to_vec2::<f32>().unwrap();
        assert_eq!(centroids(&one), centroids(&three), "{metric:?}");
    }
}

#[test]
fn converged_centroids_are_the_means_of_their_clusters() {
    // Each Lloyd pass updates the previous pass's sums from the points that changed cluster.
    // Run to convergence on unstructured data (many passes, many moves), the centroids must
    // still be the means (mean directions) of the clusters, as sums taken afresh give them.
    // D = 200 also sums whole register groups of 64 columns (with up to 3 threads).
    for (metric, d) in [
        (Metric::Euclidean, 16),
        (Metric::Cosine, 16),
        (Metric::Euclidean, 200),
        (Metric::Cosine, 200),
    ] {
        let x = noise(2000, d, 8);
        // Chunks of 4 KiB: every pass crosses many chunk boundaries.
        let c = KMeansConfig {
            tol: 0.0,
            max_iter: 500,
            chunk_bytes: 4096,
            ..cfg(20, metric)
        };
        let f = fit(&x, &c).unwrap();
        assert!(
            f.model.converged && f.model.n_iter > 10,
            "{metric:?} {d}: {}",
            f.model.n_iter
        );
        let means = crate::centroids_of(&x, &f.assignments, 20, metric).unwrap();
        let diff = max_abs_diff(&f.model.centroids, &means);
        assert!(
            diff < 1e-5,
            "{metric:?} {d}: centroids differ from the means by {diff}"
        );
    }
}
