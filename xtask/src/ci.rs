//! `cargo xtask ci`: the checks CI runs, in the order a developer wants to see them fail.

use crate::util::{cargo, run_cmd};
use anyhow::Result;

pub(crate) fn run() -> Result<()> {
    run_step(&["fmt", "--all", "--", "--check"])?;
    run_step(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    crate::tidy::run()?;
    run_step(&["test", "--workspace"])
}

fn run_step(args: &[&str]) -> Result<()> {
    eprintln!("cargo {}", args.join(" "));
    run_cmd(cargo().args(args))
}
