//! Evaluation (SPEC protocol): weighted k-NN, a linear probe and few-label linear probes on frozen
//! backbone features of every model of the run, always beside the untrained floor; then, in a DnC
//! run, the [diagnostics](diagnostics) of where accuracy is won or lost, and the clusters scored
//! against groups of classes ([`groups`]).

mod diagnostics;
mod groups;

use crate::datasets::{EvalSplits, Split, open_eval_splits, open_split, record_skipped};
use crate::error::PipelineError;
use crate::features::{embed_dataset, for_each_embedded};
use crate::run::Run;
use crate::run_dir::{ModelEval, ModelRef};
use crate::weights::{fresh_encoder, load_encoder};
use candle_core::Tensor;
use dnc_data::ImageFolder;
use dnc_eval::{Comparison, StreamingKnn, few_label_probe_evaluate, linear_probe_evaluate};
use dnc_models::Encoder;
use std::sync::Arc;

pub(crate) use diagnostics::Diagnostics;
pub use groups::GroupScores;

/// The models of the run that exist on disk, by report name, in report order.
fn trained_models(run: &Run) -> Vec<(String, std::path::PathBuf)> {
    // `dnc-start`: the distillation student's start when it is merged from the experts.
    let mut models: Vec<(String, std::path::PathBuf)> = [
        ModelRef::Base,
        ModelRef::DncStart,
        ModelRef::Dnc,
        ModelRef::Baseline,
    ]
    .into_iter()
    .map(|m| (m.name(), run.dir.model_path(m)))
    .collect();
    if run.cfg.eval.experts {
        for k in 0.. {
            let path = run.dir.model_path(ModelRef::Expert(k));
            if !path.is_file() {
                break;
            }
            models.push((ModelRef::Expert(k).name(), path));
        }
    }
    models.into_iter().filter(|(_, p)| p.is_file()).collect()
}

pub(crate) fn run(run: &Run) -> Result<(), PipelineError> {
    groups::run(run)?;
    let Some(EvalSplits { bank: train, test }) = open_eval_splits(run)? else {
        tracing::warn!(
            "no labelled data to evaluate on (data.train is an unlabelled tree and eval.data is \
             not set): no accuracy is measured"
        );
        run.dir.update_summary(|s| {
            s.info.insert(
                "eval".into(),
                serde_json::json!({"not_run": "no labelled data (set eval.data)"}),
            );
        })?;
        return Ok(());
    };
    if !train.is_labelled() || !test.is_labelled() {
        return Err(PipelineError::Other(format!(
            "evaluation needs class folders (labels) in {} and {}",
            train.root().display(),
            test.root().display()
        )));
    }
    if train.classes() != test.classes() {
        return Err(PipelineError::Other(format!(
            "the classes of {} ({:?}) differ from those of the test split {} ({:?})",
            train.root().display(),
            train.classes(),
            test.root().display(),
            test.classes()
        )));
    }
    let num_classes = train.classes().len();
    let mut comparison = Comparison::new();
    // Rows already written stand (a resumed evaluation, or one run again for a baseline added
    // to the run, see `Run::add_baseline`): only the models without one are evaluated.
    let earlier = run.dir.read_summary()?;
    let fresh = |name: &str| !earlier.eval.contains_key(name);
    for (name, row) in &earlier.eval {
        tracing::info!("eval {name}: evaluated earlier, kept");
        comparison.push_scores(name.clone(), row.knn_top1, row.linear_top1);
    }
    let mut models: Vec<(String, Encoder)> = Vec::new();
    if fresh("untrained") {
        models.push((
            "untrained".into(),
            fresh_encoder(&run.cfg.model, run.cfg.seed, &run.device)?.0,
        ));
    }
    let mut read = vec![train.clone(), test.clone()];
    if run.cfg.eval.bn_adapted_floor && fresh("untrained-bn") {
        let (encoder, _) = fresh_encoder(&run.cfg.model, run.cfg.seed, &run.device)?;
        let images = open_split(run, Split::Train)?;
        adapt_batch_norm(run, &encoder, images.clone())?;
        read.push(images);
        models.push(("untrained-bn".into(), encoder));
    }
    for (name, path) in trained_models(run) {
        if fresh(&name) {
            models.push((name, load_encoder(&run.cfg.model, &path, &run.device)?.0));
        }
    }
    for (name, encoder) in &models {
        let result = evaluate_encoder(run, encoder, name, &train, &test, num_classes)?;
        comparison.push_scores(name.clone(), result.knn_top1, result.linear_top1);
        run.dir.update_summary(|s| {
            s.eval.insert(name.clone(), result);
        })?;
    }
    tracing::info!("\n{}", comparison.to_plain());
    // A pass that kept rows read no more images than the pass that wrote them: the skipped
    // images that pass recorded stand.
    let recorded = earlier
        .info
        .get("eval")
        .is_some_and(|e| e.get("skipped").is_some());
    if earlier.eval.is_empty() || !recorded {
        let read: Vec<&ImageFolder> = read.iter().map(|f| &**f).collect();
        record_skipped(run, "eval", &read)?;
    }
    // The diagnostics load their own models; free these first. Diagnostics already written
    // stand: a baseline trained or taken since removed them (they score it too).
    drop(models);
    if earlier.info.contains_key("diagnostics") {
        return Ok(());
    }
    diagnostics::run(run, &train, &test, num_classes)
}

