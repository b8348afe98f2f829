//! `cargo xtask cuda build`: the release `dnc` with the `cuda` feature, against `.tools/cuda/`.

use super::{BuildArgs, CUDNN_WHEEL, cudnn_lib_dir, stub_dir, toolkit_root, tools_dir};
use crate::util::{cargo, run_cmd, workspace_root};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub(crate) fn build(args: BuildArgs) -> Result<()> {
    let tools = tools_dir();
    let root = toolkit_root(&tools);
    if !root.join("bin").join("nvcc").exists() || !stub_dir(&root).join("libcuda.so").exists() {
        bail!(
            "no CUDA toolkit in {}: run `cargo xtask cuda setup` first",
            root.display()
        );
    }
    let mut lib_dirs = vec![root.join("lib")];
    let mut features = vec!["cuda"];
    if args.cudnn {
        let Some(dir) = cudnn_lib_dir(&tools) else {
            bail!(
                "cuDNN is not installed in {}: run `cargo xtask cuda setup --cudnn` (adds the {} \
                 wheel)",
                tools.display(),
                CUDNN_WHEEL
            );
        };
        lib_dirs.push(dir);
        features.push("dnc-core/cudnn");
    }
    let target_dir = workspace_root().join("target").join("cuda");
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--package", "dnc-cli", "--bin", "dnc"])
        .arg("--features")
        .arg(features.join(","))
        .env("CARGO_TARGET_DIR", &target_dir);
    cuda_env(&mut cmd, &root, &lib_dirs, &args.compute_cap)?;
    eprintln!(
        "building dnc (release, features {}) into {}",
        features.join(","),
        target_dir.display()
    );
    let start = Instant::now();
    run_cmd(&mut cmd)?;
    let secs = start.elapsed().as_secs();
    let binary = target_dir.join("release").join("dnc");
    println!(
        "built {} in {}m{:02}s",
        binary.display(),
        secs / 60,
        secs % 60
    );
    print_needed(&binary, &lib_dirs)
}

/// Sets and prints what candle-kernels (via cudaforge) and cudarc read: nvcc and cicc on `PATH`,
/// the toolkit root, the compute capability, and where the linker finds the libraries and the stub.
fn cuda_env(cmd: &mut Command, root: &Path, lib_dirs: &[PathBuf], compute_cap: &str) -> Result<()> {
    let mut link_dirs = lib_dirs.to_vec();
    link_dirs.push(stub_dir(root));
    let prepend = |dirs: &[PathBuf], var: &str| -> Result<std::ffi::OsString> {
        let old = std::env::var_os(var).unwrap_or_default();
        let old = std::env::split_paths(&old).filter(|p| !p.as_os_str().is_empty());
        let dirs = dirs.iter().cloned().chain(old);
        std::env::join_paths(dirs).with_context(|| format!("a path in {var} contains ':'"))
    };
    let bins = [root.join("bin"), root.join("nvvm").join("bin")];
    let vars = [
        ("CUDA_HOME", root.as_os_str().to_owned()),
        ("CUDA_PATH", root.as_os_str().to_owned()),
        ("CUDA_ROOT", root.as_os_str().to_owned()),
        ("NVCC", root.join("bin").join("nvcc").into_os_string()),
        ("CUDA_COMPUTE_CAP", compute_cap.into()),
        ("PATH", prepend(&bins, "PATH")?),
        ("LIBRARY_PATH", prepend(&link_dirs, "LIBRARY_PATH")?),
        ("LD_LIBRARY_PATH", prepend(&link_dirs, "LD_LIBRARY_PATH")?),
    ];
    for (name, value) in vars {
        eprintln!("  {name}={}", value.to_string_lossy());
        cmd.env(name, value);
    }
    Ok(())
}

/// Prints the binary's `NEEDED` libraries and, for each, the local folder that holds it.
fn print_needed(binary: &Path, lib_dirs: &[PathBuf]) -> Result<()> {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(binary)
        .output()
        .context("listing the needed libraries needs readelf (apt-get install binutils)")?;
    if !out.status.success() {
        bail!("readelf -d {} failed: {}", binary.display(), out.status);
    }
    println!("shared libraries needed (NEEDED) by {}:", binary.display());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if !line.contains("(NEEDED)") {
            continue;
        }
        let Some(name) = line.split(['[', ']']).nth(1) else {
            continue;
        };
        let place = match lib_dirs.iter().find(|d| d.join(name).exists()) {
            Some(dir) => dir.display().to_string(),
            None if name == "libcuda.so.1" => "the NVIDIA driver".to_string(),
            None => "the system".to_string(),
        };
        println!("  {name:<22} {place}");
    }
    println!("where it runs, put the folders of the CUDA libraries on LD_LIBRARY_PATH");
    Ok(())
}
