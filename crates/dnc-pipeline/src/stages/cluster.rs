//! Cluster the embeddings with k-means (SPEC step 2) and describe the clusters.
//!
//! Writes `cluster/assignments.safetensors` (image id → cluster, and the centroids),
//! `cluster/sizes.json`, `cluster/composition.png` (class make-up of each cluster, when labels
//! exist) and a `cluster` entry in `summary.json`'s `info`. A cluster smaller than the experts'
//! batch size is an error naming it, or (`experts.small_cluster = "merge"`) it is merged into its
//! nearest cluster, which is logged and recorded. With `experts.partition = "random"` the images
//! are then shuffled among clusters of the same sizes (the paper's control), and each centroid
//! is recomputed as the mean of its new members so that routing by nearest centroid still
//! names each image's expert.
//!
//! The k-means seed is `divide.kmeans.seed` plus the run's `seed`.
//!
//! Memory does not grow with the data beyond 4 bytes per image: k-means fits on at most
//! `divide.kmeans.sample_size` rows read from the features on disk (by default
//! [`default_sample_size`]), and every image is then assigned by reading the features a chunk of
//! rows at a time. With no more images than the sample, it fits on all of them at once.

use crate::assignments::{ClusterInfo, NO_LABEL};
use crate::config::{ClusterLayer, Partition, SmallCluster};
use crate::datasets::{Split, open_split};
use crate::error::PipelineError;
use crate::feature_store::{FeatureMatrix, FeatureReader};
use crate::run::Run;
use crate::stage::Stage;
use candle_core::{Device, Tensor};
use dnc_cluster::{
    CentroidSums, ClusterAssignments, KMeansConfig, Metric, ari, majority_vote_accuracy, nmi,
};

/// Rows of features read at a time when assigning every image.
const ASSIGN_CHUNK_ROWS: usize = 8192;

/// The k-means sample when `divide.kmeans.sample_size` is not set: 1,000 images per cluster and
/// at least 25,000, so that the fit's memory does not grow with the data.
pub(crate) fn default_sample_size(n_clusters: usize) -> usize {
    n_clusters.saturating_mul(1000).max(25_000)
}

/// Every image's cluster and squared distance to its centroid, the centroids and the inertia
/// over all images.
struct Clustering {
    labels: Vec<u32>,
    distances: Vec<f32>,
    centroids: Tensor,
    metric: Metric,
    inertia: f64,
}

pub(crate) fn run(run: &Run) -> Result<(), PipelineError> {
    let store = FeatureReader::open(&run.dir.features_dir())?;
    let key = match run.cfg.divide.layer {
        ClusterLayer::Hidden => "hidden",
        ClusterLayer::Backbone => "backbone",
        ClusterLayer::Output => "output",
    };
    let data = store.matrix(key)?;
    let mut kmeans = run.cfg.divide.kmeans.clone();
    kmeans.seed = kmeans.seed.wrapping_add(run.cfg.seed);
    let clustering = cluster(&data, kmeans, &run.device)?;
    let metric = clustering.metric;
    let min_size = run.cfg.expert_train().batch_size;
    let (mut labels, mut centroids, merged) =
        resolve_small_clusters(&clustering, min_size, run.cfg.experts.small_cluster)?;
    if run.cfg.experts.partition == Partition::Random {
        dnc_core::SeededRng::derive_str(run.cfg.seed, "random-partition").shuffle(&mut labels);
        let mut sums = CentroidSums::new(centroids.dim(0)?, data.cols(), metric);
        for (start, count) in data.chunks(ASSIGN_CHUNK_ROWS) {
            sums.add(
                &data.range(start, count, &Device::Cpu)?,
                &labels[start..start + count],
            )?;
        }
        centroids = sums.centroids()?;
        tracing::info!("random partition with the k-means cluster sizes");
    }
    let ids: Vec<u64> = store.indices()?.into_iter().map(u64::from).collect();
    let nearness =
        (run.cfg.experts.partition != Partition::Random).then_some(clustering.distances.as_slice());
    let examples = pick_examples(&ids, &labels, nearness, centroids.dim(0)?);
    let assignments = ClusterAssignments::new(ids, labels, centroids, metric)?;
    run.dir.stage_dir(Stage::Cluster.name())?;
    assignments.save(&run.dir.assignments_path())?;
    let train = open_split(run, Split::Train)?;
    let mut info = describe(
        train.classes(),
        &assignments,
        &store.labels()?,
        merged,
        clustering.inertia,
    )?;
    write_examples(run, &train, &examples)?;
    info.examples = examples;
    let sizes_path = run.dir.cluster_sizes_path();
    let json = serde_json::to_string_pretty(&info).expect("cluster info serialises");
    crate::run_dir::write_atomic(&sizes_path, json.as_bytes())?;
    plot_composition(run, &info)?;
    run.dir.update_summary(|s| {
        s.info.insert(
            "cluster".into(),
            serde_json::to_value(&info).expect("serialises"),
        );
    })?;
    Ok(())
}

