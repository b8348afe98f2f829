//! `cargo xtask experiment budget`: accuracy against total training epochs, MoCLR beside Divide
//! and Contrast, the paper's central comparison in small.
//!
//! MoCLR trains at every point E of a ladder of total epochs (E₁ < E₂ < ..., usually doubling).
//! Divide and Contrast at a total T spends T/2 epochs on its base, T/4 on the experts and the
//! rest on distillation, and its base *is* the MoCLR run of T/2 epochs (taken with
//! `dnc adopt`, never trained twice), so DnC is drawn at every total whose half is on the ladder.
//! The control arms of one total take from the DnC run whatever they share with it (base and
//! embeddings for a random partition; everything up to the experts for the base distilled
//! alone) and train only what they change. The MoCLR run of T epochs is every DnC run's matched
//! baseline at T, taken too (`dnc adopt --stages baseline`), so that the diagnostics score the
//! experts against it on their own clusters. A second round (`round2`) at T takes the `dnc`
//! student at T/2 as its base, as it is, and spends the other half on new experts and a new
//! student. Every point is an ordinary run directory under the experiment folder, so an
//! interrupted study resumes and a finished point is never trained again.
//!
//! The report (`report.md`, `summary.json`, `budget-knn.png`, `budget-linear.png`) gives each
//! method's accuracy at each total (mean ± std over seeds), the saturation budget E* (the first
//! ladder point where doubling MoCLR's epochs gains at most 0.5 k-NN points), DnC against MoCLR
//! at equal totals with per-seed wins, and wall times side by side.

use super::{mean_std, summary_of, write_results};
use crate::util::{build_dnc, run_cmd, workspace_root};
use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Args)]
pub(crate) struct BudgetArgs {
    /// The preset every run starts from.
    #[arg(long, default_value = "configs/gtsrb-tiny.toml")]
    config: PathBuf,
    /// Data folder with train/ and test/ (as `dnc train --data`); default: the preset's.
    #[arg(long)]
    data: Option<PathBuf>,
    /// MoCLR's total epochs, ascending; DnC runs at every total whose half is also here.
    #[arg(long, value_delimiter = ',', default_value = "5,10,20,40")]
    ladder: Vec<u64>,
    /// Seeds 0..N of every point.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// DnC arms at each total (comma-separated): dnc, cached, anneal, k10, random, base-only,
    /// experts-scratch, paper, paper-experts-base, round2.
    #[arg(long, value_delimiter = ',', default_value = "dnc,random,base-only")]
    arms: Vec<String>,
    /// Experiment folder (default runs/budget-<preset file stem>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Config overrides for every run (repeatable), e.g. `--set base.optimizer.base_lr=0.3`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// `cpu`, `cuda:N` or `auto`.
    #[arg(long)]
    device: Option<String>,
    /// Extra cargo features for the `dnc` build, e.g. `cuda`.
    #[arg(long)]
    features: Vec<String>,
    /// Evaluate every run on each of these labelled folders (`NAME=DIR`, DIR holding train/ and
    /// test/; repeatable), each on its own, instead of on the preset's evaluation data: for a
    /// mixture of sources trained on as one list (`dnc mix`). The report gives each source and
    /// their mean. Each evaluation is a run folder `<run>@<NAME>` that takes the run's trained
    /// stages.
    #[arg(long = "eval-on", value_name = "NAME=DIR")]
    eval_on: Vec<String>,
    /// With `--eval-on`: the k-NN bank and probe training set of each source is this many of its
    /// train images (shared among classes by the preset's `data.subset`; 0 = all).
    #[arg(long, default_value_t = 10_000)]
    eval_bank_limit: usize,
    /// Run this `dnc` binary instead of building one (e.g. a copy that stays fixed while the
    /// sources change during a long study).
    #[arg(long)]
    dnc: Option<PathBuf>,
    /// Write the report from the runs finished so far; train nothing.
    #[arg(long)]
    report_only: bool,
}

/// One Divide and Contrast variant trained at every total.
struct Arm {
    name: &'static str,
    what: &'static str,
    overrides: &'static [&'static str],
    /// Stages taken from the `dnc` arm of the same total and seed (the base always comes from
    /// the MoCLR run of half the total, the baseline from the MoCLR run of the total).
    shares: &'static str,
    /// A second round: the base is the `dnc` arm's student at half the total, as it is, instead
    /// of the MoCLR run of half the total.
    second_round: bool,
}

const ARMS: [Arm; 10] = [
    Arm {
        name: "dnc",
        what: "Divide and Contrast as the preset sets it",
        overrides: &[],
        shares: "",
        second_round: false,
    },
    Arm {
        name: "cached",
        what: "the preset with the teachers' targets cached once from centre crops (a \
               distillation step then runs the student alone)",
        overrides: &["distill.targets=\"cached\""],
        shares: "base,embed,cluster,experts",
        second_round: false,
    },
    Arm {
        name: "anneal",
        what: "the preset with the student's MoCLR term annealed to 0 over the distillation, so \
               that its last steps regress on the teachers alone",
        overrides: &["distill.student_moclr_anneal=true"],
        shares: "base,embed,cluster,experts",
        second_round: false,
    },
    Arm {
        name: "k10",
        what: "ten clusters and experts instead of the preset's K (for data with many classes)",
        overrides: &["divide.kmeans.n_clusters=10"],
        shares: "base,embed",
        second_round: false,
    },
    Arm {
        name: "random",
        what: "control: experts on a random partition with the k-means sizes (paper Table 10)",
        overrides: &["experts.partition=\"random\""],
        shares: "base,embed",
        second_round: false,
    },
    Arm {
        name: "base-only",
        what: "control: the base distilled alone, no experts (paper Table 11)",
        overrides: &["distill.teachers=\"base\""],
        shares: "base,embed,cluster,experts",
        second_round: false,
    },
    Arm {
        name: "experts-scratch",
        what: "experts from scratch (the paper), the student from the base",
        overrides: &["experts.init=\"scratch\"", "distill.init=\"base\""],
        shares: "base,embed,cluster",
        second_round: false,
    },
    Arm {
        name: "paper",
        what: "the paper's recipe: experts and student from scratch, random heads, regression \
               only, targets cached once from centre crops",
        overrides: &[
            "experts.init=\"scratch\"",
            "distill.init=\"scratch\"",
            "distill.head_init=\"random\"",
            "distill.student_moclr_weight=0.0",
            "distill.targets=\"cached\"",
        ],
        shares: "base,embed,cluster",
        second_round: false,
    },
    Arm {
        name: "paper-experts-base",
        what: "the paper's distillation (student from scratch, random heads, regression only, \
               cached targets) from the preset's experts (trained from the base)",
        overrides: &[
            "distill.init=\"scratch\"",
            "distill.head_init=\"random\"",
            "distill.student_moclr_weight=0.0",
            "distill.targets=\"cached\"",
        ],
        shares: "base,embed,cluster,experts",
        second_round: false,
    },
    Arm {
        name: "round2",
        what: "a second round (the abstract's alternation): the `dnc` student at half the total \
               is the base, as it is (`init_from` it, `base.epochs = 0`), then a new divide, \
               experts for a quarter of the total and distillation for the rest; its wall time \
               counts the first round's",
        overrides: &[],
        shares: "",
        second_round: true,
    },
];

