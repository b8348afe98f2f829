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

/// Appends JSON objects, one per line, to a file. Each line is written under an exclusive lock
/// on a sibling lock file (`.metrics.jsonl.lock`), with the file opened for that line, so that
/// several writers (expert threads, expert jobs in other processes) never interleave, and a
/// [`drop_after`](Self::drop_after) that rewrites the file is seen by every writer.
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    lock_path: PathBuf,
}

impl MetricsWriter {
    /// Opens `path` for appending, creating it and its folder if needed.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, EngineError> {
        let path = path.into();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| EngineError::io(parent, e))?;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lock_path = path.with_file_name(format!(".{name}.lock"));
        let writer = Self { path, lock_path };
        writer.append_file()?;
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append_file(&self) -> Result<File, EngineError> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| EngineError::io(&self.path, e))
    }

    /// Holds the lock until the returned file is dropped.
    fn lock(&self) -> Result<File, EngineError> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|e| EngineError::io(&self.lock_path, e))?;
        lock.lock()
            .map_err(|e| EngineError::io(&self.lock_path, e))?;
        Ok(lock)
    }

    /// Appends one record, stamped with the current time.
    pub fn write(&mut self, record: &MetricsRecord) -> Result<(), EngineError> {
        self.write_object(&record.to_json(unix_seconds()))
    }

    /// Appends any JSON object as one line.
    pub fn write_object(&mut self, object: &Map<String, Value>) -> Result<(), EngineError> {
        let mut line = serde_json::to_string(object).expect("a JSON map serialises");
        line.push('\n');
        let _lock = self.lock()?;
        let mut file = self.append_file()?;
        file.write_all(line.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| EngineError::io(&self.path, e))
    }

    /// Removes the records of `stage` after `step` (what a run killed after its last checkpoint
    /// logged, before it resumes from that checkpoint and logs those steps again), so that the
    /// file holds each step once. The file is rewritten to a temporary file and renamed into
    /// place. Returns how many records were removed.
    pub fn drop_after(&mut self, stage: &str, step: usize) -> Result<usize, EngineError> {
        let _lock = self.lock()?;
        let text =
            std::fs::read_to_string(&self.path).map_err(|e| EngineError::io(&self.path, e))?;
        // A line that is not a JSON object (one cut short by a kill mid-write) goes too.
        let keep = |line: &str| {
            serde_json::from_str::<Value>(line).is_ok_and(|v| {
                v.is_object()
                    && !(v["stage"] == stage && v["step"].as_u64().is_some_and(|s| s > step as u64))
            })
        };
        let kept: Vec<&str> = text.lines().filter(|l| keep(l)).collect();
        let removed = text.lines().count() - kept.len();
        if removed > 0 {
            let tmp = self.path.with_file_name(format!(
                ".{}.tmp-{}",
                self.path.file_name().unwrap_or_default().to_string_lossy(),
                std::process::id()
            ));
            let body: String = kept.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(&tmp, body).map_err(|e| EngineError::io(&tmp, e))?;
            std::fs::rename(&tmp, &self.path).map_err(|e| EngineError::io(&self.path, e))?;
        }
        Ok(removed)
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

    /// A step record of `stage` at `step`.
    fn record(stage: &str, step: usize) -> MetricsRecord {
        MetricsRecord {
            stage: stage.into(),
            kind: RecordKind::Step,
            epoch: 0,
            step,
            loss: 1.0,
            lr: 0.1,
            images_per_s: 1.0,
            metrics: BTreeMap::new(),
        }
    }

    #[test]
    fn records_after_a_step_are_dropped_for_one_stage_and_every_writer_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut a = MetricsWriter::open(&path).unwrap();
        let mut b = MetricsWriter::open(&path).unwrap();
        for step in 1..=4 {
            a.write(&record("expert-0", step)).unwrap();
            b.write(&record("expert-1", step)).unwrap();
        }
        assert_eq!(a.drop_after("expert-0", 2).unwrap(), 2);
        // The other writer appends to the rewritten file.
        b.write(&record("expert-1", 5)).unwrap();
        let steps: Vec<(String, u64)> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|v| {
                (
                    v["stage"].as_str().unwrap().to_string(),
                    v["step"].as_u64().unwrap(),
                )
            })
            .collect();
        let of = |stage: &str| -> Vec<u64> {
            steps
                .iter()
                .filter(|(s, _)| s == stage)
                .map(|(_, n)| *n)
                .collect()
        };
        assert_eq!(of("expert-0"), [1, 2]);
        assert_eq!(of("expert-1"), [1, 2, 3, 4, 5]);
        assert_eq!(a.drop_after("expert-0", 2).unwrap(), 0);
    }

    #[test]
    fn dropping_every_record_leaves_an_empty_file_and_torn_lines_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut w = MetricsWriter::open(&path).unwrap();
        let record = record("base", 3);
        w.write(&record).unwrap();
        // A kill before the first checkpoint: every record goes, and no empty line is left.
        assert_eq!(w.drop_after("base", 0).unwrap(), 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        // A line cut short by a kill mid-write is removed with the records after the step.
        w.write(&record).unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"stage\": \"ba").unwrap();
        assert_eq!(w.drop_after("base", 5).unwrap(), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.ends_with('\n'));
        serde_json::from_str::<Value>(text.trim_end()).unwrap();
    }
}
