//! The orchestrator: runs a [`Run`]'s stages in order (base → embed → cluster → experts →
//! distill → (baseline) → eval), one at a time or all that are not done, under the run's lock,
//! marking each done in `summary.json` and what reads it stale; expert jobs of a scheduler; and
//! the report at the end. It depends on the stages; the stages depend only on the run context
//! ([`crate::run`]), never on this module or on each other.

use crate::config::Method;
use crate::error::PipelineError;
use crate::lock::RunLock;
use crate::run::Run;
use crate::run_dir::{StageStatus, Summary, process_peak_rss_mib, unix_now, write_atomic};
use crate::stage::Stage;
use crate::stages::ExpertSelection;
use crate::validate::validate;
use std::time::Instant;

impl Run {
    /// Runs one stage and marks it done in `summary.json` with its wall time. The stages that
    /// read its results ([`Stage::downstream`]) are marked not done first, so a re-run that
    /// fails never leaves older results looking current.
    ///
    /// The run directory's lock is held meanwhile: a second process is refused.
    ///
    /// Without `resume` the stage starts from scratch (its folder is cleared first); with it, a
    /// stage interrupted earlier continues from its last checkpoint.
    ///
    /// Started by a launcher as several processes (`mpirun -n N dnc stage base ...`, see
    /// `dnc_dist::launch`), a training stage (base, baseline, experts, distill) trains
    /// data-parallel: rank 0 takes the lock and prepares the folder while the others wait, every
    /// rank trains on its share of each batch, and rank 0 writes the results. The other stages
    /// run in one process.
    pub fn run_stage(&self, stage: Stage, resume: bool) -> Result<(), PipelineError> {
        let group = dnc_dist::current();
        if !group.is_distributed() {
            return self.run_stage_alone(stage, resume);
        }
        if !stage.trains() {
            return Err(PipelineError::Other(format!(
                "stage {stage} runs in one process, and this one is rank {} of {}: start it \
                 without mpirun/srun (only base, baseline, experts and distill train data-parallel)",
                group.rank(),
                group.world_size()
            )));
        }
        let comm = group.comm();
        let wait = |e: dnc_dist::DistError| PipelineError::Other(e.to_string());
        if !group.is_leader() {
            // Rank 0 checks, clears and marks the stage meanwhile; if it fails, it exits and
            // the launcher ends this process too.
            comm.barrier().map_err(wait)?;
            crate::stages::run(self, stage, resume)?;
            return comm.barrier().map_err(wait);
        }
        let lock = RunLock::acquire(&self.dir)?;
        let start = self.begin_stage(stage, resume)?;
        comm.barrier().map_err(wait)?;
        crate::stages::run(self, stage, resume)?;
        // Every rank has finished (and rank 0 has written the results) before it is marked.
        comm.barrier().map_err(wait)?;
        self.end_stage(stage, start)?;
        drop(lock);
        Ok(())
    }

    /// [`run_stage`](Self::run_stage) in a single process.
    fn run_stage_alone(&self, stage: Stage, resume: bool) -> Result<(), PipelineError> {
        let _lock = RunLock::acquire(&self.dir)?;
        let start = self.begin_stage(stage, resume)?;
        crate::stages::run(self, stage, resume)?;
        self.end_stage(stage, start)
    }

    /// Checks what `stage` needs, clears its folder (without `resume`) and marks it and the
    /// stages after it not done; the time it starts.
    fn begin_stage(&self, stage: Stage, resume: bool) -> Result<Instant, PipelineError> {
        let summary = self.dir.read_summary()?;
        self.check_needs(stage, &summary)?;
        let folder = self.dir.root().join(stage.name());
        if !resume && folder.exists() {
            std::fs::remove_dir_all(&folder).map_err(|e| PipelineError::io(&folder, e))?;
        }
        let earlier = summary
            .stages
            .get(stage.name())
            .cloned()
            .unwrap_or_default();
        let now = unix_now();
        let status = if resume {
            StageStatus {
                done: false,
                seconds: earlier.seconds
                    + killed_attempt_seconds(&earlier, self.dir.last_activity(stage.name())),
                attempt_started: Some(now),
                ..earlier
            }
        } else {
            StageStatus {
                attempt_started: Some(now),
                ..StageStatus::default()
            }
        };
        self.dir.update_summary(|s| {
            mark_stale(s, stage, resume);
            s.stages.insert(stage.name().into(), status);
        })?;
        tracing::info!("stage {stage}: start");
        Ok(Instant::now())
    }

    /// Marks `stage` done in the summary with its wall time since `start`.
    fn end_stage(&self, stage: Stage, start: Instant) -> Result<(), PipelineError> {
        let seconds = start.elapsed().as_secs_f64();
        self.dir.update_summary(|s| {
            let entry = s.stages.entry(stage.name().into()).or_default();
            entry.done = true;
            entry.seconds += seconds;
            entry.attempt_started = None;
            // A resumed stage keeps the peak of its earlier processes.
            entry.peak_rss_mib = entry.peak_rss_mib.max(process_peak_rss_mib());
        })?;
        tracing::info!("stage {stage}: done in {seconds:.1} s");
        Ok(())
    }

