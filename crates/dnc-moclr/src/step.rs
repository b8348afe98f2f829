//! The MoCLR / SimCLR training step.

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use dnc_core::{SeededVarMap, l2_normalize, trainable_parameters};
use dnc_engine::{StepContext, StepOutput, TrainStep};
use dnc_models::{
    Encoder, EncoderConfig, copy_vars, ema_update, frozen_tensors, momentum_schedule,
};
use dnc_objectives::ObjectiveConfig;
use serde::{Deserialize, Serialize};

/// The objective-specific settings of a MoCLR run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MoclrConfig {
    pub objective: ObjectiveConfig,
    /// Initial target momentum m0 (the paper: 0.996); it rises to 1 on a cosine over the run.
    pub ema_momentum: f64,
}

impl Default for MoclrConfig {
    fn default() -> Self {
        Self {
            objective: ObjectiveConfig::default(),
            ema_momentum: 0.996,
        }
    }
}

/// Two augmented views of the same images, already on the training device.
///
/// # Shapes
/// `view1`, `view2`: `[B, 3, H, W]`.
#[derive(Debug, Clone)]
pub struct ViewPair {
    pub view1: Tensor,
    pub view2: Tensor,
}

/// An online encoder (and, for MoCLR, its EMA target) trained on [`ViewPair`]s.
pub struct MoclrStep {
    cfg: MoclrConfig,
    online: Encoder,
    online_vars: VarMap,
    target: Option<(Encoder, VarMap)>,
    params: Vec<(String, Var)>,
}

impl MoclrStep {
    /// A freshly initialised online network (weights seeded by `seed`); for MoCLR the target
    /// starts as an exact copy of it.
    pub fn new(
        model: &EncoderConfig,
        cfg: MoclrConfig,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let online_map = SeededVarMap::new(seed);
        let online = Encoder::new(model, online_map.var_builder(DType::F32, device))?;
        let target = if cfg.objective.kind.needs_target() {
            // The target's variables live in their own map (EMA updates, checkpoints); the
            // network runs on detached views of them, so its forward records no graph.
            let target_map = SeededVarMap::new(seed);
            Encoder::new(model, target_map.var_builder(DType::F32, device))?;
            copy_vars(target_map.varmap(), online_map.varmap())
                .map_err(candle_core::Error::wrap)?;
            let frozen =
                VarBuilder::from_tensors(frozen_tensors(target_map.varmap()), DType::F32, device);
            Some((Encoder::new(model, frozen)?, target_map.varmap().clone()))
        } else {
            None
        };
        let online_vars = online_map.varmap().clone();
        let params = trainable_parameters(&online_vars);
        Ok(Self {
            cfg,
            online,
            online_vars,
            target,
            params,
        })
    }

    /// Starts online and target networks from the weights in `init` (e.g. the base model), for
    /// experts initialised from the base.
    pub fn init_from(&mut self, init: &VarMap) -> Result<()> {
        copy_vars(&self.online_vars, init).map_err(candle_core::Error::wrap)?;
        if let Some((_, target_vars)) = &self.target {
            copy_vars(target_vars, init).map_err(candle_core::Error::wrap)?;
        }
        Ok(())
    }

    /// The online encoder: what is evaluated and kept after training.
    pub fn encoder(&self) -> &Encoder {
        &self.online
    }

    /// The online network's variables (`backbone.*`, `projector.*`).
    pub fn online_vars(&self) -> &VarMap {
        &self.online_vars
    }

    /// The EMA target's variables, for MoCLR.
    pub fn target_vars(&self) -> Option<&VarMap> {
        self.target.as_ref().map(|(_, vars)| vars)
    }
}

impl TrainStep for MoclrStep {
    type Batch = ViewPair;

    fn forward(&mut self, batch: &ViewPair, _ctx: &StepContext) -> Result<StepOutput> {
        let b = batch.view1.dim(0)?;
        // Both views in one forward pass, so BatchNorm statistics are taken over 2B images.
        let x = Tensor::cat(&[&batch.view1, &batch.view2], 0)?;
        let q = l2_normalize(&self.online.forward_t(&x, true)?.z)?;
        let (q1, q2) = (q.narrow(0, 0, b)?, q.narrow(0, b, b)?);
        let target = match &self.target {
            // The target runs in training mode too (batch statistics), without gradient.
            Some((target, _)) => Some(l2_normalize(&target.forward_t(&x, true)?.z)?.detach()),
            None => None,
        };
        // In data-parallel training the batch is this rank's share, and the negatives come
        // from every rank's share (`loss_over`).
        let group = dnc_dist::current();
        let objective = &self.cfg.objective;
        let loss = match &target {
            Some(k) => {
                let (k1, k2) = (k.narrow(0, 0, b)?, k.narrow(0, b, b)?);
                objective.loss_over((&q1, &q2), Some((&k1, &k2)), group.comm())?
            }
            None => objective.loss_over((&q1, &q2), None, group.comm())?,
        };
        // Mean cosine between the two views' online projections: a collapse/health signal.
        let pos_cos = (&q1 * &q2)?.sum_all()?.to_scalar::<f32>()? as f64 / b as f64;
        Ok(StepOutput::new(loss, b).with_metric("pos_cos", pos_cos))
    }

    fn after_update(&mut self, ctx: &StepContext) -> Result<()> {
        if let Some((_, target_vars)) = &self.target {
            let m = momentum_schedule(
                ctx.step as u64,
                ctx.total_steps as u64,
                self.cfg.ema_momentum,
            );
            ema_update(target_vars, &self.online_vars, m).map_err(candle_core::Error::wrap)?;
        }
        Ok(())
    }

    fn parameters(&self) -> Vec<(String, Var)> {
        self.params.clone()
    }

    fn state(&self) -> Vec<(String, VarMap)> {
        let mut state = vec![("online".to_string(), self.online_vars.clone())];
        if let Some((_, target_vars)) = &self.target {
            state.push(("target".to_string(), target_vars.clone()));
        }
        state
    }
}

#[cfg(test)]
#[path = "step_tests.rs"]
mod tests;
