//! Grouped bar charts of means with ± one standard deviation whiskers, e.g. accuracy over seeds
//! per model and dataset.

use std::path::Path;

use plotters::prelude::*;

use crate::bars;
use crate::canvas::{self, DEFAULT_SIZE};
use crate::error::PlotError;
use crate::scale;

/// A grouped bar chart description for [`bar_chart_with_errors`].
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorBars {
    /// Title above the chart; also names the chart in errors.
    pub title: String,
    /// Label beside the y axis.
    pub y_label: String,
    /// The groups along the x axis, left to right.
    pub groups: Vec<String>,
    /// `(name, [(mean, std); groups])`: one bar per group for each series, side by side within a
    /// group, one colour and legend entry per series. Means are finite; stds finite and >= 0.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Image size in pixels, (width, height).
    pub size: (u32, u32),
}

impl Default for ErrorBars {
    fn default() -> Self {
        Self {
            title: String::new(),
            y_label: String::new(),
            groups: Vec::new(),
            series: Vec::new(),
            size: DEFAULT_SIZE,
        }
    }
}

/// Writes `spec` as a PNG grouped bar chart at `path` (atomically): bars from 0 to each mean, a
/// black whisker from `mean - std` to `mean + std`, the series' legend to the right of the plot.
/// The y axis contains 0 and every whisker, plus a margin.
///
/// # Errors
/// [`PlotError::InvalidInput`] when there are no groups or series, a series does not have one
/// value per group, a mean or std is not finite, a std is negative, or the path/size is
/// unusable; [`PlotError::Draw`] / [`PlotError::Io`] when rendering or writing fails.
pub fn bar_chart_with_errors(path: &Path, spec: &ErrorBars) -> Result<(), PlotError> {
    let (lo, hi) = validate(spec)?;
    let colours = canvas::palette(spec.series.len());
    canvas::render(path, &spec.title, spec.size, |root| {
        let names: Vec<&str> = spec.series.iter().map(|(name, _)| name.as_str()).collect();
        let (plot, legend) = bars::split_titled(root, &spec.title, &names)?;
        let y = scale::bar_value_range(lo, hi);
        let mut chart = bars::frame(&plot, &spec.groups, "", &spec.y_label, y)?;
        let m = spec.series.len();
        for (j, ((_, values), &colour)) in spec.series.iter().zip(&colours).enumerate() {
            let rects = values.iter().enumerate().map(|(g, &(mean, _))| {
                let x = bars::sub_bar(g as f64, j, m);
                Rectangle::new([(x.start, 0.0), (x.end, mean)], colour.filled())
            });
            chart.draw_series(rects)?;
        }
        for (j, (_, values)) in spec.series.iter().enumerate() {
            let whiskers = values.iter().enumerate().filter(|(_, v)| v.1 > 0.0);
            chart.draw_series(whiskers.flat_map(|(g, &(mean, std))| {
                let x = bars::sub_bar(g as f64, j, m);
                whisker(
                    (x.start + x.end) / 2.0,
                    (x.end - x.start) / 4.0,
                    mean - std,
                    mean + std,
                )
            }))?;
        }
        let entries: Vec<(&str, RGBColor)> =
            names.into_iter().zip(colours.iter().copied()).collect();
        canvas::side_legend(&legend, &entries)
    })
}

/// The three strokes of a whisker at `x` from `lo` to `hi` with caps `half_cap` wide each side.
fn whisker(x: f64, half_cap: f64, lo: f64, hi: f64) -> [PathElement<(f64, f64)>; 3] {
    let style = BLACK.stroke_width(1);
    [
        PathElement::new([(x, lo), (x, hi)], style),
        PathElement::new([(x - half_cap, lo), (x + half_cap, lo)], style),
        PathElement::new([(x - half_cap, hi), (x + half_cap, hi)], style),
    ]
}

