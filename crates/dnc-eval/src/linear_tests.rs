//! Tests of the linear probe: hand-checked SGD updates and behaviour on synthetic classes.

use super::*;
use dnc_core::testing::assert_close;

/// `per_class` points of each of `classes` isotropic Gaussians (unit noise) around means drawn
/// from N(0, 1) per coordinate, so classes are far apart (≈ √(2D)) and linearly separable.
fn gaussian_classes(seed: u64, classes: usize, per_class: usize, d: usize) -> (Tensor, Vec<u32>) {
    let mut means_rng = SeededRng::new(1234);
    let means: Vec<Vec<f64>> = (0..classes)
        .map(|_| (0..d).map(|_| means_rng.normal()).collect())
        .collect();
    let mut rng = SeededRng::new(seed);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..classes * per_class {
        let c = i % classes;
        x.extend(means[c].iter().map(|m| (m + rng.normal()) as f32));
        y.push(c as u32);
    }
    let n = y.len();
    (Tensor::from_vec(x, (n, d), &Device::Cpu).unwrap(), y)
}

fn config(epochs: usize, seed: u64) -> LinearProbeConfig {
    LinearProbeConfig {
        epochs,
        seed,
        ..LinearProbeConfig::default()
    }
}

/// Host reference of the mean cross-entropy gradient: `Xᵀ(softmax(XW + b) − onehot(y)) / B`.
fn reference_grad(
    x: &[Vec<f32>],
    y: &[u32],
    w: &[Vec<f32>],
    b: &[f32],
) -> (Vec<Vec<f64>>, Vec<f64>) {
    let (c, batch) = (b.len(), x.len() as f64);
    let mut gw = vec![vec![0.0; c]; w.len()];
    let mut gb = vec![0.0; c];
    for (xi, &yi) in x.iter().zip(y) {
        let logits: Vec<f64> = (0..c)
            .map(|j| {
                f64::from(b[j])
                    + xi.iter()
                        .zip(w)
                        .map(|(&a, row)| f64::from(a * row[j]))
                        .sum::<f64>()
            })
            .collect();
        let z: f64 = logits.iter().map(|l| l.exp()).sum();
        for j in 0..c {
            let r = logits[j].exp() / z - if j == yi as usize { 1.0 } else { 0.0 };
            gb[j] += r / batch;
            for (k, &a) in xi.iter().enumerate() {
                gw[k][j] += f64::from(a) * r / batch;
            }
        }
    }
    (gw, gb)
}

#[test]
fn sgd_steps_match_hand_computed_updates() {
    let x_rows = vec![vec![1f32, 2.0], vec![3.0, -1.0]];
    let y = [0u32, 1];
    let x = Tensor::new(x_rows.clone(), &Device::Cpu).unwrap();
    let yt = Tensor::new(&y, &Device::Cpu).unwrap();
    let mut sgd = Sgd::new(2, 2, 0.01, &Device::Cpu).unwrap();
    // Step 1 from W = 0: softmax is uniform, so ∇W = Xᵀ(½ − onehot)/2 = [[0.5, −0.5], [−0.75, 0.75]]
    // and ∇b = 0; with lr 0.1, W = [[−0.05, 0.05], [0.075, −0.075]]; the loss is ln 2.
    let loss = sgd.step(&x, &yt, 0.1).unwrap().to_scalar::<f32>().unwrap();
    assert!((f64::from(loss) - 2f64.ln()).abs() < 1e-6);
    let w1 = sgd.w.as_tensor().to_vec2::<f32>().unwrap();
    let expected = Tensor::new(&[[-0.05f32, 0.05], [0.075, -0.075]], &Device::Cpu).unwrap();
    assert_close(sgd.w.as_tensor(), &expected, 1e-7);
    // Step 2: v = 0.9·g1 + (∇2 + wd·W1), W2 = W1 − lr·v, with ∇2 from the host reference.
    let g1 = [[0.5, -0.5], [-0.75, 0.75]];
    let (gw2, gb2) = reference_grad(&x_rows, &y, &w1, &[0.0, 0.0]);
    sgd.step(&x, &yt, 0.05).unwrap();
    let w2 = sgd.w.as_tensor().to_vec2::<f32>().unwrap();
    for r in 0..2 {
        for c in 0..2 {
            let v = MOMENTUM * g1[r][c] + gw2[r][c] + 0.01 * f64::from(w1[r][c]);
            let want = f64::from(w1[r][c]) - 0.05 * v;
            assert!((f64::from(w2[r][c]) - want).abs() < 1e-6, "W[{r}][{c}]");
        }
    }
    let b2 = sgd.b.as_tensor().to_vec1::<f32>().unwrap();
    for c in 0..2 {
        assert!((f64::from(b2[c]) + 0.05 * gb2[c]).abs() < 1e-6, "b[{c}]");
    }
}

