//! Exporting a trained backbone as a folder that can be uploaded to the hub as it is:
//! `model.safetensors` (torchvision names, f32, with the `num_batches_tracked` counters that
//! torchvision's `state_dict` has), `config.json` (timm's hub configuration plus a `dnc`
//! section) and a model card `README.md`. Every file is written atomically.

use crate::atomic::write_atomic;
use crate::card::{CardFacts, ModelCard, render};
use crate::error::{HubError, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use dnc_models::{Arch, BackboneConfig, Stem};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// File names of an export.
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.json";
pub const CARD_FILE: &str = "README.md";

/// Image preprocessing the backbone expects, written to `config.json` for timm.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessing {
    /// Side of the square input images.
    pub input_size: usize,
    /// Fraction of the resized image kept by the centre crop at evaluation.
    pub crop_pct: f64,
    /// Resize interpolation (`bilinear`, `bicubic`).
    pub interpolation: String,
    /// Per-channel mean and standard deviation of the input normalisation (RGB).
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

impl Preprocessing {
    /// ImageNet normalisation; 224-pixel inputs with a 0.875 centre crop for the ImageNet stem,
    /// 32-pixel inputs without crop for the CIFAR stem.
    pub fn for_stem(stem: Stem) -> Self {
        let (input_size, crop_pct) = match stem {
            Stem::Imagenet => (224, 0.875),
            Stem::Cifar => (32, 1.0),
        };
        Self {
            input_size,
            crop_pct,
            interpolation: "bilinear".to_string(),
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }
}

/// The exported network: its configuration and preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub struct BackboneInfo {
    pub config: BackboneConfig,
    pub preprocessing: Preprocessing,
}

impl BackboneInfo {
    /// The backbone of `config`, with the default preprocessing of its stem.
    pub fn new(config: &BackboneConfig) -> Self {
        Self {
            config: config.clone(),
            preprocessing: Preprocessing::for_stem(config.stem),
        }
    }

    fn arch_name(&self) -> &'static str {
        match self.config.arch {
            Arch::Tiny => "tiny",
            Arch::Resnet18 => "resnet18",
            Arch::Resnet34 => "resnet34",
            Arch::Resnet50 => "resnet50",
        }
    }

    fn stem_name(&self) -> &'static str {
        match (self.config.arch, self.config.stem) {
            (Arch::Tiny, _) => "tiny",
            (_, Stem::Imagenet) => "imagenet",
            (_, Stem::Cifar) => "cifar",
        }
    }

    /// timm's `resnet18/34/50` have the ImageNet stem only.
    fn timm_loadable(&self) -> bool {
        self.config.arch != Arch::Tiny && self.config.stem == Stem::Imagenet
    }
}

/// Paths of the exported files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFiles {
    pub weights: PathBuf,
    pub config: PathBuf,
    pub card: PathBuf,
}

/// Writes the variables of `varmap` under `prefix` (e.g. `"backbone."`, stripped from the
/// names) to `out_dir` as a hub-ready folder: `model.safetensors`, `config.json`, `README.md`.
///
/// Weights are written in f32 with the `{"format": "pt"}` metadata that transformers checks; a
/// `num_batches_tracked` int64 scalar (value 0: dnc does not count batches, and PyTorch reads
/// it only for `momentum=None` BatchNorms) is added beside every BatchNorm's `running_mean`, so
/// torchvision's strict `load_state_dict` accepts the file once `fc` is the identity.
pub fn export_backbone(
    varmap: &VarMap,
    prefix: &str,
    backbone: &BackboneInfo,
    out_dir: &Path,
    card: &ModelCard,
) -> Result<ExportedFiles> {
    let tensors = state_dict(varmap, prefix)?;
    let files = ExportedFiles {
        weights: out_dir.join(WEIGHTS_FILE),
        config: out_dir.join(CONFIG_FILE),
        card: out_dir.join(CARD_FILE),
    };
    // Everything is prepared before the first write, so a bad input leaves no partial export.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights = safetensors::serialize(tensors.iter(), Some(metadata))
        .map_err(|e| HubError::format(&files.weights, e))?;
    let config = serde_json::to_string_pretty(&config_json(backbone, card)?)
        .map_err(|e| HubError::format(&files.config, e))?;
    let facts = CardFacts {
        arch: backbone.arch_name(),
        stem: backbone.stem_name(),
        feature_dim: backbone.config.out_dim(),
        input_size: backbone.preprocessing.input_size,
        timm_loadable: backbone.timm_loadable(),
    };
    let readme = render(card, &facts);
    write_atomic(&files.weights, &weights)?;
    write_atomic(&files.config, format!("{config}\n").as_bytes())?;
    write_atomic(&files.card, readme.as_bytes())?;
    tracing::info!(dir = %out_dir.display(), tensors = tensors.len(), "exported backbone");
    Ok(files)
}

/// torchvision's `state_dict` of the prefixed variables: f32 on the CPU, counters added.
fn state_dict(varmap: &VarMap, prefix: &str) -> Result<BTreeMap<String, Tensor>> {
    let data = varmap.data().lock().expect("varmap lock poisoned");
    let mut out = BTreeMap::new();
    for (name, var) in data.iter() {
        if let Some(bare) = name.strip_prefix(prefix) {
            let t = var
                .as_tensor()
                .to_device(&Device::Cpu)?
                .to_dtype(DType::F32)?;
            out.insert(bare.to_string(), t.contiguous()?);
        }
    }
    if out.is_empty() {
        return Err(HubError::InvalidArgument {
            what: "prefix",
            reason: format!("no variable of the model starts with {prefix:?}"),
        });
    }
    let norms: Vec<String> = out
        .keys()
        .filter_map(|k| k.strip_suffix(".running_mean").map(str::to_string))
        .collect();
    for norm in norms {
        out.insert(
            format!("{norm}.num_batches_tracked"),
            Tensor::new(0i64, &Device::Cpu)?,
        );
    }
    Ok(out)
}

/// timm's hub configuration (`architecture`, `num_classes`, `pretrained_cfg`) plus a `dnc`
/// section with the architecture, version, accuracies and training configuration.
fn config_json(backbone: &BackboneInfo, card: &ModelCard) -> Result<serde_json::Value> {
    let p = &backbone.preprocessing;
    let dim = backbone.config.out_dim();
    let pool = (p.input_size / 32).max(1);
    let training = match &card.training_config {
        Some(text) => toml::from_str::<serde_json::Value>(text)
            .map_err(|e| HubError::format("the training configuration (TOML)", e))?,
        None => serde_json::Value::Null,
    };
    Ok(json!({
        "architecture": backbone.arch_name(),
        "num_classes": 0,
        "num_features": dim,
        "global_pool": "avg",
        "pretrained_cfg": {
            "tag": format!("dnc_{}", card.model),
            "custom_load": false,
            "input_size": [3, p.input_size, p.input_size],
            "fixed_input_size": false,
            "interpolation": p.interpolation,
            "crop_pct": p.crop_pct,
            "crop_mode": "center",
            "mean": p.mean,
            "std": p.std,
            "num_classes": 0,
            "pool_size": [pool, pool],
            "first_conv": "conv1",
            "classifier": "fc",
        },
        "dnc": {
            "version": env!("CARGO_PKG_VERSION"),
            "model": card.model,
            "arch": backbone.arch_name(),
            "stem": backbone.stem_name(),
            "feature_dim": dim,
            "accuracy": card.own_accuracy(),
            "training_config": training,
        },
    }))
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
