//! Tests of [`ResNet`]: torchvision's names and shapes, parameter counts, output shapes.

use super::*;
use crate::test_util::{names_and_shapes, randn, sorted_vars, values};
use candle_core::{DType, Device};
use dnc_core::{SeededVarMap, is_buffer};

/// The `state_dict` of `torchvision.models.resnet.ResNet` without `fc` and `num_batches_tracked`,
/// generated the way torchvision's `_make_layer` builds it: the first block of a stage has
/// stride 2 (except `layer1`) and a downsample when `stride != 1 or inplanes != planes * expansion`.
fn torchvision_names(
    layers: [usize; 4],
    bottleneck: bool,
    stem_kernel: usize,
) -> Vec<(String, Vec<usize>)> {
    let bn = |out: &mut Vec<(String, Vec<usize>)>, name: &str, c: usize| {
        for leaf in ["weight", "bias", "running_mean", "running_var"] {
            out.push((format!("{name}.{leaf}"), vec![c]));
        }
    };
    let mut out = vec![(
        "conv1.weight".to_string(),
        vec![64, 3, stem_kernel, stem_kernel],
    )];
    bn(&mut out, "bn1", 64);
    let expansion = if bottleneck { 4 } else { 1 };
    let mut inplanes = 64;
    for (stage, planes) in [64, 128, 256, 512].into_iter().enumerate() {
        for i in 0..layers[stage] {
            let p = format!("layer{}.{i}", stage + 1);
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            let convs: Vec<(usize, usize, usize)> = if bottleneck {
                vec![
                    (planes, inplanes, 1),
                    (planes, planes, 3),
                    (planes * 4, planes, 1),
                ]
            } else {
                vec![(planes, inplanes, 3), (planes, planes, 3)]
            };
            for (j, (o, c, k)) in convs.into_iter().enumerate() {
                out.push((format!("{p}.conv{}.weight", j + 1), vec![o, c, k, k]));
                bn(&mut out, &format!("{p}.bn{}", j + 1), o);
            }
            if stride != 1 || inplanes != planes * expansion {
                out.push((
                    format!("{p}.downsample.0.weight"),
                    vec![planes * expansion, inplanes, 1, 1],
                ));
                bn(&mut out, &format!("{p}.downsample.1"), planes * expansion);
            }
            inplanes = planes * expansion;
        }
    }
    out.sort();
    out
}

fn build(cfg: ResNetConfig, seed: u64) -> (SeededVarMap, ResNet) {
    let map = SeededVarMap::new(seed);
    let net = ResNet::new(cfg, map.var_builder(DType::F32, &Device::Cpu)).unwrap();
    (map, net)
}

/// (parameter tensors, buffer tensors, parameter elements)
fn counts(map: &SeededVarMap) -> (usize, usize, usize) {
    let vars = names_and_shapes(map.varmap());
    let params: Vec<_> = vars.iter().filter(|(n, _)| !is_buffer(n)).collect();
    let elems = params
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    (params.len(), vars.len() - params.len(), elems)
}

/// Runs `net` in both modes on a batch and checks the pooled, post-ReLU features.
fn check_forward(net: &ResNet, batch: usize, size: usize) {
    let x = randn((batch, 3, size, size), DType::F32, size as u64);
    for train in [true, false] {
        let y = net.forward_t(&x, train).unwrap();
        assert_eq!(
            y.dims(),
            &[batch, net.out_dim()],
            "{:?} train={train}",
            net.config()
        );
        assert!(
            values(&y).iter().all(|v| v.is_finite() && *v >= 0.0),
            "pooled ReLU output"
        );
    }
}

#[test]
fn resnet18_has_torchvision_names_shapes_and_counts() {
    let (map, net) = build(ResNetConfig::resnet18(Stem::Imagenet), 0);
    assert_eq!(
        names_and_shapes(map.varmap()),
        torchvision_names([2, 2, 2, 2], false, 7)
    );
    // torchvision: 62 parameter tensors (60 + fc.weight, fc.bias) and 11,689,512 parameters,
    // of which fc holds 512·1000 + 1000; 20 BatchNorms hold 40 running statistics.
    assert_eq!(counts(&map), (60, 40, 11_689_512 - 513_000));
    assert_eq!(net.out_dim(), 512);
    let names = names_and_shapes(map.varmap());
    assert!(names.contains(&("layer2.0.downsample.0.weight".into(), vec![128, 64, 1, 1])));
    assert!(names.contains(&("layer1.0.bn1.running_mean".into(), vec![64])));
    assert!(
        !names
            .iter()
            .any(|(n, _)| n.starts_with("layer1.0.downsample"))
    );
    check_forward(&net, 2, 32);
}

