//! `cargo xtask cuda`: builds `dnc` with the `cuda` feature on a machine without a GPU or a system
//! CUDA installation.
//!
//! - `setup` unpacks NVIDIA's CUDA 13.0 wheels from PyPI (compiler, headers, CCCL, runtime, NVRTC,
//!   cuBLAS, cuRAND; cuDNN with `--cudnn`) into `.tools/cuda/`, completes the layout that `nvcc`
//!   and the linker expect (`targets/x86_64-linux`, `lib64`, unversioned `lib*.so` names) and builds
//!   a link-time stub of the driver library `libcuda.so`, which no wheel carries, exporting every
//!   `cu*` function cudarc binds. Nothing outside the workspace changes; finished steps are skipped.
//! - `build` points candle's and cudarc's build scripts at that tree (`CUDA_HOME`, `PATH`,
//!   `CUDA_COMPUTE_CAP`, `LIBRARY_PATH`) and builds the release binary into `target/cuda/`, apart
//!   from the CPU build in `target/`; it then lists the shared libraries the binary needs.
//!
//! The binary links `libcuda.so.1` and the CUDA libraries dynamically: where it runs, the driver
//! provides the first and `LD_LIBRARY_PATH` must reach the others (for instance the `nvidia/*/lib`
//! folders of a PyTorch install).

mod build;
mod stub;

pub(crate) use build::build;

use crate::util::{run_cmd, workspace_root};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The CUDA 13.0 toolkit wheels. nvcc stays at 13.0: the GPU machines' driver (580, CUDA 13.0)
/// cannot JIT the PTX of a newer nvcc.
const TOOLKIT_WHEELS: &[&str] = &[
    "nvidia-cuda-nvcc==13.0.88",
    "nvidia-cuda-crt==13.0.88",
    "nvidia-nvvm==13.0.88",
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cuda-cccl==13.0.85",
    "nvidia-cuda-nvrtc==13.0.88",
    "nvidia-cublas==13.0.2.14",
    "nvidia-curand==10.4.0.35",
];

/// cuDNN 9.21: the version cudarc's `cudnn` feature binds.
const CUDNN_WHEEL: &str = "nvidia-cudnn-cu13==9.21.1.3";

/// `pip install` without dependencies, byte-compilation or source builds.
const PIP_INSTALL: &str = "install --no-deps --no-compile --only-binary=:all: --disable-pip-version-check --progress-bar off";

/// What the stub's functions return: `CUDA_ERROR_STUB_LIBRARY`, as NVIDIA's own stubs do.
const CUDA_ERROR_STUB_LIBRARY: u32 = 34;

#[derive(Args)]
pub(crate) struct SetupArgs {
    /// Also install cuDNN (the `nvidia-cudnn-cu13` wheel), for `cargo xtask cuda build --cudnn`.
    #[arg(long)]
    cudnn: bool,
}

#[derive(Args)]
pub(crate) struct BuildArgs {
    /// Build with cuDNN convolutions (needs `cargo xtask cuda setup --cudnn` first).
    #[arg(long)]
    cudnn: bool,
    /// Compute capability the kernels are compiled for (90: H100/H200).
    #[arg(long, default_value = "90")]
    compute_cap: String,
}

/// `.tools/cuda/`: where the wheels are unpacked.
fn tools_dir() -> PathBuf {
    workspace_root().join(".tools").join("cuda")
}

/// The toolkit tree inside the unpacked wheels (`bin/`, `include/`, `lib/`, `nvvm/`).
fn toolkit_root(tools: &Path) -> PathBuf {
    tools.join("nvidia").join("cu13")
}

fn stub_dir(root: &Path) -> PathBuf {
    root.join("lib").join("stubs")
}

pub(crate) fn setup(args: SetupArgs) -> Result<()> {
    let tools = tools_dir();
    fs::create_dir_all(&tools).with_context(|| format!("creating {}", tools.display()))?;
    let mut wheels = TOOLKIT_WHEELS.to_vec();
    if args.cudnn {
        wheels.push(CUDNN_WHEEL);
    }
    install_wheels(&tools, &wheels)?;
    let root = toolkit_root(&tools);
    if !root.join("bin").join("nvcc").exists() {
        bail!(
            "the wheels unpacked but {} has no bin/nvcc: the wheel layout changed; remove {} and \
             check the pinned versions in xtask/src/cuda.rs",
            root.display(),
            tools.display()
        );
    }
    complete_layout(&root)?;
    if args.cudnn {
        let dir = cudnn_lib_dir(&tools).context("the cuDNN wheel installed no libcudnn.so.*")?;
        unversioned_links(&dir)?;
    }
    stub::build_driver_stub(&root)?;
    run_cmd(Command::new(root.join("bin").join("nvcc")).arg("--version"))
        .context("running the installed nvcc")?;
    eprintln!("CUDA toolkit ready in {}", root.display());
    Ok(())
}

