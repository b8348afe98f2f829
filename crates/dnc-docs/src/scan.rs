//! Which files are the docs, and the commands and paths each one names, with its line.

use crate::markdown::{self, Kind};
use crate::{Tool, paths, shell};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Where a doc names something: its repository-relative file and 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A command a doc shows, as its program would receive it (quotes removed, elisions dropped).
#[derive(Clone, Debug)]
pub struct DocCommand {
    pub tool: Tool,
    pub args: Vec<String>,
    pub at: Location,
}

impl DocCommand {
    /// The command as one line, for messages.
    pub fn text(&self) -> String {
        format!("{} {}", self.tool.bin(), self.args.join(" "))
    }
}

/// A repository-relative path a doc names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DocPath {
    pub path: String,
    pub at: Location,
}

/// Everything the docs name, in document order.
#[derive(Debug, Default)]
pub struct Scan {
    pub commands: Vec<DocCommand>,
    pub paths: Vec<DocPath>,
}

/// The workspace this crate belongs to (two folders above its manifest).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The docs, repository-relative and sorted: `README.md`, every `docs/*.md`, and the README of
/// every folder one or two levels down (`crates/dnc-hub/README.md`, `fixtures/README.md`),
/// outside hidden folders and what runs and builds write (`runs/`, `target/`).
pub fn doc_files(root: &Path) -> io::Result<Vec<String>> {
    let mut files = vec!["README.md".to_string()];
    for name in folder_names(&root.join("docs"))? {
        if name.ends_with(".md") {
            files.push(format!("docs/{name}"));
        }
    }
    for top in folder_names(root)? {
        if top.starts_with('.') || top == "target" || top == "runs" || !root.join(&top).is_dir() {
            continue;
        }
        let mut candidates = vec![format!("{top}/README.md")];
        for sub in folder_names(&root.join(&top))? {
            candidates.push(format!("{top}/{sub}/README.md"));
        }
        files.extend(candidates.into_iter().filter(|f| root.join(f).is_file()));
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn folder_names(dir: &Path) -> io::Result<Vec<String>> {
    std::fs::read_dir(dir)?
        .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
        .collect()
}

impl Scan {
    /// Reads every doc of the repository at `root` ([`doc_files`]).
    pub fn read(root: &Path) -> io::Result<Scan> {
        let mut scan = Scan::default();
        for file in doc_files(root)? {
            let text = std::fs::read_to_string(root.join(&file))?;
            let one = Scan::markdown(&file, &text);
            scan.commands.extend(one.commands);
            scan.paths.extend(one.paths);
        }
        Ok(scan)
    }

    /// The commands and paths of one Markdown document, `file` being its repository-relative
    /// path (link targets are read from its folder).
    pub fn markdown(file: &str, text: &str) -> Scan {
        let mut scan = Scan::default();
        let at = |line| Location {
            file: file.to_string(),
            line,
        };
        for (kind, text, line) in logical_lines(markdown::pieces(text)) {
            if matches!(kind, Kind::ShellLine | Kind::Code) {
                for (tool, args) in shell::commands(&text) {
                    let at = at(line);
                    scan.commands.push(DocCommand { tool, args, at });
                }
            }
            let mut named = match kind {
                Kind::Prose => paths::in_prose(&text, file),
                _ => paths::named(&text),
            };
            named.sort();
            named.dedup();
            let found = named.into_iter().map(|path| DocPath { path, at: at(line) });
            scan.paths.extend(found);
        }
        scan
    }

    /// The commands of one program.
    pub fn commands_of(&self, tool: Tool) -> impl Iterator<Item = &DocCommand> {
        self.commands.iter().filter(move |c| c.tool == tool)
    }

    /// A line per named path that the repository at `root` does not hold.
    pub fn missing_paths(&self, root: &Path) -> Vec<String> {
        self.paths
            .iter()
            .filter(|p| !root.join(&p.path).exists())
            .map(|p| format!("{}: `{}` does not exist", p.at, p.path))
            .collect()
    }

    /// The presets the docs name (`configs/*.toml`), each at its first mention.
    pub fn presets(&self) -> Vec<&DocPath> {
        let mut presets: Vec<&DocPath> = Vec::new();
        for p in &self.paths {
            let preset = p.path.starts_with("configs/") && p.path.ends_with(".toml");
            if preset && !presets.iter().any(|q| q.path == p.path) {
                presets.push(p);
            }
        }
        presets
    }
}

/// Shell lines with their continuations (a trailing `\`) joined and a leading prompt (`$ `)
/// taken off; every other piece as it is.
fn logical_lines(pieces: Vec<markdown::Piece>) -> Vec<(Kind, String, usize)> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize)> = None;
    for piece in pieces {
        if piece.kind != Kind::ShellLine {
            out.extend(
                open.take()
                    .map(|(text, line)| (Kind::ShellLine, text, line)),
            );
            out.push((piece.kind, piece.text, piece.line));
            continue;
        }
        let (text, line) = match open.take() {
            Some((text, line)) => (text + " " + piece.text.trim(), line),
            None => {
                let trimmed = piece.text.trim();
                let command = trimmed.strip_prefix("$ ").unwrap_or(trimmed);
                (command.to_string(), piece.line)
            }
        };
        match text.strip_suffix('\\') {
            Some(head) => open = Some((head.to_string(), line)),
            None => out.push((Kind::ShellLine, text, line)),
        }
    }
    out.extend(open.map(|(text, line)| (Kind::ShellLine, text, line)));
    out
}
