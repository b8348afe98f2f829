//! Tests of [`BatchNorm`] against hand-computed statistics and finite differences.

use super::*;
use crate::conv::Conv2dConfig;
use crate::test_util::{assert_err_contains, randn, values};
use candle_core::Device;
use dnc_core::SeededVarMap;
use dnc_core::testing::{assert_close, finite_difference_grad};

const EPS: f64 = 1e-5;

fn layer(map: &SeededVarMap, features: usize, dtype: DType) -> BatchNorm {
    let vb = map.var_builder(dtype, &Device::Cpu);
    BatchNorm::new(features, BatchNormConfig::default(), vb).unwrap()
}

/// `[N=2, C=2, H=1, W=2]`. Channel 0 holds 1, 2, 3, 6 (mean 3, squared deviations 14);
/// channel 1 holds 0, 0, 0, 4 (mean 1, squared deviations 12).
fn hand_input() -> Tensor {
    Tensor::new(
        &[[[[1f32, 2.0]], [[0.0, 0.0]]], [[[3.0, 6.0]], [[0.0, 4.0]]]],
        &Device::Cpu,
    )
    .unwrap()
}

#[test]
fn training_normalises_with_biased_batch_variance() {
    let map = SeededVarMap::new(0);
    let bn = layer(&map, 2, DType::F32);
    let y = values(&bn.forward_t(&hand_input(), true).unwrap());
    let (s0, s1) = ((3.5 + EPS).sqrt(), (3.0 + EPS).sqrt());
    let expected = [
        -2.0 / s0,
        -1.0 / s0,
        -1.0 / s1,
        -1.0 / s1,
        0.0 / s0,
        3.0 / s0,
        -1.0 / s1,
        3.0 / s1,
    ];
    for (a, b) in y.iter().zip(expected) {
        assert!((a - b).abs() < 1e-6, "{y:?} vs {expected:?}");
    }
}

#[test]
fn running_statistics_follow_pytorch_with_unbiased_variance() {
    let map = SeededVarMap::new(0);
    let bn = layer(&map, 2, DType::F32);
    bn.forward_t(&hand_input(), true).unwrap();
    let (mean, var) = (values(bn.running_mean()), values(bn.running_var()));
    // mean: 0.9·0 + 0.1·(3, 1); var: 0.9·1 + 0.1·(14/3, 12/3).
    let expected_mean = [0.3, 0.1];
    let expected_var = [0.9 + 1.4 / 3.0, 0.9 + 0.4];
    for i in 0..2 {
        assert!((mean[i] - expected_mean[i]).abs() < 1e-6, "{mean:?}");
        assert!((var[i] - expected_var[i]).abs() < 1e-6, "{var:?}");
    }
    bn.forward_t(&hand_input(), true).unwrap();
    let mean = values(bn.running_mean());
    assert!((mean[0] - (0.9 * 0.3 + 0.3)).abs() < 1e-6, "{mean:?}");
    // The statistics are the map's variables, so they are saved with it.
    let stored = map.varmap().data().lock().unwrap()["running_mean"].clone();
    assert_eq!(values(stored.as_tensor()), mean);
}

#[test]
fn evaluation_uses_running_statistics_and_leaves_them_alone() {
    let map = SeededVarMap::new(0);
    let bn = layer(&map, 2, DType::F32);
    let x = hand_input();
    // Fresh statistics (0, 1): evaluation is x / sqrt(1 + eps).
    let y = values(&bn.forward_t(&x, false).unwrap());
    for (a, b) in y.iter().zip(values(&x)) {
        assert!((a - b / (1.0 + EPS).sqrt()).abs() < 1e-6);
    }
    bn.forward_t(&x, true).unwrap();
    let (mean, var) = (values(bn.running_mean()), values(bn.running_var()));
    let y = values(&bn.forward_t(&x, false).unwrap());
    assert_eq!(
        values(bn.running_mean()),
        mean,
        "evaluation must not update"
    );
    let xs = values(&x);
    for (i, (a, v)) in y.iter().zip(xs).enumerate() {
        let c = (i / 2) % 2;
        let want = (v - mean[c]) / (var[c] + EPS).sqrt();
        assert!((a - want).abs() < 1e-5, "element {i}: {a} vs {want}");
    }
}