/// Epochs of each DnC stage at total `t`: base t/2 (a MoCLR ladder point), experts t/4,
/// distillation the rest.
fn split(t: u64) -> (u64, u64, u64) {
    let (base, experts) = (t / 2, t / 4);
    (base, experts, t - base - experts)
}

/// The totals DnC is drawn at: ladder points whose half is a ladder point, with at least one
/// expert epoch.
fn dnc_totals(ladder: &[u64]) -> Vec<u64> {
    ladder
        .iter()
        .copied()
        .filter(|&t| t % 2 == 0 && ladder.contains(&(t / 2)) && t / 4 >= 1)
        .collect()
}

/// Whether `arm` is drawn at DnC total `t` (one of `totals`, so even): a second round needs a
/// first at half of it.
fn runs_at(arm: &Arm, t: u64, totals: &[u64]) -> bool {
    !arm.second_round || totals.contains(&(t / 2))
}

/// The `dnc` run whose student is the base of a second round at `total`.
fn first_round_dir(out: &Path, total: u64, seed: u64) -> PathBuf {
    arm_dir(out, "dnc", total / 2, seed)
}

fn moclr_dir(out: &Path, epochs: u64, seed: u64) -> PathBuf {
    out.join(format!("moclr-e{epochs}-s{seed}"))
}

fn arm_dir(out: &Path, arm: &str, total: u64, seed: u64) -> PathBuf {
    out.join(format!("{arm}-t{total}-s{seed}"))
}

fn is_finished(dir: &Path) -> bool {
    summary_of(dir).is_some_and(|s| s["stages"]["eval"]["done"] == true)
}

fn baseline_done(dir: &Path) -> bool {
    summary_of(dir).is_some_and(|s| s["stages"]["baseline"]["done"] == true)
}

pub(crate) fn run(args: BudgetArgs) -> Result<()> {
    let root = workspace_root();
    let config = root.join(&args.config);
    if !config.is_file() {
        bail!("no preset at {}", config.display());
    }
    let mut ladder = args.ladder.clone();
    ladder.sort_unstable();
    ladder.dedup();
    if ladder.is_empty() || ladder[0] == 0 {
        bail!("--ladder needs at least one total of 1 epoch or more");
    }
    let mut arms: Vec<&Arm> = args
        .arms
        .iter()
        .map(|name| {
            ARMS.iter().find(|a| a.name == name).with_context(|| {
                let known: Vec<&str> = ARMS.iter().map(|a| a.name).collect();
                format!("unknown arm `{name}`; known: {}", known.join(", "))
            })
        })
        .collect::<Result<_>>()?;
    // The `dnc` arm first: the others take stages from it.
    arms.sort_by_key(|a| a.name != "dnc");
    arms.dedup_by_key(|a| a.name);
    if arms.iter().any(|a| !a.shares.is_empty() || a.second_round)
        && !arms.iter().any(|a| a.name == "dnc")
    {
        bail!(
            "the control arms share stages with the `dnc` arm, and a second round starts from \
             its student: add it to --arms"
        );
    }
    let sources = eval_sources(&args.eval_on)?;
    let stem = config
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("preset");
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join(format!("runs/budget-{stem}")));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    if !args.report_only {
        check_study(&out, &args)?;
        let dnc = match &args.dnc {
            Some(path) => path.clone(),
            None => build_dnc(&args.features)?,
        };
        let study = Study {
            dnc: &dnc,
            args: &args,
            config: &config,
            out: &out,
            sources: &sources,
        };
        let totals = dnc_totals(&ladder);
        let mut failed = Vec::new();
        for seed in 0..args.seeds {
            // Ascending totals, each MoCLR point followed by the DnC arms it completes, so that
            // the small budgets are known first.
            for &e in &ladder {
                go_on(study.moclr(e, seed), &mut failed)?;
                if moclr_dir(&out, e, seed).join("config.toml").is_file() {
                    record_study(&out, &args)?;
                }
                if totals.contains(&e) {
                    for arm in arms.iter().filter(|a| runs_at(a, e, &totals)) {
                        go_on(study.arm(arm, e, seed), &mut failed)?;
                    }
                }
            }
        }
        let md = report(&args, &out, stem, &ladder, &arms, &sources)?;
        println!("{md}");
        if !failed.is_empty() {
            bail!(
                "{} point(s) of the study failed; the others ran:\n{}",
                failed.len(),
                failed.join("\n")
            );
        }
        return Ok(());
    }
    let md = report(&args, &out, stem, &ladder, &arms, &sources)?;
    println!("{md}");
    Ok(())
}

/// A point that failed (a diverged loss, say) is recorded and the study goes on to the next,
/// so that one point does not stop a study left to run for hours; a `dnc` killed by a signal
/// (the machine shutting down, a user's Ctrl-C) stops it.
fn go_on(point: Result<()>, failed: &mut Vec<String>) -> Result<()> {
    match point {
        Ok(()) => Ok(()),
        Err(e) if format!("{e:#}").contains("failed with signal") => Err(e),
        Err(e) => {
            eprintln!("a point of the study failed, going on: {e:#}");
            failed.push(format!("{e:#}"));
            Ok(())
        }
    }
}

/// The arguments that shape every run of a study (not the ladder, seeds or arms, which extend
/// it), as `study.json` keeps them.
fn study_settings(args: &BudgetArgs) -> Value {
    json!({
        "config": args.config,
        "data": args.data,
        "set": args.overrides,
        "eval_on": args.eval_on,
        "eval_bank_limit": args.eval_bank_limit,
    })
}

/// Refuses a call whose settings differ from those in `<out>/study.json` (written by
/// [`record_study`] once a run of the study has trained): its finished points would be skipped
/// rather than trained again, and the report would mix runs made two ways.
fn check_study(out: &Path, args: &BudgetArgs) -> Result<()> {
    let path = out.join("study.json");
    let now = study_settings(args);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let before: Value =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    for (key, value) in now.as_object().expect("an object") {
        let earlier = before.get(key).unwrap_or(&Value::Null);
        if earlier != value {
            bail!(
                "{}: the runs of this study were made with {key} = {earlier}, and this call \
                 gives {value}; its finished points would be skipped, not trained again. Use \
                 another --out, or the same arguments",
                path.display()
            );
        }
    }
    Ok(())
}

