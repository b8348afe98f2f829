//! The loop behind [`fit`](fn@super::fit): epochs, steps, updates, logging and epoch summaries.
//! Checkpointing and resuming are in `persist.rs`.

use std::time::Instant;

use candle_core::{DType, Tensor, Var};
use dnc_core::is_buffer;
use dnc_dist::Group;

use super::{FitConfig, FitIo, Plan};
use crate::checkpoint::CheckpointStore;
use crate::error::{ConfigError, EngineError};
use crate::metrics::{MetricsRecord, MetricsWriter, RecordKind};
use crate::optim::Optimizer;
use crate::progress::Progress;
use crate::report::{BestRecord, EpochSummary, FitOutcome, FitReport, RunningMeans};
use crate::step::{BatchSource, StepContext, StepOutput, TrainStep};

/// Where the run stands: `global_step = epoch · steps_per_epoch + batch` steps are done.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Position {
    pub(super) global_step: usize,
    pub(super) epoch: usize,
    pub(super) batch: usize,
}

/// What a batch source's epoch iterator gives for the next position: a batch, a position left
/// without one, an error, or the end of the epoch.
type NextPosition<B, E> = Option<Result<Option<B>, E>>;

/// The mutable state of one `fit` call.
pub(super) struct Trainer<'a, T: TrainStep> {
    pub(super) step: &'a mut T,
    pub(super) optimizer: &'a mut dyn Optimizer,
    pub(super) params: Vec<(String, Var)>,
    pub(super) cfg: &'a FitConfig,
    pub(super) stage: String,
    pub(super) metrics: Option<&'a mut MetricsWriter>,
    pub(super) store: Option<CheckpointStore>,
    pub(super) stop_after: Option<usize>,
    pub(super) plan: Plan,
    pub(super) pos: Position,
    pub(super) history: Vec<EpochSummary>,
    /// Sums over the steps of the current epoch.
    pub(super) current: RunningMeans,
    /// Sums since the last step record.
    pub(super) window: RunningMeans,
    pub(super) best: Option<BestRecord>,
    pub(super) last_saved: Option<usize>,
    pub(super) last_loss: f64,
    pub(super) resumed_from: Option<usize>,
    pub(super) progress: Progress,
    pub(super) started: Instant,
    /// The ranks training together ([`dnc_dist::current`] when the run starts). Only rank 0
    /// writes checkpoints, metrics and the progress bar.
    pub(super) group: Group,
}

impl<'a, T: TrainStep> Trainer<'a, T> {
    pub(super) fn new(
        step: &'a mut T,
        optimizer: &'a mut dyn Optimizer,
        cfg: &'a FitConfig,
        io: FitIo<'a>,
        plan: Plan,
    ) -> Self {
        // Buffers never have gradients; leaving them out keeps them out of the optimiser
        // even if a train step lists them.
        let params: Vec<(String, Var)> = step
            .parameters()
            .into_iter()
            .filter(|(name, _)| !is_buffer(name))
            .collect();
        let store = io
            .checkpoint_dir
            .map(|dir| CheckpointStore::new(dir, cfg.keep_last));
        let group = dnc_dist::current();
        let leader = group.is_leader();
        let progress = Progress::new(&io.stage, plan.total_steps, cfg.quiet || !leader);
        Self {
            step,
            optimizer,
            params,
            cfg,
            stage: io.stage,
            metrics: io.metrics.filter(|_| leader),
            store,
            stop_after: io.stop_after,
            plan,
            pos: Position::default(),
            history: Vec::new(),
            current: RunningMeans::default(),
            window: RunningMeans::default(),
            best: None,
            last_saved: None,
            last_loss: f64::NAN,
            resumed_from: None,
            progress,
            started: Instant::now(),
            group,
        }
    }

    /// Runs epochs until the stop step, an interruption or an error.
    pub(super) fn run<S>(&mut self, source: &S) -> Result<FitOutcome, EngineError>
    where
        S: BatchSource<Batch = T::Batch> + ?Sized,
    {
        self.progress.start_at(self.pos.global_step);
        while self.pos.global_step < self.plan.stop_at {
            if let Some(outcome) = self.run_epoch(source)? {
                self.progress.finish();
                return Ok(outcome);
            }
        }
        self.progress.finish();
        Ok(self.final_outcome())
    }

    fn final_outcome(&self) -> FitOutcome {
        if self.pos.global_step >= self.plan.total_steps {
            FitOutcome::Completed
        } else {
            FitOutcome::MaxSteps
        }
    }

