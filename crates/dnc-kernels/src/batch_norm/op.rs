//! Training-mode batch normalisation (Ioffe & Szegedy, arXiv 1502.03167) as a candle custom op.
//!
//! The forward pass makes one pass over the input for the per-channel statistics and one for
//! the normalisation; the backward pass one for the two gradient sums and one for the closed-form
//! input gradient
//! `dx = w·σ⁻¹·(dy − mean(dy) − x̂·mean(dy·x̂))`, `dw = Σ dy·x̂`, `db = Σ dy`,
//! where `x̂ = (x − μ)·σ⁻¹` and `σ = sqrt(var + eps)` with the biased batch variance.

use super::affine::{InputGradCoefficients, input_grad, normalize};
use super::moments::{Gated, Nlc, channel_moments};
use super::sync::{MomentSums, current as synced_sums, sum_or_panic};
use crate::error::KernelError;
use crate::float::{Float, grad_tensor, has_cpu_kernel, output, with_slice, with_slices};
use crate::op3::{Grads3, Kernel3, Op3};
use candle_core::{DType, Result, Tensor};
use std::sync::Arc;

/// Normalises `x` with its own batch statistics, then scales by `weight` and shifts by `bias`
/// (PyTorch's `BatchNorm` in training mode, without the running-statistics update).
///
/// Returns `(y, mean, var)`: the output, and the per-channel batch mean and **biased** batch
/// variance (divided by `N·H·W`) for the caller's running statistics; `mean` and `var` carry no
/// gradient. Gradients flow to `x`, `weight` and `bias`.
///
/// On the CPU in `f32` or `f64` this runs fused kernels, in parallel over images and channels;
/// elsewhere (CUDA, Metal, half precision) it is composed from candle ops, with the same
/// results and gradients.
///
/// # Shapes
/// `x`: `[N, C]` or `[N, C, ...]` (e.g. `[N, C, H, W]`); `weight`, `bias`: `[C]` →
/// (`y`: shape of `x`, `mean`: `[C]`, `var`: `[C]`).
pub fn batch_norm_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    batch_norm(x, weight, bias, eps, false)
}

/// [`batch_norm_train`] followed by a ReLU, fused: `y = max(0, bn(x))`, with the ReLU mask
/// applied inside the batch-norm backward pass instead of through a separate op. `mean` and
/// `var` are the statistics of `x`, as in [`batch_norm_train`].
///
/// # Shapes
/// As [`batch_norm_train`].
pub fn batch_norm_relu_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    batch_norm(x, weight, bias, eps, true)
}

fn batch_norm(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let s = check_args(x, weight, bias, eps)?;
    if has_cpu_kernel(x) {
        match x.dtype() {
            DType::F32 => cpu_batch_norm::<f32>(s, x, weight, bias, eps, relu),
            _ => cpu_batch_norm::<f64>(s, x, weight, bias, eps, relu),
        }
    } else {
        let (y, mean, var) = composed_batch_norm(s, x, weight, bias, eps)?;
        Ok((if relu { y.relu()? } else { y }, mean, var))
    }
}

/// Refuses an `eps` that is negative or not finite.
pub(super) fn check_eps(op: &'static str, eps: f64) -> Result<()> {
    if !(eps.is_finite() && eps >= 0.0) {
        Err(KernelError::Parameter {
            op,
            what: format!("eps must be finite and >= 0, got {eps}"),
        })?
    }
    Ok(())
}

