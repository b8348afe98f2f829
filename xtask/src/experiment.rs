//! `cargo xtask experiment curation-gap`: the paper's claim at small scale, measured.
//!
//! Builds a long-tailed ("uncurated", ρ = 100) CIFAR-10 training set and its class-balanced
//! ("curated") twin with the same number of images, then, for every seed, trains
//! MoCLR on curated, MoCLR on uncurated, and DnC on uncurated, with matched total epochs
//! (MoCLR gets base + experts + distill epochs of the DnC run). Every model is evaluated on the
//! balanced test split with the curated train set as k-NN bank and probe training set, overall
//! and per class-frequency third (many / medium / few, by rank in the uncurated set). Writes
//! `report.md`, `summary.json` and `curation-gap.png` in the experiment folder. `--sweep` then
//! varies what the paper varies (K, the clustering layer, expert initialisation and budget) for
//! the DnC arm and adds that table to the report ([`sweep`]).

pub(crate) mod budget;
mod sweep;

use crate::longtail::{self, LongtailArgs};
use crate::util::{build_dnc, run_cmd, workspace_root};
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Preset {
    /// Tiny conv net, n_max 800 (≈2,000 images), CPU: about an hour on 2 cores.
    Small,
    /// ResNet-18, n_max 5,000 (≈12,000 images), for one GPU.
    Full,
}

#[derive(Args)]
pub(crate) struct CurationArgs {
    #[arg(long, value_enum, default_value = "small")]
    preset: Preset,
    /// Source dataset with train/ and test/ (default ../shared/datasets/cifar10).
    #[arg(long)]
    src: Option<PathBuf>,
    /// Seeds 0..N.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Experiment folder (default runs/curation-gap-<preset>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// `cpu`, `cuda:N` or `auto`.
    #[arg(long)]
    device: Option<String>,
    /// Extra config overrides for every run (repeatable), e.g. `--set divide.kmeans.n_clusters=3`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Extra cargo features for the `dnc` build, e.g. `cuda`.
    #[arg(long)]
    features: Vec<String>,
    /// Also train the DnC variants of the sweep (K, clustering layer, expert init and budget,
    /// distillation recipe, and the random-partition and base-only controls).
    #[arg(long)]
    sweep: bool,
    /// Seeds 0..N of each sweep variant.
    #[arg(long, default_value_t = 1)]
    sweep_seeds: u64,
    /// Only these sweep variants (comma-separated names; default: all).
    #[arg(long, value_delimiter = ',')]
    variants: Vec<String>,
}

/// One trained configuration of the comparison.
struct Arm {
    name: &'static str,
    data: &'static str,
    method: &'static str,
    /// Model evaluated for this arm in the run's summary.
    model: &'static str,
}

const ARMS: [Arm; 3] = [
    Arm {
        name: "moclr-curated",
        data: "curated",
        method: "moclr",
        model: "base",
    },
    Arm {
        name: "moclr-uncurated",
        data: "uncurated",
        method: "moclr",
        model: "base",
    },
    Arm {
        name: "dnc-uncurated",
        data: "uncurated",
        method: "dnc",
        model: "dnc",
    },
];

pub(crate) fn run(args: CurationArgs) -> Result<()> {
    let root = workspace_root();
    let (preset, n_max) = match args.preset {
        Preset::Small => ("small", 800),
        Preset::Full => ("full", 5000),
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join(format!("runs/curation-gap-{preset}")));
    let src = args
        .src
        .clone()
        .unwrap_or_else(|| root.join("../shared/datasets/cifar10"));
    let data = out.join("data");
    if !data.join("manifest.json").is_file() {
        longtail::build(&LongtailArgs::new(src, data.clone(), 100.0, Some(n_max), 0))?;
    }
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("manifest.json"))?)?;
    let config = root.join(format!("configs/curation-{preset}.toml"));
    let epochs = matched_epochs(&config)?;
    let dnc = build_dnc(&args.features)?;
    let job = Job {
        dnc: &dnc,
        args: &args,
        config: &config,
        data: &data,
        out: &out,
        epochs,
    };
    for seed in 0..args.seeds {
        for arm in &ARMS {
            train_arm(&job, arm, &format!("{}-s{seed}", arm.name), seed, &[])?;
        }
    }
    let mut md = report(&args, &out, &manifest, epochs)?;
    if args.sweep {
        let variants = sweep::selected(&args.variants)?;
        for seed in 0..args.sweep_seeds {
            for variant in &variants {
                let name = format!("sweep-{}-s{seed}", variant.name);
                train_arm(&job, &ARMS[2], &name, seed, variant.overrides)?;
            }
        }
        md.push_str(&sweep::report(
            &out,
            &manifest,
            args.sweep_seeds,
            &variants,
        )?);
        std::fs::write(out.join("report.md"), &md)?;
    }
    println!("{md}");
    Ok(())
}

