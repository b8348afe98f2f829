//! `cargo xtask tidy`: checks that the crate graph only points downwards.
//!
//! Each workspace crate has a layer (see `docs/architecture.md`); a dependency on a crate of the
//! same or a higher layer is an error. Crates not listed here fail the check, so that a new crate
//! gets a layer on purpose.

use crate::util::cargo;
use anyhow::{Context, Result, bail};

/// Layer of every workspace crate: lower layers never depend on higher ones.
const LAYERS: &[(&str, u8)] = &[
    ("dnc-core", 0),
    ("dnc-kernels", 0),
    ("dnc-plot", 0),
    ("dnc-dist", 0),
    ("dnc-docs", 0),
    ("dnc-data", 1),
    ("dnc-augment", 2),
    ("dnc-models", 2),
    ("dnc-objectives", 1),
    ("dnc-cluster", 1),
    ("dnc-engine", 1),
    ("dnc-moclr", 3),
    ("dnc-distill", 3),
    ("dnc-eval", 3),
    ("dnc-hub", 3),
    ("dnc-pipeline", 4),
    ("dnc-cli", 5),
    ("xtask", 5),
];

fn layer(name: &str) -> Result<u8> {
    LAYERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, l)| *l)
        .with_context(|| format!("crate {name} has no layer in xtask/src/tidy.rs"))
}

pub(crate) fn run() -> Result<()> {
    let out = cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let packages = meta["packages"]
        .as_array()
        .context("no packages in metadata")?;
    let names: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut problems = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        let own = layer(name)?;
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let is_dev = dep["kind"].as_str() == Some("dev");
            if !names.contains(&dep_name) || is_dev {
                continue;
            }
            let theirs = layer(dep_name)?;
            if theirs >= own {
                problems.push(format!(
                    "{name} (layer {own}) depends on {dep_name} (layer {theirs})"
                ));
            }
        }
    }
    if problems.is_empty() {
        eprintln!("tidy: crate graph ok ({} crates)", names.len());
        Ok(())
    } else {
        bail!("crate graph points upwards:\n  {}", problems.join("\n  "))
    }
}
