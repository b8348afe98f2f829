//! Everything wrong between a checkpoint and a model, collected into one report so that a user
//! fixes all of it at once rather than one key per run.

use crate::naming::Naming;
use candle_core::DType;
use std::fmt;
use std::path::PathBuf;

/// A tensor whose shape differs between model and checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The model's (torchvision) name.
    pub name: String,
    /// The checkpoint's name when it differs (another naming convention).
    pub file_name: Option<String>,
    pub expected: Vec<usize>,
    pub found: Vec<usize>,
}

/// A tensor stored in a dtype that cannot become a model weight (an integer or exotic type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DTypeMismatch {
    pub name: String,
    pub expected: DType,
    pub found: String,
}

/// Missing, unexpected and mismatched tensors of one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadProblems {
    pub path: PathBuf,
    pub naming: Naming,
    /// Model tensors absent from the file: (torchvision name, expected shape).
    pub missing: Vec<(String, Vec<usize>)>,
    /// File tensors the model has no place for: (name in the file, shape).
    pub unexpected: Vec<(String, Vec<usize>)>,
    pub shape_mismatches: Vec<ShapeMismatch>,
    pub dtype_mismatches: Vec<DTypeMismatch>,
    /// Explanations of unexpected names (see [`crate::naming::architecture_hints`]).
    pub hints: Vec<String>,
}

impl LoadProblems {
    pub(crate) fn new(path: PathBuf, naming: Naming) -> Self {
        Self {
            path,
            naming,
            missing: Vec::new(),
            unexpected: Vec::new(),
            shape_mismatches: Vec::new(),
            dtype_mismatches: Vec::new(),
            hints: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.shape_mismatches.is_empty()
            && self.dtype_mismatches.is_empty()
    }

    pub(crate) fn sort(&mut self) {
        self.missing.sort();
        self.unexpected.sort();
        self.shape_mismatches.sort_by(|a, b| a.name.cmp(&b.name));
        self.dtype_mismatches.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

impl fmt::Display for LoadProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checkpoint {} ({} names) does not fit the model: {} missing, {} unexpected, \
             {} with another shape, {} with an unusable dtype",
            self.path.display(),
            self.naming,
            self.missing.len(),
            self.unexpected.len(),
            self.shape_mismatches.len(),
            self.dtype_mismatches.len()
        )?;
        let named_shapes = |list: &[(String, Vec<usize>)]| -> Vec<String> {
            list.iter()
                .map(|(name, shape)| format!("{name} {shape:?}"))
                .collect()
        };
        section(
            f,
            "missing from the file (name, model shape)",
            named_shapes(&self.missing),
        )?;
        section(
            f,
            "unexpected in the file (name, file shape)",
            named_shapes(&self.unexpected),
        )?;
        let shapes = self.shape_mismatches.iter().map(|m| {
            let alias = m
                .file_name
                .as_ref()
                .map(|n| format!(" (file: {n})"))
                .unwrap_or_default();
            format!("{}{alias}: {:?} vs {:?}", m.name, m.expected, m.found)
        });
        section(
            f,
            "shape mismatches (name: model shape vs file shape)",
            shapes.collect(),
        )?;
        let dtypes = self
            .dtype_mismatches
            .iter()
            .map(|m| format!("{}: {:?} vs {}", m.name, m.expected, m.found));
        section(
            f,
            "dtype mismatches (name: model dtype vs file dtype)",
            dtypes.collect(),
        )?;
        for hint in &self.hints {
            write!(f, "\n  note: {hint}")?;
        }
        Ok(())
    }
}

/// One titled list of the report, skipped when empty.
fn section(f: &mut fmt::Formatter<'_>, title: &str, lines: Vec<String>) -> fmt::Result {
    if !lines.is_empty() {
        write!(f, "\n  {title}:")?;
        for line in lines {
            write!(f, "\n    {line}")?;
        }
    }
    Ok(())
}
