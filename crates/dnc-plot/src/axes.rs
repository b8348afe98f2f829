//! Custom plotters axes: a category axis labelled with names, and a logarithmic axis with
//! readable ticks (decades, then 1-2-5 steps, then plain linear ticks on very narrow ranges).

use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;

use crate::scale::{self, format_tick};

/// A category axis: categories centred on 0, 1, .., n-1, one tick labelled with its name at each
/// centre, and no minor grid lines.
pub(crate) struct CategoryAxis {
    names: Vec<String>,
    inner: RangedCoordf64,
}

impl CategoryAxis {
    pub(crate) fn new(names: &[String]) -> Self {
        let inner = scale::category_range(names.len()).into();
        Self {
            names: names.to_vec(),
            inner,
        }
    }
}

impl Ranged for CategoryAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            return Vec::new();
        }
        (0..self.names.len()).map(|i| i as f64).collect()
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

impl ValueFormatter<f64> for CategoryAxis {
    fn format_ext(&self, value: &f64) -> String {
        scale::category_label(&self.names, *value)
    }
}

/// A logarithmic axis over a positive range, with the ticks of [`log_ticks`].
pub(crate) struct LogAxis {
    range: Range<f64>,
    /// The same axis in log10 units, which maps linearly to pixels.
    log: RangedCoordf64,
    /// Labelled ticks and minor grid lines.
    ticks: (Vec<f64>, Vec<f64>),
}

impl LogAxis {
    /// An axis over `range`, whose ends must be positive and finite, labelled at `labelled`
    /// (those inside the range) or, when none is, at the automatic ticks of [`log_ticks`]. With
    /// given labels the automatic ticks become minor grid lines.
    pub(crate) fn new(range: Range<f64>, labelled: &[f64]) -> Self {
        let log = (range.start.log10()..range.end.log10()).into();
        let (bold, light) = log_ticks(range.start, range.end);
        let given: Vec<f64> = labelled
            .iter()
            .copied()
            .filter(|v| v.is_finite() && range.contains(v))
            .collect();
        let ticks = if given.is_empty() {
            (bold, light)
        } else {
            (given, bold.into_iter().chain(light).collect())
        };
        Self { range, log, ticks }
    }
}

impl Ranged for LogAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        // Values at or below zero cannot be drawn; they are pinned to the bottom of the axis.
        let v = if *value > 0.0 {
            *value
        } else {
            self.range.start
        };
        self.log.map(&v.log10(), limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.ticks.1.clone()
        } else {
            self.ticks.0.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

impl ValueFormatter<f64> for LogAxis {
    fn format_ext(&self, value: &f64) -> String {
        format_tick(*value)
    }
}

/// Ticks of a log axis over `lo..=hi` (`0 < lo < hi`): (labelled, minor grid lines).
///
/// Over more than six decades every `ceil(decades / 6)`-th power of ten is labelled; over three
/// to six, every power of ten with minor lines at 2..9; over one to three, the 1-2-5 steps with
/// minor lines at 1..9; below one decade, 1..9 times the powers of ten. When that labels fewer
/// than two values, the labels are the linear ticks of [`linear_ticks`].
pub(crate) fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    const ALL: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    let decades = (hi / lo).log10();
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let within = |mults: &[f64], every: i32| -> Vec<f64> {
        let powers = (k0..=k1).filter(|k| k.rem_euclid(every) == 0);
        let values = powers.flat_map(|k| mults.iter().map(move |m| m * 10f64.powi(k)));
        values
            .filter(|v| *v >= lo * (1.0 - 1e-12) && *v <= hi * (1.0 + 1e-12))
            .collect()
    };
    let (bold, light) = if decades > 6.0 {
        (within(&[1.0], (decades / 6.0).ceil() as i32), Vec::new())
    } else if decades > 3.0 {
        (within(&[1.0], 1), within(&ALL[1..], 1))
    } else if decades > 1.0 {
        (within(&[1.0, 2.0, 5.0], 1), within(&ALL, 1))
    } else {
        (within(&ALL, 1), Vec::new())
    };
    if bold.len() < 2 {
        return (linear_ticks(lo, hi, 5), Vec::new());
    }
    (bold, light)
}

