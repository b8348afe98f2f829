//! Where a distillation step's targets come from: the frozen teachers run on the batch, or
//! targets cached beforehand and looked up by the batch's dataset indices.

use crate::cached::CachedTargets;
use crate::options::DistillTarget;
use crate::step::DistillBatch;
use crate::teacher::Teacher;
use candle_core::{Result, Tensor, bail};

pub(crate) enum Provider {
    /// The frozen teachers, run on every batch's view.
    Teachers {
        base: Box<Teacher>,
        experts: Vec<Teacher>,
    },
    /// Computed once per image: no teacher exists.
    Cached(CachedTargets),
}

impl Provider {
    pub(crate) fn n_experts(&self) -> usize {
        match self {
            Provider::Teachers { experts, .. } => experts.len(),
            Provider::Cached(cache) => cache.n_experts(),
        }
    }

    pub(crate) fn teachers(&self) -> Option<(&Teacher, &[Teacher])> {
        match self {
            Provider::Teachers { base, experts } => Some((base, experts)),
            Provider::Cached(_) => None,
        }
    }

    /// Fails when cached targets are not `width` wide, the width of the heads' `layer`.
    pub(crate) fn check_width(&self, width: usize, layer: DistillTarget) -> Result<()> {
        match self {
            Provider::Cached(cache) if cache.dim() != width => bail!(
                "cached targets have width {}, but the heads regress the student's {layer:?} \
                 layer of width {width}",
                cache.dim()
            ),
            _ => Ok(()),
        }
    }

    /// The base's targets of the batch, and the experts' (row i: the target of image i's
    /// cluster's expert) when they are cached; the teachers' experts run in
    /// [`expert_target`](Self::expert_target), on their own clusters' images.
    ///
    /// # Shapes
    /// → `[B, D]` and `[B, D]`.
    pub(crate) fn targets(
        &self,
        batch: &DistillBatch,
        layer: DistillTarget,
    ) -> Result<(Tensor, Option<Tensor>)> {
        match self {
            Provider::Teachers { base, .. } => Ok((base.target(&batch.images, layer)?, None)),
            Provider::Cached(cache) => {
                let Some(indices) = &batch.indices else {
                    bail!("cached distillation targets need the dataset index of every image")
                };
                if indices.len() != batch.clusters.len() {
                    bail!(
                        "distill batch has {} cluster ids but {} image indices",
                        batch.clusters.len(),
                        indices.len()
                    )
                }
                cache.rows(indices)
            }
        }
    }

    /// Expert `c`'s targets of the batch's rows `idx` (its cluster's images), run by the teacher.
    ///
    /// # Shapes
    /// `idx`: `[M]` row indices → `[M, D]`.
    pub(crate) fn expert_target(
        &self,
        c: usize,
        batch: &DistillBatch,
        idx: &Tensor,
        layer: DistillTarget,
    ) -> Result<Tensor> {
        match self {
            Provider::Teachers { experts, .. } => {
                experts[c].target(&batch.images.index_select(idx, 0)?, layer)
            }
            Provider::Cached(_) => bail!("the cached targets hold no expert's targets"),
        }
    }
}
