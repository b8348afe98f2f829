//! Batch normalisation (Ioffe & Szegedy, arXiv 1502.03167) with PyTorch's training semantics.
//!
//! One type serves `BatchNorm1d` (`[N, C]`) and `BatchNorm2d` (`[N, C, H, W]`) inputs. Its four
//! variables use PyTorch's names (`weight`, `bias`, `running_mean`, `running_var`), so a map of
//! them loads into torchvision modules. In training the batch statistics normalise the input
//! (biased variance) and update the running statistics (unbiased variance, momentum 0.1), exactly
//! as `torch.nn.BatchNorm2d` does; in evaluation the running statistics are used.
//!
//! In data-parallel training with synchronised BatchNorm (`dnc_dist::Group`), the batch
//! statistics are taken over every rank's share of the batch (`dnc_dist::all_reduce_sum`,
//! which back-propagates), so that the ranks together normalise as one process with the whole
//! batch would; that path uses composed candle ops rather than the fused kernels.
//!
//! candle's own `BatchNorm` transposes its input to channel-first layout and copies it before
//! reducing; here the reductions run on a free `[N, C, L]` view, and all normalisation
//! arithmetic lives in [`normalize`], the one place a fused kernel would replace.

use std::sync::Arc;

use crate::conv::Conv2d;
use candle_core::{DType, Result, Tensor, Var, bail};
use candle_nn::{Init, VarBuilder};
use dnc_dist::Communicator;

/// Hyper-parameters of a [`BatchNorm`] layer; the defaults are PyTorch's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance before the square root (PyTorch: 1e-5).
    pub eps: f64,
    /// Weight of the current batch in the running statistics (PyTorch: 0.1).
    pub momentum: f64,
    /// Initial value of the scale γ: 1, or 0 for the last BatchNorm of a residual branch when
    /// zero-initialising residuals (Goyal et al., arXiv 1706.02677).
    pub weight_init: f64,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            momentum: 0.1,
            weight_init: 1.0,
        }
    }
}

/// A batch-normalisation layer over dimension 1 of its input.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

impl BatchNorm {
    /// Creates (or reuses) `weight`, `bias`, `running_mean`, `running_var` under `vb`,
    /// initialised to `cfg.weight_init`, 0, 0 and 1.
    pub fn new(num_features: usize, cfg: BatchNormConfig, vb: VarBuilder) -> Result<Self> {
        if !(cfg.eps >= 0.0 && (0.0..=1.0).contains(&cfg.momentum)) {
            bail!(
                "batch norm needs eps >= 0 and momentum in [0, 1], got eps {} and momentum {}",
                cfg.eps,
                cfg.momentum
            )
        }
        let weight = vb.get_with_hints(num_features, "weight", Init::Const(cfg.weight_init))?;
        let bias = vb.get_with_hints(num_features, "bias", Init::Const(0.0))?;
        let running_mean = vb.get_with_hints(num_features, "running_mean", Init::Const(0.0))?;
        let running_var = vb.get_with_hints(num_features, "running_var", Init::Const(1.0))?;
        Ok(Self {
            weight,
            bias,
            // A tensor that is already a variable (a `VarMap` entry) is shared, not copied, so
            // the running-statistics updates land in the map and are saved with it.
            running_mean: Var::from_tensor(&running_mean)?,
            running_var: Var::from_tensor(&running_var)?,
            eps: cfg.eps,
            momentum: cfg.momentum,
        })
    }

    pub fn num_features(&self) -> usize {
        self.weight.elem_count()
    }

    pub fn running_mean(&self) -> &Tensor {
        self.running_mean.as_tensor()
    }

    pub fn running_var(&self) -> &Tensor {
        self.running_var.as_tensor()
    }

