//! `cargo xtask setup-torch`: the Python side of the side-by-side benchmarks.
//!
//! Creates `.venv/` in the workspace root and installs `scripts/requirements-bench.txt`
//! (PyTorch, torchvision, faiss-cpu, numpy, pillow) from PyPI. Nothing outside the workspace is
//! changed.

use crate::util::{run_cmd, workspace_root};
use anyhow::Result;
use std::process::Command;

pub(crate) fn run() -> Result<()> {
    let root = workspace_root();
    let venv = root.join(".venv");
    if !venv.join("bin/python").exists() {
        eprintln!("creating {}", venv.display());
        run_cmd(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    run_cmd(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "-r"])
            .arg(root.join("scripts/requirements-bench.txt")),
    )?;
    eprintln!(
        "PyTorch reference ready: {}",
        venv.join("bin/python").display()
    );
    Ok(())
}
