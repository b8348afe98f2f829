//! Tests of the distillation step with cached targets: the same loss and gradients as the
//! teachers give when the cache holds their targets of the batch's images, no teacher in the
//! step, and learning.

use super::tests::{ctx, images, small_model, teacher};
use super::*;
use crate::{CachedTargets, DistillOptions, DistillTarget};

/// Number of images in the cached "dataset".
const N: usize = 10;
/// The dataset index of each of the batch's six images.
const INDICES: [usize; 6] = [7, 2, 5, 0, 9, 3];
const CLUSTERS: [u32; 6] = [0, 1, 1, 0, 1, 1];

/// A step with a base and two experts, and a cache of `N` images whose rows `INDICES` hold those
/// teachers' targets of `x` (each image's own cluster's expert) and whose other rows are noise.
fn teacher_and_cached_steps(x: &Tensor, options: DistillOptions) -> (DistillStep, DistillStep) {
    let base = teacher(99);
    let experts = vec![teacher(100), teacher(101)];
    let layer = options.target;
    let t0 = base.target(x, layer).unwrap();
    let tc: Vec<Tensor> = experts
        .iter()
        .map(|e| e.target(x, layer).unwrap())
        .collect();
    let d = t0.dim(1).unwrap();
    let noise = |seed| {
        l2_normalize(
            &images(seed, N)
                .flatten_from(1)
                .unwrap()
                .narrow(1, 0, d)
                .unwrap(),
        )
        .unwrap()
    };
    let (mut base_rows, mut expert_rows) = (row_vecs(&noise(20)), row_vecs(&noise(21)));
    for (j, &i) in INDICES.iter().enumerate() {
        base_rows[i] = row_vecs(&t0)[j].clone();
        expert_rows[i] = row_vecs(&tc[CLUSTERS[j] as usize])[j].clone();
    }
    let matrix = |rows: Vec<Vec<f32>>| {
        let values = rows.concat();
        Tensor::from_vec(values, (N, d), &Device::Cpu).unwrap()
    };
    let cache = CachedTargets::new(matrix(base_rows), Some(matrix(expert_rows)), 2).unwrap();
    let model = small_model();
    let live = DistillStep::with_options(&model, base, experts, 7, &Device::Cpu, options).unwrap();
    let cached = DistillStep::with_cached_targets(&model, cache, 7, &Device::Cpu, options).unwrap();
    (live, cached)
}

fn row_vecs(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

fn scalar(t: &Tensor) -> f32 {
    t.to_scalar::<f32>().unwrap()
}

#[test]
fn cached_targets_give_the_teachers_loss_and_gradients() {
    let x = images(30, 6);
    let contrastive = DistillOptions {
        contrastive_weight: 0.5,
        ..DistillOptions::default()
    };
    let features = DistillOptions {
        target: DistillTarget::Features,
        ..DistillOptions::default()
    };
    for options in [DistillOptions::default(), contrastive, features] {
        let (mut live, mut cached) = teacher_and_cached_steps(&x, options);
        assert!(!live.cached_targets() && cached.cached_targets());
        let batch = DistillBatch::new(x.clone(), CLUSTERS.to_vec());
        let a = live.forward(&batch, &ctx()).unwrap();
        let b = cached
            .forward(&batch.with_indices(INDICES.to_vec()), &ctx())
            .unwrap();
        let (la, lb) = (scalar(&a.loss), scalar(&b.loss));
        assert!((la - lb).abs() < 1e-5, "{options:?}: {la} vs {lb}");
        assert_eq!(a.metrics.len(), b.metrics.len());
        let (ga, gb) = (a.loss.backward().unwrap(), b.loss.backward().unwrap());
        for ((name, va), (name_b, vb)) in live.parameters().iter().zip(cached.parameters()) {
            assert_eq!(name, &name_b);
            let (Some(ga), Some(gb)) = (ga.get(va), gb.get(&vb)) else {
                continue;
            };
            let diff = scalar(&(ga - gb).unwrap().abs().unwrap().max_all().unwrap());
            assert!(
                diff < 1e-4,
                "{options:?}: gradient of {name} differs by {diff}"
            );
        }
    }
}

#[test]
fn a_cached_step_has_no_teacher_and_reads_targets_by_index_only() {
    let x = images(31, 6);
    let (_, mut cached) = teacher_and_cached_steps(&x, DistillOptions::default());
    assert!(cached.teachers().is_none(), "no teacher can run");
    assert_eq!(cached.num_experts(), 2);
    let batch = DistillBatch::new(x.clone(), CLUSTERS.to_vec());
    let err = cached.forward(&batch, &ctx()).err().unwrap().to_string();
    assert!(err.contains("dataset index"), "{err}");
    let err = cached
        .forward(&batch.clone().with_indices(vec![1, 2, 3, 4, 5, N]), &ctx())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("image 10") && err.contains("10 images"),
        "{err}"
    );
    let err = cached
        .forward(&batch.with_indices(vec![1, 2]), &ctx())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("2 image indices"), "{err}");

    // Targets of another width than the heads regress are refused when the step is built.
    let cache = CachedTargets::new(
        Tensor::ones((N, 3), DType::F32, &Device::Cpu).unwrap(),
        None,
        0,
    )
    .unwrap();
    let err = DistillStep::with_cached_targets(
        &small_model(),
        cache,
        7,
        &Device::Cpu,
        DistillOptions::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("width 3"), "{err}");
}

#[test]
fn the_student_learns_from_cached_targets_with_its_moclr_term() {
    let x = images(32, 6);
    let options = DistillOptions {
        student_moclr: Some(crate::StudentMoclr {
            weight: 1.0,
            temperature: 0.2,
            ema_momentum: 0.99,
            anneal: false,
        }),
        ..DistillOptions::default()
    };
    let (_, mut step) = teacher_and_cached_steps(&x, options);
    let batch = DistillBatch {
        second_view: Some(images(33, 6)),
        ..DistillBatch::new(x, CLUSTERS.to_vec()).with_indices(INDICES.to_vec())
    };
    let mut opt = dnc_engine::OptimizerConfig::Sgd(dnc_engine::SgdConfig {
        base_lr: 1.0,
        ..Default::default()
    })
    .build()
    .unwrap();
    let params = step.parameters();
    let regression = |out: &StepOutput| -> f64 {
        out.metrics
            .iter()
            .filter(|(n, _)| n == "loss_base" || n == "loss_experts")
            .map(|(_, v)| v)
            .sum()
    };
    let mut losses = Vec::new();
    for _ in 0..15 {
        let out = step.forward(&batch, &ctx()).unwrap();
        losses.push(regression(&out));
        opt.step(&params, &out.loss.backward().unwrap(), 0.5)
            .unwrap();
        step.after_update(&ctx()).unwrap();
    }
    assert!(losses[14] < 0.7 * losses[0], "regression losses {losses:?}");
}
