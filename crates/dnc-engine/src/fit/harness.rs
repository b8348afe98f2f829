//! Shared helpers of the `fit` tests: a standard configuration, two optimisers and a
//! train-and-collect function.

use std::path::Path;

use super::toy::{ToySource, ToyStep};
use super::{FitConfig, FitIo, fit};
use crate::error::EngineError;
use crate::optim::{LarsConfig, OptimizerConfig, SgdConfig};
use crate::report::FitReport;

/// 3 epochs of 4 batches, checkpoints every 3 steps, one warm-up epoch.
pub(super) fn config() -> FitConfig {
    FitConfig {
        epochs: 3,
        warmup_epochs: 1.0,
        log_every: 2,
        checkpoint_every: 3,
        keep_last: 2,
        quiet: true,
        ..FitConfig::default()
    }
}

pub(super) fn optimizers() -> [OptimizerConfig; 2] {
    [
        OptimizerConfig::Sgd(SgdConfig {
            base_lr: 2.0,
            nesterov: true,
            ..SgdConfig::default()
        }),
        OptimizerConfig::Lars(LarsConfig {
            base_lr: 2.0,
            weight_decay: 1e-3,
            ..LarsConfig::default()
        }),
    ]
}

pub(super) struct Outcome {
    pub(super) report: FitReport,
    pub(super) step: ToyStep,
    pub(super) buffers: Vec<(String, Vec<u32>)>,
}

pub(super) fn train(
    seed: u64,
    opt: &OptimizerConfig,
    cfg: &FitConfig,
    io: FitIo<'_>,
) -> Result<Outcome, EngineError> {
    train_on(&ToySource::new(4), seed, opt, cfg, io)
}

/// [`train`] on the batches of `source`.
pub(super) fn train_on(
    source: &ToySource,
    seed: u64,
    opt: &OptimizerConfig,
    cfg: &FitConfig,
    io: FitIo<'_>,
) -> Result<Outcome, EngineError> {
    let mut step = ToyStep::new(seed);
    let mut optimizer = opt.build()?;
    let report = fit(&mut step, source, optimizer.as_mut(), cfg, io)?;
    let buffers = optimizer
        .buffers()
        .names()
        .map(|n| {
            let t = optimizer.buffers().get(n).unwrap();
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            (n.to_string(), v.iter().map(|x| x.to_bits()).collect())
        })
        .collect();
    Ok(Outcome {
        report,
        step,
        buffers,
    })
}

pub(super) fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
