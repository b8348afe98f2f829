//! Diagnostics of a Divide and Contrast run: where accuracy is won or lost between the divide,
//! the experts and the distillation.
//!
//! The method (arXiv 2105.08054) rests on experts beating the base model on their own clusters
//! (the paper's check: a MoCLR trained on ImageNet's dog classes alone beats the full-data MoCLR
//! on them, 77.5 vs 75.3); where they do not, the divide has nothing to give the student. Every
//! image of the evaluation bank and of the test split is routed to its nearest centroid, on the
//! base model's layer and with the metric the divide stage used, and three things are measured:
//!
//! 1. **experts on their own ground**: weighted k-NN top-1 of the base, expert k and the student
//!    within cluster k (cluster k's bank images as memory bank), and of the matched MoCLR
//!    baseline when the run has one: the model DnC must beat, on the experts' own clusters;
//! 2. **the ceiling**: k-NN on the routed `[n(base) ‖ n(expert_c)]` backbone features, what a
//!    student that kept both of its teachers' features could reach;
//! 3. **distillation fidelity**: the mean cosine between each regression head's prediction and
//!    its teacher's L2-normalised projection of the same (centre-crop) test images.
//!
//! Written to `summary.json` as `info.diagnostics` ([`Diagnostics`]); the report's Diagnostics
//! section shows it. The student's encoder and heads are both read from
//! `distill/student.safetensors` (`distill/model.safetensors` is its encoder part).

use crate::config::{ClusterLayer, Method};
use crate::error::PipelineError;
use crate::run::Run;
use crate::run_dir::ModelRef;
use crate::weights::load_encoder;
use candle_core::{Device, Tensor};
use dnc_cluster::{ClusterAssignments, Metric};
use dnc_data::{ImageFolder, Subset};
use dnc_models::Encoder;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

mod compute;
mod passes;
mod student;

use compute::{members, route, verdict};
use passes::{Blocks, Pass, embed, select};
use student::{Student, head_fidelity, load_student};

/// `info.diagnostics` of `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Diagnostics {
    /// Number of clusters, which is the number of experts.
    pub(crate) k: usize,
    /// The base model's layer and the metric images were routed with (the divide stage's).
    pub(crate) layer: ClusterLayer,
    pub(crate) metric: Metric,
    /// k-NN within each cluster, in cluster order.
    pub(crate) clusters: Vec<ClusterKnn>,
    /// Clusters where the expert's k-NN top-1 is above the base's, of the `scored` ones.
    pub(crate) experts_ahead: usize,
    pub(crate) scored: usize,
    /// Clusters where the expert's k-NN top-1 is above the matched MoCLR baseline's, of the
    /// `scored` ones; with a baseline only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) experts_ahead_of_baseline: Option<usize>,
    /// One sentence for people, from [`verdict`].
    pub(crate) verdict: String,
    pub(crate) ceiling: Ceiling,
    /// One row per regression head of the student file, in head order.
    pub(crate) fidelity: Vec<HeadFidelity>,
}

/// Weighted k-NN top-1 on one cluster's routed test images, with its routed bank images as memory
/// bank; `None` for a cluster without bank or test images.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ClusterKnn {
    pub(crate) cluster: usize,
    /// Bank images routed to the cluster.
    pub(crate) n_train: usize,
    /// Test images routed to the cluster.
    pub(crate) n_test: usize,
    pub(crate) base: Option<f64>,
    pub(crate) expert: Option<f64>,
    pub(crate) student: Option<f64>,
    /// `expert − base`.
    pub(crate) delta: Option<f64>,
    /// The matched MoCLR baseline (MoCLR for the run's total epochs), when the run has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) baseline: Option<f64>,
}

/// The routed base ‖ expert k-NN on the whole test split, beside the base's and the student's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Ceiling {
    pub(crate) knn_top1: f64,
    /// `eval.base.knn_top1` and `eval.dnc.knn_top1` of the summary.
    pub(crate) base: Option<f64>,
    pub(crate) student: Option<f64>,
    /// `eval.baseline.knn_top1`, when the run has a baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) baseline: Option<f64>,
}

