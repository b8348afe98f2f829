//! Running means over steps, per-epoch summaries and the report [`fit`](fn@crate::fit) returns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Sums over a window of steps (a logging window or an epoch), from which means are taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunningMeans {
    /// Steps accumulated.
    pub steps: usize,
    /// Examples seen.
    pub examples: usize,
    /// Wall-clock seconds spent in these steps.
    pub seconds: f64,
    /// Sum of the losses.
    pub loss_sum: f64,
    /// Per metric: sum and number of steps that reported it.
    pub metrics: BTreeMap<String, (f64, usize)>,
}

impl RunningMeans {
    /// Adds one step.
    pub fn push(&mut self, loss: f64, examples: usize, seconds: f64, metrics: &[(String, f64)]) {
        self.steps += 1;
        self.examples += examples;
        self.seconds += seconds;
        self.loss_sum += loss;
        for (name, value) in metrics {
            let entry = self.metrics.entry(name.clone()).or_insert((0.0, 0));
            entry.0 += value;
            entry.1 += 1;
        }
    }

    /// Mean loss (NaN when empty).
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.steps as f64
    }

    /// Examples per second (0 when no time has passed).
    pub fn examples_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.examples as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Mean of every metric.
    pub fn metric_means(&self) -> BTreeMap<String, f64> {
        self.metrics
            .iter()
            .map(|(k, (sum, n))| (k.clone(), sum / *n as f64))
            .collect()
    }

    /// The mean of `name`, where `"loss"` is the loss.
    pub fn mean_of(&self, name: &str) -> Option<f64> {
        if name == "loss" {
            return (self.steps > 0).then(|| self.loss());
        }
        self.metrics.get(name).map(|(sum, n)| sum / *n as f64)
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochSummary {
    /// The epoch (from 0).
    pub epoch: usize,
    /// Steps taken in the epoch.
    pub steps: usize,
    /// Mean loss.
    pub loss: f64,
    /// Mean of every named metric.
    pub metrics: BTreeMap<String, f64>,
    /// Examples per second.
    pub images_per_s: f64,
    /// Wall-clock seconds of training steps.
    pub seconds: f64,
}

impl EpochSummary {
    pub fn from_means(epoch: usize, means: &RunningMeans) -> Self {
        Self {
            epoch,
            steps: means.steps,
            loss: means.loss(),
            metrics: means.metric_means(),
            images_per_s: means.examples_per_s(),
            seconds: means.seconds,
        }
    }
}

/// The best value of the tracked metric so far, and where it was reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestRecord {
    pub metric: String,
    pub value: f64,
    pub epoch: usize,
    pub global_step: usize,
}

/// Why [`fit`](fn@crate::fit) returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitOutcome {
    /// Every epoch was trained (or a resumed checkpoint was already finished).
    Completed,
    /// `max_steps` was reached; a final checkpoint was written.
    MaxSteps,
    /// The `stop_after` hook fired: the run stopped as a crash would, writing nothing more.
    Interrupted,
}

/// The result of [`fit`](fn@crate::fit).
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    pub outcome: FitOutcome,
    /// Steps done in total, including those before a resume.
    pub global_step: usize,
    /// Steps of the whole run.
    pub total_steps: usize,
    /// The global step of the checkpoint the run resumed from, if any.
    pub resumed_from: Option<usize>,
    /// The loss of the last step taken by this call (NaN if none was).
    pub last_loss: f64,
    /// One summary per finished epoch, including epochs before a resume.
    pub epochs: Vec<EpochSummary>,
    /// The best value of the tracked metric, if one is tracked.
    pub best: Option<BestRecord>,
    /// Wall-clock seconds of this call.
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_average_losses_metrics_and_throughput() {
        let mut m = RunningMeans::default();
        m.push(2.0, 10, 0.5, &[("acc".into(), 0.5)]);
        m.push(4.0, 30, 1.5, &[("acc".into(), 1.0), ("x".into(), 3.0)]);
        assert_eq!(m.loss(), 3.0);
        assert_eq!(m.examples_per_s(), 20.0);
        assert_eq!(m.mean_of("acc"), Some(0.75));
        assert_eq!(m.mean_of("x"), Some(3.0));
        assert_eq!(m.mean_of("loss"), Some(3.0));
        assert_eq!(m.mean_of("y"), None);
        let s = EpochSummary::from_means(1, &m);
        assert_eq!(
            (s.steps, s.loss, s.images_per_s, s.seconds),
            (2, 3.0, 20.0, 2.0)
        );
        assert_eq!(RunningMeans::default().mean_of("loss"), None);
        assert_eq!(RunningMeans::default().examples_per_s(), 0.0);
    }
}
