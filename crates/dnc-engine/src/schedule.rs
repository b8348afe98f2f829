//! Learning-rate schedule: linear warm-up, then cosine decay to zero, per step.
//!
//! The recipe of SimCLR/BYOL and of Divide and Contrast (Tian, Hénaff & van den Oord,
//! arXiv 2105.08054: 10 warm-up epochs, then cosine decay), with the peak scaled by the batch
//! size as `lr = base_lr · B / 256`. The formulas are those of `lr_at` in the PyTorch reference
//! `anchors/torch_ref.py`, so both implementations see the same learning rate at every step.

/// The linear scaling rule: `base_lr · batch_size / 256`.
pub fn scaled_lr(base_lr: f64, batch_size: usize) -> f64 {
    base_lr * batch_size as f64 / 256.0
}

/// Warm-up length in steps: `round(warmup_epochs · steps_per_epoch)`, rounding halves to even as
/// Python's `round` does.
pub fn warmup_steps(warmup_epochs: f64, steps_per_epoch: usize) -> usize {
    (warmup_epochs * steps_per_epoch as f64)
        .round_ties_even()
        .max(0.0) as usize
}

/// Linear warm-up to `peak` over `warmup_steps`, then cosine decay to 0 at `total_steps`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// The learning rate at the end of the warm-up.
    pub peak: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: usize,
    /// Steps of the whole run; the rate is 0 from here on.
    pub total_steps: usize,
}

impl LrSchedule {
    pub fn new(peak: f64, warmup_steps: usize, total_steps: usize) -> Self {
        Self {
            peak,
            warmup_steps,
            total_steps,
        }
    }

    /// The learning rate of step `step` (from 0): `peak · (step + 1) / warmup` during the
    /// warm-up, then `peak · ½ (1 + cos(π · min(1, (step − warmup) / max(1, total − warmup))))`.
    pub fn at(&self, step: usize) -> f64 {
        let warmup = self.warmup_steps;
        if warmup > 0 && step < warmup {
            return self.peak * (step + 1) as f64 / warmup as f64;
        }
        let span = self.total_steps.saturating_sub(warmup).max(1) as f64;
        let t = (step as f64 - warmup as f64) / span;
        self.peak * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from `lr_at` of anchors/torch_ref.py:
    //   import math
    //   def lr_at(step, total, warmup, peak):
    //       if warmup > 0 and step < warmup:
    //           return peak * (step + 1) / warmup
    //       t = (step - warmup) / max(1, total - warmup)
    //       return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    //   [lr_at(s, 100, 10, 0.6) for s in (0, 4, 9, 10, 11, 55, 99, 100, 150)]
    //   [lr_at(s, 8, 0, 0.01) for s in (0, 1, 7)]
    #[test]
    fn matches_the_reference_formula() {
        let peak = scaled_lr(0.3, 512);
        assert_eq!(peak, 0.6);
        let s = LrSchedule::new(peak, 10, 100);
        let expected = [
            (0, 0.06),
            (4, 0.3),
            (9, 0.6),
            (10, 0.6),
            (11, 0.5998172481057288),
            (55, 0.3),
            (99, 0.00018275189427127136),
            (100, 0.0),
            (150, 0.0),
        ];
        for (step, lr) in expected {
            assert!(
                (s.at(step) - lr).abs() < 1e-15,
                "step {step}: {} vs {lr}",
                s.at(step)
            );
        }
        let s = LrSchedule::new(0.01, 0, 8);
        for (step, lr) in [
            (0, 0.01),
            (1, 0.009619397662556433),
            (7, 0.0003806023374435663),
        ] {
            assert!(
                (s.at(step) - lr).abs() < 1e-17,
                "step {step}: {} vs {lr}",
                s.at(step)
            );
        }
    }

    #[test]
    fn warmup_rounds_like_python() {
        // Python: int(round(2.5)), int(round(1.5)), int(round(7.5)), int(round(2.6)) = 2, 2, 8, 3
        assert_eq!(warmup_steps(2.5, 1), 2);
        assert_eq!(warmup_steps(0.5, 3), 2);
        assert_eq!(warmup_steps(1.5, 5), 8);
        assert_eq!(warmup_steps(0.26, 10), 3);
        assert_eq!(warmup_steps(0.0, 10), 0);
    }

    #[test]
    fn warmup_longer_than_the_run_stays_linear() {
        let s = LrSchedule::new(1.0, 10, 5);
        assert_eq!(s.at(4), 0.5);
        assert_eq!(s.at(10), 1.0);
    }
}
