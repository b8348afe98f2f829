//! Tests of the MoCLR step: gradient routing, the EMA target and a short training run.

use super::*;
use dnc_core::SeededRng;
use dnc_models::{Arch, BackboneConfig, ProjectorConfig};
use dnc_objectives::Objective;

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

fn batch(seed: u64, b: usize) -> ViewPair {
    let mut rng = SeededRng::new(seed);
    let mut view = || {
        let v: Vec<f32> = (0..b * 3 * 8 * 8).map(|_| rng.normal() as f32).collect();
        Tensor::from_vec(v, (b, 3, 8, 8), &Device::Cpu).unwrap()
    };
    ViewPair {
        view1: view(),
        view2: view(),
    }
}

fn ctx(step: usize, total: usize) -> StepContext {
    StepContext {
        epoch: 0,
        batch: step,
        step,
        total_steps: total,
        steps_per_epoch: total,
        lr: 0.1,
    }
}

fn values(map: &VarMap, name: &str) -> Vec<f32> {
    let data = map.data().lock().unwrap();
    data[name]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn target_starts_as_a_copy_and_receives_no_gradient() {
    let mut step = MoclrStep::new(&small_model(), MoclrConfig::default(), 3, &Device::Cpu).unwrap();
    let target = step.target_vars().unwrap().clone();
    let name = "backbone.features.0.weight";
    assert_eq!(values(step.online_vars(), name), values(&target, name));

    let out = step.forward(&batch(1, 6), &ctx(0, 10)).unwrap();
    let grads = out.loss.backward().unwrap();
    for (name, var) in step.parameters() {
        let g = grads
            .get(&var)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm > 0.0, "zero gradient for {name}");
    }
    for var in target.all_vars() {
        assert!(grads.get(&var).is_none(), "the target got a gradient");
    }
    assert!(
        step.parameters()
            .iter()
            .all(|(n, _)| !dnc_core::is_buffer(n))
    );
}

#[test]
fn the_target_network_records_no_graph_and_sees_updates_of_its_variables() {
    let model = small_model();
    let step = MoclrStep::new(&model, MoclrConfig::default(), 3, &Device::Cpu).unwrap();
    let (target, target_vars) = step.target.as_ref().unwrap();
    let x = batch(2, 4).view1;
    let before = target.forward_t(&x, false).unwrap().z;
    assert!(
        !before.track_op(),
        "the target's forward recorded an autograd graph"
    );
    // New weights written into the map (as EMA steps and checkpoint loads do) are what the
    // target network computes with.
    let other = SeededVarMap::new(99);
    let reference = Encoder::new(&model, other.var_builder(DType::F32, &Device::Cpu)).unwrap();
    copy_vars(target_vars, other.varmap()).unwrap();
    let after = target.forward_t(&x, false).unwrap().z;
    let want = reference.forward_t(&x, false).unwrap().z;
    let diff = |a: &Tensor, b: &Tensor| {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert_eq!(diff(&after, &want), 0.0);
    assert!(diff(&after, &before) > 0.0);
}

#[test]
fn after_update_moves_the_target_by_the_scheduled_momentum() {
    let mut step = MoclrStep::new(&small_model(), MoclrConfig::default(), 3, &Device::Cpu).unwrap();
    let name = "projector.0.weight";
    // Move the online network away from the target, then apply one EMA update at step 0.
    let online = step.online_vars().data().lock().unwrap()[name].clone();
    let before_target = values(step.target_vars().unwrap(), name);
    online
        .set(&online.as_tensor().affine(1.0, 0.5).unwrap())
        .unwrap();
    step.after_update(&ctx(0, 10)).unwrap();
    let m = 0.996f32; // momentum_schedule(0, ..) = m0
    let after = values(step.target_vars().unwrap(), name);
    for (a, b) in after.iter().zip(&before_target) {
        let expected = m * b + (1.0 - m) * (b + 0.5);
        assert!((a - expected).abs() < 1e-6, "{a} vs {expected}");
    }
}

#[test]
fn simclr_has_no_target() {
    let cfg = MoclrConfig {
        objective: ObjectiveConfig {
            kind: Objective::Simclr,
            temperature: 0.2,
        },
        ..MoclrConfig::default()
    };
    let mut step = MoclrStep::new(&small_model(), cfg, 0, &Device::Cpu).unwrap();
    assert!(step.target_vars().is_none());
    assert_eq!(step.state().len(), 1);
    let out = step.forward(&batch(2, 4), &ctx(0, 1)).unwrap();
    assert!(out.loss.to_scalar::<f32>().unwrap().is_finite());
}

#[test]
fn init_from_copies_online_and_target() {
    let base = MoclrStep::new(&small_model(), MoclrConfig::default(), 1, &Device::Cpu).unwrap();
    let mut expert =
        MoclrStep::new(&small_model(), MoclrConfig::default(), 2, &Device::Cpu).unwrap();
    let name = "backbone.features.4.weight";
    assert_ne!(
        values(base.online_vars(), name),
        values(expert.online_vars(), name)
    );
    expert.init_from(base.online_vars()).unwrap();
    assert_eq!(
        values(base.online_vars(), name),
        values(expert.online_vars(), name)
    );
    assert_eq!(
        values(base.online_vars(), name),
        values(expert.target_vars().unwrap(), name)
    );
}

/// Twelve SGD steps on one batch with the encoder in `precision`; the losses.
fn train_on_a_fixed_batch(precision: dnc_models::Precision) -> Vec<f32> {
    let model = EncoderConfig {
        precision,
        ..small_model()
    };
    let mut step = MoclrStep::new(&model, MoclrConfig::default(), 5, &Device::Cpu).unwrap();
    let mut opt = dnc_engine::OptimizerConfig::Sgd(dnc_engine::SgdConfig {
        base_lr: 0.5,
        ..Default::default()
    })
    .build()
    .unwrap();
    let data = batch(7, 8);
    let params = step.parameters();
    let mut losses = Vec::new();
    for s in 0..12 {
        let out = step.forward(&data, &ctx(s, 12)).unwrap();
        losses.push(out.loss.to_scalar::<f32>().unwrap());
        let grads = out.loss.backward().unwrap();
        opt.step(&params, &grads, 0.5).unwrap();
        step.after_update(&ctx(s, 12)).unwrap();
    }
    losses
}

#[test]
fn a_few_sgd_steps_lower_the_loss_on_a_fixed_batch() {
    let losses = train_on_a_fixed_batch(dnc_models::Precision::F32);
    assert!(losses[11] < losses[0] - 0.05, "losses {losses:?}");
}

#[test]
fn bf16_mixed_precision_trains_with_f32_weights_and_loss() {
    let f32_losses = train_on_a_fixed_batch(dnc_models::Precision::F32);
    let losses = train_on_a_fixed_batch(dnc_models::Precision::Bf16);
    assert!(losses[11] < losses[0] - 0.05, "bf16 losses {losses:?}");
    // Same start (same weights, bf16 rounding only): the first losses agree closely but not
    // exactly, which shows the bf16 path really ran.
    let first = (losses[0] - f32_losses[0]).abs();
    assert!(
        first > 0.0 && first < 0.05,
        "first losses {} vs {}",
        losses[0],
        f32_losses[0]
    );
    let step = MoclrStep::new(
        &EncoderConfig {
            precision: dnc_models::Precision::Bf16,
            ..small_model()
        },
        MoclrConfig::default(),
        5,
        &Device::Cpu,
    )
    .unwrap();
    for (name, var) in step.parameters() {
        assert_eq!(var.dtype(), candle_core::DType::F32, "{name}");
    }
}

/// This rank's share of the batches `batch(100 + i, 8)`.
struct Shares {
    rank: usize,
    world: usize,
}

impl dnc_engine::BatchSource for Shares {
    type Batch = ViewPair;
    type Error = std::io::Error;

    fn batches_per_epoch(&self) -> usize {
        4
    }

    fn batch_size(&self) -> usize {
        8
    }

    fn epoch(
        &self,
        _epoch: usize,
        skip: usize,
    ) -> dnc_engine::EpochBatches<'_, ViewPair, std::io::Error> {
        let rows = 8 / self.world;
        Box::new((skip..4).map(move |i| {
            let whole = batch(100 + i as u64, 8);
            let share = |t: &Tensor| t.narrow(0, self.rank * rows, rows).unwrap();
            Ok(Some(ViewPair {
                view1: share(&whole.view1),
                view2: share(&whole.view2),
            }))
        }))
    }
}

