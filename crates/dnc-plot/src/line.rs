//! Line charts, e.g. training-loss curves with one series per stage or model.

use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::axes::LogAxis;
use crate::canvas::{self, Area, DEFAULT_SIZE, DrawFailure};
use crate::error::PlotError;
use crate::scale::{self, format_tick};

/// Series with at most this many drawn points also get a marker on every point, so that short
/// curves (and single points, which make no line) stay visible.
const MARKER_LIMIT: usize = 30;

/// One named curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// `(x, y)` points in drawing order; points with a non-finite coordinate are skipped.
    pub points: Vec<(f64, f64)>,
    /// Error bars: `y ± errors[i]` drawn at `points[i]` (e.g. a standard deviation over
    /// seeds); empty for none, else one per point (a non-finite or zero one draws no bar).
    pub errors: Vec<f64>,
}

/// A line chart description for [`line_chart`].
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title above the chart; also names the chart in errors.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label beside the y axis.
    pub y_label: String,
    /// The curves, one colour and legend entry each.
    pub series: Vec<Series>,
    /// Logarithmic y axis; points with `y <= 0` are then skipped.
    pub log_y: bool,
    /// Logarithmic x axis (e.g. budgets that double); points with `x <= 0` are then skipped.
    pub log_x: bool,
    /// The labelled ticks of a logarithmic x axis (the budgets of a ladder, say) in place of the
    /// automatic ones; empty for automatic ticks. Values outside the axis are left out.
    pub log_x_ticks: Vec<f64>,
    /// Where the legend sits: out of the way of curves that fall (upper right, the default) or
    /// rise (lower right).
    pub legend: LegendCorner,
    /// Image size in pixels, (width, height).
    pub size: (u32, u32),
}

impl Default for LineChart {
    fn default() -> Self {
        Self {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            series: Vec::new(),
            log_y: false,
            log_x: false,
            log_x_ticks: Vec::new(),
            legend: LegendCorner::UpperRight,
            size: DEFAULT_SIZE,
        }
    }
}

/// The corner of the plot that holds the legend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegendCorner {
    #[default]
    UpperRight,
    LowerRight,
}

/// One drawn error bar: `(x, y − e, y + e)`.
type ErrorBar = (f64, f64, f64);

/// The drawable part of a chart: kept points per series and the axis ranges.
#[derive(Debug, Clone, PartialEq)]
struct Prepared {
    /// (series index, kept points); series left without points are absent.
    lines: Vec<(usize, Vec<(f64, f64)>)>,
    /// (series index, its drawn error bars).
    bars: Vec<(usize, Vec<ErrorBar>)>,
    x: Range<f64>,
    y: Range<f64>,
}

/// Writes `spec` as a PNG line chart at `path` (atomically), with a legend and axis ranges fitted
/// to the data plus a margin.
///
/// Points with a NaN or infinite coordinate (and, on a log axis, `y <= 0`) are skipped; a series
/// left without points is left out of the chart. A single point is drawn as a marker.
///
/// # Errors
/// [`PlotError::InvalidInput`] when there are no series, a series has no points, no point at all
/// is drawable, or the path/size is unusable; [`PlotError::Draw`] / [`PlotError::Io`] when
/// rendering or writing fails.
pub fn line_chart(path: &Path, spec: &LineChart) -> Result<(), PlotError> {
    let prepared = prepare(spec)?;
    let (x, y) = (prepared.x.clone(), prepared.y.clone());
    canvas::render(path, &spec.title, spec.size, |root| {
        match (spec.log_x, spec.log_y) {
            (false, false) => draw(root, spec, &prepared, x, y),
            (false, true) => draw(root, spec, &prepared, x, LogAxis::new(y, &[])),
            (true, false) => draw(root, spec, &prepared, log_x(spec, x), y),
            (true, true) => draw(root, spec, &prepared, log_x(spec, x), LogAxis::new(y, &[])),
        }
    })
}

fn log_x(spec: &LineChart, range: std::ops::Range<f64>) -> LogAxis {
    LogAxis::new(range, &spec.log_x_ticks)
}

