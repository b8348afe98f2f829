//! `cargo xtask train`: run an experiment stage by stage with the release `dnc` binary.
//!
//! The run directory's `summary.json` records finished stages; a finished stage is skipped, so a
//! killed run continues where it stopped (`--resume` also resumes *inside* the interrupted stage
//! from its last checkpoint).

use crate::util::{build_dnc, run_cmd, workspace_root};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Args)]
pub(crate) struct TrainArgs {
    /// Experiment configuration (TOML); default `configs/fixtures.toml`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Dataset folder holding `train/` and `test/` class folders, or any folder tree of
    /// images to train on without labels (overrides the config).
    #[arg(long)]
    data: Option<PathBuf>,
    /// `cpu`, `cuda:N` or `auto` (overrides the config).
    #[arg(long)]
    device: Option<String>,
    /// Run directory (default: `runs/<config name>`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue an existing run: skip finished stages, resume the current one from its checkpoint.
    #[arg(long)]
    resume: bool,
    /// Start an existing run again from this stage (it and later stages are re-run).
    #[arg(long, conflicts_with = "only")]
    from: Option<String>,
    /// Run just this stage of an existing run.
    #[arg(long)]
    only: Option<String>,
    /// Also train the matched MoCLR baseline (same total epochs as the DnC run).
    #[arg(long)]
    baseline: bool,
    /// Start the backbone from pretrained weights: `hf://ORG/NAME[@REVISION][/FILE]` or a file.
    #[arg(long)]
    init_from: Option<String>,
    /// Devices the experts are spread over, round-robin (e.g. `cuda:0,cuda:1`).
    #[arg(long)]
    devices: Option<String>,
    /// Override config values, e.g. `--set base.epochs=2` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Extra cargo features for the `dnc` build, e.g. `cuda`.
    #[arg(long)]
    features: Vec<String>,
}

/// An existing run keeps the configuration it was created with (its `config.toml`): options
/// that would change it are refused rather than silently dropped.
fn refuse_new_run_options(args: &TrainArgs, out: &Path) -> Result<()> {
    let mut given = Vec::new();
    // `--config` alone names the run (its directory comes from the file name); with `--out`
    // it would be a second configuration for the same run.
    if args.config.is_some() && args.out.is_some() {
        given.push("--config");
    }
    for (set, name) in [
        (args.data.is_some(), "--data"),
        (args.baseline, "--baseline"),
        (args.init_from.is_some(), "--init-from"),
        (args.devices.is_some(), "--devices"),
        (!args.overrides.is_empty(), "--set"),
    ] {
        if set {
            given.push(name);
        }
    }
    if !given.is_empty() {
        bail!(
            "{} only apply to a new run; {} exists and keeps its config.toml (edit it there, or \
             start a new run with --out)",
            given.join(", "),
            out.display()
        );
    }
    if let Some(config) = &args.config {
        eprintln!(
            "continuing {} with its own config.toml; edits to {} since it was created do not apply",
            out.display(),
            config.display()
        );
    }
    Ok(())
}

