//! Stacking per-item CHW buffers into one batch tensor.

use candle_core::{Device, Result, Tensor, bail};

/// Stacks `B` buffers, each a `[C, H, W]` image in row-major order, into one tensor.
///
/// # Shapes
/// Each buffer: `C·H·W` values; returns `[B, C, H, W]` (f32) on `device`.
pub fn stack_chw<I>(buffers: I, chw: (usize, usize, usize), device: &Device) -> Result<Tensor>
where
    I: IntoIterator,
    I::Item: AsRef<[f32]>,
{
    let (c, h, w) = chw;
    let per_item = c * h * w;
    let mut data = Vec::new();
    let mut count = 0usize;
    for buffer in buffers {
        let buffer = buffer.as_ref();
        if buffer.len() != per_item {
            bail!(
                "stack_chw: buffer {count} holds {} values, expected C·H·W = {c}·{h}·{w} = {per_item}",
                buffer.len()
            )
        }
        data.extend_from_slice(buffer);
        count += 1;
    }
    Tensor::from_vec(data, (count, c, h, w), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_in_order_and_checks_lengths() {
        let a: Vec<f32> = (0..12).map(|x| x as f32).collect();
        let b: Vec<f32> = (100..112).map(|x| x as f32).collect();
        let t = stack_chw([&a, &b], (3, 2, 2), &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[2, 3, 2, 2]);
        // Item 1, channel 2, row 0, column 1 is b[2·4 + 0·2 + 1] = 109.
        let v: f32 = t
            .get(1)
            .unwrap()
            .get(2)
            .unwrap()
            .get(0)
            .unwrap()
            .get(1)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(v, 109.0);
        assert_eq!(
            t.get(0)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            a
        );
        let err = stack_chw([&a, &b[..11].to_vec()], (3, 2, 2), &Device::Cpu).unwrap_err();
        assert!(
            err.to_string().contains("buffer 1 holds 11 values"),
            "{err}"
        );
        let empty = stack_chw(Vec::<Vec<f32>>::new(), (3, 2, 2), &Device::Cpu).unwrap();
        assert_eq!(empty.dims(), &[0, 3, 2, 2]);
    }
}
