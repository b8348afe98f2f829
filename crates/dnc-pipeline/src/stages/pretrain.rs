//! The base model (MoCLR on all data, SPEC step 1) and the matched MoCLR baseline.

use crate::datasets::{Split, open_split, report_corrupt};
use crate::error::PipelineError;
use crate::run::Run;
use crate::train::{MoclrJob, train_moclr};

/// Trains the base model into `base/model.safetensors`.
pub(crate) fn base(run: &Run, resume: bool) -> Result<(), PipelineError> {
    train_all_data(run, "base", run.cfg.base.epochs, resume)
}

/// Trains MoCLR for the DnC run's total epochs (base + experts + distill) on the same data, into
/// `baseline/model.safetensors`: the comparison the paper makes.
pub(crate) fn baseline(run: &Run, resume: bool) -> Result<(), PipelineError> {
    train_all_data(run, "baseline", run.cfg.baseline_epochs(), resume)
}

fn train_all_data(run: &Run, name: &str, epochs: usize, resume: bool) -> Result<(), PipelineError> {
    let train = open_split(&run.cfg.data, Split::Train)?;
    let dir = run.dir.stage_dir(name)?;
    let mut metrics = run.metrics()?;
    let job = MoclrJob {
        name: name.to_string(),
        train: &run.cfg.base,
        epochs,
        seed: run.cfg.seed,
        init: None,
        dir: &dir,
    };
    let report = train_moclr(
        &run.cfg,
        job,
        train.clone(),
        &run.device,
        &mut metrics,
        resume,
    )?;
    let skipped = report_corrupt(&train, Split::Train);
    run.dir.update_summary(|s| {
        s.info.insert(
            format!("{name}_training"),
            serde_json::json!({
                "epochs": epochs,
                "steps": report.global_step,
                "final_loss": report.last_loss,
                "skipped_images": skipped,
            }),
        );
    })?;
    Ok(())
}
