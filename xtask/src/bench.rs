//! `cargo xtask bench`: throughput benchmarks, side by side with the PyTorch reference.
//!
//! - `train`: MoCLR training steps per second (images/s, median over timed steps after warm-up),
//!   achieved GFLOP/s and its fraction of the machine's peak, and peak memory, for the tiny conv
//!   net and the CIFAR ResNet-18; `--vs-torch` alternates runs of `dnc` and
//!   `../shared/anchors/torch_ref.py` on the same model, batch and thread count; `--simd avx2`
//!   or `both` also benchmarks a build capped at AVX2 + FMA (and PyTorch capped likewise), so
//!   AVX2 machines are measured on an AVX-512 one.
//! - `data`: the loader's rate (decode + two augmented views) against the tiny net's training rate.
//! - `kmeans`: k-means seconds for N = 50,000 (D = 128 / 4096, K = 10 / 100, 20 iterations),
//!   beside faiss-cpu on the same data (its training plus the assignment of every point, which
//!   is what dnc's `fit` returns).
//!
//! - `scale`: one base epoch, embed and cluster on synthetic unlabelled trees of 25k to 200k
//!   images: wall time and peak memory per stage, to see how they grow with the data.
//!
//! - `data-parallel`: one base epoch (`--models tiny,resnet18`) on CIFAR-10 in one process against two
//!   MPI ranks (`mpirun -n 2`, a `dnc` built with `mpi`), the machine's threads split between
//!   them: images/s and the share of a step spent in collectives.
//!
//! These machines' CPU time is unstable: only runs made back to back are compared, rounds
//! alternate, and each result carries the CPU pressure (`/proc/pressure/cpu`) seen during it.

use crate::util::{build_dnc, build_dnc_avx2, workspace_root};
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Args)]
pub(crate) struct BenchArgs {
    #[arg(value_enum)]
    what: BenchKind,
    /// Also run the PyTorch reference (needs `cargo xtask setup-torch`).
    #[arg(long)]
    vs_torch: bool,
    /// Models for `train` (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "tiny,resnet18")]
    models: Vec<String>,
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Timed steps per run (after warm-up).
    #[arg(long, default_value_t = 6)]
    steps: usize,
    /// Alternating rounds per model.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Threads for the model (dnc and PyTorch alike).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Image folder with `train/` (default: ../shared/datasets/cifar10, else fixtures).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Extra cargo features for the `dnc` build, e.g. `cuda`.
    #[arg(long)]
    features: Vec<String>,
    /// Dataset sizes for `scale` (comma separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "25000,50000,100000,200000"
    )]
    sizes: Vec<usize>,
    /// Kernel SIMD level for `train`: `native` (AVX-512 where the CPU has it), `avx2` (a build
    /// capped at AVX2 + FMA, and PyTorch capped likewise), or `both`, side by side.
    #[arg(long, value_enum, default_value = "native")]
    simd: SimdChoice,
    /// For `data --vs-torch`: a tree of photos (default: synthetic 500×375 JPEGs).
    #[arg(long)]
    photos: Option<PathBuf>,
    /// For `data --vs-torch`: images to load.
    #[arg(long, default_value_t = 1024)]
    photo_count: usize,
    /// For `data --vs-torch`: the views' side in pixels.
    #[arg(long, default_value_t = 224)]
    photo_size: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SimdChoice {
    Native,
    Avx2,
    Both,
}

