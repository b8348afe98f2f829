//! `dnc bench`: throughput measurements, one JSON object on the last line of stdout.
//!
//! `cargo xtask bench` runs these side by side with the PyTorch reference; the thread count of
//! candle's CPU kernels is set through `RAYON_NUM_THREADS` by the caller.

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::{Args, Subcommand};
use dnc_augment::{TwoViewConfig, TwoViewMapper, ViewConfig};
use dnc_core::SeededRng;
use dnc_data::{
    Dataset, ImageFolder, ImageFolderConfig, ImageItem, ItemContext, Loader, LoaderConfig, Mapper,
    ResizedCacheConfig, stack_chw,
};
use dnc_engine::{OptimizerConfig, SgdConfig, StepContext, TrainStep};
use dnc_moclr::{MoclrConfig, MoclrStep, ViewPair};
use dnc_models::{Arch, BackboneConfig, EncoderConfig, Precision, ProjectorConfig, Stem};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// MoCLR training steps (augmentation, both views through online and target, backward,
    /// SGD update, EMA update), as `anchors/torch_ref.py` times them.
    Train(TrainBench),
    /// The loader alone: decode and two augmented views per image.
    Data(DataBench),
    /// k-means on random normal data.
    Kmeans(KmeansBench),
    /// A distillation step (teachers live, and targets cached) against a MoCLR step, side by
    /// side: what Divide and Contrast's training costs against MoCLR's at equal epochs.
    Distill(crate::bench_distill::DistillBench),
    /// Writes a synthetic unlabelled image tree (for `cargo xtask bench scale`).
    Synth(SynthArgs),
}

#[derive(Args)]
pub(crate) struct SynthArgs {
    /// The folder to write (`<out>/<thousands>/<index>.jpg`).
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    n: usize,
    /// Side of the square images.
    #[arg(long, default_value_t = 32)]
    size: u32,
    /// Width instead of `size` (photo-sized images, e.g. 500).
    #[arg(long)]
    width: Option<u32>,
    /// Height instead of `size` (e.g. 375).
    #[arg(long)]
    height: Option<u32>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// What the step benchmarks (`train`, `distill`) share: the network, the batch and the data.
#[derive(Args)]
pub(crate) struct StepBenchArgs {
    /// `tiny` or `resnet18` (CIFAR stem), with torch_ref's projector (512 hidden, 128 out).
    #[arg(long, default_value = "tiny")]
    pub(crate) model: String,
    #[arg(long, default_value_t = 256)]
    pub(crate) batch: usize,
    /// Recorded in the output (candle's threads come from RAYON_NUM_THREADS).
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
    /// An image folder with class subfolders (a `train/` split).
    #[arg(long)]
    pub(crate) data: PathBuf,
    #[arg(long, default_value = "cpu")]
    pub(crate) device: dnc_core::DeviceSpec,
}

#[derive(Args)]
pub(crate) struct TrainBench {
    #[command(flatten)]
    common: StepBenchArgs,
    /// Timed steps.
    #[arg(long, default_value_t = 6)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Loader threads (decode + augmentation).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// `f32`, or `bf16` convolutions and matrix products with f32 weights.
    #[arg(long, default_value = "f32")]
    precision: Precision,
}

#[derive(Args)]
pub(crate) struct DataBench {
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Images to load (a balanced subset of the folder).
    #[arg(long, default_value_t = 5120)]
    images: usize,
    /// Loader threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Class folders (CIFAR's `train/`), or with `--photos` any tree of images.
    #[arg(long)]
    data: PathBuf,
    /// Photos at `--size` pixels instead of CIFAR's views: random resized crop, flip and
    /// colour jitter (0.4, 0.4, 0.2, 0.1) with p = 0.8, two views per image, as
    /// `scripts/bench_data_torch.py` does with torchvision.
    #[arg(long)]
    photos: bool,
    /// Output side of the views with `--photos`.
    #[arg(long, default_value_t = 224)]
    size: u32,
    /// Decode every image whole (no DCT-scaled JPEG decoding), to measure what it gives.
    #[arg(long)]
    full_decode: bool,
}

/// A mapper that asks for whole images: `--full-decode`.
struct FullDecode<M>(M);

impl<M: Mapper<ImageItem>> Mapper<ImageItem> for FullDecode<M> {
    type Output = M::Output;