    /// Trains the rest of the current epoch; `Some` when the run must stop inside it.
    fn run_epoch<S>(&mut self, source: &S) -> Result<Option<FitOutcome>, EngineError>
    where
        S: BatchSource<Batch = T::Batch> + ?Sized,
    {
        let epoch = self.pos.epoch;
        let mut batches = source.epoch(epoch, self.pos.batch);
        let mut started = Instant::now();
        while self.pos.epoch == epoch {
            let next = self.agree_on_batch(source, batches.next())?;
            let batch = match next {
                Some(Ok(Some(batch))) => batch,
                Some(Ok(None)) => {
                    let ctx = self.skip_step();
                    if let Some(outcome) = self.after_step(&ctx)? {
                        return Ok(Some(outcome));
                    }
                    started = Instant::now();
                    continue;
                }
                Some(Err(e)) => return Err(self.data_error(Box::new(e))),
                None => {
                    let msg = format!(
                        "the batch source ended after {} of {} batches",
                        self.pos.batch, self.plan.steps_per_epoch
                    );
                    return Err(self.data_error(msg.into()));
                }
            };
            let ctx = self.train_step(&batch, started)?;
            if let Some(outcome) = self.after_step(&ctx)? {
                return Ok(Some(outcome));
            }
            started = Instant::now();
        }
        Ok(None)
    }

    /// With several ranks, a position trains only when every rank has its share of the batch,
    /// all of one size: a rank left without one, or with fewer images than the others
    /// (unreadable ones left out), makes every rank skip the step, so that all of them make
    /// the same collective calls with the same shapes.
    fn agree_on_batch<S>(
        &self,
        source: &S,
        next: NextPosition<T::Batch, S::Error>,
    ) -> Result<NextPosition<T::Batch, S::Error>, EngineError>
    where
        S: BatchSource<Batch = T::Batch> + ?Sized,
    {
        if !self.group.is_distributed() {
            return Ok(next);
        }
        // -1: no batch here; otherwise its size (0 when the source cannot tell).
        let size = match &next {
            Some(Ok(Some(batch))) => source.examples(batch).map_or(0.0, |n| n as f64),
            _ => -1.0,
        };
        let comm = self.group.comm();
        let sizes =
            dnc_dist::all_gather_f64(&**comm, &[size]).map_err(|e| self.data_error(Box::new(e)))?;
        let usable = sizes.iter().all(|s| *s == sizes[0] && *s >= 0.0);
        if size >= 0.0 && !usable {
            tracing::warn!(stage = %self.stage, epoch = self.pos.epoch, batch = self.pos.batch, ?sizes, "the ranks' shares of this position differ (unreadable images): every rank skips it");
            return Ok(Some(Ok(None)));
        }
        Ok(next)
    }

    fn data_error(&self, source: Box<dyn std::error::Error + Send + Sync>) -> EngineError {
        EngineError::Data {
            epoch: self.pos.epoch,
            batch: self.pos.batch,
            source,
        }
    }

    fn context(&self) -> StepContext {
        StepContext {
            epoch: self.pos.epoch,
            batch: self.pos.batch,
            step: self.pos.global_step,
            total_steps: self.plan.total_steps,
            steps_per_epoch: self.plan.steps_per_epoch,
            lr: self.plan.schedule.at(self.pos.global_step),
        }
    }

    /// Forward, loss check, update; then the step counts as done.
    fn train_step(
        &mut self,
        batch: &T::Batch,
        started: Instant,
    ) -> Result<StepContext, EngineError> {
        let ctx = self.context();
        let at_step = |source| EngineError::Step {
            step: ctx.step,
            source,
        };
        let comm_before = dnc_dist::communication_seconds();
        let mut out = self.step.forward(batch, &ctx).map_err(at_step)?;
        let mut loss = scalar_loss(&out.loss).map_err(at_step)?;
        if self.group.is_distributed() {
            loss = self.reduce_over_ranks(loss, &mut out).map_err(at_step)?;
        }
        if !loss.is_finite() {
            return Err(EngineError::NonFiniteLoss {
                step: ctx.step,
                epoch: ctx.epoch,
                batch: ctx.batch,
                loss,
            });
        }
        if let Some(norm) = self.apply_update(&out.loss, &ctx).map_err(at_step)? {
            out.metrics.push(("grad_norm".into(), norm));
        }
        let seconds = started.elapsed().as_secs_f64();
        if self.group.is_distributed() {
            // This rank's time in collectives (waiting for the others included) over the step.
            let comm = dnc_dist::communication_seconds() - comm_before;
            out.metrics
                .push(("comm_share".into(), comm / seconds.max(1e-9)));
        }
        self.record(loss, &out, seconds);
        Ok(ctx)
    }

