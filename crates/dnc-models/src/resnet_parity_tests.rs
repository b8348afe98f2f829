//! Parity of [`ResNet`] with torchvision on weights set by a formula, in both modes.
//!
//! The reference values come from PyTorch 2.15 / torchvision 0.29 (CPU, f32):
//!
//! ```python
//! import math, torch, torch.nn as nn
//! from torchvision.models.resnet import ResNet, BasicBlock, Bottleneck
//!
//! def fill(name, shape):
//!     s = torch.sin(1.3 * torch.arange(math.prod(shape), dtype=torch.float64) + 0.1 * len(name))
//!     leaf = name.rsplit(".", 1)[-1]
//!     if leaf == "weight" and len(shape) == 4: v = s * 2 / math.sqrt(math.prod(shape[1:]))
//!     elif leaf == "weight": v = 1 + 0.2 * s
//!     elif leaf in ("bias", "running_mean"): v = 0.1 * s
//!     else: v = 1.5 + 0.5 * s  # running_var
//!     return v.reshape(shape).float()
//!
//! def run(block, stem, size):
//!     m = ResNet(block, [1, 1, 1, 1]); m.fc = nn.Identity()
//!     if stem == "cifar":
//!         m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False); m.maxpool = nn.Identity()
//!     sd = {k: fill(k, tuple(v.shape)) for k, v in m.state_dict().items() if "num_batches" not in k}
//!     m.load_state_dict(sd, strict=False)
//!     j = torch.arange(2 * 3 * size * size, dtype=torch.float64)
//!     x = (torch.sin(0.05 * j) + 0.5 * torch.cos(0.011 * j)).reshape(2, 3, size, size).float()
//!     with torch.no_grad():
//!         m.eval(); ye = m(x)
//!         m.train(); yt = m(x)
//!     for y in (ye, yt):
//!         print(y.sum().item(), (y * y).sum().item(), y[0, :4].tolist(), y[1, -3:].tolist())
//!     st = m.state_dict()
//!     print(st["bn1.running_mean"][:3].tolist(), st["layer4.0.downsample.1.running_var"][:3].tolist())
//!
//! run(BasicBlock, "imagenet", 64); run(Bottleneck, "imagenet", 64); run(BasicBlock, "cifar", 32)
//! ```

use super::*;
use crate::test_util::{sorted_vars, values};
use candle_core::{DType, Device};
use dnc_core::SeededVarMap;

/// Sum, sum of squares, `y[0, :4]` and `y[1, -3:]` of a `[2, D]` output.
struct Summary([f64; 2], [f64; 4], [f64; 3]);

struct Reference {
    eval: Summary,
    train: Summary,
    bn1_running_mean: [f64; 3],
    downsample_running_var: [f64; 3],
}

fn fill(name: &str, dims: &[usize]) -> Vec<f32> {
    let n: usize = dims.iter().product();
    let leaf = name.rsplit('.').next().unwrap();
    let fan_in: usize = dims.iter().skip(1).product();
    (0..n)
        .map(|j| {
            let s = (1.3 * j as f64 + 0.1 * name.len() as f64).sin();
            let v = match leaf {
                "weight" if dims.len() == 4 => s * 2.0 / (fan_in as f64).sqrt(),
                "weight" => 1.0 + 0.2 * s,
                "bias" | "running_mean" => 0.1 * s,
                _ => 1.5 + 0.5 * s,
            };
            v as f32
        })
        .collect()
}

fn input(size: usize) -> Tensor {
    let x: Vec<f32> = (0..2 * 3 * size * size)
        .map(|j| ((0.05 * j as f64).sin() + 0.5 * (0.011 * j as f64).cos()) as f32)
        .collect();
    Tensor::from_vec(x, (2, 3, size, size), &Device::Cpu).unwrap()
}

#[track_caller]
fn assert_near(got: &[f64], want: &[f64], what: &str) {
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 2e-4 * w.abs().max(1.0),
            "{what}: {got:?} vs {want:?}"
        );
    }
}