/// One pass over the training images in training mode, so that the BatchNorm running statistics
/// of an untrained network fit the data (no weight changes).
fn adapt_batch_norm(
    run: &Run,
    encoder: &Encoder,
    train: Arc<ImageFolder>,
) -> Result<(), PipelineError> {
    embed_dataset(&run.cfg, train, &run.device, "bn-adapt", |x| {
        encoder.forward_t(x, true)?;
        Ok(Vec::new())
    })?;
    Ok(())
}

fn backbone_features(
    run: &Run,
    encoder: &Encoder,
    split: Arc<ImageFolder>,
    label: &str,
) -> Result<(Tensor, Vec<u32>), PipelineError> {
    let embedded = embed_dataset(&run.cfg, split, &run.device, label, |x| {
        Ok(vec![encoder.backbone().forward_t(x, false)?])
    })?;
    let labelled = embedded.labelled()?;
    let labels = labelled.labels;
    let features = labelled.outputs.into_iter().next().ok_or_else(|| {
        PipelineError::Other(format!("{label}: no image of the split could be embedded"))
    })?;
    Ok((features, labels))
}

/// k-NN, linear probe and few-label linear probes of one encoder. The test split's features are
/// held; the bank is streamed through the encoder a batch at a time into the k-NN vote
/// ([`StreamingKnn`]), and kept only when the linear probes need it.
fn evaluate_encoder(
    run: &Run,
    encoder: &Encoder,
    name: &str,
    train: &Arc<ImageFolder>,
    test: &Arc<ImageFolder>,
    num_classes: usize,
) -> Result<ModelEval, PipelineError> {
    let failed = |e: dnc_eval::EvalError| PipelineError::Other(format!("evaluating {name}: {e}"));
    let (queries, query_labels) = backbone_features(run, encoder, test.clone(), name)?;
    let protocol = run.cfg.eval.protocol();
    protocol.validate().map_err(|e| failed(e.into()))?;
    let mut knn = StreamingKnn::new(&queries, num_classes, &protocol.knn).map_err(failed)?;
    let (mut bank, mut bank_labels) = (Vec::new(), Vec::new());
    for_each_embedded(
        &run.cfg,
        run.cfg.eval.batch_size,
        train.clone(),
        &run.device,
        name,
        |x| Ok(vec![encoder.backbone().forward_t(x, false)?]),
        |batch| {
            // Images of unlabelled folders (`~distractors`) are not in the bank.
            let rows: Vec<u32> = (0..batch.labels.len() as u32)
                .filter(|&r| batch.labels[r as usize].is_some())
                .collect();
            if rows.is_empty() {
                return Ok(());
            }
            let features = &batch.outputs[0];
            let features = if rows.len() == batch.labels.len() {
                features.clone()
            } else {
                features.index_select(&Tensor::new(rows.as_slice(), features.device())?, 0)?
            };
            let labels: Vec<u32> = batch.labels.iter().flatten().copied().collect();
            knn.add(&features, &labels).map_err(failed)?;
            if protocol.linear_probe {
                bank.push(features);
                bank_labels.extend(labels);
            }
            Ok(())
        },
    )?;
    if knn.bank_len() == 0 {
        return Err(PipelineError::Other(format!(
            "{name}: no image of {} could be embedded",
            train.root().display()
        )));
    }
    let knn = knn.evaluate(&query_labels).map_err(failed)?;
    let (linear, few_label) = if protocol.linear_probe {
        let bank = Tensor::cat(&bank, 0)?;
        let (x, y, q, qy) = (&bank, &bank_labels, &queries, &query_labels);
        let linear =
            linear_probe_evaluate(x, y, q, qy, num_classes, &protocol.linear).map_err(failed)?;
        // The same features, with a few labelled bank items of each class per probe.
        let few_label =
            few_label_probe_evaluate(x, y, q, qy, num_classes, &protocol.linear).map_err(failed)?;
        (Some(linear), few_label)
    } else {
        (None, Vec::new())
    };
    let r = dnc_eval::EvalResult {
        knn_top1: knn.top1,
        linear_top1: linear.as_ref().map(|l| l.top1),
        per_class_knn: knn.per_class,
        per_class_linear: linear.map(|l| l.per_class),
    };
    let per_class = |v: &[dnc_eval::ClassAccuracy]| -> Vec<f64> {
        v.iter().map(|c| c.accuracy().unwrap_or(f64::NAN)).collect()
    };
    let few: String = few_label
        .iter()
        .map(|s| format!(", linear {} {:.4}", s.percent(), s.top1_mean))
        .collect();
    tracing::info!(
        "{name}: k-NN top-1 {:.4}{}{few}",
        r.knn_top1,
        r.linear_top1
            .map(|l| format!(", linear top-1 {l:.4}"))
            .unwrap_or_default()
    );
    Ok(ModelEval {
        knn_top1: r.knn_top1,
        linear_top1: r.linear_top1,
        knn_per_class: per_class(&r.per_class_knn),
        linear_per_class: r
            .per_class_linear
            .as_deref()
            .map(per_class)
            .unwrap_or_default(),
        few_label,
    })
}
