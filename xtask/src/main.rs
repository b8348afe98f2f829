//! `cargo xtask`: orchestration for dnc.
//!
//! - `train`: builds the `dnc` binary (release) and runs a Divide and Contrast experiment stage by
//!   stage, skipping stages that `summary.json` marks as done;
//! - `bench`: throughput benchmarks (`train`, `data`, `kmeans`), side by side with the PyTorch
//!   reference where asked;
//! - `ci`: what CI runs (format check, clippy, tests);
//! - `data longtail`: builds the uncurated/curated pair of the curation-gap experiment;
//! - `data shards`: writes a folder tree or a list file of images into WebDataset tar shards;
//! - `reliability`: the full kill matrix (kill `dnc train` inside every stage, resume, compare);
//! - `tidy`: checks that the crate graph only points downwards;
//! - `setup-torch`: installs the PyTorch reference into `.venv/` for side-by-side benchmarks;
//! - `cuda setup` / `cuda build`: installs a local CUDA toolkit into `.tools/cuda/` from PyPI and
//!   builds `dnc` with the `cuda` feature into `target/cuda/`, on a machine without a GPU;
//! - `device-check`: bundles that binary with a script for one short run on a GPU machine
//!   (`--dry-run` runs the same script here on the CPU).
//!
//! xtask does not link candle, so it compiles in seconds; heavy work happens in `dnc`.

// xtask is a command-line program: printing to stdout is its job.
#![allow(clippy::print_stdout)]

mod bench;
mod ci;
mod cuda;
mod device_check;
#[cfg(test)]
mod doc_commands;
mod experiment;
mod longtail;
mod reliability;
mod setup;
mod shards;
mod tidy;
mod train;
mod util;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "dnc project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Divide and Contrast experiment (default: the small preset on fixtures/).
    Train(train::TrainArgs),
    /// Benchmarks: `train`, `data`, `kmeans`.
    Bench(bench::BenchArgs),
    /// Format check, clippy with -D warnings, and the test suite.
    Ci,
    /// The full kill matrix: `dnc train` killed inside every stage, resumed, and compared with
    /// an uninterrupted run (20 kill points with 1 and with 2 loader workers).
    Reliability(reliability::ReliabilityArgs),
    /// Check the crate layering (no upward dependency edges).
    Tidy,
    /// Experiments: `curation-gap` (MoCLR vs DnC on curated and uncurated data, several seeds),
    /// `budget` (accuracy against total epochs, MoCLR and DnC).
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Dataset tools: `longtail` builds an uncurated (long-tailed) set and its curated twin,
    /// `shards` writes images into WebDataset tar shards.
    #[command(subcommand)]
    Data(DataCommand),
    /// Install the PyTorch reference (and faiss) into `.venv/` for `bench --vs-torch`.
    SetupTorch,
    /// CUDA without a GPU: `setup` installs a local toolkit, `build` builds `dnc --features cuda`.
    #[command(subcommand)]
    Cuda(CudaCommand),
    /// Prepare the GPU check bundle in target/device-check/ (`--dry-run`: run it on the CPU).
    DeviceCheck(device_check::DeviceCheckArgs),
}

#[derive(Subcommand)]
enum CudaCommand {
    /// Install the CUDA 13.0 compiler, headers and libraries from PyPI into `.tools/cuda/`.
    Setup(cuda::SetupArgs),
    /// Build the release `dnc` with the `cuda` feature into `target/cuda/`.
    Build(cuda::BuildArgs),
}

#[derive(Subcommand)]
enum DataCommand {
    /// An uncurated, long-tailed training set from an ImageFolder, and its curated counterpart.
    Longtail(longtail::LongtailArgs),
    /// Images (a folder tree or a list file) into WebDataset tar shards of `--shard-size` images.
    Shards(shards::ShardsArgs),
}

#[derive(Subcommand)]
enum ExperimentCommand {
    /// MoCLR on curated, MoCLR on uncurated and DnC on uncurated data, matched epochs, several seeds.
    CurationGap(experiment::CurationArgs),
    /// Accuracy against total epochs: MoCLR on a ladder of budgets, DnC and its controls at the
    /// same totals (sharing every stage they can), the saturation budget E*.
    Budget(experiment::budget::BudgetArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Train(args) => train::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Ci => ci::run(),
        Command::Reliability(args) => reliability::run(args),
        Command::Tidy => tidy::run(),
        Command::SetupTorch => setup::run(),
        Command::Cuda(CudaCommand::Setup(args)) => cuda::setup(args),
        Command::Cuda(CudaCommand::Build(args)) => cuda::build(args),
        Command::DeviceCheck(args) => device_check::run(args),
        Command::Data(DataCommand::Longtail(args)) => longtail::run(args),
        Command::Data(DataCommand::Shards(args)) => shards::run(args),
        Command::Experiment(ExperimentCommand::CurationGap(args)) => experiment::run(args),
        Command::Experiment(ExperimentCommand::Budget(args)) => experiment::budget::run(args),
    }
}
