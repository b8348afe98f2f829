//! A stage's checkpoint directory: atomic saves, keep-last-N and keep-best, finding the latest.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{Tensor, Var};
use candle_nn::VarMap;

use super::state::{FORMAT_VERSION, TrainingState};
use super::tensors::{assign, read_for_varmap, save_varmap};
use crate::error::EngineError;
use crate::optim::MomentumBuffers;

/// The training state inside a checkpoint directory.
pub const STATE_FILE: &str = "state.json";
/// The momentum buffers inside a checkpoint directory.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STEP_PREFIX: &str = "step-";
const BEST_NAME: &str = "best";
const TEMP_PREFIX: &str = ".tmp-";

/// The checkpoints of one stage: `step-000000120/`, ..., and optionally `best/`.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
    keep_last: usize,
}

/// One complete checkpoint on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub state: TrainingState,
}

impl CheckpointStore {
    /// A store in `dir` (created on the first save) that keeps the `keep_last` newest step
    /// checkpoints (at least one is always kept).
    pub fn new(dir: impl Into<PathBuf>, keep_last: usize) -> Self {
        Self {
            dir: dir.into(),
            keep_last: keep_last.max(1),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `step-<global_step>/` atomically, then deletes older step checkpoints beyond
    /// `keep_last` and temporary folders left by crashed saves.
    pub fn save(
        &self,
        state: &TrainingState,
        vars: &[(String, VarMap)],
        buffers: &MomentumBuffers,
    ) -> Result<Checkpoint, EngineError> {
        let name = format!("{STEP_PREFIX}{:09}", state.global_step);
        let checkpoint = self.write_atomic(&name, state, vars, buffers)?;
        self.prune()?;
        Ok(checkpoint)
    }

    /// Writes (or replaces) `best/` atomically.
    pub fn save_best(
        &self,
        state: &TrainingState,
        vars: &[(String, VarMap)],
        buffers: &MomentumBuffers,
    ) -> Result<Checkpoint, EngineError> {
        self.write_atomic(BEST_NAME, state, vars, buffers)
    }

    /// Complete step checkpoints, oldest first. Temporary folders and folders without a
    /// `state.json` are ignored.
    pub fn list(&self) -> Result<Vec<(usize, PathBuf)>, EngineError> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        let entries = fs::read_dir(&self.dir).map_err(|e| EngineError::io(&self.dir, e))?;
        let mut found = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| EngineError::io(&self.dir, e))?.path();
            let step = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(STEP_PREFIX))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(step) = step.filter(|_| path.join(STATE_FILE).is_file()) {
                found.push((step, path));
            }
        }
        found.sort();
        Ok(found)
    }

    /// The newest complete step checkpoint, if any.
    pub fn latest(&self) -> Result<Option<Checkpoint>, EngineError> {
        match self.list()?.pop() {
            Some((_, path)) => Checkpoint::open(&path).map(Some),
            None => Ok(None),
        }
    }

    /// The `best/` checkpoint, if one was written.
    pub fn best(&self) -> Result<Option<Checkpoint>, EngineError> {
        let path = self.dir.join(BEST_NAME);
        if path.join(STATE_FILE).is_file() {
            Checkpoint::open(&path).map(Some)
        } else {
            Ok(None)
        }
    }

    fn write_atomic(
        &self,
        name: &str,
        state: &TrainingState,
        vars: &[(String, VarMap)],
        buffers: &MomentumBuffers,
    ) -> Result<Checkpoint, EngineError> {
        let temp = self
            .dir
            .join(format!("{TEMP_PREFIX}{name}-{}", std::process::id()));
        if temp.exists() {
            fs::remove_dir_all(&temp).map_err(|e| EngineError::io(&temp, e))?;
        }
        fs::create_dir_all(&temp).map_err(|e| EngineError::io(&temp, e))?;
        write_contents(&temp, state, vars, buffers)?;
        let target = self.dir.join(name);
        replace_dir(&temp, &target)?;
        sync_dir(&self.dir);
        tracing::debug!(path = %target.display(), step = state.global_step, "checkpoint written");
        Ok(Checkpoint {
            path: target,
            state: state.clone(),
        })
    }

    fn prune(&self) -> Result<(), EngineError> {
        let steps = self.list()?;
        let excess = steps.len().saturating_sub(self.keep_last);
        for (_, path) in &steps[..excess] {
            fs::remove_dir_all(path).map_err(|e| EngineError::io(path, e))?;
        }
        let entries = fs::read_dir(&self.dir).map_err(|e| EngineError::io(&self.dir, e))?;
        for entry in entries.flatten() {
            let is_temp = entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX);
            if is_temp {
                // A folder left by a crashed save: never complete, never read.
                let path = entry.path();
                fs::remove_dir_all(&path).map_err(|e| EngineError::io(&path, e))?;
            }
        }
        Ok(())
    }
}

