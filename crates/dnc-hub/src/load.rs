//! Loading ResNet checkpoints (safetensors) into a model's variables, with every tensor checked.
//!
//! Each tensor the model expects must be in the file with the same shape and a floating-point
//! dtype; f16, bf16 and f64 are converted to the model's dtype. The file's names are first
//! translated to torchvision's ([`Naming`]). Two kinds of extra tensors are accepted and
//! reported as ignored rather than as errors: BatchNorm `num_batches_tracked` counters (dnc does
//! not store them; they only matter to PyTorch's `momentum=None` mode) and the classifier
//! `fc.*` (dnc's backbones end at the pooled features). Every other problem (missing,
//! unexpected, shape or dtype mismatch) is collected into one [`HubError::Mismatch`] that lists
//! them all, and nothing is written to the model unless the whole file fits.

use crate::error::{HubError, Result};
use crate::naming::{Naming, architecture_hints};
use crate::problems::{DTypeMismatch, LoadProblems, ShapeMismatch};
use candle_core::safetensors::Load;
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::VarMap;
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype as StDtype, TensorView};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub path: PathBuf,
    /// The naming convention used (the detected one for [`Naming::Auto`]).
    pub naming: Naming,
    /// Number of model tensors filled from the file.
    pub loaded: usize,
    /// File tensors deliberately not loaded: `num_batches_tracked` counters and the `fc.*`
    /// classifier (names as in the file).
    pub ignored: Vec<String>,
    /// How many loaded tensors were stored in each file dtype (`"F16"`: 62, ...).
    pub source_dtypes: BTreeMap<String, usize>,
}

/// Tensors read from a checkpoint by torchvision name, with the report of the load.
#[derive(Debug, Clone)]
pub struct LoadedWeights {
    pub tensors: HashMap<String, Tensor>,
    pub report: LoadReport,
}

/// One tensor the model wants.
struct Want {
    name: String,
    shape: Shape,
    dtype: DType,
    device: Device,
}

/// Reads the tensors named in `expected` (torchvision names) from the safetensors file at
/// `path`, checked and converted to `dtype` on `device`.
///
/// # Shapes
/// Each returned tensor has the shape listed for its name in `expected`.
pub fn load_weights(
    path: &Path,
    expected: &[(String, Shape)],
    naming: Naming,
    dtype: DType,
    device: &Device,
) -> Result<LoadedWeights> {
    let wants: Vec<Want> = expected
        .iter()
        .map(|(name, shape)| Want {
            name: name.clone(),
            shape: shape.clone(),
            dtype,
            device: device.clone(),
        })
        .collect();
    read_checked(path, &wants, naming)
}

/// Fills the variables of `varmap` whose names start with `prefix` (e.g. `"backbone."`, or
/// `""` for all) from the safetensors file at `path`; the prefix is stripped to get the
/// torchvision name. Each variable keeps its dtype and device.
///
/// The model is left untouched when anything does not fit (see the module documentation).
pub fn load_into(varmap: &VarMap, prefix: &str, path: &Path, naming: Naming) -> Result<LoadReport> {
    let vars: Vec<(String, Var)> = {
        let data = varmap.data().lock().expect("varmap lock poisoned");
        data.iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
            .collect()
    };
    if vars.is_empty() {
        return Err(HubError::InvalidArgument {
            what: "prefix",
            reason: format!("no variable of the model starts with {prefix:?}"),
        });
    }
    let wants: Vec<Want> = vars
        .iter()
        .map(|(name, var)| Want {
            name: name.clone(),
            shape: var.shape().clone(),
            dtype: var.dtype(),
            device: var.device().clone(),
        })
        .collect();
    let loaded = read_checked(path, &wants, naming)?;
    for (name, var) in &vars {
        var.set(&loaded.tensors[name])?;
    }
    let r = &loaded.report;
    tracing::info!(
        path = %r.path.display(),
        naming = %r.naming,
        loaded = r.loaded,
        ignored = r.ignored.len(),
        dtypes = ?r.source_dtypes,
        "loaded checkpoint"
    );
    Ok(loaded.report)
}

/// The tensor names in the safetensors file at `path`, sorted, read from the
/// header alone (the tensors' bytes are not read).
pub fn tensor_names(path: &Path) -> Result<Vec<String>> {
    use std::io::Read;
    let read_err = |e| HubError::io("cannot read", path, e);
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(read_err)?;
    let len = u64::from_le_bytes(len);
    // The format's own limit on a header.
    if len > 100_000_000 {
        return Err(HubError::format(path, format!("a header of {len} bytes")));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(read_err)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| HubError::format(path, e))?;
    Ok(header
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name != "__metadata__")
        .collect())
}

