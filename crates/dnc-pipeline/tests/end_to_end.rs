//! The whole pipeline on the fixtures: every artifact of the run-directory contract, and proof
//! (from the loaders' own accounting) that each expert saw only its cluster's images.

mod common;

use dnc_pipeline::{Run, RunConfig, Stage, UNASSIGNED, load_assignments};
use std::collections::BTreeSet;

#[test]
fn pipeline_writes_every_artifact_and_experts_see_only_their_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut cfg = RunConfig::from_toml(&common::tiny_config_toml()).unwrap();
    // The clusters are also scored against two groups of CIFAR's classes.
    let groups = dir.path().join("groups.json");
    let vehicles = ["airplane", "automobile", "ship", "truck"];
    let classes = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ];
    let map: serde_json::Map<String, serde_json::Value> = classes
        .iter()
        .map(|c| {
            let group = if vehicles.contains(c) {
                "vehicle"
            } else {
                "animal"
            };
            (c.to_string(), group.into())
        })
        .collect();
    std::fs::write(&groups, serde_json::Value::Object(map).to_string()).unwrap();
    cfg.eval.class_groups = Some(groups);
    let run = Run::create(cfg, &out).unwrap();
    assert_eq!(
        run.stages(),
        [
            Stage::Base,
            Stage::Embed,
            Stage::Cluster,
            Stage::Experts,
            Stage::Distill,
            Stage::Baseline,
            Stage::Eval
        ]
    );
    run.run_all(false).unwrap();

    for file in [
        "config.toml",
        "summary.json",
        "metrics.jsonl",
        "report.md",
        "loss.png",
        "base/model.safetensors",
        "embed/features/hidden.npy",
        "embed/features/indices.npy",
        "cluster/assignments.safetensors",
        "cluster/sizes.json",
        "cluster/composition.png",
        "cluster/examples.png",
        "experts/expert-0/model.safetensors",
        "experts/expert-1/model.safetensors",
        "distill/model.safetensors",
        "distill/student.safetensors",
        "baseline/model.safetensors",
        "diagnostics.png",
    ] {
        assert!(out.join(file).is_file(), "missing {file}");
    }
    assert!(out.join("base/checkpoints").read_dir().unwrap().count() > 0);
    assert!(
        !out.join("distill/start.safetensors").exists(),
        "a student from scratch has no merged start"
    );

    let summary = run.dir.read_summary().unwrap();
    for stage in run.stages() {
        assert!(summary.is_done(stage.name()), "{stage} not done");
        assert!(summary.stages[stage.name()].seconds >= 0.0);
    }
    for model in ["untrained", "untrained-bn", "base", "dnc", "baseline"] {
        let e = &summary.eval[model];
        assert!((0.0..=1.0).contains(&e.knn_top1), "{model}: {}", e.knn_top1);
        assert!(e.linear_top1.is_some(), "{model} has no linear probe");
        assert_eq!(e.knn_per_class.len(), 10);
    }
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(raw["stages"]["distill"]["done"], true);
    let scored = &raw["info"]["cluster_groups"];
    assert_eq!(scored["groups"], serde_json::json!(["vehicle", "animal"]));
    let grouped: u64 = scored["composition"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|n| n.as_u64().unwrap())
        .sum();
    // Every image of the 200-image train subset, once.
    assert_eq!(grouped, 200);
    // Six of ten classes are animals: no partition scores below 0.6.
    assert!((0.6..=1.0).contains(&scored["purity"].as_f64().unwrap()));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("Against the 2 class groups of"), "{report}");
    assert!(raw["eval"]["dnc"]["knn_top1"].is_number());
    // Few-label probes with the default fractions: 1% and 10% of 20 bank images per class.
    let few = raw["eval"]["base"]["few_label"]
        .as_array()
        .expect("few-label scores of the base");
    assert_eq!(few.len(), 2, "{few:?}");
    for (score, (fraction, items)) in few.iter().zip([(0.01, 10), (0.1, 20)]) {
        assert_eq!(score["fraction"], fraction, "{score}");
        assert_eq!(
            (&score["draws"], &score["items"]),
            (&3.into(), &items.into())
        );
        let per_draw: Vec<f64> = serde_json::from_value(score["top1_per_draw"].clone()).unwrap();
        assert_eq!(per_draw.len(), 3, "{score}");
        assert!(per_draw.iter().all(|t| (0.0..=1.0).contains(t)), "{score}");
        let mean = score["top1_mean"].as_f64().unwrap();
        assert!((mean - per_draw.iter().sum::<f64>() / 3.0).abs() < 1e-12);
    }

    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let stages: BTreeSet<String> = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["stage"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for s in ["base", "expert-0", "expert-1", "distill", "baseline"] {
        assert!(stages.contains(s), "no metrics for {s}");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("| untrained |") && report.contains("| dnc |"),
        "{report}"
    );
    assert!(
        report.contains("| linear top-1 | linear 1% | linear 10% |"),
        "{report}"
    );
    assert!(report.contains("## Clusters"));
    assert!(
        report.contains("## Diagnostics") && report.contains("**Verdict:**"),
        "{report}"
    );
    assert!(report.contains("](diagnostics.png)"), "{report}");

    // Diagnostics: K per-cluster rows, a ceiling accuracy, a fidelity row per head.
    let d = &raw["info"]["diagnostics"];
    assert_eq!(d["k"], 2, "{d}");
    let rows = d["clusters"].as_array().expect("per-cluster rows");
    assert_eq!(rows.len(), 2, "{d}");
    let (mut bank, mut test) = (0, 0);
    for (c, row) in rows.iter().enumerate() {
        assert_eq!(row["cluster"], c);
        bank += row["n_train"].as_u64().unwrap();
        test += row["n_test"].as_u64().unwrap();
        for key in ["base", "expert", "student"] {
            let v = row[key]
                .as_f64()
                .unwrap_or_else(|| panic!("cluster {c} {key}: {row}"));
            assert!((0.0..=1.0).contains(&v), "{row}");
        }
        let delta = row["expert"].as_f64().unwrap() - row["base"].as_f64().unwrap();
        assert!(
            (row["delta"].as_f64().unwrap() - delta).abs() < 1e-12,
            "{row}"
        );
    }
    assert_eq!((bank, test), (200, 100), "every image is routed once: {d}");
    let ceiling = d["ceiling"]["knn_top1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ceiling), "{d}");
    assert_eq!(d["ceiling"]["base"], raw["eval"]["base"]["knn_top1"]);
    assert_eq!(d["ceiling"]["student"], raw["eval"]["dnc"]["knn_top1"]);
    let fidelity = d["fidelity"].as_array().expect("fidelity rows");
    let teachers: Vec<&str> = fidelity
        .iter()
        .map(|f| f["teacher"].as_str().unwrap())
        .collect();
    assert_eq!(teachers, ["base", "expert-0", "expert-1"], "{d}");
    assert_eq!(fidelity[0]["n"], 100);
    for f in fidelity {
        let cos = f["mean_cosine"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&cos), "{f}");
    }
    assert!(d["verdict"].as_str().unwrap().contains("clusters"), "{d}");

    // The loader's accounting: every image an expert was fed belongs to its cluster.
    let clusters = load_assignments(&run, 200).unwrap();
    for k in 0..2u32 {
        let served: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("experts/expert-{k}/served.json"))).unwrap(),
        )
        .unwrap();
        let indices: Vec<usize> = serde_json::from_value(served["indices"].clone()).unwrap();
        assert!(!indices.is_empty(), "expert {k} saw no image");
        for i in indices {
            assert_eq!(
                clusters[i], k,
                "expert {k} was fed image {i} of cluster {}",
                clusters[i]
            );
        }
    }
}