/// k-means on the rows of `data`: on all of them at once when they are no more than the sample,
/// else on the sample ([`dnc_cluster::sample_rows`]), then every row assigned chunk by chunk.
fn cluster(
    data: &FeatureMatrix,
    mut kmeans: KMeansConfig,
    device: &Device,
) -> Result<Clustering, PipelineError> {
    let n = data.rows();
    let sample = kmeans
        .sample_size
        .unwrap_or_else(|| default_sample_size(kmeans.n_clusters));
    kmeans.sample_size = None;
    if n <= sample {
        let fit = dnc_cluster::fit(&data.range(0, n, device)?, &kmeans)?;
        return Ok(Clustering {
            inertia: fit.distances.iter().map(|&d| f64::from(d)).sum(),
            distances: fit.distances,
            labels: fit.assignments,
            centroids: fit.model.centroids,
            metric: fit.model.metric,
        });
    }
    if kmeans.n_clusters > n {
        return Err(dnc_cluster::KMeansError::TooManyClusters {
            n_clusters: kmeans.n_clusters,
            n_points: n,
        }
        .into());
    }
    let rows = dnc_cluster::sample_rows(n, sample, kmeans.seed);
    tracing::info!("k-means on a sample of {sample} of {n} images, then assigning every image");
    let model = dnc_cluster::fit(&data.gather(&rows, device)?, &kmeans)?.model;
    let (mut labels, mut distances, mut inertia) =
        (Vec::with_capacity(n), Vec::with_capacity(n), 0.0);
    for (start, count) in data.chunks(ASSIGN_CHUNK_ROWS) {
        let a = model.predict_with_distances(&data.range(start, count, device)?)?;
        inertia += a.distances.iter().map(|&d| f64::from(d)).sum::<f64>();
        labels.extend(a.labels);
        distances.extend(a.distances);
    }
    Ok(Clustering {
        labels,
        distances,
        centroids: model.centroids,
        metric: model.metric,
        inertia,
    })
}

/// Merges clusters smaller than `min_size` into their nearest cluster (or fails, by policy), and
/// renumbers the remaining clusters `0..K'`.
fn resolve_small_clusters(
    fit: &Clustering,
    min_size: usize,
    policy: SmallCluster,
) -> Result<(Vec<u32>, Tensor, Vec<String>), PipelineError> {
    let mut labels = fit.labels.clone();
    let centroids: Vec<Vec<f32>> = fit.centroids.to_device(&Device::Cpu)?.to_vec2()?;
    let mut alive: Vec<usize> = (0..centroids.len()).collect();
    let mut merged = Vec::new();
    loop {
        let size = |c: usize| labels.iter().filter(|&&l| l as usize == c).count();
        let Some(&small) = alive
            .iter()
            .filter(|&&c| size(c) < min_size)
            .min_by_key(|&&c| size(c))
        else {
            break;
        };
        let n = size(small);
        if policy == SmallCluster::Error || alive.len() == 1 {
            return Err(PipelineError::bad_config(
                "experts.small_cluster",
                format!("{policy:?}").to_lowercase(),
                format!(
                    "cluster {small} has {n} images, fewer than the expert batch size {min_size}; \
                     lower the batch size, use fewer clusters, or set experts.small_cluster = \"merge\""
                ),
            ));
        }
        let nearest = alive
            .iter()
            .copied()
            .filter(|&c| c != small)
            .max_by(|&a, &b| {
                similarity(&centroids[small], &centroids[a], fit.metric).total_cmp(&similarity(
                    &centroids[small],
                    &centroids[b],
                    fit.metric,
                ))
            })
            .expect("another cluster exists");
        for l in labels.iter_mut().filter(|l| **l as usize == small) {
            *l = nearest as u32;
        }
        alive.retain(|&c| c != small);
        let msg = format!("cluster {small} ({n} images) into cluster {nearest}");
        tracing::warn!("merged {msg}: smaller than the expert batch size {min_size}");
        merged.push(msg);
    }
    let renumber: Vec<Option<u32>> = (0..centroids.len())
        .map(|c| alive.iter().position(|&a| a == c).map(|p| p as u32))
        .collect();
    for l in labels.iter_mut() {
        *l = renumber[*l as usize].expect("labels only name live clusters");
    }
    let rows: Vec<f32> = alive.iter().flat_map(|&c| centroids[c].clone()).collect();
    let dim = centroids.first().map_or(0, Vec::len);
    let kept = Tensor::from_vec(rows, (alive.len(), dim), &Device::Cpu)?;
    Ok((labels, kept, merged))
}

