//! Stages shared between runs: a run takes the finished stages of another run whose settings for
//! those stages are the same, instead of training them again. A budget study's MoCLR run at E
//! epochs is then the base of its Divide and Contrast runs at 2E, and the arms of one budget
//! (a random partition, the base distilled alone) share their base, clusters and experts.
//!
//! Only a leading run of stages can be taken (base; base and embed; ... up to distill), since
//! each stage reads the ones before it; and the matched MoCLR baseline on its own, from the
//! study's MoCLR run at the DnC run's total, so that a DnC point is scored against it cluster by
//! cluster without training it again. Files are hard-linked where the filesystem allows (a
//! stage folder is never written again once done) and copied otherwise; each stage folder
//! appears whole or not at all.

use crate::config::{Method, RunConfig};
use crate::error::PipelineError;
use crate::lock::RunLock;
use crate::run::Run;
use crate::run_dir::{RunDir, StageStatus};
use crate::stage::Stage;
use crate::validate::validate;
use std::path::Path;
use toml::{Table, Value};

/// The stages that can be taken from another run, in the order they must be taken.
const SHAREABLE: [Stage; 5] = [
    Stage::Base,
    Stage::Embed,
    Stage::Cluster,
    Stage::Experts,
    Stage::Distill,
];

impl Run {
    /// Takes `stages` (a leading run of base, embed, cluster, experts, distill) from the run in
    /// `donor`: each must be done there, with the same settings as here for everything it
    /// depends on (else the error names the first key that differs). Stages already done here
    /// are left as they are. The resized image cache is shared too when this run has none.
    pub fn adopt_stages(&self, donor: &Path, stages: &[Stage]) -> Result<(), PipelineError> {
        if let Some(bad) = stages
            .iter()
            .enumerate()
            .find(|(i, s)| SHAREABLE.get(*i) != Some(s))
        {
            return Err(PipelineError::Other(format!(
                "stage {} cannot be taken here: shared stages must be a leading run of {}, or \
                 baseline alone",
                bad.1,
                SHAREABLE.map(Stage::name).join(", ")
            )));
        }
        let donor_dir = RunDir::open(donor)?;
        let donor_cfg = RunConfig::from_file(&donor_dir.config_path())?;
        let donor_summary = donor_dir.read_summary()?;
        let _lock = RunLock::acquire(&self.dir)?;
        let here = self.dir.read_summary()?;
        // A stage done here can stand under stages taken from the donor only if it is the
        // donor's own output (taken earlier, or from the run the donor took it from): later
        // stages would otherwise read results they were not computed from.
        if let Some(last_taken) = stages.iter().rposition(|s| !here.is_done(s.name())) {
            for &stage in &stages[..last_taken] {
                let (mine, theirs) = (
                    self.dir.stage_path(stage.name()),
                    donor_dir.stage_path(stage.name()),
                );
                if here.is_done(stage.name()) && !same_files(&theirs, &mine)? {
                    return Err(PipelineError::Other(format!(
                        "stage {stage} is done here with results of its own, and {} would be \
                         taken from {}, computed from that run's {stage}: take them all from one \
                         run, or none",
                        stages[last_taken],
                        donor.display()
                    )));
                }
            }
        }
        for &stage in stages {
            if here.is_done(stage.name()) {
                continue;
            }
            if !donor_summary.is_done(stage.name()) {
                return Err(PipelineError::Other(format!(
                    "stage {stage} is not done in {}: nothing to take",
                    donor.display()
                )));
            }
            let (mine, theirs) = (
                stage_settings(&self.cfg, stage),
                stage_settings(&donor_cfg, stage),
            );
            if let Some((key, a, b)) = first_difference(&mine, &theirs) {
                return Err(PipelineError::Other(format!(
                    "stage {stage} of {} was trained with other settings: {key} is {b} there \
                     and {a} here",
                    donor.display()
                )));
            }
        }
        let cache = self.dir.resized_cache_dir();
        let donor_cache = donor_dir.resized_cache_dir();
        if !cache.exists() && donor_cache.is_dir() {
            link_tree_atomically(&donor_cache, &cache)?;
        }
        for &stage in stages {
            if here.is_done(stage.name()) {
                continue;
            }
            let folder = self.dir.stage_path(stage.name());
            if folder.exists() {
                std::fs::remove_dir_all(&folder).map_err(|e| PipelineError::io(&folder, e))?;
            }
            let from = donor_dir.stage_path(stage.name());
            if from.is_dir() {
                link_tree_atomically(&from, &folder)?;
            }
            let status = StageStatus {
                attempt_started: None,
                ..donor_summary.stages[stage.name()].clone()
            };
            let info: Vec<(String, serde_json::Value)> = info_keys(stage)
                .into_iter()
                .filter_map(|k| Some((k.clone(), donor_summary.info.get(&k)?.clone())))
                .collect();
            self.dir.update_summary(|s| {
                s.stages.insert(stage.name().into(), status);
                s.info.extend(info);
            })?;
            tracing::info!("stage {stage}: taken from {}", donor.display());
        }
        Ok(())
    }
}