/// Writes `<out>/study.json` with this call's settings, unless it exists: called once a run has
/// trained, so that a first call refused by `dnc` (a mistyped `--set`) records nothing.
fn record_study(out: &Path, args: &BudgetArgs) -> Result<()> {
    let path = out.join("study.json");
    if path.exists() {
        return Ok(());
    }
    let text = serde_json::to_string_pretty(&study_settings(args))?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// `NAME=DIR` evaluation sources.
fn eval_sources(specs: &[String]) -> Result<Vec<(String, PathBuf)>> {
    specs
        .iter()
        .map(|spec| {
            let (name, dir) = spec
                .split_once('=')
                .with_context(|| format!("--eval-on {spec}: expected NAME=DIR"))?;
            let dir = PathBuf::from(dir);
            if !dir.join("train").is_dir() || !dir.join("test").is_dir() {
                bail!(
                    "--eval-on {spec}: {} has no train/ and test/ folders",
                    dir.display()
                );
            }
            if name.is_empty() || name.contains(['/', '@']) {
                bail!("--eval-on {spec}: the name must be non-empty, without `/` or `@`");
            }
            Ok((name.to_string(), std::fs::canonicalize(&dir)?))
        })
        .collect()
}

/// The folder of `run`'s evaluation on source `name`.
fn eval_dir(run: &Path, name: &str) -> PathBuf {
    let mut file = run.file_name().unwrap_or_default().to_os_string();
    file.push(format!("@{name}"));
    run.with_file_name(file)
}

/// What every run of the study shares.
struct Study<'a> {
    dnc: &'a Path,
    args: &'a BudgetArgs,
    config: &'a Path,
    out: &'a Path,
    sources: &'a [(String, PathBuf)],
}

impl Study<'_> {
    fn command(&self, sub: &str) -> Command {
        let mut cmd = Command::new(self.dnc);
        cmd.arg(sub).current_dir(workspace_root());
        cmd
    }

    /// The preset, the data, the device, the seed and the run's own overrides, then the user's.
    fn configured(&self, cmd: &mut Command, seed: u64, name: &str, own: &[String]) {
        cmd.arg("--config").arg(self.config);
        if let Some(data) = &self.args.data {
            cmd.arg("--data").arg(data);
        }
        if let Some(d) = &self.args.device {
            cmd.args(["--device", d]);
        }
        cmd.args(["--set", &format!("seed={seed}")]);
        cmd.args(["--set", &format!("name=\"{name}\"")]);
        cmd.args(["--set", "baseline=false"]);
        for o in own.iter().chain(&self.args.overrides) {
            cmd.args(["--set", o]);
        }
    }

    fn moclr(&self, epochs: u64, seed: u64) -> Result<()> {
        let dir = moclr_dir(self.out, epochs, seed);
        self.train_moclr(&dir, epochs, seed)?;
        self.evaluate_on_sources(&dir, "base", None)
    }

    fn train_moclr(&self, dir: &Path, epochs: u64, seed: u64) -> Result<()> {
        if is_finished(dir) {
            eprintln!("{}: done, skipped", dir.display());
            return Ok(());
        }
        let mut cmd = self.command("train");
        cmd.arg("--out").arg(dir);
        if dir.join("config.toml").is_file() {
            cmd.arg("--resume");
        } else {
            let name = format!("moclr-e{epochs}-s{seed}");
            let own = [
                "method=\"moclr\"".to_string(),
                format!("base.epochs={epochs}"),
            ];
            self.configured(&mut cmd, seed, &name, &own);
        }
        eprintln!("training MoCLR, {epochs} epochs, seed {seed}");
        run_cmd(&mut cmd)
    }

    fn arm(&self, arm: &Arm, total: u64, seed: u64) -> Result<()> {
        let dir = arm_dir(self.out, arm.name, total, seed);
        self.train_arm(arm, &dir, total, seed)?;
        let matched = moclr_dir(self.out, total, seed);
        self.evaluate_on_sources(&dir, "base,embed,cluster,experts,distill", Some(&matched))
    }

    /// Evaluates the trained run `dir` on every `--eval-on` source, each in a run folder of its
    /// own that takes `stages` from it, and its baseline when it has one: from the `matched`
    /// MoCLR point's evaluation on the same source when it is finished (its scores then stand
    /// for the baseline's), else from `dir`.
    fn evaluate_on_sources(&self, dir: &Path, stages: &str, matched: Option<&Path>) -> Result<()> {
        for (name, source) in self.sources {
            let eval = eval_dir(dir, name);
            let take_baseline = baseline_done(dir) && !baseline_done(&eval);
            if is_finished(&eval) && !take_baseline {
                continue;
            }
            if !eval.join("config.toml").is_file() {
                let mut cmd = self.command("init");
                cmd.arg("--config")
                    .arg(dir.join("config.toml"))
                    .arg("--out")
                    .arg(&eval);
                for o in [
                    format!("eval.data={}", toml_string(source)),
                    format!("data.eval_bank={}", toml_string(&source.join("train"))),
                    format!("data.eval_bank_limit={}", self.args.eval_bank_limit),
                ] {
                    cmd.args(["--set", &o]);
                }
                run_cmd(&mut cmd)?;
            }
            run_cmd(
                self.command("adopt")
                    .arg("--run")
                    .arg(&eval)
                    .arg("--from")
                    .arg(dir)
                    .args(["--stages", stages]),
            )?;
            if take_baseline {
                run_cmd(
                    self.command("adopt")
                        .arg("--run")
                        .arg(&eval)
                        .arg("--from")
                        .arg(
                            matched
                                .map(|m| eval_dir(m, name))
                                .filter(|m| is_finished(m))
                                .unwrap_or_else(|| dir.to_path_buf()),
                        )
                        .args(["--stages", "baseline"]),
                )?;
            }
            eprintln!("evaluating {} on {name}", dir.display());
            run_cmd(
                self.command("train")
                    .arg("--out")
                    .arg(&eval)
                    .arg("--resume"),
            )?;
        }
        Ok(())
    }

    fn train_arm(&self, arm: &Arm, dir: &Path, total: u64, seed: u64) -> Result<()> {
        // The MoCLR point at the same total is the run's matched baseline, taken (not trained)
        // so that the diagnostics score the experts against it on their own clusters. A second
        // round has none (its base was trained elsewhere); the report pairs it with that point.
        let matched = moclr_dir(self.out, total, seed);
        let take_baseline = !arm.second_round && is_finished(&matched) && !baseline_done(dir);
        if is_finished(dir) && !take_baseline {
            eprintln!("{}: done, skipped", dir.display());
            return Ok(());
        }
        if !dir.join("config.toml").is_file() {
            let own = self.arm_settings(arm, total, seed)?;
            let mut cmd = self.command("init");
            cmd.arg("--out").arg(dir);
            self.configured(
                &mut cmd,
                seed,
                &format!("{}-t{total}-s{seed}", arm.name),
                &own,
            );
            run_cmd(&mut cmd)?;
        }
        if !arm.second_round {
            let base = moclr_dir(self.out, total / 2, seed);
            run_cmd(
                self.command("adopt")
                    .arg("--run")
                    .arg(dir)
                    .arg("--from")
                    .arg(&base)
                    .args(["--stages", "base"]),
            )?;
        }
        if !arm.shares.is_empty() {
            let donor = arm_dir(self.out, "dnc", total, seed);
            run_cmd(
                self.command("adopt")
                    .arg("--run")
                    .arg(dir)
                    .arg("--from")
                    .arg(&donor)
                    .args(["--stages", arm.shares]),
            )?;
        }
        if take_baseline {
            // A MoCLR point that is not this run's baseline (one started from `init_from`, whose
            // DnC baseline would train from scratch) leaves the run without one: the point
            // trains all the same, and its diagnostics skip the comparison.
            let taken = run_cmd(
                self.command("adopt")
                    .arg("--run")
                    .arg(dir)
                    .arg("--from")
                    .arg(&matched)
                    .args(["--stages", "baseline"]),
            );
            if let Err(e) = taken {
                eprintln!(
                    "{}: no matched baseline taken from {}: {e:#}",
                    dir.display(),
                    matched.display()
                );
            }
        }
        eprintln!("training {} at {total} total epochs, seed {seed}", arm.name);
        run_cmd(self.command("train").arg("--out").arg(dir).arg("--resume"))
    }

    /// The settings of `arm`'s run at `total`: the stages' epochs and the arm's overrides. A
    /// second round's base is the finished `dnc` run's student at half the total, as it is.
    fn arm_settings(&self, arm: &Arm, total: u64, seed: u64) -> Result<Vec<String>> {
        let (base, experts, distill) = split(total);
        let mut own = vec![
            "method=\"dnc\"".to_string(),
            format!("experts.epochs={experts}"),
            format!("distill.epochs={distill}"),
        ];
        if arm.second_round {
            let first = first_round_dir(self.out, total, seed);
            if !is_finished(&first) {
                bail!(
                    "{} at {total}: its first round {} is not finished",
                    arm.name,
                    first.display()
                );
            }
            let path = first.join("distill/model.safetensors");
            let student = std::fs::canonicalize(&path)
                .with_context(|| format!("{}: no student to start from", path.display()))?;
            own.push("base.epochs=0".to_string());
            own.push(format!("init_from={}", toml_string(&student)));
        } else {
            own.push(format!("base.epochs={base}"));
        }
        own.extend(arm.overrides.iter().map(|o| o.to_string()));
        Ok(own)
    }
}