pub(crate) fn run(args: TrainArgs) -> Result<()> {
    let root = workspace_root();
    let config = match &args.config {
        Some(config) => absolute(config)?,
        None => root.join("configs").join("fixtures.toml"),
    };
    let out = match &args.out {
        Some(out) => absolute(out)?,
        None => root.join("runs").join(
            config
                .file_stem()
                .context("the config path has no file name")?,
        ),
    };
    let dnc = build_dnc(&args.features)?;
    let existing = out.join("config.toml").exists();
    let continuing = args.resume || args.from.is_some() || args.only.is_some();
    if existing && !continuing {
        bail!(
            "run directory {} already holds a run: pass --resume to continue it, --from/--only to \
             re-run stages, or --out to start a new one",
            out.display()
        );
    }
    if !existing {
        if continuing {
            bail!(
                "--resume/--from/--only need an existing run, and {} holds none",
                out.display()
            );
        }
        let mut init = Command::new(&dnc);
        init.arg("init")
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(&out);
        if let Some(data) = &args.data {
            init.arg("--data").arg(absolute(data)?);
        }
        if let Some(device) = &args.device {
            init.arg("--device").arg(device);
        }
        if args.baseline {
            init.arg("--baseline");
        }
        if let Some(spec) = &args.init_from {
            init.arg("--init-from").arg(spec);
        }
        if let Some(devices) = &args.devices {
            init.arg("--devices").arg(devices);
        }
        for kv in &args.overrides {
            init.arg("--set").arg(kv);
        }
        run_cmd(init.current_dir(&root))?;
    } else {
        refuse_new_run_options(&args, &out)?;
    }
    for stage in select_stages(&dnc, &out, &args)? {
        if is_done(&out, &stage)? && args.only.is_none() && args.from.is_none() {
            eprintln!("stage {stage}: done, skipped");
            continue;
        }
        let mut cmd = Command::new(&dnc);
        cmd.arg("stage").arg(&stage).arg("--run").arg(&out);
        if args.resume {
            cmd.arg("--resume");
        }
        if let Some(device) = &args.device {
            cmd.arg("--device").arg(device);
        }
        run_cmd(cmd.current_dir(&root))?;
    }
    run_cmd(
        Command::new(&dnc)
            .arg("report")
            .arg("--run")
            .arg(&out)
            .current_dir(&root),
    )
}

/// The run's stages (as `dnc stages` lists them), cut by `--from` / `--only`.
fn select_stages(dnc: &Path, out: &Path, args: &TrainArgs) -> Result<Vec<String>> {
    let listed = Command::new(dnc)
        .arg("stages")
        .arg("--run")
        .arg(out)
        .output()?;
    if !listed.status.success() {
        bail!(
            "dnc stages failed: {}",
            String::from_utf8_lossy(&listed.stderr)
        );
    }
    let stages: Vec<String> = String::from_utf8(listed.stdout)?
        .lines()
        .map(str::to_string)
        .collect();
    let position = |name: &str| {
        stages.iter().position(|s| s == name).with_context(|| {
            format!(
                "no stage {name:?} in this run; its stages are {}",
                stages.join(", ")
            )
        })
    };
    Ok(match (&args.from, &args.only) {
        (Some(from), _) => stages[position(from)?..].to_vec(),
        (_, Some(only)) => vec![stages[position(only)?].clone()],
        _ => stages,
    })
}

/// Whether `summary.json` marks `stage` as done.
fn is_done(out: &Path, stage: &str) -> Result<bool> {
    let path = out.join("summary.json");
    if !path.exists() {
        return Ok(false);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let summary: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    Ok(summary["stages"][stage]["done"].as_bool() == Some(true))
}

/// A user-given path, relative to the directory `cargo xtask` was started in.
fn absolute(path: &Path) -> Result<PathBuf> {
    Ok(std::env::current_dir()?.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: TrainArgs,
    }

    fn refusal(argv: &[&str]) -> Option<String> {
        let cli = Cli::parse_from(std::iter::once("train").chain(argv.iter().copied()));
        refuse_new_run_options(&cli.args, Path::new("runs/x"))
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn options_of_a_new_run_are_refused_when_continuing_one() {
        assert_eq!(refusal(&["--resume"]), None);
        assert_eq!(refusal(&["--resume", "--config", "configs/x.toml"]), None);
        assert_eq!(refusal(&["--from", "eval", "--out", "runs/x"]), None);
        let msg = refusal(&[
            "--resume",
            "--config",
            "c.toml",
            "--out",
            "runs/x",
            "--devices",
            "cpu,cpu",
            "--set",
            "base.epochs=2",
        ])
        .unwrap();
        assert!(
            msg.starts_with("--config, --devices, --set only apply to a new run; runs/x exists"),
            "{msg}"
        );
    }
}
