//! `fit` on the toy step: schedule, NaN handling, metrics, best checkpoint, data errors.

use super::harness::{config, optimizers, read_lines, train};
use super::toy::{ToySource, ToyStep};
use super::*;
use crate::checkpoint::CheckpointStore;

#[test]
fn the_step_sees_the_schedule_and_its_position() {
    let opt = &optimizers()[0];
    let done = train(1, opt, &config(), FitIo::new("base")).unwrap();
    let schedule = LrSchedule::new(2.0 * 8.0 / 256.0, 4, 12);
    assert_eq!(done.step.seen.len(), 12);
    for (i, ctx) in done.step.seen.iter().enumerate() {
        assert_eq!((ctx.step, ctx.epoch, ctx.batch), (i, i / 4, i % 4));
        assert_eq!((ctx.total_steps, ctx.steps_per_epoch), (12, 4));
        assert_eq!(ctx.lr, schedule.at(i));
    }
    assert_eq!(
        done.step.seen[3].lr,
        2.0 * 8.0 / 256.0,
        "peak at the end of the warm-up"
    );
}

#[test]
fn a_nan_loss_stops_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, metrics_path) = (dir.path().join("base"), dir.path().join("metrics.jsonl"));
    let mut metrics = MetricsWriter::open(&metrics_path).unwrap();
    let cfg = FitConfig {
        checkpoint_every: 2,
        log_every: 1,
        ..config()
    };
    let mut step = ToyStep::new(1);
    step.nan_at = Some(5);
    let mut optimizer = optimizers()[1].build().unwrap();
    let io = FitIo::new("base")
        .with_checkpoints(&ckpt)
        .with_metrics(&mut metrics);
    let err = fit(&mut step, &ToySource::new(4), optimizer.as_mut(), &cfg, io).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("non-finite loss NaN at step 5 (epoch 1, batch 1)"),
        "{msg}"
    );

    // Nothing was written after the bad step: checkpoints 2 and 4, records up to step 5.
    let store = CheckpointStore::new(&ckpt, 2);
    let steps: Vec<usize> = store.list().unwrap().into_iter().map(|(s, _)| s).collect();
    assert_eq!(steps, [2, 4]);
    let steps = read_lines(&metrics_path)
        .iter()
        .map(|l| l["step"].as_u64().unwrap())
        .max();
    assert_eq!(steps, Some(5), "no record for the bad step");
    // The bad step changed no weight: they equal those of a clean run of 5 steps.
    let linear = |s: &ToyStep| {
        let bits = ToyStep::bits(&s.online);
        bits.into_iter()
            .filter(|(n, _)| n.starts_with("linear"))
            .collect::<Vec<_>>()
    };
    let five = FitConfig {
        max_steps: Some(5),
        ..cfg
    };
    let clean = train(1, &optimizers()[1], &five, FitIo::new("base")).unwrap();
    assert_eq!(linear(&step), linear(&clean.step));
}