pub(super) fn check_args(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Nlc> {
    let op = "batch_norm_train";
    let dims = x.dims();
    if dims.len() < 2 || dims.contains(&0) {
        Err(KernelError::Shape {
            op,
            what: format!("needs a non-empty input of rank 2 or more, got {dims:?}"),
        })?
    }
    let c = dims[1];
    if weight.dims() != [c] || bias.dims() != [c] {
        Err(KernelError::Shape {
            op,
            what: format!(
                "input {dims:?} has {c} channels but weight is {:?} and bias {:?}",
                weight.dims(),
                bias.dims()
            ),
        })?
    }
    check_eps(op, eps)?;
    for t in [weight, bias] {
        if t.dtype() != x.dtype() || !t.device().same_device(x.device()) {
            Err(KernelError::Mismatch {
                op,
                what: format!(
                    "input is {:?} on {:?}, parameter is {:?} on {:?}",
                    x.dtype(),
                    x.device(),
                    t.dtype(),
                    t.device()
                ),
            })?
        }
    }
    Ok(Nlc {
        n: dims[0],
        c,
        l: dims[2..].iter().product(),
    })
}

/// The fused CPU path: statistics here, normalisation and backward in [`BatchNormOp`].
fn cpu_batch_norm<T: Float>(
    s: Nlc,
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let x = x.contiguous()?;
    let (stats, mean_t, var_t) = batch_stats::<T>(s, &x, eps)?;
    let op = BatchNormOp { s, stats, relu };
    let y = x.apply_op3(&weight.contiguous()?, &bias.contiguous()?, Op3(op))?;
    Ok((y, mean_t, var_t))
}

/// The per-channel batch statistics of a contiguous `x`: the shared [`Stats`] of the forward
/// and backward passes, and the mean and biased variance as `[C]` tensors of `x`'s dtype.
pub(super) fn batch_stats<T: Float>(
    s: Nlc,
    x: &Tensor,
    eps: f64,
) -> Result<(Arc<Stats>, Tensor, Tensor)> {
    let (stats, var) = with_slice::<T, _>("batch_norm_train", x, |xs| Ok(slice_stats(s, xs, eps)))?;
    let to_tensor = |v: &[f64]| Tensor::from_vec(cast::<T>(v), s.c, x.device());
    let (mean_t, var_t) = (to_tensor(&stats.mean)?, to_tensor(&var)?);
    Ok((Arc::new(stats), mean_t, var_t))
}

/// The batch statistics of `xs` (`[N, C, L]`) and the biased variance per channel; over every
/// process of the group while a [`synced_batch_norm`](super::synced_batch_norm) guard lives.
pub(crate) fn slice_stats<T: Float>(s: Nlc, xs: &[T], eps: f64) -> (Stats, Vec<f64>) {
    // Shifting by each channel's first value keeps E[x²] − E[x]² well conditioned.
    let shift: Vec<T> = (0..s.c).map(|ch| xs[ch * s.l]).collect();
    let u = Gated {
        values: xs,
        shift: &shift,
        gate: None,
    };
    let sums = channel_moments(s, u, xs, &shift);
    if let Some(sync) = synced_sums() {
        return synced_stats(s, &sums, &shift, eps, sync);
    }
    let count = s.count() as f64;
    let (mean, var): (Vec<f64>, Vec<f64>) = sums
        .iter()
        .zip(&shift)
        .map(|(&(s1, s2), sh)| {
            let d = s1 / count;
            (sh.to_f64() + d, (s2 / count - d * d).max(0.0))
        })
        .unzip();
    let stats = Stats {
        inv_std: var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect(),
        mean,
        count,
        sync: None,
    };
    (stats, var)
}

/// The statistics of the whole batch from this process's shifted sums `Σ(x − shift)`,
/// `Σ(x − shift)²`: made plain (`Σx`, `Σx²`), summed over the processes with the counts.
fn synced_stats<T: Float>(
    s: Nlc,
    sums: &[(f64, f64)],
    shift: &[T],
    eps: f64,
    sync: Arc<dyn MomentSums>,
) -> (Stats, Vec<f64>) {
    let n = s.count() as f64;
    let mut plain = Vec::with_capacity(2 * s.c + 1);
    plain.extend(
        sums.iter()
            .zip(shift)
            .map(|(&(s1, _), sh)| s1 + n * sh.to_f64()),
    );
    plain.extend(sums.iter().zip(shift).map(|(&(s1, s2), sh)| {
        let sh = sh.to_f64();
        s2 + 2.0 * sh * s1 + n * sh * sh
    }));
    plain.push(n);
    sum_or_panic(&*sync, &mut plain);
    let count = plain[2 * s.c];
    let (mean, var): (Vec<f64>, Vec<f64>) = (0..s.c)
        .map(|ch| {
            let m = plain[ch] / count;
            (m, (plain[s.c + ch] / count - m * m).max(0.0))
        })
        .unzip();
    let stats = Stats {
        inv_std: var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect(),
        mean,
        count,
        sync: Some(sync),
    };
    (stats, var)
}

pub(super) fn cast<T: Float>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

/// Batch statistics shared by the forward and backward passes.
pub(crate) struct Stats {
    pub(crate) mean: Vec<f64>,
    inv_std: Vec<f64>,
    /// The values per channel the statistics cover (every process's, when synchronised).
    count: f64,
    /// Where the backward pass sums its input-gradient terms when the statistics are synced.
    sync: Option<Arc<dyn MomentSums>>,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("mean", &self.mean)
            .field("inv_std", &self.inv_std)
            .field("count", &self.count)
            .field("synced", &self.sync.is_some())
            .finish()
    }
}