    /// Normalises `xs` with batch statistics (and updates the running statistics) when `train`,
    /// with the running statistics otherwise.
    ///
    /// # Shapes
    /// `xs`: `[N, C]` or `[N, C, ...]` with `C = num_features` → same shape.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_impl(xs, train, false)
    }

    /// `relu(forward_t(xs, train))`, fused into one pass in training on the CPU.
    ///
    /// # Shapes
    /// `xs`: `[N, C]` or `[N, C, ...]` with `C = num_features` → same shape.
    pub fn forward_relu_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_impl(xs, train, true)
    }

    /// `relu(forward_t(xs, train) + residual)`: the tail of a residual block, fused into one
    /// pass (that keeps only its output for the backward pass) in training on the CPU.
    ///
    /// # Shapes
    /// `xs`, `residual`: `[N, C, ...]` with `C = num_features` → same shape.
    pub fn forward_add_relu_t(
        &self,
        xs: &Tensor,
        residual: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        if let Some(comm) = composed_sync(train, xs) {
            return (self.forward_synced(xs, &comm)? + residual)?.relu();
        }
        if train {
            let count = self.check_train_input(xs)?;
            let (_sync, ranks) = cpu_sync(train);
            let (ys, mean, var) = dnc_kernels::batch_norm_add_relu_train(
                xs,
                &self.weight,
                &self.bias,
                residual,
                self.eps,
            )?;
            self.update_running(&mean, &var, count * ranks)?;
            return Ok(ys);
        }
        (self.forward_impl(xs, false, false)? + residual)?.relu()
    }

    /// `max_pool_2x2(relu(forward_t(xs, train)))`, the tail of a stage of a plain conv net;
    /// one op in training on the CPU in `f32`/`f64`, which writes only the pooled output and
    /// keeps nothing full-size for the backward pass beyond `xs`.
    ///
    /// # Shapes
    /// `xs`: `[N, C, H, W]` with `C = num_features`, `H, W ≥ 2` → `[N, C, H/2, W/2]`.
    pub fn forward_relu_max_pool_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        if train && dnc_kernels::has_cpu_kernel(xs) {
            let count = self.check_train_input(xs)?;
            let (_sync, ranks) = cpu_sync(train);
            let (ys, mean, var) = dnc_kernels::batch_norm_relu_max_pool2x2_train(
                xs,
                &self.weight,
                &self.bias,
                self.eps,
            )?;
            self.update_running(&mean, &var, count * ranks)?;
            return Ok(ys);
        }
        crate::pool::max_pool_2x2(&self.forward_relu_t(xs, train)?)
    }

    /// `forward_t(conv.forward(xs), train)`: a convolution and this batch norm. In training on
    /// the CPU (f32 compute, a convolution without bias) the two are one op, so that the
    /// convolution's output gradient goes straight from the batch-norm backward to the
    /// convolution backward instead of through autograd's accumulation.
    ///
    /// # Shapes
    /// `xs`: `[N, in, H, W]` for `conv` with `out = num_features` channels →
    /// `[N, out, out_h, out_w]`.
    pub fn forward_conv_t(&self, conv: &Conv2d, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_conv_impl(conv, xs, train, ConvTail::Norm)
    }

    /// `relu(forward_conv_t(conv, xs, train))`, one op under the same conditions.
    ///
    /// # Shapes
    /// As [`Self::forward_conv_t`].
    pub fn forward_conv_relu_t(&self, conv: &Conv2d, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_conv_impl(conv, xs, train, ConvTail::Relu)
    }

    /// One stage of a plain conv net, `max_pool_2x2(relu(forward_t(conv.forward(xs), train)))`,
    /// one op under the conditions of [`Self::forward_conv_t`].
    ///
    /// # Shapes
    /// `xs`: `[N, in, H, W]` for `conv` with `out = num_features` channels →
    /// `[N, out, out_h/2, out_w/2]`.
    pub fn forward_conv_relu_max_pool_t(
        &self,
        conv: &Conv2d,
        xs: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        self.forward_conv_impl(conv, xs, train, ConvTail::ReluMaxPool)
    }

    fn forward_conv_impl(
        &self,
        conv: &Conv2d,
        xs: &Tensor,
        train: bool,
        tail: ConvTail,
    ) -> Result<Tensor> {
        let cfg = conv.config();
        // Where `Conv2d::forward` would cast to a lower precision, the fused op does not apply.
        let fused = train
            && !cfg.bias
            && dnc_kernels::has_cpu_kernel(xs)
            && crate::precision::computes_in_input_dtype(xs);
        if !fused {
            let ys = conv.forward(xs)?;
            return match tail {
                ConvTail::Norm => self.forward_t(&ys, train),
                ConvTail::Relu => self.forward_relu_t(&ys, train),
                ConvTail::ReluMaxPool => self.forward_relu_max_pool_t(&ys, train),
            };
        }
        if cfg.out_channels != self.num_features() {
            bail!(
                "batch norm over {} features follows a convolution to {} channels",
                self.num_features(),
                cfg.out_channels
            )
        }
        // Values per channel of the convolution's output: the batch times its plane.
        let geo = dnc_kernels::Conv2dGeometry::new(
            xs.dims(),
            conv.weight().dims(),
            cfg.stride,
            cfg.padding,
        )?;
        let [n, _, h, w] = geo.out_dims();
        let count = check_train_count(n * h * w)?;
        let (_sync, ranks) = cpu_sync(train);
        let op = match tail {
            ConvTail::Norm => dnc_kernels::conv2d_batch_norm_train,
            ConvTail::Relu => dnc_kernels::conv2d_batch_norm_relu_train,
            ConvTail::ReluMaxPool => dnc_kernels::conv2d_batch_norm_relu_max_pool2x2_train,
        };
        let (ys, mean, var) = op(
            xs,
            conv.weight(),
            &self.weight,
            &self.bias,
            cfg.stride,
            cfg.padding,
            self.eps,
        )?;
        self.update_running(&mean, &var, count * ranks)?;
        Ok(ys)
    }

    /// Checks that `xs` is `[N, C, ...]` with this layer's `C`.
    fn check_channels(&self, xs: &Tensor) -> Result<()> {
        let dims = xs.dims();
        if dims.len() < 2 || dims[1] != self.num_features() {
            bail!(
                "batch norm over {} features got an input of shape {:?}",
                self.num_features(),
                dims
            )
        }
        Ok(())
    }

    /// Checks the input's channels and returns the values per channel of a training batch.
    fn check_train_input(&self, xs: &Tensor) -> Result<usize> {
        self.check_channels(xs)?;
        let dims = xs.dims();
        check_train_count(dims[0] * dims[2..].iter().product::<usize>())
    }

    fn forward_impl(&self, xs: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        if let Some(comm) = composed_sync(train, xs) {
            let ys = self.forward_synced(xs, &comm)?;
            return if relu { ys.relu() } else { Ok(ys) };
        }
        if train {
            // Batch statistics through the fused kernel (composed candle ops off the CPU).
            let count = self.check_train_input(xs)?;
            let (_sync, ranks) = cpu_sync(train);
            let (ys, mean, var) = if relu {
                dnc_kernels::batch_norm_relu_train(xs, &self.weight, &self.bias, self.eps)?
            } else {
                dnc_kernels::batch_norm_train(xs, &self.weight, &self.bias, self.eps)?
            };
            self.update_running(&mean, &var, count * ranks)?;
            return Ok(ys);
        }
        self.check_channels(xs)?;
        let ys = self.normalize_eval(xs)?;
        if relu { ys.relu() } else { Ok(ys) }
    }

    /// Training-mode normalisation with the statistics of every rank's share of the batch:
    /// the mean, then the biased variance around it, each summed over ranks with the value
    /// counts. Updates the running statistics with them, so every rank's stay equal.
    fn forward_synced(&self, xs: &Tensor, comm: &Arc<dyn Communicator>) -> Result<Tensor> {
        let local_count = self.check_train_input(xs)?;
        let (x, compute) = ncl_compute(xs)?;
        let c = x.dim(1)?;
        let dev = x.device();
        // The value count travels with the sums, so that unequal shares are weighted right.
        let count = Tensor::new(&[local_count as f64], dev)?.to_dtype(compute)?;
        let sum_over_ranks = |per_channel: Tensor| -> Result<(Tensor, f64)> {
            let both = Tensor::cat(&[&per_channel.flatten_all()?, &count], 0)?;
            let both = dnc_dist::all_reduce_sum(&both, comm)?;
            let total = both
                .narrow(0, c, 1)?
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?[0];
            Ok((both.narrow(0, 0, c)?.reshape((1, c, 1))?, total))
        };
        let (sum, total) = sum_over_ranks(x.sum_keepdim(2)?.sum_keepdim(0)?)?;
        let mean = sum.affine(1.0 / total, 0.0)?;
        let centred = x.broadcast_sub(&mean)?;
        let (sq, _) = sum_over_ranks(centred.sqr()?.sum_keepdim(2)?.sum_keepdim(0)?)?;
        let var = sq.affine(1.0 / total, 0.0)?;
        let weight = self.weight.to_dtype(compute)?;
        let bias = self.bias.to_dtype(compute)?;
        let ys = normalize(&x, &mean, &var, &weight, &bias, self.eps)?;
        self.update_running(&mean, &var, check_train_count(total as usize)?)?;
        ys.to_dtype(xs.dtype())?.reshape(xs.dims())
    }

    /// Normalisation with the running statistics.
    fn normalize_eval(&self, xs: &Tensor) -> Result<Tensor> {
        let (x, compute) = ncl_compute(xs)?;
        let c = x.dim(1)?;
        let stat = |v: &Var| v.as_detached_tensor().to_dtype(compute)?.reshape((1, c, 1));
        let (mean, var) = (stat(&self.running_mean)?, stat(&self.running_var)?);
        let weight = self.weight.to_dtype(compute)?;
        let bias = self.bias.to_dtype(compute)?;
        normalize(&x, &mean, &var, &weight, &bias, self.eps)?
            .to_dtype(xs.dtype())?
            .reshape(xs.dims())
    }

    /// `running ← (1 − momentum)·running + momentum·batch`, with the unbiased batch variance,
    /// on detached values so that no gradient flows through the update.
    fn update_running(&self, mean: &Tensor, var: &Tensor, count: usize) -> Result<()> {
        let m = self.momentum;
        let unbiased = count as f64 / (count as f64 - 1.0);
        let update = |running: &Var, stat: &Tensor, scale: f64| -> Result<()> {
            let stat = stat.detach().flatten_all()?.to_dtype(running.dtype())?;
            let next = (running.as_detached_tensor().affine(1.0 - m, 0.0)?
                + stat.affine(m * scale, 0.0)?)?;
            running.set(&next)
        };
        update(&self.running_mean, mean, 1.0)?;
        update(&self.running_var, var, unbiased)
    }
}