#[test]
fn one_d_inputs_are_normalised_per_column() {
    let map = SeededVarMap::new(0);
    let bn = layer(&map, 3, DType::F64);
    let x = randn((6, 3), DType::F64, 1).affine(3.0, 2.0).unwrap();
    let y = bn.forward_t(&x, true).unwrap();
    let mean = values(&y.mean(0).unwrap());
    let var = values(&y.sqr().unwrap().mean(0).unwrap());
    for c in 0..3 {
        assert!(mean[c].abs() < 1e-9, "{mean:?}");
        assert!((var[c] - 1.0).abs() < 1e-4, "{var:?}");
    }
    assert_eq!(y.dims(), &[6, 3]);
}

#[test]
fn gradient_matches_finite_differences() {
    let map = SeededVarMap::new(0);
    let bn = layer(&map, 2, DType::F64);
    let x = Var::from_tensor(&randn((3, 2, 2, 2), DType::F64, 2)).unwrap();
    let w = randn((3, 2, 2, 2), DType::F64, 3);
    let f = |x: &Tensor| bn.forward_t(x, true)?.mul(&w)?.sum_all();
    let grads = f(x.as_tensor()).unwrap().backward().unwrap();
    let numeric = finite_difference_grad(f, x.as_tensor(), 1e-5).unwrap();
    assert_close(grads.get(x.as_tensor()).unwrap(), &numeric, 1e-6);

    // dL/dγ_c = Σ w·x̂ and dL/dβ_c = Σ w over channel c, with x̂ the normalised input (γ = 1, β = 0).
    let xhat = bn.forward_t(x.as_tensor(), true).unwrap();
    let per_channel = |t: Tensor| t.sum((0, 2, 3)).unwrap();
    let vars = map.varmap().data().lock().unwrap().clone();
    let dgamma = grads.get(vars["weight"].as_tensor()).unwrap();
    let dbeta = grads.get(vars["bias"].as_tensor()).unwrap();
    assert_close(dgamma, &per_channel(xhat.mul(&w).unwrap()), 1e-9);
    assert_close(dbeta, &per_channel(w.clone()), 1e-9);
    assert!(grads.get(vars["running_mean"].as_tensor()).is_none());
    assert!(grads.get(vars["running_var"].as_tensor()).is_none());
}

#[test]
fn weight_init_and_half_precision() {
    let map = SeededVarMap::new(0);
    let cfg = BatchNormConfig {
        weight_init: 0.0,
        ..Default::default()
    };
    let bn = BatchNorm::new(2, cfg, map.var_builder(DType::F16, &Device::Cpu)).unwrap();
    let x = hand_input().to_dtype(DType::F16).unwrap();
    let y = bn.forward_t(&x, true).unwrap();
    assert_eq!(y.dtype(), DType::F16);
    assert!(
        values(&y).iter().all(|v| *v == 0.0),
        "γ = 0, β = 0 gives zeros"
    );
    let mean = values(bn.running_mean());
    assert!((mean[0] - 0.3).abs() < 1e-3, "{mean:?}");
}

#[test]
fn bad_inputs_are_reported() {
    let map = SeededVarMap::new(0);
    let bn = layer(&map, 2, DType::F32);
    let x = Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap();
    assert_err_contains(bn.forward_t(&x, true), &["2 features", "[4, 3]"]);
    let x = Tensor::zeros((1, 2), DType::F32, &Device::Cpu).unwrap();
    assert_err_contains(bn.forward_t(&x, true), &["more than one value", "got 1"]);
    assert!(
        bn.forward_t(&x, false).is_ok(),
        "evaluation works on one sample"
    );
    let cfg = BatchNormConfig {
        momentum: 1.5,
        ..Default::default()
    };
    let vb = map.var_builder(DType::F32, &Device::Cpu);
    assert_err_contains(BatchNorm::new(2, cfg, vb), &["momentum 1.5"]);
}