fn check(block: BlockKind, stem: Stem, size: usize, want: Reference) {
    let cfg = ResNetConfig {
        block,
        layers: [1, 1, 1, 1],
        stem,
        zero_init_residual: false,
    };
    let map = SeededVarMap::new(0);
    let net = ResNet::new(cfg, map.var_builder(DType::F32, &Device::Cpu)).unwrap();
    for (name, var) in sorted_vars(map.varmap()) {
        let t = Tensor::from_vec(fill(&name, var.dims()), var.dims(), &Device::Cpu).unwrap();
        var.set(&t).unwrap();
    }
    let x = input(size);
    for (train, want) in [(false, &want.eval), (true, &want.train)] {
        let y = net.forward_t(&x, train).unwrap();
        let sums = [y.sum_all().unwrap(), y.sqr().unwrap().sum_all().unwrap()];
        let what = format!("{block:?} {stem:?} train={train}");
        assert_near(&sums.map(|s| values(&s)[0]), &want.0, &what);
        assert_near(
            &values(&y.narrow(1, 0, 4).unwrap().get(0).unwrap()),
            &want.1,
            &what,
        );
        let d = y.dim(1).unwrap();
        assert_near(
            &values(&y.narrow(1, d - 3, 3).unwrap().get(1).unwrap()),
            &want.2,
            &what,
        );
    }
    let vars = map.varmap().data().lock().unwrap().clone();
    let head = |name: &str| values(&vars[name].as_tensor().narrow(0, 0, 3).unwrap());
    assert_near(
        &head("bn1.running_mean"),
        &want.bn1_running_mean,
        "bn1.running_mean",
    );
    let ds = head("layer4.0.downsample.1.running_var");
    assert_near(
        &ds,
        &want.downsample_running_var,
        "layer4.0.downsample.1.running_var",
    );
}

#[test]
fn basic_blocks_with_imagenet_stem_match_torchvision() {
    check(
        BlockKind::Basic,
        Stem::Imagenet,
        64,
        Reference {
            eval: Summary(
                [364.80194091796875, 328.1556396484375],
                [
                    0.21715988218784332,
                    0.40584564208984375,
                    0.3941122591495514,
                    0.5782737731933594,
                ],
                [0.0, 0.0, 0.0],
            ),
            train: Summary(
                [598.9400634765625, 466.49005126953125],
                [
                    0.8902310132980347,
                    0.44517332315444946,
                    0.6312751770019531,
                    0.7308363914489746,
                ],
                [0.6371849775314331, 0.23984676599502563, 0.6367824077606201],
            ),
            bn1_running_mean: [
                0.08122953772544861,
                0.013353098183870316,
                -0.0556548535823822,
            ],
            downsample_running_var: [1.3284209966659546, 0.9580962061882019, 1.2419389486312866],
        },
    );
}

#[test]
fn bottlenecks_with_imagenet_stem_match_torchvision() {
    check(
        BlockKind::Bottleneck,
        Stem::Imagenet,
        64,
        Reference {
            eval: Summary(
                [4160.81494140625, 11834.1865234375],
                [
                    1.2371430397033691,
                    3.712064027786255,
                    3.7004151344299316,
                    2.309908151626587,
                ],
                [0.0, 0.8779087066650391, 3.0072426795959473],
            ),
            train: Summary(
                [2234.258056640625, 1605.046142578125],
                [
                    0.333973228931427,
                    0.3698866367340088,
                    0.24687224626541138,
                    0.23158049583435059,
                ],
                [1.126952886581421, 0.7681944370269775, 0.4905095100402832],
            ),
            bn1_running_mean: [
                0.08122953772544861,
                0.013353098183870316,
                -0.0556548535823822,
            ],
            downsample_running_var: [1.3639802932739258, 1.0151206254959106, 1.295231580734253],
        },
    );
}

#[test]
fn basic_blocks_with_cifar_stem_match_torchvision() {
    check(
        BlockKind::Basic,
        Stem::Cifar,
        32,
        Reference {
            eval: Summary(
                [360.47857666015625, 321.1466064453125],
                [
                    0.23394644260406494,
                    0.42724180221557617,
                    0.4174119532108307,
                    0.6043335795402527,
                ],
                [0.0, 0.0, 0.0],
            ),
            train: Summary(
                [571.0607299804688, 354.44464111328125],
                [
                    1.0230529308319092,
                    0.475266695022583,
                    0.4747202396392822,
                    0.7194873094558716,
                ],
                [0.3117009401321411, 0.3516080975532532, 0.4705444574356079],
            ),
            bn1_running_mean: [
                0.09003390371799469,
                0.02049325779080391,
                -0.07673412561416626,
            ],
            downsample_running_var: [1.3258488178253174, 0.9462053179740906, 1.2217830419540405],
        },
    );
}