/// The `*.dist-info` folder pip leaves for an installed `name==version` requirement.
fn dist_info(requirement: &str) -> String {
    let (name, version) = requirement.split_once("==").unwrap_or((requirement, ""));
    format!("{}-{version}.dist-info", name.replace('-', "_"))
}

/// Installs the wheels that are not there yet. pip's `--target` does not merge into an existing
/// `nvidia/` folder, so new wheels go to a staging folder that is then merged in.
fn install_wheels(tools: &Path, wheels: &[&str]) -> Result<()> {
    let missing: Vec<&str> = wheels
        .iter()
        .copied()
        .filter(|w| !tools.join(dist_info(w)).is_dir())
        .collect();
    if missing.is_empty() {
        eprintln!("wheels already installed in {}", tools.display());
        return Ok(());
    }
    let staging = tools.join(".staging");
    if staging.exists() {
        fs::remove_dir_all(&staging)?;
    }
    eprintln!(
        "installing {} from PyPI into {}",
        missing.join(" "),
        tools.display()
    );
    run_cmd(
        pip()
            .args(PIP_INSTALL.split(' '))
            .arg("--target")
            .arg(&staging)
            .args(&missing),
    )
    .context("installing the CUDA wheels from PyPI (is pypi.org reachable?)")?;
    merge_into(&staging, tools)?;
    fs::remove_dir_all(&staging)?;
    Ok(())
}

/// The workspace's `.venv` pip if there is one, otherwise `python3 -m pip`.
fn pip() -> Command {
    let venv_pip = workspace_root().join(".venv").join("bin").join("pip");
    if venv_pip.exists() {
        Command::new(venv_pip)
    } else {
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "pip"]);
        cmd
    }
}

/// Moves everything under `src` into `dst`, descending into folders both sides have.
fn merge_into(src: &Path, dst: &Path) -> Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let to = dst.join(entry.file_name());
        if entry.file_type()?.is_dir() && to.is_dir() && !to.is_symlink() {
            merge_into(&entry.path(), &to)?;
        } else {
            if let Ok(meta) = to.symlink_metadata() {
                if meta.is_dir() {
                    fs::remove_dir_all(&to)?;
                } else {
                    fs::remove_file(&to)?;
                }
            }
            fs::rename(entry.path(), &to).with_context(|| {
                format!("moving {} to {}", entry.path().display(), to.display())
            })?;
        }
    }
    Ok(())
}

/// What the wheels lack for nvcc and the linker: `lib64`, `targets/x86_64-linux/{include,lib}` and
/// unversioned library names.
fn complete_layout(root: &Path) -> Result<()> {
    symlink_once(&root.join("lib64"), "lib")?;
    let targets = root.join("targets").join("x86_64-linux");
    fs::create_dir_all(&targets)?;
    symlink_once(&targets.join("include"), "../../include")?;
    symlink_once(&targets.join("lib"), "../../lib")?;
    unversioned_links(&root.join("lib"))
}

fn symlink_once(link: &Path, target: &str) -> Result<()> {
    if link.symlink_metadata().is_ok() {
        return Ok(());
    }
    eprintln!("linking {} -> {target}", link.display());
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("creating the symlink {}", link.display()))
}

/// `libX.so -> libX.so.N` for every versioned library in `dir` that has no unversioned name.
fn unversioned_links(dir: &Path) -> Result<()> {
    let mut shortest: BTreeMap<String, String> = BTreeMap::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(at) = name.find(".so.") else {
            continue;
        };
        let base = name[..at + 3].to_string();
        let keep = shortest
            .get(&base)
            .is_some_and(|old| old.len() <= name.len());
        if !keep {
            shortest.insert(base, name);
        }
    }
    for (base, versioned) in shortest {
        symlink_once(&dir.join(base), &versioned)?;
    }
    Ok(())
}

/// The folder holding `libcudnn.so.*`, wherever the cuDNN wheel put it.
fn cudnn_lib_dir(tools: &Path) -> Option<PathBuf> {
    let candidates = [
        toolkit_root(tools).join("lib"),
        tools.join("nvidia").join("cudnn").join("lib"),
    ];
    candidates.into_iter().find(|dir| {
        fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libcudnn.so."))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dist_info_follows_pip_naming() {
        assert_eq!(
            dist_info("nvidia-cuda-nvcc==13.0.88"),
            "nvidia_cuda_nvcc-13.0.88.dist-info"
        );
    }
}
