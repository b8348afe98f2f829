//! Stacked bar charts, e.g. the class composition of each k-means cluster.

use std::path::Path;

use plotters::prelude::*;

use crate::bars;
use crate::canvas::{self, DEFAULT_SIZE};
use crate::error::PlotError;
use crate::scale;

/// A stacked bar chart description for [`stacked_bar_chart`].
#[derive(Debug, Clone, PartialEq)]
pub struct StackedBars {
    /// Title above the chart; also names the chart in errors.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label beside the y axis.
    pub y_label: String,
    /// One bar per category, left to right (e.g. clusters 0..K).
    pub categories: Vec<String>,
    /// The segments of every bar, bottom to top, one colour and legend entry each (e.g. classes).
    /// The legend lists as many as fit the image height (about one per 20 px); for many classes,
    /// merge the small ones into an "other" stack.
    pub stacks: Vec<String>,
    /// `values[bar][stack]`: finite, non-negative segment heights (e.g. image counts).
    pub values: Vec<Vec<f64>>,
    /// Image size in pixels, (width, height).
    pub size: (u32, u32),
}

impl Default for StackedBars {
    fn default() -> Self {
        Self {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            categories: Vec::new(),
            stacks: Vec::new(),
            values: Vec::new(),
            size: DEFAULT_SIZE,
        }
    }
}

/// Writes `spec` as a PNG stacked bar chart at `path` (atomically), with the stacks' legend to the
/// right of the plot. The y axis runs from 0 to the tallest bar plus a margin.
///
/// # Errors
/// [`PlotError::InvalidInput`] when there are no categories or stacks, `values` does not have
/// `[categories][stacks]` shape, a value is negative or not finite, or the path/size is unusable;
/// [`PlotError::Draw`] / [`PlotError::Io`] when rendering or writing fails.
pub fn stacked_bar_chart(path: &Path, spec: &StackedBars) -> Result<(), PlotError> {
    let max_total = validate(spec)?;
    let colours = canvas::palette(spec.stacks.len());
    canvas::render(path, &spec.title, spec.size, |root| {
        let names: Vec<&str> = spec.stacks.iter().map(String::as_str).collect();
        let (plot, legend) = bars::split_titled(root, &spec.title, &names)?;
        let y = scale::bar_value_range(0.0, max_total);
        let mut chart = bars::frame(&plot, &spec.categories, &spec.x_label, &spec.y_label, y)?;
        let mut bottoms = vec![0.0; spec.categories.len()];
        for (s, &colour) in colours.iter().enumerate() {
            let mut segments = Vec::new();
            for (bar, bottom) in bottoms.iter_mut().enumerate() {
                let v = spec.values[bar][s];
                if v > 0.0 {
                    let x = bars::sub_bar(bar as f64, 0, 1);
                    let corners = [(x.start, *bottom), (x.end, *bottom + v)];
                    segments.push(Rectangle::new(corners, colour.filled()));
                }
                *bottom += v;
            }
            chart.draw_series(segments)?;
        }
        let entries: Vec<(&str, RGBColor)> =
            names.into_iter().zip(colours.iter().copied()).collect();
        canvas::side_legend(&legend, &entries)
    })
}