/// `y = (x − μ)·σ⁻¹·weight + bias` with precomputed `μ`, `σ⁻¹`, then `max(y, 0)` when `relu`.
pub(super) struct BatchNormOp {
    pub(super) s: Nlc,
    pub(super) stats: Arc<Stats>,
    pub(super) relu: bool,
}

impl BatchNormOp {
    /// The per-channel `(scale, offset)` with `bn(x) = x·scale + offset`.
    pub(super) fn scale_offset<T: Float>(&self, w: &[T], b: &[T]) -> (Vec<T>, Vec<T>) {
        let st = &self.stats;
        let scale: Vec<f64> = w
            .iter()
            .zip(&st.inv_std)
            .map(|(w, i)| w.to_f64() * i)
            .collect();
        let offset: Vec<f64> = (0..self.s.c)
            .map(|ch| b[ch].to_f64() - st.mean[ch] * scale[ch])
            .collect();
        (cast(&scale), cast(&offset))
    }

    /// The gradients; `y` is the op's output, whose sign is the ReLU mask when `relu`.
    fn backward<T: Float>(
        &self,
        x: &Tensor,
        w: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<Grads<T>> {
        let op = "batch_norm_train";
        with_slices::<T, _, 4>(op, [x, w, y, dy], |[xs, ws, ys, dys]| {
            let gate = self.relu.then_some(ys);
            Ok(self.grads(ws, xs, dys, gate, x.track_op()))
        })
    }

    /// `db = Σ dỹ`, `dw = σ⁻¹·Σ dỹ·(x − μ)`, and `dx` when `need_dx`, with `dỹ = dy·[gate > 0]`,
    /// for the batch-norm weight `weight`.
    pub(super) fn grads<T: Float>(
        &self,
        weight: &[T],
        xs: &[T],
        dys: &[T],
        gate: Option<&[T]>,
        need_dx: bool,
    ) -> Grads<T> {
        let (s, st) = (self.s, &self.stats);
        let zeros = vec![T::ZERO; s.c];
        let dy = Gated {
            values: dys,
            shift: &zeros,
            gate,
        };
        let sums = channel_moments(s, dy, xs, &cast(&st.mean));
        let db: Vec<f64> = sums.iter().map(|p| p.0).collect();
        let dw: Vec<f64> = sums.iter().zip(&st.inv_std).map(|(p, i)| p.1 * i).collect();
        let dx = need_dx.then(|| {
            // dx = k1·dỹ + k2·x + k3 per channel, from
            // dx = w·σ⁻¹·(dỹ − db/N − x̂·dw/N) and x̂ = (x − μ)·σ⁻¹, with the sums over the
            // whole batch (every process's, when synchronised).
            let count = st.count;
            let (db_all, dw_all) = match &st.sync {
                None => (db.clone(), dw.clone()),
                Some(sync) => {
                    let mut both = [db.clone(), dw.clone()].concat();
                    sum_or_panic(&**sync, &mut both);
                    let dw_all = both.split_off(s.c);
                    (both, dw_all)
                }
            };
            let (mut k1, mut k2, mut k3) = (vec![0.0; s.c], vec![0.0; s.c], vec![0.0; s.c]);
            for ch in 0..s.c {
                let inv = st.inv_std[ch];
                k1[ch] = weight[ch].to_f64() * inv;
                k2[ch] = -k1[ch] * inv * dw_all[ch] / count;
                k3[ch] = -k1[ch] * db_all[ch] / count - k2[ch] * st.mean[ch];
            }
            let k = InputGradCoefficients {
                k1: cast(&k1),
                k2: cast(&k2),
                k3: cast(&k3),
            };
            let mut dx = output(xs.len());
            input_grad(s, &mut dx, dy, xs, &k);
            dx
        });
        Grads {
            dx,
            dw: cast(&dw),
            db: cast(&db),
        }
    }
}

pub(super) struct Grads<T> {
    pub(super) dx: Option<Vec<T>>,
    pub(super) dw: Vec<T>,
    pub(super) db: Vec<T>,
}

impl<T: Float> Grads<T> {
    /// The gradients of `(x, weight, bias)` as tensors, each only if that input takes one.
    pub(super) fn into_tensors(self, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Grads3> {
        let dw = w.track_op().then_some(self.dw);
        let db = b.track_op().then_some(self.db);
        Ok((
            grad_tensor(self.dx, x)?,
            grad_tensor(dw, w)?,
            grad_tensor(db, b)?,
        ))
    }

    /// The gradient of the `[2, C]` stack of weight and bias, if `params` takes one.
    pub(super) fn stacked(dw: Vec<T>, db: Vec<T>, params: &Tensor) -> Result<Option<Tensor>> {
        grad_tensor(params.track_op().then(|| [dw, db].concat()), params)
    }
}

impl Kernel3 for BatchNormOp {
    fn op_name(&self) -> &'static str {
        "dnc-batch-norm-train"
    }

