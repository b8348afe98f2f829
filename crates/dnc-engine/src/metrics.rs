//! Metrics as JSON lines (STYLE §8): one object per logged step or finished epoch, appended to
//! the run's `metrics.jsonl`, which scripts and the report read.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::checkpoint::unix_seconds;
use crate::error::EngineError;

/// Keys every record has; a step metric with one of these names is written as `<name>_metric`.
pub const RESERVED_KEYS: [&str; 8] = [
    "stage",
    "kind",
    "epoch",
    "step",
    "loss",
    "lr",
    "images_per_s",
    "time",
];

/// Whether a record covers a window of steps or a whole epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Step,
    Epoch,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRecord {
    /// The stage being trained (`"base"`, `"expert-0"`, ...).
    pub stage: String,
    pub kind: RecordKind,
    /// The epoch of the last step covered (from 0).
    pub epoch: usize,
    /// Steps done in total after the last step covered.
    pub step: usize,
    /// Mean loss over the covered steps.
    pub loss: f64,
    /// Learning rate of the last step covered.
    pub lr: f64,
    /// Examples per second over the covered steps.
    pub images_per_s: f64,
    /// Means of the step's named metrics.
    pub metrics: BTreeMap<String, f64>,
}

impl MetricsRecord {
    /// The JSON object: `{"stage", "kind", "epoch", "step", "loss", "lr", "images_per_s",
    /// <metrics>..., "time"}`, with `time` in Unix seconds. Non-finite numbers become `null`.
    pub fn to_json(&self, time: f64) -> Map<String, Value> {
        let mut obj = Map::new();
        obj.insert("stage".into(), self.stage.clone().into());
        let kind = match self.kind {
            RecordKind::Step => "step",
            RecordKind::Epoch => "epoch",
        };
        obj.insert("kind".into(), kind.into());
        obj.insert("epoch".into(), self.epoch.into());
        obj.insert("step".into(), self.step.into());
        obj.insert("loss".into(), self.loss.into());
        obj.insert("lr".into(), self.lr.into());
        obj.insert("images_per_s".into(), self.images_per_s.into());
        for (name, value) in &self.metrics {
            let key = if RESERVED_KEYS.contains(&name.as_str()) {
                format!("{name}_metric")
            } else {
                name.clone()
            };
            obj.insert(key, (*value).into());
        }
        obj.insert("time".into(), time.into());
        obj
    }
}

/// Appends JSON objects, one per line, to a file; every line is flushed as it is written.
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
}

impl MetricsWriter {
    /// Opens `path` for appending, creating it and its folder if needed.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, EngineError> {
        let path = path.into();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| EngineError::io(parent, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| EngineError::io(&path, e))?;
        Ok(Self { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record, stamped with the current time.
    pub fn write(&mut self, record: &MetricsRecord) -> Result<(), EngineError> {
        self.write_object(&record.to_json(unix_seconds()))
    }

    /// Appends any JSON object as one line.
    pub fn write_object(&mut self, object: &Map<String, Value>) -> Result<(), EngineError> {
        let mut line = serde_json::to_string(object).expect("a JSON map serialises");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| EngineError::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_objects_with_the_expected_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/metrics.jsonl");
        let record = MetricsRecord {
            stage: "base".into(),
            kind: RecordKind::Step,
            epoch: 2,
            step: 30,
            loss: 1.5,
            lr: 0.1,
            images_per_s: 250.0,
            metrics: BTreeMap::from([("acc".into(), 0.25), ("lr".into(), 7.0)]),
        };
        let mut w = MetricsWriter::open(&path).unwrap();
        w.write(&record).unwrap();
        drop(w);
        let mut w = MetricsWriter::open(&path).unwrap();
        let nan = MetricsRecord {
            kind: RecordKind::Epoch,
            loss: f64::NAN,
            ..record
        };
        w.write(&nan).unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "appends across writers");
        let first = lines[0].as_object().unwrap();
        let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "acc",
                "epoch",
                "images_per_s",
                "kind",
                "loss",
                "lr",
                "lr_metric",
                "stage",
                "step",
                "time"
            ]
        );
        assert_eq!(first["stage"], "base");
        assert_eq!(first["kind"], "step");
        assert_eq!(first["step"], 30);
        assert_eq!(first["lr"], 0.1);
        assert_eq!(first["lr_metric"], 7.0);
        assert!(first["time"].as_f64().unwrap() > 1.6e9);
        assert_eq!(lines[1]["kind"], "epoch");
        assert!(lines[1]["loss"].is_null());
    }
}