    fn map(&self, item: ImageItem, ctx: ItemContext) -> Result<M::Output, dnc_data::DataError> {
        self.0.map(item, ctx)
    }
}

#[derive(Args)]
pub(crate) struct KmeansBench {
    #[arg(long, default_value_t = 50_000)]
    n: usize,
    #[arg(long, default_value_t = 128)]
    d: usize,
    #[arg(long, default_value_t = 10)]
    k: usize,
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Recorded in the output (candle's threads come from RAYON_NUM_THREADS).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Also write the data as a float32 .npy file (for faiss to cluster the same points).
    #[arg(long)]
    save_data: Option<PathBuf>,
}

pub(crate) fn run(cmd: BenchCommand) -> Result<()> {
    let out = match cmd {
        BenchCommand::Train(a) => bench_train(a)?,
        BenchCommand::Data(a) => bench_data(a)?,
        BenchCommand::Kmeans(a) => bench_kmeans(a)?,
        BenchCommand::Distill(a) => crate::bench_distill::bench_distill(a)?,
        BenchCommand::Synth(a) => synth(a)?,
    };
    println!("{out}");
    Ok(())
}

pub(crate) fn encoder_for(model: &str, precision: Precision) -> Result<EncoderConfig> {
    let backbone = match model {
        "tiny" => BackboneConfig {
            arch: Arch::Tiny,
            ..BackboneConfig::default()
        },
        "resnet18" => BackboneConfig {
            arch: Arch::Resnet18,
            stem: Stem::Cifar,
            ..BackboneConfig::default()
        },
        other => anyhow::bail!("unknown model {other:?}: expected tiny or resnet18"),
    };
    Ok(EncoderConfig {
        backbone,
        projector: ProjectorConfig {
            hidden: 512,
            out: 128,
            final_bn: false,
        },
        precision,
    })
}

/// CIFAR-sized images, decoded once into a cache under the system's temporary folder when
/// `cache` is set (so that timed steps read them as a training run with `data.cache_resized`).
pub(crate) fn open_images(
    dir: &Path,
    limit: Option<usize>,
    cache: bool,
) -> Result<Arc<ImageFolder>> {
    let cfg = ImageFolderConfig {
        resized_cache: cache.then(|| ResizedCacheConfig {
            dir: std::env::temp_dir().join("dnc-bench-cache"),
            side: 32,
            threads: 2,
        }),
        limit,
        ..Default::default()
    };
    Ok(Arc::new(
        ImageFolder::open(dir, &cfg).with_context(|| format!("opening {}", dir.display()))?,
    ))
}

fn bench_train(a: TrainBench) -> Result<serde_json::Value> {
    let device = a.common.device.open()?;
    let total = a.steps + a.warmup;
    // As many images as the steps use, or the whole folder, read again epoch after epoch.
    let images = match open_images(&a.common.data, Some(a.common.batch * total), true) {
        Ok(images) => images,
        Err(_) => open_images(&a.common.data, None, true)?,
    };
    let mapper = Arc::new(TwoViewMapper::new(TwoViewConfig::cifar(), 1)?);
    let loader_cfg = LoaderConfig {
        batch_size: a.common.batch,
        workers: a.workers,
        ..Default::default()
    };
    let loader = Loader::new(images.clone(), mapper, loader_cfg)?;
    let moclr = MoclrConfig {
        ema_momentum: 0.99,
        ..Default::default()
    };
    let mut step = MoclrStep::new(
        &encoder_for(&a.common.model, a.precision)?,
        moclr,
        0,
        &device,
    )?;
    let forward_macs = forward_macs_per_image(&step, &device)?;
    let mut opt = OptimizerConfig::Sgd(SgdConfig::default()).build()?;
    let params = step.parameters();
    let mut times = Vec::new();
    let mut epoch = 0;
    let mut batches = loader.epoch(epoch, 0);
    for s in 0..total {
        let start = Instant::now();
        let batch = match batches.next() {
            Some(batch) => batch?,
            None => {
                epoch += 1;
                batches = loader.epoch(epoch, 0);
                batches
                    .next()
                    .context("the folder holds less than one batch")??
            }
        };
        let chw = (3, 32, 32);
        let pair = ViewPair {
            view1: stack_chw(batch.items.iter().map(|t| t.view1.as_slice()), chw, &device)?,
            view2: stack_chw(batch.items.iter().map(|t| t.view2.as_slice()), chw, &device)?,
        };
        let ctx = StepContext {
            epoch: 0,
            batch: s,
            step: s,
            total_steps: total,
            steps_per_epoch: total,
            lr: 0.01,
        };
        let out = step.forward(&pair, &ctx)?;
        let grads = out.loss.backward()?;
        opt.step(&params, &grads, ctx.lr)?;
        step.after_update(&ctx)?;
        out.loss.to_scalar::<f32>()?; // synchronise (GPU)
        if s >= a.warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let imgs_per_s = a.common.batch as f64 / median;
    // A MoCLR step per image: forward and backward (about twice the forward) of both views
    // through the online network, and the target's forward of both: 8 forwards, 2 FLOP each.
    let gflops = 16.0 * forward_macs as f64 * imgs_per_s / 1e9;
    let peak = dnc_kernels::machine::peak_gflops(a.common.threads);
    let measured = dnc_kernels::machine::measured_peak_gflops(a.common.threads, PEAK_PROBE_MILLIS);
    Ok(serde_json::json!({
        "model": a.common.model, "batch_size": a.common.batch, "precision": a.precision, "device": format!("{device:?}"), "timed_steps": times.len(),
        "cpu": dnc_kernels::machine::cpu_model(), "simd": dnc_kernels::machine::simd_level(),
        "forward_mmacs_per_image": round(forward_macs as f64 / 1e6),
        "gflops": round(gflops),
        "peak_gflops": peak.as_ref().map(|p| round(p.0)),
        "peak_fraction": peak.as_ref().map(|p| round(gflops / p.0)),
        "peak_basis": peak.map(|p| p.1),
        "measured_peak_gflops": measured.map(round),
        "measured_peak_fraction": measured.map(|m| round(gflops / m)),
        "median_imgs_per_s": round(a.common.batch as f64 / median),
        "imgs_per_s": round(a.common.batch as f64 / mean),
        "s_per_step": round(mean), "threads": a.common.threads, "workers": a.workers,
        "peak_rss_mib": dnc_pipeline::process_peak_rss_mib(), "cpu_pressure_some": cpu_pressure(),
    }))
}

/// Multiply-adds of one 32×32 image's forward pass through the online encoder: its
/// convolutions, counted as they run, and its fully connected layers.
fn forward_macs_per_image(step: &MoclrStep, device: &Device) -> Result<u64> {
    let x = Tensor::zeros((1, 3, 32, 32), DType::F32, device)?;
    let (out, conv) = dnc_models::macs::count_conv_macs(|| step.encoder().forward_t(&x, false));
    out?;
    Ok(conv + dnc_models::macs::linear_macs(step.online_vars()))
}

/// JPEGs of smooth random colour gradients with noise, 1,000 per folder; each image depends
/// only on the seed and its index. Written with rayon on every core.
fn synth(a: SynthArgs) -> Result<serde_json::Value> {
    use rayon::prelude::*;
    let start = Instant::now();
    (0..a.n).into_par_iter().try_for_each(|i| -> Result<()> {
        let mut rng = SeededRng::new(a.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
        let mut v = || (rng.uniform() * 255.0) as f32;
        let (c0, cx, cy) = ([v(), v(), v()], [v(), v(), v()], [v(), v(), v()]);
        let (w, h) = (a.width.unwrap_or(a.size), a.height.unwrap_or(a.size));
        let mut noise = SeededRng::new(i as u64 ^ 0x5EED);
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let mut px = |c: usize| {
                let value = c0[c] * (1.0 - fx) * (1.0 - fy) + cx[c] * fx + cy[c] * fy;
                (value + 40.0 * (noise.uniform() as f32 - 0.5)).clamp(0.0, 255.0) as u8
            };
            image::Rgb([px(0), px(1), px(2)])
        });
        let dir = a.out.join(format!("{:04}", i / 1000));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{i:07}.jpg"));
        img.save(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    })?;
    Ok(
        serde_json::json!({"images": a.n, "width": a.width.unwrap_or(a.size), "height": a.height.unwrap_or(a.size), "seconds": round(start.elapsed().as_secs_f64())}),
    )
}

fn bench_data(a: DataBench) -> Result<serde_json::Value> {
    // No decoded-image cache: every epoch decodes the JPEGs again, as a large dataset would.
    let (images, views) = if a.photos {
        let cfg = ImageFolderConfig {
            limit: Some(a.images),
            ..Default::default()
        };
        let folder = ImageFolder::open_unlabelled(&a.data, &cfg)
            .with_context(|| format!("opening {}", a.data.display()))?;
        let view = ViewConfig {
            size: a.size,
            saturation: 0.2,
            grayscale_p: 0.0,
            ..ViewConfig::cifar()
        };
        let views = TwoViewConfig {
            view1: view.clone(),
            view2: view,
        };
        (Arc::new(folder), views)
    } else {
        (
            open_images(&a.data, Some(a.images), false)?,
            TwoViewConfig::cifar(),
        )
    };
    let mapper = TwoViewMapper::new(views, 1)?;
    let cfg = LoaderConfig {
        batch_size: a.batch,
        workers: a.threads,
        ..Default::default()
    };
    let start = Instant::now();
    let n = if a.full_decode {
        count_epoch(Loader::new(
            images.clone(),
            Arc::new(FullDecode(mapper)),
            cfg,
        )?)?
    } else {
        count_epoch(Loader::new(images.clone(), Arc::new(mapper), cfg)?)?
    };
    let seconds = start.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "images": n, "seconds": round(seconds), "imgs_per_s": round(n as f64 / seconds),
        "threads": a.threads, "dataset": images.len(), "cpu_pressure_some": cpu_pressure(),
        "cpu": dnc_kernels::machine::cpu_model(), "simd": dnc_kernels::machine::simd_level(),
        "photos": a.photos, "size": if a.photos { a.size } else { 32 },
        "full_decode": a.full_decode,
    }))
}