/// Validates `spec`, drops undrawable points and computes the axis ranges.
fn prepare(spec: &LineChart) -> Result<Prepared, PlotError> {
    if spec.series.is_empty() {
        return Err(PlotError::invalid(&spec.title, "has no series"));
    }
    let mut lines = Vec::with_capacity(spec.series.len());
    let mut bars = Vec::new();
    for (i, series) in spec.series.iter().enumerate() {
        if series.points.is_empty() {
            let reason = format!("series `{}` has no points", series.name);
            return Err(PlotError::invalid(&spec.title, reason));
        }
        if !series.errors.is_empty() && series.errors.len() != series.points.len() {
            let reason = format!(
                "series `{}` has {} error bars for {} points",
                series.name,
                series.errors.len(),
                series.points.len()
            );
            return Err(PlotError::invalid(&spec.title, reason));
        }
        let kept = drawable_points(spec, series);
        if !kept.is_empty() {
            lines.push((i, kept));
        }
        let drawn: Vec<ErrorBar> = series
            .points
            .iter()
            .zip(&series.errors)
            .filter(|&(&(x, y), &e)| x.is_finite() && y.is_finite() && e.is_finite() && e > 0.0)
            .map(|(&(x, y), &e)| (x, y - e, y + e))
            .filter(|&(x, lo, _)| (!spec.log_y || lo > 0.0) && (!spec.log_x || x > 0.0))
            .collect();
        if !drawn.is_empty() {
            bars.push((i, drawn));
        }
    }
    let all = || lines.iter().flat_map(|(_, pts)| pts.iter());
    let ends = || {
        bars.iter()
            .flat_map(|(_, b)| b.iter().flat_map(|&(_, lo, hi)| [lo, hi]))
    };
    let (Some((x_lo, x_hi)), Some((y_lo, y_hi))) = (
        scale::min_max(all().map(|p| p.0)),
        scale::min_max(all().map(|p| p.1).chain(ends())),
    ) else {
        let what = match (spec.log_x, spec.log_y) {
            (false, false) => "finite",
            (false, true) => "finite, positive-y",
            (true, false) => "finite, positive-x",
            (true, true) => "finite, positive",
        };
        return Err(PlotError::invalid(
            &spec.title,
            format!("has no {what} points to draw"),
        ));
    };
    Ok(Prepared {
        lines,
        bars,
        x: scale::padded_range(x_lo, x_hi, spec.log_x),
        y: scale::padded_range(y_lo, y_hi, spec.log_y),
    })
}

/// The points of `series` that can be drawn on the chart's axes, warning about the others.
fn drawable_points(spec: &LineChart, series: &Series) -> Vec<(f64, f64)> {
    let kept: Vec<(f64, f64)> = series
        .points
        .iter()
        .copied()
        .filter(|&(x, y)| {
            x.is_finite() && y.is_finite() && (!spec.log_y || y > 0.0) && (!spec.log_x || x > 0.0)
        })
        .collect();
    let skipped = series.points.len() - kept.len();
    if skipped > 0 {
        tracing::warn!(
            chart = %spec.title, series = %series.name, skipped, total = series.points.len(),
            "skipping non-finite (or, on a log axis, non-positive) points"
        );
    }
    kept
}

