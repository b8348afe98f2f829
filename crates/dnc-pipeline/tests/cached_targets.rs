//! `distill.targets = "cached"`, the paper's cheaper distillation: the teachers' targets of every
//! training image's centre crop are computed once into `distill/targets.safetensors`, equal a
//! direct teacher forward, are reused by a resumed stage and recomputed when stale, and the
//! student trains on them to an evaluated run.

mod common;

use candle_core::{Device, Tensor};
use dnc_data::Dataset;
use dnc_distill::{DistillTarget, Teacher};
use dnc_pipeline::{Run, RunConfig, Split, Stage, UNASSIGNED, load_assignments, load_encoder};
use std::collections::HashMap;
use std::path::Path;

/// The tiny config, distilled the paper's way from cached targets, without the baseline.
fn cached_config() -> RunConfig {
    let mut toml = common::tiny_config_toml();
    toml = toml.replace("baseline = true", "baseline = false");
    toml = toml.replace(
        "[distill]\nepochs = 1\n",
        "[distill]\nepochs = 3\ntargets = \"cached\"\nstudent_moclr_weight = 0.0\nlog_every = 1\n",
    );
    let cfg = RunConfig::from_toml(&toml).unwrap();
    assert_eq!(cfg.distill.targets, dnc_distill::TargetSource::Cached);
    cfg
}

fn targets_file(run: &Run) -> std::path::PathBuf {
    run.dir.root().join("distill/targets.safetensors")
}

fn load_targets(run: &Run) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(targets_file(run), &Device::Cpu).unwrap()
}

/// `info.distill.targets` of the summary.
fn targets_info(run: &Run) -> serde_json::Value {
    run.dir.read_summary().unwrap().info["distill"]["targets"].clone()
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// The distill stage's logged losses, in step order.
fn distill_losses(run: &Run) -> Vec<f64> {
    let metrics = std::fs::read_to_string(run.dir.metrics_path()).unwrap();
    metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["stage"] == "distill" && v["kind"] == "step")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn cached_targets_train_an_evaluated_student_match_the_teachers_and_survive_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    let run = Run::create(cached_config(), &dir.path().join("run")).unwrap();
    run.run_all(false).unwrap();

    // The cache: one row per training image, the projection's width (16), every image routed.
    let stored = load_targets(&run);
    assert_eq!(stored["projection.base"].dims(), [200, 16]);
    assert_eq!(stored["projection.experts"].dims(), [200, 16]);
    let clusters = load_assignments(&run, 200).unwrap();
    assert_eq!(stored["clusters"].to_vec1::<u32>().unwrap(), clusters);
    let info = targets_info(&run);
    assert_eq!(info["reused"], false, "{info}");
    assert_eq!(info["images"], 200, "{info}");

    // The student learnt from them and the run evaluates it.
    let losses = distill_losses(&run);
    assert!(losses.len() >= 10, "{losses:?}");
    assert!(
        losses[losses.len() - 1] < losses[0],
        "the regression loss did not decrease: {losses:?}"
    );
    let summary = run.dir.read_summary().unwrap();
    assert!(summary.is_done("eval"));
    let knn = summary.eval["dnc"].knn_top1;
    assert!((0.0..=1.0).contains(&knn), "{knn}");

    // Rows equal a direct forward of the base and the image's own expert on its centre crop.
    direct_forward_matches(&run, &stored, &clusters);

    // A stage killed after the cache was written resumes on the same file.
    let file = targets_file(&run);
    let before = modified(&file);
    for name in ["checkpoints", "student.safetensors", "model.safetensors"] {
        let path = run.dir.root().join("distill").join(name);
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    run.run_stage(Stage::Distill, true).unwrap();
    assert_eq!(modified(&file), before, "the cache was written again");
    assert_eq!(targets_info(&run)["reused"], true);
    assert!(run.dir.root().join("distill/model.safetensors").is_file());

    // A stale file (another split size) is computed again on resume; a fresh stage recomputes.
    let stale = HashMap::from([
        (
            "projection.base".to_string(),
            Tensor::zeros((5, 16), candle_core::DType::F32, &Device::Cpu).unwrap(),
        ),
        (
            "clusters".to_string(),
            Tensor::new(&[0u32; 5], &Device::Cpu).unwrap(),
        ),
    ]);
    candle_core::safetensors::save(&stale, &file).unwrap();
    run.run_stage(Stage::Distill, true).unwrap();
    assert_eq!(targets_info(&run)["reused"], false);
    assert_eq!(load_targets(&run)["projection.base"].dims(), [200, 16]);
    let before = modified(&file);
    run.run_stage(Stage::Distill, false).unwrap();
    assert_eq!(targets_info(&run)["reused"], false);
    assert_ne!(modified(&file), before);
}

/// A few rows of the cache against the teachers run on those images' centre crops here.
fn direct_forward_matches(run: &Run, stored: &HashMap<String, Tensor>, clusters: &[u32]) {
    let cfg = &run.cfg;
    let root = run.dir.root();
    let teacher = |path: &str| {
        let (_, vars) = load_encoder(&cfg.model, &root.join(path), &Device::Cpu).unwrap();
        Teacher::new(&cfg.model, vars, &Device::Cpu).unwrap()
    };
    let base = teacher("base/model.safetensors");
    let experts = [
        teacher("experts/expert-0/model.safetensors"),
        teacher("experts/expert-1/model.safetensors"),
    ];
    let train = dnc_pipeline::open_split(run, Split::Train).unwrap();
    let view = &cfg.augment.view1;
    let size = view.size as usize;
    for i in [0usize, 57, 123, 199] {
        let item = train.get(i).unwrap();
        let pixels =
            dnc_augment::eval_transform(&item.image, view.size, view.size, view.mean, view.std);
        let x = Tensor::from_vec(pixels, (1, 3, size, size), &Device::Cpu).unwrap();
        let c = clusters[i];
        assert_ne!(c, UNASSIGNED);
        for (name, t) in [("base", &base), ("experts", &experts[c as usize])] {
            let direct = t.target(&x, DistillTarget::Projection).unwrap();
            let cached = stored[&format!("projection.{name}")]
                .narrow(0, i, 1)
                .unwrap();
            let diff = (direct - cached)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-4, "image {i}, {name}: differs by {diff}");
        }
    }
}