/// At most about `max` evenly spaced ticks inside `lo..=hi`, at multiples of a 1-2-5 step.
pub(crate) fn linear_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let raw = (hi - lo) / max.max(1) as f64;
    if !(raw > 0.0 && raw.is_finite()) {
        return vec![lo];
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

#[cfg(test)]
mod tests {
    use plotters::coord::ranged1d::{BoldPoints, LightPoints};

    use super::*;

    fn assert_close(got: &[f64], want: &[f64]) {
        let same = got.len() == want.len()
            && got
                .iter()
                .zip(want)
                .all(|(g, w)| (g - w).abs() <= 1e-9 * w.abs().max(1.0));
        assert!(same, "{got:?} != {want:?}");
    }

    #[test]
    fn log_ticks_by_span() {
        // 1e-3 .. 1e9: twelve decades, every second power labelled.
        let (bold, light) = log_ticks(1e-3, 1e9);
        assert_close(&bold, &[1e-2, 1.0, 1e2, 1e4, 1e6, 1e8]);
        assert!(light.is_empty());
        // 0.5 .. 2000: decades with minor lines 2..9.
        let (bold, light) = log_ticks(0.5, 2000.0);
        assert_close(&bold, &[1.0, 10.0, 100.0, 1000.0]);
        // 0.5..0.9, 2..9 for 1, 10 and 100, then 2000.
        assert_eq!(light.len(), 5 + 8 * 3 + 1, "{light:?}");
        // 0.3 .. 12: 1-2-5 steps.
        let (bold, _) = log_ticks(0.3, 12.0);
        assert_close(&bold, &[0.5, 1.0, 2.0, 5.0, 10.0]);
        // 0.25 .. 0.9: below a decade, 1..9 times 0.1.
        let (bold, light) = log_ticks(0.25, 0.9);
        assert_close(&bold, &[0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
        assert!(light.is_empty());
    }

    #[test]
    fn narrow_log_range_falls_back_to_linear_ticks() {
        let (bold, light) = log_ticks(1.02, 1.18);
        assert_close(&bold, &[1.05, 1.1, 1.15]);
        assert!(light.is_empty());
    }

    #[test]
    fn linear_ticks_use_1_2_5_steps() {
        assert_close(
            &linear_ticks(0.0, 10.0, 5),
            &[0.0, 2.0, 4.0, 6.0, 8.0, 10.0],
        );
        // Span 0.55 / 5 = 0.11, rounded up to a step of 0.2.
        assert_close(&linear_ticks(-0.13, 0.42, 5), &[0.0, 0.2, 0.4]);
        assert_close(&linear_ticks(3.0, 3.0, 5), &[3.0]);
    }

    #[test]
    fn log_axis_maps_decades_evenly_and_pins_non_positive_values() {
        let axis = LogAxis::new(1.0..1000.0, &[]);
        assert_eq!(axis.map(&1.0, (0, 300)), 0);
        assert_eq!(axis.map(&10.0, (0, 300)), 100);
        assert_eq!(axis.map(&100.0, (0, 300)), 200);
        assert_eq!(axis.map(&-5.0, (0, 300)), 0);
        assert_eq!(axis.format_ext(&0.05), "0.05");
    }

    #[test]
    fn given_log_labels_replace_the_automatic_ones_inside_the_range() {
        // 35..180 is under a decade: automatically 40, 50, ..., 100, and nothing above 100.
        let auto = LogAxis::new(35.0..180.0, &[]);
        assert_close(
            &auto.key_points(BoldPoints(20)),
            &[40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0],
        );
        let ladder = LogAxis::new(35.0..180.0, &[20.0, 40.0, 80.0, 160.0, 320.0]);
        assert_close(&ladder.key_points(BoldPoints(20)), &[40.0, 80.0, 160.0]);
        // The automatic ticks stay as minor grid lines.
        assert_eq!(ladder.key_points(LightPoints::new(20, 40)).len(), 7);
    }

    #[test]
    fn category_axis_labels_centres_only() {
        let axis = CategoryAxis::new(&["a".to_owned(), "b".to_owned(), "c".to_owned()]);
        assert_eq!(axis.key_points(BoldPoints(10)), vec![0.0, 1.0, 2.0]);
        assert!(axis.key_points(LightPoints::new(3, 30)).is_empty());
        assert_eq!(axis.format_ext(&1.0), "b");
        assert_eq!(axis.range(), -0.5..2.5);
    }
}
