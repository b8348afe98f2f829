//! `cargo xtask reliability`: the full kill matrix (`crates/dnc-cli/tests/kill_matrix.rs`):
//! `dnc train` killed at seeded random moments inside every stage, 20 kill points with one and
//! with two loader workers, each resumed and checked against an uninterrupted run. The test
//! suite runs a smaller version of the same matrix.

use anyhow::Result;
use clap::Args;

use crate::util::{cargo, run_cmd};

#[derive(Args)]
pub(crate) struct ReliabilityArgs {
    /// Kill points per worker count.
    #[arg(long, default_value_t = 20)]
    points: usize,
    /// Seed of the kill moments.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub(crate) fn run(args: ReliabilityArgs) -> Result<()> {
    run_cmd(
        cargo()
            .args(["test", "-p", "dnc-cli", "--test", "kill_matrix", "--"])
            .args(["--ignored", "--nocapture", "kill_matrix_full"])
            .env("DNC_KILL_POINTS", args.points.to_string())
            .env("DNC_KILL_SEED", args.seed.to_string()),
    )
}