/// `xs` (`[N, C, ...]`) as `[N, C, L]` (a free view of a contiguous input) in the dtype the
/// composed normalisation computes in (`f32` for half-precision inputs), and that dtype.
fn ncl_compute(xs: &Tensor) -> Result<(Tensor, DType)> {
    let dims = xs.dims();
    let l: usize = dims[2..].iter().product();
    let compute = match xs.dtype() {
        DType::F16 | DType::BF16 => DType::F32,
        d => d,
    };
    Ok((
        xs.reshape((dims[0], dims[1], l))?.to_dtype(compute)?,
        compute,
    ))
}

/// The communicator to synchronise batch statistics over, in training with more than one rank
/// and synchronisation on.
fn synced(train: bool) -> Option<Arc<dyn Communicator>> {
    if !train {
        return None;
    }
    dnc_dist::current().batch_norm_comm().cloned()
}

/// [`synced`], for an input the fused kernels do not take (off the CPU, half precision):
/// such inputs are normalised by composed ops ([`BatchNorm::forward_synced`]).
fn composed_sync(train: bool, xs: &Tensor) -> Option<Arc<dyn Communicator>> {
    if dnc_kernels::has_cpu_kernel(xs) {
        return None;
    }
    synced(train)
}

/// For the fused kernels: while synchronised, the guard under which they take the statistics
/// of every rank's share, and the number of ranks (the values the statistics cover are this
/// rank's times that: the loader gives every rank an equal share).
fn cpu_sync(train: bool) -> (Option<dnc_kernels::SyncedBatchNorm>, usize) {
    match synced(train) {
        Some(comm) => {
            let ranks = comm.world_size();
            let sums = Arc::new(RankSums(comm));
            (Some(dnc_kernels::synced_batch_norm(sums)), ranks)
        }
        None => (None, 1),
    }
}

