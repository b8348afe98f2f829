//! Small PNG charts for dnc run reports (`report.md`): loss curves ([`line_chart`]), cluster
//! composition ([`stacked_bar_chart`]) and mean ± std comparisons ([`bar_chart_with_errors`]).
//!
//! Charts are drawn with `plotters` on a bitmap, with text in an embedded DejaVu Sans Mono font,
//! so no system font library is needed. Every chart is written atomically: a temporary file in the
//! destination folder, renamed onto the final path once complete.

mod axes;
mod bars;
mod canvas;
mod error;
mod error_bars;
mod line;
mod scale;
mod stacked;
#[cfg(test)]
mod testing;

pub use canvas::DEFAULT_SIZE;
pub use error::PlotError;
pub use error_bars::{ErrorBars, bar_chart_with_errors};
pub use line::{LegendCorner, LineChart, Series, line_chart};
pub use stacked::{StackedBars, stacked_bar_chart};
