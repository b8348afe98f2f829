//! The model card (`README.md`) and the run facts it reports: the training configuration and
//! the accuracies measured by the pipeline (`summary.json` of the run directory).

use crate::error::{HubError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// Top-1 accuracies of one model, as fractions in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Accuracy {
    pub knn_top1: Option<f64>,
    pub linear_top1: Option<f64>,
}

/// What the card says about the exported model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCard {
    /// Which model of the run this is: `base`, `dnc`, `expert-3`, `baseline`, ...
    pub model: String,
    /// SPDX-style license id for the hub (`apache-2.0`).
    pub license: String,
    /// Tags added to the standard ones.
    pub extra_tags: Vec<String>,
    /// The run's resolved configuration, TOML text (the run directory's `config.toml`).
    pub training_config: Option<String>,
    /// Accuracies of every evaluated model of the run, by model name.
    pub accuracies: BTreeMap<String, Accuracy>,
}

impl ModelCard {
    /// A card for `model` with no configuration and no accuracies.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            license: "apache-2.0".to_string(),
            extra_tags: Vec::new(),
            training_config: None,
            accuracies: BTreeMap::new(),
        }
    }

    /// A card for `model` of the run directory `run_dir`: its `config.toml` and the `eval`
    /// section of its `summary.json`, each when present.
    pub fn from_run_dir(run_dir: &Path, model: &str) -> Result<Self> {
        let mut card = Self::new(model);
        let config = run_dir.join("config.toml");
        if config.is_file() {
            let text = std::fs::read_to_string(&config)
                .map_err(|e| HubError::io("cannot read", &config, e))?;
            card.training_config = Some(text);
        }
        let summary = run_dir.join("summary.json");
        if summary.is_file() {
            card.accuracies = read_accuracies(&summary)?;
        }
        Ok(card)
    }

    /// The accuracies of the exported model itself, if measured.
    pub fn own_accuracy(&self) -> Option<&Accuracy> {
        self.accuracies.get(&self.model)
    }
}

/// The `eval` section of a run's `summary.json`: `{"eval": {"<model>": {"knn_top1": ..}}}`.
pub fn read_accuracies(summary: &Path) -> Result<BTreeMap<String, Accuracy>> {
    #[derive(Deserialize)]
    struct Summary {
        #[serde(default)]
        eval: BTreeMap<String, Accuracy>,
    }
    let text =
        std::fs::read_to_string(summary).map_err(|e| HubError::io("cannot read", summary, e))?;
    let parsed: Summary = serde_json::from_str(&text).map_err(|e| HubError::format(summary, e))?;
    Ok(parsed.eval)
}

/// What the card needs to know about the network.
pub(crate) struct CardFacts<'a> {
    pub arch: &'a str,
    pub stem: &'a str,
    pub feature_dim: usize,
    pub input_size: usize,
    pub timm_loadable: bool,
}

/// The card's Markdown, with the YAML front matter the hub reads.
pub(crate) fn render(card: &ModelCard, facts: &CardFacts<'_>) -> String {
    let mut md = String::new();
    front_matter(&mut md, card, facts);
    let (arch, stem, dim) = (facts.arch, facts.stem, facts.feature_dim);
    let _ = writeln!(
        md,
        "# {arch} ({stem} stem), Divide and Contrast: {}\n",
        card.model
    );
    let _ = writeln!(
        md,
        "A self-supervised {arch} backbone trained with [dnc](https://github.com/dnc-rs/dnc), \
         a Rust implementation of Divide and Contrast (Tian, Hénaff & van den Oord, \
         [arXiv 2105.08054](https://arxiv.org/abs/2105.08054)). Model `{}` of its run. The \
         network ends at the global average pool: it returns {dim} features per image and has \
         no classifier.\n",
        card.model
    );
    accuracy_table(&mut md, card);
    usage(&mut md, facts);
    if let Some(cfg) = &card.training_config {
        let _ = writeln!(
            md,
            "## Training configuration\n\n```toml\n{}\n```\n",
            cfg.trim_end()
        );
    }
    md
}

fn front_matter(md: &mut String, card: &ModelCard, facts: &CardFacts<'_>) {
    let library = if facts.timm_loadable {
        "timm"
    } else {
        "pytorch"
    };
    let mut tags = vec![
        "dnc",
        "divide-and-contrast",
        "self-supervised-learning",
        "image-feature-extraction",
        "resnet",
        "safetensors",
    ];
    tags.extend(card.extra_tags.iter().map(String::as_str));
    let _ = writeln!(
        md,
        "---\nlibrary_name: {library}\nlicense: {}",
        card.license
    );
    let _ = writeln!(md, "pipeline_tag: image-feature-extraction\ntags:");
    for tag in tags {
        let _ = writeln!(md, "- {tag}");
    }
    let _ = writeln!(md, "---\n");
}

