//! Tensor-name conventions of ResNet checkpoints, translated to torchvision's.
//!
//! - **torchvision** (`torchvision.models.resnet`): `conv1.weight`, `bn1.running_mean`,
//!   `layer1.0.conv1.weight`, `layer2.0.downsample.{0,1}.*`, `fc.*`. dnc's models use these names.
//! - **timm** (`timm.models.resnet.ResNet`): the plain `resnet18/34/50` models keep torchvision's
//!   names ("weight compat requires it", says timm's source), so the same checkpoint loads either
//!   way. What differs: EMA or data-parallel checkpoints prefix every name with `module.`, which
//!   is stripped; and timm's variants are other architectures that no renaming can fit into
//!   torchvision's ResNet (deep stems `conv1.{0,1,3,4,6}` of `resnet*c/d/s/t`, average-pool
//!   shortcuts `downsample.{1,2}` of `resnet*d/e/t`, squeeze-excitation `se.*`, anti-aliasing
//!   `aa.*`, ResNetV2's `stem.*`/`stages.*`). [`architecture_hints`] names them in load errors.
//! - **transformers** (`transformers.ResNetModel`, e.g. `microsoft/resnet-50`): the same network
//!   under other names, mapped one to one: `embedder.embedder.{convolution,normalization}` →
//!   `conv1`/`bn1`, `encoder.stages.S.layers.B.layer.I.{convolution,normalization}` →
//!   `layer{S+1}.B.conv{I+1}`/`bn{I+1}`, `…shortcut.{convolution,normalization}` →
//!   `downsample.{0,1}`, `classifier.1` → `fc`, with an optional `resnet.` prefix. (A
//!   transformers config with `downsample_in_bottleneck` strides the first 1×1 convolution: same
//!   shapes, another function; such checkpoints are not torchvision ResNets.)

use serde::{Deserialize, Serialize};

/// Which naming convention a checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Naming {
    /// torchvision's names, used as they are.
    Torchvision,
    /// timm's names: torchvision's, after stripping a `module.` prefix.
    Timm,
    /// Hugging Face transformers' `ResNetModel` names.
    Transformers,
    /// Detected from the names in the file (see [`Naming::detect`]).
    #[default]
    Auto,
}

impl Naming {
    /// The convention of a checkpoint with these tensor names: transformers when a name starts
    /// with `embedder.` or `resnet.embedder.`, timm when every name starts with `module.`,
    /// torchvision otherwise. A concrete (non-`Auto`) naming is returned as it is.
    pub fn resolve<'a>(self, names: impl IntoIterator<Item = &'a str>) -> Naming {
        match self {
            Naming::Auto => Self::detect(names),
            concrete => concrete,
        }
    }

    /// Detects the convention from the tensor names (never returns `Auto`).
    pub fn detect<'a>(names: impl IntoIterator<Item = &'a str>) -> Naming {
        let mut names = names.into_iter().peekable();
        if names.peek().is_none() {
            return Naming::Torchvision;
        }
        let mut all_module = true;
        for name in names {
            let bare = name.strip_prefix("resnet.").unwrap_or(name);
            if bare.starts_with("embedder.") || bare.starts_with("encoder.stages.") {
                return Naming::Transformers;
            }
            all_module &= name.starts_with("module.");
        }
        if all_module {
            Naming::Timm
        } else {
            Naming::Torchvision
        }
    }

    /// The torchvision name of tensor `name` of a checkpoint in this convention (`Auto` is
    /// treated as torchvision; resolve it first). Names with no counterpart come back as they are.
    pub fn to_torchvision(self, name: &str) -> String {
        match self {
            Naming::Torchvision | Naming::Auto => name.to_string(),
            Naming::Timm => name.strip_prefix("module.").unwrap_or(name).to_string(),
            Naming::Transformers => {
                transformers_to_torchvision(name).unwrap_or_else(|| name.to_string())
            }
        }
    }
}

impl std::fmt::Display for Naming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Naming::Torchvision => "torchvision",
            Naming::Timm => "timm",
            Naming::Transformers => "transformers",
            Naming::Auto => "auto",
        })
    }
}

fn transformers_to_torchvision(name: &str) -> Option<String> {
    let bare = name.strip_prefix("resnet.").unwrap_or(name);
    if let Some(rest) = bare.strip_prefix("embedder.embedder.") {
        return conv_or_norm(rest, "conv1", "bn1");
    }
    if let Some(leaf) = bare.strip_prefix("classifier.1.") {
        return Some(format!("fc.{leaf}"));
    }
    let rest = bare.strip_prefix("encoder.stages.")?;
    let (stage, rest) = rest.split_once('.')?;
    let stage: usize = stage.parse().ok()?;
    let rest = rest.strip_prefix("layers.")?;
    let (block, rest) = rest.split_once('.')?;
    let block: usize = block.parse().ok()?;
    let prefix = format!("layer{}.{block}", stage + 1);
    if let Some(rest) = rest.strip_prefix("shortcut.") {
        let mapped = conv_or_norm(rest, "downsample.0", "downsample.1")?;
        return Some(format!("{prefix}.{mapped}"));
    }
    let rest = rest.strip_prefix("layer.")?;
    let (index, rest) = rest.split_once('.')?;
    let index: usize = index.parse().ok()?;
    let conv = format!("conv{}", index + 1);
    let bn = format!("bn{}", index + 1);
    let mapped = conv_or_norm(rest, &conv, &bn)?;
    Some(format!("{prefix}.{mapped}"))
}

