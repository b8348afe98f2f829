//! Per-image features on disk, written and read a chunk of rows at a time, so that no stage
//! holds a matrix the size of the dataset.
//!
//! A store is a folder of NumPy `.npy` files (version 1.0, little-endian, C order), one per
//! matrix, all with the same number of rows: `<name>.npy` (`float32 [N, D]`) for each feature,
//! `indices.npy` and `labels.npy` (`uint32 [N]`). NumPy reads them as they are
//! (`numpy.load(path, mmap_mode="r")`). [`FeatureWriter`] appends rows under a temporary name and
//! renames the finished folder into place; [`FeatureReader`] reads ranges or chosen rows by
//! offset, through the OS page cache, never the whole file.

use crate::error::PipelineError;
use candle_core::{Device, Tensor};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Fills `buf` from `file` at byte `offset`.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

/// The bytes reserved for an `.npy` header (magic, version, length and the padded dict), so that
/// the final shape can be written over the placeholder in place.
const HEADER_BYTES: usize = 128;
const MAGIC: &[u8] = b"\x93NUMPY\x01\x00";

/// Element types of the stored matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    F32,
    U32,
}

impl Elem {
    fn descr(self) -> &'static str {
        match self {
            Elem::F32 => "<f4",
            Elem::U32 => "<u4",
        }
    }
}

fn header(elem: Elem, rows: usize, cols: Option<usize>) -> Vec<u8> {
    let shape = match cols {
        Some(d) => format!("({rows}, {d})"),
        None => format!("({rows},)"),
    };
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        elem.descr()
    );
    let fixed = MAGIC.len() + 2;
    while fixed + dict.len() + 1 < HEADER_BYTES {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    assert_eq!(
        out.len(),
        HEADER_BYTES,
        "the shape fits the reserved header"
    );
    out
}

/// Writes `values` as a `float32 [rows, cols]` NumPy file, in the format of the feature files
/// (e.g. for another library to read the same data: `numpy.load(path)`).
pub fn write_npy_f32(
    path: &Path,
    values: &[f32],
    rows: usize,
    cols: usize,
) -> Result<(), PipelineError> {
    if values.len() != rows * cols {
        return Err(PipelineError::Other(format!(
            "{}: {} values for a {rows}x{cols} matrix",
            path.display(),
            values.len()
        )));
    }
    let io = |e| PipelineError::io(path, e);
    let mut file = BufWriter::new(File::create(path).map_err(io)?);
    file.write_all(&header(Elem::F32, rows, Some(cols)))
        .map_err(io)?;
    for v in values {
        file.write_all(&v.to_le_bytes()).map_err(io)?;
    }
    file.flush().map_err(io)
}

/// One `.npy` file being appended to.
struct Column {
    name: String,
    elem: Elem,
    cols: Option<usize>,
    rows: usize,
    file: BufWriter<File>,
}

impl Column {
    fn create(
        dir: &Path,
        name: &str,
        elem: Elem,
        cols: Option<usize>,
    ) -> Result<Self, PipelineError> {
        let path = dir.join(format!("{name}.npy"));
        let file = File::create(&path).map_err(|e| PipelineError::io(&path, e))?;
        let mut file = BufWriter::new(file);
        file.write_all(&header(elem, 0, cols))
            .map_err(|e| PipelineError::io(&path, e))?;
        Ok(Self {
            name: name.to_string(),
            elem,
            cols,
            rows: 0,
            file,
        })
    }