fn accuracy_table(md: &mut String, card: &ModelCard) {
    if card.accuracies.is_empty() {
        return;
    }
    let pct = |x: Option<f64>| x.map_or_else(|| "–".to_string(), |v| format!("{:.2}", 100.0 * v));
    let _ = writeln!(
        md,
        "## Accuracy\n\nTop-1 (%) on the run's test split: weighted k-NN (k = 200, τ = 0.1) and a \
         linear probe on frozen features. This model is in bold.\n\n\
         | model | k-NN top-1 | linear top-1 |\n|---|---|---|"
    );
    for (name, acc) in &card.accuracies {
        let (knn, lin) = (pct(acc.knn_top1), pct(acc.linear_top1));
        if *name == card.model {
            let _ = writeln!(md, "| **{name}** | **{knn}** | **{lin}** |");
        } else {
            let _ = writeln!(md, "| {name} | {knn} | {lin} |");
        }
    }
    md.push('\n');
}

fn usage(md: &mut String, facts: &CardFacts<'_>) {
    let arch = facts.arch;
    let _ = writeln!(
        md,
        "## Use\n\nWith torchvision (strict loading; `fc` replaced by the identity):\n\n```python"
    );
    let _ = writeln!(
        md,
        "import torch, torchvision\nfrom safetensors.torch import load_file\n"
    );
    let _ = writeln!(md, "model = torchvision.models.{arch}()");
    if facts.stem == "cifar" {
        let _ = writeln!(
            md,
            "model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)  # CIFAR stem\n\
             model.maxpool = torch.nn.Identity()"
        );
    }
    let _ = writeln!(
        md,
        "model.fc = torch.nn.Identity()\nmodel.load_state_dict(load_file(\"model.safetensors\"))\n\
         features = model.eval()(images)  # [N, {}] for [N, 3, {s}, {s}] images\n```\n",
        facts.feature_dim,
        s = facts.input_size
    );
    if facts.timm_loadable {
        let _ = writeln!(
            md,
            "With timm, from the hub (`config.json` names the architecture):\n\n```python\n\
             import timm\nmodel = timm.create_model(\"hf-hub:ORG/NAME\", pretrained=True)\n```\n"
        );
    }
    let _ = writeln!(
        md,
        "With dnc: `--init-from hf://ORG/NAME` (see the dnc-hub README).\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_accuracies_and_config_are_read_from_a_run_directory() {
        let dir = tempfile::tempdir().unwrap();
        let summary = r#"{"stages": {"base": {"done": true, "seconds": 3.5}},
            "eval": {"untrained": {"knn_top1": 0.364}, "dnc": {"knn_top1": 0.5, "linear_top1": 0.61}}}"#;
        std::fs::write(dir.path().join("summary.json"), summary).unwrap();
        std::fs::write(dir.path().join("config.toml"), "seed = 3\n").unwrap();
        let card = ModelCard::from_run_dir(dir.path(), "dnc").unwrap();
        assert_eq!(card.training_config.as_deref(), Some("seed = 3\n"));
        assert_eq!(card.accuracies.len(), 2);
        let own = card.own_accuracy().unwrap();
        assert_eq!((own.knn_top1, own.linear_top1), (Some(0.5), Some(0.61)));
        assert_eq!(card.accuracies["untrained"].linear_top1, None);

        let empty = tempfile::tempdir().unwrap();
        let card = ModelCard::from_run_dir(empty.path(), "base").unwrap();
        assert!(card.accuracies.is_empty() && card.training_config.is_none());
        std::fs::write(empty.path().join("summary.json"), "{").unwrap();
        let err = ModelCard::from_run_dir(empty.path(), "base").unwrap_err();
        assert!(err.to_string().contains("summary.json"), "{err}");
    }

    #[test]
    fn card_has_front_matter_table_usage_and_config() {
        let mut card = ModelCard::new("dnc");
        card.training_config = Some("[model]\narch = \"resnet18\"\n".to_string());
        card.accuracies.insert(
            "base".into(),
            Accuracy {
                knn_top1: Some(0.4712),
                linear_top1: None,
            },
        );
        card.accuracies.insert(
            "dnc".into(),
            Accuracy {
                knn_top1: Some(0.5),
                linear_top1: Some(0.6),
            },
        );
        let facts = CardFacts {
            arch: "resnet18",
            stem: "cifar",
            feature_dim: 512,
            input_size: 32,
            timm_loadable: false,
        };
        let md = render(&card, &facts);
        assert!(
            md.starts_with("---\nlibrary_name: pytorch\nlicense: apache-2.0\n"),
            "{md}"
        );
        for needle in [
            "- divide-and-contrast\n",
            "| base | 47.12 | – |",
            "| **dnc** | **50.00** | **60.00** |",
            "model.maxpool = torch.nn.Identity()",
            "[N, 512] for [N, 3, 32, 32] images",
            "```toml\n[model]\narch = \"resnet18\"\n```",
        ] {
            assert!(md.contains(needle), "{needle:?} not in:\n{md}");
        }
        assert!(!md.contains("timm.create_model"));
        let md = render(
            &ModelCard::new("base"),
            &CardFacts {
                stem: "imagenet",
                timm_loadable: true,
                ..facts
            },
        );
        assert!(md.contains("library_name: timm") && md.contains("timm.create_model"));
        assert!(!md.contains("## Accuracy") && !md.contains("maxpool"));
    }
}
