//! Tests of checkpoint loading: dtypes, ignored extras, naming conventions and the error listing.

use super::*;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use std::path::Path;

/// A small model: the names of a ResNet's stem, a basic block and a downsample.
const MODEL: [(&str, &[usize]); 8] = [
    ("conv1.weight", &[4, 3, 3, 3]),
    ("bn1.weight", &[4]),
    ("bn1.running_var", &[4]),
    ("layer1.0.conv1.weight", &[4, 4, 3, 3]),
    ("layer1.0.bn2.running_mean", &[4]),
    ("layer2.0.downsample.0.weight", &[8, 4, 1, 1]),
    ("layer2.0.downsample.1.bias", &[8]),
    ("layer2.0.conv2.weight", &[8, 8, 3, 3]),
];

/// Distinct, exactly representable values for tensor number `k`.
fn values(k: usize, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| k as f32 + (i % 64) as f32 / 64.0).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// A map with every model variable under `prefix`, all zeros.
fn model(prefix: &str) -> VarMap {
    let map = VarMap::new();
    {
        let mut data = map.data().lock().unwrap();
        for (name, shape) in MODEL {
            let var = Var::zeros(shape, DType::F32, &Device::Cpu).unwrap();
            data.insert(format!("{prefix}{name}"), var);
        }
    }
    map
}

fn write(path: &Path, tensors: Vec<(String, Tensor)>) {
    let map: HashMap<String, Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&map, path).unwrap();
}

/// The model's tensors under the names `rename` gives, in `dtype`.
fn checkpoint(rename: impl Fn(&str) -> String, dtype: DType) -> Vec<(String, Tensor)> {
    MODEL
        .iter()
        .enumerate()
        .map(|(k, (name, shape))| (rename(name), values(k, shape).to_dtype(dtype).unwrap()))
        .collect()
}

fn get(map: &VarMap, name: &str) -> Tensor {
    map.data().lock().unwrap()[name].as_tensor().clone()
}

fn assert_loaded(map: &VarMap, prefix: &str, dtype: DType) {
    for (k, (name, shape)) in MODEL.iter().enumerate() {
        let want = values(k, shape)
            .to_dtype(dtype)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let got = get(map, &format!("{prefix}{name}"));
        dnc_core::testing::assert_close(&got, &want, 0.0);
    }
}

#[test]
fn f32_file_fills_prefixed_variables_and_ignores_counters_and_head() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let mut tensors = checkpoint(str::to_string, DType::F32);
    let counter = Tensor::new(7i64, &Device::Cpu).unwrap();
    tensors.push(("bn1.num_batches_tracked".into(), counter));
    tensors.push(("fc.weight".into(), values(9, &[10, 8])));
    tensors.push(("fc.bias".into(), values(9, &[10])));
    write(&path, tensors);
    let map = model("backbone.");
    map.data().lock().unwrap().insert(
        "projector.weight".into(),
        Var::zeros((2, 2), DType::F32, &Device::Cpu).unwrap(),
    );
    let report = load_into(&map, "backbone.", &path, Naming::Auto).unwrap();
    assert_loaded(&map, "backbone.", DType::F32);
    assert_eq!(report.naming, Naming::Torchvision);
    assert_eq!(report.loaded, MODEL.len());
    assert_eq!(
        report.ignored,
        ["bn1.num_batches_tracked", "fc.bias", "fc.weight"]
    );
    assert_eq!(
        report.source_dtypes,
        BTreeMap::from([("F32".to_string(), MODEL.len())])
    );
    let untouched = get(&map, "projector.weight")
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(untouched, 0.0);
}

