//! Tests of [`Encoder`]: configuration, layout, seeding, save/load and a few training steps.

use super::*;
use crate::backbone::Arch;
use crate::test_util::{randn, sorted_vars, values};
use candle_core::{DType, Device, Var};
use candle_nn::{Optimizer, SGD};
use dnc_core::{SeededVarMap, is_buffer};

/// torch_ref's CPU recipe, with smaller widths to keep tests fast.
fn small() -> EncoderConfig {
    toml::from_str(
        r#"
        [backbone]
        arch = "tiny"
        tiny_widths = [8, 16]
        [projector]
        hidden = 12
        out = 6
        final_bn = false
        "#,
    )
    .unwrap()
}

fn build(cfg: &EncoderConfig, seed: u64) -> (SeededVarMap, Encoder) {
    let map = SeededVarMap::new(seed);
    let enc = Encoder::new(cfg, map.var_builder(DType::F32, &Device::Cpu)).unwrap();
    (map, enc)
}

#[test]
fn config_parses_and_outputs_have_the_configured_widths() {
    let cfg: EncoderConfig = toml::from_str("").unwrap();
    assert_eq!(cfg, EncoderConfig::default());
    assert!(toml::from_str::<EncoderConfig>("[model]\narch = \"tiny\"").is_err());
    let cfg = small();
    assert_eq!(cfg.backbone.arch, Arch::Tiny);
    let (map, enc) = build(&cfg, 0);
    let out = enc
        .forward_t(&randn((2, 3, 16, 16), DType::F32, 1), true)
        .unwrap();
    assert_eq!(out.features.dims(), &[2, 16]);
    assert_eq!(out.hidden.dims(), &[2, 12]);
    assert_eq!(out.z.dims(), &[2, 6]);
    assert_eq!(enc.backbone().out_dim(), 16);
    assert_eq!((enc.projector().out_dim(), enc.out_dim()), (6, 6));
    for (name, _) in sorted_vars(map.varmap()) {
        assert!(
            name.starts_with("backbone.features.") || name.starts_with("projector."),
            "{name}"
        );
    }
    let bad = EncoderConfig {
        projector: ProjectorConfig {
            hidden: 0,
            ..cfg.projector
        },
        ..cfg
    };
    assert!(bad.validate().is_err());
}

#[test]
fn same_seed_gives_the_same_initial_weights() {
    let cfg = small();
    let (a, _) = build(&cfg, 7);
    let (b, _) = build(&cfg, 7);
    let (c, _) = build(&cfg, 8);
    let (va, vb, vc) = (
        sorted_vars(a.varmap()),
        sorted_vars(b.varmap()),
        sorted_vars(c.varmap()),
    );
    let mut differs = false;
    for ((name, x), ((_, y), (_, z))) in va.iter().zip(vb.iter().zip(&vc)) {
        assert_eq!(values(x.as_tensor()), values(y.as_tensor()), "{name}");
        differs |= values(x.as_tensor()) != values(z.as_tensor());
    }
    assert!(differs, "another seed gives other weights");
}

#[test]
fn saved_weights_reload_into_a_fresh_encoder() {
    let cfg = small();
    let (a, enc_a) = build(&cfg, 1);
    let x = randn((4, 3, 16, 16), DType::F32, 2);
    enc_a.forward_t(&x, true).unwrap(); // moves the running statistics away from 0 and 1
    let path = std::env::temp_dir().join(format!(
        "dnc-models-encoder-{}.safetensors",
        std::process::id()
    ));
    a.varmap().save(&path).unwrap();
    let (b, enc_b) = build(&cfg, 2);
    let mut loaded = b.varmap().clone();
    loaded.load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let za = values(&enc_a.forward_t(&x, false).unwrap().z);
    let zb = values(&enc_b.forward_t(&x, false).unwrap().z);
    assert_eq!(za, zb);
}

#[test]
fn sgd_steps_reach_every_parameter_and_reduce_the_loss() {
    let cfg = small();
    let (map, enc) = build(&cfg, 3);
    let params: Vec<(String, Var)> = sorted_vars(map.varmap())
        .into_iter()
        .filter(|(n, _)| !is_buffer(n))
        .collect();
    let buffers_before: Vec<Vec<f64>> = sorted_vars(map.varmap())
        .iter()
        .filter(|(n, _)| is_buffer(n))
        .map(|(_, v)| values(v.as_tensor()))
        .collect();
    let mut sgd = SGD::new(params.iter().map(|(_, v)| v.clone()).collect(), 0.05).unwrap();
    let x = randn((8, 3, 16, 16), DType::F32, 4);
    let target = randn((8, 6), DType::F32, 5);
    let loss_at = |enc: &Encoder| -> Tensor {
        let z = enc.forward_t(&x, true).unwrap().z;
        (z - &target).unwrap().sqr().unwrap().mean_all().unwrap()
    };
    let mut losses = Vec::new();
    for step in 0..8 {
        let loss = loss_at(&enc);
        losses.push(loss.to_scalar::<f32>().unwrap());
        let grads = loss.backward().unwrap();
        if step == 0 {
            for (name, var) in &params {
                let g = grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("no gradient for {name}"));
                assert!(
                    values(g).iter().any(|v| *v != 0.0),
                    "zero gradient for {name}"
                );
            }
        }
        sgd.step(&grads).unwrap();
    }
    assert!(losses[7] < 0.9 * losses[0], "{losses:?}");
    let buffers_after: Vec<Vec<f64>> = sorted_vars(map.varmap())
        .iter()
        .filter(|(n, _)| is_buffer(n))
        .map(|(_, v)| values(v.as_tensor()))
        .collect();
    assert_ne!(
        buffers_before, buffers_after,
        "training updates the running statistics"
    );
}
