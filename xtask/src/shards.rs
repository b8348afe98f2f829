//! `cargo xtask data shards`: writes a folder tree or a list file of images into WebDataset tar
//! shards, through `dnc shards` (built in release mode), which holds the writer.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::Command;

use crate::util::{build_dnc, run_cmd};

#[derive(Args)]
pub(crate) struct ShardsArgs {
    /// The images: a folder (any depth) or a list file.
    #[arg(long)]
    src: PathBuf,
    /// The folder to write `000000.tar`, `000001.tar`, ... into.
    #[arg(long)]
    out: PathBuf,
    /// Images per shard.
    #[arg(long, default_value_t = 10_000)]
    shard_size: usize,
}

pub(crate) fn run(args: ShardsArgs) -> Result<()> {
    let dnc = build_dnc(&[])?;
    run_cmd(
        Command::new(dnc)
            .arg("shards")
            .arg("--src")
            .arg(&args.src)
            .arg("--out")
            .arg(&args.out)
            .arg("--shard-size")
            .arg(args.shard_size.to_string()),
    )
}
