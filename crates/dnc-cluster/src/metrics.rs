//! Cluster quality metrics on plain slices: inertia, sizes, and, against known labels,
//! normalised mutual information, adjusted Rand index and majority-vote accuracy.
//!
//! NMI with the arithmetic-mean normalisation: Strehl & Ghosh, JMLR 3, 2002 (scikit-learn's
//! default). ARI: Hubert & Arabie, "Comparing partitions", J. Classification 2, 1985. Both agree
//! with scikit-learn, including its conventions for degenerate labellings.

use crate::error::{KMeansError, Result};
use std::collections::{BTreeMap, HashMap};

/// Sum of squared distances, accumulated in f64.
pub fn inertia(distances: &[f32]) -> f64 {
    distances.iter().map(|&d| f64::from(d)).sum()
}

/// Number of points in each of the `k` clusters.
pub fn cluster_sizes(labels: &[u32], k: usize) -> Result<Vec<usize>> {
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, l)| **l as usize >= k) {
        return Err(KMeansError::Labels(format!(
            "label {l} at position {i} is out of range for k = {k}"
        )));
    }
    Ok(crate::update::counts(labels, k))
}

/// The contingency table of two labellings of the same points: cell counts and both margins.
struct Contingency {
    cells: Vec<usize>,
    truth: Vec<usize>,
    pred: Vec<usize>,
    n: usize,
}

impl Contingency {
    fn new(truth: &[u32], pred: &[u32]) -> Result<Self> {
        if truth.len() != pred.len() {
            return Err(KMeansError::Labels(format!(
                "the two labellings have different lengths: {} and {}",
                truth.len(),
                pred.len()
            )));
        }
        if truth.is_empty() {
            return Err(KMeansError::Labels("the labellings are empty".into()));
        }
        // Ordered maps: the sums over cells run in the same order in every process, so the
        // scores are the same to the last bit.
        let mut cells: BTreeMap<(u32, u32), usize> = BTreeMap::new();
        let mut t: BTreeMap<u32, usize> = BTreeMap::new();
        let mut p: BTreeMap<u32, usize> = BTreeMap::new();
        for (&a, &b) in truth.iter().zip(pred) {
            *cells.entry((a, b)).or_default() += 1;
            *t.entry(a).or_default() += 1;
            *p.entry(b).or_default() += 1;
        }
        Ok(Self {
            cells: cells.into_values().collect(),
            truth: t.into_values().collect(),
            pred: p.into_values().collect(),
            n: truth.len(),
        })
    }
}

fn entropy(counts: &[usize], n: f64) -> f64 {
    counts
        .iter()
        .map(|&c| c as f64 / n)
        .map(|p| -p * p.ln())
        .sum()
}

/// Normalised mutual information `I(T; P) / ((H(T) + H(P)) / 2)`, in `[0, 1]`.
///
/// As in scikit-learn, two constant labellings score 1 and a zero mutual information scores 0.
pub fn nmi(truth: &[u32], pred: &[u32]) -> Result<f64> {
    let c = Contingency::new(truth, pred)?;
    if c.truth.len() == 1 && c.pred.len() == 1 {
        return Ok(1.0);
    }
    let n = c.n as f64;
    let (h_t, h_p) = (entropy(&c.truth, n), entropy(&c.pred, n));
    // I = H(T) + H(P) − H(T, P).
    let mi = (h_t + h_p - entropy(&c.cells, n)).max(0.0);
    if mi <= 1e-15 {
        return Ok(0.0);
    }
    Ok((mi / ((h_t + h_p) / 2.0)).min(1.0))
}

/// Adjusted Rand index: the Rand index corrected for chance, 1 for identical partitions and about
/// 0 for independent ones.
pub fn ari(truth: &[u32], pred: &[u32]) -> Result<f64> {
    let c = Contingency::new(truth, pred)?;
    let pairs = |v: &[usize]| {
        v.iter()
            .map(|&x| (x * x.saturating_sub(1)) as f64 / 2.0)
            .sum::<f64>()
    };
    let index = pairs(&c.cells);
    let (a, b) = (pairs(&c.truth), pairs(&c.pred));
    let total = (c.n * (c.n - 1)) as f64 / 2.0;
    let expected = if total > 0.0 { a * b / total } else { 0.0 };
    let max = (a + b) / 2.0;
    // Both partitions trivial in the same way (all singletons, or one cluster each): identical.
    if (max - expected).abs() < 1e-12 {
        return Ok(1.0);
    }
    Ok((index - expected) / (max - expected))
}

