//! Tests of the weighted k-NN against hand-computed votes and a brute-force reimplementation.

use super::*;
use candle_core::Device;
use dnc_core::SeededRng;

fn matrix(rows: &[Vec<f32>]) -> Tensor {
    Tensor::new(rows.to_vec(), &Device::Cpu).unwrap()
}

fn random_rows(rng: &mut SeededRng, n: usize, d: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| (0..d).map(|_| rng.normal() as f32).collect())
        .collect()
}

fn config(k: usize, temperature: f64, chunk: usize) -> KnnConfig {
    KnnConfig {
        k,
        temperature,
        chunk,
    }
}

/// Independent reference: f64 cosine similarities, a full stable sort, plain `exp(sim / τ)`
/// weights, first class among equal votes (as `torch.argmax`).
fn brute_force(
    bank: &[Vec<f32>],
    labels: &[u32],
    queries: &[Vec<f32>],
    num_classes: usize,
    k: usize,
    tau: f64,
) -> Vec<u32> {
    let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let cos = |a: &[f32], b: &[f32]| {
        let dot: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum();
        dot / (norm(a) * norm(b))
    };
    queries
        .iter()
        .map(|q| {
            let mut sims: Vec<(f64, usize)> = bank
                .iter()
                .enumerate()
                .map(|(i, b)| (cos(q, b), i))
                .collect();
            sims.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
            let mut votes = vec![0.0; num_classes];
            for &(s, i) in sims.iter().take(k) {
                votes[labels[i] as usize] += (s / tau).exp();
            }
            let max = votes.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            votes.iter().position(|&v| v == max).unwrap() as u32
        })
        .collect()
}

#[test]
fn matches_brute_force_on_random_data() {
    let mut rng = SeededRng::new(11);
    let (bank, queries) = (
        random_rows(&mut rng, 300, 16),
        random_rows(&mut rng, 120, 16),
    );
    let labels: Vec<u32> = (0..300).map(|_| rng.below(5) as u32).collect();
    for (k, tau) in [(20, 0.1), (1, 0.1), (50, 0.5)] {
        let expected = brute_force(&bank, &labels, &queries, 5, k, tau);
        let got = knn_predict(
            &matrix(&bank),
            &labels,
            &matrix(&queries),
            5,
            &config(k, tau, 32),
        )
        .unwrap();
        assert_eq!(got, expected, "k = {k}, tau = {tau}");
        // Not a constant answer: the test would catch a broken vote.
        assert!(expected.iter().any(|&p| p != expected[0]));
    }
}

/// One class-0 neighbour at cosine 1 against two class-1 neighbours at cosine 0.8.
/// τ = 0.1: e^10 = 22026 > 2·e^8 = 5962, class 0 wins although it has fewer votes;
/// τ = 1: e^1 = 2.72 < 2·e^0.8 = 4.45, the majority (class 1) wins.
#[test]
fn weighting_can_overrule_the_majority() {
    let bank = matrix(&[vec![1.0, 0.0], vec![0.8, 0.6], vec![0.8, -0.6]]);
    let labels = [0, 1, 1];
    let query = matrix(&[vec![2.0, 0.0]]);
    let predict = |tau| knn_predict(&bank, &labels, &query, 2, &config(3, tau, 8)).unwrap();
    assert_eq!(predict(0.1), vec![0]);
    assert_eq!(predict(1.0), vec![1]);
    // A very small τ behaves as 1-NN and must not overflow into a NaN vote.
    assert_eq!(predict(1e-4), vec![0]);
}

/// k above the bank size uses the whole bank: here cosines 0.6 (class 0, twice) against
/// 1.0 (class 1) and -1.0 (class 1), so with τ = 1 class 0 gets 2·e^0.6 = 3.64 and class 1
/// gets e^1 + e^-1 = 3.09; with k = 2 only the two nearest (1.0 and 0.6) vote and class 1 wins.
#[test]
fn k_larger_than_the_bank_uses_every_item() {
    let bank = matrix(&[
        vec![0.6, 0.8],
        vec![0.6, -0.8],
        vec![1.0, 0.0],
        vec![-3.0, 0.0],
    ]);
    let labels = [0, 0, 1, 1];
    let query = matrix(&[vec![1.0, 0.0]]);
    let predict = |k| knn_predict(&bank, &labels, &query, 2, &config(k, 1.0, 8)).unwrap();
    assert_eq!(predict(200), vec![0]);
    assert_eq!(predict(4), vec![0]);
    assert_eq!(predict(2), vec![1]);
}