impl Run {
    /// Takes the matched MoCLR baseline (the `baseline` stage: MoCLR on all data for the run's
    /// `base + experts + distill` epochs) from `donor`: a MoCLR run whose base was trained with
    /// those settings, or a DnC run whose baseline is done. Turns the run's baseline on when it
    /// was off; its evaluation row and the diagnostics (which score it cluster by cluster) are
    /// computed when the run resumes. Returns whether the stage was taken (`false`: it is
    /// already this donor's).
    pub fn adopt_baseline(&mut self, donor: &Path) -> Result<bool, PipelineError> {
        if self.cfg.method != Method::Dnc {
            return Err(PipelineError::Other(format!(
                "the run in {} is a MoCLR run: its base model is the MoCLR baseline, there is no \
                 baseline stage to take",
                self.dir.root().display()
            )));
        }
        // A run that cannot have a baseline (its base trained elsewhere) is refused before
        // anything is linked.
        validate(&RunConfig {
            baseline: true,
            ..self.cfg.clone()
        })?;
        let donor_dir = RunDir::open(donor)?;
        let donor_cfg = RunConfig::from_file(&donor_dir.config_path())?;
        let donor_summary = donor_dir.read_summary()?;
        let source = match donor_cfg.method {
            Method::Moclr => Stage::Base,
            Method::Dnc => Stage::Baseline,
        };
        if !donor_summary.is_done(source.name()) {
            return Err(PipelineError::Other(format!(
                "stage {source} is not done in {}: no baseline to take",
                donor.display()
            )));
        }
        if let Some((key, a, b)) = first_difference(
            &baseline_settings(&self.cfg),
            &baseline_settings(&donor_cfg),
        ) {
            let why = if key == "init_from" {
                " (a DnC run's baseline trains from scratch, whatever its base starts from)"
            } else {
                ""
            };
            return Err(PipelineError::Other(format!(
                "the {source} of {} was trained with other settings than this run's baseline \
                 (MoCLR for base + experts + distill = {} epochs): {key} is {b} there and {a} \
                 here{why}",
                donor.display(),
                self.cfg.baseline_epochs()
            )));
        }
        let (mine, theirs) = (
            self.dir.stage_path(Stage::Baseline.name()),
            donor_dir.stage_path(source.name()),
        );
        // One locked section: the stage's files, its status and `baseline = true` change
        // together, or (interrupted) are completed by taking the baseline again.
        let _lock = RunLock::acquire(&self.dir)?;
        if self.dir.read_summary()?.is_done(Stage::Baseline.name()) {
            if !same_files(&theirs, &mine)? {
                return Err(PipelineError::Other(format!(
                    "the baseline is done in {} with results of its own: it is not replaced by \
                     the one of {}",
                    self.dir.root().display(),
                    donor.display()
                )));
            }
            return self.turn_baseline_on_locked();
        }
        if mine.exists() {
            std::fs::remove_dir_all(&mine).map_err(|e| PipelineError::io(&mine, e))?;
        }
        link_tree_atomically(&theirs, &mine)?;
        let status = StageStatus {
            attempt_started: None,
            ..donor_summary.stages[source.name()].clone()
        };
        // The donor's evaluation of the same model stands here when this run evaluates as the
        // donor did: a resumed evaluation then computes the diagnostics alone.
        let row = match donor_cfg.method {
            Method::Moclr => "base",
            Method::Dnc => "baseline",
        };
        let evaluated = donor_summary
            .eval
            .get(row)
            .filter(|_| evaluation_settings(&self.cfg) == evaluation_settings(&donor_cfg))
            .cloned();
        // The training facts and the skipped-image record of the donor's stage.
        let facts: Vec<(String, Option<serde_json::Value>)> = [
            (format!("{source}_training"), "baseline_training"),
            (source.name().to_string(), "baseline"),
        ]
        .into_iter()
        .map(|(from, to)| (to.to_string(), donor_summary.info.get(&from).cloned()))
        .collect();
        self.dir.update_summary(|s| {
            crate::orchestrate::mark_stale(s, Stage::Baseline, false);
            s.stages.insert(Stage::Baseline.name().into(), status);
            if let Some(evaluated) = evaluated {
                s.eval.insert(Stage::Baseline.name().into(), evaluated);
            }
            for (key, value) in facts {
                match value {
                    Some(v) => s.info.insert(key, v),
                    None => s.info.remove(&key),
                };
            }
        })?;
        self.turn_baseline_on_locked()?;
        tracing::info!("stage baseline: taken from {}'s {source}", donor.display());
        Ok(true)
    }
}