/// How closely one regression head of the student matches its teacher on test images.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct HeadFidelity {
    pub(crate) head: usize,
    /// `base` (head 0) or `expert-<c>` (head c + 1).
    pub(crate) teacher: String,
    /// Test images compared: all of them for the base, the cluster's for an expert.
    pub(crate) n: usize,
    pub(crate) mean_cosine: Option<f64>,
}

/// What the diagnostics read: the model files and the divide's centroids.
struct Inputs {
    base: PathBuf,
    student: PathBuf,
    experts: Vec<PathBuf>,
    /// The matched MoCLR baseline, when the run has one (trained or taken from a MoCLR run).
    baseline: Option<PathBuf>,
    assignments: ClusterAssignments,
}

/// The inputs when diagnostics apply to this run (enabled, DnC, every file present).
fn inputs(run: &Run) -> Result<Option<Inputs>, PipelineError> {
    if !run.cfg.eval.diagnostics || run.cfg.method != Method::Dnc {
        return Ok(None);
    }
    let (base, student) = (run.dir.model_path(ModelRef::Base), run.dir.student_path());
    let assignments = run.dir.assignments_path();
    let missing = |path: &PathBuf| {
        let gone = !path.is_file();
        if gone {
            tracing::info!("diagnostics: skipped, {} is missing", path.display());
        }
        gone
    };
    if [&base, &student, &assignments].into_iter().any(missing) {
        return Ok(None);
    }
    let assignments = ClusterAssignments::load(&assignments, &Device::Cpu)?;
    let experts: Vec<PathBuf> = (0..assignments.n_clusters())
        .map(|c| run.dir.model_path(ModelRef::Expert(c)))
        .collect();
    if experts.iter().any(missing) {
        return Ok(None);
    }
    let baseline = run.dir.model_path(ModelRef::Baseline);
    let baseline = (run.cfg.baseline && baseline.is_file()).then_some(baseline);
    Ok(Some(Inputs {
        base,
        student,
        experts,
        baseline,
        assignments,
    }))
}

/// Computes the diagnostics of a finished DnC run and stores them as `info.diagnostics`; removes
/// a stale entry when they do not apply.
pub(crate) fn run(
    run: &Run,
    bank: &Arc<ImageFolder>,
    test: &Arc<ImageFolder>,
    num_classes: usize,
) -> Result<(), PipelineError> {
    let Some(inputs) = inputs(run)? else {
        run.dir.update_summary(|s| {
            s.info.remove("diagnostics");
        })?;
        return Ok(());
    };
    let ctx = Context {
        run,
        num_classes,
        bank,
        test,
    };
    let diagnostics = ctx.compute(&inputs)?;
    tracing::info!("diagnostics: {}", diagnostics.verdict);
    run.dir.update_summary(|s| {
        s.info.insert(
            "diagnostics".into(),
            serde_json::to_value(&diagnostics).expect("diagnostics serialise"),
        );
    })?;
    Ok(())
}

/// What every measurement needs.
struct Context<'a> {
    run: &'a Run,
    num_classes: usize,
    bank: &'a Arc<ImageFolder>,
    test: &'a Arc<ImageFolder>,
}

/// The base's and the student's passes over the bank and the test split, row-aligned, and the
/// cluster of every row.
struct Shared {
    base: (Pass, Pass),
    student: (Pass, Pass),
    baseline: Option<(Pass, Pass)>,
    bank_members: Vec<Vec<u32>>,
    test_members: Vec<Vec<u32>>,
}