#[test]
fn half_precision_and_f64_files_load_into_f32_models() {
    let dir = tempfile::tempdir().unwrap();
    for (dtype, label) in [
        (DType::F16, "F16"),
        (DType::BF16, "BF16"),
        (DType::F64, "F64"),
    ] {
        let path = dir.path().join(format!("{label}.safetensors"));
        write(&path, checkpoint(str::to_string, dtype));
        let map = model("");
        let report = load_into(&map, "", &path, Naming::Torchvision).unwrap();
        assert_loaded(&map, "", dtype);
        assert_eq!(
            report.source_dtypes,
            BTreeMap::from([(label.to_string(), MODEL.len())])
        );
        assert_eq!(get(&map, "conv1.weight").dtype(), DType::F32);
    }
}

#[test]
fn load_weights_returns_checked_tensors_in_the_requested_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    write(&path, checkpoint(str::to_string, DType::BF16));
    let expected: Vec<(String, Shape)> = MODEL[..3]
        .iter()
        .map(|(n, s)| (n.to_string(), Shape::from(s.to_vec())))
        .collect();
    // The other five model tensors are in the file but not asked for: unexpected.
    let err = load_weights(&path, &expected, Naming::Auto, DType::F32, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("5 unexpected"), "{err}");
    let all: Vec<(String, Shape)> = MODEL
        .iter()
        .map(|(n, s)| (n.to_string(), Shape::from(s.to_vec())))
        .collect();
    let w = load_weights(&path, &all, Naming::Auto, DType::F16, &Device::Cpu).unwrap();
    assert_eq!(w.tensors.len(), MODEL.len());
    assert_eq!(w.tensors["layer2.0.conv2.weight"].dims(), &[8, 8, 3, 3]);
    assert_eq!(w.tensors["bn1.weight"].dtype(), DType::F16);
}

#[test]
fn one_error_lists_missing_unexpected_and_mismatched_keys_and_leaves_the_model_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    let mut tensors = checkpoint(str::to_string, DType::F32);
    tensors.retain(|(n, _)| n != "bn1.weight" && n != "layer1.0.bn2.running_mean");
    tensors.retain(|(n, _)| n != "conv1.weight" && n != "layer2.0.downsample.1.bias");
    tensors.push(("conv1.weight".into(), values(0, &[4, 3, 7, 7])));
    tensors.push((
        "layer2.0.downsample.1.bias".into(),
        Tensor::zeros(8, DType::I64, &Device::Cpu).unwrap(),
    ));
    tensors.push(("layer3.0.conv1.weight".into(), values(0, &[2, 2])));
    write(&path, tensors);
    let map = model("");
    let err = load_into(&map, "", &path, Naming::Torchvision).unwrap_err();
    let HubError::Mismatch(problems) = &err else {
        panic!("expected a mismatch, got {err:?}")
    };
    assert_eq!(problems.missing.len(), 2);
    assert_eq!(
        problems.unexpected,
        [("layer3.0.conv1.weight".to_string(), vec![2, 2])]
    );
    let msg = err.to_string();
    for needle in [
        "2 missing, 1 unexpected, 1 with another shape, 1 with an unusable dtype",
        "bn1.weight [4]",
        "layer1.0.bn2.running_mean [4]",
        "layer3.0.conv1.weight [2, 2]",
        "conv1.weight: [4, 3, 3, 3] vs [4, 3, 7, 7]",
        "layer2.0.downsample.1.bias: F32 vs I64",
        "bad.safetensors",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in:\n{msg}");
    }
    let sum = get(&map, "layer1.0.conv1.weight")
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(sum, 0.0, "a failed load must not write to the model");
}

