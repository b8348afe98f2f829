//! The DnC sweep of the curation-gap experiment: what the paper varies, one change at a time.
//!
//! Each variant changes one setting of the preset's DnC arm (the number of clusters K, the
//! layer the base model's embeddings are clustered on, how experts are initialised, the expert
//! budget, the distillation recipe) or runs one of the paper's controls (random partitions,
//! distilling the base alone), and is trained on the uncurated set with the same seeds; the
//! table sets it beside the default DnC arm and MoCLR on uncurated data.

use super::{ARMS, METRICS, mean_std, scores, summary_of, thirds};
use anyhow::{Result, bail};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// One sweep point: a name, what it changes, and the config overrides that do it.
pub(super) struct Variant {
    pub(super) name: &'static str,
    pub(super) what: &'static str,
    pub(super) overrides: &'static [&'static str],
}

pub(super) const VARIANTS: [Variant; 10] = [
    Variant {
        name: "k3",
        what: "K = 3 clusters",
        overrides: &["divide.kmeans.n_clusters=3"],
    },
    Variant {
        name: "k10",
        what: "K = 10 clusters",
        overrides: &["divide.kmeans.n_clusters=10"],
    },
    Variant {
        name: "layer-backbone",
        what: "cluster the backbone output (not the projector's hidden layer)",
        overrides: &["divide.layer=\"backbone\""],
    },
    Variant {
        name: "experts-scratch",
        what: "experts from scratch (not from the base model)",
        overrides: &["experts.init=\"scratch\""],
    },
    Variant {
        name: "experts-40ep",
        what: "expert budget 40 epochs (DnC total 80, MoCLR stays at 60)",
        overrides: &["experts.epochs=40"],
    },
    Variant {
        name: "partition-random",
        what: "control: experts on a random partition of the same sizes (paper Table 10)",
        overrides: &["experts.partition=\"random\""],
    },
    Variant {
        name: "distill-base-only",
        what: "control: distil the base alone, no experts (paper Table 11)",
        overrides: &["distill.teachers=\"base\""],
    },
    Variant {
        name: "distill-paper",
        what: "the paper's distillation: random heads, regression only (no student MoCLR term)",
        overrides: &[
            "distill.head_init=\"random\"",
            "distill.student_moclr_weight=0",
        ],
    },
    Variant {
        name: "student-from-base",
        what: "the student starts from the base (not from the base plus the experts' changes)",
        overrides: &["distill.init=\"base\""],
    },
    Variant {
        name: "distill-lr-low",
        what: "distillation learning rate / 5 (how much distillation moves the base's features)",
        overrides: &["distill.optimizer.base_lr=0.002"],
    },
];

/// The sweep's section of report.md: mean ± std over `seeds` of every variant, with the default
/// DnC arm and MoCLR on uncurated data over the same seeds.
pub(super) fn report(
    out: &Path,
    manifest: &Value,
    seeds: u64,
    variants: &[&Variant],
) -> Result<String> {
    let groups = thirds(manifest);
    let (knn, knn_few, linear, linear_few) = (0, 3, 4, 7);
    debug_assert_eq!(METRICS[knn_few], "knn_few");
    let row = |label: &str, run_prefix: &str, model: &str| -> Result<String> {
        let runs: Vec<Vec<f64>> = (0..seeds)
            .filter_map(|s| summary_of(&out.join(format!("{run_prefix}-s{s}"))))
            .filter_map(|s| scores(&s["eval"][model], &groups))
            .collect();
        if runs.is_empty() {
            bail!("no finished run {run_prefix}-s* under {}", out.display());
        }
        let cell = |m: usize| {
            let (mean, std) = mean_std(&runs.iter().map(|r| r[m]).collect::<Vec<_>>());
            format!("{:.2} ± {:.2}", 100.0 * mean, 100.0 * std)
        };
        Ok(format!(
            "| {label} | {} | {} | {} | {} | {} |\n",
            runs.len(),
            cell(knn),
            cell(knn_few),
            cell(linear),
            cell(linear_few)
        ))
    };
    let mut md = format!(
        "\n## Sweep\n\nDnC on the uncurated set with one setting changed at a time (seeds 0..{seeds}), \
         beside the default DnC arm and MoCLR on the same data and seeds. In %.\n\n\
         | variant | seeds | k-NN | k-NN few | linear | linear few |\n|---|---|---|---|---|---|\n"
    );
    md.push_str(&row("MoCLR (uncurated)", ARMS[1].name, ARMS[1].model)?);
    md.push_str(&row(
        "DnC default (uncurated)",
        ARMS[2].name,
        ARMS[2].model,
    )?);
    for v in variants {
        let label = format!("DnC, {}", v.what);
        md.push_str(&row(&label, &format!("sweep-{}", v.name), ARMS[2].model)?);
    }
    let _ = writeln!(md);
    Ok(md)
}

/// The variants named in `names` (all of them when `names` is empty), in sweep order.
pub(super) fn selected(names: &[String]) -> Result<Vec<&'static Variant>> {
    if let Some(bad) = names
        .iter()
        .find(|n| !VARIANTS.iter().any(|v| v.name == *n))
    {
        let known: Vec<&str> = VARIANTS.iter().map(|v| v.name).collect();
        bail!(
            "no sweep variant {bad:?}; the variants are {}",
            known.join(", ")
        );
    }
    Ok(VARIANTS
        .iter()
        .filter(|v| names.is_empty() || names.iter().any(|n| n == v.name))
        .collect())
}
