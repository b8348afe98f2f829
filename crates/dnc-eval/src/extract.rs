//! Streaming feature extraction: embed a dataset batch by batch into one `[N, D]` matrix.
//!
//! The evaluator knows nothing about datasets or models: the caller passes one closure that
//! builds the input batch for a range of item indices and one that embeds it.

use candle_core::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use std::ops::Range;

/// Embeds items `0..n_items` in consecutive batches of `batch_size` (the last one may be
/// shorter) and stacks the embeddings, in item order, on the device `embed` returns them on.
///
/// `make_batch(start..end)` returns the input tensor of those items (for example images
/// `[end - start, 3, H, W]`); `embed(&batch)` returns one feature row per item. Embeddings are
/// detached from any autograd graph. A progress bar on stderr counts items unless `quiet` is set
/// (indicatif also hides it when stderr is not a terminal). Errors of the closures are returned
/// as they are; a bad batch size or an embedding with the wrong number of rows becomes an `E`
/// built from a [`candle_core::Error`].
///
/// # Shapes
/// `embed` output per batch: `[end - start, D]` → result `[n_items, D]`.
pub fn extract_features<E, B, F>(
    n_items: usize,
    batch_size: usize,
    quiet: bool,
    mut make_batch: B,
    mut embed: F,
) -> Result<Tensor, E>
where
    E: From<candle_core::Error>,
    B: FnMut(Range<usize>) -> Result<Tensor, E>,
    F: FnMut(&Tensor) -> Result<Tensor, E>,
{
    if n_items == 0 || batch_size == 0 {
        return Err(candle_core::Error::msg(format!(
            "extract_features: n_items ({n_items}) and batch_size ({batch_size}) must be at least 1"
        ))
        .into());
    }
    let bar = progress_bar(n_items, quiet);
    let mut parts = Vec::with_capacity(n_items.div_ceil(batch_size));
    let mut width = None;
    for start in (0..n_items).step_by(batch_size) {
        let end = (start + batch_size).min(n_items);
        let batch = make_batch(start..end)?;
        let features = embed(&batch)?.detach();
        let d = check_batch(&features, start..end, width)?;
        width = Some(d);
        parts.push(features);
        bar.inc((end - start) as u64);
    }
    bar.finish_and_clear();
    tracing::debug!(n_items, dim = width, "extracted features");
    Ok(Tensor::cat(&parts, 0)?)
}

/// Checks that one batch's embeddings are `[end - start, D]` with the same `D` as before.
fn check_batch(
    features: &Tensor,
    range: Range<usize>,
    width: Option<usize>,
) -> candle_core::Result<usize> {
    let rows = range.len();
    match features.dims2() {
        Ok((n, d)) if n == rows && d > 0 && width.is_none_or(|w| w == d) => Ok(d),
        _ => candle_core::bail!(
            "extract_features: embedding of items {range:?} has shape {:?}, expected [{rows}, {}]",
            features.dims(),
            width.map_or("D".to_string(), |w| w.to_string())
        ),
    }
}

fn progress_bar(n_items: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(n_items as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {pos}/{len} items ({per_sec}, {elapsed} elapsed, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("embedding");
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Item `i` is the scalar image `i`; the embedding of `x` is `[x, 2x]`.
    fn items(r: Range<usize>) -> candle_core::Result<Tensor> {
        let v: Vec<f32> = r.map(|i| i as f32).collect();
        Tensor::from_vec(v.clone(), v.len(), &Device::Cpu)
    }

    fn embed(x: &Tensor) -> candle_core::Result<Tensor> {
        Tensor::stack(&[x.clone(), (x * 2.0)?], 1)
    }

    #[test]
    fn batches_are_stacked_in_item_order() {
        let mut ranges = Vec::new();
        let out = extract_features(
            7,
            3,
            true,
            |r| {
                ranges.push(r.clone());
                items(r)
            },
            embed,
        )
        .unwrap();
        assert_eq!(ranges, vec![0..3, 3..6, 6..7]);
        let expected: Vec<Vec<f32>> = (0..7).map(|i| vec![i as f32, 2.0 * i as f32]).collect();
        assert_eq!(out.to_vec2::<f32>().unwrap(), expected);
    }

    #[test]
    fn wrong_rows_width_or_sizes_are_errors() {
        let drop_one = |x: &Tensor| embed(&x.narrow(0, 0, x.dim(0)? - 1)?);
        let err = extract_features(4, 2, true, items, drop_one).unwrap_err();
        assert!(
            err.to_string().contains("items 0..2 has shape [1, 2]"),
            "{err}"
        );
        let mut calls = 0;
        let widen = |x: &Tensor| {
            calls += 1;
            let d = if calls == 1 { 2 } else { 3 };
            Tensor::zeros((x.dim(0)?, d), DType::F32, &Device::Cpu)
        };
        let err = extract_features(4, 2, true, items, widen).unwrap_err();
        assert!(err.to_string().contains("expected [2, 2]"), "{err}");
        assert!(extract_features(0, 2, true, items, embed).is_err());
        assert!(extract_features(3, 0, true, items, embed).is_err());
    }

    #[test]
    fn closure_errors_pass_through() {
        #[derive(Debug)]
        enum MyError {
            Data(usize),
            Tensor,
        }
        impl From<candle_core::Error> for MyError {
            fn from(_: candle_core::Error) -> Self {
                MyError::Tensor
            }
        }
        let fail_second = |r: Range<usize>| {
            if r.start > 0 {
                return Err(MyError::Data(r.start));
            }
            Ok(items(r)?)
        };
        let err = extract_features(4, 2, true, fail_second, |x| Ok(embed(x)?)).unwrap_err();
        assert!(matches!(err, MyError::Data(2)), "{err:?}");
    }
}
