//! The link-time stub of the CUDA driver library (`libcuda.so`), which no wheel carries.

use super::{CUDA_ERROR_STUB_LIBRARY, stub_dir};
use crate::util::{cargo, run_cmd, workspace_root};
use anyhow::{Context, Result, bail};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `lib/stubs/libcuda.so` (soname `libcuda.so.1`): one function per `cu*` symbol of cudarc's
/// driver bindings, each returning `CUDA_ERROR_STUB_LIBRARY`. It only satisfies the linker; the
/// real driver replaces it at run time.
pub(super) fn build_driver_stub(root: &Path) -> Result<()> {
    let dir = stub_dir(root);
    let lib = dir.join("libcuda.so");
    if lib.exists() {
        eprintln!("driver stub already built: {}", lib.display());
        return Ok(());
    }
    let bindings = cudarc_driver_bindings()?;
    let text =
        fs::read_to_string(&bindings).with_context(|| format!("reading {}", bindings.display()))?;
    let symbols = driver_symbols(&text);
    if symbols.len() < 100 {
        bail!(
            "found only {} cu* functions in {}: cudarc's bindings changed shape",
            symbols.len(),
            bindings.display()
        );
    }
    fs::create_dir_all(&dir)?;
    let source = dir.join("libcuda_stub.c");
    fs::write(&source, stub_source(&symbols))?;
    eprintln!(
        "building the driver stub {} ({} symbols from {})",
        lib.display(),
        symbols.len(),
        bindings.display()
    );
    run_cmd(
        Command::new("gcc")
            .args(["-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o"])
            .arg(&lib)
            .arg(&source),
    )
    .context("building the driver stub needs gcc (apt-get install gcc)")
}

/// cudarc's driver bindings (`src/driver/sys/mod.rs`) in the cargo registry, fetching the
/// workspace's dependencies first if they are not there.
fn cudarc_driver_bindings() -> Result<PathBuf> {
    let version = locked_version("cudarc")?;
    if let Some(path) = find_in_registry(&version)? {
        return Ok(path);
    }
    eprintln!("cudarc {version} is not in the cargo registry yet: cargo fetch");
    run_cmd(cargo().arg("fetch"))?;
    find_in_registry(&version)?.with_context(|| {
        format!("cudarc-{version}/src/driver/sys/mod.rs not found under $CARGO_HOME/registry/src")
    })
}

/// The version of `package` in the workspace's `Cargo.lock`.
fn locked_version(package: &str) -> Result<String> {
    let path = workspace_root().join("Cargo.lock");
    let lock: toml::Value = toml::from_str(&fs::read_to_string(&path)?)
        .with_context(|| format!("parsing {}", path.display()))?;
    let packages = lock.get("package").and_then(|p| p.as_array());
    packages
        .into_iter()
        .flatten()
        .find(|p| p.get("name").and_then(|n| n.as_str()) == Some(package))
        .and_then(|p| p.get("version")?.as_str().map(str::to_string))
        .with_context(|| format!("{package} is not in {}", path.display()))
}

fn find_in_registry(version: &str) -> Result<Option<PathBuf>> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let registry = cargo_home.join("registry").join("src");
    let Ok(indexes) = fs::read_dir(&registry) else {
        return Ok(None);
    };
    let relative = format!("cudarc-{version}/src/driver/sys/mod.rs");
    Ok(indexes
        .flatten()
        .map(|index| index.path().join(&relative))
        .find(|path| path.exists()))
}

/// Every `cu*` function name declared in the bindings (`fn cuInit(`, ...).
fn driver_symbols(bindings: &str) -> BTreeSet<String> {
    bindings
        .split("fn ")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let declared = rest[name.len()..].starts_with('(');
            (declared && name.starts_with("cu")).then_some(name)
        })
        .collect()
}

fn stub_source(symbols: &BTreeSet<String>) -> String {
    let mut c =
        String::from("/* Link-time stub of the CUDA driver (libcuda.so.1); never loaded. */\n");
    for name in symbols {
        c.push_str(&format!(
            "int {name}(void) {{ return {CUDA_ERROR_STUB_LIBRARY}; }}\n"
        ));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_symbols_are_the_declared_cu_functions() {
        let text = "pub unsafe fn cuInit(Flags: u32) -> CUresult {\n extern \"C\" { fn cuInit(Flags: u32); }\n\
                    fn cuMemAlloc_v2(p: *mut u64);\n fn helper(x: u8);\n // fn cuda is a word";
        let names: Vec<String> = driver_symbols(text).into_iter().collect();
        assert_eq!(names, ["cuInit", "cuMemAlloc_v2"]);
    }

    #[test]
    fn stub_source_defines_one_function_per_symbol() {
        let symbols: BTreeSet<String> = ["cuInit".to_string(), "cuDriverGetVersion".to_string()]
            .into_iter()
            .collect();
        let c = stub_source(&symbols);
        assert!(c.contains("int cuDriverGetVersion(void) { return 34; }\n"));
        assert!(c.contains("int cuInit(void) { return 34; }\n"));
        assert_eq!(c.matches("int cu").count(), 2);
    }
}
