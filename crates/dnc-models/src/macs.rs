//! Counting a model's multiply-adds, for benchmarks that report achieved FLOP/s.
//!
//! Convolutions count themselves while [`count_conv_macs`] runs a closure (one relaxed atomic
//! load per convolution otherwise); fully connected layers, each applied once per image, are
//! counted from their weights ([`linear_macs`]). Batch norm, activations and pooling are not
//! counted: they are a small share of the work and not multiply-adds.

use candle_nn::VarMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static COUNTING: AtomicBool = AtomicBool::new(false);
static CONV_MACS: AtomicU64 = AtomicU64::new(0);

/// Runs `f` and returns what it returned with the multiply-adds of the convolutions it ran
/// (on any thread). Not reentrant: one count at a time per process.
pub fn count_conv_macs<R>(f: impl FnOnce() -> R) -> (R, u64) {
    CONV_MACS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let out = f();
    COUNTING.store(false, Ordering::Relaxed);
    (out, CONV_MACS.swap(0, Ordering::Relaxed))
}

/// Adds one convolution's multiply-adds when counting: every output value is a dot product of
/// `in_channels · kernel²` terms.
pub(crate) fn record_conv(output_values: usize, in_channels: usize, kernel: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        let macs = output_values as u64 * (in_channels * kernel * kernel) as u64;
        CONV_MACS.fetch_add(macs, Ordering::Relaxed);
    }
}

/// Multiply-adds per image of the fully connected layers of `varmap`: every rank-2 weight
/// `[out, in]` (a linear layer of a head, applied once per image).
pub fn linear_macs(varmap: &VarMap) -> u64 {
    let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
    data.iter()
        .filter(|(name, _)| name.ends_with("weight"))
        .filter(|(_, var)| var.as_tensor().rank() == 2)
        .map(|(_, var)| var.as_tensor().elem_count() as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Conv2d, Conv2dConfig};
    use candle_core::{DType, Device, Tensor};
    use dnc_core::SeededVarMap;

    #[test]
    fn convolutions_and_linear_layers_are_counted() {
        let map = SeededVarMap::new(0);
        let vb = map.var_builder(DType::F32, &Device::Cpu);
        let conv = Conv2d::new(Conv2dConfig::new(3, 8, 3, 1, 1), vb.pp("conv")).unwrap();
        crate::linear(8, 4, true, vb.pp("fc")).unwrap();
        let x = Tensor::zeros((2, 3, 5, 5), DType::F32, &Device::Cpu).unwrap();
        let (y, macs) = count_conv_macs(|| conv.forward(&x).unwrap());
        assert_eq!(y.dims(), [2, 8, 5, 5]);
        // 2 images · 8 channels · 25 positions, each 3 · 3 · 3 multiply-adds.
        assert_eq!(macs, 2 * 8 * 25 * 27);
        // Not counting outside the closure.
        conv.forward(&x).unwrap();
        assert_eq!(count_conv_macs(|| ()).1, 0);
        // The conv weight is rank 4; the fully connected one is 8 → 4.
        assert_eq!(linear_macs(map.varmap()), 32);
    }
}