#[test]
fn stages_refuse_to_run_before_what_they_need() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RunConfig::from_toml(&common::tiny_config_toml()).unwrap();
    let run = Run::create(cfg, &dir.path().join("run")).unwrap();
    let err = run
        .run_stage(Stage::Cluster, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cluster") && err.contains("embed"), "{err}");
}

#[test]
fn bad_configs_name_the_key() {
    let text = common::tiny_config_toml().replace("[eval]", "[eval]\nbogus = 1");
    let err = RunConfig::from_toml(&text).unwrap_err();
    assert!(err.contains("bogus"), "{err}");
    let text = common::tiny_config_toml().replace(
        "batch_size = 32\ncheckpoint_every = 2\nlog_every",
        "batch_size = 1\ncheckpoint_every = 2\nlog_every",
    );
    let cfg = RunConfig::from_toml(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = Run::create(cfg, &dir.path().join("run"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("base.batch_size"), "{err}");
    let text = common::tiny_config_toml().replace(
        "[eval.linear]\nepochs = 5",
        "[eval.linear]\nepochs = 5\nfew_label_fractions = [0.01, 1.5]",
    );
    let cfg = RunConfig::from_toml(&text).unwrap();
    let err = Run::create(cfg, &dir.path().join("run-few"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("few_label_fractions") && err.contains("1.5"),
        "{err}"
    );
}

#[test]
fn a_missing_data_folder_is_an_error_naming_it() {
    let text = common::tiny_config_toml().replace("cifar10-mini", "no-such-folder");
    let cfg = RunConfig::from_toml(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = Run::create(cfg, &dir.path().join("run")).unwrap();
    let err = run.run_stage(Stage::Base, false).unwrap_err().to_string();
    assert!(err.contains("no-such-folder"), "{err}");
}

#[test]
fn init_from_loads_pretrained_backbone_weights() {
    use candle_core::Device;
    let dir = tempfile::tempdir().unwrap();
    // A "pretrained" backbone: a fresh encoder of another seed, exported with torchvision names.
    let cfg = RunConfig::from_toml(&common::tiny_config_toml()).unwrap();
    let (_, donor) = dnc_pipeline::fresh_encoder(&cfg.model, 1234, &Device::Cpu).unwrap();
    let info = dnc_hub::BackboneInfo::new(&cfg.model.backbone);
    let export = dir.path().join("export");
    dnc_hub::export_backbone(
        &donor,
        "backbone.",
        &info,
        &export,
        &dnc_hub::ModelCard::new("donor"),
    )
    .unwrap();

    let text = common::tiny_config_toml()
        .replace(
            "method = \"dnc\"",
            &format!(
                "method = \"moclr\"\ninit_from = \"{}\"",
                export.join("model.safetensors").display()
            ),
        )
        .replace(
            "epochs = 2\nbatch_size = 32\ncheckpoint_every = 2",
            "epochs = 1\nbatch_size = 32\ncheckpoint_every = 2",
        )
        .replace(
            "kind = \"sgd\"\nbase_lr = 0.05\n\n[divide",
            "kind = \"sgd\"\nbase_lr = 1e-12\n\n[divide",
        );
    let cfg = RunConfig::from_toml(&text).unwrap();
    let run = Run::create(cfg.clone(), &dir.path().join("run")).unwrap();
    run.run_stage(Stage::Base, false).unwrap();
    let info = run.dir.read_summary().unwrap().info["init_from"].clone();
    assert_eq!(info["tensors"], 15, "{info}"); // 3 stages × (conv weight + 4 BatchNorm tensors)
    let (_, trained) = dnc_pipeline::load_encoder(
        &cfg.model,
        &run.dir.root().join("base/model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let w = |m: &candle_nn::VarMap| {
        m.data().lock().unwrap()["backbone.features.4.weight"]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let (a, b) = (w(&donor), w(&trained));
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        diff < 1e-6,
        "the base did not start from the donor's weights (max diff {diff})"
    );
}

#[test]
fn every_preset_in_configs_loads_and_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg = RunConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            dnc_pipeline::validate(&cfg).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 5, "only {seen} presets in {}", dir.display());
}

/// The paper's two controls: a random partition with the k-means sizes, and the base distilled
/// alone (one head, one fidelity row); its student starts from the experts' summed changes,
/// which loads the experts although none of them is a teacher.
#[test]
fn random_partition_keeps_the_cluster_sizes_and_base_only_distillation_has_one_head() {
    let dir = tempfile::tempdir().unwrap();
    let toml = common::tiny_config_toml();
    let kmeans = Run::create(
        RunConfig::from_toml(&toml).unwrap(),
        &dir.path().join("kmeans"),
    )
    .unwrap();
    for stage in [Stage::Base, Stage::Embed, Stage::Cluster] {
        kmeans.run_stage(stage, false).unwrap();
    }
    let mut cfg = RunConfig::from_toml(&toml).unwrap();
    cfg.experts.partition = dnc_pipeline::Partition::Random;
    cfg.distill.teachers = dnc_pipeline::Teachers::Base;
    cfg.experts.init = dnc_pipeline::Init::Base;
    cfg.distill.init = dnc_pipeline::StudentInit::ExpertSum;
    cfg.baseline = false;
    let random = Run::create(cfg, &dir.path().join("random")).unwrap();
    random.run_all(false).unwrap();

    let (a, b) = (
        load_assignments(&kmeans, 200).unwrap(),
        load_assignments(&random, 200).unwrap(),
    );
    let sizes = |labels: &[u32]| {
        let mut s = [0usize; 2];
        labels.iter().for_each(|&l| s[l as usize] += 1);
        s
    };
    assert_eq!(
        sizes(&a),
        sizes(&b),
        "a random partition keeps the k-means sizes"
    );
    assert_ne!(a, b, "the random partition is not the k-means one");

    let student = candle_core::safetensors::load(
        random.dir.root().join("distill/student.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert!(student.keys().any(|k| k.starts_with("heads.0.")));
    assert!(
        !student.keys().any(|k| k.starts_with("heads.1.")),
        "base alone: one head"
    );
    let summary = random.dir.read_summary().unwrap();
    assert!(
        random
            .dir
            .root()
            .join("distill/start.safetensors")
            .is_file()
    );
    assert!(
        summary.eval.contains_key("dnc-start"),
        "the merged start is evaluated beside the student"
    );
    let fidelity = summary.info["diagnostics"]["fidelity"].as_array().unwrap();
    assert_eq!(fidelity.len(), 1);
    assert_eq!(fidelity[0]["teacher"], "base");
}

/// A copy of the first `train` and `test` images of every fixtures class.
fn small_tree(root: &std::path::Path, train: usize, test: usize) {
    for (split, n) in [("train", train), ("test", test)] {
        let src = common::fixtures().join(split);
        let mut classes: Vec<_> = std::fs::read_dir(&src)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        classes.sort();
        for class in classes {
            let mut files: Vec<_> = std::fs::read_dir(&class)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            let dst = root.join(split).join(class.file_name().unwrap());
            std::fs::create_dir_all(&dst).unwrap();
            for f in &files[..n] {
                std::fs::copy(f, dst.join(f.file_name().unwrap())).unwrap();
            }
        }
    }
}

#[test]
fn unreadable_files_and_unlabelled_folders_run_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    small_tree(&data, 10, 5);
    // Two files no stage can read, and five unlabelled images in a `~distractors` folder.
    std::fs::write(data.join("train/cat/empty.jpg"), b"").unwrap();
    std::fs::write(
        data.join("train/dog/junk.png"),
        b"these bytes are not a PNG",
    )
    .unwrap();
    let distractors = data.join("train/~distractors");
    std::fs::create_dir_all(&distractors).unwrap();
    for (i, f) in std::fs::read_dir(data.join("test/ship"))
        .unwrap()
        .enumerate()
    {
        std::fs::copy(f.unwrap().path(), distractors.join(format!("d{i}.jpg"))).unwrap();
    }
    let text = common::tiny_config_toml()
        .replace(
            &common::fixtures().display().to_string(),
            &data.display().to_string(),
        )
        .replace("train_limit = 200", "train_limit = 0")
        .replace("test_limit = 100", "test_limit = 0");
    let cfg = RunConfig::from_toml(&text).unwrap();
    let out = dir.path().join("run");
    let run = Run::create(cfg, &out).unwrap();
    run.run_all(false).unwrap();

    // 100 labelled + 5 distractors + 2 unreadable training images; the two have no cluster.
    let clusters = load_assignments(&run, 107).unwrap();
    let unassigned = clusters.iter().filter(|&&c| c == UNASSIGNED).count();
    assert_eq!(unassigned, 2);
    let experts = std::fs::read_dir(out.join("experts")).unwrap().count();
    assert_eq!(experts, 2, "one expert per cluster");
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(raw["info"]["base_training"]["skipped_images"], 2, "{raw}");
    // Every stage that reads the two files counts and names them; the experts never see them.
    for (stage, count) in [("base", 2), ("embed", 2), ("experts", 0), ("eval", 2)] {
        let skipped = &raw["info"][stage]["skipped"];
        assert_eq!(skipped["count"], count, "{stage}: {skipped}");
        let named = skipped["examples"].to_string();
        assert_eq!(
            named.contains("empty.jpg") && named.contains("junk.png"),
            count == 2,
            "{stage}: {named}"
        );
    }
    // Distractors are neither a class nor scored: ten classes, and the diagnostics' bank holds
    // the 100 labelled images.
    assert_eq!(
        raw["eval"]["dnc"]["knn_per_class"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    let composition = raw["info"]["cluster"]["composition"].as_array().unwrap();
    assert_eq!(composition[0].as_array().unwrap().len(), 10, "{raw}");
    let bank: u64 = raw["info"]["diagnostics"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["n_train"].as_u64().unwrap())
        .sum();
    assert_eq!(bank, 100);
}

#[test]
fn re_running_a_stage_marks_the_stages_after_it_not_done() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::tiny_config_toml().replace("baseline = true", "baseline = false");
    let cfg = RunConfig::from_toml(&text).unwrap();
    let run = Run::create(cfg, &dir.path().join("run")).unwrap();
    run.run_all(false).unwrap();
    assert!(!run.dir.read_summary().unwrap().eval.is_empty());
    // A re-run of the cluster stage that fails (its input is gone) leaves the experts,
    // distillation and evaluation stale, and no old accuracy behind.
    std::fs::remove_dir_all(dir.path().join("run/embed/features")).unwrap();
    assert!(run.run_stage(Stage::Cluster, false).is_err());
    let summary = run.dir.read_summary().unwrap();
    for stage in ["cluster", "experts", "distill", "eval"] {
        assert!(!summary.is_done(stage), "{stage} still marked done");
    }
    assert!(summary.is_done("base") && summary.is_done("embed"));
    assert!(summary.eval.is_empty() && !summary.info.contains_key("diagnostics"));
    let err = run
        .run_stage(Stage::Distill, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("experts"), "{err}");
}

#[test]
fn an_unlabelled_tree_trains_to_the_end_and_evaluates_on_eval_data() {
    let dir = tempfile::tempdir().unwrap();
    let labelled = dir.path().join("labelled");
    small_tree(&labelled, 10, 5);
    // The same 100 training images, nested a few levels deep without class folders.
    let tree = dir.path().join("photos");
    for (i, f) in walk(&labelled.join("train")).into_iter().enumerate() {
        let dst = tree.join(format!("{}/{}/{}", i % 3, i % 5, i % 2));
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::copy(&f, dst.join(format!("p{i}.jpg"))).unwrap();
    }
    let base = common::tiny_config_toml()
        .replace("baseline = true", "baseline = false")
        .replace("train_limit = 200", "train_limit = 0")
        .replace("test_limit = 100", "test_limit = 0")
        .replace(
            "[data]\n",
            &format!("[data]\ntrain = {:?}\n", tree.display().to_string()),
        );

    let run = Run::create(RunConfig::from_toml(&base).unwrap(), &dir.path().join("a")).unwrap();
    run.run_all(false).unwrap();
    let summary = run.dir.read_summary().unwrap();
    assert!(summary.is_done("eval") && summary.eval.is_empty());
    assert!(summary.info["eval"]["not_run"].is_string());
    let sizes: u64 = summary.info["cluster"]["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(sizes, 100);
    let report = std::fs::read_to_string(dir.path().join("a/report.md")).unwrap();
    assert!(report.contains("No accuracy"), "{report}");
    // Without labels the report shows each cluster's images instead: up to 10 per cluster,
    // every one a member of its cluster, in a grid with a row per cluster.
    assert!(report.contains("cluster/examples.png"), "{report}");
    let examples = summary.info["cluster"]["examples"].as_array().unwrap();
    let k = summary.info["cluster"]["k"].as_u64().unwrap() as usize;
    assert_eq!(examples.len(), k);
    assert!(
        examples
            .iter()
            .all(|e| (1..=10).contains(&e.as_array().unwrap().len()))
    );
    let grid = image::open(dir.path().join("a/cluster/examples.png")).unwrap();
    assert_eq!(
        (grid.width(), grid.height()),
        (10 * 50 + 2, k as u32 * 50 + 2)
    );

    let with_eval = base.replace(
        "[eval]\n",
        &format!("[eval]\ndata = {:?}\n", labelled.display().to_string()),
    );
    let cfg = RunConfig::from_toml(&with_eval).unwrap();
    let run = Run::create(cfg, &dir.path().join("b")).unwrap();
    run.run_all(false).unwrap();
    let summary = run.dir.read_summary().unwrap();
    assert_eq!(summary.eval["dnc"].knn_per_class.len(), 10);
}

#[test]
fn a_list_file_and_shards_of_the_same_images_train_the_same_base() {
    let dir = tempfile::tempdir().unwrap();
    let labelled = dir.path().join("labelled");
    small_tree(&labelled, 6, 1);
    let mut images = walk(&labelled.join("train"));
    images.reverse();
    let list = dir.path().join("lists/train.txt");
    std::fs::create_dir_all(list.parent().unwrap()).unwrap();
    let lines: Vec<String> = images
        .iter()
        .map(|p| {
            format!(
                "../labelled/{}",
                p.strip_prefix(&labelled).unwrap().display()
            )
        })
        .collect();
    std::fs::write(&list, format!("# reversed\n{}\n", lines.join("\n"))).unwrap();
    let written = dnc_data::write_shards(&images, &dir.path().join("shards"), 25).unwrap();
    assert_eq!((written.images, written.shards.len()), (60, 3));
    let pattern = dir.path().join("shards/{000000..000002}.tar");

    // The same images in another order: a different base, so the comparison can fail.
    let sorted = dir.path().join("lists/sorted.txt");
    std::fs::write(
        &sorted,
        format!("{}\n", {
            let mut l = lines.clone();
            l.sort();
            l.join("\n")
        }),
    )
    .unwrap();

    let mut weights = Vec::new();
    for (name, train, buffer) in [
        ("list", &list, 0),
        ("shards", &pattern, 0),
        ("sorted", &sorted, 0),
        ("buffered", &pattern, 16),
        ("buffered-again", &pattern, 16),
    ] {
        let text = common::tiny_config_toml()
            .replace("train_limit = 200", "train_limit = 0")
            .replace(
                "[data]\n",
                &format!(
                    "[data]\ntrain = {:?}\nshuffle_buffer = {buffer}\n",
                    train.display().to_string()
                ),
            );
        let out = dir.path().join(name);
        let run = Run::create(RunConfig::from_toml(&text).unwrap(), &out).unwrap();
        run.run_stage(Stage::Base, false).unwrap();
        weights.push(std::fs::read(out.join("base/model.safetensors")).unwrap());
    }
    assert!(
        weights[0] == weights[1],
        "the same images in the same order"
    );
    assert!(
        weights[0] != weights[2],
        "another order trains another base"
    );
    // Shards read through a shuffle buffer: another order, the same one every time.
    assert!(weights[3] != weights[1] && weights[3] == weights[4]);
}

#[test]
fn training_data_without_one_readable_image_fails_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos/deep");
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::write(photos.join("a.jpg"), b"").unwrap();
    std::fs::write(photos.join("b.png"), b"not a png").unwrap();
    let text = common::tiny_config_toml()
        .replace("train_limit = 200", "train_limit = 0")
        .replace(
            "[data]\n",
            &format!(
                "[data]\ntrain = {:?}\n",
                dir.path().join("photos").display().to_string()
            ),
        );
    let cfg = RunConfig::from_toml(&text).unwrap();
    assert_eq!(cfg.data.on_corrupt, dnc_data::OnCorrupt::Skip);
    let run = Run::create(cfg, &dir.path().join("run")).unwrap();
    let err = run.run_stage(Stage::Base, false).unwrap_err().to_string();
    assert!(
        err.contains("none of the 2 images") && err.contains("a.jpg"),
        "{err}"
    );
    assert!(!dir.path().join("run/base/model.safetensors").exists());
}

#[test]
fn more_clusters_than_images_and_a_batch_larger_than_the_data_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::tiny_config_toml().replace("baseline = true", "baseline = false");
    let mut doc: toml::Value = toml::from_str(&text).unwrap();
    doc["divide"]["kmeans"]["n_clusters"] = toml::Value::Integer(500);
    let cfg = RunConfig::from_toml(&toml::to_string(&doc).unwrap()).unwrap();
    let run = Run::create(cfg, &dir.path().join("k")).unwrap();
    for stage in [Stage::Base, Stage::Embed] {
        run.run_stage(stage, false).unwrap();
    }
    let err = run
        .run_stage(Stage::Cluster, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("500") && err.contains("200"), "{err}");

    let mut doc: toml::Value = toml::from_str(&text).unwrap();
    doc["base"]["batch_size"] = toml::Value::Integer(1000);
    let cfg = RunConfig::from_toml(&toml::to_string(&doc).unwrap()).unwrap();
    let run = Run::create(cfg, &dir.path().join("batch")).unwrap();
    let err = run.run_stage(Stage::Base, false).unwrap_err().to_string();
    assert!(
        err.contains("base.batch_size") && err.contains("1000") && err.contains("200"),
        "{err}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}
