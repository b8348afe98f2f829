//! Side-by-side accuracy tables (e.g. untrained vs base vs DnC) for terminals and reports.

use crate::result::EvalResult;
use std::fmt;

/// Rows of `(model name, k-NN top-1, linear top-1)` in insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq)]
struct Row {
    model: String,
    knn: f64,
    linear: Option<f64>,
}

const HEADER: [&str; 3] = ["model", "k-NN top-1", "linear top-1"];

impl Comparison {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a model's accuracies.
    pub fn push(&mut self, model: impl Into<String>, result: &EvalResult) {
        self.push_scores(model, result.knn_top1, result.linear_top1);
    }

    /// Appends accuracies given as fractions in `[0, 1]`.
    pub fn push_scores(&mut self, model: impl Into<String>, knn: f64, linear: Option<f64>) {
        self.rows.push(Row {
            model: model.into(),
            knn,
            linear,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// A GitHub-flavoured Markdown table, accuracies in percent with two decimals, `-` where the
    /// linear probe was not run.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "| {} | {} | {} |\n|---|---:|---:|\n",
            HEADER[0], HEADER[1], HEADER[2]
        );
        for row in &self.rows {
            let [model, knn, linear] = row.cells();
            out.push_str(&format!("| {model} | {knn} | {linear} |\n"));
        }
        out
    }

    /// A plain-text table with aligned columns (model left-aligned, numbers right-aligned).
    pub fn to_plain(&self) -> String {
        let cells: Vec<[String; 3]> = self.rows.iter().map(Row::cells).collect();
        let width = |i: usize| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([HEADER[i].len()])
                .max()
                .unwrap_or(0)
        };
        let (w0, w1, w2) = (width(0), width(1), width(2));
        let line = |a: &str, b: &str, c: &str| format!("{a:<w0$}  {b:>w1$}  {c:>w2$}\n");
        let mut out = line(HEADER[0], HEADER[1], HEADER[2]);
        for [model, knn, linear] in &cells {
            out.push_str(&line(model, knn, linear));
        }
        out
    }
}

impl Row {
    fn cells(&self) -> [String; 3] {
        [
            self.model.clone(),
            percent(self.knn),
            self.linear.map_or_else(|| "-".to_string(), percent),
        ]
    }
}

fn percent(fraction: f64) -> String {
    format!("{:.2}%", 100.0 * fraction)
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_plain())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Comparison {
        let mut t = Comparison::new();
        t.push_scores("untrained", 0.364, None);
        t.push_scores("base", 0.4751, Some(0.5));
        let result = EvalResult {
            knn_top1: 0.8,
            linear_top1: Some(0.91234),
            per_class_knn: Vec::new(),
            per_class_linear: None,
        };
        t.push("dnc", &result);
        t
    }

    #[test]
    fn markdown_snapshot() {
        let expected = "\
| model | k-NN top-1 | linear top-1 |
|---|---:|---:|
| untrained | 36.40% | - |
| base | 47.51% | 50.00% |
| dnc | 80.00% | 91.23% |
";
        assert_eq!(table().to_markdown(), expected);
    }

    #[test]
    fn plain_snapshot() {
        let expected = "\
model      k-NN top-1  linear top-1
untrained      36.40%             -
base           47.51%        50.00%
dnc            80.00%        91.23%
";
        assert_eq!(table().to_plain(), expected);
        assert_eq!(table().to_string(), expected);
        assert!(Comparison::new().is_empty());
        assert_eq!(
            Comparison::new().to_plain(),
            "model  k-NN top-1  linear top-1\n"
        );
    }
}