#[test]
fn resnet50_has_torchvision_names_shapes_and_counts_and_runs() {
    let (map, net) = build(ResNetConfig::resnet50(Stem::Imagenet), 0);
    assert_eq!(
        names_and_shapes(map.varmap()),
        torchvision_names([3, 4, 6, 3], true, 7)
    );
    // torchvision: 161 parameter tensors and 25,557,032 parameters including fc (2048·1000 + 1000);
    // 53 BatchNorms hold 106 running statistics.
    assert_eq!(counts(&map), (159, 106, 25_557_032 - 2_049_000));
    let names = names_and_shapes(map.varmap());
    assert!(names.contains(&("layer1.0.downsample.0.weight".into(), vec![256, 64, 1, 1])));
    assert!(names.contains(&("layer4.2.conv3.weight".into(), vec![2048, 512, 1, 1])));
    assert_eq!(net.out_dim(), 2048);
    // 64×64 → stem ÷4 → 16 → layer4 2×2: enough values per channel for training statistics.
    check_forward(&net, 1, 64);
}

#[test]
fn cifar_stem_swaps_the_first_convolution_only() {
    let (map, net) = build(ResNetConfig::resnet18(Stem::Cifar), 0);
    assert_eq!(
        names_and_shapes(map.varmap()),
        torchvision_names([2, 2, 2, 2], false, 3)
    );
    // torch_ref's cifar_resnet18 (fc = Identity): 11,168,832 parameters.
    assert_eq!(counts(&map).2, 11_168_832);
    check_forward(&net, 2, 32);
}

#[test]
fn resnet34_has_torchvision_names_with_both_stems() {
    let (map, net) = build(ResNetConfig::resnet34(Stem::Cifar), 0);
    assert_eq!(
        names_and_shapes(map.varmap()),
        torchvision_names([3, 4, 6, 3], false, 3)
    );
    // torchvision resnet34: 21,797,672 parameters, fc 513,000, stem 64·3·(49 − 9) smaller here.
    assert_eq!(counts(&map).2, 21_797_672 - 513_000 - 64 * 3 * 40);
    check_forward(&net, 2, 32);
    let (map, net) = build(ResNetConfig::resnet34(Stem::Imagenet), 0);
    assert_eq!(counts(&map), (108, 72, 21_797_672 - 513_000));
    check_forward(&net, 2, 32);
}

#[test]
fn resnet50_cifar_stem_runs_at_full_resolution() {
    let (_, net) = build(ResNetConfig::resnet50(Stem::Cifar), 3);
    check_forward(&net, 1, 32);
}

#[test]
fn zero_init_residual_zeroes_the_last_bn_of_each_branch() {
    for (cfg, last) in [
        (ResNetConfig::resnet18(Stem::Cifar), "bn2"),
        (ResNetConfig::resnet50(Stem::Cifar), "bn3"),
    ] {
        let cfg = ResNetConfig {
            zero_init_residual: true,
            layers: [1, 2, 1, 1],
            ..cfg
        };
        let (map, _) = build(cfg, 0);
        let mut zeroed = 0;
        for (name, var) in sorted_vars(map.varmap()) {
            if !name.ends_with(".weight") || var.rank() != 1 {
                continue;
            }
            let is_last = name.starts_with("layer") && name.ends_with(&format!("{last}.weight"));
            let want = if is_last { 0.0 } else { 1.0 };
            assert!(values(var.as_tensor()).iter().all(|v| *v == want), "{name}");
            zeroed += usize::from(is_last);
        }
        assert_eq!(zeroed, cfg.layers.iter().sum::<usize>());
    }
}

#[test]
fn empty_stages_are_rejected() {
    let cfg = ResNetConfig {
        layers: [2, 0, 2, 2],
        ..ResNetConfig::resnet18(Stem::Cifar)
    };
    let map = SeededVarMap::new(0);
    let err = ResNet::new(cfg, map.var_builder(DType::F32, &Device::Cpu)).unwrap_err();
    assert!(err.to_string().contains("[2, 0, 2, 2]"), "{err}");
}
