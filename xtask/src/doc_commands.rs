//! The docs kept true, `cargo xtask`'s share: every `cargo xtask ...` command that README.md,
//! `docs/*.md` and the crate READMEs show parses with this parser (parsed, never run). The
//! paths they name are checked by `dnc-docs`, the `dnc` commands and presets by `dnc-cli`.

use crate::Cli;
use dnc_docs::{DocCommand, Scan, Tool, check_documented_commands, parse_problem};

#[test]
fn every_xtask_command_in_the_docs_parses() {
    if let Err(problems) = check_documented_commands::<Cli>(Tool::Xtask, 21) {
        panic!("{problems}");
    }
}

#[test]
fn this_parser_refuses_an_unknown_flag_or_subcommand() {
    let scan = Scan::markdown(
        "sample.md",
        "`cargo xtask train --bogus` and `cargo xtask bench trian`",
    );
    let commands: Vec<&DocCommand> = scan.commands_of(Tool::Xtask).collect();
    assert_eq!(commands.len(), 2);
    for c in commands {
        assert!(
            parse_problem::<Cli>(c).is_some(),
            "`{}` was taken",
            c.text()
        );
    }
}