impl Context<'_> {
    fn compute(&self, inputs: &Inputs) -> Result<Diagnostics, PipelineError> {
        let (shared, student) = self.shared(inputs)?;
        let (target, student_test) = (self.run.cfg.distill.target_layer, &shared.student.1);
        let base_test = Some(&shared.base.1);
        let fidelity = head_fidelity(&student, 0, "base", target, student_test, None, base_test)?;
        let mut fidelity: Vec<HeadFidelity> = fidelity.into_iter().collect();
        let mut clusters = Vec::new();
        let (mut bank_blocks, mut test_blocks) = (Blocks::default(), Blocks::default());
        for (c, path) in inputs.experts.iter().enumerate() {
            let (expert, _) = load_encoder(&self.run.cfg.model, path, &self.run.device)?;
            let (bank_rows, test_rows) = (&shared.bank_members[c], &shared.test_members[c]);
            let label = format!("diag-e{c}");
            let exp_bank =
                self.subset_pass(&expert, self.bank, &shared.base.0, bank_rows, &label)?;
            let exp_test =
                self.subset_pass(&expert, self.test, &shared.base.1, test_rows, &label)?;
            clusters.push(self.cluster_knn(c, &shared, exp_bank.as_ref(), exp_test.as_ref())?);
            bank_blocks.push(&shared.base.0, bank_rows, exp_bank.as_ref())?;
            test_blocks.push(&shared.base.1, test_rows, exp_test.as_ref())?;
            let (teacher, rows) = (format!("expert-{c}"), Some(test_rows.as_slice()));
            let row = head_fidelity(
                &student,
                c + 1,
                &teacher,
                target,
                student_test,
                rows,
                exp_test.as_ref(),
            )?;
            fidelity.extend(row);
        }
        let (bank_x, bank_y) = bank_blocks.finish()?;
        let (test_x, test_y) = test_blocks.finish()?;
        let summary = self.run.dir.read_summary()?;
        let ceiling = Ceiling {
            knn_top1: self.knn(&bank_x, &bank_y, &test_x, &test_y)?,
            base: summary.eval.get("base").map(|e| e.knn_top1),
            student: summary.eval.get("dnc").map(|e| e.knn_top1),
            baseline: inputs
                .baseline
                .as_ref()
                .and(summary.eval.get("baseline"))
                .map(|e| e.knn_top1),
        };
        let (experts_ahead, scored) = compute::experts_ahead_of(&clusters, |c| c.base);
        let experts_ahead_of_baseline = inputs
            .baseline
            .is_some()
            .then(|| compute::experts_ahead_of(&clusters, |c| c.baseline).0);
        Ok(Diagnostics {
            k: inputs.assignments.n_clusters(),
            layer: self.run.cfg.divide.layer,
            metric: inputs.assignments.metric,
            verdict: verdict(&clusters),
            clusters,
            experts_ahead,
            scored,
            experts_ahead_of_baseline,
            ceiling,
            fidelity,
        })
    }

    /// The base's and the student's passes and the routing of every bank and test image.
    fn shared(&self, inputs: &Inputs) -> Result<(Shared, Student), PipelineError> {
        let run = self.run;
        let a = &inputs.assignments;
        let k = a.n_clusters();
        let layer = run.cfg.divide.layer;
        tracing::info!("diagnostics: routing to {k} centroids on the base's {layer:?} layer");
        let (base, _) = load_encoder(&run.cfg.model, &inputs.base, &run.device)?;
        let base = self.both(&base, "diag-base")?;
        let bank_route = route(&base.0.layer, &a.centroids, a.metric)?;
        let test_route = route(&base.1.layer, &a.centroids, a.metric)?;
        let student = load_student(run, &inputs.student)?;
        let passes = self.both(&student.encoder, "diag-dnc")?;
        for (b, s, split) in [(&base.0, &passes.0, "bank"), (&base.1, &passes.1, "test")] {
            if b.indices != s.indices {
                return Err(PipelineError::Other(format!(
                    "diagnostics: the base and the student read different {split} images"
                )));
            }
        }
        let baseline = match &inputs.baseline {
            Some(path) => {
                let (encoder, _) = load_encoder(&run.cfg.model, path, &run.device)?;
                let baseline = self.both(&encoder, "diag-baseline")?;
                if baseline.0.indices != base.0.indices || baseline.1.indices != base.1.indices {
                    return Err(PipelineError::Other(
                        "diagnostics: the base and the baseline read different images".into(),
                    ));
                }
                Some(baseline)
            }
            None => None,
        };
        let shared = Shared {
            base,
            student: passes,
            baseline,
            bank_members: members(&bank_route, k),
            test_members: members(&test_route, k),
        };
        Ok((shared, student))
    }

    /// Passes of `encoder` over the bank and the test split.
    fn both(&self, encoder: &Encoder, label: &str) -> Result<(Pass, Pass), PipelineError> {
        let bank = embed(self.run, encoder, self.bank.clone(), label)?;
        let test = embed(self.run, encoder, self.test.clone(), label)?;
        Ok((bank, test))
    }

    /// A pass of `encoder` over the images of `rows` of `reference` (a pass over `split`); `None`
    /// when there are none.
    fn subset_pass(
        &self,
        encoder: &Encoder,
        split: &Arc<ImageFolder>,
        reference: &Pass,
        rows: &[u32],
        label: &str,
    ) -> Result<Option<Pass>, PipelineError> {
        if rows.is_empty() {
            return Ok(None);
        }
        let indices: Vec<usize> = rows
            .iter()
            .map(|&r| reference.indices[r as usize])
            .collect();
        let subset = Arc::new(Subset::new(split.clone(), indices.clone())?);
        let pass = embed(self.run, encoder, subset, label)?;
        if pass.labels.len() != indices.len() {
            return Err(PipelineError::Other(format!(
                "diagnostics: {} of {} images of {} could be read again",
                pass.labels.len(),
                indices.len(),
                split.root().display()
            )));
        }
        Ok(Some(pass))
    }

    fn cluster_knn(
        &self,
        c: usize,
        shared: &Shared,
        exp_bank: Option<&Pass>,
        exp_test: Option<&Pass>,
    ) -> Result<ClusterKnn, PipelineError> {
        let (bank_rows, test_rows) = (&shared.bank_members[c], &shared.test_members[c]);
        let mut row = ClusterKnn {
            cluster: c,
            n_train: bank_rows.len(),
            n_test: test_rows.len(),
            base: None,
            expert: None,
            student: None,
            delta: None,
            baseline: None,
        };
        let (Some(exp_bank), Some(exp_test)) = (exp_bank, exp_test) else {
            tracing::info!("diagnostics: cluster {c} has no bank or no test images, skipped");
            return Ok(row);
        };
        let within = |(bank, test): &(Pass, Pass)| -> Result<f64, PipelineError> {
            let (bx, by) = select(bank, bank_rows)?;
            let (tx, ty) = select(test, test_rows)?;
            self.knn(&bx, &by, &tx, &ty)
        };
        let base = within(&shared.base)?;
        let student = within(&shared.student)?;
        let expert = self.knn(
            &exp_bank.features,
            &exp_bank.labels,
            &exp_test.features,
            &exp_test.labels,
        )?;
        let baseline = shared.baseline.as_ref().map(within).transpose()?;
        tracing::info!(
            "diagnostics: cluster {c} ({} bank / {} test images): k-NN base {base:.4}, \
             expert {expert:.4}, student {student:.4}{}",
            row.n_train,
            row.n_test,
            baseline.map_or(String::new(), |b| format!(", matched MoCLR {b:.4}"))
        );
        row.baseline = baseline;
        row.base = Some(base);
        row.expert = Some(expert);
        row.student = Some(student);
        row.delta = Some(expert - base);
        Ok(row)
    }

    fn knn(
        &self,
        bank: &Tensor,
        bank_labels: &[u32],
        queries: &Tensor,
        query_labels: &[u32],
    ) -> Result<f64, PipelineError> {
        let knn = &self.run.cfg.eval.knn;
        dnc_eval::knn_evaluate(
            bank,
            bank_labels,
            queries,
            query_labels,
            self.num_classes,
            knn,
        )
        .map(|a| a.top1)
        .map_err(|e| PipelineError::Other(format!("diagnostics k-NN: {e}")))
    }
}