/// Accuracy when every cluster predicts its most frequent true label (many clusters may map to
/// the same label).
pub fn majority_vote_accuracy(truth: &[u32], pred: &[u32]) -> Result<f64> {
    Contingency::new(truth, pred)?;
    let mut per_cluster: HashMap<u32, HashMap<u32, usize>> = HashMap::new();
    for (&t, &p) in truth.iter().zip(pred) {
        *per_cluster.entry(p).or_default().entry(t).or_default() += 1;
    }
    let correct: usize = per_cluster
        .values()
        .map(|votes| votes.values().copied().max().unwrap_or(0))
        .sum();
    Ok(correct as f64 / truth.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    // truth = [0,0,0,1,1,1], pred = [0,0,1,1,2,2]. scikit-learn 1.9.1:
    //   adjusted_rand_score(truth, pred)           = 0.24242424242424243
    //   normalized_mutual_info_score(truth, pred)  = 0.5158037429793889
    // By hand: cells 2,1,1,2; Σ C(n_ij,2) = 2; Σ C(a_i,2) = 6; Σ C(b_j,2) = 3; C(6,2) = 15;
    //   expected = 6·3/15 = 1.2, max = 4.5 → ARI = 0.8/3.3 = 0.242424.
    //   I = (2/3) ln 2, H(T) = ln 2, H(P) = ln 3 → NMI = (2/3) ln 2 / ((ln 2 + ln 3)/2) = 0.515804.
    //   Majority vote: clusters {0,0} → 2, {0,1} → 1, {1,1} → 2: accuracy 5/6.
    const TRUTH: [u32; 6] = [0, 0, 0, 1, 1, 1];
    const PRED: [u32; 6] = [0, 0, 1, 1, 2, 2];

    #[test]
    fn hand_and_scikit_learn_values() {
        let a = ari(&TRUTH, &PRED).unwrap();
        assert!((a - 0.242_424_242_424_242_43).abs() < 1e-12, "{a}");
        let m = nmi(&TRUTH, &PRED).unwrap();
        let by_hand = (2.0 / 3.0) * 2f64.ln() / ((2f64.ln() + 3f64.ln()) / 2.0);
        assert!(
            (m - by_hand).abs() < 1e-12 && (m - 0.515_803_742_979_388_9).abs() < 1e-9,
            "{m}"
        );
        let acc = majority_vote_accuracy(&TRUTH, &PRED).unwrap();
        assert!((acc - 5.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn second_example_with_an_anti_correlated_labelling() {
        // truth = [0,0,1,1], pred = [0,1,0,1]: independent. scikit-learn 1.9.1:
        //   adjusted_rand_score = -0.5, normalized_mutual_info_score = 0.0.
        // By hand: cells all 1 → index 0; a = b = 2; total 6; expected 2/3; max 2;
        //   ARI = (0 − 2/3)/(2 − 2/3) = −0.5. Majority vote: 1 + 1 of 4 = 0.5.
        let (t, p) = ([0u32, 0, 1, 1], [0u32, 1, 0, 1]);
        assert!((ari(&t, &p).unwrap() + 0.5).abs() < 1e-12);
        assert_eq!(nmi(&t, &p).unwrap(), 0.0);
        assert_eq!(majority_vote_accuracy(&t, &p).unwrap(), 0.5);
    }

    #[test]
    fn invariances_and_degenerate_cases() {
        // Renaming clusters changes nothing; identical partitions score 1.
        let renamed: Vec<u32> = PRED.iter().map(|l| [7, 3, 9][*l as usize]).collect();
        assert_eq!(ari(&TRUTH, &renamed).unwrap(), ari(&TRUTH, &PRED).unwrap());
        assert!((nmi(&TRUTH, &renamed).unwrap() - nmi(&TRUTH, &PRED).unwrap()).abs() < 1e-15);
        assert_eq!(ari(&PRED, &renamed).unwrap(), 1.0);
        assert!((nmi(&PRED, &renamed).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(majority_vote_accuracy(&PRED, &renamed).unwrap(), 1.0);
        // scikit-learn conventions: constant vs constant → 1 (both), one point → 1.
        assert_eq!(ari(&[1, 1, 1], &[0, 0, 0]).unwrap(), 1.0);
        assert_eq!(nmi(&[1, 1, 1], &[0, 0, 0]).unwrap(), 1.0);
        assert_eq!(ari(&[4], &[2]).unwrap(), 1.0);
        // Constant prediction against two classes: no information.
        assert_eq!(nmi(&[0, 0, 1, 1], &[5, 5, 5, 5]).unwrap(), 0.0);
        assert_eq!(ari(&[0, 0, 1, 1], &[5, 5, 5, 5]).unwrap(), 0.0);
    }

    #[test]
    fn sizes_inertia_and_errors() {
        assert_eq!(cluster_sizes(&PRED, 4).unwrap(), vec![2, 2, 2, 0]);
        let err = cluster_sizes(&PRED, 2).unwrap_err().to_string();
        assert_eq!(
            err,
            "labels: label 2 at position 4 is out of range for k = 2"
        );
        assert_eq!(inertia(&[0.5, 1.25, 2.0]), 3.75);
        let err = nmi(&[0, 1], &[0]).unwrap_err().to_string();
        assert!(err.contains("lengths: 2 and 1"), "{err}");
        assert!(ari(&[], &[]).unwrap_err().to_string().contains("empty"));
        assert!(majority_vote_accuracy(&[0], &[0, 1]).is_err());
    }
}
