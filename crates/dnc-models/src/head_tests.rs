//! Tests of the projector and regression heads: names, values by hand, configuration.

use super::*;
use crate::test_util::{names_and_shapes, randn, values};
use candle_core::{DType, Device};
use dnc_core::SeededVarMap;

fn bn_names(prefix: &str, c: usize) -> Vec<(String, Vec<usize>)> {
    ["bias", "running_mean", "running_var", "weight"]
        .iter()
        .map(|leaf| (format!("{prefix}.{leaf}"), vec![c]))
        .collect()
}

#[test]
fn names_follow_an_nn_sequential() {
    let map = SeededVarMap::new(0);
    let vb = map.var_builder(DType::F32, &Device::Cpu);
    let cfg = ProjectorConfig {
        hidden: 6,
        out: 4,
        final_bn: true,
    };
    Projector::new(5, &cfg, vb.pp("projector")).unwrap();
    RegressionHead::new(4, &cfg.regression_head(), vb.pp("head")).unwrap();
    let mut want = vec![("head.0.weight".to_string(), vec![6, 4])];
    want.extend(bn_names("head.1", 6));
    want.push(("head.3.bias".into(), vec![4]));
    want.push(("head.3.weight".into(), vec![4, 6]));
    want.push(("projector.0.weight".into(), vec![6, 5]));
    want.extend(bn_names("projector.1", 6));
    want.push(("projector.3.bias".into(), vec![4]));
    want.push(("projector.3.weight".into(), vec![4, 6]));
    want.extend(bn_names("projector.4", 4));
    assert_eq!(names_and_shapes(map.varmap()), want);
}

/// Evaluation with fresh BatchNorm statistics divides by √(1 + ε): checked against loops over
/// the stored weights.
#[test]
fn evaluation_matches_a_hand_computation() {
    let map = SeededVarMap::new(1);
    let vb = map.var_builder(DType::F64, &Device::Cpu);
    let cfg = ProjectorConfig {
        hidden: 3,
        out: 2,
        final_bn: true,
    };
    let proj = Projector::new(4, &cfg, vb.clone()).unwrap();
    let x = randn((2, 4), DType::F64, 5);
    let y = proj.forward_t(&x, false).unwrap();
    let w1 = values(&vb.get((3, 4), "0.weight").unwrap());
    let w2 = values(&vb.get((2, 3), "3.weight").unwrap());
    let b2 = values(&vb.get(2, "3.bias").unwrap());
    let s = 1.0 / (1.0 + 1e-5f64).sqrt();
    let xs = values(&x);
    let (hidden, out) = (values(&y.hidden), values(&y.out));
    for n in 0..2 {
        let h: Vec<f64> = (0..3)
            .map(|j| ((0..4).map(|i| w1[j * 4 + i] * xs[n * 4 + i]).sum::<f64>() * s).max(0.0))
            .collect();
        for j in 0..3 {
            assert!((hidden[n * 3 + j] - h[j]).abs() < 1e-12);
        }
        for o in 0..2 {
            let z = ((0..3).map(|j| w2[o * 3 + j] * h[j]).sum::<f64>() + b2[o]) * s;
            assert!((out[n * 2 + o] - z).abs() < 1e-12);
        }
    }
}

#[test]
fn training_hidden_layer_is_non_negative_and_final_bn_centres() {
    let map = SeededVarMap::new(2);
    let vb = map.var_builder(DType::F32, &Device::Cpu);
    let proj = Projector::new(16, &ProjectorConfig::default(), vb.pp("p")).unwrap();
    let y = proj
        .forward_t(&randn((8, 16), DType::F32, 6), true)
        .unwrap();
    assert_eq!(
        (y.hidden.dims(), y.out.dims()),
        (&[8, 4096][..], &[8, 256][..])
    );
    let hidden = values(&y.hidden);
    assert!(hidden.iter().all(|v| *v >= 0.0));
    assert!(hidden.iter().any(|v| *v > 0.0));
    let col_means = values(&y.out.mean(0).unwrap());
    assert!(
        col_means.iter().all(|m| m.abs() < 1e-5),
        "final BN output is centred"
    );
    assert_eq!(proj.out_dim(), 256);
    let head = RegressionHead::new(256, &RegressionHeadConfig::default(), vb.pp("r")).unwrap();
    let r = head.forward_t(&y.out, true).unwrap();
    assert_eq!(r.dims(), &[8, 256]);
    // Without a final BatchNorm the output keeps the second Linear's bias: it is not centred.
    assert!(values(&r.mean(0).unwrap()).iter().any(|m| m.abs() > 1e-3));
}

#[test]
fn configs_parse_validate_and_reject_unknown_keys() {
    let cfg: ProjectorConfig = toml::from_str("").unwrap();
    assert_eq!(cfg, ProjectorConfig::default());
    let cfg: ProjectorConfig = toml::from_str("hidden = 512\nout = 128\nfinal_bn = false").unwrap();
    assert_eq!((cfg.hidden, cfg.out, cfg.final_bn), (512, 128, false));
    assert_eq!(
        cfg.regression_head(),
        RegressionHeadConfig {
            hidden: 512,
            out: 128
        }
    );
    assert!(toml::from_str::<ProjectorConfig>("hiden = 512").is_err());
    assert!(toml::from_str::<RegressionHeadConfig>("final_bn = true").is_err());
    let bad = ProjectorConfig { out: 0, ..cfg };
    let msg = bad.validate().unwrap_err().to_string();
    assert!(msg.contains("projector") && msg.contains("out 0"), "{msg}");
    assert!(
        RegressionHeadConfig { hidden: 0, out: 3 }
            .validate()
            .is_err()
    );
    let map = SeededVarMap::new(0);
    let err = Projector::new(3, &bad, map.var_builder(DType::F32, &Device::Cpu)).unwrap_err();
    assert!(err.to_string().contains("out 0"), "{err}");
}
