//! The frame shared by bar charts: title, a category x axis, a value y axis, and a legend strip
//! to the right of the plot.

use std::ops::Range;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::axes::CategoryAxis;
use crate::canvas::{self, Area, DrawFailure};
use crate::scale::{self, format_tick};

/// Chart coordinates of a bar chart: category centres at x = 0, 1, .., n-1; values on y.
pub(crate) type BarChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<CategoryAxis, RangedCoordf64>>;

/// Draws `title` on `root` and splits the rest into the plot area and a legend strip wide enough
/// for `legend_names`.
pub(crate) fn split_titled<'b>(
    root: &Area<'b>,
    title: &str,
    legend_names: &[&str],
) -> Result<(Area<'b>, Area<'b>), DrawFailure> {
    let body = root.titled(title, canvas::text(22.0))?;
    let width = body.dim_in_pixel().0;
    let legend = canvas::legend_width(legend_names.iter().copied(), width);
    Ok(body.split_horizontally(width - legend))
}

/// Builds the axes of a bar chart on `plot` with one labelled tick per category and the value
/// range `y`, and draws its mesh.
pub(crate) fn frame<'a, 'b>(
    plot: &'a Area<'b>,
    categories: &[String],
    x_label: &str,
    y_label: &str,
    y: Range<f64>,
) -> Result<BarChart<'a, 'b>, DrawFailure> {
    let x = CategoryAxis::new(categories);
    let mut chart = ChartBuilder::on(plot)
        .margin(12)
        .x_label_area_size(if x_label.is_empty() { 32 } else { 52 })
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .axis_desc_style(canvas::text(16.0))
        .label_style(canvas::text(13.0))
        .y_label_formatter(&|v| format_tick(*v))
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(215, 215, 215))
        .y_max_light_lines(0)
        .draw()?;
    Ok(chart)
}

/// The x extent of bar `j` of `m` side-by-side bars in the category centred on `centre`, with a
/// small gap between neighbours.
pub(crate) fn sub_bar(centre: f64, j: usize, m: usize) -> Range<f64> {
    let width = 2.0 * scale::BAR_HALF_WIDTH / m as f64;
    let start = centre - scale::BAR_HALF_WIDTH + j as f64 * width;
    let gap = if m > 1 { 0.05 * width } else { 0.0 };
    (start + gap)..(start + width - gap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_bars_tile_the_category_slot() {
        let close = |r: Range<f64>, start: f64, end: f64| {
            assert!(
                (r.start - start).abs() < 1e-12 && (r.end - end).abs() < 1e-12,
                "{r:?}"
            );
        };
        close(sub_bar(2.0, 0, 1), 1.6, 2.4);
        // Two bars of width 0.4 each, 5% gap on each side.
        close(sub_bar(0.0, 0, 2), -0.38, -0.02);
        close(sub_bar(0.0, 1, 2), 0.02, 0.38);
    }
}
