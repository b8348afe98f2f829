//! Momentum buffers by parameter name, with safetensors save and load.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Result, Shape, Tensor, Var};

use crate::checkpoint::tensors::{check_names, read_tensors, write_tensors};
use crate::error::EngineError;

/// The momentum buffer of every parameter that has been updated at least once.
#[derive(Debug, Clone, Default)]
pub struct MomentumBuffers {
    buffers: BTreeMap<String, Tensor>,
}

impl MomentumBuffers {
    pub fn new() -> Self {
        Self::default()
    }

    /// The buffer of parameter `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.buffers.get(name)
    }

    /// The number of buffers.
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }

    /// Parameter names with a buffer, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.buffers.keys().map(String::as_str)
    }

    /// Advances the buffer of `name` with the direction `d` and returns the step direction, as
    /// PyTorch's SGD does without dampening: `buf = μ·buf + d` (`buf = d` on the first step);
    /// the direction is `buf`, or `d + μ·buf` with Nesterov momentum. With `μ = 0` no buffer
    /// is kept and the direction is `d`.
    ///
    /// # Shapes
    /// `d`: the parameter's shape; returns the same shape.
    pub(crate) fn advance(
        &mut self,
        name: &str,
        d: Tensor,
        momentum: f64,
        nesterov: bool,
    ) -> Result<Tensor> {
        if momentum == 0.0 {
            return Ok(d);
        }
        let buf = match self.buffers.get(name) {
            Some(old) if old.shape() == d.shape() => (old.affine(momentum, 0.0)? + &d)?,
            Some(old) => candle_core::bail!(
                "momentum buffer of {name:?} has shape {:?}, the gradient {:?}",
                old.dims(),
                d.dims()
            ),
            None => d.clone(),
        };
        self.buffers.insert(name.to_string(), buf.clone());
        if nesterov {
            d + buf.affine(momentum, 0.0)?
        } else {
            Ok(buf)
        }
    }

    /// Writes the buffers to a safetensors file (one tensor per parameter name).
    pub fn save(&self, path: &Path) -> std::result::Result<(), EngineError> {
        let tensors: HashMap<String, Tensor> = self
            .buffers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        write_tensors(&tensors, path)
    }

    /// Replaces the buffers by those of a safetensors file, moved to the devices of `params`.
    /// Every buffer must belong to one of `params` with the same shape and dtype (parameters
    /// without a buffer are fine: they have not been updated yet); otherwise nothing changes
    /// and the error lists the differences.
    pub fn load(
        &mut self,
        path: &Path,
        params: &[(String, Var)],
    ) -> std::result::Result<(), EngineError> {
        let file = read_tensors(path)?;
        let expected: Vec<(String, Shape, DType)> = params
            .iter()
            .map(|(name, var)| (name.clone(), var.shape().clone(), var.dtype()))
            .collect();
        check_names(path, &file, &expected, true)?;
        let mut buffers = BTreeMap::new();
        for (name, var) in params {
            if let Some(t) = file.get(name) {
                buffers.insert(name.clone(), t.to_device(var.device())?);
            }
        }
        self.buffers = buffers;
        Ok(())
    }
}
