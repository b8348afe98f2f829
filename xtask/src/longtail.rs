//! `cargo xtask data longtail`: an uncurated (long-tailed) training set from any ImageFolder, and
//! its curated counterpart with the same number of images.
//!
//! Class `r` in frequency rank keeps `n_r = n_max · ρ^(−r/(C−1))` images (ρ = `--imbalance`), the
//! long-tail protocol of the curation-gap experiment; which class gets which rank is a seeded
//! permutation. Optional out-of-distribution distractors (a flat folder of images) are added
//! without a label, in a `~distractors` folder that sorts after every class. The curated set is
//! class-balanced with the same total (the reference balanced-subset rule: first files by name).
//! Images are symbolic links, not copies; `manifest.json` records the counts and ranks. The
//! source's `test/` split is linked as it is, so both sets evaluate on the balanced test split.

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub(crate) struct LongtailArgs {
    /// Source dataset: a folder with `train/<class>/` (and usually `test/<class>/`).
    #[arg(long)]
    src: PathBuf,
    /// Output folder; `uncurated/` and `curated/` are written inside.
    #[arg(long)]
    out: PathBuf,
    /// Imbalance ρ = n_max / n_min.
    #[arg(long, default_value_t = 100.0)]
    imbalance: f64,
    /// Images of the most frequent class (default: the smallest class size of the source).
    #[arg(long)]
    max_per_class: Option<usize>,
    /// A flat folder of out-of-distribution images to mix in without labels.
    #[arg(long)]
    distractors: Option<PathBuf>,
    /// Distractors as a fraction of the uncurated training set.
    #[arg(long, default_value_t = 0.0)]
    distractor_frac: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl LongtailArgs {
    /// Arguments without distractors.
    pub(crate) fn new(
        src: PathBuf,
        out: PathBuf,
        imbalance: f64,
        max_per_class: Option<usize>,
        seed: u64,
    ) -> Self {
        Self {
            src,
            out,
            imbalance,
            max_per_class,
            distractors: None,
            distractor_frac: 0.0,
            seed,
        }
    }
}

/// What was built, written to `<out>/manifest.json`.
#[derive(Serialize)]
pub(crate) struct Manifest {
    pub(crate) imbalance: f64,
    pub(crate) seed: u64,
    /// Class names in the source's (sorted) order.
    pub(crate) classes: Vec<String>,
    /// Images per class in the uncurated set, in class order.
    pub(crate) uncurated_counts: Vec<usize>,
    /// Frequency rank of every class (0 = most frequent), in class order.
    pub(crate) rank: Vec<usize>,
    pub(crate) curated_counts: Vec<usize>,
    pub(crate) distractors: usize,
    pub(crate) total: usize,
}

/// SplitMix64: a tiny seeded generator, enough for a deterministic permutation.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            xs.swap(i, j);
        }
    }
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

/// Image files of a folder, sorted by name.
fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    files.sort();
    Ok(files)
}

/// Per-rank counts n_r = round(n_max · ρ^(−r/(C−1))), at least 1.
pub(crate) fn longtail_counts(classes: usize, n_max: usize, imbalance: f64) -> Vec<usize> {
    (0..classes)
        .map(|r| {
            let exp = if classes > 1 {
                r as f64 / (classes - 1) as f64
            } else {
                0.0
            };
            ((n_max as f64 * imbalance.powf(-exp)).round() as usize).max(1)
        })
        .collect()
}

/// Balanced counts for `total` images over `classes` (remainder to the first classes).
fn balanced_counts(classes: usize, total: usize) -> Vec<usize> {
    (0..classes)
        .map(|i| total / classes + usize::from(i < total % classes))
        .collect()
}