/// What an evaluation's scores depend on besides the model: the evaluation's settings and the
/// data's (its test split and k-NN bank), and the seed (the linear probes' initialisation).
fn evaluation_settings(cfg: &RunConfig) -> Table {
    let Ok(Value::Table(t)) = Value::try_from(cfg) else {
        unreachable!("the run config serialises to a table")
    };
    t.into_iter()
        .filter(|(key, _)| ["eval", "data", "seed", "model", "augment"].contains(&key.as_str()))
        .collect()
}

/// The settings a MoCLR baseline depends on: the base's, for the epochs the baseline trains
/// (a DnC run's total; a MoCLR run's base epochs), from scratch in a DnC run (its baseline never
/// starts from `init_from`).
fn baseline_settings(cfg: &RunConfig) -> Table {
    let mut t = stage_settings(cfg, Stage::Base);
    let epochs = match cfg.method {
        Method::Dnc => {
            t.remove("init_from");
            cfg.baseline_epochs()
        }
        Method::Moclr => cfg.base.epochs,
    };
    if let Some(Value::Table(base)) = t.get_mut("base") {
        base.insert("epochs".into(), Value::Integer(epochs as i64));
    }
    t
}

/// The `summary.json` info entries a stage writes.
fn info_keys(stage: Stage) -> Vec<String> {
    let name = stage.name();
    let mut keys = vec![name.to_string(), format!("{name}_training")];
    if stage == Stage::Base {
        keys.push("init_from".into());
    }
    keys
}

/// The settings `stage`'s results depend on, as a TOML table: the whole config without what
/// only names the run, evaluates it, or configures later stages.
fn stage_settings(cfg: &RunConfig, stage: Stage) -> Table {
    let Ok(Value::Table(mut t)) = Value::try_from(cfg) else {
        unreachable!("the run config serialises to a table")
    };
    for key in ["name", "method", "baseline", "eval"] {
        t.remove(key);
    }
    if let Some(Value::Table(data)) = t.get_mut("data") {
        // Evaluation's images, and how many threads read the training ones.
        for key in [
            "test_limit",
            "eval_bank",
            "eval_bank_limit",
            "workers",
            "prefetch_batches",
        ] {
            data.remove(key);
        }
    }
    let later: &[&str] = match stage {
        Stage::Base => &["divide", "experts", "distill"],
        Stage::Embed | Stage::Cluster | Stage::Experts => &["distill"],
        _ => &[],
    };
    for key in later {
        t.remove(*key);
    }
    match stage {
        Stage::Embed => {
            // The layer and the batch only; k-means and the experts come later.
            if let Some(Value::Table(divide)) = t.get_mut("divide") {
                divide.remove("kmeans");
            }
            t.remove("experts");
        }
        Stage::Cluster => {
            // Small clusters are merged by the experts' batch size; the partition is drawn here.
            let experts = &cfg.experts;
            let mut kept = Table::new();
            kept.insert(
                "partition".into(),
                Value::try_from(experts.partition).expect("serialises"),
            );
            kept.insert(
                "small_cluster".into(),
                Value::try_from(experts.small_cluster).expect("serialises"),
            );
            kept.insert(
                "batch_size".into(),
                Value::Integer(cfg.expert_train().batch_size as i64),
            );
            t.insert("experts".into(), Value::Table(kept));
        }
        _ => {
            // The experts train with `experts.train` or, unset, the base's settings: compared as
            // resolved, so that "unset" and "the same as the base" are the same settings.
            if let Some(Value::Table(experts)) = t.get_mut("experts") {
                experts.insert(
                    "train".into(),
                    Value::try_from(cfg.expert_train()).expect("serialises"),
                );
            }
        }
    }
    t
}

/// The first key (dotted key, value here, value there) where two tables differ; a key missing
/// on one side reads as "unset".
fn first_difference(a: &Table, b: &Table) -> Option<(String, String, String)> {
    let (a, b) = (Value::Table(a.clone()), Value::Table(b.clone()));
    let key = crate::layers::changed_keys(&a, &b).into_iter().next()?;
    let show = |doc: &Value| {
        crate::layers::value_at(doc, &key).map_or("unset".to_string(), Value::to_string)
    };
    let (here, there) = (show(&a), show(&b));
    Some((key, here, there))
}

