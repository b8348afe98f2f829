//! Linear probe: multinomial logistic regression on standardised frozen features.
//!
//! The linear evaluation protocol of self-supervised learning (SimCLR, Chen et al. 2020; used by
//! the DnC paper, Tian et al. 2021, arXiv 2105.08054): the backbone is frozen and a linear
//! classifier is trained on its features. Features are standardised with the statistics of the
//! training split (applied unchanged to the test split); the classifier `logits = x·W + b` is
//! trained with cross-entropy by mini-batch SGD with momentum 0.9 (PyTorch's update rule), an L2
//! penalty on `W`, and a cosine learning-rate decay from `lr` to 0 over all steps. `W` and `b`
//! start at zero and batches are shuffled from `SeededRng::derive(seed, [epoch])`, so the same
//! seed gives the same probe.

use crate::accuracy::{Accuracy, score};
use crate::config::LinearProbeConfig;
use crate::error::EvalError;
use crate::input::{check_labels, feature_dims, same_dim};
use crate::standardize::Standardizer;
use candle_core::{DType, Device, Tensor, Var};
use dnc_core::SeededRng;

/// Momentum of the SGD update.
pub const MOMENTUM: f64 = 0.9;

/// Rows per forward pass when predicting.
const PREDICT_CHUNK: usize = 4096;

/// A trained linear classifier together with the standardisation it expects.
#[derive(Debug, Clone)]
pub struct LinearProbe {
    standardizer: Standardizer,
    weight: Tensor,
    bias: Tensor,
    train_loss: f64,
}

impl LinearProbe {
    /// Trains a probe on `train` features labelled `0..num_classes`.
    ///
    /// # Shapes
    /// `train`: `[N, D]`, `labels`: `N` → weight `[D, C]`, bias `[C]`.
    pub fn fit(
        train: &Tensor,
        labels: &[u32],
        num_classes: usize,
        config: &LinearProbeConfig,
    ) -> Result<Self, EvalError> {
        config.validate()?;
        let (n, d) = feature_dims(train, "train features")?;
        check_labels(labels, n, num_classes, "train labels")?;
        let standardizer = Standardizer::fit(train)?;
        let x = standardizer.apply(train)?;
        let y = Tensor::from_slice(labels, n, train.device())?;
        let mut sgd = Sgd::new(d, num_classes, config.weight_decay, train.device())?;
        let steps_per_epoch = n.div_ceil(config.batch_size);
        let total = (config.epochs * steps_per_epoch) as f64;
        let mut train_loss = f64::NAN;
        for epoch in 0..config.epochs {
            let order = SeededRng::derive(config.seed, &[epoch as u64]).permutation(n);
            let first_step = epoch * steps_per_epoch;
            let lr_at = |i: usize| {
                let t = (first_step + i) as f64;
                config.lr * 0.5 * (1.0 + (std::f64::consts::PI * t / total).cos())
            };
            let loss_sum = sgd.epoch(&x, &y, &order, config.batch_size, lr_at)?;
            train_loss = loss_sum / n as f64;
            if !train_loss.is_finite() {
                return Err(EvalError::Diverged {
                    epoch,
                    loss: train_loss,
                });
            }
            tracing::debug!(epoch, train_loss, "linear probe epoch");
        }
        Ok(Self {
            standardizer,
            weight: sgd.w.as_tensor().detach(),
            bias: sgd.b.as_tensor().detach(),
            train_loss,
        })
    }

    /// Class scores of raw (unstandardised) features.
    ///
    /// # Shapes
    /// `x`: `[M, D]` → `[M, C]`.
    pub fn logits(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.standardizer
            .apply(x)?
            .matmul(&self.weight)?
            .broadcast_add(&self.bias)
    }

    /// The highest-scoring class of every row of `x`.
    ///
    /// # Shapes
    /// `x`: `[M, D]` → `M` class indices.
    pub fn predict(&self, x: &Tensor) -> Result<Vec<u32>, EvalError> {
        let (m, d) = feature_dims(x, "features")?;
        same_dim(("the probe", self.weight.dim(0)?), ("features", d))?;
        let mut out = Vec::with_capacity(m);
        for start in (0..m).step_by(PREDICT_CHUNK) {
            let rows = PREDICT_CHUNK.min(m - start);
            let logits = self.logits(&x.narrow(0, start, rows)?)?;
            out.extend(logits.argmax(1)?.to_vec1::<u32>()?);
        }
        Ok(out)
    }

