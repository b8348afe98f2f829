//! Embed every training image with the base model (SPEC step 2), once, without augmentation.
//!
//! `embed/features/` holds one NumPy file per matrix, row by row, written a batch at a time
//! ([`crate::feature_store`]): `backbone.npy` (the backbone output), `hidden.npy` (the
//! projector's hidden layer after BatchNorm + ReLU, the paper's clustering features),
//! `output.npy` (the projection), `indices.npy` (dataset index of each row) and `labels.npy`
//! (class id, `u32::MAX` where unknown). The cluster stage reads it in chunks.

use crate::assignments::NO_LABEL;
use crate::datasets::{Split, open_split, record_skipped};
use crate::error::PipelineError;
use crate::feature_store::FeatureWriter;
use crate::features::for_each_embedded;
use crate::run::Run;
use crate::run_dir::ModelRef;
use crate::stage::Stage;
use crate::weights::load_encoder;

/// The stored matrices, in the order the encoder gives them.
const MATRICES: [&str; 3] = ["backbone", "hidden", "output"];

pub(crate) fn run(run: &Run) -> Result<(), PipelineError> {
    let (encoder, _vars) = load_encoder(
        &run.cfg.model,
        &run.dir.model_path(ModelRef::Base),
        &run.device,
    )?;
    let train = open_split(run, Split::Train)?;
    let dir = run.dir.features_dir();
    run.dir.stage_dir(Stage::Embed.name())?;
    let mut writer = FeatureWriter::create(&dir, &MATRICES)?;
    let mut n = 0;
    for_each_embedded(
        &run.cfg,
        run.cfg.divide.batch_size,
        train.clone(),
        &run.device,
        "embed",
        |x| {
            let out = encoder.forward_t(x, false)?;
            Ok(vec![out.features, out.hidden, out.z])
        },
        |batch| {
            let indices: Vec<u32> = batch.indices.iter().map(|&i| i as u32).collect();
            let labels: Vec<u32> = batch.labels.iter().map(|l| l.unwrap_or(NO_LABEL)).collect();
            n += indices.len();
            writer.append(&batch.outputs, &indices, &labels)
        },
    )?;
    writer.finish()?;
    tracing::info!("embedded {n} images into {}", dir.display());
    record_skipped(run, "embed", &[&train])?;
    Ok(())
}