/// Checks the shape and values of `spec`; returns the lowest and highest whisker ends.
fn validate(spec: &ErrorBars) -> Result<(f64, f64), PlotError> {
    let invalid = |reason: String| PlotError::invalid(&spec.title, reason);
    if spec.groups.is_empty() {
        return Err(invalid("has no groups".into()));
    }
    if spec.series.is_empty() {
        return Err(invalid("has no series".into()));
    }
    for (name, values) in &spec.series {
        if values.len() != spec.groups.len() {
            let (got, n) = (values.len(), spec.groups.len());
            return Err(invalid(format!(
                "series `{name}` has {got} values for {n} groups"
            )));
        }
        for (&(mean, std), group) in values.iter().zip(&spec.groups) {
            if !(mean.is_finite() && std.is_finite() && std >= 0.0) {
                let reason = format!(
                    "series `{name}`, group `{group}`: mean {mean} ± std {std} needs a finite mean \
                     and a finite std >= 0"
                );
                return Err(invalid(reason));
            }
        }
    }
    let ends = spec.series.iter().flat_map(|(_, v)| v.iter());
    let ends = ends.flat_map(|&(mean, std)| [mean - std, mean + std]);
    Ok(scale::min_max(ends).unwrap_or((0.0, 0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{bar_heights, count_colour, decode, distinct_colours};

    fn spec(series: Vec<(&str, Vec<(f64, f64)>)>) -> ErrorBars {
        let groups = series.first().map_or(0, |s| s.1.len());
        ErrorBars {
            title: "curation gap".into(),
            y_label: "k-NN top-1".into(),
            groups: (0..groups).map(|g| format!("data-{g}")).collect(),
            series: series.into_iter().map(|(n, v)| (n.to_owned(), v)).collect(),
            ..ErrorBars::default()
        }
    }

    #[test]
    fn bar_heights_follow_means_and_whiskers_are_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gap.png");
        let mut chart = spec(vec![
            ("MoCLR", vec![(0.2, 0.0), (0.6, 0.0)]),
            ("DnC", vec![(0.4, 0.05), (0.8, 0.02)]),
        ]);
        chart.size = (900, 500);
        bar_chart_with_errors(&path, &chart).unwrap();
        let img = decode(&path);
        assert_eq!(img.dimensions(), (900, 500));
        assert!(distinct_colours(&img) > 10, "image looks blank");
        let colours = canvas::palette(2);
        let base = bar_heights(&img, colours[0], 20);
        let dnc = bar_heights(&img, colours[1], 20);
        assert_eq!((base.len(), dnc.len()), (2, 2), "{base:?} {dnc:?}");
        // Heights relative to the 0.2 bar: 0.6 -> 3, 0.4 -> 2, 0.8 -> 4.
        let unit = f64::from(base[0]);
        for (got, want) in [(base[1], 3.0), (dnc[0], 2.0), (dnc[1], 4.0)] {
            let ratio = f64::from(got) / unit;
            assert!(
                (ratio - want).abs() < 0.05 * want,
                "height ratio {ratio}, expected {want}"
            );
        }
        // Whiskers are black strokes; the axes are black too, so compare with zero stds.
        let with_whiskers = count_colour(&img, RGBColor(0, 0, 0));
        let flat = spec(vec![
            ("MoCLR", vec![(0.2, 0.0), (0.6, 0.0)]),
            ("DnC", vec![(0.4, 0.0), (0.8, 0.0)]),
        ]);
        let flat_path = dir.path().join("flat.png");
        bar_chart_with_errors(
            &flat_path,
            &ErrorBars {
                size: (900, 500),
                ..flat
            },
        )
        .unwrap();
        let without = count_colour(&decode(&flat_path), RGBColor(0, 0, 0));
        assert!(
            with_whiskers > without + 30,
            "{with_whiskers} vs {without} black pixels"
        );
    }

    #[test]
    fn negative_means_extend_the_axis_below_zero() {
        assert_eq!(
            validate(&spec(vec![("a", vec![(-1.0, 0.5), (2.0, 1.0)])])).unwrap(),
            (-1.5, 3.0)
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("neg.png");
        bar_chart_with_errors(&path, &spec(vec![("a", vec![(-1.0, 0.5), (2.0, 1.0)])])).unwrap();
        let heights = bar_heights(&decode(&path), canvas::palette(1)[0], 20);
        let ratio = f64::from(heights[1]) / f64::from(heights[0]);
        assert!((ratio - 2.0).abs() < 0.1, "{heights:?}");
    }

    #[test]
    fn bad_shapes_and_values_are_errors() {
        let err = |s: &ErrorBars| validate(s).unwrap_err().to_string();
        assert_eq!(err(&spec(vec![])), "chart `curation gap`: has no groups");
        let mut s = spec(vec![("a", vec![(1.0, 0.1)])]);
        s.series.clear();
        assert_eq!(err(&s), "chart `curation gap`: has no series");
        let s = spec(vec![("a", vec![(1.0, 0.1)]), ("b", vec![])]);
        assert_eq!(
            err(&s),
            "chart `curation gap`: series `b` has 0 values for 1 groups"
        );
        let s = spec(vec![("a", vec![(1.0, -0.1)])]);
        assert!(
            err(&s).contains("series `a`, group `data-0`: mean 1 ± std -0.1"),
            "{}",
            err(&s)
        );
        let s = spec(vec![("a", vec![(f64::INFINITY, 0.1)])]);
        assert!(err(&s).contains("mean inf"), "{}", err(&s));
    }
}
