//! The docs kept true, `cargo xtask`'s share: every `cargo xtask ...` command that README.md,
//! `docs/*.md` and the crate READMEs show parses with this parser (parsed, never run). The
//! paths they name are checked by `dnc-docs`, the `dnc` commands and presets by `dnc-cli`.

use crate::Cli;
use dnc_docs::{Tool, check_documented_commands, check_refuses};

#[test]
fn every_xtask_command_in_the_docs_parses() {
    if let Err(problems) = check_documented_commands::<Cli>(Tool::Xtask, 21) {
        panic!("{problems}");
    }
}

#[test]
fn this_parser_refuses_an_unknown_flag_or_subcommand() {
    if let Err(problem) = check_refuses::<Cli>(
        Tool::Xtask,
        "`cargo xtask train --bogus` and `cargo xtask bench trian`",
        2,
    ) {
        panic!("{problem}");
    }
}
