//! Argument checks shared by the losses, so that every loss reports bad shapes and values the
//! same way (with the dims and values in the message).

use candle_core::{Result, Tensor, bail};

/// A softmax temperature must be a finite number above zero.
pub(crate) fn temperature(tau: f64, op: &str) -> Result<()> {
    if !(tau.is_finite() && tau > 0.0) {
        bail!("{op}: temperature must be finite and > 0, got {tau}")
    }
    Ok(())
}

/// Both tensors are `[B, D]` with the same `B` and `D`; returns `(B, D)`.
pub(crate) fn same_matrix(
    a: &Tensor,
    b: &Tensor,
    op: &str,
    names: (&str, &str),
) -> Result<(usize, usize)> {
    let (na, nb) = names;
    let (Ok(da), Ok(db)) = (a.dims2(), b.dims2()) else {
        bail!(
            "{op}: {na} and {nb} must be [B, D] matrices, got {na} {:?} and {nb} {:?}",
            a.dims(),
            b.dims()
        )
    };
    if da != db {
        bail!(
            "{op}: {na} and {nb} must have the same shape, got {na} {:?} and {nb} {:?}",
            a.dims(),
            b.dims()
        )
    }
    if a.dtype() != b.dtype() {
        bail!(
            "{op}: {na} and {nb} must have the same dtype, got {:?} and {:?}",
            a.dtype(),
            b.dtype()
        )
    }
    Ok(da)
}

/// `share` (`[b, D]`) is rows `first..first + b` of `whole` (`[N, D]`): same `D` and dtype,
/// inside it. Returns `(b, N)`.
pub(crate) fn share_of(
    share: &Tensor,
    whole: &Tensor,
    first: usize,
    op: &str,
    names: (&str, &str),
) -> Result<(usize, usize)> {
    let (ns, nw) = names;
    let (Ok((b, ds)), Ok((n, dw))) = (share.dims2(), whole.dims2()) else {
        bail!(
            "{op}: {ns} and {nw} must be [B, D] matrices, got {ns} {:?} and {nw} {:?}",
            share.dims(),
            whole.dims()
        )
    };
    if ds != dw || share.dtype() != whole.dtype() {
        bail!(
            "{op}: {ns} and {nw} must have the same width and dtype, got {ns} {:?} {:?} and {nw} {:?} {:?}",
            share.dims(),
            share.dtype(),
            whole.dims(),
            whole.dtype()
        )
    }
    if first + b > n {
        bail!(
            "{op}: the positives of {ns} would be rows {first}..{} of {nw}, which has {n} rows",
            first + b
        )
    }
    Ok((b, n))
}

/// A contrastive batch needs at least one negative, i.e. two rows.
pub(crate) fn contrastive_batch(b: usize, op: &str) -> Result<()> {
    if b < 2 {
        bail!("{op}: a contrastive batch needs at least 2 rows (1 negative), got B = {b}")
    }
    Ok(())
}

/// Mean over rows of `−log_p[i, target_i]`.
///
/// # Shapes
/// `log_p`: `[B, C]`, `targets`: `[B]` (u32) → scalar.
pub(crate) fn mean_nll(log_p: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let b = log_p.dim(0)?;
    log_p
        .gather(&targets.unsqueeze(1)?, 1)?
        .sum_all()?
        .affine(-1.0 / b as f64, 0.0)
}