#[test]
fn stage_tail_matches_relu_then_pool_and_updates_running_statistics() {
    let x = randn((4, 3, 6, 5), DType::F32, 3).affine(1.5, 0.5).unwrap();
    let (fused_map, plain_map) = (SeededVarMap::new(0), SeededVarMap::new(0));
    let (fused, plain) = (
        layer(&fused_map, 3, DType::F32),
        layer(&plain_map, 3, DType::F32),
    );
    for train in [true, false] {
        let y = fused.forward_relu_max_pool_t(&x, train).unwrap();
        assert_eq!(y.dims(), [4, 3, 3, 2]);
        let want = crate::pool::max_pool_2x2(&plain.forward_relu_t(&x, train).unwrap()).unwrap();
        assert_close(&y, &want, 0.0);
        assert_close(fused.running_mean(), plain.running_mean(), 0.0);
        assert_close(fused.running_var(), plain.running_var(), 0.0);
    }
    // The training step moved the running statistics away from their initial values.
    assert!(values(fused.running_mean()).iter().all(|m| m.abs() > 1e-3));
    assert_err_contains(
        fused.forward_relu_max_pool_t(&randn((4, 2, 6, 5), DType::F32, 3), true),
        &["batch norm over 3 features got an input of shape [4, 2, 6, 5]"],
    );
}

type Layer = (Conv2d, BatchNorm);
type Fused = fn(&BatchNorm, &Conv2d, &Tensor, bool) -> Result<Tensor>;
type Composed = fn(&BatchNorm, &Tensor, bool) -> Result<Tensor>;

#[test]
fn convolution_and_batch_norm_match_the_composed_layers_and_update_running_statistics() {
    // Each fused method against the convolution followed by the batch-norm method it ends in.
    let cases: [(Fused, Composed); 3] = [
        (BatchNorm::forward_conv_t, BatchNorm::forward_t),
        (BatchNorm::forward_conv_relu_t, BatchNorm::forward_relu_t),
        (
            BatchNorm::forward_conv_relu_max_pool_t,
            BatchNorm::forward_relu_max_pool_t,
        ),
    ];
    let x = randn((4, 2, 7, 6), DType::F32, 5);
    for (i, (fused, composed)) in cases.into_iter().enumerate() {
        let maps = [SeededVarMap::new(1), SeededVarMap::new(1)];
        let [(conv_a, bn_a), (conv_b, bn_b)]: [Layer; 2] = maps.each_ref().map(|m| {
            let vb = m.var_builder(DType::F32, &Device::Cpu);
            let conv = Conv2d::new(Conv2dConfig::new(2, 3, 3, 1, 1), vb.pp("conv")).unwrap();
            let bn = BatchNorm::new(3, BatchNormConfig::default(), vb.pp("bn")).unwrap();
            (conv, bn)
        });
        for train in [true, false] {
            let y = fused(&bn_a, &conv_a, &x, train).unwrap();
            let want = composed(&bn_b, &conv_b.forward(&x).unwrap(), train).unwrap();
            assert_eq!(y.dims(), want.dims(), "case {i}");
            assert_close(&y, &want, 0.0);
            assert_close(bn_a.running_mean(), bn_b.running_mean(), 0.0);
            assert_close(bn_a.running_var(), bn_b.running_var(), 0.0);
        }
        assert!(
            values(bn_a.running_var())
                .iter()
                .all(|v| (v - 1.0).abs() > 1e-3),
            "case {i}: the training step moved the running variance"
        );
        let vb = maps[0].var_builder(DType::F32, &Device::Cpu);
        let wide = Conv2d::new(Conv2dConfig::new(2, 4, 3, 1, 1), vb.pp("wide")).unwrap();
        assert_err_contains(
            fused(&bn_a, &wide, &x, true),
            &["batch norm over 3 features follows a convolution to 4 channels"],
        );
        // A 1×1 output of a single image has no variance to normalise by.
        let tiny = Conv2d::new(Conv2dConfig::new(2, 3, 7, 1, 0), vb.pp("tiny")).unwrap();
        let one = randn((1, 2, 7, 7), DType::F32, 6);
        assert_err_contains(
            fused(&bn_a, &tiny, &one, true),
            &["more than one value per channel, got 1"],
        );
    }
}

