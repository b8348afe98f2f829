//! Optimiser steps against hand-computed updates.

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};

use super::*;
use crate::optim::lars::trust_ratio;

const V: [f64; 4] = [1.0, 2.0, 3.0, 4.0];

/// `w = [[1, 2], [3, 4]]` (rank 2, decayed) and `b = [1, −1]` (rank 1, not decayed), with
/// gradients `0.1·w₀` and `[0.5, 0.5]` (the same at every step).
fn setup() -> (Vec<(String, Var)>, GradStore) {
    let dev = Device::Cpu;
    let w = Var::new(&[[1.0f64, 2.0], [3.0, 4.0]], &dev).unwrap();
    let b = Var::new(&[1.0f64, -1.0], &dev).unwrap();
    let mut grads = GradStore::default();
    grads.insert(&w, Tensor::new(&[[0.1f64, 0.2], [0.3, 0.4]], &dev).unwrap());
    grads.insert(&b, Tensor::new(&[0.5f64, 0.5], &dev).unwrap());
    (vec![("w".into(), w), ("b".into(), b)], grads)
}

fn values(var: &Var) -> Vec<f64> {
    var.flatten_all().unwrap().to_vec1().unwrap()
}

#[track_caller]
fn assert_values(var: &Var, expected: &[f64]) {
    let got = values(var);
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() < 1e-12, "{got:?} vs {expected:?}");
    }
}

fn sgd(nesterov: bool) -> Sgd {
    Sgd::new(SgdConfig {
        base_lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.01,
        nesterov,
    })
    .unwrap()
}

fn lars() -> Lars {
    Lars::new(LarsConfig {
        base_lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.01,
        eta: 0.001,
    })
    .unwrap()
}

#[test]
fn sgd_momentum_matches_hand_computed_steps() {
    let (params, grads) = setup();
    let mut opt = sgd(false);
    opt.step(&params, &grads, 0.1).unwrap();
    // d = g + 0.01·w = 0.11·v; buf = d; w ← w − 0.1·d. b: no decay, d = 0.5.
    assert_values(&params[0].1, &[0.989, 1.978, 2.967, 3.956]);
    assert_values(&params[1].1, &[0.95, -1.05]);
    opt.step(&params, &grads, 0.1).unwrap();
    // d = 0.1·v + 0.01·0.989·v = 0.10989·v; buf = 0.9·0.11·v + d = 0.20889·v;
    // w = 0.989·v − 0.020889·v = 0.968111·v. b: buf = 0.95, b = b₁ − 0.095.
    let w2: Vec<f64> = V.iter().map(|x| 0.968111 * x).collect();
    assert_values(&params[0].1, &w2);
    assert_values(&params[1].1, &[0.855, -1.145]);
    let buf: Vec<f64> = opt
        .buffers()
        .get("w")
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!((buf[3] - 0.20889 * 4.0).abs() < 1e-12, "{buf:?}");
}

#[test]
fn sgd_nesterov_steps_along_d_plus_momentum_buffer() {
    let (params, grads) = setup();
    let mut opt = sgd(true);
    opt.step(&params, &grads, 0.1).unwrap();
    // buf = d; direction = d + 0.9·buf = 1.9·d: w = v − 0.1·1.9·0.11·v = 0.9791·v.
    assert_values(&params[0].1, &[0.9791, 1.9582, 2.9373, 3.9164]);
    assert_values(&params[1].1, &[0.905, -1.095]);
}

#[test]
fn lars_matches_hand_computed_steps_and_skips_rank_one_params() {
    let (params, grads) = setup();
    let mut opt = lars();
    opt.step(&params, &grads, 0.1).unwrap();
    // d = 0.11·v, trust = 0.001·‖v‖ / (0.11·‖v‖), so d·trust = 0.001·v and w = 0.9999·v.
    assert_values(&params[0].1, &[0.9999, 1.9998, 2.9997, 3.9996]);
    // rank 1: no decay, no trust ratio: plain momentum SGD.
    assert_values(&params[1].1, &[0.95, -1.05]);
    opt.step(&params, &grads, 0.1).unwrap();
    // d = (0.1 + 0.01·0.9999)·v, d·trust = 0.001·0.9999·v; buf = 0.0009·v + 0.0009999·v;
    // w = 0.9999·v − 0.1·0.0018999·v = 0.99971001·v.
    let w2: Vec<f64> = V.iter().map(|x| 0.99971001 * x).collect();
    assert_values(&params[0].1, &w2);
    assert_values(&params[1].1, &[0.855, -1.145]);
}

