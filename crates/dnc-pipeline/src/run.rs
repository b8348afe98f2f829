//! A run: its directory, resolved configuration and device, and how stages are executed.

use crate::config::RunConfig;
use crate::error::PipelineError;
use crate::lock::RunLock;
use crate::run_dir::{RunDir, StageStatus, write_atomic};
use crate::stage::Stage;
use crate::validate::validate;
use candle_core::Device;
use dnc_core::DeviceSpec;
use dnc_engine::MetricsWriter;
use std::path::Path;
use std::time::Instant;

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

    /// Runs one stage and marks it done in `summary.json` with its wall time. The stages that
    /// read its results ([`Stage::downstream`]) are marked not done first, so a re-run that
    /// fails never leaves older results looking current.
    ///
    /// The run directory's lock is held meanwhile: a second process is refused.
    ///
    /// Without `resume` the stage starts from scratch (its folder is cleared first); with it, a
    /// stage interrupted earlier continues from its last checkpoint.
    pub fn run_stage(&self, stage: Stage, resume: bool) -> Result<(), PipelineError> {
        let _lock = RunLock::acquire(self.dir.root())?;
        let summary = self.dir.read_summary()?;
        if let Some(needs) = stage.needs()
            && !summary.is_done(needs.name())
        {
            return Err(PipelineError::StageOrder {
                stage: stage.name().into(),
                needs: needs.name().into(),
            });
        }
        let folder = self.dir.root().join(stage.name());
        if !resume && folder.exists() {
            std::fs::remove_dir_all(&folder).map_err(|e| PipelineError::io(&folder, e))?;
        }
        let earlier = summary.stages.get(stage.name()).map_or(0.0, |s| s.seconds);
        let stale = stage.downstream();
        self.dir.update_summary(|s| {
            // The later stages' results no longer follow from this one's until they run again.
            for later in &stale {
                if let Some(status) = s.stages.get_mut(later.name()) {
                    status.done = false;
                }
            }
            if stage == Stage::Eval || stale.contains(&Stage::Eval) {
                s.eval.clear();
                s.info.remove("eval");
                s.info.remove("diagnostics");
            }
            s.stages.insert(
                stage.name().into(),
                StageStatus {
                    done: false,
                    seconds: if resume { earlier } else { 0.0 },
                },
            );
        })?;
        tracing::info!("stage {stage}: start");
        let start = Instant::now();
        crate::stages::run(self, stage, resume)?;
        let seconds = start.elapsed().as_secs_f64();
        self.dir.update_summary(|s| {
            let entry = s.stages.entry(stage.name().into()).or_default();
            entry.done = true;
            entry.seconds += seconds;
        })?;
        tracing::info!("stage {stage}: done in {seconds:.1} s");
        Ok(())
    }

    /// Runs every stage that is not done yet, then writes the report.
    pub fn run_all(&self, resume: bool) -> Result<(), PipelineError> {
        for stage in self.stages() {
            if self.dir.read_summary()?.is_done(stage.name()) {
                tracing::info!("stage {stage}: done, skipped");
                continue;
            }
            self.run_stage(stage, resume)?;
        }
        crate::report::write_report(self)
    }
}
