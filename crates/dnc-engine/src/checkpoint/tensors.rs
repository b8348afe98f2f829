//! Safetensors I/O with name checking: loading reports every missing, unexpected and
//! mismatched name at once instead of failing on the first.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarMap;

use crate::error::{EngineError, NameMismatch};

/// Writes named tensors to a safetensors file.
pub(crate) fn write_tensors(
    tensors: &HashMap<String, Tensor>,
    path: &Path,
) -> Result<(), EngineError> {
    candle_core::safetensors::save(tensors, path)
        .map_err(|e| EngineError::checkpoint(path, format!("cannot write tensors: {e}")))
}

/// Reads every tensor of a safetensors file onto the CPU.
pub(crate) fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>, EngineError> {
    if !path.is_file() {
        return Err(EngineError::checkpoint(path, "file not found"));
    }
    candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| EngineError::checkpoint(path, format!("cannot read tensors: {e}")))
}

/// Compares the tensors of a file with the `(name, shape, dtype)` expected by the model.
/// With `allow_missing`, names the model has and the file lacks are accepted.
pub(crate) fn check_names(
    path: &Path,
    file: &HashMap<String, Tensor>,
    expected: &[(String, Shape, DType)],
    allow_missing: bool,
) -> Result<(), EngineError> {
    let mut mismatch = NameMismatch::default();
    for (name, shape, dtype) in expected {
        match file.get(name) {
            None if !allow_missing => mismatch.missing.push(name.clone()),
            None => {}
            Some(t) if t.shape() != shape || t.dtype() != *dtype => {
                mismatch.mismatched.push(format!(
                    "{name}: file {:?} {:?} vs model {:?} {dtype:?}",
                    t.dims(),
                    t.dtype(),
                    shape.dims()
                ));
            }
            Some(_) => {}
        }
    }
    mismatch.unexpected = file
        .keys()
        .filter(|k| !expected.iter().any(|(name, _, _)| name == *k))
        .cloned()
        .collect();
    for names in [
        &mut mismatch.missing,
        &mut mismatch.unexpected,
        &mut mismatch.mismatched,
    ] {
        names.sort();
    }
    if mismatch.is_empty() {
        Ok(())
    } else {
        Err(EngineError::StateMismatch {
            path: path.to_path_buf(),
            mismatch,
        })
    }
}

/// Saves every variable of `varmap` (parameters and buffers) to a safetensors file.
pub fn save_varmap(varmap: &VarMap, path: &Path) -> Result<(), EngineError> {
    let tensors: HashMap<String, Tensor> = {
        let data = varmap.data().lock().expect("varmap lock poisoned");
        data.iter()
            .map(|(name, var)| (name.clone(), var.as_detached_tensor()))
            .collect()
    };
    write_tensors(&tensors, path)
}

/// Restores the values of a safetensors file into the existing variables of `varmap`, on
/// their devices. The file must hold exactly the map's names with the same shapes and dtypes;
/// otherwise nothing is changed and the error lists every difference.
pub fn load_varmap(varmap: &VarMap, path: &Path) -> Result<(), EngineError> {
    let file = read_for_varmap(varmap, path)?;
    assign(varmap, &file)
}

/// Reads a safetensors file and checks it against the names, shapes and dtypes of `varmap`.
pub(crate) fn read_for_varmap(
    varmap: &VarMap,
    path: &Path,
) -> Result<HashMap<String, Tensor>, EngineError> {
    let file = read_tensors(path)?;
    let expected: Vec<(String, Shape, DType)> = {
        let data = varmap.data().lock().expect("varmap lock poisoned");
        data.iter()
            .map(|(name, var)| (name.clone(), var.shape().clone(), var.dtype()))
            .collect()
    };
    check_names(path, &file, &expected, false)?;
    Ok(file)
}

/// Sets every variable of `varmap` to its value in `values` (checked by [`read_for_varmap`]).
pub(crate) fn assign(varmap: &VarMap, values: &HashMap<String, Tensor>) -> Result<(), EngineError> {
    let data = varmap.data().lock().expect("varmap lock poisoned");
    for (name, var) in data.iter() {
        let Some(value) = values.get(name) else {
            continue;
        };
        var.set(&value.to_device(var.device())?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn map(entries: &[(&str, &[usize])]) -> VarMap {
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().unwrap();
            for (i, (name, shape)) in entries.iter().enumerate() {
                let n: usize = shape.iter().product();
                let values: Vec<f32> = (0..n).map(|j| (i * 100 + j) as f32).collect();
                let var = Var::from_vec(values, *shape, &Device::Cpu).unwrap();
                data.insert(name.to_string(), var);
            }
        }
        varmap
    }

    fn values(varmap: &VarMap, name: &str) -> Vec<f32> {
        let data = varmap.data().lock().unwrap();
        data[name].flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn round_trip_restores_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let src = map(&[("a", &[2, 3]), ("b", &[4])]);
        save_varmap(&src, &path).unwrap();
        let dst = map(&[("b", &[4]), ("a", &[2, 3])]);
        assert_ne!(values(&dst, "a"), values(&src, "a"));
        load_varmap(&dst, &path).unwrap();
        assert_eq!(values(&dst, "a"), values(&src, "a"));
        assert_eq!(values(&dst, "b"), values(&src, "b"));
    }

    #[test]
    fn load_lists_missing_unexpected_and_mismatched_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        save_varmap(&map(&[("a", &[2, 3]), ("b", &[4]), ("d", &[1])]), &path).unwrap();
        let dst = map(&[("a", &[3, 2]), ("c", &[1]), ("d", &[1])]);
        let before = values(&dst, "d");
        let err = load_varmap(&dst, &path).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.ends_with(
                "checkpoint does not match the model: missing [c]; unexpected [b]; \
                 mismatched [a: file [2, 3] F32 vs model [3, 2] F32]"
            ),
            "{msg}"
        );
        assert!(msg.contains("w.safetensors"), "{msg}");
        assert_eq!(values(&dst, "d"), before, "nothing is loaded on error");
    }

    #[test]
    fn dtype_differences_are_mismatches_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        save_varmap(&map(&[("a", &[2])]), &path).unwrap();
        let dst = VarMap::new();
        dst.data()
            .lock()
            .unwrap()
            .insert("a".into(), Var::zeros(2, DType::F64, &Device::Cpu).unwrap());
        let msg = load_varmap(&dst, &path).unwrap_err().to_string();
        assert!(
            msg.contains("mismatched [a: file [2] F32 vs model [2] F64]"),
            "{msg}"
        );
        let missing = dir.path().join("nope.safetensors");
        let msg = load_varmap(&dst, &missing).unwrap_err().to_string();
        assert!(msg.contains("nope.safetensors: file not found"), "{msg}");
    }
}
