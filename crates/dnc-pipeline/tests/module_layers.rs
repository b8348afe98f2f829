//! The pipeline crate's modules form layers, so that the order of a run reads in the code: the
//! run context and the run-directory contract at the bottom, the stages on them (never on each
//! other), the orchestrator and the report on top. This test reads the crate's sources and fails
//! on an import circle between modules, or on a stage that reaches into another stage.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file relative to `src/`: `run`, `stages`, `stages::cluster`,
/// `stages::eval::diagnostics`, ...
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The code of a file without its comments (doc links name modules without depending on them)
/// and without its test module.
fn code(text: &str) -> String {
    let body = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    body.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths of a use tree or path expression starting at `text` (after `crate::`), each
/// prefixed with `prefix`: `a::{b, c::{d, e}}, f` gives `a::b`, `a::c::d`, `a::c::e` (the tree
/// ends at the first character outside it).
fn tree_paths(prefix: &[String], text: &str, out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    let mut rest = text.trim_start();
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            // The group's members, split at the commas outside nested braces.
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        tree_paths(&path, &group[start..i], out);
                        return;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        tree_paths(&path, &group[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            return;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        path.push(rest[..end].to_string());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(next) => rest = next.trim_start(),
            None => break,
        }
    }
    if path.len() > prefix.len() {
        out.push(path);
    }
}

/// The crate paths `code` names, from the crate root: after each `crate::`, and after each
/// `super::` (resolved against `module`, the module path of the file; `super::super::` too).
fn crate_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let ident = |i: usize| i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        if rest.starts_with("crate::") && !ident(i) {
            tree_paths(&[], &rest["crate::".len()..], &mut out);
            i += "crate::".len();
        } else if rest.starts_with("super::") && !ident(i) {
            let mut base = module.to_vec();
            let mut after = rest;
            while let Some(next) = after.strip_prefix("super::") {
                base.pop();
                after = next.trim_start();
            }
            tree_paths(&base, after, &mut out);
            i += rest.len() - after.len();
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

struct Crate {
    /// Top-level module → the top-level modules it names.
    edges: BTreeMap<String, BTreeSet<String>>,
    /// Each stage's module (`stages::X`) → the sibling stage modules it names.
    stage_edges: BTreeMap<String, BTreeSet<String>>,
}

fn read_crate() -> Crate {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut top: BTreeSet<String> = BTreeSet::new();
    let mut stage_mods: BTreeSet<String> = BTreeSet::new();
    for f in &files {
        let m = module_of(f.strip_prefix(&src).unwrap());
        if let Some(first) = m.first() {
            top.insert(first.clone());
        }
        if m.len() >= 2 && m[0] == "stages" {
            stage_mods.insert(m[1].clone());
        }
    }
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stage_edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let m = module_of(f.strip_prefix(&src).unwrap());
        let Some(first) = m.first() else { continue };
        let text = code(&std::fs::read_to_string(f).unwrap());
        for path in crate_paths(&text, &m) {
            if top.contains(&path[0]) && path[0] != *first {
                edges
                    .entry(first.clone())
                    .or_default()
                    .insert(path[0].clone());
            }
            if m.len() >= 2
                && m[0] == "stages"
                && path.len() >= 2
                && path[0] == "stages"
                && stage_mods.contains(&path[1])
                && path[1] != m[1]
            {
                stage_edges
                    .entry(m[1].clone())
                    .or_default()
                    .insert(path[1].clone());
            }
        }
    }
    Crate { edges, stage_edges }
}

/// A circle of modules in `edges`, if any, as the path that closes it.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(c) = visit(node, edges, &mut done, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_modules_form_layers_without_a_circle() {
    let krate = read_crate();
    // The checker sees the crate: the orchestrator runs the stages, the stages read the context.
    assert!(krate.edges["orchestrate"].contains("stages"));
    assert!(krate.edges["stages"].contains("run"));
    if let Some(cycle) = find_cycle(&krate.edges) {
        panic!("an import circle between modules: {}", cycle.join(" → "));
    }
    for module in ["run", "run_dir", "stage", "config"] {
        for above in ["stages", "orchestrate", "report", "status", "adopt"] {
            assert!(
                !krate.edges.get(module).is_some_and(|e| e.contains(above)),
                "{module} is under {above} and must not import it"
            );
        }
    }
}

#[test]
fn no_stage_imports_another_stage() {
    let krate = read_crate();
    assert!(
        krate.stage_edges.is_empty(),
        "stages that import other stages: {:?}",
        krate.stage_edges
    );
}

#[test]
fn the_checker_finds_a_circle_and_grouped_imports() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&edges), None);
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&edges).unwrap(), ["a", "b", "c", "a"]);

    let owned = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let paths = crate_paths(
        "use crate::{run::Run, stages::{cluster, eval::{self, X}}, lock};\nlet x = crate::lock::f();",
        &owned(&["report"]),
    );
    assert_eq!(
        paths,
        [
            owned(&["run", "Run"]),
            owned(&["stages", "cluster"]),
            owned(&["stages", "eval", "self"]),
            owned(&["stages", "eval", "X"]),
            owned(&["lock"]),
            owned(&["lock", "f"]),
        ]
    );
    // `super::` from stages/distill/targets.rs (module stages::distill::targets).
    let here = owned(&["stages", "distill", "targets"]);
    assert_eq!(
        crate_paths("use super::super::experts::Plan;", &here),
        [owned(&["stages", "experts", "Plan"])]
    );
    assert_eq!(
        crate_paths("use super::{cached, step};", &here),
        [
            owned(&["stages", "distill", "cached"]),
            owned(&["stages", "distill", "step"])
        ]
    );
    // `supercrate::x` or `my_crate::x` name no path of this crate.
    assert!(crate_paths("let a = my_crate::x; let b = supercrate::y;", &here).is_empty());
    assert_eq!(code("let a = 1; // crate::run\n"), "let a = 1; ");
}
