//! `fit` on the toy step: crash and resume, max_steps, refused starts.

use super::harness::{Outcome, config, optimizers, train};
use super::toy::ToyStep;
use super::*;
use crate::checkpoint::CheckpointStore;
use crate::optim::OptimizerConfig;
use crate::report::FitOutcome;

/// Weights (online and target, parameters and buffers), momentum buffers and losses agree
/// bit for bit.
#[track_caller]
fn assert_identical(a: &Outcome, b: &Outcome) {
    assert_eq!(ToyStep::bits(&a.step.online), ToyStep::bits(&b.step.online));
    assert_eq!(ToyStep::bits(&a.step.target), ToyStep::bits(&b.step.target));
    assert_eq!(a.buffers, b.buffers);
    let losses = |r: &FitReport| {
        r.epochs
            .iter()
            .map(|e| e.loss.to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&a.report), losses(&b.report));
    assert_eq!(a.report.last_loss.to_bits(), b.report.last_loss.to_bits());
}

#[test]
fn crash_and_resume_is_bit_identical_to_an_uninterrupted_run() {
    for opt in optimizers() {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, ckpt) = (config(), dir.path().join("b"));
        let io = FitIo::new("base").with_checkpoints(dir.path().join("a"));
        let full = train(1, &opt, &cfg, io).unwrap();
        assert_eq!(
            (full.report.outcome, full.report.global_step),
            (FitOutcome::Completed, 12)
        );

        // Crash after step 7: the last checkpoint is step 6, inside epoch 1 (batch 2).
        let io = FitIo::new("base")
            .with_checkpoints(&ckpt)
            .with_stop_after(7);
        let crashed = train(1, &opt, &cfg, io).unwrap();
        assert_eq!(crashed.report.outcome, FitOutcome::Interrupted);
        let s = CheckpointStore::new(&ckpt, 2)
            .latest()
            .unwrap()
            .unwrap()
            .state;
        assert_eq!((s.global_step, s.epoch, s.batch_in_epoch), (6, 1, 2));

        // A new process: other initial weights, empty optimiser, resumed from step 6.
        let io = FitIo::new("base").with_checkpoints(&ckpt).with_resume(true);
        let resumed = train(99, &opt, &cfg, io).unwrap();
        assert_eq!(resumed.report.outcome, FitOutcome::Completed);
        assert_eq!(resumed.report.resumed_from, Some(6));
        let first = resumed
            .step
            .seen
            .first()
            .map(|c| (c.step, c.epoch, c.batch));
        assert_eq!(first, Some((6, 1, 2)));
        assert_identical(&resumed, &full);
        assert_eq!(
            resumed.buffers.len(),
            2,
            "weight and bias; no buffer for running stats"
        );
        assert_ne!(
            ToyStep::bits(&full.step.online),
            ToyStep::bits(&ToyStep::new(1).online)
        );
        if let OptimizerConfig::Sgd(_) = opt {
            // The toy learns: the last epoch's error is well below the first.
            let mse = |e: usize| full.report.epochs[e].metrics["mse"];
            assert!(mse(2) < 0.2 * mse(0), "{:?}", full.report.epochs);
        }
    }
}

#[test]
fn max_steps_stops_with_a_checkpoint_and_resume_finishes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("base");
    let opt = &optimizers()[1];
    let latest = || {
        CheckpointStore::new(&ckpt, 2)
            .latest()
            .unwrap()
            .unwrap()
            .state
    };
    let resume = || FitIo::new("base").with_checkpoints(&ckpt).with_resume(true);
    let cfg = FitConfig {
        max_steps: Some(5),
        ..config()
    };
    let first = train(1, opt, &cfg, FitIo::new("base").with_checkpoints(&ckpt)).unwrap();
    assert_eq!(
        (first.report.outcome, first.report.global_step),
        (FitOutcome::MaxSteps, 5)
    );
    assert_eq!((latest().global_step, latest().finished), (5, false));

    let rest = train(2, opt, &config(), resume()).unwrap();
    assert_eq!(
        (rest.report.outcome, rest.report.global_step),
        (FitOutcome::Completed, 12)
    );
    assert_eq!(rest.report.epochs.len(), 3);
    assert!(latest().finished);

    // Resuming a finished run trains nothing and reports the saved history.
    let again = train(3, opt, &config(), resume()).unwrap();
    let (outcome, from) = (again.report.outcome, again.report.resumed_from);
    assert_eq!((outcome, from), (FitOutcome::Completed, Some(12)));
    assert!(again.step.seen.is_empty());
    assert_eq!(again.report.epochs, rest.report.epochs);
    assert_eq!(
        ToyStep::bits(&again.step.online),
        ToyStep::bits(&rest.step.online)
    );
}

/// The message of the error `train` ends with.
fn refused(opt: &OptimizerConfig, cfg: &FitConfig, io: FitIo<'_>) -> String {
    train(1, opt, cfg, io)
        .err()
        .expect("the run is refused")
        .to_string()
}

#[test]
fn unsafe_starts_and_incompatible_resumes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("base");
    let [sgd, lars] = optimizers();
    let two = FitConfig {
        max_steps: Some(2),
        ..config()
    };
    train(1, &sgd, &two, FitIo::new("base").with_checkpoints(&ckpt)).unwrap();

    let msg = refused(&sgd, &config(), FitIo::new("base").with_checkpoints(&ckpt));
    assert!(
        msg.contains("already holds checkpoints (latest at step 2)"),
        "{msg}"
    );

    let resume = |stage: &str| FitIo::new(stage).with_checkpoints(&ckpt).with_resume(true);
    let longer = FitConfig {
        epochs: 4,
        ..config()
    };
    let msg = refused(&sgd, &longer, resume("base"));
    assert!(
        msg.contains("a run of 12 steps (4 per epoch), this run has 16 (4 per epoch)"),
        "{msg}"
    );

    let msg = refused(&lars, &config(), resume("distill"));
    assert!(
        msg.contains("stage \"base\", this run trains \"distill\""),
        "{msg}"
    );
    assert!(
        msg.contains("optimiser is \"sgd\", this run uses \"lars\""),
        "{msg}"
    );
}