    /// Mean cross-entropy (without the L2 penalty) over the last training epoch.
    pub fn train_loss(&self) -> f64 {
        self.train_loss
    }

    /// The weight matrix `[D, C]`, acting on standardised features.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[C]`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// The train-split standardisation applied before the weights.
    pub fn standardizer(&self) -> &Standardizer {
        &self.standardizer
    }
}

/// Trains a probe on `train` and returns its top-1 and per-class accuracy on `test`.
///
/// # Shapes
/// `train`: `[N, D]`, `test`: `[M, D]`, labels one per row.
pub fn linear_probe_evaluate(
    train: &Tensor,
    train_labels: &[u32],
    test: &Tensor,
    test_labels: &[u32],
    num_classes: usize,
    config: &LinearProbeConfig,
) -> Result<Accuracy, EvalError> {
    let (m, d_test) = feature_dims(test, "test features")?;
    let (_, d_train) = feature_dims(train, "train features")?;
    same_dim(("train features", d_train), ("test features", d_test))?;
    check_labels(test_labels, m, num_classes, "test labels")?;
    let probe = LinearProbe::fit(train, train_labels, num_classes, config)?;
    let predictions = probe.predict(&test.to_device(train.device())?)?;
    let accuracy = score(&predictions, test_labels, num_classes)?;
    tracing::info!(
        train_loss = probe.train_loss(),
        top1 = accuracy.top1,
        "linear probe evaluated"
    );
    Ok(accuracy)
}

/// Weights, biases and momentum buffers of the probe being trained.
struct Sgd {
    w: Var,
    b: Var,
    vw: Tensor,
    vb: Tensor,
    weight_decay: f64,
}

impl Sgd {
    fn new(d: usize, c: usize, weight_decay: f64, device: &Device) -> candle_core::Result<Self> {
        let w = Var::zeros((d, c), DType::F32, device)?;
        let b = Var::zeros(c, DType::F32, device)?;
        let vw = w.zeros_like()?;
        let vb = b.zeros_like()?;
        Ok(Self {
            w,
            b,
            vw,
            vb,
            weight_decay,
        })
    }

    /// One pass over the rows of `x` in `order`, `batch_size` at a time, step `i` with learning
    /// rate `lr_at(i)`; returns the sum over rows of their batch's mean cross-entropy.
    fn epoch(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        order: &[usize],
        batch_size: usize,
        lr_at: impl Fn(usize) -> f64,
    ) -> candle_core::Result<f64> {
        // Accumulated on the device: one host transfer per epoch.
        let mut loss_sum = Tensor::zeros((), DType::F32, x.device())?;
        for (i, rows) in order.chunks(batch_size).enumerate() {
            let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
            let idx = Tensor::from_vec(idx, rows.len(), x.device())?;
            let loss = self.step(
                &x.index_select(&idx, 0)?,
                &y.index_select(&idx, 0)?,
                lr_at(i),
            )?;
            loss_sum = (loss_sum + (loss * rows.len() as f64)?)?;
        }
        Ok(f64::from(loss_sum.to_scalar::<f32>()?))
    }

    /// One update on a batch; returns the batch's mean cross-entropy (detached).
    ///
    /// `g = ∇ + wd·W`, `v ← μ·v + g`, `W ← W − lr·v` (the bias has no weight decay).
    fn step(&mut self, x: &Tensor, y: &Tensor, lr: f64) -> candle_core::Result<Tensor> {
        let logits = x
            .matmul(self.w.as_tensor())?
            .broadcast_add(self.b.as_tensor())?;
        let loss = candle_nn::loss::cross_entropy(&logits, y)?;
        let grads = loss.backward()?;
        let (Some(gw), Some(gb)) = (grads.get(&self.w), grads.get(&self.b)) else {
            candle_core::bail!("linear probe: the loss has no gradient for the weights or bias")
        };
        let gw = (gw + (self.w.as_tensor() * self.weight_decay)?)?;
        self.vw = ((&self.vw * MOMENTUM)? + gw)?;
        self.vb = ((&self.vb * MOMENTUM)? + gb)?;
        self.w.set(&(self.w.as_tensor() - (&self.vw * lr)?)?)?;
        self.b.set(&(self.b.as_tensor() - (&self.vb * lr)?)?)?;
        Ok(loss.detach())
    }
}

#[cfg(test)]
#[path = "linear_tests.rs"]
mod tests;
