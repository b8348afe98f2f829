//! Checks of a run configuration, once, before any work: every impossible value is an error that
//! names its key and value.

use crate::config::{DistillConfig, HeadInit, Init, RunConfig, StudentInit, TrainConfig};
use crate::error::PipelineError;

fn check(
    ok: bool,
    key: &str,
    value: impl std::fmt::Display,
    reason: &str,
) -> Result<(), PipelineError> {
    if ok {
        Ok(())
    } else {
        Err(PipelineError::bad_config(key, value, reason))
    }
}

fn wrap<E: std::fmt::Display>(key: &str, r: Result<(), E>) -> Result<(), PipelineError> {
    r.map_err(|e| PipelineError::bad_config(key, "", e.to_string()))
}

fn check_train(prefix: &str, t: &TrainConfig, need_epochs: bool) -> Result<(), PipelineError> {
    if need_epochs {
        check(
            t.epochs >= 1,
            &format!("{prefix}.epochs"),
            t.epochs,
            "must be at least 1",
        )?;
    }
    check(
        t.batch_size >= 2,
        &format!("{prefix}.batch_size"),
        t.batch_size,
        "a contrastive batch needs at least 2 images",
    )?;
    check(
        (0.0..=1.0).contains(&t.ema_momentum),
        &format!("{prefix}.ema_momentum"),
        t.ema_momentum,
        "must be in [0, 1]",
    )?;
    check(
        t.warmup_epochs >= 0.0 && t.warmup_epochs.is_finite(),
        &format!("{prefix}.warmup_epochs"),
        t.warmup_epochs,
        "must be a finite number >= 0",
    )?;
    check(
        t.clip_grad_norm >= 0.0 && t.clip_grad_norm.is_finite(),
        &format!("{prefix}.clip_grad_norm"),
        t.clip_grad_norm,
        "must be a finite number >= 0 (0: no clipping)",
    )?;
    wrap(&format!("{prefix}.objective"), t.objective.validate())?;
    wrap(&format!("{prefix}.optimizer"), t.optimizer.validate())
}

fn check_distill(d: &DistillConfig) -> Result<(), PipelineError> {
    check(
        d.epochs >= 1,
        "distill.epochs",
        d.epochs,
        "must be at least 1",
    )?;
    check(
        d.batch_size >= 2,
        "distill.batch_size",
        d.batch_size,
        "must be at least 2",
    )?;
    check(
        d.warmup_epochs >= 0.0 && d.warmup_epochs.is_finite(),
        "distill.warmup_epochs",
        d.warmup_epochs,
        "must be a finite number >= 0",
    )?;
    check(
        d.merge_scale > 0.0 && d.merge_scale.is_finite(),
        "distill.merge_scale",
        d.merge_scale,
        "must be a finite number > 0",
    )?;
    check(
        d.regression_weight > 0.0 && d.regression_weight.is_finite(),
        "distill.regression_weight",
        d.regression_weight,
        "must be a finite number > 0",
    )?;
    check(
        d.head_warmup_epochs >= 0.0 && d.head_warmup_epochs.is_finite(),
        "distill.head_warmup_epochs",
        d.head_warmup_epochs,
        "must be a finite number >= 0",
    )?;
    check(
        d.contrastive_weight >= 0.0 && d.contrastive_weight.is_finite(),
        "distill.contrastive_weight",
        d.contrastive_weight,
        "must be a finite number >= 0",
    )?;
    check(
        d.contrastive_temperature > 0.0 && d.contrastive_temperature.is_finite(),
        "distill.contrastive_temperature",
        d.contrastive_temperature,
        "must be a finite number > 0",
    )?;
    check(
        !(d.head_init == HeadInit::Zero && d.contrastive_weight > 0.0),
        "distill.contrastive_weight",
        d.contrastive_weight,
        "needs distill.head_init = \"random\": the contrastive term normalises the heads' \
         predictions, and a zero-initialised head predicts zero, which has no direction",
    )?;
    check(
        d.student_moclr_weight >= 0.0 && d.student_moclr_weight.is_finite(),
        "distill.student_moclr_weight",
        d.student_moclr_weight,
        "must be a finite number >= 0",
    )?;
    check(
        d.clip_grad_norm >= 0.0 && d.clip_grad_norm.is_finite(),
        "distill.clip_grad_norm",
        d.clip_grad_norm,
        "must be a finite number >= 0 (0: no clipping)",
    )?;
    check(
        !d.student_moclr_anneal || d.student_moclr_weight > 0.0,
        "distill.student_moclr_anneal",
        d.student_moclr_anneal,
        "needs a student MoCLR term to anneal (distill.student_moclr_weight > 0)",
    )?;
    wrap("distill.optimizer", d.optimizer.validate())
}