/// `path` as a TOML string value.
fn toml_string(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

/// One finished run's numbers: k-NN and linear top-1 (%), few-label probes (fraction → %),
/// and the wall seconds of its training stages.
struct Point {
    knn: f64,
    linear: Option<f64>,
    few_label: Vec<(f64, f64)>,
    seconds: f64,
    /// With `--eval-on`: k-NN top-1 (%) on each source, in the order given (`knn` is their
    /// mean).
    per_source: Vec<f64>,
    /// A DnC run's partition against the labels: NMI and purity against the classes, then
    /// against the class groups (`eval.class_groups`), where scored.
    clusters: [Option<f64>; 4],
}

/// The partition's scores in a run's summary: class NMI, class purity, group NMI, group purity.
fn cluster_scores(summary: &Value) -> [Option<f64>; 4] {
    let (classes, groups) = (
        &summary["info"]["cluster"],
        &summary["info"]["cluster_groups"],
    );
    [
        classes["nmi"].as_f64(),
        classes["purity"].as_f64(),
        groups["nmi"].as_f64(),
        groups["purity"].as_f64(),
    ]
}

/// The scores of `model` in the finished run `dir`, and its training stages' seconds; with
/// evaluation sources, each scored in its own `<dir>@<name>` run and averaged.
fn point(dir: &Path, model: &str, sources: &[(String, PathBuf)]) -> Option<Point> {
    let summary = summary_of(dir)?;
    if summary["stages"]["eval"]["done"] != true {
        return None;
    }
    let seconds = training_seconds(&summary)?;
    let clusters = cluster_scores(&summary);
    if sources.is_empty() {
        return scores(&summary, model, seconds).map(|p| Point { clusters, ..p });
    }
    let each: Vec<Point> = sources
        .iter()
        .map(|(name, _)| {
            let eval = summary_of(&eval_dir(dir, name))?;
            (eval["stages"]["eval"]["done"] == true).then_some(())?;
            scores(&eval, model, seconds)
        })
        .collect::<Option<_>>()?;
    let mean = |xs: Vec<f64>| xs.iter().sum::<f64>() / xs.len() as f64;
    let few_label = each[0]
        .few_label
        .iter()
        .filter_map(|&(f, _)| {
            let all: Option<Vec<f64>> = each
                .iter()
                .map(|p| p.few_label.iter().find(|x| x.0 == f).map(|x| x.1))
                .collect();
            Some((f, mean(all?)))
        })
        .collect();
    Some(Point {
        knn: mean(each.iter().map(|p| p.knn).collect()),
        linear: each
            .iter()
            .map(|p| p.linear)
            .collect::<Option<Vec<f64>>>()
            .map(mean),
        few_label,
        seconds,
        per_source: each.iter().map(|p| p.knn).collect(),
        clusters,
    })
}

/// The seconds of a run's training stages; a DnC run's baseline is the matched MoCLR point, not
/// its own cost.
fn training_seconds(summary: &Value) -> Option<f64> {
    let stages = summary["stages"].as_object()?;
    Some(
        stages
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "eval" | "baseline"))
            .filter_map(|(_, s)| s["seconds"].as_f64())
            .sum(),
    )
}

