use super::*;
use candle_core::Device;

fn matrix(rows: &[&[f32]]) -> Tensor {
    let rows: Vec<Vec<f32>> = rows.iter().map(|r| r.to_vec()).collect();
    Tensor::new(rows, &Device::Cpu).unwrap()
}

fn cluster(c: usize, delta: Option<f64>) -> ClusterKnn {
    ClusterKnn {
        cluster: c,
        n_train: 10,
        n_test: 5,
        base: delta.map(|_| 0.5),
        expert: delta.map(|d| 0.5 + d),
        student: delta.map(|_| 0.4),
        delta,
        baseline: None,
    }
}

#[test]
fn routing_follows_the_metric_of_the_divide() {
    // c0 points along the diagonal, c1 along x and far out. [20, 19] is nearly parallel to c0
    // (cosine 0.9995 vs 0.725) but nearer c1 in distance (461 vs 685 squared).
    let centroids = matrix(&[&[1.0, 1.0], &[10.0, 0.0]]);
    let x = matrix(&[&[20.0, 19.0], &[0.5, 0.6], &[3.0, -0.5]]);
    assert_eq!(route(&x, &centroids, Metric::Cosine).unwrap(), [0, 0, 1]);
    assert_eq!(route(&x, &centroids, Metric::Euclidean).unwrap(), [1, 0, 0]);
    // Cosine routing ignores the scale of a row, as the divide's spherical k-means does.
    let scaled = (x.clone() * 1e-3).unwrap();
    assert_eq!(
        route(&scaled, &centroids, Metric::Cosine).unwrap(),
        [0, 0, 1]
    );
    let none = Tensor::zeros((0, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(route(&none, &centroids, Metric::Cosine).unwrap().is_empty());
    let wide = matrix(&[&[1.0, 2.0, 3.0]]);
    assert!(route(&wide, &centroids, Metric::Cosine).is_err());
}

#[test]
fn members_lists_the_rows_of_each_cluster_in_order() {
    assert_eq!(
        members(&[1, 0, 1, 2, 1], 3),
        vec![vec![1], vec![0, 2, 4], vec![3]]
    );
    assert_eq!(members(&[0, 0], 3), vec![vec![0, 1], vec![], vec![]]);
}

#[test]
fn concatenation_normalises_each_part() {
    let a = matrix(&[&[3.0, 4.0], &[0.0, -2.0]]);
    let b = matrix(&[&[0.0, 0.0, 2.0], &[1.0, 1.0, 1.0]]);
    let c = concat_normalized(&a, &b).unwrap().to_vec2::<f32>().unwrap();
    let s = 1.0 / 3f32.sqrt();
    let want = [[0.6, 0.8, 0.0, 0.0, 1.0], [0.0, -1.0, s, s, s]];
    for (row, want) in c.iter().zip(want) {
        for (got, want) in row.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{row:?}");
        }
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 2f32.sqrt()).abs() < 1e-6, "{norm}");
    }
}

#[test]
fn mean_cosine_is_scale_free_and_averages_rows() {
    let pred = matrix(&[&[5.0, 0.0], &[0.0, 2.0], &[-1.0, 0.0]]);
    let target = matrix(&[&[1.0, 0.0], &[1.0, 0.0], &[1.0, 0.0]]);
    // Cosines 1, 0 and -1.
    let m = mean_cosine(&pred, &target).unwrap().unwrap();
    assert!(m.abs() < 1e-9, "{m}");
    let m = mean_cosine(
        &pred.narrow(0, 0, 2).unwrap(),
        &target.narrow(0, 0, 2).unwrap(),
    );
    assert!((m.unwrap().unwrap() - 0.5).abs() < 1e-9);
    let none = Tensor::zeros((0, 2), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(mean_cosine(&none, &none).unwrap(), None);
}

#[test]
fn head_ids_come_from_the_tensor_names() {
    let names = [
        "backbone.features.0.weight",
        "heads.0.0.weight",
        "heads.2.3.bias",
        "heads.0.1.running_mean",
        "heads.10.0.weight",
        "headsx.1.weight",
        "projector.0.weight",
    ];
    assert_eq!(head_ids(names), [0, 2, 10]);
    assert!(head_ids(["backbone.x"]).is_empty());
}

#[test]
fn experts_are_counted_ahead_of_the_baseline_only_where_both_are_scored() {
    let with = |c: usize, delta: Option<f64>, baseline: Option<f64>| ClusterKnn {
        baseline,
        ..cluster(c, delta)
    };
    // Experts at 0.55, 0.48, 0.51 and none; the baseline at 0.52, 0.47, none and 0.9.
    let clusters = [
        with(0, Some(0.05), Some(0.52)),
        with(1, Some(-0.02), Some(0.47)),
        with(2, Some(0.01), None),
        with(3, None, Some(0.9)),
    ];
    assert_eq!(experts_ahead_of(&clusters, |c| c.baseline), (2, 2));
    let level = [with(0, Some(0.02), Some(0.52))];
    assert_eq!(
        experts_ahead_of(&level, |c| c.baseline),
        (0, 1),
        "a tie is not ahead"
    );
}

#[test]
fn the_verdict_follows_the_numbers() {
    let ahead = [
        cluster(0, Some(0.05)),
        cluster(1, Some(-0.02)),
        cluster(2, Some(0.01)),
        cluster(3, None),
    ];
    assert_eq!(experts_ahead_of(&ahead, |c| c.base), (2, 3));
    let v = verdict(&ahead);
    assert!(v.contains("2 of 3 clusters"), "{v}");
    assert!(v.contains("+1.33 k-NN points"), "{v}");
    assert!(v.contains("has something to give"), "{v}");

    let behind = [
        cluster(0, Some(0.05)),
        cluster(1, Some(-0.02)),
        cluster(2, Some(-0.06)),
    ];
    let v = verdict(&behind);
    assert!(v.contains("only 1 of 3 clusters"), "{v}");
    assert!(v.contains("-1.00 k-NN points"), "{v}");
    assert!(
        v.contains("the divide has nothing to give the student on this run"),
        "{v}"
    );
    // Half is not most; a tie (delta 0) is not a win.
    let v = verdict(&[cluster(0, Some(0.1)), cluster(1, Some(0.0))]);
    assert!(
        v.contains("only 1 of 2") && v.contains("nothing to give"),
        "{v}"
    );
    let v = verdict(&[cluster(0, None)]);
    assert!(v.contains("could not be compared"), "{v}");
}
