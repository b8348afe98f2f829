//! The teachers' targets of every training image, computed once from its centre crop (the
//! evaluation transform) for `distill.targets = "cached"`, the paper's cheaper distillation
//! (arXiv 2105.08054, appendix): each image needs the base's target and that of its own
//! cluster's expert, so the base embeds the split once and each expert its cluster's images.
//!
//! `distill/targets.safetensors` holds `<layer>.base` (f32 `[N, D]`, row i: the base's
//! L2-normalised target of training image i), `<layer>.experts` (f32 `[N, D]`, when experts are
//! distilled: the target of image i's cluster's expert) and `clusters` (u32 `[N]`: the cluster
//! each row was computed for, `UNASSIGNED` where the image has no target), with `<layer>` the
//! heads' `projection` or `features`. It is written atomically before training, and a resumed
//! stage reads it back when it matches the split, the clusters and the layer (a stage run from
//! the start clears its folder, and with it the file).

use crate::assignments::UNASSIGNED;
use crate::error::PipelineError;
use crate::features::for_each_embedded;
use crate::run::Run;
use candle_core::{DType, Tensor};
use dnc_data::{Dataset, ImageFolder, ImageItem, Subset};
use dnc_distill::{CachedTargets, DistillTarget, Teacher};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// The targets the student trains on, and the cluster of every image with `UNASSIGNED` where
/// the image has no target (it is then left out of training, as the embed stage's skipped
/// images are).
pub(crate) struct Prepared {
    pub(crate) targets: CachedTargets,
    pub(crate) clusters: Vec<u32>,
}

/// The cached targets of `train` (clustered as `clusters`) for the base and `experts` (one per
/// cluster, none when the base is distilled alone): read back on `resume` when the file
/// matches, computed and written otherwise. In data-parallel training rank 0 computes and
/// writes them while the other ranks wait, then every rank reads the file.
pub(crate) fn prepare(
    run: &Run,
    train: &Arc<ImageFolder>,
    clusters: &[u32],
    base: Teacher,
    experts: Vec<Teacher>,
    resume: bool,
) -> Result<Prepared, PipelineError> {
    let group = dnc_dist::current();
    let n_experts = experts.len();
    let path = run.dir.targets_path();
    let mut prepared = None;
    if group.is_leader() {
        let start = Instant::now();
        let reused = if resume && path.is_file() {
            load(run, clusters, n_experts)?
        } else {
            None
        };
        let was_reused = reused.is_some();
        let p = match reused {
            Some(p) => p,
            None => compute_and_save(run, train, clusters, &base, &experts)?,
        };
        record(run, &p, was_reused, start.elapsed().as_secs_f64())?;
        prepared = Some(p);
    }
    drop((base, experts));
    if group.is_distributed() {
        let comm = group.comm();
        comm.barrier()
            .map_err(|e| PipelineError::Other(e.to_string()))?;
    }
    match prepared {
        Some(p) => Ok(p),
        None => load(run, clusters, n_experts)?.ok_or_else(|| {
            PipelineError::Other(format!(
                "{} does not match this run after rank 0 wrote it",
                path.display()
            ))
        }),
    }
}

/// Tensor names of the base's and the experts' targets of `layer`.
fn names(layer: DistillTarget) -> (String, String) {
    let layer = match layer {
        DistillTarget::Projection => "projection",
        DistillTarget::Features => "features",
    };
    (format!("{layer}.base"), format!("{layer}.experts"))
}

/// The stored targets, `None` (with the reason logged) when they do not match this run.
fn load(run: &Run, clusters: &[u32], n_experts: usize) -> Result<Option<Prepared>, PipelineError> {
    let path = run.dir.targets_path();
    let (base_name, experts_name) = names(run.cfg.distill.target_layer);
    let stale = |why: String| {
        tracing::warn!("{}: {why}; computing the targets again", path.display());
        Ok(None)
    };
    let mut tensors = match candle_core::safetensors::load(&path, &run.device) {
        Ok(t) => t,
        Err(e) => return stale(format!("unreadable ({e})")),
    };
    let (Some(base), Some(stored)) = (tensors.remove(&base_name), tensors.remove("clusters"))
    else {
        return stale(format!("no {base_name} or clusters"));
    };
    let experts = tensors.remove(&experts_name);
    if experts.is_some() != (n_experts > 0) {
        return stale(format!("{experts_name} present: {}", experts.is_some()));
    }
    let stored = stored.to_vec1::<u32>()?;
    if stored.len() != clusters.len() {
        let n = clusters.len();
        return stale(format!(
            "{} images, the training split has {n}",
            stored.len()
        ));
    }
    let moved = (0..stored.len()).find(|&i| stored[i] != UNASSIGNED && stored[i] != clusters[i]);
    if let Some(i) = moved {
        return stale(format!(
            "image {i} was in cluster {}, now {}",
            stored[i], clusters[i]
        ));
    }
    tracing::info!("distill: reusing the cached targets of {}", path.display());
    Ok(Some(Prepared {
        targets: CachedTargets::new(base, experts, n_experts)?,
        clusters: stored,
    }))
}

/// One `[N, D]` matrix filled a batch of rows at a time, and which rows were filled.
struct Rows {
    values: Vec<f32>,
    width: usize,
    filled: Vec<bool>,
}

impl Rows {
    fn new(n: usize) -> Self {
        Self {
            values: Vec::new(),
            width: 0,
            filled: vec![false; n],
        }
    }