#[test]
fn chunk_size_and_feature_scale_do_not_change_predictions() {
    let mut rng = SeededRng::new(3);
    let (bank, queries) = (random_rows(&mut rng, 200, 8), random_rows(&mut rng, 77, 8));
    let labels: Vec<u32> = (0..200).map(|_| rng.below(4) as u32).collect();
    let run = |bank: &[Vec<f32>], chunk| {
        knn_predict(
            &matrix(bank),
            &labels,
            &matrix(&queries),
            4,
            &config(15, 0.1, chunk),
        )
        .unwrap()
    };
    let reference = run(&bank, 1000);
    for chunk in [1, 7, 76, 77] {
        assert_eq!(run(&bank, chunk), reference, "chunk = {chunk}");
    }
    // Positive row scalings vanish under the L2 normalisation done inside.
    let scaled: Vec<Vec<f32>> = bank
        .iter()
        .enumerate()
        .map(|(i, r)| r.iter().map(|x| x * (0.5 + i as f32)).collect())
        .collect();
    assert_eq!(run(&scaled, 16), reference);
}

#[test]
fn evaluate_scores_the_predictions() {
    // Two well separated classes, queries on each side, one query deliberately mislabelled.
    let bank = matrix(&[
        vec![1.0, 0.1],
        vec![1.0, -0.1],
        vec![-1.0, 0.1],
        vec![-1.0, -0.1],
    ]);
    let queries = matrix(&[vec![2.0, 0.0], vec![-2.0, 0.3], vec![-1.0, 0.0]]);
    let acc = knn_evaluate(
        &bank,
        &[0, 0, 1, 1],
        &queries,
        &[0, 1, 0],
        2,
        &config(2, 0.1, 2),
    )
    .unwrap();
    assert!((acc.top1 - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(acc.per_class[0].correct, 1);
    assert_eq!(acc.per_class[0].total, 2);
    assert_eq!(acc.per_class[1].accuracy(), Some(1.0));
}

#[test]
fn bad_inputs_are_reported() {
    let bank = matrix(&[vec![1.0, 0.0], vec![0.0, 1.0]]);
    let q3 = matrix(&[vec![1.0, 0.0, 0.0]]);
    let cfg = KnnConfig::default();
    assert!(matches!(
        knn_predict(&bank, &[0, 1], &q3, 2, &cfg),
        Err(EvalError::DimensionMismatch {
            left_dim: 2,
            right_dim: 3,
            ..
        })
    ));
    let q = matrix(&[vec![1.0, 0.0]]);
    assert!(matches!(
        knn_predict(&bank, &[0], &q, 2, &cfg),
        Err(EvalError::LabelCount {
            what: "bank labels",
            ..
        })
    ));
    assert!(matches!(
        knn_evaluate(&bank, &[0, 1], &q, &[0, 1], 2, &cfg),
        Err(EvalError::LabelCount {
            what: "query labels",
            ..
        })
    ));
    assert!(matches!(
        knn_predict(&bank, &[0, 1], &q, 2, &config(0, 0.1, 1)),
        Err(EvalError::Params(_))
    ));
}

#[test]
fn a_bank_streamed_in_chunks_votes_as_the_whole_bank() {
    let mut rng = SeededRng::new(11);
    let (n_bank, n_query, d, classes) = (500, 60, 16, 4);
    let mut bank = random_rows(&mut rng, n_bank, d);
    // Exact duplicates: ties between bank items, which go to the lower position.
    for i in 0..40 {
        bank[300 + i] = bank[i].clone();
    }
    let labels: Vec<u32> = (0..n_bank as u32)
        .map(|i| (i * 7 + i / 5) % classes)
        .collect();
    let queries = random_rows(&mut rng, n_query, d);
    for k in [1, 20, 600] {
        let cfg = config(k, 0.07, 17);
        let whole = knn_predict(&matrix(&bank), &labels, &matrix(&queries), 4, &cfg).unwrap();
        for chunk in [7, 64, 500] {
            let mut knn = StreamingKnn::new(&matrix(&queries), 4, &cfg).unwrap();
            for start in (0..n_bank).step_by(chunk) {
                let end = (start + chunk).min(n_bank);
                knn.add(&matrix(&bank[start..end]), &labels[start..end])
                    .unwrap();
            }
            assert_eq!(knn.bank_len(), n_bank);
            assert_eq!(knn.predict().unwrap(), whole, "k {k}, chunks of {chunk}");
        }
    }
}

#[test]
fn streaming_knn_checks_its_input() {
    let q = matrix(&[vec![1.0, 0.0]]);
    let cfg = config(3, 0.1, 8);
    let mut knn = StreamingKnn::new(&q, 2, &cfg).unwrap();
    assert!(
        knn.predict()
            .unwrap_err()
            .to_string()
            .contains("bank features")
    );
    let wide = matrix(&[vec![1.0, 0.0, 0.0]]);
    assert!(matches!(
        knn.add(&wide, &[0]),
        Err(EvalError::DimensionMismatch { .. })
    ));
    assert!(matches!(
        knn.add(&q, &[5]),
        Err(EvalError::LabelOutOfRange { .. })
    ));
    knn.add(&q, &[1]).unwrap();
    assert_eq!(knn.predict().unwrap(), vec![1]);
    assert_eq!(knn.evaluate(&[1]).unwrap().top1, 1.0);
}