fn read_checked(path: &Path, wants: &[Want], naming: Naming) -> Result<LoadedWeights> {
    let bytes = std::fs::read(path).map_err(|e| HubError::io("cannot read", path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| HubError::format(path, e))?;
    let file_names = st.names();
    let naming = naming.resolve(file_names.iter().copied());
    let mut problems = LoadProblems::new(path.to_path_buf(), naming);
    let mut by_name = index_by_torchvision_name(&st, naming, &mut problems);
    let mut chosen = Vec::with_capacity(wants.len());
    for want in wants {
        match by_name.remove(&want.name) {
            None => problems
                .missing
                .push((want.name.clone(), want.shape.dims().to_vec())),
            Some((file_name, view)) => {
                if check_one(want, file_name, &view, &mut problems) {
                    chosen.push((want, view));
                }
            }
        }
    }
    let mut ignored = Vec::new();
    for (name, (file_name, view)) in by_name {
        if is_ignorable(&name) {
            ignored.push(file_name.to_string());
        } else {
            problems
                .unexpected
                .push((file_name.to_string(), view.shape().to_vec()));
        }
    }
    if !problems.is_empty() {
        problems.sort();
        problems.hints = architecture_hints(problems.unexpected.iter().map(|(n, _)| n.as_str()));
        return Err(HubError::Mismatch(Box::new(problems)));
    }
    ignored.sort();
    convert_all(path, naming, chosen, ignored)
}

/// The file's tensors by torchvision name; a second tensor mapping to a taken name is unexpected.
fn index_by_torchvision_name<'a>(
    st: &'a SafeTensors<'a>,
    naming: Naming,
    problems: &mut LoadProblems,
) -> HashMap<String, (&'a str, TensorView<'a>)> {
    let mut by_name = HashMap::new();
    for (file_name, view) in st.iter() {
        match by_name.entry(naming.to_torchvision(file_name)) {
            Entry::Occupied(_) => problems
                .unexpected
                .push((file_name.to_string(), view.shape().to_vec())),
            Entry::Vacant(slot) => {
                slot.insert((file_name, view));
            }
        }
    }
    by_name
}

/// Records the problems of one expected tensor; `true` when it can be loaded.
fn check_one(
    want: &Want,
    file_name: &str,
    view: &TensorView<'_>,
    problems: &mut LoadProblems,
) -> bool {
    let mut ok = true;
    if view.shape() != want.shape.dims() {
        problems.shape_mismatches.push(ShapeMismatch {
            name: want.name.clone(),
            file_name: (file_name != want.name).then(|| file_name.to_string()),
            expected: want.shape.dims().to_vec(),
            found: view.shape().to_vec(),
        });
        ok = false;
    }
    if !dtype_fits(view.dtype(), want.dtype) {
        problems.dtype_mismatches.push(DTypeMismatch {
            name: want.name.clone(),
            expected: want.dtype,
            found: format!("{:?}", view.dtype()),
        });
        ok = false;
    }
    ok
}

fn convert_all(
    path: &Path,
    naming: Naming,
    chosen: Vec<(&Want, TensorView<'_>)>,
    ignored: Vec<String>,
) -> Result<LoadedWeights> {
    let mut tensors = HashMap::with_capacity(chosen.len());
    let mut source_dtypes = BTreeMap::new();
    for (want, view) in chosen {
        *source_dtypes
            .entry(format!("{:?}", view.dtype()))
            .or_insert(0) += 1;
        let tensor = view
            .load(&Device::Cpu)?
            .to_dtype(want.dtype)?
            .to_device(&want.device)?;
        tensors.insert(want.name.clone(), tensor);
    }
    let report = LoadReport {
        path: path.to_path_buf(),
        naming,
        loaded: tensors.len(),
        ignored,
        source_dtypes,
    };
    Ok(LoadedWeights { tensors, report })
}

fn is_float(dtype: StDtype) -> bool {
    matches!(
        dtype,
        StDtype::F16 | StDtype::BF16 | StDtype::F32 | StDtype::F64
    )
}

/// Floating-point files fit floating-point models whatever the precision; anything else must
/// match exactly.
fn dtype_fits(file: StDtype, model: DType) -> bool {
    if model.is_float() {
        is_float(file)
    } else {
        StDtype::from(model) == file
    }
}

/// BatchNorm batch counters and the classifier head, which dnc's backbones do not have.
fn is_ignorable(torchvision_name: &str) -> bool {
    torchvision_name.ends_with("num_batches_tracked") || torchvision_name.starts_with("fc.")
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
