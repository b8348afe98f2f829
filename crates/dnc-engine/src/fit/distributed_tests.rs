//! `fit` over several ranks (threads of a [`dnc_dist::LocalGroup`]): the same training as one
//! process with the whole batch, checkpoints from rank 0, resumes at another world size.

use std::path::Path;

use super::harness::{Outcome, config, optimizers, read_lines, train_on};
use super::toy::{ToySource, ToyStep};
use super::*;
use crate::metrics::MetricsWriter;
use crate::optim::OptimizerConfig;
use crate::report::FitOutcome;
use dnc_dist::LocalGroup;

/// What one rank of a run is given: its checkpoint folder, whether it resumes, where it stops.
#[derive(Clone, Default)]
struct RankIo {
    checkpoints: Option<std::path::PathBuf>,
    metrics: Option<std::path::PathBuf>,
    resume: bool,
    stop_after: Option<usize>,
    empty_at: Vec<(usize, usize, usize)>,
    short_at: Vec<(usize, usize, usize)>,
}

/// Trains the toy step on `world` ranks (threads), each on its share of every batch; the
/// outcomes in rank order.
fn train_ranks(world: usize, opt: &OptimizerConfig, io: &RankIo) -> Vec<Outcome> {
    LocalGroup::run(world, |comm| {
        let rank = comm.rank();
        let mut source = ToySource::new(4);
        source.share = (rank, world);
        source.empty_at = io
            .empty_at
            .iter()
            .filter(|(r, _, _)| *r == rank)
            .map(|(_, e, b)| (*e, *b))
            .collect();
        source.short_at = io
            .short_at
            .iter()
            .filter(|(r, _, _)| *r == rank)
            .map(|(_, e, b)| (*e, *b))
            .collect();
        let mut writer = io
            .metrics
            .as_deref()
            .map(|p| MetricsWriter::open(p).unwrap());
        let mut fit_io = FitIo::new("base").with_resume(io.resume);
        if let Some(dir) = &io.checkpoints {
            fit_io = fit_io.with_checkpoints(dir);
        }
        if let Some(w) = writer.as_mut() {
            fit_io = fit_io.with_metrics(w);
        }
        if let Some(n) = io.stop_after {
            fit_io = fit_io.with_stop_after(n);
        }
        train_on(&source, 1, opt, &config(), fit_io).unwrap()
    })
}

fn values(map: &candle_nn::VarMap) -> Vec<(String, Vec<f32>)> {
    ToyStep::bits(map)
        .into_iter()
        .filter(|(name, _)| !dnc_core::is_buffer(name))
        .map(|(n, bits)| (n, bits.into_iter().map(f32::from_bits).collect()))
        .collect()
}

#[track_caller]
fn assert_close_weights(a: &Outcome, b: &Outcome, tol: f32) {
    for (map_a, map_b) in [
        (&a.step.online, &b.step.online),
        (&a.step.target, &b.step.target),
    ] {
        for ((name, va), (_, vb)) in values(map_a).iter().zip(values(map_b).iter()) {
            for (x, y) in va.iter().zip(vb) {
                assert!((x - y).abs() <= tol * (1.0 + x.abs()), "{name}: {x} vs {y}");
            }
        }
    }
}

fn epoch_losses(o: &Outcome) -> Vec<f64> {
    o.report.epochs.iter().map(|e| e.loss).collect()
}

#[test]
fn two_ranks_with_half_batches_train_as_one_rank_with_the_whole_batch() {
    for opt in optimizers() {
        let one = train_ranks(1, &opt, &RankIo::default()).remove(0);
        let two = train_ranks(2, &opt, &RankIo::default());
        // Both ranks hold the same parameters, bit for bit (every reduction is summed in rank
        // order on every rank); their running buffers are their own shares' statistics.
        assert_eq!(values(&two[0].step.online), values(&two[1].step.online));
        for rank in &two {
            assert_close_weights(rank, &one, 1e-5);
            for (a, b) in epoch_losses(rank).iter().zip(epoch_losses(&one)) {
                assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
            }
            assert_eq!(rank.report.epochs.len(), one.report.epochs.len());
        }
        assert_eq!(two[0].report.outcome, FitOutcome::Completed);
    }
}

#[test]
fn only_rank_zero_writes_and_a_resume_at_another_world_size_continues_the_run() {
    let opt = &optimizers()[0];
    let one = train_ranks(1, opt, &RankIo::default()).remove(0);
    for (first, second) in [(2, 1), (1, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("ckpt");
        let metrics = dir.path().join("metrics.jsonl");
        let crashed = RankIo {
            checkpoints: Some(ckpt.clone()),
            metrics: Some(metrics.clone()),
            stop_after: Some(7),
            ..RankIo::default()
        };
        let out = train_ranks(first, opt, &crashed);
        assert!(
            out.iter()
                .all(|o| o.report.outcome == FitOutcome::Interrupted)
        );
        assert_one_writer(&metrics, 7);
        let resumed = RankIo {
            checkpoints: Some(ckpt.clone()),
            metrics: Some(metrics.clone()),
            resume: true,
            ..RankIo::default()
        };
        let out = train_ranks(second, opt, &resumed);
        for rank in &out {
            assert_eq!(rank.report.resumed_from, Some(6), "{first} -> {second}");
            assert_eq!(rank.report.outcome, FitOutcome::Completed);
            assert_close_weights(rank, &one, 1e-5);
        }
        assert_one_writer(&metrics, 12);
    }
}

/// The metrics file holds one record per logged step up to `last`: one writer, no duplicates.
#[track_caller]
fn assert_one_writer(metrics: &Path, last: usize) {
    let steps: Vec<u64> = read_lines(metrics)
        .iter()
        .filter(|r| r["kind"] == "step")
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (2..=last as u64).step_by(2).collect();
    assert_eq!(steps, expected);
}

#[test]
fn a_rank_without_its_share_or_with_a_smaller_one_makes_every_rank_skip_the_step() {
    let opt = &optimizers()[0];
    let io = RankIo {
        empty_at: vec![(1, 0, 2)],
        short_at: vec![(0, 1, 1)],
        ..RankIo::default()
    };
    let out = train_ranks(2, opt, &io);
    for rank in &out {
        let trained: Vec<usize> = rank.step.seen.iter().map(|c| c.step).collect();
        // Step 2 (rank 1 without a batch) and step 5 (epoch 1, batch 1: rank 0's share short).
        assert!(
            !trained.contains(&2) && !trained.contains(&5),
            "{trained:?}"
        );
        assert_eq!(trained.len(), 10);
    }
    // A metric that only rank 1 reports is logged by rank 1 and does not trouble rank 0.
    let has = |o: &Outcome| o.report.epochs[0].metrics.contains_key("rank_one_only");
    assert!(!has(&out[0]) && has(&out[1]));
    assert!(out[0].report.epochs[0].metrics.contains_key("mse"));
    // The ranks agree on every parameter, bit for bit.
    assert_eq!(values(&out[0].step.online), values(&out[1].step.online));
}