/// Writes the tensors first and `state.json` last, each flushed to disk.
fn write_contents(
    dir: &Path,
    state: &TrainingState,
    vars: &[(String, VarMap)],
    buffers: &MomentumBuffers,
) -> Result<(), EngineError> {
    for (key, varmap) in vars {
        check_key(dir, key)?;
        let path = dir.join(format!("{key}.safetensors"));
        save_varmap(varmap, &path)?;
        sync_file(&path)?;
    }
    let path = dir.join(OPTIMIZER_FILE);
    buffers.save(&path)?;
    sync_file(&path)?;
    let path = dir.join(STATE_FILE);
    let json = serde_json::to_string_pretty(state).expect("training state serialises");
    fs::write(&path, json).map_err(|e| EngineError::io(&path, e))?;
    sync_file(&path)
}

fn check_key(dir: &Path, key: &str) -> Result<(), EngineError> {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !plain || key == "optimizer" {
        return Err(EngineError::checkpoint(
            dir,
            format!(
                "state key {key:?} must be a plain word ([A-Za-z0-9_-]) other than \"optimizer\""
            ),
        ));
    }
    Ok(())
}

/// Renames `temp` to `target`, moving an existing `target` out of the way first.
fn replace_dir(temp: &Path, target: &Path) -> Result<(), EngineError> {
    if target.exists() {
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let old = target.with_file_name(format!("{TEMP_PREFIX}old-{name}-{}", std::process::id()));
        fs::rename(target, &old).map_err(|e| EngineError::io(target, e))?;
        fs::rename(temp, target).map_err(|e| EngineError::io(target, e))?;
        fs::remove_dir_all(&old).map_err(|e| EngineError::io(&old, e))
    } else {
        fs::rename(temp, target).map_err(|e| EngineError::io(target, e))
    }
}

fn sync_file(path: &Path) -> Result<(), EngineError> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| EngineError::io(path, e))
}

/// Makes a rename durable; best effort, as not every platform can sync a directory.
fn sync_dir(dir: &Path) {
    if let Ok(f) = fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

impl Checkpoint {
    /// Reads the `state.json` of a checkpoint directory.
    pub fn open(path: &Path) -> Result<Self, EngineError> {
        let file = path.join(STATE_FILE);
        let text = fs::read_to_string(&file).map_err(|e| EngineError::io(&file, e))?;
        let version: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| EngineError::checkpoint(&file, format!("not JSON: {e}")))?;
        let found = version.get("format_version").and_then(|v| v.as_u64());
        if found != Some(u64::from(FORMAT_VERSION)) {
            return Err(EngineError::checkpoint(
                &file,
                format!("format version {found:?}, this build reads version {FORMAT_VERSION}"),
            ));
        }
        let state = serde_json::from_str(&text)
            .map_err(|e| EngineError::checkpoint(&file, format!("invalid training state: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            state,
        })
    }

    /// The file of the variable map saved under `key`.
    pub fn varmap_path(&self, key: &str) -> PathBuf {
        self.path.join(format!("{key}.safetensors"))
    }

    /// Restores every map of `vars` (same keys as saved, same names, shapes and dtypes). Every
    /// file is checked before any variable changes.
    pub fn load_vars(&self, vars: &[(String, VarMap)]) -> Result<(), EngineError> {
        let mut saved = self.state.keys.clone();
        let mut wanted: Vec<String> = vars.iter().map(|(k, _)| k.clone()).collect();
        saved.sort();
        wanted.sort();
        if saved != wanted {
            return Err(EngineError::checkpoint(
                &self.path,
                format!("holds the maps {saved:?}, the train step has {wanted:?}"),
            ));
        }
        let files = vars
            .iter()
            .map(|(key, varmap)| read_for_varmap(varmap, &self.varmap_path(key)))
            .collect::<Result<Vec<HashMap<String, Tensor>>, _>>()?;
        for ((_, varmap), values) in vars.iter().zip(&files) {
            assign(varmap, values)?;
        }
        Ok(())
    }

    /// Restores the weights and the optimiser's buffers (checked against `params`); nothing
    /// changes unless every file matches.
    pub fn restore(
        &self,
        vars: &[(String, VarMap)],
        buffers: &mut MomentumBuffers,
        params: &[(String, Var)],
    ) -> Result<(), EngineError> {
        let mut loaded = MomentumBuffers::new();
        loaded.load(&self.path.join(OPTIMIZER_FILE), params)?;
        self.load_vars(vars)?;
        *buffers = loaded;
        Ok(())
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
