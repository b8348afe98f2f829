//! Checkpointing and resuming inside [`fit`](fn@super::fit).

use super::trainer::{Position, Trainer};
use crate::checkpoint::{Checkpoint, FORMAT_VERSION, TrainingState, unix_seconds};
use crate::error::EngineError;
use crate::step::TrainStep;

impl<T: TrainStep> Trainer<'_, T> {
    /// Restores the latest checkpoint when `resume` is set. Without `resume`, a checkpoint
    /// folder that already holds checkpoints is an error: a fresh run would mix with them. With
    /// several ranks, all of them must arrive at the same step.
    pub(super) fn resume(&mut self, resume: bool) -> Result<(), EngineError> {
        self.restore(resume)?;
        // Every rank read rank 0's checkpoints: they must start from the same step.
        let comm = self.group.comm();
        dnc_dist::agree(
            &**comm,
            "the step to resume from",
            self.pos.global_step as f64,
        )
        .map_err(|e| EngineError::Step {
            step: self.pos.global_step,
            source: e,
        })
    }

    /// [`resume`](Self::resume) on this rank alone.
    fn restore(&mut self, resume: bool) -> Result<(), EngineError> {
        let Some(store) = &self.store else {
            if resume {
                tracing::warn!(stage = %self.stage, "resume asked without a checkpoint folder: starting from scratch");
            }
            return Ok(());
        };
        let Some(checkpoint) = store.latest()? else {
            if resume {
                tracing::info!(stage = %self.stage, dir = %store.dir().display(), "no checkpoint yet: starting from scratch");
            }
            return Ok(());
        };
        if !resume {
            let reason = format!(
                "already holds checkpoints (latest at step {}) of an earlier run: resume it or remove the folder",
                checkpoint.state.global_step
            );
            return Err(EngineError::checkpoint(store.dir(), reason));
        }
        self.check_compatible(&checkpoint)?;
        let vars = self.step.state();
        checkpoint.restore(&vars, self.optimizer.buffers_mut(), &self.params)?;
        self.step.load_extra_state(&checkpoint.state.extra)?;
        let state = checkpoint.state;
        tracing::info!(stage = %self.stage, step = state.global_step, epoch = state.epoch, "resumed");
        self.pos = Position {
            global_step: state.global_step,
            epoch: state.epoch,
            batch: state.batch_in_epoch,
        };
        self.history = state.history;
        self.current = state.current;
        self.best = state.best;
        self.last_saved = Some(state.global_step);
        self.resumed_from = Some(state.global_step);
        if let Some(metrics) = self.metrics.as_deref_mut() {
            // What the interrupted run logged after its checkpoint is logged again from here.
            let removed = metrics.drop_after(&self.stage, state.global_step)?;
            if removed > 0 {
                tracing::info!(stage = %self.stage, removed, "dropped metrics logged after the checkpoint");
            }
        }
        Ok(())
    }

    fn check_compatible(&self, checkpoint: &Checkpoint) -> Result<(), EngineError> {
        let s = &checkpoint.state;
        let plan = &self.plan;
        let mut problems = Vec::new();
        if s.stage != self.stage {
            problems.push(format!(
                "it is of stage {:?}, this run trains {:?}",
                s.stage, self.stage
            ));
        }
        if (s.total_steps, s.steps_per_epoch) != (plan.total_steps, plan.steps_per_epoch) {
            problems.push(format!(
                "it was written by a run of {} steps ({} per epoch), this run has {} ({} per epoch)",
                s.total_steps, s.steps_per_epoch, plan.total_steps, plan.steps_per_epoch
            ));
        }
        if s.optimizer != self.optimizer.name() {
            problems.push(format!(
                "its optimiser is {:?}, this run uses {:?}",
                s.optimizer,
                self.optimizer.name()
            ));
        }
        let consistent = s.batch_in_epoch < s.steps_per_epoch.max(1)
            && s.global_step == s.epoch * s.steps_per_epoch + s.batch_in_epoch;
        if !consistent {
            problems.push(format!(
                "its position is inconsistent: step {}, epoch {}, batch {}",
                s.global_step, s.epoch, s.batch_in_epoch
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(EngineError::checkpoint(
                &checkpoint.path,
                format!("cannot resume: {}", problems.join("; ")),
            ))
        }
    }

    /// Saves a step checkpoint when one is due (every `checkpoint_every` steps, at an epoch end,
    /// at the stop step) and `best/` when the epoch just ended improved the tracked metric.
    pub(super) fn maybe_checkpoint(
        &mut self,
        epoch_ended: bool,
        improved: bool,
    ) -> Result<(), EngineError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        if !self.group.is_leader() {
            // Every rank holds the same weights; rank 0 writes them.
            return Ok(());
        }
        let done = self.pos.global_step;
        let every = self.cfg.checkpoint_every;
        let due = epoch_ended || done.checked_rem(every) == Some(0) || done >= self.plan.stop_at;
        let due = due && self.last_saved != Some(done);
        if !due && !improved {
            return Ok(());
        }
        let vars = self.step.state();
        let state = self.training_state(vars.iter().map(|(k, _)| k.clone()).collect());
        if due {
            store.save(&state, &vars, self.optimizer.buffers())?;
            self.last_saved = Some(done);
        }
        if improved {
            store.save_best(&state, &vars, self.optimizer.buffers())?;
        }
        Ok(())
    }

    fn training_state(&self, keys: Vec<String>) -> TrainingState {
        TrainingState {
            format_version: FORMAT_VERSION,
            stage: self.stage.clone(),
            epoch: self.pos.epoch,
            batch_in_epoch: self.pos.batch,
            global_step: self.pos.global_step,
            steps_per_epoch: self.plan.steps_per_epoch,
            total_steps: self.plan.total_steps,
            optimizer: self.optimizer.name().to_string(),
            keys,
            finished: self.pos.global_step >= self.plan.total_steps,
            history: self.history.clone(),
            current: self.current.clone(),
            best: self.best.clone(),
            extra: self.step.extra_state(),
            time: unix_seconds(),
        }
    }
}