/// What every run of the experiment shares.
struct Job<'a> {
    dnc: &'a Path,
    args: &'a CurationArgs,
    config: &'a Path,
    data: &'a Path,
    out: &'a Path,
    /// The MoCLR arms' epochs.
    epochs: u64,
}

/// base + experts + distill epochs of the preset: the MoCLR arms' budget.
fn matched_epochs(config: &Path) -> Result<u64> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", config.display()))?;
    let get = |section: &str| {
        doc.get(section)
            .and_then(|t| t.get("epochs"))
            .and_then(|v| v.as_integer())
            .map(|v| v as u64)
            .with_context(|| format!("{}: no {section}.epochs", config.display()))
    };
    Ok(get("base")? + get("experts")? + get("distill")?)
}

/// Trains (or resumes, or skips when finished) `arm` with `seed` in `<out>/<run_name>`, with
/// `extra` config overrides after the experiment's own.
fn train_arm(job: &Job, arm: &Arm, run_name: &str, seed: u64, extra: &[&str]) -> Result<()> {
    let Job {
        dnc,
        args,
        config,
        data,
        out,
        epochs,
    } = *job;
    let dir = out.join(run_name);
    if summary_of(&dir).is_some_and(|s| s["stages"]["eval"]["done"] == true) {
        eprintln!("{}: done, skipped", dir.display());
        return Ok(());
    }
    let mut cmd = Command::new(dnc);
    cmd.arg("train").arg("--out").arg(&dir);
    if dir.join("config.toml").is_file() {
        cmd.arg("--resume");
    } else {
        cmd.arg("--config")
            .arg(config)
            .arg("--data")
            .arg(data.join(arm.data));
        cmd.args([
            "--set",
            &format!("seed={seed}"),
            "--set",
            &format!("method=\"{}\"", arm.method),
        ]);
        cmd.args(["--set", &format!("name=\"{run_name}\"")]);
        cmd.arg("--set").arg(format!(
            "data.eval_bank=\"{}\"",
            data.join("curated/train").display()
        ));
        if arm.method == "moclr" {
            cmd.args(["--set", &format!("base.epochs={epochs}")]);
        }
        if let Some(d) = &args.device {
            cmd.args(["--device", d]);
        }
        for o in &args.overrides {
            cmd.args(["--set", o]);
        }
        for o in extra {
            cmd.args(["--set", o]);
        }
    }
    eprintln!("training {run_name}");
    run_cmd(cmd.current_dir(workspace_root()))
}

fn summary_of(dir: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).ok()?).ok()
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Class ids of each frequency third (many, medium, few) by rank in the uncurated set.
fn thirds(manifest: &Value) -> [Vec<usize>; 3] {
    let rank: Vec<usize> = serde_json::from_value(manifest["rank"].clone()).unwrap_or_default();
    let c = rank.len();
    let mut out: [Vec<usize>; 3] = Default::default();
    for (class, &r) in rank.iter().enumerate() {
        out[(r * 3 / c.max(1)).min(2)].push(class);
    }
    out
}

const METRICS: [&str; 8] = [
    "knn",
    "knn_many",
    "knn_medium",
    "knn_few",
    "linear",
    "linear_many",
    "linear_medium",
    "linear_few",
];

/// The eight scores of one run's model: overall and per third, k-NN and linear.
fn scores(eval: &Value, groups: &[Vec<usize>; 3]) -> Option<Vec<f64>> {
    let per = |key: &str| -> Option<Vec<f64>> { serde_json::from_value(eval[key].clone()).ok() };
    let (knn_pc, lin_pc) = (per("knn_per_class")?, per("linear_per_class")?);
    let avg =
        |pc: &[f64], g: &[usize]| g.iter().map(|&c| pc[c]).sum::<f64>() / g.len().max(1) as f64;
    let mut v = vec![eval["knn_top1"].as_f64()?];
    v.extend(groups.iter().map(|g| avg(&knn_pc, g)));
    v.push(eval["linear_top1"].as_f64()?);
    v.extend(groups.iter().map(|g| avg(&lin_pc, g)));
    Some(v)
}

