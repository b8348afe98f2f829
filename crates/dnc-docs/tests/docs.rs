//! The extractor on a sample document (so that the doc check cannot pass by finding nothing),
//! and the real check of this crate's share: every path the docs name exists.

use clap::{Parser, Subcommand};
use dnc_docs::{Scan, Tool, parse_problem, workspace_root};
use std::path::PathBuf;

/// A stand-in for the `dnc` parser: one subcommand with a required flag.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        fast: bool,
        #[arg(long)]
        level: Option<u32>,
    },
}

const SAMPLE: &str = r#"# A sample

Run `dnc run --out o --fast` or `dnc run --bogus`, and the long
`dnc run --out o
--level 3` too; `dnc` alone names the program.

```bash
$ dnc run --out o \
    --level 3 \
    --nope      # a flag the parser does not know
dnc run --level K --fast   # a placeholder value; --out left out of a fragment
mpirun -n 2 target/release/dnc walk   # no such subcommand
cargo xtask train --out runs/x
```

```toml
data.root = "fixtures/cifar10-mini"
```

See `configs/missing.toml`, [a page](docs/nowhere.md), `configs/fixtures.toml`; `runs/x/report.md`
and `../shared/datasets/cifar10` are written or supplied, `fixtures/<name>/` is a placeholder.
"#;

fn summary(scan: &Scan) -> Vec<(usize, String, Option<String>)> {
    scan.commands_of(Tool::Dnc)
        .map(|c| (c.at.line, c.args.join(" "), parse_problem::<Cli>(c)))
        .collect()
}

#[test]
fn the_extractor_finds_commands_over_lines_and_the_parser_judges_them() {
    let scan = Scan::markdown("sample.md", SAMPLE);
    let found = summary(&scan);
    let lines: Vec<(usize, &str, bool)> = found
        .iter()
        .map(|(line, args, problem)| (*line, args.as_str(), problem.is_some()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (3, "run --out o --fast", false),
            (3, "run --bogus", true),
            (4, "run --out o --level 3", false),
            (8, "run --out o --level 3 --nope", true),
            (11, "run --level K --fast", false),
            (12, "walk", true),
        ]
    );
    let bogus = found[1].2.as_deref().unwrap_or_default();
    assert!(bogus.contains("--bogus"), "{bogus}");
    let xtask: Vec<_> = scan.commands_of(Tool::Xtask).collect();
    assert_eq!(xtask.len(), 1);
    assert_eq!(xtask[0].text(), "cargo xtask train --out runs/x");
}

#[test]
fn the_extractor_finds_missing_paths_and_leaves_out_the_exempt() {
    let scan = Scan::markdown("docs/sample.md", SAMPLE);
    let mut named: Vec<(usize, &str)> = scan
        .paths
        .iter()
        .map(|p| (p.at.line, p.path.as_str()))
        .collect();
    named.sort();
    // A link is read from the doc's folder: `docs/nowhere.md` from `docs/` is `docs/docs/...`.
    assert_eq!(
        named,
        vec![
            (17, "fixtures/cifar10-mini"),
            (20, "configs/fixtures.toml"),
            (20, "configs/missing.toml"),
            (20, "docs/docs/nowhere.md"),
        ]
    );
    let mut missing = scan.missing_paths(&workspace_root());
    missing.sort();
    assert_eq!(
        missing,
        vec![
            "docs/sample.md:20: `configs/missing.toml` does not exist",
            "docs/sample.md:20: `docs/docs/nowhere.md` does not exist",
        ]
    );
}

#[test]
fn every_path_the_docs_name_exists() {
    let root = workspace_root();
    let scan = Scan::read(&root).expect("reading the docs");
    assert!(
        scan.paths.len() > 50,
        "only {} paths found in the docs: is the extractor broken?",
        scan.paths.len()
    );
    let missing = scan.missing_paths(&root);
    assert!(
        missing.is_empty(),
        "the docs name {} path(s) the repository does not hold (exempt: {:?} and placeholders \
         such as RUN, <name>, {{k}}, *):\n{}",
        missing.len(),
        dnc_docs::EXEMPT,
        missing.join("\n")
    );
}
