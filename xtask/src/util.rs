//! Helpers shared by the xtask commands: the workspace root, running commands, building `dnc`.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the parent of this crate's manifest directory).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// Runs a command to completion, failing with the command line when it fails.
pub(crate) fn run_cmd(cmd: &mut Command) -> Result<()> {
    let line = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {line}"))?;
    if !status.success() {
        bail!("{line} failed with {status}");
    }
    Ok(())
}

/// `cargo`, as the one that runs xtask.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Builds the `dnc` binary in release mode (with extra cargo features) and returns its path.
pub(crate) fn build_dnc(features: &[String]) -> Result<PathBuf> {
    build_dnc_in(features, false)
}

/// Builds `dnc` without its default `avx512` feature, so that its kernels run AVX2 + FMA even on
/// an AVX-512 CPU, into `target/avx2/`, and returns its path.
pub(crate) fn build_dnc_avx2(features: &[String]) -> Result<PathBuf> {
    build_dnc_in(features, true)
}

fn build_dnc_in(features: &[String], avx2_cap: bool) -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--package", "dnc-cli", "--bin", "dnc"]);
    let mut target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    if avx2_cap {
        target = target.join("avx2");
        cmd.arg("--no-default-features")
            .arg("--target-dir")
            .arg(&target);
    }
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    eprintln!(
        "building dnc (release{}{})",
        if avx2_cap {
            ", kernels capped at AVX2"
        } else {
            ""
        },
        if features.is_empty() {
            String::new()
        } else {
            format!(", features {}", features.join(","))
        }
    );
    run_cmd(&mut cmd)?;
    Ok(target.join("release").join("dnc"))
}