/// Writes report.md, summary.json and the chart of the main arms; returns the report.
fn report(args: &CurationArgs, out: &Path, manifest: &Value, epochs: u64) -> Result<String> {
    let groups = thirds(manifest);
    let mut table = String::from(
        "| arm | seeds | k-NN | k-NN many | k-NN medium | k-NN few | linear | linear many | linear medium | linear few |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut summary = serde_json::Map::new();
    let mut plot_series = Vec::new();
    for arm in &ARMS {
        let runs: Vec<Vec<f64>> = (0..args.seeds)
            .filter_map(|s| summary_of(&out.join(format!("{}-s{s}", arm.name))))
            .filter_map(|s| scores(&s["eval"][arm.model], &groups))
            .collect();
        if runs.is_empty() {
            bail!("no finished run of {} under {}", arm.name, out.display());
        }
        let cols: Vec<(f64, f64)> = (0..METRICS.len())
            .map(|m| mean_std(&runs.iter().map(|r| r[m]).collect::<Vec<_>>()))
            .collect();
        let cells: Vec<String> = cols
            .iter()
            .map(|(m, s)| format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * s))
            .collect();
        let _ = writeln!(
            table,
            "| {} | {} | {} |",
            arm.name,
            runs.len(),
            cells.join(" | ")
        );
        let entry: serde_json::Map<String, Value> = METRICS
            .iter()
            .zip(&cols)
            .map(|(k, (m, s))| (k.to_string(), json!({"mean": m, "std": s})))
            .collect();
        summary.insert(
            arm.name.into(),
            json!({"seeds": runs.len(), "scores": entry, "runs": runs}),
        );
        plot_series.push((
            arm.name.to_string(),
            cols[..4]
                .iter()
                .map(|(m, s)| (100.0 * m, 100.0 * s))
                .collect(),
        ));
    }
    let chart = dnc_plot::ErrorBars {
        title: "Curation gap: k-NN top-1 on the balanced test split".into(),
        y_label: "accuracy (%)".into(),
        groups: vec!["all".into(), "many".into(), "medium".into(), "few".into()],
        series: plot_series,
        ..dnc_plot::ErrorBars::default()
    };
    dnc_plot::bar_chart_with_errors(&out.join("curation-gap.png"), &chart)?;
    let names: Vec<String> = serde_json::from_value(manifest["classes"].clone())?;
    let third_names = |g: &[usize]| {
        g.iter()
            .map(|&c| names[c].clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let md = format!(
        "# Curation gap ({preset} preset)\n\nUncurated: CIFAR-10 train, long-tailed with ρ = {rho}, {total} images \
         (per class {counts}); curated: class-balanced, the same number of images. MoCLR trains {epochs} epochs, \
         DnC base + experts + distill the same total. Evaluation on the balanced test split (k-NN bank and probe \
         training set: the curated train set), mean ± std over seeds, in %.\n\nThirds by class frequency in the \
         uncurated set: many = {many}; medium = {medium}; few = {few}.\n\n{table}\n![k-NN by frequency third](curation-gap.png)\n",
        preset = args.preset_name(),
        rho = manifest["imbalance"],
        total = manifest["total"],
        counts = manifest["uncurated_counts"],
        many = third_names(&groups[0]),
        medium = third_names(&groups[1]),
        few = third_names(&groups[2]),
    );
    write_results(out, &md, summary)?;
    Ok(md)
}

/// Writes an experiment's `report.md` and `summary.json` in its folder.
fn write_results(out: &Path, md: &str, summary: serde_json::Map<String, Value>) -> Result<()> {
    std::fs::write(out.join("report.md"), md)?;
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&Value::Object(summary))?,
    )?;
    Ok(())
}

impl CurationArgs {
    fn preset_name(&self) -> &'static str {
        match self.preset {
            Preset::Small => "small",
            Preset::Full => "full",
        }
    }
}
