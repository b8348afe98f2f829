//! Tests of the distillation step: routing, the loss value, K = 1, and learning.

use super::*;
use crate::{DistillOptions, DistillTarget, HeadBatchNorm};
use dnc_core::SeededRng;
use dnc_models::{Arch, BackboneConfig, ProjectorConfig};

pub(super) fn small_model() -> EncoderConfig {
    EncoderConfig {
        backbone: BackboneConfig {
            arch: Arch::Tiny,
            tiny_widths: vec![4, 12],
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

pub(super) fn teacher(seed: u64) -> Teacher {
    let map = SeededVarMap::new(seed);
    Encoder::new(&small_model(), map.var_builder(DType::F32, &Device::Cpu)).unwrap();
    Teacher::new(&small_model(), map.varmap().clone(), &Device::Cpu).unwrap()
}

/// The base and the experts of a step that runs its teachers.
fn teachers(step: &DistillStep) -> (&Teacher, &[Teacher]) {
    step.teachers().expect("a step with teachers")
}

fn step_with(k: usize) -> DistillStep {
    step_with_options(k, DistillOptions::default())
}

fn step_with_options(k: usize, options: DistillOptions) -> DistillStep {
    let experts = (0..k).map(|c| teacher(100 + c as u64)).collect();
    DistillStep::with_options(
        &small_model(),
        teacher(99),
        experts,
        7,
        &Device::Cpu,
        options,
    )
    .unwrap()
}

pub(super) fn images(seed: u64, b: usize) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let v: Vec<f32> = (0..b * 3 * 8 * 8).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(v, (b, 3, 8, 8), &Device::Cpu).unwrap()
}

pub(super) fn ctx() -> StepContext {
    ctx_at(0, 1)
}

/// The context of global step `step` with `steps_per_epoch` steps per epoch.
fn ctx_at(step: usize, steps_per_epoch: usize) -> StepContext {
    StepContext {
        epoch: step / steps_per_epoch,
        batch: step % steps_per_epoch,
        step,
        total_steps: 100,
        steps_per_epoch,
        lr: 0.1,
    }
}

fn loss_of(step: &mut DistillStep, images: &Tensor, clusters: &[u32]) -> f32 {
    let batch = DistillBatch::new(images.clone(), clusters.to_vec());
    step.forward(&batch, &ctx())
        .unwrap()
        .loss
        .to_scalar::<f32>()
        .unwrap()
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
        second_view: None,
        indices: None,
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
    for target in [DistillTarget::Projection, DistillTarget::Features] {
        let (loss, expected) = loss_and_hand_computed(target);
        assert!(
            (loss - expected).abs() < 1e-5,
            "{target:?}: {loss} vs {expected}"
        );
    }
}

#[test]
fn feature_heads_read_and_predict_the_backbone_width() {
    let options = DistillOptions {
        target: DistillTarget::Features,
        ..DistillOptions::default()
    };
    let step = step_with_options(2, options);
    let width = step.student().backbone().out_dim();
    assert_ne!(
        width,
        step.student().out_dim(),
        "the test needs distinct widths"
    );
    for head in &step.heads {
        assert_eq!(head.out_dim(), width);
    }
    let x = images(3, 4);
    let features = step.student().forward_t(&x, false).unwrap().features;
    let pred = step.heads[1].forward_t(&features, false).unwrap();
    assert_eq!(pred.dims(), &[4, width]);
}

/// The step's loss on a fixed batch, and the same quantity computed per image from the public
/// pieces with the layer of `target`.
fn loss_and_hand_computed(target: DistillTarget) -> (f32, f32) {
    let options = DistillOptions {
        target,
        ..DistillOptions::default()
    };
    let mut step = step_with_options(2, options);
    let x = images(2, 6);
    let clusters = vec![0, 1, 1, 0, 1, 1];
    let loss = step
        .forward(&DistillBatch::new(x.clone(), clusters.clone()), &ctx())
        .unwrap()
        .loss
        .to_scalar::<f32>()
        .unwrap();
    let out = step.student().forward_t(&x, true).unwrap();
    let input = target.layer(&out);
    let t0 = teachers(&step)
        .0
        .target(&x, target)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let r0 = step.heads[0]
        .forward_t(input, true)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let half_sq =
        |a: &[f32], b: &[f32]| 0.5 * a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>();
    let mut expected: f32 = (0..6).map(|i| half_sq(&r0[i], &t0[i])).sum();
    for c in 0..2u32 {
        let rows: Vec<u32> = (0..6).filter(|&i| clusters[i as usize] == c).collect();
        let idx = Tensor::new(rows.as_slice(), &Device::Cpu).unwrap();
        let t = teachers(&step).1[c as usize]
            .target(&x.index_select(&idx, 0).unwrap(), target)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        // The default: the expert head's BatchNorm sees the whole batch; its own rows count.
        let r = step.heads[c as usize + 1]
            .forward_t(input, true)
            .unwrap()
            .index_select(&idx, 0)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        expected += (0..rows.len()).map(|i| half_sq(&r[i], &t[i])).sum::<f32>();
    }
    (loss, expected / 6.0)
}

#[test]
fn one_expert_works_and_bad_cluster_ids_are_errors() {
    let mut step = step_with(1);
    let out = step
        .forward(
            &DistillBatch {
                images: images(3, 3),
                clusters: vec![0, 0, 0],
                second_view: None,
                indices: None,
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
                second_view: None,
                indices: None,
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
                second_view: None,
                indices: None,
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
    let batch = DistillBatch::new(x.clone(), vec![0, 1, 0, 1, 0, 1, 0, 1]);
    let base_before = teachers(&step)
        .0
        .target(&x, DistillTarget::Projection)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
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
        teachers(&step)
            .0
            .target(&x, DistillTarget::Projection)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap(),
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

#[test]
fn cluster_batch_norm_runs_each_expert_head_on_its_sub_batch_and_survives_one_image() {
    let options = DistillOptions {
        head_batch_norm: HeadBatchNorm::Cluster,
        ..DistillOptions::default()
    };
    let mut cluster_bn = step_with_options(2, options);
    let mut batch_bn = step_with(2);
    let x = images(5, 5);
    // Cluster 1 holds a single image: training-mode BatchNorm on it alone is undefined.
    let clusters = [0, 0, 1, 0, 0];
    let a = loss_of(&mut cluster_bn, &x, &clusters);
    let b = loss_of(&mut batch_bn, &x, &clusters);
    assert!(a.is_finite() && b.is_finite(), "{a} {b}");
    assert!(
        (a - b).abs() > 1e-6,
        "sub-batch statistics should change the loss: {a} vs {b}"
    );
}

#[test]
fn heads_alone_learn_during_the_warm_up_and_the_student_after_it() {
    let options = DistillOptions {
        head_warmup_epochs: 1.5,
        ..DistillOptions::default()
    };
    let mut step = step_with_options(2, options);
    let batch = DistillBatch {
        images: images(6, 6),
        clusters: vec![0, 1, 0, 1, 1, 0],
        second_view: None,
        indices: None,
    };
    // 4 steps per epoch: steps 0..6 are the warm-up, step 6 is the first full step.
    for (at, student_learns) in [(0, false), (5, false), (6, true), (20, true)] {
        let out = step.forward(&batch, &ctx_at(at, 4)).unwrap();
        let heads_only = out.metrics.iter().any(|(n, _)| n == "heads_only");
        assert_eq!(heads_only, !student_learns, "step {at}");
        let grads = out.loss.backward().unwrap();
        for (name, var) in step.parameters() {
            let norm = grad_norm(&grads, &var);
            if name.starts_with("heads.") {
                assert!(norm > 0.0, "step {at}: head {name} got no gradient");
            } else if student_learns {
                assert!(norm > 0.0, "step {at}: {name} got no gradient");
            } else {
                assert_eq!(norm, 0.0, "step {at}: {name} moved during the warm-up");
            }
        }
    }
}

#[test]
fn zero_initialised_heads_start_at_half_a_unit_per_term_and_spare_the_student() {
    let options = DistillOptions {
        zero_init_heads: true,
        ..DistillOptions::default()
    };
    let mut step = step_with_options(2, options);
    let batch = DistillBatch {
        images: images(7, 4),
        clusters: vec![0, 1, 1, 0],
        second_view: None,
        indices: None,
    };
    let out = step.forward(&batch, &ctx()).unwrap();
    // Predictions are 0 and targets unit vectors: ½ per image for the base, ½ for the expert.
    let loss = out.loss.to_scalar::<f32>().unwrap();
    assert!((loss - 1.0).abs() < 1e-5, "{loss}");
    let grads = out.loss.backward().unwrap();
    for (name, var) in step.parameters() {
        let norm = grad_norm(&grads, &var);
        let last = name.ends_with(".3.weight") || name.ends_with(".3.bias");
        if name.starts_with("heads.") && last {
            assert!(norm > 0.0, "{name} got no gradient");
        } else {
            assert_eq!(norm, 0.0, "{name} moved before the heads did");
        }
    }
}

#[test]
fn base_alone_is_distilled_when_there_are_no_experts() {
    let mut step = step_with(0);
    let x = images(8, 4);
    // Cluster ids do not matter without experts.
    let loss = loss_of(&mut step, &x, &[3, 0, 9, 1]);
    let z = step.student().forward_t(&x, true).unwrap().z;
    let t0 = teachers(&step)
        .0
        .target(&x, DistillTarget::Projection)
        .unwrap();
    let r0 = step.heads[0].forward_t(&z, true).unwrap();
    let expected = ((r0 - t0).unwrap().sqr().unwrap().sum_all().unwrap())
        .to_scalar::<f32>()
        .unwrap()
        * 0.5
        / 4.0;
    assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
    assert_eq!(
        step.parameters()
            .iter()
            .filter(|(n, _)| n.starts_with("heads.1."))
            .count(),
        0
    );
}

#[test]
fn contrastive_term_adds_weighted_info_nce_of_each_head() {
    let x = images(9, 6);
    let clusters = [0, 0, 0, 1, 1, 1];
    let plain = loss_of(&mut step_with(2), &x, &clusters);
    let options = DistillOptions {
        contrastive_weight: 0.5,
        contrastive_temperature: 0.2,
        ..DistillOptions::default()
    };
    let mut step = step_with_options(2, options);
    let with = loss_of(&mut step, &x, &clusters);
    // The same contrastive quantities from the public pieces.
    let z = step.student().forward_t(&x, true).unwrap().z;
    let nce = |pred: &Tensor, target: &Tensor| {
        info_nce(&l2_normalize(pred).unwrap(), target, 0.2)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let mut expected = 6.0
        * nce(
            &step.heads[0].forward_t(&z, true).unwrap(),
            &teachers(&step)
                .0
                .target(&x, DistillTarget::Projection)
                .unwrap(),
        );
    for c in 0..2u32 {
        let idx = Tensor::new(&[3 * c, 3 * c + 1, 3 * c + 2], &Device::Cpu).unwrap();
        let pred = step.heads[c as usize + 1]
            .forward_t(&z, true)
            .unwrap()
            .index_select(&idx, 0)
            .unwrap();
        let target = teachers(&step).1[c as usize]
            .target(&x.index_select(&idx, 0).unwrap(), DistillTarget::Projection)
            .unwrap();
        expected += 3.0 * nce(&pred, &target);
    }
    let expected = plain + 0.5 * expected / 6.0;
    assert!((with - expected).abs() < 1e-4, "{with} vs {expected}");
}

#[test]
fn bad_options_are_errors_naming_the_option() {
    let options = DistillOptions {
        contrastive_temperature: 0.0,
        ..DistillOptions::default()
    };
    let experts = vec![teacher(1)];
    let err = DistillStep::with_options(
        &small_model(),
        teacher(2),
        experts,
        0,
        &Device::Cpu,
        options,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("contrastive_temperature") && err.contains('0'),
        "{err}"
    );
}

#[test]
fn student_moclr_term_trains_the_student_through_the_warm_up_and_moves_its_target() {
    let options = DistillOptions {
        head_warmup_epochs: 10.0,
        zero_init_heads: true,
        student_moclr: Some(crate::StudentMoclr {
            weight: 1.0,
            temperature: 0.2,
            ema_momentum: 0.5,
            anneal: false,
        }),
        ..DistillOptions::default()
    };
    let mut step = step_with_options(2, options);
    let x = images(10, 6);
    let one_view = DistillBatch::new(x.clone(), vec![0, 1, 0, 1, 0, 1]);
    let err = step.forward(&one_view, &ctx()).err().unwrap().to_string();
    assert!(err.contains("second view"), "{err}");
    let batch = DistillBatch {
        second_view: Some(images(11, 6)),
        ..one_view
    };
    let out = step.forward(&batch, &ctx()).unwrap();
    let metric = |name: &str| out.metrics.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    let moclr = metric("loss_student_moclr").expect("the MoCLR term is logged");
    // Zero heads give exactly 1.0 of regression; the rest of the loss is the MoCLR term.
    let loss = out.loss.to_scalar::<f32>().unwrap() as f64;
    assert!((loss - 1.0 - moclr).abs() < 1e-4, "{loss} vs 1 + {moclr}");
    // In the heads' warm-up the regression cannot reach the student, but its MoCLR term does.
    let grads = out.loss.backward().unwrap();
    let conv = step
        .parameters()
        .into_iter()
        .find(|(n, _)| n.starts_with("backbone."))
        .unwrap();
    assert!(
        grad_norm(&grads, &conv.1) > 0.0,
        "{} got no gradient",
        conv.0
    );
    let target_names: Vec<String> = step.state().iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(target_names, ["student", "target"]);
    let target_before = step.state()[1].1.data().lock().unwrap()[&conv.0]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let mut opt = dnc_engine::OptimizerConfig::Sgd(dnc_engine::SgdConfig {
        base_lr: 1.0,
        ..Default::default()
    })
    .build()
    .unwrap();
    opt.step(&step.parameters(), &grads, 0.5).unwrap();
    step.after_update(&ctx()).unwrap();
    let target_after = step.state()[1].1.data().lock().unwrap()[&conv.0]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_ne!(target_before, target_after, "the EMA target did not move");
}

#[test]
fn an_annealed_student_moclr_term_falls_from_its_weight_to_zero() {
    let moclr = crate::StudentMoclr {
        weight: 2.0,
        temperature: 0.2,
        ema_momentum: 0.5,
        anneal: true,
    };
    // Steps 0 ..= 100 of 101: the first at full weight, the last at zero.
    assert_eq!(moclr.weight_at(0, 101), 2.0);
    assert!((moclr.weight_at(50, 101) - 1.0).abs() < 1e-12);
    assert!(moclr.weight_at(100, 101).abs() < 1e-12);
    assert!(moclr.weight_at(150, 101).abs() < 1e-12);
    assert_eq!(moclr.weight_at(0, 1), 2.0);
    let constant = crate::StudentMoclr {
        anneal: false,
        ..moclr
    };
    assert_eq!(constant.weight_at(100, 100), 2.0);
    // In a step: zero heads regress exactly 1.0, and at the last step the term adds nothing.
    let options = DistillOptions {
        zero_init_heads: true,
        student_moclr: Some(moclr),
        ..DistillOptions::default()
    };
    let mut step = step_with_options(2, options);
    let batch = DistillBatch {
        second_view: Some(images(11, 6)),
        ..DistillBatch::new(images(10, 6), vec![0, 1, 0, 1, 0, 1])
    };
    let loss_at = |step: &mut DistillStep, at: usize| {
        let out = step.forward(&batch, &ctx_at(at, 10)).unwrap();
        let metric = |name: &str| out.metrics.iter().find(|(n, _)| n == name).unwrap().1;
        let term = metric("loss_student_moclr");
        let weight = metric("student_moclr_weight");
        (out.loss.to_scalar::<f32>().unwrap() as f64, term, weight)
    };
    let (first, term, weight) = loss_at(&mut step, 0);
    assert_eq!(weight, 2.0);
    assert!(
        (first - 1.0 - 2.0 * term).abs() < 1e-4,
        "{first} vs 1 + 2 × {term}"
    );
    // `ctx_at` runs 100 steps: 99 is the last.
    let (last, _, weight) = loss_at(&mut step, 99);
    assert!(weight.abs() < 1e-12);
    assert!((last - 1.0).abs() < 1e-5, "{last}");
}

#[test]
fn regression_weight_scales_the_regression_terms() {
    let x = images(12, 4);
    let clusters = [0, 1, 1, 0];
    let plain = loss_of(&mut step_with(2), &x, &clusters);
    let options = DistillOptions {
        regression_weight: 3.0,
        ..DistillOptions::default()
    };
    let scaled = loss_of(&mut step_with_options(2, options), &x, &clusters);
    assert!(
        (scaled - 3.0 * plain).abs() < 1e-4 * plain.abs().max(1.0),
        "{scaled} vs 3 × {plain}"
    );
}
