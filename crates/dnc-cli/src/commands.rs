//! The run subcommands: init, stages, stage, train, report, export.

use crate::logging;
use anyhow::{Context, Result, bail};
use clap::Args;
use dnc_core::DeviceSpec;
use dnc_pipeline::{
    ExpertSelection, Run, RunConfig, RunStatus, Stage, apply_overrides, ordered_models,
};
use std::path::{Path, PathBuf};

#[path = "resume.rs"]
mod resume;

#[derive(Args)]
pub(crate) struct ConfigArgs {
    /// Experiment configuration (TOML). Without it, the built-in defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Folder holding `train/` and `test/` class folders (sets `data.root`), or images to train
    /// on without labels (sets `data.train`): any other folder (images at any depth), a list
    /// file, or WebDataset shards (`shards/{000000..000099}.tar`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// `cpu`, `cuda:N` or `auto` (overrides `device`).
    #[arg(long)]
    device: Option<DeviceSpec>,
    /// Also train the matched MoCLR baseline.
    #[arg(long)]
    baseline: bool,
    /// Start the backbone from pretrained weights: `hf://ORG/NAME[@REVISION][/FILE]` or a file
    /// (a model file of a dnc run sets the whole encoder: a second round of DnC).
    #[arg(long)]
    init_from: Option<String>,
    /// Devices the experts are spread over, round-robin (e.g. `cuda:0,cuda:1`).
    #[arg(long, value_delimiter = ',')]
    devices: Vec<DeviceSpec>,
    /// Override a config value, e.g. `--set base.epochs=2` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

#[derive(Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The run directory to create.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub(crate) struct RunArgs {
    /// The run directory.
    #[arg(long)]
    run: PathBuf,
}

#[derive(Args)]
pub(crate) struct AdoptArgs {
    /// The run directory that takes the stages.
    #[arg(long)]
    run: PathBuf,
    /// The run directory they are taken from.
    #[arg(long)]
    from: PathBuf,
    /// A leading run of base, embed, cluster, experts, distill (comma-separated); or
    /// `baseline` alone: the matched MoCLR baseline, from a MoCLR run trained for this run's
    /// total epochs (or a DnC run's baseline), which turns the run's baseline on.
    #[arg(long, value_delimiter = ',', required = true)]
    stages: Vec<String>,
}

#[derive(Args)]
pub(crate) struct StageArgs {
    /// base, embed, cluster, experts, distill, baseline or eval.
    name: String,
    #[command(flatten)]
    rest: StageOnlyArgs,
}

#[derive(Args)]
pub(crate) struct StageOnlyArgs {
    /// The run directory.
    #[arg(long)]
    run: PathBuf,
    /// Continue the stage from its last checkpoint instead of starting it again.
    #[arg(long)]
    resume: bool,
    /// Run on this device instead of the configured one.
    #[arg(long)]
    device: Option<DeviceSpec>,
    /// Experts stage only: train expert K alone, as one job of a scheduler (several jobs share
    /// the run directory; the one that completes the last expert marks the stage done).
    #[arg(long, conflicts_with = "shard")]
    expert: Option<usize>,
    /// Experts stage only: train the experts k with k mod N = I, job I of N (e.g. `--shard 0/4`).
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Started as several processes (`mpirun -n N`, `srun`): normalise BatchNorm with each
    /// process's own share of the batch instead of the statistics of the whole batch.
    #[arg(long)]
    per_rank_batch_norm: bool,
}

#[derive(Args)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Run directory (default `runs/<config name>`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in `--out`: skip finished stages, resume the current one. With
    /// `--baseline`, add the baseline stage to a run made without it; other flags that would
    /// change the run's configuration are refused.
    #[arg(long)]
    resume: bool,
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    /// The run directory.
    #[arg(long)]
    run: PathBuf,
    /// Which model: `dnc` (the student), `base`, `baseline` or `expert-<k>`.
    #[arg(long, default_value = "dnc")]
    model: String,
    /// The folder to write (model.safetensors, config.json, README.md).
    #[arg(long)]
    out: PathBuf,
}