    fn forward<T: Float>(&self, x: &[T], w: &[T], b: &[T]) -> Vec<T> {
        let (scale, offset) = self.scale_offset(w, b);
        let mut y = output(x.len());
        normalize(self.s, &mut y, x, &scale, &offset, self.relu);
        y
    }

    fn gradients<T: Float>(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<Grads3> {
        self.backward::<T>(x, w, y, dy)?.into_tensors(x, w, b)
    }
}

/// The same computation from candle ops, for devices and dtypes without a fused kernel.
/// Half-precision inputs are normalised in `f32`.
pub(super) fn composed_batch_norm(
    s: Nlc,
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let dtype = x.dtype();
    let compute = match dtype {
        DType::F16 | DType::BF16 => DType::F32,
        d => d,
    };
    let xs = x.reshape((s.n, s.c, s.l))?.to_dtype(compute)?;
    let count = s.count() as f64;
    let mean = (xs.sum_keepdim(2)?.sum_keepdim(0)? / count)?;
    let centred = xs.broadcast_sub(&mean)?;
    let var = (centred.sqr()?.sum_keepdim(2)?.sum_keepdim(0)? / count)?;
    let scale = weight
        .to_dtype(compute)?
        .reshape((1, s.c, 1))?
        .broadcast_div(&(&var + eps)?.sqrt()?)?;
    let y = centred
        .broadcast_mul(&scale)?
        .broadcast_add(&bias.to_dtype(compute)?.reshape((1, s.c, 1))?)?
        .to_dtype(dtype)?
        .reshape(x.shape())?;
    let stat = |t: &Tensor| t.detach().flatten_all()?.to_dtype(dtype);
    Ok((y, stat(&mean)?, stat(&var)?))
}