fn link_all(files: &[PathBuf], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for f in files {
        let target = std::fs::canonicalize(f)?;
        let link = dir.join(f.file_name().context("file without a name")?);
        std::os::unix::fs::symlink(&target, &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    Ok(())
}

pub(crate) fn run(args: LongtailArgs) -> Result<()> {
    let manifest = build(&args)?;
    println!(
        "uncurated: {} images ({} distractors), counts {:?}; curated: {:?}",
        manifest.total, manifest.distractors, manifest.uncurated_counts, manifest.curated_counts
    );
    Ok(())
}

pub(crate) fn build(args: &LongtailArgs) -> Result<Manifest> {
    if args.imbalance.is_nan() || args.imbalance < 1.0 {
        bail!("--imbalance must be >= 1, got {}", args.imbalance);
    }
    if !(0.0..1.0).contains(&args.distractor_frac) {
        bail!(
            "--distractor-frac must be in [0, 1), got {}",
            args.distractor_frac
        );
    }
    let train = args.src.join("train");
    let mut classes: Vec<String> = std::fs::read_dir(&train)
        .with_context(|| format!("{} has no train/ folder", args.src.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    classes.sort();
    if classes.len() < 2 {
        bail!("{} needs at least two class folders", train.display());
    }
    let files: Vec<Vec<PathBuf>> = classes
        .iter()
        .map(|c| images_in(&train.join(c)))
        .collect::<Result<_>>()?;
    let smallest = files.iter().map(Vec::len).min().unwrap_or(0);
    let n_max = args.max_per_class.unwrap_or(smallest);
    if n_max == 0 || n_max > smallest {
        bail!("--max-per-class {n_max} is not within 1..={smallest} (the smallest class)");
    }
    if args.out.exists() {
        bail!("{} exists; choose a new --out", args.out.display());
    }
    let mut order: Vec<usize> = (0..classes.len()).collect();
    SplitMix(args.seed).shuffle(&mut order);
    let by_rank = longtail_counts(classes.len(), n_max, args.imbalance);
    let mut rank = vec![0; classes.len()];
    let mut counts = vec![0; classes.len()];
    for (r, &c) in order.iter().enumerate() {
        rank[c] = r;
        counts[c] = by_rank[r];
    }
    let total_labelled: usize = counts.iter().sum();
    let uncurated = args.out.join("uncurated");
    for (c, name) in classes.iter().enumerate() {
        let mut picked = files[c].clone();
        SplitMix(args.seed ^ (c as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407))
            .shuffle(&mut picked);
        picked.truncate(counts[c]);
        picked.sort();
        link_all(&picked, &uncurated.join("train").join(name))?;
    }
    let distractors = add_distractors(args, total_labelled, &uncurated)?;
    let total = total_labelled + distractors;
    let curated_counts = balanced_counts(classes.len(), total);
    let curated = args.out.join("curated");
    for (c, name) in classes.iter().enumerate() {
        if curated_counts[c] > files[c].len() {
            bail!(
                "class {name} has {} images, the curated set needs {}",
                files[c].len(),
                curated_counts[c]
            );
        }
        link_all(
            &files[c][..curated_counts[c]],
            &curated.join("train").join(name),
        )?;
    }
    let test = args.src.join("test");
    if test.is_dir() {
        let target = std::fs::canonicalize(&test)?;
        for set in [&uncurated, &curated] {
            std::os::unix::fs::symlink(&target, set.join("test"))?;
        }
    }
    let manifest = Manifest {
        imbalance: args.imbalance,
        seed: args.seed,
        classes,
        uncurated_counts: counts,
        rank,
        curated_counts,
        distractors,
        total,
    };
    std::fs::write(
        args.out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    Ok(manifest)
}

/// Links `frac / (1 − frac) · labelled` distractor images into `~distractors/`.
fn add_distractors(args: &LongtailArgs, labelled: usize, uncurated: &Path) -> Result<usize> {
    let Some(dir) = &args.distractors else {
        if args.distractor_frac > 0.0 {
            bail!("--distractor-frac needs --distractors DIR");
        }
        return Ok(0);
    };
    let want =
        (args.distractor_frac / (1.0 - args.distractor_frac) * labelled as f64).round() as usize;
    let mut files = images_in(dir)?;
    if files.len() < want {
        bail!(
            "{} holds {} images, {want} distractors are needed",
            dir.display(),
            files.len()
        );
    }
    SplitMix(args.seed ^ 0xD157).shuffle(&mut files);
    files.truncate(want);
    files.sort();
    link_all(&files, &uncurated.join("train").join("~distractors"))?;
    Ok(want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_power_law() {
        let c = longtail_counts(10, 500, 100.0);
        assert_eq!(c[0], 500);
        assert_eq!(c[9], 5);
        // 500 · 100^(−1/9) = 500 · 0.5995 = 299.7
        assert_eq!(c[1], 300);
        assert!(c.windows(2).all(|w| w[0] >= w[1]));
        assert_eq!(balanced_counts(3, 10), vec![4, 3, 3]);
    }

    #[test]
    fn builds_linked_sets_with_equal_totals() {
        let dir = std::env::temp_dir().join(format!("dnc-longtail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for class in ["a", "b", "c"] {
            for split in ["train", "test"] {
                let d = dir.join("src").join(split).join(class);
                std::fs::create_dir_all(&d).unwrap();
                for i in 0..20 {
                    std::fs::write(d.join(format!("{i:02}.jpg")), b"x").unwrap();
                }
            }
        }
        let flat = dir.join("ood");
        std::fs::create_dir_all(&flat).unwrap();
        for i in 0..10 {
            std::fs::write(flat.join(format!("{i}.png")), b"x").unwrap();
        }
        let args = LongtailArgs {
            src: dir.join("src"),
            out: dir.join("out"),
            imbalance: 10.0,
            max_per_class: Some(20),
            distractors: Some(flat),
            distractor_frac: 0.2,
            seed: 1,
        };
        let m = build(&args).unwrap();
        let mut sorted = m.uncurated_counts.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![2, 6, 20]); // 20·10^(−r/2)
        assert_eq!(m.distractors, 7); // 0.2/0.8 · 28
        assert_eq!(m.total, 35);
        assert_eq!(m.curated_counts.iter().sum::<usize>(), 35);
        let count = |p: PathBuf| std::fs::read_dir(p).unwrap().count();
        assert_eq!(count(dir.join("out/uncurated/train/~distractors")), 7);
        assert_eq!(count(dir.join("out/curated/train/a")), 12);
        assert_eq!(count(dir.join("out/curated/test/a")), 20);
        // Deterministic: the same seed picks the same files.
        let again = LongtailArgs {
            out: dir.join("out2"),
            ..args
        };
        let m2 = build(&again).unwrap();
        assert_eq!(m2.uncurated_counts, m.uncurated_counts);
        let names = |p: PathBuf| {
            let mut v: Vec<_> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        for class in ["a", "b", "c"] {
            assert_eq!(
                names(dir.join("out/uncurated/train").join(class)),
                names(dir.join("out2/uncurated/train").join(class))
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