/// Reads the config file (or the defaults), applies the command-line overrides, and makes the
/// data folder absolute so the saved config works from any directory.
pub(crate) fn resolve_config(args: &ConfigArgs) -> Result<RunConfig> {
    let (text, origin) = match &args.config {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            RunConfig::default().to_toml(),
            "the built-in defaults".to_string(),
        ),
    };
    let mut doc: toml::Value =
        toml::from_str(&text).with_context(|| format!("{origin} is not valid TOML"))?;
    let mut overrides = args.overrides.clone();
    if let Some(data) = &args.data {
        // A folder with train/ is the labelled layout; any other folder is a tree of images to
        // train on, without labels.
        let key = if data.join("train").is_dir() {
            "data.root"
        } else {
            "data.train"
        };
        overrides.push(format!(
            "{key}={}",
            toml::Value::String(data.display().to_string())
        ));
    }
    if let Some(device) = &args.device {
        overrides.push(format!("device=\"{device}\""));
    }
    if args.baseline {
        overrides.push("baseline=true".into());
    }
    if !args.devices.is_empty() {
        let list: Vec<String> = args.devices.iter().map(|d| format!("\"{d}\"")).collect();
        overrides.push(format!("experts.devices=[{}]", list.join(", ")));
    }
    if let Some(spec) = &args.init_from {
        overrides.push(format!("init_from={}", toml::Value::String(spec.clone())));
    }
    apply_overrides(&mut doc, &overrides)?;
    let mut cfg = RunConfig::from_value(doc).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    for path in [
        Some(&mut cfg.data.root),
        cfg.data.train.as_mut(),
        cfg.eval.data.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(abs) = absolute(path) {
            *path = abs;
        }
    }
    // A local weights file too, so that the run reads the same file from any folder.
    if let Some(spec) = cfg.init_from.as_mut()
        && !dnc_hub::HubUri::is_hub_uri(spec)
        && let Ok(abs) = std::fs::canonicalize(&*spec)
    {
        *spec = abs.display().to_string();
    }
    Ok(cfg)
}

/// `path` made absolute, when it exists; a shard pattern (`dir/{000..009}.tar`) by its folder.
fn absolute(path: &Path) -> Option<PathBuf> {
    if let Ok(abs) = std::fs::canonicalize(path) {
        return Some(abs);
    }
    let (parent, name) = (path.parent()?, path.file_name()?);
    if parent.to_string_lossy().contains('{') {
        return None;
    }
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    std::fs::canonicalize(parent).ok().map(|p| p.join(name))
}

pub(crate) fn init(args: InitArgs) -> Result<()> {
    let cfg = resolve_config(&args.config)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    logging::init(Some(&dnc_pipeline::RunDir::new(&args.out).log_path()));
    let run = Run::create(cfg, &args.out)?;
    tracing::info!(
        "created run {} ({} stages)",
        args.out.display(),
        run.stages().len()
    );
    Ok(())
}

pub(crate) fn stages(args: RunArgs) -> Result<()> {
    let run = Run::open(&args.run, Some(DeviceSpec::Cpu))?;
    for stage in run.stages() {
        println!("{stage}");
    }
    Ok(())
}

pub(crate) fn adopt(args: AdoptArgs) -> Result<()> {
    logging::init(Some(&dnc_pipeline::RunDir::new(&args.run).log_path()));
    let mut run = Run::open(&args.run, Some(DeviceSpec::Cpu))?;
    let stages = args
        .stages
        .iter()
        .map(|name| name.parse::<Stage>())
        .collect::<Result<Vec<_>, _>>()?;
    if stages == [Stage::Baseline] {
        if !run.adopt_baseline(&args.from)? {
            tracing::info!(
                "the baseline of {} is already {}'s: nothing to take",
                args.run.display(),
                args.from.display()
            );
        }
    } else {
        run.adopt_stages(&args.from, &stages)?;
    }
    Ok(())
}

pub(crate) fn stage(args: StageArgs) -> Result<()> {
    let stage: Stage = args.name.parse()?;
    run_one(stage, args.rest)
}

pub(crate) fn stage_only(name: &str, args: StageOnlyArgs) -> Result<()> {
    run_one(name.parse()?, args)
}

fn run_one(stage: Stage, args: StageOnlyArgs) -> Result<()> {
    // Under a launcher every process is a rank of one data-parallel group; rank 0 writes the
    // run's log, the others their own.
    let rank = dnc_dist::LaunchEnv::detect()?.map_or(0, |env| env.rank);
    logging::init(Some(
        &dnc_pipeline::RunDir::new(&args.run).rank_log_path(rank),
    ));
    let launch = dnc_dist::launch(!args.per_rank_batch_norm)?;
    let result = run_stage_command(stage, args);
    if let Err(e) = &result
        && launch.group().is_distributed()
    {
        // The other ranks wait on this one in a collective: leave at once (without the
        // farewell barrier), so that the launcher ends them too.
        eprintln!("error (rank {rank}): {e:#}");
        std::process::exit(1);
    }
    drop(launch);
    result
}

