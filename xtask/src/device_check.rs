//! `cargo xtask device-check`: prepares the one-shot GPU check, or runs it on the CPU.
//!
//! The bundle (`target/device-check/`) holds everything a GPU machine without a Rust toolchain
//! or network needs: the CUDA build of `dnc` (stripped), the fixtures' training images, the
//! PyTorch reference step (`scripts/torch_gpu_step.py` and `anchors/torch_ref.py`), and
//! `run.sh` (`scripts/device_check.sh`), which prints the parity table and the throughput table
//! beside PyTorch. `--dry-run` builds the same bundle around the CPU binary and runs it here with
//! `DEVICE=cpu` and small sizes, so every part of the script is exercised without a GPU.

use crate::util::{build_dnc, run_cmd, workspace_root};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Args)]
pub(crate) struct DeviceCheckArgs {
    /// Build the bundle around the CPU binary and run it here (DEVICE=cpu, small sizes).
    #[arg(long)]
    dry_run: bool,
    /// Where the bundle goes.
    #[arg(long, default_value = "target/device-check")]
    out: PathBuf,
    /// The PyTorch reference (`anchors/torch_ref.py`); default: `../shared/anchors/torch_ref.py`.
    #[arg(long)]
    torch_ref: Option<PathBuf>,
}

pub(crate) fn run(args: DeviceCheckArgs) -> Result<()> {
    let root = workspace_root();
    let binary = if args.dry_run {
        build_dnc(&[])?
    } else {
        let cuda = root.join("target/cuda/release/dnc");
        if !cuda.is_file() {
            bail!(
                "{} is missing: run `cargo xtask cuda setup` and `cargo xtask cuda build` first",
                cuda.display()
            )
        }
        cuda
    };
    let out = root.join(&args.out);
    let torch_ref = args
        .torch_ref
        .unwrap_or_else(|| root.join("../shared/anchors/torch_ref.py"));
    assemble(&root, &binary, &torch_ref, &out)?;
    if !args.dry_run {
        println!(
            "bundle ready: {} ({} MiB); on the GPU machine run `bash {}/run.sh`",
            out.display(),
            dir_size(&out)? >> 20,
            args.out.display()
        );
        return Ok(());
    }
    let python = root.join(".venv/bin/python");
    if !python.is_file() {
        bail!(
            "the dry run needs PyTorch in {}: run `cargo xtask setup-torch`",
            python.display()
        )
    }
    println!("dry run of {}/run.sh on the CPU", out.display());
    run_cmd(
        Command::new("bash")
            .arg(out.join("run.sh"))
            .env("DEVICE", "cpu")
            .env("MODEL", "tiny")
            .env("BATCH", "32")
            .env("STEPS", "2")
            .env("WORKERS", "1")
            .env("PARITY_BATCH", "4")
            .env("CONV_BATCH", "4")
            .env("PYTHON", &python),
    )
}

/// Copies the binary (stripped), the data, the scripts and the reference into `out`.
fn assemble(root: &Path, binary: &Path, torch_ref: &Path, out: &Path) -> Result<()> {
    if out.exists() {
        fs::remove_dir_all(out).with_context(|| format!("clearing {}", out.display()))?;
    }
    fs::create_dir_all(out)?;
    let dnc = out.join("dnc");
    copy(binary, &dnc)?;
    // Debug information is most of the binary's size; the device run does not need it.
    run_cmd(Command::new("strip").arg(&dnc))?;
    copy(&root.join("scripts/device_check.sh"), &out.join("run.sh"))?;
    copy(
        &root.join("scripts/torch_gpu_step.py"),
        &out.join("torch_gpu_step.py"),
    )?;
    if !torch_ref.is_file() {
        bail!(
            "{} is missing: pass --torch-ref PATH to anchors/torch_ref.py",
            torch_ref.display()
        )
    }
    copy(torch_ref, &out.join("torch_ref.py"))?;
    copy_tree(
        &root.join("fixtures/cifar10-mini/train"),
        &out.join("data/train"),
    )
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .map(|_| ())
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            copy(&entry.path(), &target)?;
        }
    }
    Ok(())
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        total += if entry.file_type()?.is_dir() {
            dir_size(&entry.path())?
        } else {
            entry.metadata()?.len()
        };
    }
    Ok(total)
}