/// One build to benchmark: its label, the `dnc` binary and the environment that caps PyTorch
/// (ATen, MKL and oneDNN) at the same level.
struct SimdBuild {
    label: &'static str,
    dnc: PathBuf,
    torch_env: Vec<(&'static str, &'static str)>,
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchKind {
    Train,
    /// A distillation step (teachers live, and targets cached) against a MoCLR step.
    Distill,
    Data,
    Kmeans,
    Scale,
    DataParallel,
}

pub(crate) fn run(args: BenchArgs) -> Result<()> {
    let data = args.data.clone().unwrap_or_else(default_data);
    if let BenchKind::Train | BenchKind::Kmeans = args.what {
        let mut builds = Vec::new();
        if args.simd != SimdChoice::Avx2 {
            builds.push(SimdBuild {
                label: "native",
                dnc: build_dnc(&args.features)?,
                torch_env: Vec::new(),
            });
        }
        if args.simd != SimdChoice::Native {
            builds.push(SimdBuild {
                label: "avx2",
                dnc: build_dnc_avx2(&args.features)?,
                torch_env: vec![
                    ("ATEN_CPU_CAPABILITY", "avx2"),
                    ("MKL_ENABLE_INSTRUCTIONS", "AVX2"),
                    ("ONEDNN_MAX_CPU_ISA", "AVX2"),
                    // faiss-cpu's dynamic dispatch picks its AVX2 kernels.
                    ("FAISS_SIMD_LEVEL", "AVX2"),
                ],
            });
        }
        return match args.what {
            BenchKind::Train => bench_train(&builds, &data, &args),
            _ => bench_kmeans(&builds, &args),
        };
    }
    if let BenchKind::DataParallel = args.what {
        let mut features = args.features.clone();
        features.push("mpi".into());
        return bench_data_parallel(&build_dnc(&features)?, &data, &args);
    }
    let dnc = build_dnc(&args.features)?;
    match args.what {
        BenchKind::Train | BenchKind::Kmeans | BenchKind::DataParallel => {
            unreachable!("handled above")
        }
        BenchKind::Data => bench_data(&dnc, &data, &args),
        BenchKind::Distill => bench_distill(&dnc, &data, &args),
        BenchKind::Scale => bench_scale(&dnc, &args),
    }
}

/// `../shared/datasets/cifar10` when present (real data), else the repository's fixtures.
fn default_data() -> PathBuf {
    let root = workspace_root();
    let shared = root.join("../shared/datasets/cifar10");
    if shared.join("train").is_dir() {
        shared
    } else {
        root.join("fixtures/cifar10-mini")
    }
}

/// The Python of the benchmark virtualenv (`cargo xtask setup-torch` makes it).
fn python() -> Result<PathBuf> {
    let py = workspace_root().join(".venv/bin/python");
    if !py.exists() {
        bail!(
            "{} is missing: run `cargo xtask setup-torch` first",
            py.display()
        );
    }
    Ok(py)
}

/// Runs a command and parses the last line of its stdout as JSON.
fn json_of(cmd: &mut Command) -> Result<Value> {
    let line = format!("{cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("could not start {line}"))?;
    if !out.status.success() {
        bail!("{line} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8(out.stdout)?;
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    let last = last.with_context(|| format!("{line} printed no JSON line:\n{stdout}"))?;
    Ok(serde_json::from_str(last)?)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => 0.5 * (xs[n / 2 - 1] + xs[n / 2]),
    }
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

fn bench_train(builds: &[SimdBuild], data: &Path, args: &BenchArgs) -> Result<()> {
    let train_limit = (args.batch * (args.steps + 2)).max(args.batch * 4);
    println!(
        "MoCLR step throughput: batch {}, {} timed steps, {} threads, {} rounds, data {}",
        args.batch,
        args.steps,
        args.threads,
        args.rounds,
        data.display()
    );
    let mut machine_shown = false;
    let mut rows = Vec::new();
    for model in &args.models {
        for build in builds {
            let (mut ours, mut theirs, mut our_mem, mut their_mem) =
                (vec![], vec![], vec![], vec![]);
            let (mut gflops, mut fraction) = (vec![], vec![]);
            let mut simd = String::new();
            for round in 0..args.rounds {
                let r = json_of(
                    Command::new(&build.dnc)
                        .env("RAYON_NUM_THREADS", args.threads.to_string())
                        .args(["bench", "train", "--model", model])
                        .args(["--batch", &args.batch.to_string()])
                        .args(["--steps", &args.steps.to_string()])
                        .args(["--threads", &args.threads.to_string()])
                        .arg("--data")
                        .arg(data.join("train")),
                )?;
                eprintln!("round {round} dnc ({}) {model}: {r}", build.label);
                if !machine_shown {
                    println!("CPU: {}; peak: {}", r["cpu"], r["peak_basis"]);
                    machine_shown = true;
                }
                simd = r["simd"].as_str().unwrap_or("?").to_string();
                ours.push(num(&r, "median_imgs_per_s"));
                our_mem.push(num(&r, "peak_rss_mib"));
                gflops.push(num(&r, "gflops"));
                fraction.push(num(&r, "peak_fraction"));
                if args.vs_torch {
                    let t = json_of(
                        Command::new(python()?)
                            .envs(build.torch_env.iter().copied())
                            .arg(workspace_root().join("../shared/anchors/torch_ref.py"))
                            .arg("--data")
                            .arg(data)
                            .args(["--backbone", model, "--epochs", "1", "--no-eval"])
                            .args(["--batch-size", &args.batch.to_string()])
                            .args(["--max-steps", &(args.steps + 2).to_string()])
                            .args(["--train-limit", &train_limit.to_string()])
                            .args(["--threads", &args.threads.to_string()]),
                    )?;
                    eprintln!("round {round} torch ({}) {model}: {t}", build.label);
                    theirs.push(num(&t, "median_imgs_per_s"));
                    their_mem.push(num(&t, "peak_rss_mib"));
                }
            }
            let (o, t) = (median(ours), median(theirs));
            rows.push(format!(
                "| {model} | {simd} | {o:.1} | {:.1} | {:.0}% | {} | {} | {:.0} | {} |",
                median(gflops),
                100.0 * median(fraction),
                fmt_opt(t, 1),
                fmt_opt(o / t, 2),
                median(our_mem),
                fmt_opt(median(their_mem), 0)
            ));
        }
    }
    println!(
        "| model | kernels | dnc img/s | dnc GFLOP/s | of peak | torch img/s | ratio | dnc peak MiB | torch peak MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

/// One base epoch, embed and cluster on synthetic unlabelled trees of growing size (32×32
/// JPEGs, `configs/cifar10-tiny.toml`, no decoded-image cache, K = 10), each stage its own
/// process: wall time and the process's peak RSS per stage.
fn bench_scale(dnc: &Path, args: &BenchArgs) -> Result<()> {
    let root = workspace_root().join("target/bench-scale");
    let config = workspace_root().join("configs/cifar10-tiny.toml");
    println!(
        "| images | base epoch s | embed s | cluster s | base peak MiB | embed peak MiB | cluster peak MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &n in &args.sizes {
        let images = root.join(format!("images-{n}"));
        synth_once(dnc, &images, n, (32, 32))?;
        let run = root.join(format!("run-{n}"));
        if run.exists() {
            std::fs::remove_dir_all(&run)?;
        }
        let status = Command::new(dnc)
            .arg("init")
            .arg("--config")
            .arg(&config)
            .arg("--data")
            .arg(&images)
            .arg("--out")
            .arg(&run)
            .args([
                "--set",
                "base.epochs=1",
                "--set",
                "data.cache_resized=false",
            ])
            .args([
                "--set",
                "data.train_limit=0",
                "--set",
                "divide.kmeans.n_clusters=10",
            ])
            .args(["--set", &format!("data.workers={}", args.threads)])
            .status()?;
        if !status.success() {
            bail!("dnc init for {n} images failed");
        }
        for stage in ["base", "embed", "cluster"] {
            let status = Command::new(dnc)
                .env("RAYON_NUM_THREADS", args.threads.to_string())
                .args(["stage", stage, "--run"])
                .arg(&run)
                .stderr(std::process::Stdio::null())
                .status()?;
            if !status.success() {
                bail!(
                    "dnc stage {stage} on {n} images failed (log: {})",
                    run.join("log.txt").display()
                );
            }
        }
        let summary: Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("summary.json"))?)?;
        let s = &summary["stages"];
        println!(
            "| {n} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
            num(&s["base"], "seconds"),
            num(&s["embed"], "seconds"),
            num(&s["cluster"], "seconds"),
            s["base"]["peak_rss_mib"],
            s["embed"]["peak_rss_mib"],
            s["cluster"]["peak_rss_mib"],
        );
    }
    Ok(())
}

/// One base epoch on `args.batch · args.steps` images of `data` for each of `args.models`,
/// alternating one process (`args.threads` threads) and two MPI ranks (half the threads each),
/// `args.rounds` times.
fn bench_data_parallel(dnc: &Path, data: &Path, args: &BenchArgs) -> Result<()> {
    let root = workspace_root().join("target/bench-data-parallel");
    let images = args.batch * args.steps;
    let per_rank = (args.threads / 2).max(1);
    println!(
        "base epoch: {images} images of {}, batch {}, {} threads in all, {} rounds",
        data.display(),
        args.batch,
        args.threads,
        args.rounds
    );
    let mut rows = Vec::new();
    for model in &args.models {
        let config = workspace_root().join(format!("configs/cifar10-{}.toml", model));
        if !config.is_file() {
            bail!("no configuration {} for model {model}", config.display());
        }
        let mut results: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
        for round in 0..args.rounds {
            for (i, ranks) in [1usize, 2].into_iter().enumerate() {
                let run = root.join(format!("run-{model}-{ranks}"));
                if run.exists() {
                    std::fs::remove_dir_all(&run)?;
                }
                let status = Command::new(dnc)
                    .args(["init", "--config"])
                    .arg(&config)
                    .arg("--data")
                    .arg(data)
                    .arg("--out")
                    .arg(&run)
                    .args(["--set", "base.epochs=1", "--set", "base.log_every=1"])
                    .args(["--set", &format!("base.batch_size={}", args.batch)])
                    .args(["--set", &format!("data.train_limit={images}")])
                    .args(["--set", "data.workers=1"])
                    .stderr(std::process::Stdio::null())
                    .status()?;
                if !status.success() {
                    bail!("dnc init into {} failed", run.display());
                }
                let threads = if ranks == 1 { args.threads } else { per_rank };
                let mut cmd = if ranks == 1 {
                    Command::new(dnc)
                } else {
                    let mut c = Command::new("mpirun");
                    c.args(["-n", "2", "--oversubscribe", "-x", "RAYON_NUM_THREADS"])
                        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
                        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
                        .arg(dnc);
                    c
                };
                let status = cmd
                    .env("RAYON_NUM_THREADS", threads.to_string())
                    .args(["stage", "base", "--run"])
                    .arg(&run)
                    .stderr(std::process::Stdio::null())
                    .status()?;
                if !status.success() {
                    bail!("{ranks}-process base stage failed (log: {})", run.display());
                }
                let (rate, comm) = base_epoch_rate(&run)?;
                eprintln!(
                    "{model} round {round}: {ranks} process(es): {rate:.1} img/s, communication {comm:.3}"
                );
                results[i].push((rate, comm));
            }
        }
        let stat = |r: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| median(r.iter().map(f).collect());
        let one = stat(&results[0], |r| r.0);
        let two = stat(&results[1], |r| r.0);
        let comm = stat(&results[1], |r| r.1);
        rows.push(format!(
            "| {model} | 1 × {} | {one:.1} | 1.00 | – |",
            args.threads
        ));
        rows.push(format!(
            "| {model} | 2 × {per_rank} | {two:.1} | {:.2} | {:.1}% |",
            two / one,
            100.0 * comm
        ));
    }
    println!(
        "| model | processes × threads | images/s | vs one process | communication share of a step |"
    );
    println!("|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

/// The base stage's images/s (its epoch record) and its steps' mean communication share (0
/// in one process), from `run/metrics.jsonl`.
fn base_epoch_rate(run: &Path) -> Result<(f64, f64)> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl"))?;
    let records: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let epoch = records
        .iter()
        .find(|r| r["stage"] == "base" && r["kind"] == "epoch")
        .context("no base epoch record")?;
    let comm: Vec<f64> = records
        .iter()
        .filter(|r| r["stage"] == "base" && r["kind"] == "step")
        .filter_map(|r| r["comm_share"].as_f64())
        .collect();
    let comm = if comm.is_empty() {
        0.0
    } else {
        comm.iter().sum::<f64>() / comm.len() as f64
    };
    Ok((num(epoch, "images_per_s"), comm))
}

/// Writes `n` synthetic `width × height` JPEGs into `dir` with `dnc bench synth`, unless a
/// finished set is already there (marked by `dir/.complete`).
fn synth_once(dnc: &Path, dir: &Path, n: usize, (width, height): (u32, u32)) -> Result<()> {
    let done = dir.join(".complete");
    if done.exists() {
        return Ok(());
    }
    eprintln!(
        "writing {n} synthetic {width}x{height} JPEGs into {}",
        dir.display()
    );
    json_of(
        Command::new(dnc)
            .args(["bench", "synth", "--n", &n.to_string()])
            .args([
                "--width",
                &width.to_string(),
                "--height",
                &height.to_string(),
            ])
            .arg("--out")
            .arg(dir),
    )?;
    std::fs::write(&done, b"")?;
    Ok(())
}

fn fmt_opt(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "-".into()
    }
}

fn bench_data(dnc: &Path, data: &Path, args: &BenchArgs) -> Result<()> {
    if args.vs_torch {
        return bench_photos_vs_torch(dnc, args);
    }
    let (mut loader, mut train) = (vec![], vec![]);
    for round in 0..args.rounds {
        let l = json_of(
            Command::new(dnc)
                .args(["bench", "data", "--batch", &args.batch.to_string()])
                .args(["--threads", &args.threads.to_string()])
                .arg("--data")
                .arg(data.join("train")),
        )?;
        let t = json_of(
            Command::new(dnc)
                .env("RAYON_NUM_THREADS", args.threads.to_string())
                .args(["bench", "train", "--model", "tiny"])
                .args(["--batch", &args.batch.to_string()])
                .args(["--steps", &args.steps.to_string()])
                .args(["--threads", &args.threads.to_string()])
                .arg("--data")
                .arg(data.join("train")),
        )?;
        eprintln!("round {round}: loader {l}, train {t}");
        loader.push(num(&l, "imgs_per_s"));
        train.push(num(&t, "median_imgs_per_s"));
    }
    let (l, t) = (median(loader), median(train));
    println!("| loader img/s (decode + 2 views) | tiny train img/s | ratio |");
    println!("|---|---|---|");
    println!("| {l:.0} | {t:.1} | {:.1} |", l / t);
    Ok(())
}

/// A distillation step against a MoCLR step, timed in turn in one process (`dnc bench
/// distill`), and what Divide and Contrast's training then costs against MoCLR's at equal
/// epochs (base T/2 and experts T/4 in MoCLR steps, distillation T/4).
fn bench_distill(dnc: &Path, data: &Path, args: &BenchArgs) -> Result<()> {
    println!(
        "| model | MoCLR s/step | distillation, live teachers | distillation, cached targets | DnC / MoCLR, live | DnC / MoCLR, cached |"
    );
    println!("|---|---|---|---|---|---|");
    for model in &args.models {
        let r = json_of(
            Command::new(dnc)
                .env("RAYON_NUM_THREADS", args.threads.to_string())
                .args(["bench", "distill", "--model", model])
                .args(["--batch", &args.batch.to_string()])
                .args(["--steps", &args.steps.to_string()])
                .args(["--rounds", &args.rounds.to_string()])
                .args(["--threads", &args.threads.to_string()])
                .arg("--data")
                .arg(data.join("train")),
        )?;
        eprintln!("{model}: {r}");
        let (s, over, dnc_over) = (
            &r["s_per_step"],
            &r["over_moclr"],
            &r["dnc_training_over_moclr_at_equal_epochs"],
        );
        println!(
            "| {model} | {:.3} | {:.3} s ({:.2}×) | {:.3} s ({:.2}×) | {:.3} | {:.3} |",
            num(s, "moclr"),
            num(s, "distill_live"),
            num(over, "distill_live"),
            num(s, "distill_cached"),
            num(over, "distill_cached"),
            num(dnc_over, "live"),
            num(dnc_over, "cached"),
        );
    }
    Ok(())
}

/// The photo loader side by side with torchvision's: `--photos DIR` (any tree of images), or
/// synthetic 500×375 JPEGs written once into `target/bench-photos`. Both decode every image and
/// make two views at `--photo-size` pixels, on `--threads` workers.
fn bench_photos_vs_torch(dnc: &Path, args: &BenchArgs) -> Result<()> {
    let photos = match &args.photos {
        Some(dir) => dir.clone(),
        None => {
            let dir = workspace_root().join(format!("target/bench-photos/{}", args.photo_count));
            synth_once(dnc, &dir, args.photo_count, (500, 375))?;
            dir
        }
    };
    let script = workspace_root().join("scripts/bench_data_torch.py");
    let size = args.photo_size.to_string();
    let count = args.photo_count.to_string();
    let threads = args.threads.to_string();
    let (mut ours, mut theirs) = (vec![], vec![]);
    for round in 0..args.rounds {
        let d = json_of(
            Command::new(dnc)
                .args([
                    "bench", "data", "--photos", "--size", &size, "--images", &count,
                ])
                .args(["--batch", "64", "--threads", &threads, "--data"])
                .arg(&photos),
        )?;
        let t = json_of(
            Command::new(python()?)
                .arg(&script)
                .args(["--size", &size, "--images", &count, "--batch", "64"])
                .args(["--workers", &threads, "--data"])
                .arg(&photos),
        )?;
        eprintln!("round {round}: dnc {d}, torchvision {t}");
        ours.push(num(&d, "imgs_per_s"));
        theirs.push(num(&t, "imgs_per_s"));
    }
    let (d, t) = (median(ours), median(theirs));
    println!(
        "decode + two views at {size} px of {count} images in {}, {threads} workers, median of {} rounds",
        photos.display(),
        args.rounds
    );
    println!("| dnc img/s | torchvision img/s | dnc/torchvision |");
    println!("|---|---|---|");
    println!("| {d:.1} | {t:.1} | {:.2} |", d / t);
    Ok(())
}

fn bench_kmeans(builds: &[SimdBuild], args: &BenchArgs) -> Result<()> {
    let dir = workspace_root().join("target/bench-kmeans");
    std::fs::create_dir_all(&dir)?;
    println!(
        "k-means, N = 50000, 20 iterations, {} threads, medians of {} alternating rounds",
        args.threads, args.rounds
    );
    // dnc's fit returns every point's cluster; faiss's train the centroids only, so its time
    // includes the search that assigns every point (its train-only time is shown beside it).
    println!("| kernels | D | K | dnc s | faiss s (train + assign) | faiss train s | faiss/dnc |");
    println!("|---|---|---|---|---|---|---|");
    for build in builds {
        for d in [128usize, 4096] {
            let file = dir.join(format!("data-{d}.npy"));
            for k in [10usize, 100] {
                let (mut ours, mut theirs, mut train) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..args.rounds.max(1) {
                    let o = json_of(
                        Command::new(&build.dnc)
                            .env("RAYON_NUM_THREADS", args.threads.to_string())
                            .args(["bench", "kmeans", "--n", "50000", "--d", &d.to_string()])
                            .args(["--k", &k.to_string(), "--iters", "20"])
                            .args(["--threads", &args.threads.to_string()])
                            .arg("--save-data")
                            .arg(&file),
                    )?;
                    ours.push(num(&o, "seconds"));
                    if args.vs_torch {
                        let script = workspace_root().join("scripts/bench_kmeans_faiss.py");
                        let t = json_of(
                            Command::new(python()?)
                                .envs(build.torch_env.iter().copied())
                                .arg(script)
                                .arg(&file)
                                .args(["--k", &k.to_string(), "--iters", "20"])
                                .args(["--threads", &args.threads.to_string()]),
                        )?;
                        theirs.push(num(&t, "seconds"));
                        train.push(num(&t, "train_seconds"));
                    }
                }
                let o = median(ours);
                let median_or_nan = |v: Vec<f64>| if v.is_empty() { f64::NAN } else { median(v) };
                let (t, tt) = (median_or_nan(theirs), median_or_nan(train));
                println!(
                    "| {} | {d} | {k} | {o:.3} | {} | {} | {} |",
                    build.label,
                    fmt_opt(t, 3),
                    fmt_opt(tt, 3),
                    fmt_opt(t / o, 2)
                );
            }
        }
    }
    Ok(())
}