fn run_stage_command(stage: Stage, args: StageOnlyArgs) -> Result<()> {
    let run = Run::open(&args.run, args.device)?;
    if !run.stages().contains(&stage) {
        let hint = match stage {
            Stage::Baseline => format!(
                " (add it with `dnc train --out {} --resume --baseline`)",
                args.run.display()
            ),
            _ => String::new(),
        };
        bail!(
            "this run has no {stage} stage; its stages are {:?}{hint}",
            names(&run)
        );
    }
    let selection = match (args.expert, &args.shard) {
        (Some(k), _) => Some(ExpertSelection::One(k)),
        (None, Some(text)) => Some(ExpertSelection::shard(text)?),
        (None, None) => None,
    };
    match selection {
        Some(_) if stage != Stage::Experts => {
            bail!("--expert and --shard select experts; they apply to the experts stage only")
        }
        Some(selection) => run.run_experts(selection, args.resume)?,
        None => run.run_stage(stage, args.resume)?,
    }
    Ok(())
}

/// Prints where each stage and each expert of a run stands.
pub(crate) fn status(args: RunArgs) -> Result<()> {
    let run = Run::open(&args.run, None)?;
    print!("{}", RunStatus::read(&run)?.to_text());
    Ok(())
}

fn names(run: &Run) -> Vec<&'static str> {
    run.stages().iter().map(|s| s.name()).collect()
}