/// Every variable of a map by name, sorted.
type NamedValues = Vec<(String, Vec<f32>)>;

/// Trains 4 steps through `dnc_engine::fit` on `world` ranks (threads); per rank, the last
/// loss and every online variable (buffers included).
fn train_data_parallel(world: usize, objective: Objective) -> Vec<(f64, NamedValues)> {
    dnc_dist::LocalGroup::run(world, |comm| {
        let rank = comm.rank();
        let cfg = MoclrConfig {
            objective: dnc_objectives::ObjectiveConfig {
                kind: objective,
                temperature: 0.2,
            },
            ..MoclrConfig::default()
        };
        let mut step = MoclrStep::new(&small_model(), cfg, 5, &Device::Cpu).unwrap();
        let mut opt = dnc_engine::OptimizerConfig::Sgd(dnc_engine::SgdConfig {
            base_lr: 4.0,
            ..Default::default()
        })
        .build()
        .unwrap();
        let fit_cfg = dnc_engine::FitConfig {
            epochs: 1,
            warmup_epochs: 0.0,
            quiet: true,
            ..Default::default()
        };
        let io = dnc_engine::FitIo::new("base");
        let report = dnc_engine::fit(
            &mut step,
            &Shares { rank, world },
            opt.as_mut(),
            &fit_cfg,
            io,
        )
        .unwrap();
        let data = step.online_vars().data().lock().unwrap();
        let mut vars: NamedValues = data
            .iter()
            .map(|(n, v)| (n.clone(), v.flatten_all().unwrap().to_vec1().unwrap()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        (report.last_loss, vars)
    })
}

#[test]
fn two_ranks_with_half_batches_train_as_one_process_with_the_whole_batch() {
    for objective in [Objective::Moclr, Objective::Simclr] {
        let one = train_data_parallel(1, objective).remove(0);
        let two = train_data_parallel(2, objective);
        // The weights moved: the comparison below is not between two untrained networks.
        let start = MoclrStep::new(&small_model(), MoclrConfig::default(), 5, &Device::Cpu)
            .unwrap()
            .online_vars()
            .data()
            .lock()
            .unwrap()["projector.0.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let trained = &one
            .1
            .iter()
            .find(|(n, _)| n == "projector.0.weight")
            .unwrap()
            .1;
        let moved = start
            .iter()
            .zip(trained)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            moved > 1e-3,
            "{objective:?}: the weights barely moved ({moved})"
        );
        for (loss, vars) in &two {
            assert!(
                (loss - one.0).abs() < 1e-4,
                "{objective:?}: loss {loss} vs {}",
                one.0
            );
            for ((name, a), (_, b)) in vars.iter().zip(&one.1) {
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        (x - y).abs() < 2e-4 * (1.0 + y.abs()),
                        "{objective:?} {name}: {x} vs {y}"
                    );
                }
            }
        }
    }
}
