//! `report.md`: the run for people — results table, stage times, clusters, diagnostics and loss
//! curves.

use crate::assignments::ClusterInfo;
use crate::error::PipelineError;
use crate::run::Run;
use crate::run_dir::{
    COMPOSITION_PLOT, DIAGNOSTICS_PLOT, EXAMPLES_PLOT, LOSS_PLOT, Summary, write_atomic,
};
use crate::stages::{Diagnostics, GroupScores};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Report order of the models; others follow alphabetically.
const MODEL_ORDER: [&str; 6] = [
    "untrained",
    "untrained-bn",
    "base",
    "dnc-start",
    "dnc",
    "baseline",
];

/// The models of a summary in report order.
pub fn ordered_models(summary: &Summary) -> Vec<String> {
    let mut names: Vec<String> = MODEL_ORDER
        .iter()
        .filter(|m| summary.eval.contains_key(**m))
        .map(|m| m.to_string())
        .collect();
    names.extend(
        summary
            .eval
            .keys()
            .filter(|k| !MODEL_ORDER.contains(&k.as_str()))
            .cloned(),
    );
    names
}

/// The results table (Markdown) of a summary, with a column per few-label fraction when any
/// model has few-label probes.
pub fn results_table(summary: &Summary) -> String {
    let models = ordered_models(summary);
    let mut fractions: Vec<(f64, String)> = Vec::new();
    for score in models.iter().flat_map(|m| &summary.eval[m].few_label) {
        if !fractions.iter().any(|(f, _)| *f == score.fraction) {
            fractions.push((score.fraction, score.percent()));
        }
    }
    fractions.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = String::from("| model | k-NN top-1 | linear top-1 |");
    for (_, percent) in &fractions {
        let _ = write!(out, " linear {percent} |");
    }
    out.push_str("\n|---|---|---|");
    out.push_str(&"---|".repeat(fractions.len()));
    out.push('\n');
    for name in models {
        let e = &summary.eval[&name];
        let _ = write!(
            out,
            "| {name} | {:.2}% | {} |",
            100.0 * e.knn_top1,
            percent(e.linear_top1)
        );
        for (fraction, _) in &fractions {
            let few = e.few_label.iter().find(|s| s.fraction == *fraction);
            let _ = write!(out, " {} |", percent(few.map(|s| s.top1_mean)));
        }
        out.push('\n');
    }
    out
}

/// Writes `report.md` (and `loss.png`) from `summary.json` and `metrics.jsonl`.
pub fn write_report(run: &Run) -> Result<(), PipelineError> {
    let summary = run.dir.read_summary()?;
    let cfg = &run.cfg;
    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", cfg.name);
    let data = match &cfg.data.train {
        Some(tree) => format!("the image tree `{}`", tree.display()),
        None => format!("`{}`", cfg.data.root.display()),
    };
    let _ = writeln!(
        md,
        "Data {data} (train limit {}, test limit {}); backbone `{:?}`; method `{:?}`; seed {}.\n",
        cfg.data.train_limit, cfg.data.test_limit, cfg.model.backbone.arch, cfg.method, cfg.seed
    );
    if let Some(spec) = &cfg.init_from {
        let whole = summary
            .info
            .get("init_from")
            .and_then(|i| i["whole_encoder"].as_bool());
        let how = match (cfg.base.epochs, whole == Some(true)) {
            (0, true) => {
                "the base is that encoder as it is (`base.epochs = 0`: a second round \
                          when it is a student)"
            }
            (0, false) => {
                "the base is that backbone as it is (`base.epochs = 0`), its \
                           projector drawn from its seed"
            }
            (_, true) => "the base starts from that encoder",
            (_, false) => "the base's backbone starts from them, its projector from its seed",
        };
        let _ = writeln!(md, "Weights from `{spec}`: {how}.\n");
    }
    md.push_str("## Results\n\n");
    match crate::datasets::eval_root(cfg) {
        Some(root) => {
            let _ = writeln!(
                md,
                "Frozen backbone features of `{}`; k-NN: k = {}, τ = {} on the test split with \
                 the train split as memory bank.\n",
                root.display(),
                cfg.eval.knn.k,
                cfg.eval.knn.temperature
            );
            md.push_str(&results_table(&summary));
        }
        None => md.push_str(
            "No accuracy: the run trains on unlabelled images and `eval.data` (a labelled \
             folder with train/ and test/) is not set.\n",
        ),
    }
    md.push_str(
        "\n## Stages\n\n| stage | done | wall time | unreadable images skipped |\n|---|---|---|---|\n",
    );
    for stage in run.stages() {
        if let Some(s) = summary.stages.get(stage.name()) {
            // Only the stages that read images record skips.
            let skipped = summary
                .info
                .get(stage.name())
                .and_then(|i| i["skipped"]["count"].as_u64())
                .map_or_else(|| "—".to_string(), |n| n.to_string());
            let _ = writeln!(
                md,
                "| {stage} | {} | {:.1} s | {skipped} |",
                s.done, s.seconds
            );
        }
    }
    if let Some(info) = summary.info.get("cluster") {
        let info: ClusterInfo = serde_json::from_value(info.clone())
            .map_err(|e| PipelineError::Other(format!("summary.json info.cluster: {e}")))?;
        let groups: Option<GroupScores> = match summary.info.get("cluster_groups") {
            Some(g) => Some(serde_json::from_value(g.clone()).map_err(|e| {
                PipelineError::Other(format!("summary.json info.cluster_groups: {e}"))
            })?),
            None => None,
        };
        md.push_str(&cluster_section(&info, groups.as_ref()));
    }
    if let Some(info) = summary.info.get("diagnostics") {
        let d: Diagnostics = serde_json::from_value(info.clone()).map_err(|e| {
            PipelineError::Other(format!(
                "{}: info.diagnostics: {e}",
                run.dir.summary_path().display()
            ))
        })?;
        let plotted = diagnostics_plot(run, &d)?;
        md.push_str(&diagnostics_section(&d, plotted));
    }
    if loss_plot(run)? {
        let _ = writeln!(md, "\n## Training loss\n\n![loss per stage]({LOSS_PLOT})");
    }
    write_atomic(&run.dir.report_path(), md.as_bytes())
}