    fn finish(self, dir: &Path) -> Result<(), PipelineError> {
        let path = dir.join(format!("{}.npy", self.name));
        let io = |e| PipelineError::io(&path, e);
        let mut file = self.file.into_inner().map_err(|e| io(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&header(self.elem, self.rows, self.cols))
            .map_err(io)?;
        file.sync_all().map_err(io)
    }
}

/// Appends batches of features to a new store; [`finish`](Self::finish) puts it in place.
pub(crate) struct FeatureWriter {
    tmp: PathBuf,
    dest: PathBuf,
    names: Vec<String>,
    /// One file per feature, created at the first batch (which gives the widths).
    features: Vec<Column>,
    indices: Column,
    labels: Column,
}

impl FeatureWriter {
    /// A writer of the features `names` (their widths are taken from the first batch) into
    /// `dest`, built in a temporary folder beside it.
    pub(crate) fn create(dest: &Path, names: &[&str]) -> Result<Self, PipelineError> {
        let file_name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "features".into());
        let tmp = dest.with_file_name(format!(".{file_name}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| PipelineError::io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| PipelineError::io(&tmp, e))?;
        Ok(Self {
            indices: Column::create(&tmp, "indices", Elem::U32, None)?,
            labels: Column::create(&tmp, "labels", Elem::U32, None)?,
            tmp,
            dest: dest.to_path_buf(),
            names: names.iter().map(|n| n.to_string()).collect(),
            features: Vec::new(),
        })
    }

    fn open_features(&mut self, dims: &[usize]) -> Result<(), PipelineError> {
        if self.features.is_empty() {
            self.features = self
                .names
                .iter()
                .zip(dims)
                .map(|(name, &d)| Column::create(&self.tmp, name, Elem::F32, Some(d)))
                .collect::<Result<Vec<_>, _>>()?;
        }
        Ok(())
    }

    /// Appends one batch: one `[B, D_i]` matrix per feature, and the rows' dataset indices and
    /// labels.
    pub(crate) fn append(
        &mut self,
        features: &[Tensor],
        indices: &[u32],
        labels: &[u32],
    ) -> Result<(), PipelineError> {
        let b = indices.len();
        if features.len() != self.names.len() || labels.len() != b {
            return Err(PipelineError::Other(format!(
                "feature store: a batch of {} matrices, {b} indices and {} labels for {} features",
                features.len(),
                labels.len(),
                self.names.len()
            )));
        }
        let dims = features
            .iter()
            .map(|t| t.dims2().map(|d| d.1))
            .collect::<candle_core::Result<Vec<_>>>()?;
        self.open_features(&dims)?;
        for (column, t) in self.features.iter_mut().zip(features) {
            let (rows, cols) = t.dims2()?;
            if rows != b || Some(cols) != column.cols {
                return Err(PipelineError::Other(format!(
                    "feature store: {} has {rows}x{cols} values for {b} rows of {:?}",
                    column.name, column.cols
                )));
            }
            let values: Vec<f32> = t
                .to_device(&Device::Cpu)?
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1()?;
            write_le(column, values.iter().map(|v| v.to_le_bytes()), &self.tmp)?;
            column.rows += b;
        }
        for (column, values) in [(&mut self.indices, indices), (&mut self.labels, labels)] {
            write_le(column, values.iter().map(|v| v.to_le_bytes()), &self.tmp)?;
            column.rows += b;
        }
        Ok(())
    }

    /// Writes the final shapes, syncs the files and renames the folder to its destination
    /// (replacing an older store).
    pub(crate) fn finish(mut self) -> Result<(), PipelineError> {
        // No batch at all: empty matrices of width 0.
        self.open_features(&vec![0; self.names.len()])?;
        for column in self.features {
            column.finish(&self.tmp)?;
        }
        self.indices.finish(&self.tmp)?;
        self.labels.finish(&self.tmp)?;
        if self.dest.exists() {
            std::fs::remove_dir_all(&self.dest).map_err(|e| PipelineError::io(&self.dest, e))?;
        }
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| PipelineError::io(&self.dest, e))
    }
}

fn write_le(
    column: &mut Column,
    values: impl Iterator<Item = [u8; 4]>,
    dir: &Path,
) -> Result<(), PipelineError> {
    for v in values {
        column
            .file
            .write_all(&v)
            .map_err(|e| PipelineError::io(&dir.join(format!("{}.npy", column.name)), e))?;
    }
    Ok(())
}

/// Reads a store written by [`FeatureWriter`].
pub(crate) struct FeatureReader {
    dir: PathBuf,
    rows: usize,
}

/// One opened `[N, D]` float matrix of a store.
pub(crate) struct FeatureMatrix {
    path: PathBuf,
    file: File,
    rows: usize,
    cols: usize,
}

impl FeatureReader {
    /// Opens the store at `dir`, checking that its index file is there.
    pub(crate) fn open(dir: &Path) -> Result<Self, PipelineError> {
        let index = dir.join("indices.npy");
        if !index.is_file() {
            return Err(PipelineError::Other(format!(
                "{} is missing: the features were not written (or by an older dnc, as \
                 embed/features.safetensors); run `dnc stage embed` again",
                index.display()
            )));
        }
        let (rows, _) = read_header(&index, Elem::U32)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            rows,
        })
    }

    /// The dataset index of every row.
    pub(crate) fn indices(&self) -> Result<Vec<u32>, PipelineError> {
        self.u32_column("indices")
    }

    /// The label of every row (`u32::MAX` where unknown).
    pub(crate) fn labels(&self) -> Result<Vec<u32>, PipelineError> {
        self.u32_column("labels")
    }

    fn u32_column(&self, name: &str) -> Result<Vec<u32>, PipelineError> {
        let path = self.dir.join(format!("{name}.npy"));
        let (rows, _) = read_header(&path, Elem::U32)?;
        let file = File::open(&path).map_err(|e| PipelineError::io(&path, e))?;
        let mut bytes = vec![0u8; rows * 4];
        read_at(&file, &mut bytes, HEADER_BYTES as u64).map_err(|e| PipelineError::io(&path, e))?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// The float matrix `name`.
    pub(crate) fn matrix(&self, name: &str) -> Result<FeatureMatrix, PipelineError> {
        let path = self.dir.join(format!("{name}.npy"));
        if !path.exists() {
            return Err(PipelineError::Other(format!(
                "{}: the features have no {name:?} matrix",
                self.dir.display()
            )));
        }
        let (rows, cols) = read_header(&path, Elem::F32)?;
        let cols =
            cols.ok_or_else(|| PipelineError::Other(format!("{}: not a matrix", path.display())))?;
        if rows != self.rows {
            return Err(PipelineError::Other(format!(
                "{}: {rows} rows where the index has {}",
                path.display(),
                self.rows
            )));
        }
        let file = File::open(&path).map_err(|e| PipelineError::io(&path, e))?;
        Ok(FeatureMatrix {
            path,
            file,
            rows,
            cols,
        })
    }
}

