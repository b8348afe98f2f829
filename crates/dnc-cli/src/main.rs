//! `dnc`: Divide and Contrast from the command line.
//!
//! `dnc train` runs a whole experiment in one process; `dnc init` + `dnc stage <name>` run it
//! stage by stage (what `cargo xtask train` does); `dnc export` writes a hub-ready backbone;
//! `dnc bench` measures throughput; `dnc device-check` compares a GPU with the CPU.

// A command-line program: stdout is where its results go.
#![allow(clippy::print_stdout)]

mod bench;
mod bench_distill;
mod commands;
mod device_check;
#[cfg(test)]
mod doc_commands;
mod logging;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dnc",
    version,
    about = "Divide and Contrast: self-supervised learning from uncurated images"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a run directory: resolve and validate the config, write config.toml.
    Init(commands::InitArgs),
    /// List the stages of a run, one per line.
    Stages(commands::RunArgs),
    /// Run one stage of a run (base, embed, cluster, experts, distill, baseline, eval); the
    /// experts also one at a time or a share of them (`--expert K`, `--shard I/N`).
    Stage(commands::StageArgs),
    /// Where each stage and each expert of a run stands: done, running (and where), failed,
    /// interrupted or not started.
    Status(commands::RunArgs),
    /// Take finished stages (base, then embed, cluster, experts, distill) from another run with
    /// the same settings for them, instead of training them again.
    Adopt(commands::AdoptArgs),
    /// Create (or resume) a run and execute every stage that is not done.
    Train(commands::TrainArgs),
    /// Embed the training images with the base model (the `embed` stage).
    Embed(commands::StageOnlyArgs),
    /// Cluster the embeddings (the `cluster` stage).
    Cluster(commands::StageOnlyArgs),
    /// Train one expert per cluster (the `experts` stage).
    Experts(commands::StageOnlyArgs),
    /// Distil base and experts into the student (the `distill` stage).
    Distill(commands::StageOnlyArgs),
    /// Evaluate every model of the run (the `eval` stage).
    Eval(commands::StageOnlyArgs),
    /// Write report.md and print the results table.
    Report(commands::RunArgs),
    /// Export a trained backbone as a hub-ready folder (model.safetensors, config.json, README.md).
    Export(commands::ExportArgs),
    /// Write one list file of several labelled collections' images (an uncurated mixture to
    /// train on), each source whole or a subset of it.
    Mix(commands::MixArgs),
    /// Write images (a folder tree or a list file) into WebDataset tar shards.
    Shards(commands::ShardsArgs),
    /// Throughput benchmarks (JSON on the last line).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Compare a device with the CPU (ResNet-18 forward/backward, MoCLR loss, k-means) and time
    /// a convolution's backward there; `--device cpu` is a dry run against the CPU itself.
    DeviceCheck(device_check::DeviceCheckArgs),
}

fn main() {
    // Training allocates and frees the same large buffers every step; keeping them in the
    // process (instead of returning them to the OS) saves the page faults of fresh memory.
    dnc_kernels::retain_freed_buffers();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init(a) => commands::init(a),
        Command::Stages(a) => commands::stages(a),
        Command::Stage(a) => commands::stage(a),
        Command::Status(a) => commands::status(a),
        Command::Adopt(a) => commands::adopt(a),
        Command::Train(a) => commands::train(a),
        Command::Embed(a) => commands::stage_only("embed", a),
        Command::Cluster(a) => commands::stage_only("cluster", a),
        Command::Experts(a) => commands::stage_only("experts", a),
        Command::Distill(a) => commands::stage_only("distill", a),
        Command::Eval(a) => commands::stage_only("eval", a),
        Command::Report(a) => commands::report(a),
        Command::Export(a) => commands::export(a),
        Command::Mix(a) => commands::mix(a),
        Command::Shards(a) => commands::shards(a),
        Command::Bench(b) => bench::run(b),
        Command::DeviceCheck(a) => device_check::run(a),
    };
    if let Err(e) = result {
        logging::record_exit_error(&format!("{e:#}"));
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
