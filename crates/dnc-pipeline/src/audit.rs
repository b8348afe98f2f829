//! A dataset wrapper that records which images the loader actually read, so that a run can prove
//! (and a test can assert) that an expert saw only its own cluster's images.
//!
//! Each newly read index is appended to a journal file as it is read, so a stage killed and
//! resumed still reports the reads made before the kill.

use crate::error::PipelineError;
use dnc_data::{DataError, Dataset};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

struct Record {
    served: BTreeSet<usize>,
    journal: File,
    path: PathBuf,
    /// The first journal write error, reported by [`Audited::write_served`].
    failed: Option<std::io::Error>,
}

/// Records the source index of every item read through it.
pub(crate) struct Audited<D> {
    inner: D,
    record: Mutex<Record>,
}

impl<D: Dataset> Audited<D> {
    /// Records into the journal at `journal`: continued when `resume` (the reads of an
    /// interrupted attempt count), started afresh otherwise.
    pub(crate) fn new(inner: D, journal: &Path, resume: bool) -> Result<Self, PipelineError> {
        let mut served = BTreeSet::new();
        if resume && journal.is_file() {
            let text =
                std::fs::read_to_string(journal).map_err(|e| PipelineError::io(journal, e))?;
            // A kill can cut the last line short (a prefix of another index): only lines ended
            // by a newline count; the cut read is recorded again when it happens again.
            let complete = text.rfind('\n').map_or("", |end| &text[..end]);
            served.extend(
                complete
                    .lines()
                    .filter_map(|l| l.trim().parse::<usize>().ok()),
            );
        }
        let mut options = std::fs::OpenOptions::new();
        options.create(true);
        if resume {
            options.append(true);
        } else {
            options.write(true).truncate(true);
        }
        let mut file = options
            .open(journal)
            .map_err(|e| PipelineError::io(journal, e))?;
        if resume {
            // Start on a fresh line after a cut-short one.
            file.write_all(b"\n")
                .map_err(|e| PipelineError::io(journal, e))?;
        }
        Ok(Self {
            inner,
            record: Mutex::new(Record {
                served,
                journal: file,
                path: journal.to_path_buf(),
                failed: None,
            }),
        })
    }

    /// Source indices (indices in the original dataset) read so far, sorted.
    pub(crate) fn served(&self) -> Vec<usize> {
        let record = self.record.lock().expect("audit lock poisoned");
        record.served.iter().copied().collect()
    }

    /// Writes `{"count": n, "indices": [...]}`.
    pub(crate) fn write_served(&self, path: &Path) -> Result<(), PipelineError> {
        {
            let mut record = self.record.lock().expect("audit lock poisoned");
            if let Some(e) = record.failed.take() {
                return Err(PipelineError::io(&record.path, e));
            }
        }
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
        self.note(index);
        self.inner.get(index)
    }

    fn get_sized(
        &self,
        index: usize,
        want: dnc_data::SizeRequest<'_>,
    ) -> Result<D::Item, DataError> {
        self.note(index);
        self.inner.get_sized(index, want)
    }

    fn source_index(&self, index: usize) -> usize {
        self.inner.source_index(index)
    }

    fn read_group(&self, index: usize) -> Option<u32> {
        self.inner.read_group(index)
    }
}

impl<D: Dataset> Audited<D> {
    /// Records item `index` as served (once), in memory and in the journal.
    fn note(&self, index: usize) {
        let source = self.inner.source_index(index);
        let mut record = self.record.lock().expect("audit lock poisoned");
        if record.served.insert(source) {
            let written = writeln!(record.journal, "{source}");
            if let Err(e) = written
                && record.failed.is_none()
            {
                record.failed = Some(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dnc_data::InMemory;

    #[test]
    fn reads_before_an_interruption_are_kept_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("served.log");
        let first =
            Audited::new(InMemory::new((0..6).collect::<Vec<u32>>()), &journal, false).unwrap();
        first.get(4).unwrap();
        first.get(1).unwrap();
        first.get(4).unwrap();
        drop(first);
        // A kill mid-write leaves a cut line (index 5 of 55, say): it does not count.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&journal)
            .unwrap()
            .write_all(b"5")
            .unwrap();
        let data = || InMemory::new((0..6).collect::<Vec<u32>>());
        let resumed = Audited::new(data(), &journal, true).unwrap();
        resumed.get(2).unwrap();
        assert_eq!(resumed.served(), [1, 2, 4]);
        let fresh = Audited::new(data(), &journal, false).unwrap();
        fresh.get(3).unwrap();
        assert_eq!(fresh.served(), [3]);
        let out = dir.path().join("served.json");
        fresh.write_served(&out).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
        assert_eq!(json["count"], 1);
    }

    /// Items in read groups of 3 that report the size they were asked to decode at.
    struct Grouped;

    impl Dataset for Grouped {
        type Item = (u32, u32);
        fn len(&self) -> usize {
            6
        }
        fn get(&self, _: usize) -> Result<(u32, u32), DataError> {
            Ok((100, 80))
        }
        fn get_sized(
            &self,
            _: usize,
            want: dnc_data::SizeRequest<'_>,
        ) -> Result<(u32, u32), DataError> {
            Ok(want(100, 80))
        }
        fn read_group(&self, index: usize) -> Option<u32> {
            Some(index as u32 / 3)
        }
    }

    #[test]
    fn sized_reads_are_recorded_and_groups_pass_through() {
        let dir = tempfile::tempdir().unwrap();
        let audited = Audited::new(Grouped, &dir.path().join("served.log"), false).unwrap();
        assert_eq!(
            audited.get_sized(4, &|w, h| (w / 4, h / 4)).unwrap(),
            (25, 20)
        );
        assert_eq!(audited.served(), [4]);
        assert_eq!(audited.read_group(4), Some(1));
    }
}