fn cluster_section(info: &ClusterInfo, groups: Option<&GroupScores>) -> String {
    let mut md = format!("\n## Clusters\n\nK = {}; sizes {:?}", info.k, info.sizes);
    let score = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.3}"));
    let _ = writeln!(
        md,
        "; against the class labels: NMI {}, ARI {}, purity {}.",
        score(info.nmi),
        score(info.ari),
        score(info.purity)
    );
    if let Some(g) = groups {
        let _ = writeln!(
            md,
            "\nAgainst the {} class groups of `{}` ({}): NMI {:.3}, ARI {:.3}, purity {:.3}.",
            g.groups.len(),
            g.file.display(),
            g.groups.join(", "),
            g.nmi,
            g.ari,
            g.purity
        );
    }
    for m in &info.merged {
        let _ = writeln!(md, "\n- merged {m}");
    }
    if info.nmi.is_some() {
        let _ = writeln!(md, "\n![cluster composition by class]({COMPOSITION_PLOT})");
    }
    if !info.examples.is_empty() {
        let _ = writeln!(
            md,
            "\nExample images, one row per cluster (the nearest to their k-means centroid):\n\n\
             ![example images of each cluster]({EXAMPLES_PLOT})",
        );
    }
    md
}

/// Percent with two decimals, or `-`.
fn percent(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.2}%", 100.0 * v))
}

fn diagnostics_section(d: &Diagnostics, plotted: bool) -> String {
    let lower = |x: &dyn std::fmt::Debug| format!("{x:?}").to_lowercase();
    let with_baseline = d.experts_ahead_of_baseline.is_some();
    let mut md = format!(
        "\n## Diagnostics\n\nEvery bank and test image is routed to the nearest of the K = {} \
         centroids on the base model's `{}` layer ({} metric), as the divide stage split the \
         training images.\n\n**Experts on their own ground**: k-NN top-1 on each cluster's test \
         images with that cluster's bank images as memory bank.\n\n\
         | cluster | n_train | n_test | base | expert | student | delta (expert − base) |{}\n\
         |---|---|---|---|---|---|---|{}\n",
        d.k,
        lower(&d.layer),
        lower(&d.metric),
        if with_baseline {
            " matched MoCLR |"
        } else {
            ""
        },
        if with_baseline { "---|" } else { "" },
    );
    for c in &d.clusters {
        let delta = c
            .delta
            .map_or("-".into(), |v| format!("{:+.2} points", 100.0 * v));
        let baseline = if with_baseline {
            format!(" {} |", percent(c.baseline))
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {delta} |{baseline}",
            c.cluster,
            c.n_train,
            c.n_test,
            percent(c.base),
            percent(c.expert),
            percent(c.student)
        );
    }
    let _ = writeln!(md, "\n**Verdict:** {}", d.verdict);
    if let Some(ahead) = d.experts_ahead_of_baseline {
        let _ = writeln!(
            md,
            "\nThe experts beat the matched MoCLR baseline (MoCLR for the run's total epochs) on \
             {ahead} of {} clusters, on their own ground.",
            d.scored
        );
    }
    if plotted {
        let _ = writeln!(
            md,
            "\n![k-NN top-1 of base, expert and student within each cluster]({DIAGNOSTICS_PLOT})",
        );
    }
    let c = &d.ceiling;
    let _ = writeln!(
        md,
        "\n**The ceiling**: k-NN top-1 on the whole test split with the routed \
         `[n(base) ‖ n(expert_c)]` backbone features (c the image's cluster), what distillation \
         could reach.\n\n| features | k-NN top-1 |\n|---|---|\n| base | {} |\n\
         | DnC student | {} |\n| base ‖ routed expert (ceiling) | {} |",
        percent(c.base),
        percent(c.student),
        percent(Some(c.knn_top1))
    );
    if c.baseline.is_some() {
        let _ = writeln!(md, "| matched MoCLR | {} |", percent(c.baseline));
    }
    md.push_str(
        "\n**Distillation fidelity**: mean cosine between each student head's prediction and its \
         teacher's L2-normalised projection of the same test images (the base: all of them; an \
         expert: its cluster's).\n\n| head | teacher | n | mean cosine |\n|---|---|---|---|\n",
    );
    for f in &d.fidelity {
        let cos = f.mean_cosine.map_or("-".into(), |v| format!("{v:.4}"));
        let _ = writeln!(md, "| {} | {} | {} | {cos} |", f.head, f.teacher, f.n);
    }
    md
}