    /// Fails when the stage that `stage` reads is not done; for the experts, naming the ones
    /// not complete (expert jobs may have trained the others).
    fn check_needs(&self, stage: Stage, summary: &Summary) -> Result<(), PipelineError> {
        let Some(needs) = stage.needs() else {
            return Ok(());
        };
        if summary.is_done(needs.name()) {
            return Ok(());
        }
        if needs == Stage::Experts {
            let missing = crate::status::incomplete_experts(self, summary);
            if !missing.is_empty() {
                let names: Vec<String> = missing.iter().map(|k| format!("expert-{k}")).collect();
                return Err(PipelineError::Other(format!(
                    "stage {stage} needs every expert; not complete in {}: {} \
                     (run `dnc stage experts --run {} --expert K` for each, or `dnc status`)",
                    self.dir.experts_dir().display(),
                    names.join(", "),
                    self.dir.root().display()
                )));
            }
        }
        Err(PipelineError::StageOrder {
            stage: stage.name().into(),
            needs: needs.name().into(),
        })
    }

    /// Trains the selected experts in this process: an expert job of a scheduler, one of several
    /// that share the run directory (on a shared filesystem) and run at the same time. Each
    /// expert is trained under its own lock; the job that completes the last expert marks the
    /// experts stage done. The stages after the experts are marked not done first. A process
    /// running whole stages in the directory (holding its lock) is not run beside.
    pub fn run_experts(
        &self,
        selection: ExpertSelection,
        resume: bool,
    ) -> Result<(), PipelineError> {
        let group = dnc_dist::current();
        if group.is_distributed() {
            return Err(PipelineError::Other(format!(
                "expert jobs ({selection:?}) run in one process each, and this one is rank {} of \
                 {}: to train the experts data-parallel, start `dnc stage experts` under the \
                 launcher without --expert/--shard",
                group.rank(),
                group.world_size()
            )));
        }
        if !Stage::plan(&self.cfg).contains(&Stage::Experts) {
            return Err(PipelineError::Other(format!(
                "the run in {} has no experts stage (method = {:?})",
                self.dir.root().display(),
                self.cfg.method
            )));
        }
        // Expert jobs never take the run's lock themselves (they would refuse each other).
        let run_lock = self.dir.lock_path();
        if let Some((holder, false)) = crate::lock::lock_holder(&run_lock) {
            return Err(PipelineError::Locked {
                path: run_lock,
                pid: holder.pid,
                host: holder.host,
            });
        }
        let summary = self.dir.read_summary()?;
        self.check_needs(Stage::Experts, &summary)?;
        let incomplete = crate::status::incomplete_experts(self, &summary);
        if resume && !incomplete.iter().any(|&k| selection.includes(k)) {
            // A requeued job whose experts are complete: nothing to redo, nothing made stale.
            tracing::info!("experts {selection:?}: complete, skipped");
            return Ok(());
        }
        let last_activity = self.dir.last_activity(Stage::Experts.name());
        self.dir.update_summary(|s| {
            mark_stale(s, Stage::Experts, resume);
            let entry = s.stages.entry(Stage::Experts.name().into()).or_default();
            // A whole-stage attempt killed earlier: its time counts once, here. Expert jobs
            // record no start of their own (several run at once); each adds its own seconds.
            entry.seconds += killed_attempt_seconds(entry, last_activity);
            entry.attempt_started = None;
            entry.done = false;
        })?;
        tracing::info!("experts {selection:?}: start");
        let start = Instant::now();
        let complete = crate::stages::run_selected_experts(self, selection, resume)?;
        let seconds = start.elapsed().as_secs_f64();
        self.dir.update_summary(|s| {
            let entry = s.stages.entry(Stage::Experts.name().into()).or_default();
            entry.seconds += seconds;
            entry.peak_rss_mib = entry.peak_rss_mib.max(process_peak_rss_mib());
            // Another job may have completed the last expert after this one looked.
            entry.done |= complete;
        })?;
        tracing::info!(
            "experts {selection:?}: done in {seconds:.1} s{}",
            if complete {
                "; every expert is complete"
            } else {
                ""
            }
        );
        Ok(())
    }

    /// Adds the baseline stage to a DnC run created without it: `baseline = true` is written to
    /// its `config.toml` (atomically, under the run's lock). The stage is then not done, and
    /// running it marks the evaluation not done, so [`run_all`](Self::run_all) trains the
    /// baseline and evaluates it, and nothing else. Returns whether the run changed.
    pub fn add_baseline(&mut self) -> Result<bool, PipelineError> {
        if self.cfg.method != Method::Dnc {
            return Err(PipelineError::Other(format!(
                "the run in {} is a MoCLR run (method = \"moclr\"): its base model is the MoCLR \
                 baseline, there is no baseline stage to add",
                self.dir.root().display()
            )));
        }
        if self.cfg.baseline {
            return Ok(false);
        }
        let _lock = RunLock::acquire(&self.dir)?;
        self.turn_baseline_on_locked()
    }

