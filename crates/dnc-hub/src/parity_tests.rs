//! Numerical parity with PyTorch: torchvision's ResNet-18 (ImageNet and CIFAR stems) and
//! ResNet-50 in evaluation mode, loaded through [`crate::load_into`] into dnc-models' ResNet,
//! match PyTorch's pooled features within 1e-4 (max absolute difference, f32).
//!
//! The fixtures (`fixtures/parity/*.safetensors`, written by `scripts/torch_parity.py
//! generate`) hold the input, PyTorch's output and the list of torchvision's state_dict tensors;
//! the weights are regenerated here from the script's seeded recipe (integer-only splitmix64
//! streams, exact scalings), which gives bit-identical f32 values on both sides.

use crate::cache::fnv1a;
use crate::load::load_into;
use crate::naming::Naming;
use candle_core::{DType, Device, Tensor};
use dnc_core::SeededVarMap;
use dnc_core::testing::max_abs_diff;
use dnc_models::{Arch, Backbone, BackboneConfig, Stem};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::PathBuf;

const TOLERANCE: f64 = 1e-4;

/// `u_i` in [0, 1) of the recipe (see the script's docstring).
fn uniform01(name: &str, n: usize) -> Vec<f64> {
    let seed = fnv1a(name.as_bytes());
    (1..=n as u64)
        .map(|i| {
            let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f64 / (1u64 << 24) as f64
        })
        .collect()
}

/// The recipe value of tensor `name`, as the script computes it.
fn recipe(name: &str, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let leaf = name.rsplit('.').next().unwrap_or(name);
    if leaf == "num_batches_tracked" {
        return Tensor::zeros(shape, DType::I64, &Device::Cpu).unwrap();
    }
    let u = uniform01(name, n);
    let f: Box<dyn Fn(f64) -> f64> = match leaf {
        "weight" if shape.len() >= 2 => {
            let fan_in: usize = shape[1..].iter().product();
            let bound = (6.0 / fan_in as f64).sqrt();
            Box::new(move |u| (2.0 * u - 1.0) * bound)
        }
        "weight" => Box::new(|u| 0.4 + 0.4 * u),
        "bias" if name.starts_with("fc.") => Box::new(|u| 0.01 * (2.0 * u - 1.0)),
        "bias" | "running_mean" => Box::new(|u| 0.1 * (2.0 * u - 1.0)),
        "running_var" => Box::new(|u| 0.5 + u),
        _ if name == "input" => Box::new(|u| 2.0 * u - 1.0),
        _ => panic!("no recipe for {name}"),
    };
    let values: Vec<f32> = u.into_iter().map(|u| f(u) as f32).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

struct Fixture {
    tensors: HashMap<String, Tensor>,
    /// torchvision's state_dict: (name, shape).
    state_dict: Vec<(String, Vec<usize>)>,
}

fn fixture(case: &str) -> Fixture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../fixtures/parity/{case}.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let listing = &meta.metadata().as_ref().expect("fixture metadata")["state_dict"];
    let listing: Vec<(String, Vec<usize>, String)> = serde_json::from_str(listing).unwrap();
    Fixture {
        tensors: candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap(),
        state_dict: listing.into_iter().map(|(n, s, _)| (n, s)).collect(),
    }
}

/// The recipe reproduces the script's values bit for bit.
fn check_recipe(case: &str, fx: &Fixture) {
    for (key, reference) in fx.tensors.iter().filter(|(k, _)| k.starts_with("check.")) {
        let name = &key["check.".len()..];
        let shape = &fx.state_dict.iter().find(|(n, _)| n == name).unwrap().1;
        let ours = recipe(name, shape).flatten_all().unwrap();
        let ours = ours.narrow(0, 0, reference.elem_count()).unwrap();
        let diff = max_abs_diff(&ours, reference).unwrap();
        assert_eq!(diff, 0.0, "{case}: recipe differs for {name}");
    }
}

/// The torchvision checkpoint (with `fc` and `num_batches_tracked`) written to `dir`.
fn write_checkpoint(fx: &Fixture, dir: &std::path::Path) -> PathBuf {
    let path = dir.join("model.safetensors");
    let checkpoint: HashMap<String, Tensor> = fx
        .state_dict
        .iter()
        .map(|(n, s)| (n.clone(), recipe(n, s)))
        .collect();
    candle_core::safetensors::save(&checkpoint, &path).unwrap();
    path
}

fn check_parity(case: &str, arch: Arch, stem: Stem, batch_norms: usize) {
    let fx = fixture(case);
    check_recipe(case, &fx);
    let dir = tempfile::tempdir().unwrap();
    let path = write_checkpoint(&fx, dir.path());
    let cfg = BackboneConfig {
        arch,
        stem,
        ..Default::default()
    };
    let map = SeededVarMap::new(0);
    let net = Backbone::new(&cfg, map.var_builder(DType::F32, &Device::Cpu)).unwrap();
    let report = load_into(map.varmap(), "", &path, Naming::Torchvision).unwrap();
    assert_eq!(
        report.loaded + report.ignored.len(),
        fx.state_dict.len(),
        "{case}"
    );
    let ignored = report.ignored.len();
    assert_eq!(
        ignored,
        batch_norms + 2,
        "{case}: counters and fc.{{weight,bias}}"
    );

    let reference = &fx.tensors["output"];
    let out = net.forward_t(&fx.tensors["input"], false).unwrap();
    let diff = max_abs_diff(&out, reference).unwrap();
    let scale = max_abs_diff(reference, &reference.zeros_like().unwrap()).unwrap();
    assert!(
        diff <= TOLERANCE,
        "{case}: max |candle - torch| = {diff:e} > {TOLERANCE:e} (outputs up to {scale})"
    );
    assert!(
        scale > 0.5,
        "{case}: the reference output is too small to test anything ({scale})"
    );
}

#[test]
fn resnet18_imagenet_stem_matches_pytorch() {
    check_parity("resnet18_imagenet", Arch::Resnet18, Stem::Imagenet, 20);
}

#[test]
fn resnet18_cifar_stem_matches_pytorch() {
    check_parity("resnet18_cifar", Arch::Resnet18, Stem::Cifar, 20);
}

#[test]
fn resnet50_matches_pytorch() {
    check_parity("resnet50_imagenet", Arch::Resnet50, Stem::Imagenet, 53);
}
