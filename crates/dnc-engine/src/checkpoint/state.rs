//! `state.json`: where training stands when a checkpoint is written.

use serde::{Deserialize, Serialize};

use crate::report::{BestRecord, EpochSummary, RunningMeans};

/// The checkpoint format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Everything besides tensors that a resumed run needs, saved as `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingState {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The stage being trained (`"base"`, `"expert-3"`, ...).
    pub stage: String,
    /// The epoch of the next step (from 0); equals the number of epochs when finished.
    pub epoch: usize,
    /// Batches of `epoch` already trained: the loader resumes after them.
    pub batch_in_epoch: usize,
    /// Steps done in total.
    pub global_step: usize,
    /// Batches per epoch of the run that wrote the checkpoint.
    pub steps_per_epoch: usize,
    /// Steps of the whole run.
    pub total_steps: usize,
    /// The optimiser whose buffers are saved (`"sgd"`, `"lars"`).
    pub optimizer: String,
    /// The keys of the saved variable maps, one `<key>.safetensors` file each.
    pub keys: Vec<String>,
    /// `true` once every step has been taken.
    pub finished: bool,
    /// Summaries of the finished epochs.
    pub history: Vec<EpochSummary>,
    /// Sums over the part of `epoch` already trained, so that its summary covers the whole epoch.
    pub current: RunningMeans,
    /// The best value of the tracked metric so far.
    pub best: Option<BestRecord>,
    /// The train step's own state ([`TrainStep::extra_state`](crate::TrainStep::extra_state)).
    pub extra: serde_json::Value,
    /// Unix seconds at writing.
    pub time: f64,
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_survive_json_bit_for_bit() {
        // Resumed epoch summaries must equal uninterrupted ones, so the running sums saved in
        // state.json must parse back to the same bits.
        let mut current = RunningMeans::default();
        for x in [
            4.606403449926451e0,
            0.1 + 0.2,
            1.0 / 3.0,
            5.320030868053436,
            1e-300,
        ] {
            current.push(x, 8, x / 7.0, &[("mse".into(), x * 3.3)]);
        }
        let json = serde_json::to_string(&current).unwrap();
        let back: RunningMeans = serde_json::from_str(&json).unwrap();
        assert_eq!(back.loss_sum.to_bits(), current.loss_sum.to_bits());
        assert_eq!(back.seconds.to_bits(), current.seconds.to_bits());
        assert_eq!(
            back.metrics["mse"].0.to_bits(),
            current.metrics["mse"].0.to_bits()
        );
        let mut x = 0.9f64;
        for _ in 0..2000 {
            x = (x * 3.999 * (1.0 - x)).max(1e-9);
            let back: f64 = serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap();
            assert_eq!(back.to_bits(), x.to_bits(), "{x:e}");
        }
    }
}
