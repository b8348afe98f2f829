//! The base model (MoCLR on all data, SPEC step 1) and the matched MoCLR baseline.

use crate::datasets::{Split, open_split, record_skipped};
use crate::error::PipelineError;
use crate::run::Run;
use crate::run_dir::ModelRef;
use crate::train::{MoclrJob, train_moclr};
use crate::weights::{fresh_encoder, save_encoder};

/// Trains the base model into `base/model.safetensors`, from `init_from` weights when set. With
/// `base.epochs = 0` the base is the `init_from` model as it is: a second round of DnC takes the
/// student of a first as its base this way.
pub(crate) fn base(run: &Run, resume: bool) -> Result<(), PipelineError> {
    let init = match &run.cfg.init_from {
        Some(spec) => Some(pretrained(run, spec)?),
        None => None,
    };
    match (run.cfg.base.epochs, init) {
        (0, Some(vars)) => keep_as_base(run, &vars),
        (0, None) => Err(PipelineError::bad_config(
            "base.epochs",
            0,
            "needs init_from: a base of no epochs is a model trained elsewhere",
        )),
        (epochs, init) => train_all_data(run, ModelRef::Base, epochs, init.as_ref(), resume),
    }
}

/// Writes the `init_from` model as the base, untrained.
fn keep_as_base(run: &Run, vars: &candle_nn::VarMap) -> Result<(), PipelineError> {
    if !dnc_dist::current().is_leader() {
        return Ok(());
    }
    let dir = run.dir.model_dir(ModelRef::Base);
    std::fs::create_dir_all(&dir).map_err(|e| PipelineError::io(&dir, e))?;
    save_encoder(vars, &run.dir.model_path(ModelRef::Base))?;
    tracing::info!("base.epochs = 0: the base is the init_from model as it is");
    run.dir.update_summary(|s| {
        s.info.insert(
            "base_training".into(),
            serde_json::json!({
                "epochs": 0,
                "steps": 0,
                "processes": dnc_dist::current().world_size(),
            }),
        );
    })?;
    Ok(())
}

/// An encoder whose weights come from `spec` (hub URI or local file). A model file this project
/// wrote (tensor names `backbone.*` and `projector.*`: a base, an expert, a student) sets the
/// whole encoder and must match the model exactly; any other checkpoint sets the backbone, by
/// torchvision, timm or transformers names, and the projector keeps its seeded initialisation.
fn pretrained(run: &Run, spec: &str) -> Result<candle_nn::VarMap, PipelineError> {
    let files = dnc_hub::resolve_checkpoint(spec, &dnc_hub::HubOptions::from_env())?;
    let (_, vars) = fresh_encoder(&run.cfg.model, run.cfg.seed, &run.device)?;
    let whole = is_encoder_file(&files.weights)?;
    let loaded = if whole {
        dnc_engine::load_varmap(&vars, &files.weights)?;
        let n = vars.data().lock().expect("varmap lock poisoned").len();
        tracing::info!("initialised the whole encoder from {spec}: {n} tensors");
        n
    } else {
        let report = dnc_hub::load_into(&vars, "backbone.", &files.weights, dnc_hub::Naming::Auto)?;
        tracing::info!(
            "initialised the backbone from {spec}: {} tensors ({:?} names), ignored {:?}",
            report.loaded,
            report.naming,
            report.ignored
        );
        report.loaded
    };
    if !dnc_dist::current().is_leader() {
        return Ok(vars);
    }
    run.dir.update_summary(|s| {
        s.info.insert(
            "init_from".into(),
            serde_json::json!({
                "spec": spec,
                "file": files.weights,
                "tensors": loaded,
                "whole_encoder": whole,
            }),
        );
    })?;
    Ok(vars)
}

/// Whether the safetensors file at `path` is an encoder this project saved: its tensor names
/// are `backbone.*` and `projector.*` (no torchvision, timm or transformers name starts with
/// `backbone.`). A file of this project's with other tensors too (a student's checkpoint with its
/// heads) is refused, pointing to the encoder's file.
fn is_encoder_file(path: &std::path::Path) -> Result<bool, PipelineError> {
    let names = dnc_hub::tensor_names(path)?;
    let ours = |n: &String| n.starts_with("backbone.") || n.starts_with("projector.");
    if !names.iter().any(|n| n.starts_with("backbone.")) {
        return Ok(false);
    }
    match names.iter().find(|n| !ours(n)) {
        None => Ok(true),
        Some(other) => Err(PipelineError::bad_config(
            "init_from",
            path.display(),
            format!(
                "holds `{other}` beside an encoder's tensors: start from an encoder's file \
                 (`base/model.safetensors`, `experts/expert-K/model.safetensors`, \
                 `distill/model.safetensors`)"
            ),
        )),
    }
}

/// Trains MoCLR for the DnC run's total epochs (base + experts + distill) on the same data, into
/// `baseline/model.safetensors`: the comparison the paper makes.
pub(crate) fn baseline(run: &Run, resume: bool) -> Result<(), PipelineError> {
    train_all_data(
        run,
        ModelRef::Baseline,
        run.cfg.baseline_epochs(),
        None,
        resume,
    )
}

fn train_all_data(
    run: &Run,
    model: ModelRef,
    epochs: usize,
    init: Option<&candle_nn::VarMap>,
    resume: bool,
) -> Result<(), PipelineError> {
    let train = open_split(run, Split::Train)?;
    let name = model.name();
    std::fs::create_dir_all(run.dir.model_dir(model))
        .map_err(|e| PipelineError::io(&run.dir.model_dir(model), e))?;
    let mut metrics = run.metrics()?;
    let job = MoclrJob {
        name: name.clone(),
        train: &run.cfg.base,
        epochs,
        seed: run.cfg.seed,
        init,
        checkpoints: run.dir.checkpoints_dir(model),
        model: run.dir.model_path(model),
    };
    let report = train_moclr(
        &run.cfg,
        job,
        train.clone(),
        &run.device,
        &mut metrics,
        resume,
    )?;
    let group = dnc_dist::current();
    if !group.is_leader() {
        return Ok(());
    }
    let skipped = record_skipped(run, &name, &[&train])?;
    run.dir.update_summary(|s| {
        s.info.insert(
            format!("{name}_training"),
            serde_json::json!({
                "epochs": epochs,
                "steps": report.global_step,
                "final_loss": report.last_loss,
                "skipped_images": skipped,
                "processes": group.world_size(),
            }),
        );
    })?;
    Ok(())
}
