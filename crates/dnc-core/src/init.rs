//! Seeded weight initialisation behind candle's `VarBuilder`.
//!
//! candle's CPU device cannot be seeded (`Device::Cpu.set_seed` errors), so a model built from a
//! plain `VarMap` gets different weights on every run. [`SeededVarMap`] is a `VarBuilder` backend
//! that owns a `VarMap` and fills each new variable from a [`SeededRng`] stream derived from
//! `(seed, variable name)`: the same seed gives the same weights whatever the construction order
//! and whatever the device.

use crate::rng::SeededRng;
use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::{FanInOut, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};

/// A `VarMap` whose new variables are initialised from a seeded generator.
#[derive(Clone)]
pub struct SeededVarMap {
    varmap: VarMap,
    seed: u64,
}

impl SeededVarMap {
    pub fn new(seed: u64) -> Self {
        Self {
            varmap: VarMap::new(),
            seed,
        }
    }

    /// Wraps an existing map (for example one loaded from a checkpoint); new names still get
    /// seeded initial values.
    pub fn from_varmap(varmap: VarMap, seed: u64) -> Self {
        Self { varmap, seed }
    }

    /// The underlying map: all variables, parameters and buffers, by name.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A `VarBuilder` that creates (or reuses) variables in this map.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }
}

/// Draws the initial values of one variable from `rng`, following candle's `Init` semantics
/// (fan computed as candle and PyTorch do: `dims[1] * prod(dims[2..])` for fan-in).
pub fn sample_init(rng: &mut SeededRng, shape: &Shape, init: Init) -> Vec<f32> {
    let n = shape.elem_count();
    let uniform = |rng: &mut SeededRng, lo: f64, hi: f64| -> Vec<f32> {
        (0..n).map(|_| rng.uniform_range(lo, hi) as f32).collect()
    };
    let normal = |rng: &mut SeededRng, mean: f64, std: f64| -> Vec<f32> {
        (0..n).map(|_| (mean + std * rng.normal()) as f32).collect()
    };
    match init {
        Init::Const(c) => vec![c as f32; n],
        Init::Uniform { lo, up } => uniform(rng, lo, up),
        Init::Randn { mean, stdev } => normal(rng, mean, stdev),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let fan = match fan {
                FanInOut::FanIn => FanInOut::FanIn.for_shape(shape),
                FanInOut::FanOut => FanInOut::FanOut.for_shape(shape),
            };
            let std = non_linearity.gain() / (fan.max(1) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(rng, -bound, bound)
                }
                NormalOrUniform::Normal => normal(rng, 0.0, std),
            }
        }
    }
}

impl SimpleBackend for SeededVarMap {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = self.varmap.data().lock().expect("varmap lock poisoned");
        if let Some(var) = data.get(name) {
            if var.shape() != &s {
                candle_core::bail!(
                    "variable {name:?} has shape {:?}, but {s:?} was asked for",
                    var.shape()
                )
            }
            return Ok(var.as_tensor().clone());
        }
        let mut rng = SeededRng::derive_str(self.seed, name);
        let values = sample_init(&mut rng, &s, h);
        let tensor = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        let data = self.varmap.data().lock().expect("varmap lock poisoned");
        match data.get(name) {
            Some(v) => v.as_tensor().to_dtype(dtype)?.to_device(dev),
            None => candle_core::bail!("no variable named {name:?}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .expect("varmap lock poisoned")
            .contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::init::DEFAULT_KAIMING_NORMAL;

    fn build(seed: u64, order_ab: bool) -> (Vec<f32>, Vec<f32>) {
        let map = SeededVarMap::new(seed);
        let vb = map.var_builder(DType::F32, &Device::Cpu);
        let get = |n: &str| {
            vb.get_with_hints((64, 32, 3, 3), n, DEFAULT_KAIMING_NORMAL)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        if order_ab {
            let a = get("a");
            (a, get("b"))
        } else {
            let b = get("b");
            (get("a"), b)
        }
    }

    #[test]
    fn same_seed_same_weights_in_any_order() {
        let (a1, b1) = build(3, true);
        let (a2, b2) = build(3, false);
        assert_eq!(a1, a2);
        assert_eq!(b1, b2);
        assert_ne!(a1, b1);
        assert_ne!(build(4, true).0, a1);
    }

    #[test]
    fn kaiming_normal_has_the_right_scale() {
        let (a, _) = build(0, true);
        let var = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / a.len() as f64;
        let expected = 2.0 / (32.0 * 9.0);
        assert!((var / expected - 1.0).abs() < 0.05, "{var} vs {expected}");
    }

    #[test]
    fn existing_variables_are_reused_and_shape_checked() {
        let map = SeededVarMap::new(0);
        let vb = map.var_builder(DType::F32, &Device::Cpu);
        let x = vb.get_with_hints(4, "w", Init::Const(2.0)).unwrap();
        let y = vb.get_with_hints(4, "w", Init::Const(5.0)).unwrap();
        assert_eq!(x.to_vec1::<f32>().unwrap(), y.to_vec1::<f32>().unwrap());
        let err = vb.get_with_hints(5, "w", Init::Const(0.0)).unwrap_err();
        assert!(err.to_string().contains("\"w\""), "{err}");
        assert_eq!(map.varmap().all_vars().len(), 1);
    }
}