    /// `baseline = true` in the run's `config.toml`, for a caller that holds the run's lock;
    /// whether it was off.
    pub(crate) fn turn_baseline_on_locked(&mut self) -> Result<bool, PipelineError> {
        if self.cfg.baseline {
            return Ok(false);
        }
        let mut cfg = self.cfg.clone();
        cfg.baseline = true;
        validate(&cfg)?;
        write_atomic(&self.dir.config_path(), cfg.to_toml().as_bytes())?;
        self.cfg = cfg;
        tracing::info!(
            "added the baseline stage to {} (baseline = true in its config.toml)",
            self.dir.root().display()
        );
        Ok(true)
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

/// The seconds an earlier attempt at a stage ran before it was killed (it began and never ended:
/// its `attempt_started` is still set): until the run's last write to its metrics or the stage's
/// folder (not its log, which the resumed run has written to already).
fn killed_attempt_seconds(earlier: &StageStatus, last_activity: Option<f64>) -> f64 {
    match (earlier.done, earlier.attempt_started, last_activity) {
        (false, Some(start), Some(last)) => (last - start).max(0.0),
        _ => 0.0,
    }
}

/// Marks the stages after `stage` not done: their results no longer follow from its results
/// until they run again. Evaluation results that read `stage` are removed rather than left
/// looking current: all of them, except that the baseline is read by its own row and the
/// diagnostics alone, and a resumed evaluation keeps the rows it has written (it evaluates only
/// the models without one).
pub(crate) fn mark_stale(s: &mut Summary, stage: Stage, resume: bool) {
    let stale = stage.downstream();
    for later in &stale {
        if let Some(status) = s.stages.get_mut(later.name()) {
            status.done = false;
            // A killed attempt of a later stage is void: the stage runs again on new inputs, and
            // its resume must not count the time until then.
            status.attempt_started = None;
        }
    }
    match stage {
        Stage::Eval if resume => {}
        Stage::Baseline => {
            // The baseline's row, and the diagnostics, which score it cluster by cluster.
            s.eval.remove(Stage::Baseline.name());
            s.info.remove("diagnostics");
        }
        _ if stage == Stage::Eval || stale.contains(&Stage::Eval) => {
            s.eval.clear();
            s.info.remove("eval");
            s.info.remove("diagnostics");
            s.info.remove("cluster_groups");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::ModelEval;

    fn finished() -> Summary {
        let mut s = Summary::default();
        for stage in Stage::ALL {
            s.stages.entry(stage.name().into()).or_default().done = true;
        }
        for model in ["untrained", "base", "dnc", "baseline"] {
            s.eval.insert(model.into(), ModelEval::default());
        }
        s.info.insert("diagnostics".into(), serde_json::json!({}));
        s.info.insert("eval".into(), serde_json::json!({}));
        s
    }

    #[test]
    fn a_killed_attempt_counts_until_the_last_write() {
        let killed = StageStatus {
            done: false,
            seconds: 100.0,
            attempt_started: Some(1_000.0),
            ..StageStatus::default()
        };
        assert_eq!(killed_attempt_seconds(&killed, Some(1_250.0)), 250.0);
        // A clock that went backwards adds nothing; so does a run with no log.
        assert_eq!(killed_attempt_seconds(&killed, Some(900.0)), 0.0);
        assert_eq!(killed_attempt_seconds(&killed, None), 0.0);
        // A stage that ended, or one from a build that did not record its start, adds nothing.
        let ended = StageStatus {
            done: true,
            ..killed.clone()
        };
        assert_eq!(killed_attempt_seconds(&ended, Some(1_250.0)), 0.0);
        let legacy = StageStatus {
            attempt_started: None,
            ..killed
        };
        assert_eq!(killed_attempt_seconds(&legacy, Some(1_250.0)), 0.0);
    }

    #[test]
    fn a_baseline_stales_its_row_and_the_diagnostics_and_a_resumed_evaluation_keeps_rows() {
        let mut s = finished();
        mark_stale(&mut s, Stage::Baseline, false);
        assert!(!s.is_done("eval") && s.is_done("distill"));
        assert_eq!(
            s.eval.keys().collect::<Vec<_>>(),
            ["base", "dnc", "untrained"]
        );
        // The diagnostics score the baseline cluster by cluster; the other evaluation facts stand.
        assert!(!s.info.contains_key("diagnostics"));
        assert!(s.info.contains_key("eval"));

        let mut s = finished();
        mark_stale(&mut s, Stage::Eval, true);
        assert_eq!(s.eval.len(), 4);
        for (stage, resume) in [(Stage::Eval, false), (Stage::Distill, true)] {
            let mut s = finished();
            mark_stale(&mut s, stage, resume);
            assert!(
                s.eval.is_empty() && !s.info.contains_key("diagnostics"),
                "{stage}"
            );
        }
    }
}
