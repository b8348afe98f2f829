//! Tests of the export: file contents, torchvision names and counters, and export → import.

use super::*;
use crate::card::Accuracy;
use crate::load::load_into;
use crate::naming::Naming;
use candle_core::DType;
use dnc_core::SeededVarMap;
use dnc_models::Backbone;
use safetensors::SafeTensors;
use safetensors::tensor::Dtype as StDtype;

fn resnet18_cifar() -> BackboneConfig {
    BackboneConfig {
        arch: Arch::Resnet18,
        stem: Stem::Cifar,
        ..Default::default()
    }
}

/// A backbone under `prefix`, seeded, plus one projector variable that must not be exported.
fn model(cfg: &BackboneConfig, prefix: &str, seed: u64) -> SeededVarMap {
    let map = SeededVarMap::new(seed);
    let vb = map.var_builder(DType::F32, &Device::Cpu);
    let vb = if prefix.is_empty() {
        vb
    } else {
        vb.pp(prefix.trim_end_matches('.'))
    };
    Backbone::new(cfg, vb).unwrap();
    let proj = map.var_builder(DType::F32, &Device::Cpu);
    proj.get((4, 4), "projector.0.weight").unwrap();
    map
}

fn card() -> ModelCard {
    let mut card = ModelCard::new("dnc");
    card.training_config = Some("seed = 3\n[model.backbone]\narch = \"resnet18\"\n".into());
    let acc = Accuracy {
        knn_top1: Some(0.5),
        linear_top1: Some(0.625),
    };
    card.accuracies.insert("dnc".into(), acc);
    card
}

#[test]
fn export_writes_torchvision_names_f32_and_int64_counters() {
    let cfg = resnet18_cifar();
    let map = model(&cfg, "backbone.", 1);
    let dir = tempfile::tempdir().unwrap();
    let files = export_backbone(
        map.varmap(),
        "backbone.",
        &BackboneInfo::new(&cfg),
        dir.path(),
        &card(),
    )
    .unwrap();
    let bytes = std::fs::read(&files.weights).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");
    let names = st.names();
    let backbone_vars = map.varmap().all_vars().len() - 1;
    let norms = names
        .iter()
        .filter(|n| n.ends_with(".running_mean"))
        .count();
    assert_eq!(norms, 20, "ResNet-18 has 20 BatchNorms");
    assert_eq!(names.len(), backbone_vars + norms);
    for name in [
        "conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer4.1.bn2.running_var",
    ] {
        assert_eq!(st.tensor(name).unwrap().dtype(), StDtype::F32, "{name}");
    }
    assert_eq!(st.tensor("conv1.weight").unwrap().shape(), &[64, 3, 3, 3]);
    for name in names.iter().filter(|n| n.ends_with("num_batches_tracked")) {
        let view = st.tensor(name).unwrap();
        assert_eq!(
            (view.dtype(), view.shape()),
            (StDtype::I64, &[][..]),
            "{name}"
        );
        assert!(names.contains(&name.replace("num_batches_tracked", "running_mean").as_str()));
    }
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with("backbone.") && !n.starts_with("projector"))
    );
    assert!(names.iter().all(|n| !n.starts_with("fc.")));
}

#[test]
fn export_then_import_gives_identical_tensors() {
    let cfg = resnet18_cifar();
    let source = model(&cfg, "backbone.", 1);
    let dir = tempfile::tempdir().unwrap();
    let info = BackboneInfo::new(&cfg);
    let files = export_backbone(source.varmap(), "backbone.", &info, dir.path(), &card()).unwrap();
    let target = model(&cfg, "student.", 2);
    let report = load_into(target.varmap(), "student.", &files.weights, Naming::Auto).unwrap();
    assert_eq!(report.naming, Naming::Torchvision);
    assert_eq!(report.ignored.len(), 20);
    assert!(
        report
            .ignored
            .iter()
            .all(|n| n.ends_with("num_batches_tracked"))
    );
    let src = source.varmap().data().lock().unwrap();
    let dst = target.varmap().data().lock().unwrap();
    let mut compared = 0;
    for (name, var) in src.iter() {
        if let Some(bare) = name.strip_prefix("backbone.") {
            let a = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let b = dst[&format!("student.{bare}")].as_tensor();
            assert_eq!(
                a,
                b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                "{name}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, report.loaded);
    assert_eq!(
        compared,
        20 + 20 * 4,
        "ResNet-18: 20 convolutions and 20 BatchNorms"
    );
}

#[test]
fn config_json_is_timm_config_plus_a_dnc_section_and_the_card_is_written() {
    let cfg = BackboneConfig {
        arch: Arch::Resnet18,
        ..Default::default()
    };
    let map = model(&cfg, "backbone.", 0);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let files = export_backbone(
        map.varmap(),
        "backbone.",
        &BackboneInfo::new(&cfg),
        &out,
        &card(),
    )
    .unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files.config).unwrap()).unwrap();
    assert_eq!(config["architecture"], "resnet18");
    assert_eq!(
        (
            config["num_classes"].as_u64(),
            config["num_features"].as_u64()
        ),
        (Some(0), Some(512))
    );
    assert_eq!(config["pretrained_cfg"]["input_size"], json!([3, 224, 224]));
    assert_eq!(config["pretrained_cfg"]["classifier"], "fc");
    let dnc = &config["dnc"];
    assert_eq!(
        (dnc["arch"].as_str(), dnc["stem"].as_str()),
        (Some("resnet18"), Some("imagenet"))
    );
    assert_eq!(dnc["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(dnc["accuracy"]["linear_top1"], 0.625);
    assert_eq!(
        dnc["training_config"],
        json!({"seed": 3, "model": {"backbone": {"arch": "resnet18"}}})
    );
    let md = std::fs::read_to_string(&files.card).unwrap();
    assert!(
        md.starts_with("---\nlibrary_name: timm\n")
            && md.contains("| **dnc** | **50.00** | **62.50** |")
    );
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 3, "{leftovers:?}");
}

#[test]
fn half_precision_models_export_f32_and_bad_inputs_are_reported() {
    let cfg = BackboneConfig {
        arch: Arch::Tiny,
        tiny_widths: vec![4, 8],
        ..Default::default()
    };
    let map = SeededVarMap::new(0);
    Backbone::new(
        &cfg,
        map.var_builder(DType::F16, &Device::Cpu).pp("backbone"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let info = BackboneInfo::new(&cfg);
    let files = export_backbone(
        map.varmap(),
        "backbone.",
        &info,
        dir.path(),
        &ModelCard::new("base"),
    )
    .unwrap();
    let bytes = std::fs::read(&files.weights).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert!(
        st.iter()
            .all(|(_, v)| matches!(v.dtype(), StDtype::F32 | StDtype::I64))
    );
    let config = std::fs::read_to_string(&files.config).unwrap();
    assert!(
        config.contains("\"architecture\": \"tiny\"")
            && config.contains("\"training_config\": null")
    );
    let err = export_backbone(
        map.varmap(),
        "teacher.",
        &info,
        dir.path(),
        &ModelCard::new("x"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("teacher."), "{err}");
    let mut bad = ModelCard::new("x");
    bad.training_config = Some("not = [toml".into());
    let err = export_backbone(map.varmap(), "backbone.", &info, dir.path(), &bad).unwrap_err();
    assert!(err.to_string().contains("TOML"), "{err}");
}