/// The base distilled alone on its cached backbone features, beside the student's MoCLR term,
/// on the stages of a finished run: one matrix of the backbone's width, no experts' matrix.
#[test]
fn feature_targets_of_the_base_alone_are_cached_at_the_backbone_width() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cached_config();
    let donor = Run::create(cfg.clone(), &dir.path().join("donor")).unwrap();
    for stage in [Stage::Base, Stage::Embed, Stage::Cluster, Stage::Experts] {
        donor.run_stage(stage, false).unwrap();
    }
    cfg.distill.teachers = dnc_pipeline::Teachers::Base;
    cfg.distill.target_layer = DistillTarget::Features;
    cfg.distill.student_moclr_weight = 1.0;
    cfg.distill.epochs = 1;
    let run = Run::create(cfg, &dir.path().join("features")).unwrap();
    let shared = [Stage::Base, Stage::Embed, Stage::Cluster, Stage::Experts];
    run.adopt_stages(donor.dir.root(), &shared).unwrap();
    run.run_stage(Stage::Distill, false).unwrap();
    let stored = load_targets(&run);
    assert_eq!(stored["features.base"].dims(), [200, 32]);
    assert!(!stored.contains_key("features.experts"));
    assert!(!stored.contains_key("projection.base"));
    assert!(run.dir.root().join("distill/model.safetensors").is_file());
}

#[test]
fn the_targets_key_takes_augmented_or_cached_with_every_other_option() {
    let base = common::tiny_config_toml();
    let with = |extra: &str| {
        let toml = base.replace("[distill]\n", &format!("[distill]\n{extra}\n"));
        RunConfig::from_toml(&toml).and_then(|c| {
            dnc_pipeline::validate(&c)
                .map(|_| c)
                .map_err(|e| e.to_string())
        })
    };
    let cfg = with("").unwrap();
    assert_eq!(cfg.distill.targets, dnc_distill::TargetSource::Augmented);
    for extra in [
        "targets = \"augmented\"",
        "targets = \"cached\"",
        "targets = \"cached\"\nstudent_moclr_weight = 1.0",
        "targets = \"cached\"\nhead_init = \"random\"\ncontrastive_weight = 0.5",
        "targets = \"cached\"\ntarget_layer = \"features\"",
        "targets = \"cached\"\nteachers = \"base\"",
    ] {
        with(extra).unwrap_or_else(|e| panic!("{extra}: {e}"));
    }
    let err = with("targets = \"centre\"").unwrap_err();
    assert!(err.contains("targets") && err.contains("centre"), "{err}");
}