/// Draws title, axes, curves and legend; generic over each axis (linear or logarithmic).
fn draw<X, Y>(
    root: &Area<'_>,
    spec: &LineChart,
    prepared: &Prepared,
    x: X,
    y: Y,
) -> Result<(), DrawFailure>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let plot = root.titled(&spec.title, canvas::text(22.0))?;
    let mut chart = ChartBuilder::on(&plot)
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(spec.x_label.as_str())
        .y_desc(spec.y_label.as_str())
        .axis_desc_style(canvas::text(16.0))
        .label_style(canvas::text(13.0))
        .x_label_formatter(&|v| format_tick(*v))
        .y_label_formatter(&|v| format_tick(*v))
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(215, 215, 215))
        .x_max_light_lines(4)
        .draw()?;
    let colours = canvas::palette(spec.series.len());
    for (i, points) in &prepared.lines {
        let colour = colours[*i];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))?
            .label(spec.series[*i].name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
        if points.len() <= MARKER_LIMIT {
            let markers = points.iter().map(|&p| Circle::new(p, 3, colour.filled()));
            chart.draw_series(markers)?;
        }
    }
    for (i, bars) in &prepared.bars {
        let colour = colours[*i];
        let segments = bars
            .iter()
            .map(|&(x, lo, hi)| PathElement::new([(x, lo), (x, hi)], colour.stroke_width(2)));
        chart.draw_series(segments)?;
    }
    chart
        .configure_series_labels()
        .position(match spec.legend {
            LegendCorner::UpperRight => SeriesLabelPosition::UpperRight,
            LegendCorner::LowerRight => SeriesLabelPosition::LowerRight,
        })
        .label_font(canvas::text(14.0))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{count_colour, count_colour_in, decode, distinct_colours};

    fn series(name: &str, points: &[(f64, f64)]) -> Series {
        let points = points.to_vec();
        Series {
            name: name.into(),
            points,
            errors: Vec::new(),
        }
    }

    #[test]
    fn error_bars_widen_the_y_range_and_must_match_the_points() {
        let mut s = series("a", &[(0.0, 1.0), (1.0, 2.0)]);
        s.errors = vec![0.5, f64::NAN];
        let p = prepare(&chart(vec![s.clone()])).unwrap();
        assert_eq!(p.bars, vec![(0, vec![(0.0, 0.5, 1.5)])]);
        // y spans 0.5..2 (the bar's low end), widened by 5%.
        assert!((p.y.start - 0.425).abs() < 1e-12, "{:?}", p.y);
        s.errors = vec![0.5];
        let err = prepare(&chart(vec![s])).unwrap_err().to_string();
        assert!(err.contains("1 error bars for 2 points"), "{err}");
    }

    fn chart(series: Vec<Series>) -> LineChart {
        LineChart {
            title: "loss".into(),
            x_label: "epoch".into(),
            y_label: "InfoNCE".into(),
            series,
            ..LineChart::default()
        }
    }

    #[test]
    fn prepare_skips_non_finite_points_and_fits_ranges() {
        let nan = f64::NAN;
        let spec = chart(vec![
            series(
                "base",
                &[(0.0, 1.0), (1.0, nan), (2.0, f64::INFINITY), (4.0, 3.0)],
            ),
            series("broken", &[(nan, 1.0), (5.0, f64::NEG_INFINITY)]),
        ]);
        let p = prepare(&spec).unwrap();
        assert_eq!(p.lines, vec![(0, vec![(0.0, 1.0), (4.0, 3.0)])]);
        // x 0..4 and y 1..3 widened by 5% of their spans.
        assert_eq!((p.x.start, p.x.end), (-0.2, 4.2));
        assert!(
            (p.y.start - 0.9).abs() < 1e-12 && (p.y.end - 3.1).abs() < 1e-12,
            "{:?}",
            p.y
        );
    }

    #[test]
    fn prepare_on_log_axis_drops_non_positive_y() {
        let mut spec = chart(vec![series(
            "a",
            &[(0.0, 0.0), (1.0, -1.0), (2.0, 10.0), (3.0, 1000.0)],
        )]);
        spec.log_y = true;
        let p = prepare(&spec).unwrap();
        assert_eq!(p.lines[0].1, vec![(2.0, 10.0), (3.0, 1000.0)]);
        // log10 span 1..3, 0.1 decade margin.
        assert!((p.y.start - 10f64.powf(0.9)).abs() < 1e-9, "{:?}", p.y);
        assert!((p.y.end - 10f64.powf(3.1)).abs() < 1e-6, "{:?}", p.y);
    }

    #[test]
    fn prepare_on_log_x_drops_non_positive_x_and_pads_in_decades() {
        let mut spec = chart(vec![series(
            "moclr",
            &[(0.0, 5.0), (10.0, 30.0), (1000.0, 40.0)],
        )]);
        spec.log_x = true;
        let p = prepare(&spec).unwrap();
        assert_eq!(p.lines[0].1, vec![(10.0, 30.0), (1000.0, 40.0)]);
        // log10 span 1..3, 0.1 decade margin; y stays linear.
        assert!((p.x.start - 10f64.powf(0.9)).abs() < 1e-9, "{:?}", p.x);
        assert!((p.x.end - 10f64.powf(3.1)).abs() < 1e-6, "{:?}", p.x);
        assert!((p.y.start - 29.5).abs() < 1e-9, "{:?}", p.y);
        spec.series = vec![series("none", &[(0.0, 1.0), (-1.0, 2.0)])];
        let err = prepare(&spec).unwrap_err().to_string();
        assert!(err.contains("no finite, positive-x points"), "{err}");
    }

    #[test]
    fn a_log_x_chart_draws_its_curves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budget.png");
        let mut spec = chart(vec![
            series(
                "moclr",
                &[(20.0, 10.0), (40.0, 12.0), (80.0, 15.0), (640.0, 26.0)],
            ),
            series("dnc", &[(80.0, 14.0), (640.0, 23.0)]),
        ]);
        spec.log_x = true;
        line_chart(&path, &spec).unwrap();
        let [moclr, dnc] = curve_pixels(&decode(&path));
        assert!(moclr > 200, "MoCLR curve missing");
        assert!(dnc > 100, "DnC curve missing");
    }

    /// Pixels in the colours of a two-series chart's curves.
    fn curve_pixels(img: &image::RgbImage) -> [usize; 2] {
        let colours = canvas::palette(2);
        [count_colour(img, colours[0]), count_colour(img, colours[1])]
    }

    #[test]
    fn the_legend_sits_in_the_corner_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        // The legend's border colour, in the upper and the lower half of the right third.
        let border = RGBColor(160, 160, 160);
        let halves = |legend: LegendCorner| {
            let path = dir.path().join("legend.png");
            let mut spec = chart(vec![series("rising", &[(1.0, 1.0), (2.0, 2.0)])]);
            spec.legend = legend;
            line_chart(&path, &spec).unwrap();
            let img = decode(&path);
            let (w, h) = img.dimensions();
            (
                count_colour_in(&img, border, 2 * w / 3..w, 0..h / 2),
                count_colour_in(&img, border, 2 * w / 3..w, h / 2..h),
            )
        };
        let (upper, lower) = halves(LegendCorner::UpperRight);
        assert!(upper > 50 && lower == 0, "{upper} / {lower}");
        let (upper, lower) = halves(LegendCorner::LowerRight);
        assert!(lower > 50 && upper == 0, "{upper} / {lower}");
    }

    #[test]
    fn empty_inputs_are_errors_naming_the_chart() {
        let err = prepare(&chart(vec![])).unwrap_err();
        assert!(matches!(err, PlotError::InvalidInput { .. }));
        assert_eq!(err.to_string(), "chart `loss`: has no series");
        let err = prepare(&chart(vec![
            series("base", &[(0.0, 1.0)]),
            series("exp", &[]),
        ]))
        .unwrap_err();
        assert_eq!(err.to_string(), "chart `loss`: series `exp` has no points");
        let err = prepare(&chart(vec![series("base", &[(0.0, f64::NAN)])])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "chart `loss`: has no finite points to draw"
        );
    }

    #[test]
    fn writes_png_of_requested_size_with_series_colours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.png");
        let decay: Vec<(f64, f64)> = (0..100)
            .map(|e| (e as f64, 5.0 / (1.0 + e as f64)))
            .collect();
        let mut spec = chart(vec![
            series("base", &decay),
            series(
                "expert-0",
                &[(10.0, 3.0), (20.0, f64::NAN), (30.0, 1.0), (40.0, 0.5)],
            ),
        ]);
        spec.size = (640, 400);
        spec.log_y = true;
        line_chart(&path, &spec).unwrap();
        let img = decode(&path);
        assert_eq!(img.dimensions(), (640, 400));
        assert!(distinct_colours(&img) > 10, "image looks blank");
        let [base, expert] = curve_pixels(&img);
        assert!(base > 200, "base curve missing");
        assert!(expert > 100, "expert curve missing");
    }

    #[test]
    fn single_point_is_drawn_as_a_marker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.png");
        line_chart(&path, &chart(vec![series("only", &[(3.0, 0.25)])])).unwrap();
        let img = decode(&path);
        // The point is at the centre of both axis ranges, so its marker (radius 3) lies near the
        // centre of the plot area, well away from the legend in the upper right corner.
        let near_centre = count_colour_in(&img, canvas::palette(1)[0], 380..500, 190..300);
        assert!(near_centre >= 20, "marker missing: {near_centre} pixels");
    }
}