    /// Puts the rows of `batch` (`[B, D]`) at `rows`.
    fn put(
        &mut self,
        batch: &Tensor,
        rows: impl Iterator<Item = usize>,
    ) -> Result<(), PipelineError> {
        let batch = batch.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        if self.values.is_empty() {
            self.width = batch.first().map_or(0, Vec::len);
            self.values = vec![0.0; self.filled.len() * self.width];
        }
        for (row, i) in batch.iter().zip(rows) {
            self.values[i * self.width..(i + 1) * self.width].copy_from_slice(row);
            self.filled[i] = true;
        }
        Ok(())
    }

    fn tensor(self, run: &Run) -> Result<Tensor, PipelineError> {
        let n = self.filled.len();
        Ok(Tensor::from_vec(self.values, (n, self.width), &run.device)?)
    }
}

/// Runs `teacher` over the centre crops of `data` (a subset of the training split whose item
/// `j` is training image `source[j]`), into `rows`.
fn embed_into<D>(
    run: &Run,
    teacher: &Teacher,
    data: Arc<D>,
    source: &[usize],
    label: &str,
    rows: &mut Rows,
) -> Result<(), PipelineError>
where
    D: Dataset<Item = ImageItem> + 'static,
{
    let layer = run.cfg.distill.target_layer;
    let embed = |x: &Tensor| Ok(vec![teacher.target(x, layer)?]);
    let batch_size = run.cfg.eval.batch_size;
    for_each_embedded(
        &run.cfg,
        batch_size,
        data,
        &run.device,
        label,
        embed,
        |batch| rows.put(&batch.outputs[0], batch.indices.iter().map(|&j| source[j])),
    )
}

/// Computes the targets of every training image and writes the file.
fn compute_and_save(
    run: &Run,
    train: &Arc<ImageFolder>,
    clusters: &[u32],
    base: &Teacher,
    experts: &[Teacher],
) -> Result<Prepared, PipelineError> {
    let n = train.len();
    tracing::info!(
        "distill: caching the targets of {n} training images (base + {} experts)",
        experts.len()
    );
    let all: Vec<usize> = (0..n).collect();
    let mut base_rows = Rows::new(n);
    embed_into(run, base, train.clone(), &all, "targets", &mut base_rows)?;
    let mut routed: Vec<u32> = (0..n)
        .map(|i| {
            if base_rows.filled[i] {
                clusters[i]
            } else {
                UNASSIGNED
            }
        })
        .collect();
    let experts_t = embed_experts(run, train, experts, &mut routed)?;
    let missing = routed.iter().filter(|&&c| c == UNASSIGNED).count();
    if missing == n {
        return Err(PipelineError::Other(
            "distill: no training image has a target to cache".into(),
        ));
    }
    if missing > 0 {
        tracing::info!("distill: {missing} of {n} images have no cached target and are left out");
    }
    let base = base_rows.tensor(run)?;
    save(run, &base, experts_t.as_ref(), &routed)?;
    Ok(Prepared {
        targets: CachedTargets::new(base, experts_t, experts.len())?,
        clusters: routed,
    })
}

/// Runs each expert over the centre crops of its cluster's images (`routed`, which marks the
/// images that could not be read `UNASSIGNED`); `None` without experts.
fn embed_experts(
    run: &Run,
    train: &Arc<ImageFolder>,
    experts: &[Teacher],
    routed: &mut [u32],
) -> Result<Option<Tensor>, PipelineError> {
    if experts.is_empty() {
        return Ok(None);
    }
    let n = routed.len();
    let mut rows = Rows::new(n);
    for (c, expert) in experts.iter().enumerate() {
        let members: Vec<usize> = (0..n).filter(|&i| routed[i] == c as u32).collect();
        if members.is_empty() {
            continue;
        }
        let subset = Arc::new(Subset::new(train.clone(), members.clone())?);
        let label = format!("targets-e{c}");
        embed_into(run, expert, subset, &members, &label, &mut rows)?;
    }
    for (cluster, &filled) in routed.iter_mut().zip(&rows.filled) {
        if !filled {
            *cluster = UNASSIGNED;
        }
    }
    if rows.filled.iter().all(|&f| !f) {
        return Err(PipelineError::Other(
            "distill: no training image has an expert's target to cache".into(),
        ));
    }
    Ok(Some(rows.tensor(run)?))
}

/// Writes the file through a temporary sibling and a rename.
fn save(
    run: &Run,
    base: &Tensor,
    experts: Option<&Tensor>,
    clusters: &[u32],
) -> Result<(), PipelineError> {
    let (base_name, experts_name) = names(run.cfg.distill.target_layer);
    let mut tensors = HashMap::from([
        (base_name, base.clone()),
        (
            "clusters".to_string(),
            Tensor::new(clusters, &candle_core::Device::Cpu)?,
        ),
    ]);
    if let Some(e) = experts {
        tensors.insert(experts_name, e.clone());
    }
    let path = run.dir.targets_path();
    let tmp = crate::run_dir::temp_path(&path)?;
    candle_core::safetensors::save(&tensors, &tmp)?;
    std::fs::rename(&tmp, &path).map_err(|e| PipelineError::io(&path, e))
}

/// `info.distill.targets` of the summary: how many images have targets, how wide they are,
/// whether a resumed stage reused them, and the seconds spent computing or reading them.
fn record(run: &Run, p: &Prepared, reused: bool, seconds: f64) -> Result<(), PipelineError> {
    let images = p.clusters.iter().filter(|&&c| c != UNASSIGNED).count();
    let entry = serde_json::json!({
        "images": images,
        "width": p.targets.dim(),
        "reused": reused,
        "seconds": seconds,
    });
    run.dir.update_summary(|s| {
        let info = s
            .info
            .entry("distill".into())
            .or_insert_with(|| serde_json::json!({}));
        if !info.is_object() {
            *info = serde_json::json!({});
        }
        info["targets"] = entry;
    })?;
    Ok(())
}
