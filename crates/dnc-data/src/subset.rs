//! [`Subset`]: a dataset made of chosen indices of another one (what an expert trains on).

use std::sync::Arc;

use crate::{DataError, Dataset};

/// The items `indices[0], indices[1], …` of a shared dataset, in that order.
///
/// Items are the inner dataset's items unchanged, so an image keeps its original index
/// (e.g. [`ImageItem::index`](crate::ImageItem::index)), and [`Dataset::source_index`] maps a
/// subset position back to it; downstream code can therefore check which images were seen.
#[derive(Debug)]
pub struct Subset<D> {
    inner: Arc<D>,
    indices: Vec<usize>,
}

impl<D: Dataset> Subset<D> {
    /// A subset of `inner`; every index must be in range (repeats are allowed).
    pub fn new(inner: Arc<D>, indices: Vec<usize>) -> Result<Self, DataError> {
        let len = inner.len();
        if let Some(&index) = indices.iter().find(|&&i| i >= len) {
            return Err(DataError::IndexOutOfRange { index, len });
        }
        Ok(Self { inner, indices })
    }

    /// The chosen indices of the inner dataset, in subset order.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The dataset the subset was cut from.
    pub fn inner(&self) -> &Arc<D> {
        &self.inner
    }
}

impl<D: Dataset> Dataset for Subset<D> {
    type Item = D::Item;

    fn len(&self) -> usize {
        self.indices.len()
    }

    fn get(&self, index: usize) -> Result<D::Item, DataError> {
        let &inner_index = self.indices.get(index).ok_or(DataError::IndexOutOfRange {
            index,
            len: self.indices.len(),
        })?;
        self.inner.get(inner_index)
    }

    fn get_sized(&self, index: usize, want: crate::SizeRequest<'_>) -> Result<D::Item, DataError> {
        let &inner_index = self.indices.get(index).ok_or(DataError::IndexOutOfRange {
            index,
            len: self.indices.len(),
        })?;
        self.inner.get_sized(inner_index, want)
    }

    fn source_index(&self, index: usize) -> usize {
        self.inner.source_index(self.indices[index])
    }

    fn read_group(&self, index: usize) -> Option<u32> {
        self.inner.read_group(self.indices[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemory;

    #[test]
    fn subset_reads_through_and_keeps_original_indices() {
        let base = Arc::new(InMemory::new((100u32..110).collect()));
        let s = Subset::new(base.clone(), vec![7, 2, 9]).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.get(0).unwrap(), 107);
        assert_eq!(s.get(2).unwrap(), 109);
        assert_eq!(s.indices(), &[7, 2, 9]);
        // A subset of a subset maps back to the base dataset.
        let s2 = Subset::new(Arc::new(s), vec![2, 1]).unwrap();
        assert_eq!(s2.get(0).unwrap(), 109);
        assert_eq!((s2.source_index(0), s2.source_index(1)), (9, 2));
        assert!(matches!(
            s2.get(2),
            Err(DataError::IndexOutOfRange { index: 2, len: 2 })
        ));
    }

    #[test]
    fn out_of_range_indices_are_rejected_at_construction() {
        let base = Arc::new(InMemory::new(vec![0u8; 4]));
        match Subset::new(base, vec![0, 4]) {
            Err(DataError::IndexOutOfRange { index: 4, len: 4 }) => {}
            other => panic!("expected IndexOutOfRange, got {other:?}"),
        }
    }
}