/// `model`'s scores in one run's summary, in %.
fn scores(summary: &Value, model: &str, seconds: f64) -> Option<Point> {
    let eval = &summary["eval"][model];
    let few_label = eval["few_label"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|f| Some((f["fraction"].as_f64()?, 100.0 * f["top1_mean"].as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    Some(Point {
        knn: 100.0 * eval["knn_top1"].as_f64()?,
        linear: eval["linear_top1"].as_f64().map(|x| 100.0 * x),
        few_label,
        seconds,
        per_source: Vec::new(),
        clusters: [None; 4],
    })
}

/// A DnC run's diagnostics in short: its experts against the base and against the matched MoCLR
/// on their own clusters (how many ahead, of how many scored, and the mean difference in
/// points), and k-NN of the routed ceiling, the student and the matched MoCLR, in %.
#[derive(Debug, PartialEq)]
struct OwnGround {
    scored: usize,
    ahead_of_base: usize,
    over_base: f64,
    /// With a matched MoCLR baseline in the run.
    ahead_of_moclr: Option<(usize, f64)>,
    ceiling: Option<f64>,
    student: Option<f64>,
    moclr: Option<f64>,
}

fn own_ground(summary: &Value) -> Option<OwnGround> {
    let d = &summary["info"]["diagnostics"];
    let clusters = d["clusters"].as_array()?;
    let pairs = |other: &str| -> Vec<f64> {
        clusters
            .iter()
            .filter_map(|c| Some(100.0 * (c["expert"].as_f64()? - c[other].as_f64()?)))
            .collect()
    };
    let over_base = pairs("base");
    if over_base.is_empty() {
        return None;
    }
    let over_moclr = pairs("baseline");
    let percent = |v: &Value| v.as_f64().map(|x| 100.0 * x);
    Some(OwnGround {
        scored: over_base.len(),
        ahead_of_base: over_base.iter().filter(|&&d| d > 0.0).count(),
        over_base: mean_std(&over_base).0,
        ahead_of_moclr: (!over_moclr.is_empty()).then(|| {
            (
                over_moclr.iter().filter(|&&d| d > 0.0).count(),
                mean_std(&over_moclr).0,
            )
        }),
        ceiling: percent(&d["ceiling"]["knn_top1"]),
        student: percent(&d["ceiling"]["student"]),
        moclr: percent(&d["ceiling"]["baseline"]),
    })
}

/// The "experts on their own ground" table: one row per finished DnC point with diagnostics.
/// With evaluation sources, one row per source (each source's evaluation run holds its own
/// diagnostics).
fn own_ground_table(
    seeds: u64,
    out: &Path,
    totals: &[u64],
    arms: &[&Arm],
    sources: &[(String, PathBuf)],
) -> String {
    let mut rows = String::new();
    let opt = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.2}"));
    let names: Vec<Option<&str>> = if sources.is_empty() {
        vec![None]
    } else {
        sources.iter().map(|(n, _)| Some(n.as_str())).collect()
    };
    for arm in arms {
        for &total in totals {
            for (seed, source) in (0..seeds).flat_map(|s| names.iter().map(move |n| (s, *n))) {
                let run = arm_dir(out, arm.name, total, seed);
                let dir = source.map_or(run.clone(), |n| eval_dir(&run, n));
                // One read: a finished evaluation with diagnostics.
                let Some(g) = summary_of(&dir)
                    .filter(|s| s["stages"]["eval"]["done"] == true)
                    .as_ref()
                    .and_then(own_ground)
                else {
                    continue;
                };
                let arm_name =
                    source.map_or(arm.name.to_string(), |n| format!("{} @{n}", arm.name));
                let versus_moclr = g.ahead_of_moclr.map_or("–".to_string(), |(n, d)| {
                    format!("{n} of {}, {d:+.2}", g.scored)
                });
                let _ = writeln!(
                    rows,
                    "| {arm_name} | {total} | {seed} | {} of {}, {:+.2} | {versus_moclr} | {} | {} | {} |",
                    g.ahead_of_base,
                    g.scored,
                    g.over_base,
                    opt(g.ceiling),
                    opt(g.student),
                    opt(g.moclr),
                );
            }
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "## The experts on their own ground

Each cluster's test images, k-NN with that \
         cluster's bank images (the run's diagnostics): how many experts beat the base, and the \
         matched MoCLR (MoCLR at the same total, taken into the run as its baseline), with the \
         mean difference in points; then k-NN on the whole test split of the routed base ‖ expert \
         features (the ceiling), the student and the matched MoCLR.\n\n| arm | total | seed | \
         experts > base | experts > matched MoCLR | ceiling | student | matched MoCLR |\n\
         |---|---|---|---|---|---|---|---|\n{rows}\n"
    )
}

/// Adds to every second-round point the training seconds of its first round, so that its wall
/// time is that of both rounds; a point whose first round cannot be read is left out (its cost
/// would be understated).
fn add_first_round_seconds(out: &Path, list: &mut Vec<Cell>) {
    for cell in list.iter_mut() {
        let total = cell.total;
        cell.points.retain_mut(|(seed, point)| {
            let first = summary_of(&first_round_dir(out, total, *seed));
            match first.as_ref().and_then(training_seconds) {
                Some(seconds) => {
                    point.seconds += seconds;
                    true
                }
                None => {
                    eprintln!("a second round at {total}, seed {seed}: its first round cannot be read, left out");
                    false
                }
            }
        });
    }
    list.retain(|c| !c.points.is_empty());
}

/// A method's finished points at one total, over seeds.
struct Cell {
    total: u64,
    /// (seed, point)
    points: Vec<(u64, Point)>,
}

impl Cell {
    fn stat(&self, f: impl Fn(&Point) -> Option<f64>) -> Option<(f64, f64)> {
        let xs: Vec<f64> = self.points.iter().filter_map(|(_, p)| f(p)).collect();
        (!xs.is_empty()).then(|| mean_std(&xs))
    }
}

fn cells(
    seeds: u64,
    totals: &[u64],
    dir: impl Fn(u64, u64) -> PathBuf,
    model: &str,
    sources: &[(String, PathBuf)],
) -> Vec<Cell> {
    totals
        .iter()
        .map(|&total| Cell {
            total,
            points: (0..seeds)
                .filter_map(|s| Some((s, point(&dir(total, s), model, sources)?)))
                .collect(),
        })
        .filter(|c| !c.points.is_empty())
        .collect()
}

fn show((mean, std): (f64, f64), n: usize) -> String {
    if n > 1 {
        format!("{mean:.2} ± {std:.2}")
    } else {
        format!("{mean:.2}")
    }
}

/// The study's run folders that exist but hold no finished evaluation, each with the last error
/// line of its log (or "no error in its log": running or interrupted).
fn unfinished_points(
    seeds: u64,
    out: &Path,
    ladder: &[u64],
    totals: &[u64],
    arms: &[&Arm],
) -> Vec<(PathBuf, String)> {
    let mut dirs = Vec::new();
    for seed in 0..seeds {
        dirs.extend(ladder.iter().map(|&e| moclr_dir(out, e, seed)));
        for &t in totals {
            dirs.extend(arms.iter().map(|a| arm_dir(out, a.name, t, seed)));
        }
    }
    dirs.into_iter()
        .filter(|d| d.join("config.toml").is_file() && !is_finished(d))
        .map(|d| {
            let log = std::fs::read_to_string(d.join("log.txt")).unwrap_or_default();
            let why = log
                .lines()
                .rev()
                .find(|l| l.contains("ERROR") || l.starts_with("error") || l.starts_with("Error"))
                .map_or(
                    "no error in its log (running or interrupted)".to_string(),
                    |l| l.trim().to_string(),
                );
            (d, why)
        })
        .collect()
}

/// The saturation budget: the first ladder point E whose double 2E is on the ladder and gains at
/// most 0.5 k-NN points over it.
fn saturation(moclr: &[Cell]) -> Option<u64> {
    let knn = |t: u64| moclr.iter().find(|c| c.total == t)?.stat(|p| Some(p.knn));
    moclr
        .iter()
        .map(|c| c.total)
        .find(|&e| matches!((knn(e), knn(2 * e)), (Some((a, _)), Some((b, _))) if b - a <= 0.5))
}

fn report(
    args: &BudgetArgs,
    out: &Path,
    stem: &str,
    ladder: &[u64],
    arms: &[&Arm],
    sources: &[(String, PathBuf)],
) -> Result<String> {
    let totals = dnc_totals(ladder);
    let moclr = cells(
        args.seeds,
        ladder,
        |t, s| moclr_dir(out, t, s),
        "base",
        sources,
    );
    if moclr.is_empty() {
        bail!("no finished MoCLR run under {}", out.display());
    }
    let arm_cells: Vec<(&Arm, Vec<Cell>)> = arms
        .iter()
        .map(|arm| {
            let mut list = cells(
                args.seeds,
                &totals,
                |t, s| arm_dir(out, arm.name, t, s),
                "dnc",
                sources,
            );
            if arm.second_round {
                add_first_round_seconds(out, &mut list);
            }
            (*arm, list)
        })
        .collect();
    let fractions: Vec<f64> = {
        let mut f: Vec<f64> = moclr
            .iter()
            .flat_map(|c| {
                c.points
                    .iter()
                    .flat_map(|(_, p)| p.few_label.iter().map(|x| x.0))
            })
            .collect();
        f.sort_by(f64::total_cmp);
        f.dedup();
        f
    };
    let few = |p: &Point, fraction: f64| {
        p.few_label
            .iter()
            .find(|(f, _)| *f == fraction)
            .map(|x| x.1)
    };

    let mut table = String::from("| method | total epochs | seeds | k-NN |");
    for (name, _) in sources {
        let _ = write!(table, " k-NN {name} |");
    }
    table.push_str(" linear |");
    for f in &fractions {
        let _ = write!(table, " linear {}% |", 100.0 * f);
    }
    table.push_str(" wall s |\n|---|---|---|---|---|");
    table.push_str(&"---|".repeat(sources.len() + fractions.len() + 1));
    table.push('\n');
    let mut summary = serde_json::Map::new();
    let mut rows = |name: &str, list: &[Cell]| {
        let mut entries = Vec::new();
        for c in list {
            let n = c.points.len();
            let knn = c.stat(|p| Some(p.knn)).expect("cells hold points");
            let linear = c.stat(|p| p.linear);
            let secs = c.stat(|p| Some(p.seconds)).expect("cells hold points");
            let _ = write!(table, "| {name} | {} | {n} | {} |", c.total, show(knn, n));
            let mut per_source = serde_json::Map::new();
            for (i, (source, _)) in sources.iter().enumerate() {
                let cell = c.stat(|p| p.per_source.get(i).copied());
                let _ = write!(table, " {} |", cell.map_or("–".into(), |x| show(x, n)));
                if let Some((m, s)) = cell {
                    per_source.insert(source.clone(), json!({"mean": m, "std": s}));
                }
            }
            let _ = write!(table, " {} |", linear.map_or("–".into(), |l| show(l, n)));
            let mut few_json = serde_json::Map::new();
            for &f in &fractions {
                let cell = c.stat(|p| few(p, f));
                let _ = write!(table, " {} |", cell.map_or("–".into(), |x| show(x, n)));
                if let Some((m, s)) = cell {
                    few_json.insert(f.to_string(), json!({"mean": m, "std": s}));
                }
            }
            let _ = writeln!(table, " {:.0} |", secs.0);
            entries.push(json!({
                "total_epochs": c.total,
                "seeds": c.points.iter().map(|(s, _)| s).collect::<Vec<_>>(),
                "knn": {"mean": knn.0, "std": knn.1},
                "knn_per_source": per_source,
                "linear": linear.map(|(m, s)| json!({"mean": m, "std": s})),
                "few_label": few_json,
                "wall_seconds": {"mean": secs.0, "std": secs.1},
            }));
        }
        summary.insert(name.to_string(), Value::Array(entries));
    };
    rows("moclr", &moclr);
    for (arm, list) in &arm_cells {
        rows(arm.name, list);
    }

    let e_star = saturation(&moclr);
    let mut versus = String::from(
        "| method | total | base epochs | Δ k-NN | Δ linear | k-NN wins (seeds) | wall time / MoCLR's |\n|---|---|---|---|---|---|---|\n",
    );
    for (arm, list) in &arm_cells {
        for c in list {
            let Some(m) = moclr.iter().find(|m| m.total == c.total) else {
                continue;
            };
            let paired: Vec<(&Point, &Point)> = c
                .points
                .iter()
                .filter_map(|(s, p)| Some((p, &m.points.iter().find(|(t, _)| t == s)?.1)))
                .collect();
            if paired.is_empty() {
                continue;
            }
            let delta = |f: &dyn Fn(&Point) -> Option<f64>| {
                let d: Vec<f64> = paired
                    .iter()
                    .filter_map(|(a, b)| Some(f(a)? - f(b)?))
                    .collect();
                (!d.is_empty()).then(|| mean_std(&d))
            };
            let wins = paired.iter().filter(|(a, b)| a.knn > b.knn).count();
            let ratio: f64 = paired
                .iter()
                .map(|(a, b)| a.seconds / b.seconds)
                .sum::<f64>()
                / paired.len() as f64;
            let n = paired.len();
            let base = if arm.second_round {
                format!("dnc at {}", c.total / 2)
            } else {
                split(c.total).0.to_string()
            };
            let _ = writeln!(
                versus,
                "| {} | {} | {base} | {} | {} | {wins} of {n} | {ratio:.2} |",
                arm.name,
                c.total,
                delta(&|p| Some(p.knn)).map_or("–".into(), |d| format!("{:+.2}", d.0)),
                delta(&|p| p.linear).map_or("–".into(), |d| format!("{:+.2}", d.0)),
            );
        }
    }

    let mut partitions = String::new();
    for (arm, list) in &arm_cells {
        for c in list {
            let cols: Vec<Option<(f64, f64)>> = (0..4).map(|i| c.stat(|p| p.clusters[i])).collect();
            if cols[0].is_none() {
                continue;
            }
            let n = c.points.len();
            let _ = write!(partitions, "| {} | {} | {n} |", arm.name, c.total);
            for col in cols {
                let _ = write!(
                    partitions,
                    " {} |",
                    col.map_or("–".into(), |(m, s)| if n > 1 {
                        format!("{m:.3} ± {s:.3}")
                    } else {
                        format!("{m:.3}")
                    })
                );
            }
            partitions.push('\n');
        }
    }
    let partitions = if partitions.is_empty() {
        String::new()
    } else {
        format!(
            "## The partitions\n\nThe experts' clusters against the labels of the training \
             images: NMI and purity against the classes, and against the class groups where the \
             preset names them (`eval.class_groups`).\n\n| arm | total | seeds | NMI | purity | \
             group NMI | group purity |\n|---|---|---|---|---|---|---|\n{partitions}\n"
        )
    };

    let own_ground = own_ground_table(args.seeds, out, &totals, arms, sources);
    let unfinished = unfinished_points(args.seeds, out, ladder, &totals, arms);
    let unfinished_md = if unfinished.is_empty() {
        String::new()
    } else {
        let lines: String = unfinished
            .iter()
            .map(|(dir, why)| format!("- `{}`: {why}\n", dir.display()))
            .collect();
        format!(
            "## Points not finished\n\nRunning, interrupted or failed (the study resumes the first \
             two; a failed one needs its cause fixed and its folder removed):\n\n{lines}\n"
        )
    };

    let chart = |metric: &str, f: &dyn Fn(&Point) -> Option<f64>| -> Result<String> {
        let file = format!("budget-{metric}.png");
        let mut series = Vec::new();
        let mut push = |name: &str, list: &[Cell]| {
            let stats: Vec<(f64, (f64, f64))> = list
                .iter()
                .filter_map(|c| Some((c.total as f64, c.stat(f)?)))
                .collect();
            if !stats.is_empty() {
                series.push(dnc_plot::Series {
                    name: name.to_string(),
                    points: stats.iter().map(|(t, (m, _))| (*t, *m)).collect(),
                    errors: stats.iter().map(|(_, (_, s))| *s).collect(),
                });
            }
        };
        push("MoCLR", &moclr);
        for (arm, list) in &arm_cells {
            push(arm.name, list);
        }
        dnc_plot::line_chart(
            &out.join(&file),
            &dnc_plot::LineChart {
                title: format!("{stem}: {metric} top-1 against total epochs"),
                x_label: "total training epochs (log scale)".into(),
                y_label: format!("{metric} top-1 (%)"),
                series,
                log_x: true,
                log_x_ticks: ladder.iter().map(|&e| e as f64).collect(),
                // Accuracy rises with the budget: the lower right is free.
                legend: dnc_plot::LegendCorner::LowerRight,
                ..dnc_plot::LineChart::default()
            },
        )?;
        Ok(file)
    };
    let knn_png = chart("knn", &|p| Some(p.knn))?;
    let linear_png = chart("linear", &|p| p.linear)?;

    let arm_lines: String = arms
        .iter()
        .map(|a| {
            let with = if a.overrides.is_empty() {
                String::new()
            } else {
                format!(" (`{}`)", a.overrides.join("`, `"))
            };
            format!("- `{}`: {}{with}\n", a.name, a.what)
        })
        .collect();
    let e_star_line = match e_star {
        Some(e) => format!(
            "**E\\* = {e}**: doubling MoCLR's epochs from {e} to {} gains at most 0.5 k-NN points. \
             DnC is compared at totals ≥ {} with a base of ≥ {e} epochs.",
            2 * e,
            2 * e
        ),
        None => "**E\\* not found**: no doubling measured on the ladder gains 0.5 k-NN points or \
             less, so MoCLR has not been seen to saturate at these budgets."
            .to_string(),
    };
    let doublings: Vec<String> = moclr
        .iter()
        .filter_map(|c| {
            let next = moclr.iter().find(|n| n.total == 2 * c.total)?;
            let (a, b) = (c.stat(|p| Some(p.knn))?.0, next.stat(|p| Some(p.knn))?.0);
            Some(format!("{} → {}: {:+.2}", c.total, next.total, b - a))
        })
        .collect();
    let e_star_line = if doublings.is_empty() {
        e_star_line
    } else {
        format!(
            "{e_star_line} MoCLR's k-NN gain per doubling: {}.",
            doublings.join(", ")
        )
    };
    let overrides = if args.overrides.is_empty() {
        String::new()
    } else {
        format!(" --set {}", args.overrides.join(" --set "))
    };
    let mut overrides = overrides;
    if let Some(dir) = &args.out {
        overrides.push_str(&format!(" --out {}", dir.display()));
    }
    for spec in &args.eval_on {
        overrides.push_str(&format!(" --eval-on {spec}"));
    }
    if !args.eval_on.is_empty() {
        overrides.push_str(&format!(" --eval-bank-limit {}", args.eval_bank_limit));
    }
    let ladder_arg: Vec<String> = ladder.iter().map(u64::to_string).collect();
    let arms_arg: Vec<&str> = arms.iter().map(|a| a.name).collect();
    let md = format!(
        "# Training budget: MoCLR and Divide and Contrast ({stem})\n\n\
         `cargo xtask experiment budget --config {config} --ladder {ladder} --seeds {seeds} --arms {arms}{overrides}`\n\n\
         MoCLR trains every total on the ladder. DnC at a total T trains its base T/2 epochs (the MoCLR run \
         of T/2 epochs, shared), its experts T/4 and its student the rest. Top-1 in % on the preset's test \
         split, or with `--eval-on` the mean over the sources, each on its own (mean ± std over seeds where \
         several ran); wall time is the sum of the training stages' \
         seconds (a DnC run counts its shared base, a second round its first round).\n\n{arm_lines}\n{e_star_line}\n\n{table}\n\
         ## DnC against MoCLR at equal totals\n\nDifferences in points, paired by seed.\n\n{versus}\n\
         {partitions}{own_ground}{unfinished_md}![k-NN against total epochs]({knn_png})\n\n![linear probe against total epochs]({linear_png})\n",
        config = args.config.display(),
        ladder = ladder_arg.join(","),
        seeds = args.seeds,
        arms = arms_arg.join(","),
    );
    summary.insert("saturation_epochs".into(), json!(e_star));
    summary.insert("ladder".into(), json!(ladder));
    write_results(out, &md, summary)?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_split_into_a_ladder_base_and_the_rest() {
        assert_eq!(split(20), (10, 5, 5));
        assert_eq!(split(10), (5, 2, 3));
        assert_eq!(dnc_totals(&[5, 10, 20, 40]), vec![10, 20, 40]);
        assert_eq!(dnc_totals(&[2, 4, 6]), vec![4]);
        assert!(dnc_totals(&[1, 2]).is_empty());
    }

    fn cell(total: u64, knns: &[f64]) -> Cell {
        Cell {
            total,
            points: knns
                .iter()
                .enumerate()
                .map(|(s, &knn)| {
                    (
                        s as u64,
                        Point {
                            knn,
                            linear: None,
                            few_label: Vec::new(),
                            seconds: 1.0,
                            per_source: Vec::new(),
                            clusters: [None; 4],
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn a_study_refuses_a_call_with_other_settings_and_grows_with_more_points() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: BudgetArgs,
        }
        let parse = |extra: &[&str]| {
            let mut argv = vec!["budget", "--config", "configs/gtsrb-tiny.toml"];
            argv.extend_from_slice(extra);
            Cli::parse_from(argv).args
        };
        let out = std::env::temp_dir().join(format!("dnc-study-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let first = parse(&["--ladder", "10,20", "--set", "base.optimizer.base_lr=0.06"]);
        // Nothing is recorded until a run has trained (a refused first call leaves no trace).
        check_study(&out, &first).unwrap();
        assert!(!out.join("study.json").exists());
        record_study(&out, &first).unwrap();
        assert!(out.join("study.json").is_file());
        // More totals, seeds and arms extend the same study.
        let more = parse(&[
            "--ladder",
            "10,20,40",
            "--seeds",
            "3",
            "--set",
            "base.optimizer.base_lr=0.06",
        ]);
        check_study(&out, &more).unwrap();
        // Another override would be skipped at every finished point.
        let other = parse(&["--ladder", "10,20", "--set", "base.optimizer.base_lr=0.3"]);
        let err = check_study(&out, &other).unwrap_err().to_string();
        assert!(
            err.contains("study.json") && err.contains("set") && err.contains("base_lr=0.3"),
            "{err}"
        );
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn a_failed_point_is_recorded_and_the_study_goes_on_unless_killed() {
        let mut failed = Vec::new();
        go_on(Ok(()), &mut failed).unwrap();
        go_on(
            Err(anyhow::anyhow!("dnc train failed with exit status: 1")),
            &mut failed,
        )
        .unwrap();
        assert_eq!(failed.len(), 1);
        let killed = go_on(
            Err(anyhow::anyhow!(
                "dnc train failed with signal: 15 (SIGTERM)"
            )),
            &mut failed,
        );
        assert!(killed.is_err());
        assert_eq!(failed.len(), 1);
    }

    #[test]
    fn a_second_round_is_drawn_where_a_first_round_is_and_costs_both() {
        let round2 = ARMS.iter().find(|a| a.second_round).unwrap();
        let totals = dnc_totals(&[10, 20, 40, 80]);
        assert_eq!(totals, [20, 40, 80]);
        let drawn: Vec<u64> = totals
            .iter()
            .copied()
            .filter(|&t| runs_at(round2, t, &totals))
            .collect();
        assert_eq!(drawn, [40, 80]);
        assert!(totals.iter().all(|&t| runs_at(&ARMS[0], t, &totals)));

        let out = std::env::temp_dir().join(format!("dnc-round2-{}", std::process::id()));
        let first = first_round_dir(&out, 80, 1);
        assert_eq!(first, out.join("dnc-t40-s1"));
        std::fs::create_dir_all(&first).unwrap();
        let stages = json!({"stages": {
            "base": {"seconds": 100.0}, "experts": {"seconds": 40.0},
            "distill": {"seconds": 60.0}, "baseline": {"seconds": 999.0},
            "eval": {"seconds": 7.0, "done": true}}});
        std::fs::write(first.join("summary.json"), stages.to_string()).unwrap();
        // Seed 0 has no first round on disk: left out rather than shown cheaper than it was.
        let mut list = vec![cell(80, &[30.0, 31.0]), cell(160, &[32.0])];
        add_first_round_seconds(&out, &mut list);
        assert_eq!(list.len(), 1, "a total without any first round has no cell");
        let seconds: Vec<(u64, f64)> = list[0]
            .points
            .iter()
            .map(|(s, p)| (*s, p.seconds))
            .collect();
        assert_eq!(seconds, [(1, 201.0)]);
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn unfinished_points_are_listed_with_their_last_error() {
        let out = std::env::temp_dir().join(format!("dnc-unfinished-{}", std::process::id()));
        let failed = moclr_dir(&out, 10, 0);
        let running = moclr_dir(&out, 20, 0);
        for d in [&failed, &running] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("config.toml"), "").unwrap();
        }
        std::fs::write(
            failed.join("log.txt"),
            "INFO start\nERROR non-finite loss NaN at step 77\nINFO after\n",
        )
        .unwrap();
        let listed = unfinished_points(1, &out, &[10, 20, 40], &[20], &[&ARMS[0]]);
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(listed[0].1.contains("non-finite loss"), "{listed:?}");
        assert!(listed[1].1.contains("running or interrupted"), "{listed:?}");
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn own_ground_reads_the_experts_against_the_base_and_the_matched_moclr() {
        let cluster = |base: f64, expert: f64, baseline: Option<f64>| {
            let mut c = json!({"base": base, "expert": expert, "student": 0.3});
            if let Some(b) = baseline {
                c["baseline"] = json!(b);
            }
            c
        };
        let summary = |clusters: Vec<Value>, baseline: Option<f64>| {
            json!({"info": {"diagnostics": {
                "clusters": clusters,
                "ceiling": {"knn_top1": 0.4, "student": 0.35, "baseline": baseline},
            }}})
        };
        // Experts 0.30 / 0.20 / unscored against a base of 0.25 / 0.22 and a MoCLR of 0.28 / 0.18.
        let with = summary(
            vec![
                cluster(0.25, 0.30, Some(0.28)),
                cluster(0.22, 0.20, Some(0.18)),
                json!({"base": null, "expert": null, "student": null}),
            ],
            Some(0.37),
        );
        let g = own_ground(&with).unwrap();
        assert_eq!((g.scored, g.ahead_of_base), (2, 1));
        assert!((g.over_base - 1.5).abs() < 1e-9, "{}", g.over_base);
        let (ahead, over) = g.ahead_of_moclr.unwrap();
        assert_eq!(ahead, 2);
        assert!((over - 2.0).abs() < 1e-9, "{over}");
        assert_eq!((g.ceiling, g.student), (Some(40.0), Some(35.0)));
        assert!((g.moclr.unwrap() - 37.0).abs() < 1e-9);
        // Without a baseline in the run, no comparison with MoCLR.
        let without = summary(vec![cluster(0.25, 0.30, None)], None);
        let g = own_ground(&without).unwrap();
        assert_eq!((g.ahead_of_moclr, g.moclr), (None, None));
        assert!(own_ground(&json!({"info": {}})).is_none());
    }

    #[test]
    fn saturation_is_the_first_doubling_that_gains_half_a_point_or_less() {
        let ladder = [
            cell(5, &[30.0]),
            cell(10, &[36.0]),
            cell(20, &[39.0, 39.2]),
            cell(40, &[39.5, 39.5]),
            cell(80, &[39.6]),
        ];
        assert_eq!(saturation(&ladder), Some(20));
        assert_eq!(saturation(&ladder[..4]), Some(20));
        assert_eq!(saturation(&ladder[..3]), None);
    }
}
