//! Tests of the EMA update, variable copies and the momentum schedule.

use super::*;
use crate::test_util::values;
use candle_core::{DType, Device, Tensor};

fn map(entries: &[(&str, &[f32])]) -> VarMap {
    let map = VarMap::new();
    {
        let mut data = map.data().lock().unwrap();
        for (name, v) in entries {
            let t = Tensor::new(*v, &Device::Cpu).unwrap();
            data.insert(name.to_string(), Var::from_tensor(&t).unwrap());
        }
    }
    map
}

fn get(map: &VarMap, name: &str) -> Vec<f64> {
    values(map.data().lock().unwrap()[name].as_tensor())
}

fn online() -> VarMap {
    map(&[
        ("w", &[3.0, 6.0]),
        ("bn.weight", &[2.0]),
        ("bn.running_mean", &[5.0, 5.0]),
    ])
}

fn target() -> VarMap {
    map(&[
        ("w", &[1.0, 2.0]),
        ("bn.weight", &[1.0]),
        ("bn.running_mean", &[0.0, 0.0]),
    ])
}

fn assert_near(a: &[f64], b: &[f64]) {
    assert!(
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6),
        "{a:?} vs {b:?}"
    );
}

#[test]
fn parameters_move_towards_the_online_network_and_buffers_stay() {
    let (t, o) = (target(), online());
    ema_update(&t, &o, 0.9).unwrap();
    // 0.9·(1, 2) + 0.1·(3, 6) and 0.9·1 + 0.1·2.
    assert_near(&get(&t, "w"), &[1.2, 2.4]);
    assert_near(&get(&t, "bn.weight"), &[1.1]);
    assert_eq!(get(&t, "bn.running_mean"), vec![0.0, 0.0]);
    assert_eq!(
        get(&o, "w"),
        vec![3.0, 6.0],
        "the online network is read only"
    );
    ema_update(&t, &o, 0.0).unwrap();
    assert_eq!(get(&t, "w"), vec![3.0, 6.0]);
    ema_update(&t, &o, 1.0).unwrap();
    assert_eq!(get(&t, "w"), vec![3.0, 6.0]);
    // A map averaged with itself is unchanged (and the shared lock is not taken twice).
    ema_update(&o, &o, 0.5).unwrap();
    assert_eq!(get(&o, "w"), vec![3.0, 6.0]);
}

#[test]
fn mismatched_maps_are_rejected_before_any_update() {
    let t = target();
    let missing = map(&[("w", &[3.0, 6.0]), ("bn.running_mean", &[5.0, 5.0])]);
    let msg = ema_update(&t, &missing, 0.5).unwrap_err().to_string();
    assert!(
        msg.contains("\"bn.weight\"") && msg.contains("not in the source"),
        "{msg}"
    );
    let extra = map(&[("w", &[3.0, 6.0]), ("bn.weight", &[2.0]), ("v", &[1.0])]);
    let msg = ema_update(&t, &extra, 0.5).unwrap_err().to_string();
    assert!(
        msg.contains("\"v\"") && msg.contains("not in the target"),
        "{msg}"
    );
    let shape = map(&[("w", &[3.0, 6.0, 9.0]), ("bn.weight", &[2.0])]);
    let msg = ema_update(&t, &shape, 0.5).unwrap_err().to_string();
    assert!(msg.contains("[2]") && msg.contains("[3]"), "{msg}");
    let msg = ema_update(&t, &online(), 1.5).unwrap_err().to_string();
    assert!(msg.contains("1.5"), "{msg}");
    assert_eq!(get(&t, "w"), vec![1.0, 2.0], "nothing was updated");
    // Buffers need not match for the EMA, but they must for a copy.
    let no_buffers = map(&[("w", &[3.0, 6.0]), ("bn.weight", &[2.0])]);
    ema_update(&t, &no_buffers, 0.5).unwrap();
    assert!(copy_vars(&t, &no_buffers).is_err());
}

#[test]
fn copy_vars_copies_parameters_and_buffers() {
    let (t, o) = (target(), online());
    copy_vars(&t, &o).unwrap();
    for name in ["w", "bn.weight", "bn.running_mean"] {
        assert_eq!(get(&t, name), get(&o, name), "{name}");
    }
    // The copy is independent of the source.
    ema_update(&o, &map(&[("w", &[0.0, 0.0]), ("bn.weight", &[0.0])]), 0.0).unwrap();
    assert_eq!(get(&t, "w"), vec![3.0, 6.0]);
    let f16 = map(&[
        ("w", &[1.0, 1.0]),
        ("bn.weight", &[1.0]),
        ("bn.running_mean", &[0.0, 0.0]),
    ]);
    let f16_vars = f16.data().lock().unwrap().clone();
    for (name, var) in f16_vars {
        let half = Var::from_tensor(&var.to_dtype(DType::F16).unwrap()).unwrap();
        f16.data().lock().unwrap().insert(name, half);
    }
    copy_vars(&f16, &t).unwrap();
    assert_eq!(
        get(&f16, "w"),
        vec![3.0, 6.0],
        "values are cast to the target's dtype"
    );
}

#[test]
fn momentum_schedule_runs_from_m0_to_one_on_a_cosine() {
    let m0 = 0.996;
    assert!((momentum_schedule(0, 100, m0) - m0).abs() < 1e-15);
    assert!((momentum_schedule(100, 100, m0) - 1.0).abs() < 1e-15);
    assert!((momentum_schedule(50, 100, m0) - (1.0 - 0.004 / 2.0)).abs() < 1e-15);
    // cos(π/4) = √½: m = 1 − 0.004·(1 + √½)/2.
    let quarter = 1.0 - 0.004 * (1.0 + std::f64::consts::FRAC_1_SQRT_2) / 2.0;
    assert!((momentum_schedule(25, 100, m0) - quarter).abs() < 1e-15);
    assert_eq!(momentum_schedule(150, 100, m0), 1.0);
    assert!((momentum_schedule(0, 0, 0.99) - 0.99).abs() < 1e-15);
    let steps: Vec<f64> = (0..=10).map(|s| momentum_schedule(s, 10, m0)).collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
}
