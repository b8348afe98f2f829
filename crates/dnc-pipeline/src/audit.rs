//! A dataset wrapper that records which images the loader actually read, so that a run can prove
//! (and a test can assert) that an expert saw only its own cluster's images.

use crate::error::PipelineError;
use dnc_data::{DataError, Dataset};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

/// Records the source index of every item read through it.
pub(crate) struct Audited<D> {
    inner: D,
    served: Mutex<BTreeSet<usize>>,
}

impl<D: Dataset> Audited<D> {
    pub(crate) fn new(inner: D) -> Self {
        Self {
            inner,
            served: Mutex::new(BTreeSet::new()),
        }
    }

    /// Source indices (indices in the original dataset) read so far, sorted.
    pub(crate) fn served(&self) -> Vec<usize> {
        self.served
            .lock()
            .expect("audit lock poisoned")
            .iter()
            .copied()
            .collect()
    }

    /// Writes `{"count": n, "indices": [...]}`.
    pub(crate) fn write_served(&self, path: &Path) -> Result<(), PipelineError> {
        let served = self.served();
        let json = serde_json::json!({"count": served.len(), "indices": served});
        crate::run_dir::write_atomic(path, json.to_string().as_bytes())
    }
}

impl<D: Dataset> Dataset for Audited<D> {
    type Item = D::Item;

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn get(&self, index: usize) -> Result<D::Item, DataError> {
        let source = self.inner.source_index(index);
        self.served
            .lock()
            .expect("audit lock poisoned")
            .insert(source);
        self.inner.get(index)
    }

    fn source_index(&self, index: usize) -> usize {
        self.inner.source_index(index)
    }
}
