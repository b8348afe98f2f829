//! Final weights of a stage: written atomically as safetensors, read back into fresh models.

use crate::error::PipelineError;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use dnc_core::SeededVarMap;
use dnc_models::{Encoder, EncoderConfig};
use std::collections::HashMap;
use std::path::Path;

/// Saves the variables of `map` whose names pass `keep` to `path` (temp file + rename).
pub(crate) fn save_vars(
    map: &VarMap,
    path: &Path,
    keep: impl Fn(&str) -> bool,
) -> Result<(), PipelineError> {
    let tensors: HashMap<String, Tensor> = {
        let data = map.data().lock().expect("varmap lock poisoned");
        data.iter()
            .filter(|(name, _)| keep(name))
            .map(|(name, var)| (name.clone(), var.as_detached_tensor()))
            .collect()
    };
    let tmp = crate::run_dir::temp_path(path)?;
    candle_core::safetensors::save(&tensors, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| PipelineError::io(path, e))
}

/// Saves an encoder's variables (`backbone.*`, `projector.*`), leaving out anything else the map
/// holds (a student's regression heads).
pub fn save_encoder(map: &VarMap, path: &Path) -> Result<(), PipelineError> {
    save_vars(map, path, |name| {
        name.starts_with("backbone.") || name.starts_with("projector.")
    })
}

/// A fresh encoder of `cfg` whose weights are read from `path`.
pub fn load_encoder(
    cfg: &EncoderConfig,
    path: &Path,
    device: &Device,
) -> Result<(Encoder, VarMap), PipelineError> {
    let map = SeededVarMap::new(0);
    let encoder = Encoder::new(cfg, map.var_builder(DType::F32, device))?;
    dnc_engine::load_varmap(map.varmap(), path)?;
    Ok((encoder, map.varmap().clone()))
}

/// A freshly initialised encoder (the "untrained" floor of every report).
pub fn fresh_encoder(
    cfg: &EncoderConfig,
    seed: u64,
    device: &Device,
) -> Result<(Encoder, VarMap), PipelineError> {
    let map = SeededVarMap::new(seed);
    let encoder = Encoder::new(cfg, map.var_builder(DType::F32, device))?;
    Ok((encoder, map.varmap().clone()))
}