#[test]
fn separable_classes_are_learned() {
    let (train, train_y) = gaussian_classes(1, 10, 60, 64);
    let (test, test_y) = gaussian_classes(2, 10, 30, 64);
    let acc = linear_probe_evaluate(&train, &train_y, &test, &test_y, 10, &config(20, 0)).unwrap();
    assert!(acc.top1 >= 0.99, "top-1 {}", acc.top1);
    assert!(acc.per_class.iter().all(|c| c.total == 30));
}

#[test]
fn shuffled_labels_give_chance_accuracy() {
    let (train, mut train_y) = gaussian_classes(1, 10, 60, 64);
    let (test, test_y) = gaussian_classes(2, 10, 100, 64);
    SeededRng::new(9).shuffle(&mut train_y);
    let acc = linear_probe_evaluate(&train, &train_y, &test, &test_y, 10, &config(20, 0)).unwrap();
    // Chance is 0.1; with 1000 test items its standard deviation is about 0.0095.
    assert!((acc.top1 - 0.1).abs() < 0.06, "top-1 {}", acc.top1);
}

#[test]
fn seeded_training_is_reproducible_and_invariant_to_feature_scale() {
    let (train, y) = gaussian_classes(1, 4, 50, 16);
    // Several batches per epoch, so that the seed (the shuffle) matters.
    let fit = |x: &Tensor, seed| {
        let config = LinearProbeConfig {
            batch_size: 32,
            ..config(5, seed)
        };
        LinearProbe::fit(x, &y, 4, &config).unwrap()
    };
    let a = fit(&train, 7);
    assert_close(a.weight(), fit(&train, 7).weight(), 0.0);
    assert!(dnc_core::testing::max_abs_diff(a.weight(), fit(&train, 8).weight()).unwrap() > 1e-6);
    // A per-feature affine map of the inputs is undone by the train-split standardisation.
    let scale = Tensor::arange(1f32, 17.0, &Device::Cpu).unwrap();
    let moved = train
        .broadcast_mul(&scale)
        .unwrap()
        .affine(1.0, -3.0)
        .unwrap();
    assert_close(a.weight(), fit(&moved, 7).weight(), 1e-4);
    assert_eq!(
        a.predict(&train).unwrap(),
        fit(&moved, 7).predict(&moved).unwrap()
    );
    // Training starts at ln 4 ≈ 1.39 (uniform scores) and must get well below it.
    assert!(a.train_loss() < 0.2, "train loss {}", a.train_loss());
}

#[test]
fn bad_inputs_and_divergence_are_errors() {
    let (train, y) = gaussian_classes(1, 2, 20, 4);
    let huge = LinearProbeConfig {
        lr: 1e300,
        batch_size: 8,
        ..config(2, 0)
    };
    assert!(matches!(
        LinearProbe::fit(&train, &y, 2, &huge),
        Err(EvalError::Diverged { epoch: 0, .. })
    ));
    assert!(matches!(
        LinearProbe::fit(&train, &y[1..], 2, &config(1, 0)),
        Err(EvalError::LabelCount { .. })
    ));
    let narrow = train.narrow(1, 0, 3).unwrap();
    assert!(matches!(
        linear_probe_evaluate(&train, &y, &narrow, &y, 2, &config(1, 0)),
        Err(EvalError::DimensionMismatch { .. })
    ));
    let probe = LinearProbe::fit(&train, &y, 2, &config(1, 0)).unwrap();
    assert!(matches!(
        probe.predict(&narrow),
        Err(EvalError::DimensionMismatch {
            left_dim: 4,
            right_dim: 3,
            ..
        })
    ));
}