/// Checks the shape and values of `spec`; returns the tallest bar's total.
fn validate(spec: &StackedBars) -> Result<f64, PlotError> {
    let invalid = |reason: String| PlotError::invalid(&spec.title, reason);
    if spec.categories.is_empty() {
        return Err(invalid("has no categories (bars)".into()));
    }
    if spec.stacks.is_empty() {
        return Err(invalid("has no stacks".into()));
    }
    if spec.values.len() != spec.categories.len() {
        let (rows, n) = (spec.values.len(), spec.categories.len());
        return Err(invalid(format!(
            "values has {rows} rows for {n} categories"
        )));
    }
    let mut max_total = 0.0f64;
    for (row, category) in spec.values.iter().zip(&spec.categories) {
        if row.len() != spec.stacks.len() {
            let (got, n) = (row.len(), spec.stacks.len());
            return Err(invalid(format!(
                "bar `{category}` has {got} values for {n} stacks"
            )));
        }
        for (&v, stack) in row.iter().zip(&spec.stacks) {
            if !(v.is_finite() && v >= 0.0) {
                let reason =
                    format!("bar `{category}`, stack `{stack}`: value {v} is not finite and >= 0");
                return Err(invalid(reason));
            }
        }
        max_total = max_total.max(row.iter().sum());
    }
    Ok(max_total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{bar_heights, decode, distinct_colours};

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    fn spec(values: Vec<Vec<f64>>) -> StackedBars {
        let stacks = values.first().map_or(0, Vec::len);
        StackedBars {
            title: "clusters".into(),
            x_label: "cluster".into(),
            y_label: "images".into(),
            categories: names("c", values.len()),
            stacks: names("class-", stacks),
            values,
            ..StackedBars::default()
        }
    }

    #[test]
    fn segment_heights_are_proportional_to_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("composition.png");
        let mut chart = spec(vec![vec![1.0, 3.0], vec![2.0, 2.0], vec![0.0, 1.0]]);
        chart.size = (700, 450);
        stacked_bar_chart(&path, &chart).unwrap();
        let img = decode(&path);
        assert_eq!(img.dimensions(), (700, 450));
        assert!(distinct_colours(&img) > 10, "image looks blank");
        let colours = canvas::palette(2);
        // Stack 0 has no segment in the third bar (value 0).
        let low = bar_heights(&img, colours[0], 20);
        let high = bar_heights(&img, colours[1], 20);
        assert_eq!((low.len(), high.len()), (2, 3), "{low:?} {high:?}");
        let unit = f64::from(low[0]);
        let expected = [
            (low[1], 2.0),
            (high[0], 3.0),
            (high[1], 2.0),
            (high[2], 1.0),
        ];
        for (got, want) in expected {
            let ratio = f64::from(got) / unit;
            assert!(
                (ratio - want).abs() < 0.05 * want,
                "height ratio {ratio}, expected {want}"
            );
        }
    }

    #[test]
    fn many_stacks_get_distinct_colours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("many.png");
        let mut chart = spec(vec![vec![1.0; 15]; 4]);
        chart.size = (800, 900);
        stacked_bar_chart(&path, &chart).unwrap();
        let img = decode(&path);
        assert_eq!(img.dimensions(), (800, 900));
        // Segments are about 50 px tall; legend swatches (13 px) stay under the 20 px threshold.
        for colour in canvas::palette(15) {
            assert_eq!(
                bar_heights(&img, colour, 20).len(),
                4,
                "missing segments of {colour:?}"
            );
        }
    }

    #[test]
    fn bad_shapes_and_values_are_errors() {
        let err = |s: &StackedBars| validate(s).unwrap_err().to_string();
        assert_eq!(
            err(&spec(vec![])),
            "chart `clusters`: has no categories (bars)"
        );
        let mut s = spec(vec![vec![1.0]]);
        s.stacks.clear();
        assert_eq!(err(&s), "chart `clusters`: has no stacks");
        let mut s = spec(vec![vec![1.0, 2.0], vec![1.0, 2.0]]);
        s.categories.pop();
        assert_eq!(
            err(&s),
            "chart `clusters`: values has 2 rows for 1 categories"
        );
        let mut s = spec(vec![vec![1.0, 2.0], vec![1.0, 2.0]]);
        s.values[1].pop();
        assert_eq!(
            err(&s),
            "chart `clusters`: bar `c1` has 1 values for 2 stacks"
        );
        let s = spec(vec![vec![1.0, f64::NAN]]);
        assert!(
            err(&s).contains("bar `c0`, stack `class-1`: value NaN"),
            "{}",
            err(&s)
        );
        let s = spec(vec![vec![-1.0]]);
        assert!(err(&s).contains("value -1 is not finite"), "{}", err(&s));
        assert_eq!(
            validate(&spec(vec![vec![1.0, 2.0], vec![4.0, 0.5]])).unwrap(),
            4.5
        );
    }
}
