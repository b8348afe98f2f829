//! The run context: a run's directory, resolved configuration and device. Every stage reads
//! it; how the stages are executed in order is [`crate::orchestrate`].

use crate::config::RunConfig;
use crate::error::PipelineError;
use crate::run_dir::{RunDir, write_atomic};
use crate::stage::Stage;
use crate::validate::validate;
use candle_core::Device;
use dnc_core::DeviceSpec;
use dnc_engine::MetricsWriter;
use std::path::Path;

/// An experiment on disk, ready to run stages.
pub struct Run {
    pub dir: RunDir,
    pub cfg: RunConfig,
    pub device: Device,
}

impl Run {
    /// Validates `cfg` and writes it to `<out>/config.toml` before any work. Fails when `out`
    /// already holds a run.
    pub fn create(cfg: RunConfig, out: &Path) -> Result<Self, PipelineError> {
        validate(&cfg)?;
        let dir = RunDir::new(out);
        if dir.config_path().exists() {
            return Err(PipelineError::Other(format!(
                "{} already holds a run (config.toml exists); resume it or choose another directory",
                out.display()
            )));
        }
        write_atomic(&dir.config_path(), cfg.to_toml().as_bytes())?;
        dir.update_summary(|_| {})?;
        let device = cfg.device.open()?;
        Ok(Self { dir, cfg, device })
    }

    /// Opens an existing run; `device` overrides the configured device (e.g. resuming on another
    /// machine).
    pub fn open(out: &Path, device: Option<DeviceSpec>) -> Result<Self, PipelineError> {
        let dir = RunDir::open(out)?;
        let cfg = RunConfig::from_file(&dir.config_path())?;
        validate(&cfg)?;
        let device = device.unwrap_or(cfg.device).open()?;
        Ok(Self { dir, cfg, device })
    }

    /// The stages this run executes, in order.
    pub fn stages(&self) -> Vec<Stage> {
        Stage::plan(&self.cfg)
    }

    /// The run's `metrics.jsonl`, opened for appending.
    pub fn metrics(&self) -> Result<MetricsWriter, PipelineError> {
        Ok(MetricsWriter::open(self.dir.metrics_path())?)
    }
}