    /// The loss as its mean over ranks, the batch size as the sum, and each metric as its mean
    /// over the ranks that report it (a step may report a metric on some ranks only), so that
    /// every rank logs (and checks) the global batch's values.
    fn reduce_over_ranks(&self, loss: f64, out: &mut StepOutput) -> candle_core::Result<f64> {
        let comm = self.group.comm();
        let world = self.group.world_size() as f64;
        let means = dnc_dist::mean_over_ranks(&**comm, &[loss, out.batch_size as f64])?;
        out.batch_size = (means[1] * world).round() as usize;
        // Metrics travel as (name key, value) pairs, padded with NaN to the longest list.
        let lengths = dnc_dist::all_gather_f64(&**comm, &[out.metrics.len() as f64])?;
        let longest = lengths.iter().fold(0.0f64, |a, b| a.max(*b)) as usize;
        let mut pairs = vec![f64::NAN; 2 * longest];
        for (i, (name, value)) in out.metrics.iter().enumerate() {
            pairs[2 * i] = f64::from(metric_key(name));
            pairs[2 * i + 1] = *value;
        }
        let all = dnc_dist::all_gather_f64(&**comm, &pairs)?;
        for (name, value) in out.metrics.iter_mut() {
            let key = f64::from(metric_key(name));
            let same: Vec<f64> = all
                .chunks_exact(2)
                .filter(|p| p[0] == key)
                .map(|p| p[1])
                .collect();
            *value = same.iter().sum::<f64>() / same.len() as f64;
        }
        Ok(means[0])
    }

    /// A position the source left without a batch: the step counts, with no update.
    fn skip_step(&mut self) -> StepContext {
        let ctx = self.context();
        tracing::warn!(
            stage = %self.stage,
            epoch = ctx.epoch,
            batch = ctx.batch,
            step = ctx.step,
            "no usable examples in this batch: the step is skipped"
        );
        self.pos.global_step += 1;
        self.pos.batch += 1;
        ctx
    }

    /// Backward pass, gradient clipping when configured, optimiser update at the step's
    /// learning rate, then the step's hook. The gradients' global norm before clipping, when
    /// clipping is on.
    fn apply_update(
        &mut self,
        loss: &Tensor,
        ctx: &StepContext,
    ) -> candle_core::Result<Option<f64>> {
        let mut grads = loss.backward()?;
        if self.group.is_distributed() {
            dnc_dist::average_gradients(&mut grads, &self.params, &**self.group.comm())?;
        }
        let norm = match self.cfg.clip_grad_norm {
            max if max > 0.0 => Some(clip_gradients(&mut grads, &self.params, max)?),
            _ => None,
        };
        self.optimizer.step(&self.params, &grads, ctx.lr)?;
        self.step.after_update(ctx)?;
        Ok(norm)
    }

    fn record(&mut self, loss: f64, out: &StepOutput, seconds: f64) {
        self.current
            .push(loss, out.batch_size, seconds, &out.metrics);
        self.window
            .push(loss, out.batch_size, seconds, &out.metrics);
        self.last_loss = loss;
        self.pos.global_step += 1;
        self.pos.batch += 1;
    }

    /// Logging, epoch end, checkpoints and stop conditions after a finished step.
    fn after_step(&mut self, ctx: &StepContext) -> Result<Option<FitOutcome>, EngineError> {
        let done = self.pos.global_step;
        let log_every = self.cfg.log_every;
        let log_due =
            log_every > 0 && (done.checked_rem(log_every) == Some(0) || done == self.plan.stop_at);
        if log_due {
            self.log_window(ctx)?;
        }
        let recent = self.current.examples_per_s();
        let (epochs, loss) = (self.plan.epochs, self.last_loss);
        self.progress
            .update(done, ctx.epoch, epochs, loss, ctx.lr, recent);
        let epoch_ended = self.pos.batch == self.plan.steps_per_epoch;
        let improved = if epoch_ended {
            self.end_epoch(ctx)?
        } else {
            false
        };
        self.maybe_checkpoint(epoch_ended, improved)?;
        if self.stop_after.is_some_and(|n| done >= n) {
            tracing::warn!(stage = %self.stage, step = done, "stopping as asked (simulated crash)");
            return Ok(Some(FitOutcome::Interrupted));
        }
        if done >= self.plan.stop_at {
            return Ok(Some(self.final_outcome()));
        }
        Ok(None)
    }