#[test]
fn metrics_lines_carry_the_expected_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.jsonl");
    let mut metrics = MetricsWriter::open(&path).unwrap();
    let cfg = FitConfig {
        epochs: 2,
        log_every: 3,
        ..config()
    };
    train(
        1,
        &optimizers()[0],
        &cfg,
        FitIo::new("expert-0").with_metrics(&mut metrics),
    )
    .unwrap();
    let lines = read_lines(&path);
    let kinds: Vec<(String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_string(),
                l["step"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("step", 3),
        ("epoch", 4),
        ("step", 6),
        ("step", 8),
        ("epoch", 8),
    ];
    assert_eq!(kinds, expected.map(|(k, s)| (k.to_string(), s)));
    for line in &lines {
        let obj = line.as_object().unwrap();
        for key in [
            "stage",
            "kind",
            "epoch",
            "step",
            "loss",
            "lr",
            "images_per_s",
            "mse",
            "time",
        ] {
            assert!(obj.contains_key(key), "{key} missing in {line}");
        }
        assert_eq!(obj["stage"], "expert-0");
        assert!(obj["loss"].as_f64().unwrap() > 0.0);
        assert!(obj["images_per_s"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(lines[1]["epoch"], 0);
    assert_eq!(lines[4]["epoch"], 1);
}

#[test]
fn keep_best_writes_best_and_rejects_unknown_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("base");
    let cfg = FitConfig {
        keep_best: Some(KeepBest::default()),
        ..config()
    };
    let done = train(
        1,
        &optimizers()[0],
        &cfg,
        FitIo::new("base").with_checkpoints(&ckpt),
    )
    .unwrap();
    let best = done.report.best.clone().unwrap();
    let min = done
        .report
        .epochs
        .iter()
        .map(|e| e.loss)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(best.value, min);
    let on_disk = CheckpointStore::new(&ckpt, 2).best().unwrap().unwrap();
    assert_eq!(on_disk.state.global_step, best.global_step);

    let typo = FitConfig {
        keep_best: Some(KeepBest {
            metric: "mes".into(),
            mode: BestMode::Min,
        }),
        ..config()
    };
    let err = train(1, &optimizers()[0], &typo, FitIo::new("base"))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "invalid fit.keep_best.metric = mes: the train step reports only loss and [\"mse\"]"
    );
}

#[test]
fn data_errors_name_the_epoch_and_batch() {
    let mut step = ToyStep::new(1);
    let mut source = ToySource::new(4);
    source.fail_at = Some((1, 2));
    let mut optimizer = optimizers()[0].build().unwrap();
    let err = fit(
        &mut step,
        &source,
        optimizer.as_mut(),
        &config(),
        FitIo::new("base"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "data error in epoch 1, batch 2: corrupt batch 2"
    );
    assert_eq!(step.seen.len(), 6);
}

#[test]
fn a_position_without_a_batch_is_a_step_without_an_update() {
    let mut step = ToyStep::new(1);
    let mut source = ToySource::new(4);
    // The last position of epoch 0 and the first of epoch 2 have no usable examples.
    source.empty_at = vec![(0, 3), (2, 0)];
    let mut optimizer = optimizers()[0].build().unwrap();
    let report = fit(
        &mut step,
        &source,
        optimizer.as_mut(),
        &config(),
        FitIo::new("base"),
    )
    .unwrap();
    assert_eq!(report.outcome, crate::FitOutcome::Completed);
    assert_eq!(report.global_step, 12, "both positions count as steps");
    assert_eq!(report.epochs.len(), 3, "no epoch ends early");
    let trained: Vec<(usize, usize)> = step.seen.iter().map(|c| (c.epoch, c.batch)).collect();
    assert_eq!(trained.len(), 10);
    assert!(!trained.contains(&(0, 3)) && !trained.contains(&(2, 0)));
    // The steps after a skipped position keep their place in the schedule.
    assert_eq!((step.seen[3].step, step.seen[3].epoch), (4, 1));
}

#[test]
fn clipping_bounds_the_gradient_norm_and_logs_it() {
    // Plain SGD, no warm-up: the first step moves the weights by lr × the (clipped) gradient.
    let sgd = crate::optim::OptimizerConfig::Sgd(crate::optim::SgdConfig {
        base_lr: 0.5,
        momentum: 0.0,
        weight_decay: 0.0,
        nesterov: false,
    });
    let one_step = |clip: f64| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut metrics = MetricsWriter::open(&path).unwrap();
        let cfg = FitConfig {
            warmup_epochs: 0.0,
            max_steps: Some(1),
            log_every: 1,
            clip_grad_norm: clip,
            ..config()
        };
        let done = train(1, &sgd, &cfg, FitIo::new("base").with_metrics(&mut metrics)).unwrap();
        let lr = done.step.seen[0].lr;
        let lines = read_lines(&path);
        let moved: f64 = ToyStep::bits(&done.step.online)
            .iter()
            .zip(ToyStep::bits(&ToyStep::new(1).online))
            .filter(|((name, _), _)| name.starts_with("linear"))
            .flat_map(|((_, a), (_, b))| {
                a.iter()
                    .zip(b)
                    .map(|(x, y)| f64::from(f32::from_bits(*x) - f32::from_bits(y)))
                    .collect::<Vec<_>>()
            })
            .map(|d| d * d)
            .sum::<f64>()
            .sqrt();
        (
            moved / lr,
            lines[0].get("grad_norm").and_then(|v| v.as_f64()),
        )
    };
    let (free, logged) = one_step(0.0);
    assert!(logged.is_none(), "no grad_norm without clipping");
    let (clipped, norm) = one_step(0.01);
    let norm = norm.expect("grad_norm is logged with clipping");
    // The unclipped step moved by the gradient's norm; the clipped one by the limit.
    assert!((free - norm).abs() < 1e-3 * norm, "{free} vs {norm}");
    assert!(norm > 0.01);
    assert!((clipped - 0.01).abs() < 1e-4, "{clipped}");
    // A limit above the norm changes nothing.
    let (loose, _) = one_step(1e6);
    assert!((loose - free).abs() < 1e-6 * free, "{loose} vs {free}");
}