fn similarity(a: &[f32], b: &[f32], metric: Metric) -> f64 {
    match metric {
        Metric::Cosine => a.iter().zip(b).map(|(x, y)| f64::from(x * y)).sum(),
        Metric::Euclidean => -a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from((x - y).powi(2)))
            .sum::<f64>(),
    }
}

fn describe(
    class_names: &[String],
    assignments: &ClusterAssignments,
    labels: &[u32],
    merged: Vec<String>,
    inertia: f64,
) -> Result<ClusterInfo, PipelineError> {
    let k = assignments.n_clusters();
    let class_names = class_names.to_vec();
    let labelled: Vec<(u32, u32)> = labels
        .iter()
        .zip(&assignments.labels)
        .filter(|(l, _)| **l != NO_LABEL)
        .map(|(l, c)| (*l, *c))
        .collect();
    let mut composition = vec![vec![0usize; class_names.len()]; k];
    for &(class, cluster) in &labelled {
        if let Some(cell) = composition[cluster as usize].get_mut(class as usize) {
            *cell += 1;
        }
    }
    let (truth, pred): (Vec<u32>, Vec<u32>) = labelled.into_iter().unzip();
    let scored = !truth.is_empty();
    Ok(ClusterInfo {
        k,
        sizes: assignments.sizes(),
        merged,
        nmi: if scored {
            Some(nmi(&truth, &pred)?)
        } else {
            None
        },
        ari: if scored {
            Some(ari(&truth, &pred)?)
        } else {
            None
        },
        purity: if scored {
            Some(majority_vote_accuracy(&truth, &pred)?)
        } else {
            None
        },
        composition,
        class_names,
        inertia,
        examples: Vec::new(),
    })
}

/// Images per cluster in `cluster/examples.png`, and the side of each thumbnail.
const EXAMPLES_PER_CLUSTER: usize = 10;
const THUMBNAIL: u32 = 48;

/// Per cluster, the dataset indices of up to [`EXAMPLES_PER_CLUSTER`] members: the nearest to
/// the centroid when `distances` are given, else the first by position.
fn pick_examples(
    ids: &[u64],
    labels: &[u32],
    distances: Option<&[f32]>,
    k: usize,
) -> Vec<Vec<u64>> {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (row, &label) in labels.iter().enumerate() {
        members[label as usize].push(row);
    }
    members
        .into_iter()
        .map(|mut rows| {
            if let Some(d) = distances {
                rows.sort_by(|&a, &b| d[a].total_cmp(&d[b]).then(a.cmp(&b)));
            }
            rows.iter()
                .take(EXAMPLES_PER_CLUSTER)
                .map(|&r| ids[r])
                .collect()
        })
        .collect()
}

/// `cluster/examples.png`: one row per cluster of its example images, each cut to its centred
/// square and shrunk to a thumbnail. An image that no longer loads is left blank.
fn write_examples(
    run: &Run,
    train: &dnc_data::ImageFolder,
    examples: &[Vec<u64>],
) -> Result<(), PipelineError> {
    use dnc_data::Dataset;
    let cell = THUMBNAIL + 2;
    let mut canvas = image::RgbImage::from_pixel(
        EXAMPLES_PER_CLUSTER as u32 * cell + 2,
        (examples.len() as u32).max(1) * cell + 2,
        image::Rgb([40, 40, 40]),
    );
    for (row, ids) in examples.iter().enumerate() {
        for (col, &id) in ids.iter().enumerate() {
            let Ok(item) = train.get(id as usize) else {
                continue;
            };
            let (w, h) = item.image.dimensions();
            let side = w.min(h);
            let square =
                image::imageops::crop_imm(&item.image, (w - side) / 2, (h - side) / 2, side, side)
                    .to_image();
            let thumb = image::imageops::resize(
                &square,
                THUMBNAIL,
                THUMBNAIL,
                image::imageops::FilterType::Triangle,
            );
            let (x, y) = (2 + col as u32 * cell, 2 + row as u32 * cell);
            image::imageops::replace(&mut canvas, &thumb, i64::from(x), i64::from(y));
        }
    }
    let path = run.dir.cluster_examples_path();
    let mut png = Vec::new();
    canvas
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| PipelineError::Other(format!("{}: {e}", path.display())))?;
    crate::run_dir::write_atomic(&path, &png)
}

