//! A documented command against the program's own clap parser, parsed and never run.

use crate::{DocCommand, Scan, Tool, is_placeholder, workspace_root};
use clap::error::{ContextKind, ContextValue, ErrorKind};

/// Checks every `tool` command in the workspace's docs against the parser `C`: `Err` lists each
/// command that does not parse (with its file and line), or says that fewer than `at_least`
/// were found (an extractor that finds nothing must not pass).
pub fn check_documented_commands<C: clap::Parser>(
    tool: Tool,
    at_least: usize,
) -> Result<(), String> {
    let scan = Scan::read(&workspace_root()).map_err(|e| format!("reading the docs: {e}"))?;
    let commands: Vec<&DocCommand> = scan.commands_of(tool).collect();
    if commands.len() < at_least {
        return Err(format!(
            "only {} `{}` commands found in the docs: is the extractor broken?",
            commands.len(),
            tool.bin()
        ));
    }
    let problems: Vec<String> = commands
        .iter()
        .filter_map(|c| {
            let problem = parse_problem::<C>(c)?;
            Some(format!("{}: `{}`: {problem}", c.at, c.text()))
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} documented `{}` command(s) do not parse:\n{}",
        problems.len(),
        tool.bin(),
        problems.join("\n")
    ))
}

/// Checks that the parser `C` refuses every `tool` command of `sample` (Markdown), and that the
/// sample holds `expected` of them: the check of a parser against the docs cannot pass by
/// taking everything.
pub fn check_refuses<C: clap::Parser>(
    tool: Tool,
    sample: &str,
    expected: usize,
) -> Result<(), String> {
    let scan = Scan::markdown("sample.md", sample);
    let commands: Vec<&DocCommand> = scan.commands_of(tool).collect();
    if commands.len() != expected {
        return Err(format!(
            "{} commands in the sample, not {expected}",
            commands.len()
        ));
    }
    match commands.iter().find(|c| parse_problem::<C>(c).is_none()) {
        Some(c) => Err(format!("`{}` was taken", c.text())),
        None => Ok(()),
    }
}

/// What is wrong with a documented command for the parser `C`, or `None` when the parser takes
/// it. A doc often shows a fragment (`dnc train --resume`, `dnc bench ...`), so a missing
/// required argument or subcommand is no fault, nor is a placeholder value that the value's
/// parser refuses (`--expert K`, `--device cuda:N`): that argument is set aside and the rest
/// parsed again. An unknown subcommand, flag or extra argument, a value that is not a
/// placeholder and is refused, and conflicting flags are faults.
pub fn parse_problem<C: clap::Parser>(command: &DocCommand) -> Option<String> {
    let mut args = command.args.clone();
    loop {
        let argv = std::iter::once(command.tool.bin()).chain(args.iter().map(String::as_str));
        let error = C::try_parse_from(argv).err()?;
        match error.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            | ErrorKind::MissingRequiredArgument
            | ErrorKind::MissingSubcommand => return None,
            ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
                let value = match error.get(ContextKind::InvalidValue) {
                    Some(ContextValue::String(value)) => value.clone(),
                    _ => return Some(message(&error)),
                };
                if !(is_placeholder(&value) && set_aside(&mut args, &value)) {
                    return Some(message(&error));
                }
            }
            _ => return Some(message(&error)),
        }
    }
}

/// Removes the argument `value` (with its flag, `--flag value` or `--flag=value`); false when
/// it is not there.
fn set_aside(args: &mut Vec<String>, value: &str) -> bool {
    let joined = format!("={value}");
    let Some(i) = args.iter().position(|a| a == value || a.ends_with(&joined)) else {
        return false;
    };
    let separate = args[i] == value;
    args.remove(i);
    if separate && i > 0 && args[i - 1].starts_with('-') {
        args.remove(i - 1);
    }
    true
}

/// clap's message without its usage section, on one line.
fn message(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    rendered
        .lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .trim_start_matches("error: ")
        .to_string()
}
