//! What the stages hand each other through the run directory, read back by the stages after
//! them, the report and `dnc status`: the cluster of every training image and what the cluster
//! stage found. Not a stage: stages depend on it, never on each other.

use crate::error::PipelineError;
use crate::run::Run;
use candle_core::Device;
use dnc_cluster::ClusterAssignments;
use serde::{Deserialize, Serialize};

/// Label value (in the embed stage's `labels.npy`) of an image without a label.
pub(crate) const NO_LABEL: u32 = u32::MAX;

/// What the cluster stage found, as stored in `summary.json` (`info.cluster`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterInfo {
    /// Clusters after merging (the number of experts).
    pub k: usize,
    pub sizes: Vec<usize>,
    /// Clusters merged away, e.g. "cluster 3 (12 images) into cluster 1".
    pub merged: Vec<String>,
    /// Agreement with the class labels, when the data has them.
    pub nmi: Option<f64>,
    pub ari: Option<f64>,
    /// Majority-vote accuracy (purity).
    pub purity: Option<f64>,
    /// `composition[c][class]`: images of each class in each cluster.
    pub composition: Vec<Vec<usize>>,
    pub class_names: Vec<String>,
    /// Final k-means inertia.
    pub inertia: f64,
    /// Per cluster, the training images shown in `cluster/examples.png` (dataset indices): the
    /// nearest to the k-means centroid they were assigned to (for a cluster merged into another,
    /// its own former centroid; with a random partition, the first by index).
    #[serde(default)]
    pub examples: Vec<Vec<u64>>,
}

/// The cluster id of a training image that has none: the embed stage skipped it (an unreadable
/// or undecodable file), so the cluster stage never saw it.
pub const UNASSIGNED: u32 = u32::MAX;

/// The cluster of every image of the training split, by dataset index; [`UNASSIGNED`] for the
/// images the embed stage skipped.
pub fn load_assignments(run: &Run, n_images: usize) -> Result<Vec<u32>, PipelineError> {
    let path = run.dir.assignments_path();
    let a = ClusterAssignments::load(&path, &Device::Cpu)?;
    let mut by_index = vec![UNASSIGNED; n_images];
    for (&id, &label) in a.image_ids.iter().zip(&a.labels) {
        let slot = by_index.get_mut(id as usize).ok_or_else(|| {
            PipelineError::Other(format!(
                "{}: image id {id} is outside the training split of {n_images} images",
                path.display()
            ))
        })?;
        *slot = label;
    }
    Ok(by_index)
}

/// How many clusters `clusters` names: one more than its largest assigned id.
pub(crate) fn cluster_count(clusters: &[u32]) -> usize {
    clusters
        .iter()
        .filter(|&&c| c != UNASSIGNED)
        .map(|&c| c as usize + 1)
        .max()
        .unwrap_or(0)
}