impl FeatureMatrix {
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    /// Rows `start..start + count` as a `[count, D]` tensor on `device`, read in pieces of about
    /// a megabyte so that only the values themselves are held.
    pub(crate) fn range(
        &self,
        start: usize,
        count: usize,
        device: &Device,
    ) -> Result<Tensor, PipelineError> {
        let width = self.cols * 4;
        let rows_per_read = ((1 << 20) / width.max(1)).max(1);
        let mut values = Vec::with_capacity(count * self.cols);
        let mut bytes = Vec::new();
        let mut row = start;
        while row < start + count {
            let rows = rows_per_read.min(start + count - row);
            bytes.resize(rows * width, 0);
            read_at(&self.file, &mut bytes, (HEADER_BYTES + row * width) as u64)
                .map_err(|e| PipelineError::io(&self.path, e))?;
            values.extend(f32s(&bytes));
            row += rows;
        }
        Ok(Tensor::from_vec(values, (count, self.cols), device)?)
    }

    /// The chosen rows (in the order given) as a `[rows.len(), D]` tensor on `device`.
    pub(crate) fn gather(&self, rows: &[usize], device: &Device) -> Result<Tensor, PipelineError> {
        let width = self.cols * 4;
        let mut values = Vec::with_capacity(rows.len() * self.cols);
        let mut row = vec![0u8; width];
        for &r in rows {
            read_at(&self.file, &mut row, (HEADER_BYTES + r * width) as u64)
                .map_err(|e| PipelineError::io(&self.path, e))?;
            values.extend(f32s(&row));
        }
        Ok(Tensor::from_vec(values, (rows.len(), self.cols), device)?)
    }

    /// Consecutive row ranges of at most `chunk` rows covering the matrix.
    pub(crate) fn chunks(&self, chunk: usize) -> impl Iterator<Item = (usize, usize)> + use<> {
        let (n, chunk) = (self.rows, chunk.max(1));
        (0..n.div_ceil(chunk)).map(move |i| (i * chunk, chunk.min(n - i * chunk)))
    }
}