/// Whether every file under `theirs` is under `mine` with the same contents (the same file, by
/// a hard link, or equal bytes).
fn same_files(theirs: &Path, mine: &Path) -> Result<bool, PipelineError> {
    use std::os::unix::fs::MetadataExt;
    if !theirs.is_dir() {
        return Ok(!mine.exists());
    }
    for entry in std::fs::read_dir(theirs).map_err(|e| PipelineError::io(theirs, e))? {
        let entry = entry.map_err(|e| PipelineError::io(theirs, e))?;
        let (a, b) = (entry.path(), mine.join(entry.file_name()));
        let Ok(mb) = std::fs::metadata(&b) else {
            return Ok(false);
        };
        let ma = std::fs::metadata(&a).map_err(|e| PipelineError::io(&a, e))?;
        let same = if ma.is_dir() {
            mb.is_dir() && same_files(&a, &b)?
        } else {
            (ma.dev(), ma.ino()) == (mb.dev(), mb.ino())
                || (ma.len() == mb.len()
                    && std::fs::read(&a).map_err(|e| PipelineError::io(&a, e))?
                        == std::fs::read(&b).map_err(|e| PipelineError::io(&b, e))?)
        };
        if !same {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `from`'s files under `to` (hard links, else copies), written under a temporary name and
/// renamed into place, so that `to` never exists half-filled.
fn link_tree_atomically(from: &Path, to: &Path) -> Result<(), PipelineError> {
    let name = to.file_name().and_then(|n| n.to_str()).unwrap_or("stage");
    let partial = to.with_file_name(format!(".{name}.taking"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| PipelineError::io(&partial, e))?;
    }
    link_tree(from, &partial)?;
    std::fs::rename(&partial, to).map_err(|e| PipelineError::io(to, e))
}

fn link_tree(from: &Path, to: &Path) -> Result<(), PipelineError> {
    std::fs::create_dir_all(to).map_err(|e| PipelineError::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| PipelineError::io(from, e))? {
        let entry = entry.map_err(|e| PipelineError::io(from, e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| PipelineError::io(&src, e))?;
        if kind.is_dir() {
            link_tree(&src, &dst)?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).map_err(|e| PipelineError::io(&src, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_settings_ignore_later_stages_and_evaluation() {
        let a = RunConfig::default();
        let mut b = a.clone();
        b.name = "other".into();
        b.method = crate::config::Method::Moclr;
        b.experts.epochs += 3;
        b.distill.epochs += 1;
        b.divide.kmeans.n_clusters += 1;
        b.eval.linear_probe = !a.eval.linear_probe;
        b.data.workers += 1;
        assert_eq!(
            first_difference(
                &stage_settings(&a, Stage::Base),
                &stage_settings(&b, Stage::Base)
            ),
            None
        );
        // The embedding does not depend on k-means; the clusters do.
        assert_eq!(
            first_difference(
                &stage_settings(&a, Stage::Embed),
                &stage_settings(&b, Stage::Embed)
            ),
            None
        );
        let (key, _, _) = first_difference(
            &stage_settings(&a, Stage::Cluster),
            &stage_settings(&b, Stage::Cluster),
        )
        .unwrap();
        assert_eq!(key, "divide.kmeans.n_clusters");
        b.base.epochs += 1;
        let (key, here, there) = first_difference(
            &stage_settings(&a, Stage::Base),
            &stage_settings(&b, Stage::Base),
        )
        .unwrap();
        assert_eq!(key, "base.epochs");
        assert_eq!(
            (here, there),
            (a.base.epochs.to_string(), b.base.epochs.to_string())
        );
    }

    #[test]
    fn experts_settings_see_the_experts_but_not_the_student() {
        let a = RunConfig::default();
        let mut b = a.clone();
        b.distill.epochs += 1;
        assert_eq!(
            first_difference(
                &stage_settings(&a, Stage::Experts),
                &stage_settings(&b, Stage::Experts)
            ),
            None
        );
        b.experts.init = crate::config::Init::Base;
        assert!(
            first_difference(
                &stage_settings(&a, Stage::Cluster),
                &stage_settings(&b, Stage::Cluster)
            )
            .is_none()
        );
        let (key, _, _) = first_difference(
            &stage_settings(&a, Stage::Experts),
            &stage_settings(&b, Stage::Experts),
        )
        .unwrap();
        assert_eq!(key, "experts.init");
    }

    #[test]
    fn expert_training_unset_is_the_same_as_the_base_settings_written_out() {
        let a = RunConfig::default();
        let mut b = a.clone();
        b.experts.train = Some(b.base.clone());
        for stage in [Stage::Experts, Stage::Distill] {
            assert_eq!(
                first_difference(&stage_settings(&a, stage), &stage_settings(&b, stage)),
                None,
                "{stage}"
            );
        }
        b.experts.train.as_mut().unwrap().warmup_epochs += 1.0;
        let (key, _, _) = first_difference(
            &stage_settings(&a, Stage::Experts),
            &stage_settings(&b, Stage::Experts),
        )
        .unwrap();
        assert_eq!(key, "experts.train.warmup_epochs");
    }
}
