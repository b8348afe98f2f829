//! The docs kept true, `dnc`'s share: every `dnc ...` command that README.md, `docs/*.md` and
//! the crate READMEs show parses with this binary's parser (parsed, never run), and every preset
//! they name (`configs/*.toml`) loads and validates. The paths they name are checked by
//! `dnc-docs`, the `cargo xtask` commands by `xtask`.

use crate::Cli;
use dnc_docs::{Scan, Tool, check_documented_commands, check_refuses, workspace_root};
use dnc_pipeline::{RunConfig, validate};

#[test]
fn every_dnc_command_in_the_docs_parses() {
    if let Err(problems) = check_documented_commands::<Cli>(Tool::Dnc, 21) {
        panic!("{problems}");
    }
}

#[test]
fn every_preset_the_docs_name_loads_and_validates() {
    let root = workspace_root();
    let scan = Scan::read(&root).expect("reading the docs");
    let presets = scan.presets();
    assert!(!presets.is_empty(), "no `configs/*.toml` found in the docs");
    let problems: Vec<String> = presets
        .iter()
        .filter(|p| root.join(&p.path).exists()) // a missing one is dnc-docs' finding
        .filter_map(|p| {
            let config = RunConfig::from_file(&root.join(&p.path));
            let problem = config.and_then(|c| validate(&c)).err()?;
            Some(format!("{}: `{}`: {problem}", p.at, p.path))
        })
        .collect();
    assert!(
        problems.is_empty(),
        "{} preset(s) named in the docs do not load and validate:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn this_parser_refuses_an_unknown_flag_or_subcommand() {
    if let Err(problem) = check_refuses::<Cli>(
        Tool::Dnc,
        "`dnc stage base --run R --bogus` and `dnc bench trian`",
        2,
    ) {
        panic!("{problem}");
    }
}
