//! Tests of the distillation step: routing, the loss value, K = 1, and learning.

use super::*;
use dnc_core::SeededRng;
use dnc_models::{Arch, BackboneConfig, ProjectorConfig};

fn small_model() -> EncoderConfig {
    EncoderConfig {
        backbone: BackboneConfig {
            arch: Arch::Tiny,
            tiny_widths: vec![4, 8],
            ..BackboneConfig::default()
        },
        projector: ProjectorConfig {
            hidden: 16,
            out: 8,
            final_bn: false,
        },
        ..EncoderConfig::default()
    }
}

fn teacher(seed: u64) -> Teacher {
    let map = SeededVarMap::new(seed);
    Encoder::new(&small_model(), map.var_builder(DType::F32, &Device::Cpu)).unwrap();
    Teacher::new(&small_model(), map.varmap().clone(), &Device::Cpu).unwrap()
}

fn step_with(k: usize) -> DistillStep {
    let experts = (0..k).map(|c| teacher(100 + c as u64)).collect();
    DistillStep::new(&small_model(), teacher(99), experts, 7, &Device::Cpu).unwrap()
}

fn images(seed: u64, b: usize) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let v: Vec<f32> = (0..b * 3 * 8 * 8).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(v, (b, 3, 8, 8), &Device::Cpu).unwrap()
}

fn ctx() -> StepContext {
    StepContext {
        epoch: 0,
        batch: 0,
        step: 0,
        total_steps: 1,
        steps_per_epoch: 1,
        lr: 0.1,
    }
}

fn grad_norm(grads: &candle_core::backprop::GradStore, var: &Var) -> f32 {
    grads
        .get(var)
        .map(|g| {
            g.sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        })
        .unwrap_or(0.0)
}

#[test]
fn images_of_one_cluster_train_the_base_head_and_their_expert_head_only() {
    let mut step = step_with(3);
    let batch = DistillBatch {
        images: images(1, 4),
        clusters: vec![1; 4],
    };
    let grads = step
        .forward(&batch, &ctx())
        .unwrap()
        .loss
        .backward()
        .unwrap();
    for (name, var) in step.parameters() {
        let norm = grad_norm(&grads, &var);
        let routed = name.starts_with("heads.0.") || name.starts_with("heads.2.");
        let student = !name.starts_with("heads.");
        if routed || student {
            assert!(norm > 0.0, "{name} got no gradient");
        } else {
            assert_eq!(
                norm, 0.0,
                "{name} got a gradient from another cluster's images"
            );
        }
    }
}

#[test]
fn loss_equals_the_two_regression_terms_computed_by_hand() {
    let mut step = step_with(2);
    let x = images(2, 6);
    let clusters = vec![0, 1, 1, 0, 1, 1];
    let loss = step
        .forward(
            &DistillBatch {
                images: x.clone(),
                clusters: clusters.clone(),
            },
            &ctx(),
        )
        .unwrap()
        .loss
        .to_scalar::<f32>()
        .unwrap();
    // The same quantities, per image, from the public pieces.
    let z = step.student().forward_t(&x, true).unwrap().z;
    let t0 = step.base.target(&x).unwrap().to_vec2::<f32>().unwrap();
    let r0 = step.heads[0]
        .forward_t(&z, true)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let half_sq =
        |a: &[f32], b: &[f32]| 0.5 * a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>();
    let mut expected: f32 = (0..6).map(|i| half_sq(&r0[i], &t0[i])).sum();
    for c in 0..2u32 {
        let rows: Vec<u32> = (0..6).filter(|&i| clusters[i as usize] == c).collect();
        let idx = Tensor::new(rows.as_slice(), &Device::Cpu).unwrap();
        let t = step.experts[c as usize]
            .target(&x.index_select(&idx, 0).unwrap())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let r = step.heads[c as usize + 1]
            .forward_t(&z.index_select(&idx, 0).unwrap(), true)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        expected += (0..rows.len()).map(|i| half_sq(&r[i], &t[i])).sum::<f32>();
    }
    expected /= 6.0;
    assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
}

#[test]
fn one_expert_works_and_bad_cluster_ids_are_errors() {
    let mut step = step_with(1);
    let out = step
        .forward(
            &DistillBatch {
                images: images(3, 3),
                clusters: vec![0, 0, 0],
            },
            &ctx(),
        )
        .unwrap();
    assert!(out.loss.to_scalar::<f32>().unwrap().is_finite());
    let err = step
        .forward(
            &DistillBatch {
                images: images(3, 3),
                clusters: vec![0, 1, 0],
            },
            &ctx(),
        )
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("cluster id 1") && err.contains("1 experts"),
        "{err}"
    );
    let err = step
        .forward(
            &DistillBatch {
                images: images(3, 3),
                clusters: vec![0],
            },
            &ctx(),
        )
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("3 images but 1 cluster ids"), "{err}");
}

#[test]
fn teachers_stay_frozen_while_the_student_learns() {
    let mut step = step_with(2);
    let x = images(4, 8);
    let batch = DistillBatch {
        images: x.clone(),
        clusters: vec![0, 1, 0, 1, 0, 1, 0, 1],
    };
    let base_before = step.base.target(&x).unwrap().to_vec2::<f32>().unwrap();
    let mut opt = dnc_engine::OptimizerConfig::Sgd(dnc_engine::SgdConfig {
        base_lr: 1.0,
        ..Default::default()
    })
    .build()
    .unwrap();
    let params = step.parameters();
    let mut losses = Vec::new();
    for _ in 0..15 {
        let out = step.forward(&batch, &ctx()).unwrap();
        losses.push(out.loss.to_scalar::<f32>().unwrap());
        opt.step(&params, &out.loss.backward().unwrap(), 0.5)
            .unwrap();
    }
    assert!(losses[14] < 0.7 * losses[0], "losses {losses:?}");
    assert_eq!(
        step.base.target(&x).unwrap().to_vec2::<f32>().unwrap(),
        base_before
    );
}

#[test]
fn student_can_start_from_the_base_weights() {
    let step = step_with(1);
    let base_map = SeededVarMap::new(99);
    Encoder::new(
        &small_model(),
        base_map.var_builder(DType::F32, &Device::Cpu),
    )
    .unwrap();
    step.init_student_from(base_map.varmap()).unwrap();
    let name = "backbone.features.0.weight";
    let a = step.vars().data().lock().unwrap()[name]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = base_map.varmap().data().lock().unwrap()[name]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(a, b);
}
