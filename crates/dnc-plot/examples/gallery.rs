//! Writes one chart of each kind, with made-up run data, into a folder:
//! `cargo run -p dnc-plot --example gallery -- <folder>` (default: the current folder).

use std::path::PathBuf;

use dnc_plot::{
    ErrorBars, LineChart, PlotError, Series, StackedBars, bar_chart_with_errors, line_chart,
    stacked_bar_chart,
};

fn main() -> Result<(), PlotError> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    let curve = |scale: f64, offset: f64| -> Vec<(f64, f64)> {
        (0..200)
            .map(|e| (e as f64, offset + scale / (1.0 + 0.05 * e as f64)))
            .collect()
    };
    let losses = LineChart {
        title: "Training loss".into(),
        x_label: "epoch".into(),
        y_label: "loss".into(),
        series: vec![
            Series {
                name: "base".into(),
                points: curve(8.0, 0.5),
                errors: Vec::new(),
            },
            Series {
                name: "expert-0".into(),
                points: curve(6.0, 0.8),
                errors: Vec::new(),
            },
            Series {
                name: "distill".into(),
                points: curve(1.5, 0.05),
                errors: Vec::new(),
            },
        ],
        log_y: true,
        ..LineChart::default()
    };
    line_chart(&dir.join("losses.png"), &losses)?;

    let classes = ["airplane", "automobile", "bird", "cat", "deer"];
    let composition = StackedBars {
        title: "Cluster composition".into(),
        x_label: "cluster".into(),
        y_label: "images".into(),
        categories: (0..5).map(|k| k.to_string()).collect(),
        stacks: classes.iter().map(|c| c.to_string()).collect(),
        values: (0..5)
            .map(|k| {
                (0..5)
                    .map(|c| {
                        if c == k {
                            800.0
                        } else {
                            50.0 + 10.0 * c as f64
                        }
                    })
                    .collect()
            })
            .collect(),
        ..StackedBars::default()
    };
    stacked_bar_chart(&dir.join("clusters.png"), &composition)?;

    let gap = ErrorBars {
        title: "k-NN accuracy over 3 seeds".into(),
        y_label: "top-1".into(),
        groups: vec!["curated".into(), "uncurated".into()],
        series: vec![
            ("MoCLR".into(), vec![(0.71, 0.01), (0.62, 0.02)]),
            ("DnC".into(), vec![(0.73, 0.012), (0.69, 0.015)]),
        ],
        ..ErrorBars::default()
    };
    bar_chart_with_errors(&dir.join("gap.png"), &gap)
}
