//! Markdown as the doc check reads it: fenced code blocks, inline code spans (which may run over
//! a line break, as a long command in a paragraph does) and the prose around them, each with the
//! line it starts on. Only as much of CommonMark as the project's docs use.

/// What a piece of a document is, which decides what is looked for in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A line of a fenced block in a shell language (or none): commands and paths.
    ShellLine,
    /// A line of a fenced block in another language (TOML, Python, text): paths only.
    OtherLine,
    /// An inline code span, its line breaks made spaces: commands and paths.
    Code,
    /// One line's text outside code: paths and link targets.
    Prose,
}

/// A piece of a document and the (1-based) line it starts on.
#[derive(Debug)]
pub(crate) struct Piece {
    pub(crate) kind: Kind,
    pub(crate) text: String,
    pub(crate) line: usize,
}

/// Info strings of the fenced blocks whose lines are shell commands.
const SHELL_LANGUAGES: &[&str] = &["", "bash", "sh", "shell", "console", "zsh"];

/// Splits a Markdown document into pieces, in document order.
pub(crate) fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    // The open fence (its character and length) and the kind of its lines.
    let mut fence: Option<(char, usize, Kind)> = None;
    let mut paragraph: Vec<(usize, &str)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        let trimmed = line.trim_start();
        if let Some((ch, len, kind)) = fence {
            let body = trimmed.trim_end();
            if body.len() >= len && body.chars().all(|c| c == ch) {
                fence = None;
            } else {
                out.push(Piece {
                    kind,
                    text: line.to_string(),
                    line: number,
                });
            }
            continue;
        }
        if let Some((ch, len)) = opening_fence(line) {
            inline(&paragraph, &mut out);
            paragraph.clear();
            let language = trimmed[len..].split_whitespace().next().unwrap_or("");
            let kind = if SHELL_LANGUAGES.contains(&language.to_ascii_lowercase().as_str()) {
                Kind::ShellLine
            } else {
                Kind::OtherLine
            };
            fence = Some((ch, len, kind));
        } else if trimmed.is_empty() {
            inline(&paragraph, &mut out);
            paragraph.clear();
        } else {
            paragraph.push((number, line));
        }
    }
    inline(&paragraph, &mut out);
    out
}

/// The character and length of a fence that opens a code block (at most 3 spaces in).
fn opening_fence(line: &str) -> Option<(char, usize)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[indent..];
    let ch = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = rest.len() - rest.trim_start_matches(ch).len();
    (indent <= 3 && len >= 3).then_some((ch, len))
}

/// The code spans and prose of one paragraph (consecutive non-blank lines outside fences).
fn inline(paragraph: &[(usize, &str)], out: &mut Vec<Piece>) {
    let Some(&(first, _)) = paragraph.first() else {
        return;
    };
    let text: String = paragraph
        .iter()
        .map(|(_, l)| *l)
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = text.as_bytes();
    let mut line = first;
    let mut prose = String::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                push_prose(&mut prose, line, out);
                line += 1;
                i += 1;
            }
            b'`' => {
                let run = backtick_run(bytes, i);
                match closing_run(bytes, i + run, run) {
                    Some(end) => {
                        push_prose(&mut prose, line, out);
                        let code = text[i + run..end].replace('\n', " ");
                        out.push(Piece {
                            kind: Kind::Code,
                            text: code.trim().to_string(),
                            line,
                        });
                        line += text[i..end].matches('\n').count();
                        i = end + run;
                    }
                    None => {
                        prose.push_str(&text[i..i + run]);
                        i += run;
                    }
                }
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or(' ');
                prose.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    push_prose(&mut prose, line, out);
}

fn push_prose(prose: &mut String, line: usize, out: &mut Vec<Piece>) {
    if !prose.trim().is_empty() {
        out.push(Piece {
            kind: Kind::Prose,
            text: std::mem::take(prose),
            line,
        });
    }
    prose.clear();
}

/// How many backticks start at `at`.
fn backtick_run(bytes: &[u8], at: usize) -> usize {
    bytes[at..].iter().take_while(|b| **b == b'`').count()
}

/// Where the next run of exactly `run` backticks from `from` starts.
fn closing_run(bytes: &[u8], from: usize, run: usize) -> Option<usize> {
    let mut i = from;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            let len = backtick_run(bytes, i);
            if len == run {
                return Some(i);
            }
            i += len;
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_spans_and_prose_keep_their_lines() {
        let doc = "# Title\n\nRun `dnc init\n--out RUN` then\n`x`.\n\n```toml\na = 1\n```\n\n```bash\ndnc report\n```\n";
        let pieces = pieces(doc);
        let got: Vec<(Kind, &str, usize)> = pieces
            .iter()
            .map(|p| (p.kind, p.text.trim(), p.line))
            .collect();
        assert_eq!(
            got,
            vec![
                (Kind::Prose, "# Title", 1),
                (Kind::Prose, "Run", 3),
                (Kind::Code, "dnc init --out RUN", 3),
                (Kind::Prose, "then", 4),
                (Kind::Code, "x", 5),
                (Kind::Prose, ".", 5),
                (Kind::OtherLine, "a = 1", 8),
                (Kind::ShellLine, "dnc report", 12),
            ]
        );
    }

    #[test]
    fn an_unclosed_backtick_is_prose() {
        let pieces = pieces("a ` b\n");
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].kind, Kind::Prose);
    }
}