fn plot_composition(run: &Run, info: &ClusterInfo) -> Result<(), PipelineError> {
    if info.class_names.is_empty() || info.nmi.is_none() {
        return Ok(());
    }
    let chart = dnc_plot::StackedBars {
        title: "Cluster composition by class".into(),
        x_label: "cluster".into(),
        y_label: "images".into(),
        categories: (0..info.k).map(|c| c.to_string()).collect(),
        stacks: info.class_names.clone(),
        values: info
            .composition
            .iter()
            .map(|row| row.iter().map(|&v| v as f64).collect())
            .collect(),
        ..dnc_plot::StackedBars::default()
    };
    let path = run.dir.cluster_composition_path();
    dnc_plot::stacked_bar_chart(&path, &chart).map_err(|e| PipelineError::Other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature_store::FeatureWriter;

    /// Blobs written to a feature store in batches of 37 rows.
    fn store_of_blobs(dir: &std::path::Path, n: usize, k: usize) -> (FeatureReader, Vec<u32>) {
        let (data, truth) = dnc_cluster::gaussian_blobs(n, 8, k, 0.05, 5, &Device::Cpu).unwrap();
        let dest = dir.join("features");
        let mut w = FeatureWriter::create(&dest, &["hidden"]).unwrap();
        for start in (0..n).step_by(37) {
            let len = 37.min(n - start);
            let ids: Vec<u32> = (start as u32..(start + len) as u32).collect();
            w.append(
                &[data.narrow(0, start, len).unwrap()],
                &ids,
                &truth[start..start + len],
            )
            .unwrap();
        }
        w.finish().unwrap();
        (FeatureReader::open(&dest).unwrap(), truth)
    }

    #[test]
    fn a_sampled_fit_assigns_every_image_by_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (store, truth) = store_of_blobs(dir.path(), 1000, 4);
        let data = store.matrix("hidden").unwrap();
        let mut cfg = KMeansConfig::new(4);
        cfg.sample_size = Some(120);
        let sampled = cluster(&data, cfg.clone(), &Device::Cpu).unwrap();
        assert_eq!(sampled.labels.len(), 1000);
        assert!(ari(&truth, &sampled.labels).unwrap() > 0.99);
        // The same as the in-memory fit on the same sample followed by an assignment.
        let rows = dnc_cluster::sample_rows(1000, 120, cfg.seed);
        let mut on_sample = cfg.clone();
        on_sample.sample_size = None;
        let model = dnc_cluster::fit(&data.gather(&rows, &Device::Cpu).unwrap(), &on_sample)
            .unwrap()
            .model;
        let all = data.range(0, 1000, &Device::Cpu).unwrap();
        let direct = model.predict_with_distances(&all).unwrap();
        assert_eq!(sampled.labels, direct.labels);
        let inertia: f64 = direct.distances.iter().map(|&d| f64::from(d)).sum();
        assert!((sampled.inertia - inertia).abs() < 1e-6 * inertia.max(1.0));
        // No more images than the sample: one fit on all of them, as dnc_cluster::fit does.
        cfg.sample_size = Some(5000);
        let whole = cluster(&data, cfg.clone(), &Device::Cpu).unwrap();
        cfg.sample_size = None;
        let fit = dnc_cluster::fit(&all, &cfg).unwrap();
        assert_eq!(whole.labels, fit.assignments);
    }

    #[test]
    fn examples_are_the_nearest_members_of_each_cluster() {
        let ids = [10u64, 11, 12, 13, 14, 15];
        let labels = [0u32, 1, 0, 0, 1, 0];
        let d = [0.5f32, 0.1, 0.2, 0.2, 0.0, 0.9];
        // Ties keep the dataset order; cluster 2 is empty.
        assert_eq!(
            pick_examples(&ids, &labels, Some(&d), 3),
            vec![vec![12, 13, 10, 15], vec![14, 11], vec![]]
        );
        assert_eq!(
            pick_examples(&ids, &labels, None, 2),
            vec![vec![10, 12, 13, 15], vec![11, 14]]
        );
        let many: Vec<u32> = vec![0; 25];
        let ids: Vec<u64> = (0..25).collect();
        assert_eq!(
            pick_examples(&ids, &many, None, 1)[0].len(),
            EXAMPLES_PER_CLUSTER
        );
    }

    #[test]
    fn the_default_sample_grows_with_the_clusters_only() {
        assert_eq!(default_sample_size(5), 25_000);
        assert_eq!(default_sample_size(100), 100_000);
        assert_eq!(default_sample_size(usize::MAX), usize::MAX);
    }
}
