//! Embed every training image with the base model (SPEC step 2), once, without augmentation.
//!
//! `embed/features.safetensors` holds, row by row: `backbone` (the backbone output), `hidden`
//! (the projector's hidden layer after BatchNorm + ReLU, the paper's clustering features),
//! `output` (the projection), `indices` (dataset index of each row, u32) and `labels` (class id,
//! `u32::MAX` where unknown). The cluster stage and evaluation reuse it.

use crate::datasets::{Split, open_split, record_skipped};
use crate::error::PipelineError;
use crate::features::embed_dataset;
use crate::run::Run;
use crate::weights::load_encoder;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Label value of an image without a label.
pub(super) const NO_LABEL: u32 = u32::MAX;

pub(crate) fn features_path(run: &Run) -> PathBuf {
    run.dir.root().join("embed").join("features.safetensors")
}

pub(crate) fn run(run: &Run) -> Result<(), PipelineError> {
    let (encoder, _vars) = load_encoder(
        &run.cfg.model,
        &run.dir.root().join("base").join("model.safetensors"),
        &run.device,
    )?;
    let train = open_split(&run.cfg.data, Split::Train)?;
    let embedded = embed_dataset(&run.cfg, train.clone(), &run.device, "embed", |x| {
        let out = encoder.forward_t(x, false)?;
        Ok(vec![out.features, out.hidden, out.z])
    })?;
    let n = embedded.indices.len();
    let indices: Vec<u32> = embedded.indices.iter().map(|&i| i as u32).collect();
    let labels: Vec<u32> = embedded
        .labels
        .iter()
        .map(|l| l.unwrap_or(NO_LABEL))
        .collect();
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in ["backbone", "hidden", "output"]
        .iter()
        .zip(&embedded.outputs)
    {
        tensors.insert(name.to_string(), t.to_device(&Device::Cpu)?);
    }
    tensors.insert(
        "indices".into(),
        Tensor::from_vec(indices, n, &Device::Cpu)?,
    );
    tensors.insert("labels".into(), Tensor::from_vec(labels, n, &Device::Cpu)?);
    let path = features_path(run);
    let dir = run.dir.stage_dir("embed")?;
    let tmp = dir.join(".features.safetensors.tmp");
    candle_core::safetensors::save(&tensors, &tmp)?;
    std::fs::rename(&tmp, &path).map_err(|e| PipelineError::io(&path, e))?;
    tracing::info!("embedded {n} images into {}", path.display());
    record_skipped(run, "embed", &[&train])?;
    Ok(())
}

/// The stored features: one tensor by name, plus indices and labels.
pub(crate) struct Features {
    pub tensors: HashMap<String, Tensor>,
    pub indices: Vec<u32>,
    pub labels: Vec<u32>,
}

pub(crate) fn load_features(path: &Path, device: &Device) -> Result<Features, PipelineError> {
    let mut tensors = candle_core::safetensors::load(path, device).map_err(|e| {
        PipelineError::Other(format!("{}: cannot read features: {e}", path.display()))
    })?;
    let mut take = |name: &str| -> Result<Vec<u32>, PipelineError> {
        let t = tensors.remove(name).ok_or_else(|| {
            PipelineError::Other(format!("{}: no tensor named {name:?}", path.display()))
        })?;
        Ok(t.to_vec1::<u32>()?)
    };
    let indices = take("indices")?;
    let labels = take("labels")?;
    Ok(Features {
        tensors,
        indices,
        labels,
    })
}