pub(crate) fn train(args: TrainArgs) -> Result<()> {
    let out = match &args.out {
        Some(out) => out.clone(),
        None => default_out(args.config.config.as_deref()),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    logging::init(Some(&dnc_pipeline::RunDir::new(&out).log_path()));
    let run = if args.resume {
        resume::open(&args, &out)?
    } else {
        Run::create(resolve_config(&args.config)?, &out)?
    };
    run.run_all(args.resume)?;
    print_results(&run)
}

fn default_out(config: Option<&Path>) -> PathBuf {
    let stem = config
        .and_then(|c| c.file_stem())
        .map_or("dnc".into(), |s| s.to_string_lossy().into_owned());
    PathBuf::from("runs").join(stem)
}

pub(crate) fn report(args: RunArgs) -> Result<()> {
    let run = Run::open(&args.run, Some(DeviceSpec::Cpu))?;
    dnc_pipeline::write_report(&run)?;
    print_results(&run)
}

fn print_results(run: &Run) -> Result<()> {
    let summary = run.dir.read_summary()?;
    println!("{}", run.dir.root().display());
    println!(
        "{:<14} {:>11} {:>13}",
        "model", "k-NN top-1", "linear top-1"
    );
    for name in ordered_models(&summary) {
        let e = &summary.eval[&name];
        let linear = e
            .linear_top1
            .map_or("-".into(), |l| format!("{:.2}%", 100.0 * l));
        println!("{name:<14} {:>10.2}% {linear:>13}", 100.0 * e.knn_top1);
    }
    for (stage, s) in &summary.stages {
        println!(
            "stage {stage:<9} {:>8.1} s{}",
            s.seconds,
            if s.done { "" } else { " (not done)" }
        );
    }
    println!("report: {}", run.dir.report_path().display());
    Ok(())
}

pub(crate) fn export(args: ExportArgs) -> Result<()> {
    logging::init(None);
    let run = Run::open(&args.run, Some(DeviceSpec::Cpu))?;
    let file = match dnc_pipeline::ModelRef::parse(&args.model) {
        Some(dnc_pipeline::ModelRef::DncStart) | None => bail!(
            "unknown model {:?}: expected dnc, base, baseline or expert-<k>",
            args.model
        ),
        Some(model) => run.dir.model_path(model),
    };
    if !file.is_file() {
        bail!(
            "{} does not exist: has the stage that writes it finished?",
            file.display()
        );
    }
    let (_, vars) = dnc_pipeline::load_encoder(&run.cfg.model, &file, &candle_core::Device::Cpu)?;
    let mut info = dnc_hub::BackboneInfo::new(&run.cfg.model.backbone);
    let view = &run.cfg.augment.view1;
    info.preprocessing.input_size = view.size as usize;
    info.preprocessing.mean = view.mean.map(f64::from);
    info.preprocessing.std = view.std.map(f64::from);
    let card = dnc_hub::ModelCard::from_run_dir(run.dir.root(), &args.model)?;
    let files = dnc_hub::export_backbone(&vars, "backbone.", &info, &args.out, &card)?;
    println!("{}", files.weights.display());
    println!("{}", files.config.display());
    println!("{}", files.card.display());
    Ok(())
}

#[derive(Args, Debug)]
pub(crate) struct ShardsArgs {
    /// The images: a folder (any depth; class folders are read as plain folders) or a list file.
    #[arg(long)]
    src: PathBuf,
    /// The folder to write `000000.tar`, `000001.tar`, ... into.
    #[arg(long)]
    out: PathBuf,
    /// Images per shard.
    #[arg(long, default_value_t = 10_000)]
    shard_size: usize,
}

#[derive(Args)]
pub(crate) struct MixArgs {
    /// A source: a folder of class folders, with `=N` to keep N of its images (shared among its
    /// classes by `--subset`), e.g. `../shared/datasets/gtsrb/train=10000` (repeatable).
    #[arg(long = "source", value_name = "DIR[=N]", required = true)]
    sources: Vec<String>,
    /// How a source's N images are shared among its classes: `balanced` or `proportional`.
    #[arg(long, default_value = "proportional")]
    subset: String,
    /// The list file to write (one absolute path per line, sources in the order given).
    #[arg(long)]
    out: PathBuf,
}

/// Writes one unlabelled list file of several labelled collections' images: an uncurated
/// mixture to train on (`data.train`), each source still evaluated on its own.
pub(crate) fn mix(args: MixArgs) -> Result<()> {
    use dnc_data::Dataset as _;
    logging::init(None);
    let subset: dnc_data::SubsetRule = toml::Value::String(args.subset.clone())
        .try_into()
        .map_err(|_| {
            anyhow::anyhow!(
                "--subset {}: expected balanced or proportional",
                args.subset
            )
        })?;
    let mut lines = String::new();
    let mut counts = Vec::new();
    for source in &args.sources {
        let (dir, limit) = match source.rsplit_once('=') {
            Some((dir, n)) => {
                let n: usize = n
                    .parse()
                    .with_context(|| format!("--source {source}: `{n}` is not an image count"))?;
                (PathBuf::from(dir), Some(n))
            }
            None => (PathBuf::from(source), None),
        };
        let config = dnc_data::ImageFolderConfig {
            limit,
            subset,
            ..Default::default()
        };
        // Opened by its absolute path, so that every listed path is absolute.
        let root = std::fs::canonicalize(&dir)
            .with_context(|| format!("--source {source}: {}", dir.display()))?;
        let folder = dnc_data::ImageFolder::open(&root, &config)
            .with_context(|| format!("--source {source}"))?;
        for i in 0..folder.len() {
            let path = folder
                .path(i)
                .context("a class folder's image has a path")?;
            lines.push_str(&path.to_string_lossy());
            lines.push('\n');
        }
        counts.push(format!("{} from {}", folder.len(), dir.display()));
    }
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    dnc_pipeline::write_atomic(&args.out, lines.as_bytes())?;
    println!(
        "wrote {} ({}); train with --data {}",
        args.out.display(),
        counts.join(", "),
        args.out.display()
    );
    Ok(())
}

/// Writes the images of `--src` into WebDataset shards and prints the pattern to train on.
pub(crate) fn shards(args: ShardsArgs) -> Result<()> {
    use dnc_data::Dataset as _;
    logging::init(None);
    if dnc_data::shards::is_shard_spec(&args.src) {
        bail!("{} already names shards", args.src.display());
    }
    let source = dnc_data::ImageFolder::open_unlabelled(&args.src, &Default::default())?;
    let files: Vec<PathBuf> = (0..source.len())
        .filter_map(|i| source.path(i).map(Path::to_path_buf))
        .collect();
    let written = dnc_data::write_shards(&files, &args.out, args.shard_size)?;
    let last = written.shards.len().saturating_sub(1);
    println!(
        "wrote {} images into {} shards; train with --data '{}'",
        written.images,
        written.shards.len(),
        args.out
            .join(format!("{{000000..{last:06}}}.tar"))
            .display()
    );
    if !written.unreadable.is_empty() {
        println!(
            "left out {} unreadable files (the log names them)",
            written.unreadable.len()
        );
    }
    Ok(())
}