/// Draws `diagnostics.png`: grouped bars of the base's, the expert's and the student's k-NN
/// top-1 within each scored cluster; false when no cluster was scored.
fn diagnostics_plot(run: &Run, d: &Diagnostics) -> Result<bool, PipelineError> {
    let scored: Vec<_> = d
        .clusters
        .iter()
        .filter_map(|c| Some((c.cluster, c.base?, c.expert?, c.student?)))
        .collect();
    if scored.is_empty() {
        return Ok(false);
    }
    let series = |name: &str, pick: fn(&(usize, f64, f64, f64)) -> f64| {
        let values = scored.iter().map(|s| (100.0 * pick(s), 0.0)).collect();
        (name.to_string(), values)
    };
    let chart = dnc_plot::ErrorBars {
        title: "k-NN top-1 within each cluster".into(),
        y_label: "k-NN top-1 (%)".into(),
        groups: scored.iter().map(|s| format!("cluster {}", s.0)).collect(),
        series: vec![
            series("base", |s| s.1),
            series("expert", |s| s.2),
            series("student", |s| s.3),
        ],
        ..dnc_plot::ErrorBars::default()
    };
    dnc_plot::bar_chart_with_errors(&run.dir.diagnostics_plot_path(), &chart)
        .map_err(|e| PipelineError::Other(e.to_string()))?;
    Ok(true)
}

/// Plots the step losses of every stage from `metrics.jsonl`; false when there is nothing to plot.
fn loss_plot(run: &Run) -> Result<bool, PipelineError> {
    let path = run.dir.metrics_path();
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(false);
    };
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["kind"] != "step" {
            continue;
        }
        if let (Some(stage), Some(step), Some(loss)) =
            (v["stage"].as_str(), v["step"].as_f64(), v["loss"].as_f64())
        {
            series
                .entry(stage.to_string())
                .or_default()
                .push((step, loss));
        }
    }
    if series.is_empty() {
        return Ok(false);
    }
    let chart = dnc_plot::LineChart {
        title: "Training loss".into(),
        x_label: "step".into(),
        y_label: "loss".into(),
        series: series
            .into_iter()
            .map(|(name, points)| dnc_plot::Series {
                name,
                points,
                errors: Vec::new(),
            })
            .collect(),
        ..dnc_plot::LineChart::default()
    };
    dnc_plot::line_chart(&run.dir.loss_plot_path(), &chart)
        .map_err(|e| PipelineError::Other(e.to_string()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::ModelEval;
    use dnc_eval::FewLabelScore;

    fn few(fraction: f64, top1_mean: f64) -> FewLabelScore {
        FewLabelScore {
            fraction,
            draws: 1,
            items: 10,
            top1_mean,
            top1_per_draw: vec![top1_mean],
        }
    }

    #[test]
    fn results_table_has_a_column_per_few_label_fraction() {
        let mut summary = Summary::default();
        let eval = |knn_top1, linear_top1, few_label| ModelEval {
            knn_top1,
            linear_top1,
            few_label,
            ..ModelEval::default()
        };
        summary
            .eval
            .insert("untrained".into(), eval(0.1, None, vec![]));
        let base = eval(0.5, Some(0.6), vec![few(0.1, 0.45), few(0.01, 0.3)]);
        summary.eval.insert("base".into(), base);
        assert_eq!(
            results_table(&summary),
            "| model | k-NN top-1 | linear top-1 | linear 1% | linear 10% |\n\
             |---|---|---|---|---|\n\
             | untrained | 10.00% | - | - | - |\n\
             | base | 50.00% | 60.00% | 30.00% | 45.00% |\n"
        );
        summary.eval.remove("base");
        assert_eq!(
            results_table(&summary),
            "| model | k-NN top-1 | linear top-1 |\n|---|---|---|\n| untrained | 10.00% | - |\n"
        );
    }
}
