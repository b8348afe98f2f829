//! Evaluation-mode passes of one encoder over a split (backbone features, the divide stage's
//! clustering layer and the projection, in one pass per model and split), and the ceiling's
//! routed features built from them.

use super::compute::concat_normalized;
use crate::config::ClusterLayer;
use crate::error::PipelineError;
use crate::features::embed_dataset;
use crate::run::Run;
use candle_core::Tensor;
use dnc_data::{Dataset, ImageItem};
use dnc_distill::DistillTarget;
use dnc_models::{Encoder, Precision};
use std::sync::Arc;

/// What one encoder computes on the (centre-crop) images of a split, one row per readable image.
pub(super) struct Pass {
    /// Backbone features `[N, D]`, as the main evaluation computes them.
    pub(super) features: Tensor,
    /// The layer the divide stage clustered, `[N, D_layer]`.
    pub(super) layer: Tensor,
    /// The projection `z`, not normalised, `[N, out]`.
    pub(super) z: Tensor,
    /// Dataset index of every row.
    pub(super) indices: Vec<usize>,
    pub(super) labels: Vec<u32>,
}

impl Pass {
    /// The rows' layer that distillation heads of `target` read (student) or regress (teacher).
    pub(super) fn layer_of(&self, target: DistillTarget) -> &Tensor {
        match target {
            DistillTarget::Projection => &self.z,
            DistillTarget::Features => &self.features,
        }
    }
}

/// One pass of `encoder` (evaluation mode) over `data`, which must be labelled and non-empty.
pub(super) fn embed<D>(
    run: &Run,
    encoder: &Encoder,
    data: Arc<D>,
    label: &str,
) -> Result<Pass, PipelineError>
where
    D: Dataset<Item = ImageItem> + 'static,
{
    let layer = run.cfg.divide.layer;
    let precision = run.cfg.model.precision;
    let embedded = embed_dataset(&run.cfg, data, &run.device, label, |x| {
        // The divide stage embedded with the whole encoder (its precision included); the main
        // evaluation runs the backbone alone, which differs only under bf16.
        let out = encoder.forward_t(x, false)?;
        let routed = match layer {
            ClusterLayer::Hidden => out.hidden,
            ClusterLayer::Backbone => out.features.clone(),
            ClusterLayer::Output => out.z.clone(),
        };
        let features = match precision {
            Precision::F32 => out.features,
            Precision::Bf16 => encoder.backbone().forward_t(x, false)?,
        };
        Ok(vec![features, routed, out.z])
    })?;
    let crate::features::Labelled {
        outputs,
        indices,
        labels,
    } = embedded.labelled()?;
    let [features, layer, z]: [Tensor; 3] = outputs
        .try_into()
        .map_err(|_| PipelineError::Other(format!("{label}: no image could be embedded")))?;
    Ok(Pass {
        features,
        layer,
        z,
        indices,
        labels,
    })
}

/// Rows `rows` of `t`.
///
/// # Shapes
/// `t`: `[N, D]`, `rows`: M indices below N → `[M, D]`.
pub(super) fn rows(t: &Tensor, rows: &[u32]) -> candle_core::Result<Tensor> {
    let idx = Tensor::new(rows, t.device())?;
    t.index_select(&idx, 0)
}

/// The backbone features and labels of rows `rows` of a pass.
pub(super) fn select(pass: &Pass, rows: &[u32]) -> Result<(Tensor, Vec<u32>), PipelineError> {
    let labels = rows.iter().map(|&r| pass.labels[r as usize]).collect();
    Ok((self::rows(&pass.features, rows)?, labels))
}

/// The rows of the ceiling's k-NN, cluster by cluster: `[n(base) ‖ n(expert_c)]` and labels.
#[derive(Default)]
pub(super) struct Blocks {
    features: Vec<Tensor>,
    labels: Vec<u32>,
}

impl Blocks {
    /// Adds the rows `rows` of `base` beside the expert's pass over the same images.
    pub(super) fn push(
        &mut self,
        base: &Pass,
        rows: &[u32],
        expert: Option<&Pass>,
    ) -> Result<(), PipelineError> {
        let Some(expert) = expert else {
            return Ok(());
        };
        let (base_x, base_y) = select(base, rows)?;
        self.features
            .push(concat_normalized(&base_x, &expert.features)?);
        self.labels.extend(base_y);
        Ok(())
    }

    pub(super) fn finish(self) -> Result<(Tensor, Vec<u32>), PipelineError> {
        Ok((Tensor::cat(&self.features, 0)?, self.labels))
    }
}
