//! The repository paths a doc names: words that start with one of the repository's top-level
//! folders (`configs/fixtures.toml`, `crates/dnc-hub/src/card.rs`), words that start with a
//! crate's folder (`dnc-cli/tests/kill_resume.rs::test_name`, read under `crates/`), and the
//! targets of relative Markdown links. What runs write and what a user supplies are not paths the
//! repository holds: [`EXEMPT`], and parts such as `RUN`, `<name>`, `{k}`, `*` (`checked`).

/// Top-level folders of the repository: a word that starts with one of them names a path the
/// docs promise exists.
const ROOTS: &[&str] = &[
    "configs/",
    "crates/",
    "docs/",
    "fixtures/",
    "scripts/",
    "xtask/",
    ".ci/",
    ".cargo/",
    ".github/",
];

/// Paths a doc may name that no checkout holds: what runs and builds write (`runs/`, `target/`)
/// and the data beside the checkout (`../shared/`).
pub const EXEMPT: &[&str] = &["runs/", "target/", "../shared/"];

/// Characters that end a path in running text or a command.
const SEPARATORS: &[char] = &['(', ')', '[', ']', '"', '\'', '`', ',', ';', '|', '='];

/// The repository-relative paths named by the words of `text`.
pub(crate) fn named(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || SEPARATORS.contains(&c))
        .filter_map(|word| {
            let word = word.trim_start_matches('*').trim_start_matches("./");
            let word = match word.strip_suffix("...") {
                Some(_) => word, // `fixtures/...`: an elision, left to the placeholder test
                None => word.trim_end_matches(['.', ':', '!', '?', '*']),
            };
            let path = if ROOTS.iter().any(|r| word.starts_with(r)) {
                word.to_string()
            } else if word.starts_with("dnc-") && word.contains('/') {
                format!("crates/{word}")
            } else {
                return None;
            };
            // `file.rs::test_name`, `file.rs:42`, `page.md#section`.
            let path = path.split([':', '#']).next().unwrap_or_default();
            checked(path)
        })
        .collect()
}

/// The repository-relative paths that a line of prose in the doc at `doc` names: its words (the
/// link targets left out) and its relative link targets, read from the doc's folder.
pub(crate) fn in_prose(text: &str, doc: &str) -> Vec<String> {
    let mut words = String::new();
    for (i, part) in text.split("](").enumerate() {
        let after_target = if i == 0 {
            part
        } else {
            part.split_once(')').map_or("", |(_, rest)| rest)
        };
        words.push_str(after_target);
        words.push(' ');
    }
    let mut paths = named(&words);
    paths.extend(link_targets(text, doc));
    paths
}

/// The repository-relative targets of the relative links (`[text](target)`) in `text`, a line of
/// the doc at `doc` (itself repository-relative).
fn link_targets(text: &str, doc: &str) -> Vec<String> {
    let folder: Vec<&str> = doc.split('/').collect();
    let folder = &folder[..folder.len() - 1];
    text.split("](")
        .skip(1)
        .filter_map(|rest| {
            let target = rest.split([')', ' ']).next()?;
            let target = target.split('#').next()?;
            if target.is_empty() || target.contains(':') {
                return None; // an anchor on the same page, a URL or mail address
            }
            checked(&normalise(folder, target))
        })
        .collect()
}

/// `target` read from `folder`, with `.` and `..` resolved lexically; a path above the
/// repository keeps its leading `..`.
fn normalise(folder: &[&str], target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        folder.to_vec()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    let mut path = parts.join("/");
    if target.ends_with('/') {
        path.push('/');
    }
    path
}

/// The path, unless the repository need not hold it: an exempt path, or one with a part the
/// user supplies (`<run>`, `{k}`, `*`, `$HOME`, `...`, or a part wholly in capitals, `RUN`).
fn checked(path: &str) -> Option<String> {
    let exempt = EXEMPT.iter().any(|e| path.starts_with(e));
    let placeholder = path.split('/').any(|part| {
        part.contains(['<', '{', '*', '$', '…'])
            || part.contains("...")
            || (part.chars().any(|c| c.is_ascii_uppercase())
                && !part.chars().any(|c| c.is_ascii_lowercase()))
    });
    (!path.is_empty() && !exempt && !placeholder).then(|| path.to_string())
}

/// Whether a command's value stands for something the user supplies: a part in angle brackets
/// or braces (`<run>`, `{k}`), a glob or a variable (`*`, `$HOME`), an elision (`...`), or a word
/// in capitals (`RUN`, `cuda:N`, `I/N`, `hf://ORG/NAME`).
pub fn is_placeholder(value: &str) -> bool {
    value.contains(['<', '{', '*', '$', '…'])
        || value.contains("...")
        || value
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .any(|word| {
                word.chars().any(|c| c.is_ascii_uppercase())
                    && !word.chars().any(|c| c.is_ascii_lowercase())
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_under_a_top_level_folder_or_a_crate_are_paths() {
        assert_eq!(
            named(
                "see `configs/fixtures.toml`, (docs/dnc.md#results) and \
                 dnc-cli/tests/kill_resume.rs::killed, crates/dnc-cli/src/main.rs:12."
            ),
            vec![
                "configs/fixtures.toml",
                "docs/dnc.md",
                "crates/dnc-cli/tests/kill_resume.rs",
                "crates/dnc-cli/src/main.rs",
            ]
        );
        assert_eq!(named("--config=configs/a.toml"), vec!["configs/a.toml"]);
        assert!(named("src/main.rs model.safetensors hf://org/name").is_empty());
        assert_eq!(
            named("crates/dnc-hub/README.md"),
            vec!["crates/dnc-hub/README.md"]
        );
    }

    #[test]
    fn runs_targets_shared_data_and_placeholders_are_exempt() {
        let text = "runs/c10/report.md target/release/dnc ../shared/datasets/cifar10 \
                    configs/PRESET/x.toml fixtures/<name>/ crates/*/README.md docs/... \
                    scripts/{a,b}.sh";
        assert!(named(text).is_empty(), "{:?}", named(text));
        assert!(link_targets("[data](../shared/datasets/x)", "README.md").is_empty());
    }

    #[test]
    fn link_targets_are_read_from_the_doc_s_folder() {
        assert_eq!(
            link_targets(
                "[a](../../docs/x.md#top), [b](src/card.rs), [c](https://x.org/a), [d](#here)",
                "crates/dnc-hub/README.md"
            ),
            vec!["docs/x.md", "crates/dnc-hub/src/card.rs"]
        );
    }

    #[test]
    fn placeholders_are_capitals_brackets_globs_and_elisions() {
        for value in [
            "RUN",
            "cuda:N",
            "I/N",
            "hf://ORG/NAME",
            "<run>",
            "$HOME/x",
            "a...",
        ] {
            assert!(is_placeholder(value), "{value}");
        }
        for value in ["runs/c10", "cuda:0", "0/4", "tiny", "base.epochs=2"] {
            assert!(!is_placeholder(value), "{value}");
        }
    }
}
