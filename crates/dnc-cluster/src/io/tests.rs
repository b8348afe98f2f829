//! Round trips and rejections of the cluster files.

use super::*;
use crate::{KMeansConfig, fit, gaussian_blobs};

fn small_fit() -> KMeansFit {
    let (x, _) = gaussian_blobs(60, 3, 3, 0.1, 1, &Device::Cpu).unwrap();
    let cfg = KMeansConfig {
        n_clusters: 3,
        ..KMeansConfig::default()
    };
    fit(&x, &cfg).unwrap()
}

#[test]
fn safetensors_round_trip_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clusters.safetensors");
    let f = small_fit();
    let ids: Vec<u64> = (0..60).map(|i| 1000 + 7 * i).collect();
    let a = ClusterAssignments::from_fit(&f, ids.clone()).unwrap();
    a.save(&path).unwrap();
    let b = ClusterAssignments::load(&path, &Device::Cpu).unwrap();
    assert_eq!(b.image_ids, ids);
    assert_eq!(b.labels, f.assignments);
    assert_eq!(b.metric, Metric::Cosine);
    assert_eq!(
        b.centroids.to_vec2::<f32>().unwrap(),
        f.model.centroids.to_vec2::<f32>().unwrap()
    );
    assert_eq!(b.sizes(), f.sizes);
    let members = b.members(b.labels[0]);
    assert_eq!(members.len(), f.sizes[b.labels[0] as usize]);
    assert!(members.contains(&1000));
    // candle reads the same file (PyTorch's safetensors loader reads the same layout).
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    assert_eq!(
        tensors["assignments"].to_vec1::<u32>().unwrap(),
        f.assignments
    );
    assert_eq!(tensors["image_ids"].dims(), &[60]);
}

#[test]
fn sizes_summary_round_trips_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sizes.json");
    let f = small_fit();
    let s = SizesSummary::from_fit(&f);
    assert_eq!(
        (s.n_clusters, s.n_points, s.sizes.iter().sum::<usize>()),
        (3, 60, 60)
    );
    s.save(&path).unwrap();
    assert_eq!(SizesSummary::load(&path).unwrap(), s);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"metric\": \"cosine\""), "{text}");
    assert!(!dir.path().join("sizes.json.tmp").exists());
}

#[test]
fn bad_files_and_arguments_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    let err =
        ClusterAssignments::new(vec![1, 2], vec![0, 2], c.clone(), Metric::Euclidean).unwrap_err();
    assert!(err.to_string().contains("label 2 at position 1"), "{err}");
    let err =
        ClusterAssignments::new(vec![1], vec![0, 1], c.clone(), Metric::Euclidean).unwrap_err();
    assert!(
        err.to_string().contains("1 image ids for 2 labels"),
        "{err}"
    );

    let missing = dir.path().join("nope.safetensors");
    let err = ClusterAssignments::load(&missing, &Device::Cpu).unwrap_err();
    assert!(matches!(err, KMeansError::Io { .. }) && err.to_string().contains("nope.safetensors"));

    // A safetensors file that some other tool wrote.
    let other = dir.path().join("weights.safetensors");
    candle_core::safetensors::save(&HashMap::from([("w".to_string(), c)]), &other).unwrap();
    let err = ClusterAssignments::load(&other, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("weights.safetensors") && err.contains("dnc-cluster"),
        "{err}"
    );

    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file").unwrap();
    let err = ClusterAssignments::load(&junk, &Device::Cpu).unwrap_err();
    assert!(
        err.is_bad_input() && err.to_string().contains("junk.safetensors"),
        "{err}"
    );
}