fn conv_or_norm(rest: &str, conv: &str, norm: &str) -> Option<String> {
    if let Some(leaf) = rest.strip_prefix("convolution.") {
        Some(format!("{conv}.{leaf}"))
    } else {
        rest.strip_prefix("normalization.")
            .map(|leaf| format!("{norm}.{leaf}"))
    }
}

/// Explanations for checkpoint names that belong to a different architecture than
/// torchvision's ResNet (timm's variants, ResNetV2), to print beside a load error.
pub fn architecture_hints<'a>(unexpected: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    const PATTERNS: [(&str, &str); 6] = [
        (
            "conv1.0.",
            "a deep 3-convolution stem (timm resnet*c/d/s/t variants)",
        ),
        (
            ".downsample.2.",
            "average-pool shortcuts (timm resnet*d/e/t variants)",
        ),
        (
            ".se.",
            "squeeze-and-excitation blocks (timm seresnet*/ecaresnet*)",
        ),
        (
            ".aa.",
            "anti-aliased downsampling (timm resnetaa*/resnetblur*)",
        ),
        ("stem.", "a ResNetV2 / BiT stem (timm resnetv2_*)"),
        ("stages.", "ResNetV2 / BiT stages (timm resnetv2_*)"),
    ];
    let mut hints = Vec::new();
    for name in unexpected {
        let probe = format!(".{name}");
        for (pattern, what) in PATTERNS {
            let hit = if pattern.starts_with('.') {
                probe.contains(pattern)
            } else {
                name.starts_with(pattern)
            };
            let hint = format!(
                "names like {name:?} suggest {what}: a different network from torchvision's ResNet, \
                 which no renaming can load"
            );
            if hit && !hints.iter().any(|h: &String| h.contains(what)) {
                hints.push(hint);
            }
        }
    }
    hints
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transformers_names_map_to_torchvision() {
        let n = Naming::Transformers;
        let cases = [
            (
                "resnet.embedder.embedder.convolution.weight",
                "conv1.weight",
            ),
            (
                "embedder.embedder.normalization.running_var",
                "bn1.running_var",
            ),
            (
                "resnet.encoder.stages.0.layers.1.layer.2.convolution.weight",
                "layer1.1.conv3.weight",
            ),
            (
                "resnet.encoder.stages.3.layers.0.layer.0.normalization.num_batches_tracked",
                "layer4.0.bn1.num_batches_tracked",
            ),
            (
                "resnet.encoder.stages.1.layers.0.shortcut.convolution.weight",
                "layer2.0.downsample.0.weight",
            ),
            (
                "encoder.stages.2.layers.0.shortcut.normalization.bias",
                "layer3.0.downsample.1.bias",
            ),
            ("classifier.1.weight", "fc.weight"),
            ("resnet.pooler.something", "resnet.pooler.something"),
        ];
        for (from, to) in cases {
            assert_eq!(n.to_torchvision(from), to, "{from}");
        }
    }

    #[test]
    fn timm_strips_the_module_prefix_only() {
        assert_eq!(
            Naming::Timm.to_torchvision("module.layer1.0.bn1.weight"),
            "layer1.0.bn1.weight"
        );
        assert_eq!(
            Naming::Timm.to_torchvision("layer1.0.bn1.weight"),
            "layer1.0.bn1.weight"
        );
        assert_eq!(
            Naming::Torchvision.to_torchvision("module.conv1.weight"),
            "module.conv1.weight"
        );
    }

    #[test]
    fn detection() {
        assert_eq!(
            Naming::detect(["conv1.weight", "fc.bias"]),
            Naming::Torchvision
        );
        assert_eq!(
            Naming::detect(["module.conv1.weight", "module.fc.bias"]),
            Naming::Timm
        );
        assert_eq!(
            Naming::detect(["module.conv1.weight", "fc.bias"]),
            Naming::Torchvision
        );
        assert_eq!(
            Naming::detect([
                "classifier.1.bias",
                "resnet.embedder.embedder.convolution.weight"
            ]),
            Naming::Transformers
        );
        assert_eq!(Naming::detect(Vec::<&str>::new()), Naming::Torchvision);
        assert_eq!(Naming::Timm.resolve(["conv1.weight"]), Naming::Timm);
        assert_eq!(Naming::Auto.resolve(["module.conv1.weight"]), Naming::Timm);
    }

    #[test]
    fn hints_name_timm_variants_once() {
        let hints = architecture_hints([
            "conv1.0.weight",
            "conv1.1.weight",
            "layer2.0.downsample.2.weight",
            "layer1.0.se.fc1.weight",
            "layer1.0.conv1.weight",
        ]);
        assert_eq!(hints.len(), 3, "{hints:?}");
        assert!(
            hints[0].contains("deep 3-convolution stem") && hints[0].contains("conv1.0.weight")
        );
        assert!(hints[1].contains("average-pool shortcuts"));
        assert!(hints[2].contains("squeeze-and-excitation"));
        assert!(architecture_hints(["layer1.0.conv1.weight", "fc.weight"]).is_empty());
    }
}
