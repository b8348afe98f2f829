//! Tests of the few-label draws and probes.

use super::*;
use crate::error::ParamError;
use candle_core::Device;

/// Labels with class sizes 100, 50, 7, 1, none for class 4, and 30, interleaved.
fn uneven_labels() -> Vec<u32> {
    let sizes = [100usize, 50, 7, 1, 0, 30];
    let mut labels: Vec<u32> = sizes
        .iter()
        .enumerate()
        .flat_map(|(c, &n)| std::iter::repeat_n(c as u32, n))
        .collect();
    SeededRng::new(5).shuffle(&mut labels);
    labels
}

fn class_counts(labels: &[u32], subset: &[usize]) -> Vec<usize> {
    let mut counts = vec![0; 6];
    for &i in subset {
        counts[labels[i] as usize] += 1;
    }
    counts
}

#[test]
fn draws_are_class_balanced_with_at_least_one_per_class() {
    let labels = uneven_labels();
    // round(f · n_c), at least 1 for every class with items: 0.7 → 1, 0.5 → 1, 0.3 → 1.
    for (fraction, want) in [
        (0.1, [10, 5, 1, 1, 0, 3]),
        (0.01, [1, 1, 1, 1, 0, 1]),
        (0.5, [50, 25, 4, 1, 0, 15]),
        (1.0, [100, 50, 7, 1, 0, 30]),
    ] {
        let subset = few_label_subset(&labels, fraction, 0, 0).unwrap();
        assert_eq!(class_counts(&labels, &subset), want, "fraction {fraction}");
        assert!(subset.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert!(subset.iter().all(|&i| i < labels.len()));
    }
    assert!(few_label_subset(&[], 0.1, 0, 0).unwrap().is_empty());
}

#[test]
fn draws_are_reproducible_per_seed_differ_across_draws_and_nest() {
    let labels = uneven_labels();
    let draw = |fraction, seed, d| few_label_subset(&labels, fraction, seed, d).unwrap();
    let draws: Vec<_> = (0..3).map(|d| draw(0.1, 7, d)).collect();
    for (d, subset) in draws.iter().enumerate() {
        assert_eq!(*subset, draw(0.1, 7, d), "draw {d} is reproducible");
    }
    assert_ne!(draws[0], draws[1]);
    assert_ne!(draws[1], draws[2]);
    assert_ne!(draws[0], draws[2]);
    assert_ne!(draws[0], draw(0.1, 8, 0), "another seed, another subset");
    // A smaller fraction's subset lies inside a larger one's of the same draw.
    let small = draw(0.01, 7, 1);
    assert!(small.iter().all(|i| draws[1].contains(i)));
}

#[test]
fn bad_fractions_are_parameter_errors() {
    for bad in [0.0, -0.5, 1.01, f64::NAN] {
        let err = few_label_subset(&[0, 1], bad, 0, 0).unwrap_err();
        assert!(
            matches!(err, EvalError::Params(ParamError::FewLabelFraction(_))),
            "{bad}: {err}"
        );
    }
}

/// `per_class` points of each class around `6·e_c` (one axis per class) with noise of 0.3 per
/// coordinate: far apart, so one labelled point per class is enough.
fn separated_clusters(seed: u64, classes: usize, per_class: usize) -> (Tensor, Vec<u32>) {
    let d = classes;
    let mut rng = SeededRng::new(seed);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..classes * per_class {
        let c = i % classes;
        x.extend((0..d).map(|k| (if k == c { 6.0 } else { 0.0 } + 0.3 * rng.normal()) as f32));
        y.push(c as u32);
    }
    let n = y.len();
    (Tensor::from_vec(x, (n, d), &Device::Cpu).unwrap(), y)
}

#[test]
fn one_label_per_class_suffices_on_separated_clusters() {
    let (train, train_y) = separated_clusters(1, 10, 20);
    let (test, test_y) = separated_clusters(2, 10, 30);
    let config = LinearProbeConfig {
        epochs: 20,
        few_label_fractions: vec![0.05, 0.5],
        ..LinearProbeConfig::default()
    };
    let scores = few_label_probe_evaluate(&train, &train_y, &test, &test_y, 10, &config).unwrap();
    assert_eq!(scores.len(), 2);
    assert_eq!((scores[0].fraction, scores[0].items), (0.05, 10));
    assert_eq!((scores[1].fraction, scores[1].items), (0.5, 100));
    for s in &scores {
        assert_eq!((s.draws, s.top1_per_draw.len()), (3, 3));
        assert!(s.top1_per_draw.iter().all(|&t| t >= 0.95), "{s:?}");
        let mean = s.top1_per_draw.iter().sum::<f64>() / 3.0;
        assert!((s.top1_mean - mean).abs() < 1e-12);
    }
    assert_eq!(
        (scores[0].percent(), scores[1].percent()),
        ("5%".into(), "50%".into())
    );
    let json = serde_json::to_string(&scores[0]).unwrap();
    assert_eq!(
        serde_json::from_str::<FewLabelScore>(&json).unwrap(),
        scores[0]
    );
}

#[test]
fn percent_labels_read_as_written() {
    let label = |fraction| {
        FewLabelScore {
            fraction,
            draws: 1,
            items: 1,
            top1_mean: 0.0,
            top1_per_draw: vec![0.0],
        }
        .percent()
    };
    assert_eq!(label(0.01), "1%");
    assert_eq!(label(0.1), "10%");
    assert_eq!(label(0.07), "7%");
    assert_eq!(label(0.005), "0.5%");
    assert_eq!(label(1.0), "100%");
}

#[test]
fn bad_inputs_are_errors() {
    let (train, y) = separated_clusters(1, 3, 4);
    let config = LinearProbeConfig::default();
    assert!(matches!(
        few_label_probe_evaluate(&train, &y[1..], &train, &y, 3, &config),
        Err(EvalError::LabelCount { .. })
    ));
    let zero = LinearProbeConfig {
        few_label_draws: 0,
        ..config
    };
    assert!(matches!(
        few_label_probe_evaluate(&train, &y, &train, &y, 3, &zero),
        Err(EvalError::Params(ParamError::ZeroFewLabelDraws))
    ));
}

#[test]
fn few_label_probes_take_the_full_probes_steps() {
    let config = LinearProbeConfig {
        epochs: 30,
        batch_size: 256,
        ..LinearProbeConfig::default()
    };
    // 10,000 rows: 40 batches an epoch, 1,200 steps in all.
    assert_eq!(epochs_for_equal_steps(&config, 10_000, 103), 1_200);
    assert_eq!(epochs_for_equal_steps(&config, 10_000, 1_002), 300);
    assert_eq!(epochs_for_equal_steps(&config, 10_000, 10_000), 30);
    assert_eq!(epochs_for_equal_steps(&config, 100, 10), 30);
}