/// Sums over the ranks of a group, for the fused kernels' statistics.
struct RankSums(Arc<dyn Communicator>);

impl dnc_kernels::MomentSums for RankSums {
    fn sum(&self, values: &mut [f64]) -> Result<()> {
        dnc_dist::all_reduce_sum_f64(&*self.0, values)
    }
}

/// What follows the batch norm in [`BatchNorm::forward_conv_impl`].
#[derive(Debug, Clone, Copy)]
enum ConvTail {
    Norm,
    Relu,
    ReluMaxPool,
}

/// Refuses a training batch with fewer than two values per channel (no variance to take).
fn check_train_count(count: usize) -> Result<usize> {
    if count < 2 {
        bail!("batch norm in training needs more than one value per channel, got {count}")
    }
    Ok(count)
}

/// `y = (x − mean) · weight / sqrt(var + eps) + bias`, computed as one per-channel scale and
/// shift so that only two passes touch the full-size tensor.
///
/// # Shapes
/// `x`: `[N, C, L]`; `mean`, `var`: `[1, C, 1]`; `weight`, `bias`: `[C]` → `[N, C, L]`.
fn normalize(
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let c = weight.elem_count();
    let scale = weight.reshape((1, c, 1))?.div(&(var + eps)?.sqrt()?)?;
    let shift = bias.reshape((1, c, 1))?.sub(&mean.mul(&scale)?)?;
    x.broadcast_mul(&scale)?.broadcast_add(&shift)
}

#[cfg(test)]
#[path = "batch_norm_tests.rs"]
mod tests;