/// Validates every section of the configuration.
pub fn validate(cfg: &RunConfig) -> Result<(), PipelineError> {
    wrap("model", cfg.model.validate())?;
    wrap("augment", cfg.augment.validate())?;
    check(
        cfg.augment.view1.size == cfg.augment.view2.size,
        "augment.view2.size",
        cfg.augment.view2.size,
        "both views must have the same size",
    )?;
    // Without epochs the base is the `init_from` model as it is (a second round of DnC).
    check_train("base", &cfg.base, cfg.init_from.is_none())?;
    check(
        !(cfg.base.epochs == 0 && cfg.baseline),
        "baseline",
        true,
        "needs base.epochs >= 1: with base.epochs = 0 the base was trained elsewhere, so this \
         run does not know the total epochs a matched MoCLR would train for (train MoCLR for \
         the total of both rounds as a run of its own and compare the two runs' reports)",
    )?;
    wrap("divide.kmeans", cfg.divide.kmeans.validate())?;
    check(
        cfg.divide.batch_size >= 1,
        "divide.batch_size",
        0,
        "must be at least 1",
    )?;
    check(
        cfg.experts.epochs >= 1,
        "experts.epochs",
        cfg.experts.epochs,
        "must be at least 1",
    )?;
    if let Some(train) = &cfg.experts.train {
        check_train("experts.train", train, false)?;
    }
    check_distill(&cfg.distill)?;
    check(
        !matches!(
            cfg.distill.init,
            StudentInit::ExpertMean | StudentInit::ExpertSum
        ) || cfg.experts.init == Init::Base,
        "distill.init",
        if cfg.distill.init == StudentInit::ExpertSum {
            "\"expert-sum\""
        } else {
            "\"expert-mean\""
        },
        "needs experts.init = \"base\": experts trained from scratch share no weights to average",
    )?;
    wrap("eval", cfg.eval.protocol().validate())?;
    check(
        cfg.eval.batch_size >= 1,
        "eval.batch_size",
        0,
        "must be at least 1",
    )?;
    check(
        cfg.data.max_image_pixels >= 1,
        "data.max_image_pixels",
        cfg.data.max_image_pixels,
        "must be at least 1",
    )?;
    check(
        cfg.data.train.is_some() || !cfg.data.root.as_os_str().is_empty(),
        "data.root",
        "\"\"",
        "must name the folder that holds train/ and test/ (or set data.train)",
    )?;
    for (key, path) in [
        ("data.train", &cfg.data.train),
        ("eval.data", &cfg.eval.data),
    ] {
        check(
            path.as_ref().is_none_or(|p| !p.as_os_str().is_empty()),
            key,
            "\"\"",
            "must name a folder, a list file or shards (or be left out)",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        validate(&RunConfig::default()).unwrap();
        let mut cfg = RunConfig::default();
        cfg.base.batch_size = 1;
        let err = validate(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("base.batch_size") && err.contains('1'),
            "{err}"
        );
        let mut cfg = RunConfig::default();
        cfg.divide.kmeans.n_clusters = 0;
        let err = validate(&cfg).unwrap_err().to_string();
        assert!(err.contains("divide.kmeans"), "{err}");
        let mut cfg = RunConfig::default();
        cfg.base.objective.temperature = -1.0;
        let err = validate(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("base.objective") && err.contains("-1"),
            "{err}"
        );
        let mut cfg = RunConfig::default();
        cfg.distill.head_warmup_epochs = f64::NAN;
        let err = validate(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("distill.head_warmup_epochs") && err.contains("NaN"),
            "{err}"
        );
        let mut cfg = RunConfig::default();
        cfg.distill.contrastive_temperature = 0.0;
        let err = validate(&cfg).unwrap_err().to_string();
        assert!(err.contains("distill.contrastive_temperature"), "{err}");
        let mut cfg = RunConfig::default();
        cfg.distill.head_init = HeadInit::Zero;
        cfg.distill.contrastive_weight = 0.5;
        let err = validate(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("distill.contrastive_weight") && err.contains("head_init"),
            "{err}"
        );
        let mut cfg = RunConfig::default();
        cfg.distill.init = StudentInit::ExpertSum;
        let err = validate(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("distill.init") && err.contains("expert-sum"),
            "{err}"
        );
        cfg.experts.init = Init::Base;
        validate(&cfg).unwrap();
        let mut cfg = RunConfig::default();
        cfg.distill.clip_grad_norm = -1.0;
        let err = validate(&cfg).unwrap_err().to_string();
        assert!(err.contains("distill.clip_grad_norm"), "{err}");
        let mut cfg = RunConfig::default();
        cfg.base.clip_grad_norm = f64::NAN;
        let err = validate(&cfg).unwrap_err().to_string();
        assert!(err.contains("base.clip_grad_norm"), "{err}");
        let mut cfg = RunConfig::default();
        cfg.distill.student_moclr_anneal = true;
        validate(&cfg).unwrap();
        cfg.distill.student_moclr_weight = 0.0;
        let err = validate(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("distill.student_moclr_anneal") && err.contains("student_moclr_weight"),
            "{err}"
        );
    }
}
