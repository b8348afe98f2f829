//! Shell lines as the doc check reads them: words (quotes removed, as the shell would), the
//! operators that end a command (`|`, `&&`, `;`, `>`, ...), and `#` comments; then the `dnc` and
//! `cargo xtask` commands among them.

/// The program a documented command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// The `dnc` binary (also as `target/release/dnc`, `./dnc`, ...).
    Dnc,
    /// `cargo xtask`.
    Xtask,
}

impl Tool {
    /// The program name a parser sees first.
    pub fn bin(self) -> &'static str {
        match self {
            Tool::Dnc => "dnc",
            Tool::Xtask => "cargo xtask",
        }
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    /// An operator that ends a command: `|`, `&`, `;`, `(`, `)`, `<`, `>`.
    End,
}

/// The commands in one logical shell line (continuations already joined): the program and its
/// arguments, with what a doc uses to elide (`...`) or mark optional (`[--flag]`) cleaned off.
pub(crate) fn commands(line: &str) -> Vec<(Tool, Vec<String>)> {
    let tokens = tokenize(line);
    tokens
        .split(|t| *t == Token::End)
        .filter_map(|segment| {
            let words: Vec<&str> = segment
                .iter()
                .filter_map(|t| match t {
                    Token::Word(w) => Some(w.as_str()),
                    Token::End => None,
                })
                .collect();
            command(&words)
        })
        .collect()
}

/// The first `dnc` or `cargo xtask` command in a segment: whatever precedes it is a launcher
/// (`mpirun -n 2`, `srun ...`) or environment (`DNC_WINOGRAD=0`). A bare program name, with no
/// argument, names the program rather than showing a command.
fn command(words: &[&str]) -> Option<(Tool, Vec<String>)> {
    let (tool, start) = words.iter().enumerate().find_map(|(i, w)| {
        let after = words.get(i.wrapping_sub(1)).copied().unwrap_or("");
        if *w == "cargo" && words.get(i + 1) == Some(&"xtask") {
            Some((Tool::Xtask, i + 2))
        } else if (*w == "dnc" || (w.ends_with("/dnc") && !w.contains('=')))
            && !["--bin", "-p", "--package"].contains(&after)
        {
            Some((Tool::Dnc, i + 1))
        } else {
            None
        }
    })?;
    let args: Vec<String> = words[start..].iter().filter_map(|w| clean(w)).collect();
    (!args.is_empty()).then_some((tool, args))
}

/// An argument as the parser should see it: `...` elisions dropped, `[` `]` of optional
/// arguments taken off.
fn clean(word: &str) -> Option<String> {
    if (word.len() >= 2 && word.chars().all(|c| c == '.')) || word == "…" {
        return None;
    }
    let word = word.strip_prefix('[').unwrap_or(word);
    let word = word.strip_suffix(']').unwrap_or(word);
    (!word.is_empty()).then(|| word.to_string())
}

/// Splits a line into words and command-ending operators, stopping at a comment.
fn tokenize(line: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => end_word(&mut tokens, &mut word, &mut in_word),
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                word.extend(chars.by_ref().take_while(|c| *c != '\''));
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            '<' if chars
                .clone()
                .take_while(|c| !c.is_whitespace())
                .any(|c| c == '>') =>
            {
                // `<name>`: a placeholder, part of the word.
                in_word = true;
                word.push(c);
                word.extend(chars.by_ref().take_while(|c| *c != '>'));
                word.push('>');
            }
            '|' | '&' | ';' | '(' | ')' | '<' | '>' => {
                if c == '>' && in_word && word.chars().all(|c| c.is_ascii_digit()) {
                    // `2>`: the descriptor belongs to the redirection, not the command.
                    word.clear();
                    in_word = false;
                }
                end_word(&mut tokens, &mut word, &mut in_word);
                tokens.push(Token::End);
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    end_word(&mut tokens, &mut word, &mut in_word);
    tokens
}

fn end_word(tokens: &mut Vec<Token>, word: &mut String, in_word: &mut bool) {
    if *in_word {
        tokens.push(Token::Word(std::mem::take(word)));
    }
    *in_word = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<(Tool, String)> {
        commands(line)
            .into_iter()
            .map(|(tool, args)| (tool, args.join(" ")))
            .collect()
    }

    #[test]
    fn quotes_comments_and_operators_read_as_the_shell_does() {
        assert_eq!(
            args(r#"cargo xtask train --set eval.data='"../d"' --data "$HOME/x y"   # note"#),
            vec![(
                Tool::Xtask,
                r#"train --set eval.data="../d" --data $HOME/x y"#.to_string()
            )]
        );
        assert_eq!(
            args("dnc stage distill --run R && dnc report --run R 2>&1 | tee log"),
            vec![
                (Tool::Dnc, "stage distill --run R".to_string()),
                (Tool::Dnc, "report --run R".to_string()),
            ]
        );
    }

    #[test]
    fn launchers_environment_and_paths_of_the_binary() {
        assert_eq!(
            args("mpirun -n 2 -x RAYON_NUM_THREADS=1 target/release/dnc stage base --run RUN"),
            vec![(Tool::Dnc, "stage base --run RUN".to_string())]
        );
        assert_eq!(
            args("DNC_WINOGRAD=0|1 ./dnc bench train ..."),
            vec![(Tool::Dnc, "bench train".to_string())]
        );
    }

    #[test]
    fn placeholders_elisions_and_optional_flags() {
        assert_eq!(
            args("dnc stage <name> --run DIR [--resume] ..."),
            vec![(Tool::Dnc, "stage <name> --run DIR --resume".to_string())]
        );
    }

    #[test]
    fn a_bare_program_name_is_no_command() {
        assert!(args("dnc").is_empty());
        assert!(args("cargo xtask").is_empty());
        assert!(args("cargo build --release --bin dnc").is_empty());
        assert!(args("the dnc-cli crate").is_empty());
        assert!(args("DNC=$PWD/target/release/dnc scripts/slurm/submit.sh A").is_empty());
    }
}