    fn write_record(&mut self, record: MetricsRecord) -> Result<(), EngineError> {
        tracing::info!(
            stage = %record.stage,
            epoch = record.epoch,
            step = record.step,
            loss = record.loss,
            lr = record.lr,
            images_per_s = record.images_per_s,
            "{}",
            if record.kind == RecordKind::Epoch { "epoch" } else { "train" }
        );
        match self.metrics.as_deref_mut() {
            Some(writer) => writer.write(&record),
            None => Ok(()),
        }
    }

    fn log_window(&mut self, ctx: &StepContext) -> Result<(), EngineError> {
        let window = std::mem::take(&mut self.window);
        if window.steps == 0 {
            // Every step of the window was skipped: nothing to report.
            return Ok(());
        }
        self.write_record(MetricsRecord {
            stage: self.stage.clone(),
            kind: RecordKind::Step,
            epoch: ctx.epoch,
            step: self.pos.global_step,
            loss: window.loss(),
            lr: ctx.lr,
            images_per_s: window.examples_per_s(),
            metrics: window.metric_means(),
        })
    }

    /// Folds the epoch into the history and reports whether it beat the best so far.
    fn end_epoch(&mut self, ctx: &StepContext) -> Result<bool, EngineError> {
        let summary = EpochSummary::from_means(ctx.epoch, &self.current);
        self.write_record(MetricsRecord {
            stage: self.stage.clone(),
            kind: RecordKind::Epoch,
            epoch: ctx.epoch,
            step: self.pos.global_step,
            loss: summary.loss,
            lr: ctx.lr,
            images_per_s: summary.images_per_s,
            metrics: summary.metrics.clone(),
        })?;
        let improved = self.update_best(&summary)?;
        self.history.push(summary);
        self.current = RunningMeans::default();
        self.pos.epoch += 1;
        self.pos.batch = 0;
        Ok(improved)
    }

    fn update_best(&mut self, summary: &EpochSummary) -> Result<bool, EngineError> {
        let Some(keep) = &self.cfg.keep_best else {
            return Ok(false);
        };
        let value = if keep.metric == "loss" {
            summary.loss
        } else {
            match summary.metrics.get(&keep.metric) {
                Some(v) => *v,
                None => {
                    let known: Vec<&str> = summary.metrics.keys().map(String::as_str).collect();
                    let reason = format!("the train step reports only loss and {known:?}");
                    return Err(
                        ConfigError::new("fit.keep_best.metric", &keep.metric, reason).into(),
                    );
                }
            }
        };
        let previous = self.best.as_ref().map(|b| b.value);
        if !keep.mode.improves(value, previous) {
            return Ok(false);
        }
        self.best = Some(BestRecord {
            metric: keep.metric.clone(),
            value,
            epoch: summary.epoch,
            global_step: self.pos.global_step,
        });
        Ok(true)
    }

    pub(super) fn report(self, outcome: FitOutcome) -> FitReport {
        FitReport {
            outcome,
            global_step: self.pos.global_step,
            total_steps: self.plan.total_steps,
            resumed_from: self.resumed_from,
            last_loss: self.last_loss,
            epochs: self.history,
            best: self.best,
            seconds: self.started.elapsed().as_secs_f64(),
        }
    }
}

/// A metric name as a number that an `f64` holds exactly, to match metrics across ranks.
fn metric_key(name: &str) -> u32 {
    (dnc_core::fnv1a(name.as_bytes()) >> 32) as u32
}

/// The value of a one-element loss tensor.
fn scalar_loss(loss: &Tensor) -> candle_core::Result<f64> {
    if loss.elem_count() != 1 {
        candle_core::bail!("the loss must be a scalar, got shape {:?}", loss.dims())
    }
    Ok(loss.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?[0])
}

/// Scales every gradient of `params` by `max / norm` when their global L2 norm exceeds `max`
/// (after data-parallel averaging, so every rank scales alike); the norm before scaling.
fn clip_gradients(
    grads: &mut candle_core::backprop::GradStore,
    params: &[(String, Var)],
    max: f64,
) -> candle_core::Result<f64> {
    // Summed on the device and read once: one sync per step, not one per parameter.
    let mut squares = Vec::with_capacity(params.len());
    for (_, var) in params {
        if let Some(g) = grads.get(var.as_tensor()) {
            squares.push(g.to_dtype(DType::F32)?.sqr()?.sum_all()?);
        }
    }
    if squares.is_empty() {
        return Ok(0.0);
    }
    let sum = Tensor::stack(&squares, 0)?.sum_all()?.to_scalar::<f32>()?;
    let norm = f64::from(sum).sqrt();
    if norm > max {
        let scale = max / norm;
        for (_, var) in params {
            if let Some(g) = grads.get(var.as_tensor()) {
                let scaled = g.affine(scale, 0.0)?;
                grads.insert(var.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}