#[test]
fn timm_ema_checkpoints_load_and_timm_variants_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("timm.safetensors");
    write(&path, checkpoint(|n| format!("module.{n}"), DType::F32));
    for naming in [Naming::Timm, Naming::Auto] {
        let map = model("");
        let report = load_into(&map, "", &path, naming).unwrap();
        assert_eq!(report.naming, Naming::Timm);
        assert_loaded(&map, "", DType::F32);
    }
    let err = load_into(&model(""), "", &path, Naming::Torchvision).unwrap_err();
    assert!(err.to_string().contains("8 missing, 8 unexpected"), "{err}");

    // resnet50d: a deep stem and average-pool shortcuts instead of conv1 and downsample.0.
    let path = dir.path().join("resnet50d.safetensors");
    let mut tensors = checkpoint(str::to_string, DType::F32);
    tensors.retain(|(n, _)| n != "conv1.weight" && n != "layer2.0.downsample.0.weight");
    tensors.push(("conv1.0.weight".into(), values(0, &[2, 3, 3, 3])));
    tensors.push(("conv1.3.weight".into(), values(0, &[2, 2, 3, 3])));
    tensors.push((
        "layer2.0.downsample.1.weight".into(),
        values(0, &[8, 4, 1, 1]),
    ));
    tensors.push(("layer2.0.downsample.2.weight".into(), values(0, &[8])));
    write(&path, tensors);
    let msg = load_into(&model(""), "", &path, Naming::Timm)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("deep 3-convolution stem") && msg.contains("average-pool shortcuts"),
        "{msg}"
    );
    assert!(
        msg.contains("missing from the file") && msg.contains("conv1.weight [4, 3, 3, 3]"),
        "{msg}"
    );
}

#[test]
fn transformers_checkpoints_load_by_detection() {
    let rename = |n: &str| -> String {
        let name = match n {
            "conv1.weight" => "embedder.embedder.convolution.weight",
            "bn1.weight" => "embedder.embedder.normalization.weight",
            "bn1.running_var" => "embedder.embedder.normalization.running_var",
            "layer1.0.conv1.weight" => "encoder.stages.0.layers.0.layer.0.convolution.weight",
            "layer1.0.bn2.running_mean" => {
                "encoder.stages.0.layers.0.layer.1.normalization.running_mean"
            }
            "layer2.0.downsample.0.weight" => {
                "encoder.stages.1.layers.0.shortcut.convolution.weight"
            }
            "layer2.0.downsample.1.bias" => "encoder.stages.1.layers.0.shortcut.normalization.bias",
            "layer2.0.conv2.weight" => "encoder.stages.1.layers.0.layer.1.convolution.weight",
            other => panic!("no transformers name for {other}"),
        };
        format!("resnet.{name}")
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hf.safetensors");
    let mut tensors = checkpoint(rename, DType::F32);
    tensors.push(("classifier.1.weight".into(), values(3, &[5, 8])));
    write(&path, tensors);
    let map = model("");
    let report = load_into(&map, "", &path, Naming::Auto).unwrap();
    assert_eq!(report.naming, Naming::Transformers);
    assert_eq!(report.ignored, ["classifier.1.weight"]);
    assert_loaded(&map, "", DType::F32);
}

#[test]
fn bad_prefix_and_bad_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    write(&path, checkpoint(str::to_string, DType::F32));
    let err = load_into(&model(""), "student.", &path, Naming::Auto).unwrap_err();
    assert!(
        matches!(err, HubError::InvalidArgument { what: "prefix", .. }),
        "{err:?}"
    );
    let missing = dir.path().join("nope.safetensors");
    let err = load_into(&model(""), "", &missing, Naming::Auto).unwrap_err();
    assert!(err.to_string().contains("nope.safetensors"), "{err}");
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file").unwrap();
    let err = load_into(&model(""), "", &junk, Naming::Auto).unwrap_err();
    assert!(
        matches!(err, HubError::Format { .. }) && err.to_string().contains("junk"),
        "{err}"
    );
}

#[test]
fn tensor_names_come_from_the_header_and_a_cut_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    write(&path, checkpoint(|n| format!("backbone.{n}"), DType::F32));
    let mut want: Vec<String> = MODEL.iter().map(|(n, _)| format!("backbone.{n}")).collect();
    want.sort();
    assert_eq!(tensor_names(&path).unwrap(), want);

    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..20]).unwrap();
    let err = tensor_names(&cut).unwrap_err().to_string();
    assert!(err.contains("cut.safetensors"), "{err}");
}