fn f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The shape of an `.npy` file written by [`FeatureWriter`]: rows and, for a matrix, columns.
fn read_header(path: &Path, elem: Elem) -> Result<(usize, Option<usize>), PipelineError> {
    let bad = |why: &str| {
        PipelineError::Other(format!(
            "{}: not a feature file written by dnc ({why}); run `dnc stage embed` again",
            path.display()
        ))
    };
    let file = File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let mut head = [0u8; HEADER_BYTES];
    read_at(&file, &mut head, 0).map_err(|e| PipelineError::io(path, e))?;
    if &head[..MAGIC.len()] != MAGIC {
        return Err(bad("no .npy 1.0 magic"));
    }
    let text = std::str::from_utf8(&head[MAGIC.len() + 2..]).map_err(|_| bad("header"))?;
    if !text.contains(&format!("'descr': '{}'", elem.descr())) {
        return Err(bad(&format!("expected {}", elem.descr())));
    }
    let shape = text
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("shape")))
        .collect::<Result<_, _>>()?;
    let (rows, cols) = match dims.as_slice() {
        [n] => (*n, None),
        [n, d] => (*n, Some(*d)),
        _ => return Err(bad("shape")),
    };
    let expected = HEADER_BYTES as u64 + (rows * cols.unwrap_or(1) * 4) as u64;
    let len = file
        .metadata()
        .map_err(|e| PipelineError::io(path, e))?
        .len();
    if len != expected {
        return Err(bad(&format!(
            "{len} bytes where its shape needs {expected}"
        )));
    }
    Ok((rows, cols))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_written_are_read_back_by_range_and_by_row() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("features");
        let mut w = FeatureWriter::create(&dest, &["a", "b"]).unwrap();
        let dev = Device::Cpu;
        for start in [0u32, 4] {
            let a: Vec<f32> = (0..12).map(|v| (start * 3) as f32 + v as f32).collect();
            let b: Vec<f32> = (0..8).map(|v| -(v as f32)).collect();
            w.append(
                &[
                    Tensor::from_vec(a, (4, 3), &dev).unwrap(),
                    Tensor::from_vec(b, (4, 2), &dev).unwrap(),
                ],
                &[start, start + 1, start + 2, start + 3],
                &[7, 7, u32::MAX, 1],
            )
            .unwrap();
        }
        assert!(!dest.exists(), "only a finished store is in place");
        w.finish().unwrap();
        let r = FeatureReader::open(&dest).unwrap();
        assert_eq!(r.indices().unwrap(), (0..8).collect::<Vec<u32>>());
        assert_eq!(r.labels().unwrap()[..4], [7, 7, u32::MAX, 1]);
        let a = r.matrix("a").unwrap();
        assert_eq!((a.rows(), a.cols()), (8, 3));
        let mid = a.range(3, 2, &dev).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(mid, vec![vec![9.0, 10.0, 11.0], vec![12.0, 13.0, 14.0]]);
        let picked = a.gather(&[7, 0], &dev).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(picked, vec![vec![21.0, 22.0, 23.0], vec![0.0, 1.0, 2.0]]);
        assert_eq!(
            a.chunks(3).collect::<Vec<_>>(),
            vec![(0, 3), (3, 3), (6, 2)]
        );
        let err = r.matrix("c").err().unwrap().to_string();
        assert!(err.contains("no \"c\" matrix"), "{err}");
    }

    #[test]
    fn the_files_are_npy_with_their_final_shape() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        let mut w = FeatureWriter::create(&dest, &["x"]).unwrap();
        let t = Tensor::new(&[[1f32, 2.0], [3.0, 4.0], [5.0, 6.0]], &Device::Cpu).unwrap();
        w.append(&[t], &[0, 1, 2], &[0, 0, 0]).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(dest.join("x.npy")).unwrap();
        assert_eq!(&bytes[..8], MAGIC);
        let header = std::str::from_utf8(&bytes[10..HEADER_BYTES]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(bytes.len(), HEADER_BYTES + 6 * 4);
        // A file cut short is refused with its path.
        std::fs::write(dest.join("x.npy"), &bytes[..bytes.len() - 4]).unwrap();
        let err = FeatureReader::open(&dest)
            .unwrap()
            .matrix("x")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("x.npy") && err.contains("bytes where its shape needs"),
            "{err}"
        );
    }
}
