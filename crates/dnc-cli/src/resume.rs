//! `dnc train --resume`: a run continues with the configuration it was created with.
//!
//! `--device` applies (the run continues on that device) and `--baseline` adds the baseline
//! stage to a run created without it ([`Run::add_baseline`]). Every other flag of `dnc train`
//! describes a configuration: it is accepted when that configuration is the run's own (e.g.
//! `--config` naming the file the run was made from, unchanged) and refused by name, with the
//! keys it would change, when it is not, rather than dropped without a word.

use super::{ConfigArgs, TrainArgs, resolve_config};
use anyhow::{Result, bail};
use dnc_pipeline::{Run, RunConfig};
use std::path::Path;

/// Opens the run in `out` to continue it: refuses the flags that would change its
/// configuration, and adds the baseline stage when `--baseline` asks for it.
pub(super) fn open(args: &TrainArgs, out: &Path) -> Result<Run> {
    let mut run = Run::open(out, args.config.device)?;
    refuse_changes(&args.config, &run)?;
    if args.config.baseline {
        run.add_baseline()?;
    }
    Ok(run)
}

/// Fails naming each flag whose configuration differs from the run's, and the keys it changes.
/// With `--config`, the flags are read together on that file; without, each flag alone on the
/// run's own `config.toml`.
fn refuse_changes(args: &ConfigArgs, run: &Run) -> Result<()> {
    let own = run.dir.config_path();
    let only = |config: Option<&Path>| ConfigArgs {
        config: Some(config.unwrap_or(&own).to_path_buf()),
        data: None,
        device: None,
        baseline: false,
        init_from: None,
        devices: Vec::new(),
        overrides: Vec::new(),
    };
    let mut flags: Vec<(String, ConfigArgs)> = Vec::new();
    if let Some(data) = &args.data {
        let one = ConfigArgs {
            data: Some(data.clone()),
            ..only(None)
        };
        flags.push((format!("--data {}", data.display()), one));
    }
    if let Some(spec) = &args.init_from {
        let one = ConfigArgs {
            init_from: Some(spec.clone()),
            ..only(None)
        };
        flags.push((format!("--init-from {spec}"), one));
    }
    if !args.devices.is_empty() {
        let list: Vec<String> = args.devices.iter().map(ToString::to_string).collect();
        let one = ConfigArgs {
            devices: args.devices.clone(),
            ..only(None)
        };
        flags.push((format!("--devices {}", list.join(",")), one));
    }
    for kv in &args.overrides {
        let one = ConfigArgs {
            overrides: vec![kv.clone()],
            ..only(None)
        };
        flags.push((format!("--set {kv}"), one));
    }
    if let Some(config) = &args.config {
        // The file with every other flag on it: together they describe one configuration.
        let labels: Vec<String> = flags.drain(..).map(|(label, _)| label).collect();
        let label = [format!("--config {}", config.display())]
            .into_iter()
            .chain(labels)
            .collect::<Vec<_>>()
            .join(" ");
        let all = ConfigArgs {
            data: args.data.clone(),
            init_from: args.init_from.clone(),
            devices: args.devices.clone(),
            overrides: args.overrides.clone(),
            ..only(Some(config))
        };
        flags.push((label, all));
    }
    let mut refused = Vec::new();
    for (label, flag) in &flags {
        let keys = changed_keys(&run.cfg, &resolve_config(flag)?);
        if !keys.is_empty() {
            refused.push(format!("{label} (would change {})", keys.join(", ")));
        }
    }
    if !refused.is_empty() {
        bail!(
            "{} cannot apply to the run in {}, which continues with the configuration it was \
             created with ({}); start a new run with another --out to change it",
            refused.join("; "),
            run.dir.root().display(),
            own.display()
        );
    }
    Ok(())
}

/// The dotted keys whose values differ between a run's configuration and `other`, leaving out
/// `device` and `baseline` (which `--device` and `--baseline` handle).
fn changed_keys(run: &RunConfig, other: &RunConfig) -> Vec<String> {
    let mut other = other.clone();
    other.device = run.device;
    other.baseline = run.baseline;
    let value = |cfg: &RunConfig| -> toml::Value {
        toml::from_str(&cfg.to_toml()).expect("a run config serialises to TOML")
    };
    dnc_pipeline::changed_keys(&value(run), &value(&other))
}