/// Images in one epoch of `loader`.
fn count_epoch<M: Mapper<ImageItem> + 'static>(loader: Loader<ImageFolder, M>) -> Result<usize> {
    let mut n = 0;
    for batch in loader.epoch(0, 0) {
        n += batch?.items.len();
    }
    Ok(n)
}

fn bench_kmeans(a: KmeansBench) -> Result<serde_json::Value> {
    let mut rng = SeededRng::new(42);
    let values: Vec<f32> = (0..a.n * a.d).map(|_| rng.normal() as f32).collect();
    if let Some(path) = &a.save_data {
        dnc_pipeline::write_npy_f32(path, &values, a.n, a.d)?;
    }
    let data = Tensor::from_vec(values, (a.n, a.d), &Device::Cpu)?.to_dtype(DType::F32)?;
    let cfg = dnc_cluster::KMeansConfig {
        n_clusters: a.k,
        metric: dnc_cluster::Metric::Euclidean,
        init: dnc_cluster::InitMethod::Random,
        max_iter: a.iters,
        tol: 0.0,
        ..dnc_cluster::KMeansConfig::default()
    };
    let start = Instant::now();
    let fit = dnc_cluster::fit(&data, &cfg)?;
    let seconds = start.elapsed().as_secs_f64();
    let inertia: f64 = fit.distances.iter().map(|&d| f64::from(d)).sum();
    // The distance products alone: 2·N·D·K FLOP per pass, one pass per iteration and a final
    // assignment (the sums, argmin and set-up are not counted, so this is a lower bound).
    let passes = fit.model.n_iter + 1;
    let gflops = 2.0 * (a.n * a.d * a.k * passes) as f64 / seconds / 1e9;
    let peak = dnc_kernels::machine::peak_gflops(a.threads);
    let measured = dnc_kernels::machine::measured_peak_gflops(a.threads, PEAK_PROBE_MILLIS);
    Ok(serde_json::json!({
        "seconds": round(seconds), "inertia": inertia, "n": a.n, "d": a.d, "k": a.k,
        "iters": a.iters, "n_iter": fit.model.n_iter, "threads": a.threads,
        "cpu": dnc_kernels::machine::cpu_model(), "kernel": dnc_cluster::assignment_kernel(),
        "distance_gflops": round(gflops),
        "peak_gflops": peak.as_ref().map(|p| round(p.0)),
        "peak_fraction": peak.as_ref().map(|p| round(gflops / p.0)),
        "measured_peak_gflops": measured.map(round),
        "measured_peak_fraction": measured.map(|m| round(gflops / m)),
        "cpu_pressure_some": cpu_pressure(),
    }))
}

/// How long the register-FMA loop runs to measure the peak after a benchmark (both fractions
/// are recorded: of the nominal-clock estimate and of this measured rate).
const PEAK_PROBE_MILLIS: u64 = 300;

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Linux CPU pressure (PSI "some" averages): high values mean the CPU was contended.
pub(crate) fn cpu_pressure() -> Option<serde_json::Value> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let first = text.lines().next()?;
    let mut obj = serde_json::Map::new();
    for kv in first.split_whitespace().skip(1).take(3) {
        let (k, v) = kv.split_once('=')?;
        obj.insert(k.into(), v.parse::<f64>().ok()?.into());
    }
    Some(obj.into())
}