/// What one rank of the synchronised BatchNorm test computes on its rows.
struct Share {
    outputs: Vec<f64>,
    input_grad: Vec<f64>,
    weight_grad: Vec<f64>,
    bias_grad: Vec<f64>,
    running: Vec<f64>,
}

#[track_caller]
fn assert_near(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-4 * (1.0 + y.abs()), "{what}: {x} vs {y}");
    }
}

/// One process with the whole batch, against two ranks (threads) with half of it each and
/// synchronised statistics: the same outputs, running statistics and gradients (the ranks'
/// parameter gradients summed, each input's gradient its rows of the whole one).
#[test]
fn synchronised_ranks_normalise_as_one_process_with_the_whole_batch() {
    use dnc_dist::LocalGroup;
    let x = randn((6, 3, 2, 2), DType::F32, 11)
        .affine(2.0, 0.5)
        .unwrap();
    let residual = randn((6, 3, 2, 2), DType::F32, 12);
    let weights = randn((6, 3, 2, 2), DType::F32, 13);
    // Rows `first .. first + rows` of the batch through a fresh layer, and `Σ ys ⊙ weights`
    // back-propagated.
    // `tail`: 0 the fused batch norm, 1 the fused residual tail, 2 the composed path that
    // inputs without a fused kernel (off the CPU) take.
    let run = move |(first, rows): (usize, usize), tail: u8| {
        let map = SeededVarMap::new(0);
        let bn = layer(&map, 3, DType::F32);
        let share = |t: &Tensor| t.narrow(0, first, rows).unwrap();
        let input = Var::from_tensor(&share(&x)).unwrap();
        let ys = match tail {
            0 => bn.forward_t(input.as_tensor(), true),
            1 => bn.forward_add_relu_t(input.as_tensor(), &share(&residual), true),
            _ => bn.forward_synced(input.as_tensor(), dnc_dist::current().comm()),
        }
        .unwrap();
        let loss = (&ys * share(&weights)).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let g = |t: &Tensor| values(grads.get(t).unwrap());
        Share {
            outputs: values(&ys),
            input_grad: g(input.as_tensor()),
            weight_grad: g(&bn.weight),
            bias_grad: g(&bn.bias),
            running: [values(bn.running_mean()), values(bn.running_var())].concat(),
        }
    };
    for tail in [0, 1, 2] {
        let whole = run((0, 6), tail);
        let ranks: Vec<Share> = LocalGroup::run(2, |comm| run((comm.rank() * 3, 3), tail));
        let joined =
            |f: fn(&Share) -> &Vec<f64>| [f(&ranks[0]).clone(), f(&ranks[1]).clone()].concat();
        let summed = |f: fn(&Share) -> &Vec<f64>| -> Vec<f64> {
            f(&ranks[0])
                .iter()
                .zip(f(&ranks[1]))
                .map(|(a, b)| a + b)
                .collect()
        };
        assert_near(&joined(|r| &r.outputs), &whole.outputs, "outputs");
        assert_near(
            &joined(|r| &r.input_grad),
            &whole.input_grad,
            "input gradient",
        );
        assert_near(
            &summed(|r| &r.weight_grad),
            &whole.weight_grad,
            "weight gradient",
        );
        assert_near(&summed(|r| &r.bias_grad), &whole.bias_grad, "bias gradient");
        for rank in &ranks {
            assert_near(&rank.running, &whole.running, "running statistics");
        }
    }
}