#[test]
fn trust_ratio_is_one_when_a_norm_is_zero() {
    let dev = Device::Cpu;
    let zero = Tensor::zeros((2, 2), candle_core::DType::F64, &dev).unwrap();
    let d = Tensor::new(&[[3.0f64, 0.0], [0.0, 4.0]], &dev).unwrap();
    let w = Tensor::new(&[[0.0f64, 6.0], [8.0, 0.0]], &dev).unwrap();
    let t = |w: &Tensor, d: &Tensor| trust_ratio(w, d, 0.5).unwrap().to_scalar::<f64>().unwrap();
    assert_eq!(t(&zero, &d), 1.0);
    assert_eq!(t(&w, &zero), 1.0);
    assert_eq!(t(&w, &d), 0.5 * 10.0 / 5.0);
}

#[test]
fn params_without_gradient_are_untouched_and_updates_build_no_graph() {
    let (params, _) = setup();
    let mut grads = GradStore::default();
    grads.insert(
        &params[1].1,
        Tensor::new(&[0.5f64, 0.5], &Device::Cpu).unwrap(),
    );
    let mut opt = lars();
    opt.step(&params, &grads, 0.1).unwrap();
    assert_values(&params[0].1, &V);
    assert_eq!(opt.buffers().names().collect::<Vec<_>>(), ["b"]);
    assert!(!opt.buffers().get("b").unwrap().track_op());
    assert!(params[1].1.as_tensor().is_variable());
}

#[test]
fn gradients_from_backward_drive_the_update() {
    // loss = Σ w ⊙ G has gradient G: one plain SGD step (μ = 0, wd = 0) gives w − lr·G.
    let (params, _) = setup();
    let g = Tensor::new(&[[1.0f64, -1.0], [2.0, 0.5]], &Device::Cpu).unwrap();
    let loss = (params[0].1.as_tensor() * &g).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let config = SgdConfig {
        base_lr: 0.1,
        momentum: 0.0,
        weight_decay: 0.0,
        nesterov: false,
    };
    let mut opt = Sgd::new(config).unwrap();
    opt.step(&params[..1], &grads, 0.5).unwrap();
    assert_values(&params[0].1, &[0.5, 2.5, 2.0, 3.75]);
    assert!(opt.buffers().is_empty(), "no buffer without momentum");
}

#[test]
fn buffers_round_trip_and_check_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("optimizer.safetensors");
    let (params, grads) = setup();
    let mut opt = lars();
    opt.step(&params, &grads, 0.1).unwrap();
    opt.buffers().save(&path).unwrap();

    let (params2, grads2) = setup();
    for ((_, a), (_, b)) in params.iter().zip(&params2) {
        b.set(a.as_tensor()).unwrap();
    }
    let mut restored = lars();
    restored.buffers_mut().load(&path, &params2).unwrap();
    opt.step(&params, &grads, 0.1).unwrap();
    restored.step(&params2, &grads2, 0.1).unwrap();
    for ((_, a), (_, b)) in params.iter().zip(&params2) {
        assert_eq!(values(a), values(b));
    }

    let other = vec![(
        "w".to_string(),
        Var::zeros(3, candle_core::DType::F64, &Device::Cpu).unwrap(),
    )];
    let msg = restored
        .buffers_mut()
        .load(&path, &other)
        .unwrap_err()
        .to_string();
    assert!(
        msg.ends_with("unexpected [b]; mismatched [w: file [2, 2] F64 vs model [3] F64]"),
        "{msg}"
    );
    assert_eq!(restored.buffers().len(), 2, "a failed load changes nothing");
}
