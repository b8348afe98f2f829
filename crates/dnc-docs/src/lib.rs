//! The commands and paths that the project's Markdown names, for the tests that keep the docs
//! true: every `dnc` and `cargo xtask` command (in code blocks and inline code, over `\` line
//! continuations and line breaks, after launchers such as `mpirun`), parsed by the program's own
//! clap parser and never run; and every repository path (`configs/*.toml`, `crates/...`,
//! `docs/...`, relative links), which must exist.
//!
//! The tests live beside the parsers: `dnc-cli` checks the `dnc` commands and that every preset
//! named loads and validates, `xtask` checks the `cargo xtask` commands, and this crate checks
//! the paths. No candle: `xtask` depends on it.

mod markdown;
mod parse;
mod paths;
mod scan;
mod shell;

pub use parse::{check_documented_commands, check_refuses, parse_problem};
pub use paths::{EXEMPT, is_placeholder};
pub use scan::{DocCommand, DocPath, Location, Scan, doc_files, workspace_root};
pub use shell::Tool;
