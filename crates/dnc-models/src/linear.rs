//! Fully connected layers with PyTorch's default initialisation.
//!
//! `torch.nn.Linear` draws its weight with `kaiming_uniform_(a=√5)`, which is uniform on
//! ±1/√fan_in, and its bias uniform on the same interval. candle-nn's `linear` uses a different
//! weight initialisation, so heads are built here to start from PyTorch's distribution.

use candle_core::{Result, bail};
use candle_nn::{Init, Linear, VarBuilder};

/// A `Linear(in_dim, out_dim)` layer with `weight` (`[out, in]`) and optional `bias` (`[out]`)
/// under `vb`, initialised uniformly on ±1/√in_dim as in PyTorch.
pub fn linear(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    if in_dim == 0 || out_dim == 0 {
        bail!("linear layer needs non-zero sizes, got {in_dim} → {out_dim}")
    }
    let bound = 1.0 / (in_dim as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let bias = if bias {
        Some(vb.get_with_hints(out_dim, "bias", init)?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_err_contains, names_and_shapes, values};
    use candle_core::{DType, Device, Module, Tensor};
    use dnc_core::SeededVarMap;

    #[test]
    fn pytorch_default_init_and_affine_map() {
        let map = SeededVarMap::new(3);
        let vb = map.var_builder(DType::F64, &Device::Cpu);
        let lin = linear(100, 40, true, vb.pp("fc")).unwrap();
        let names = names_and_shapes(map.varmap());
        assert_eq!(
            names,
            vec![
                ("fc.bias".into(), vec![40]),
                ("fc.weight".into(), vec![40, 100])
            ]
        );
        let w = values(lin.weight());
        let b = values(lin.bias().unwrap());
        let bound = 0.1;
        assert!(w.iter().chain(&b).all(|v| v.abs() <= bound));
        // Uniform on ±0.1 has variance 0.01 / 3.
        let var = w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
        assert!((var * 300.0 - 1.0).abs() < 0.1, "{var}");
        // y = x Wᵀ + b, checked on a one-hot input that picks column 7 of W.
        let mut x = vec![0.0; 100];
        x[7] = 1.0;
        let y = lin
            .forward(&Tensor::from_vec(x, (1, 100), &Device::Cpu).unwrap())
            .unwrap();
        let y = values(&y);
        for o in 0..40 {
            assert!((y[o] - (w[o * 100 + 7] + b[o])).abs() < 1e-12);
        }
        assert_err_contains(linear(0, 3, false, vb), &["0 → 3"]);
    }
}
