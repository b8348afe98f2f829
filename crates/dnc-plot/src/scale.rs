//! Axis arithmetic: automatic ranges with a margin, tick-label formatting, category positions.

use std::ops::Range;

/// Fraction of the data span added on each side of an automatic axis range.
pub(crate) const MARGIN: f64 = 0.05;

/// Half-width of a bar (or group of bars) around its category centre, in category units.
pub(crate) const BAR_HALF_WIDTH: f64 = 0.4;

/// The range of an axis showing `lo..=hi` (finite, `lo <= hi`), widened by [`MARGIN`] of the span
/// on each side. A degenerate span (one value) is widened by 10% of the value, or by 1 around 0.
///
/// With `log` the margin is taken in decades: `lo` and `hi` must then be positive.
pub(crate) fn padded_range(lo: f64, hi: f64, log: bool) -> Range<f64> {
    if log {
        let r = padded_linear(lo.log10(), hi.log10(), 0.5);
        return 10f64.powf(r.start)..10f64.powf(r.end);
    }
    let fallback = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
    padded_linear(lo, hi, fallback)
}

fn padded_linear(lo: f64, hi: f64, degenerate_pad: f64) -> Range<f64> {
    let span = hi - lo;
    let pad = if span > 0.0 && span.is_finite() {
        span * MARGIN
    } else if span > 0.0 {
        0.0
    } else {
        degenerate_pad
    };
    (lo - pad)..(hi + pad)
}

/// The range of a bar chart's value axis that contains 0 and every value in `lo..=hi`, with
/// [`MARGIN`] added on the sides away from the zero baseline.
pub(crate) fn bar_value_range(lo: f64, hi: f64) -> Range<f64> {
    let lo = lo.min(0.0);
    let hi = hi.max(0.0);
    if hi == lo {
        return 0.0..1.0;
    }
    let pad = (hi - lo) * MARGIN;
    let start = if lo < 0.0 { lo - pad } else { 0.0 };
    let end = if hi > 0.0 { hi + pad } else { 0.0 };
    start..end
}

/// Smallest and largest of `values`, or `None` when empty.
pub(crate) fn min_max(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A short tick label: about four significant digits without trailing zeros, or scientific
/// notation for magnitudes below 1e-3 or from 1e5 up.
pub(crate) fn format_tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { v.to_string() };
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Extent of a category axis with `n` categories centred on 0, 1, .., n-1.
pub(crate) fn category_range(n: usize) -> Range<f64> {
    -0.5..(n as f64 - 0.5)
}

/// The category whose centre is nearest `v` (a key point of [`category_range`]), or "".
pub(crate) fn category_label(names: &[String], v: f64) -> String {
    let i = v.round();
    if i < 0.0 {
        return String::new();
    }
    names.get(i as usize).cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_range(r: Range<f64>, start: f64, end: f64) {
        let ok = (r.start - start).abs() < 1e-12 && (r.end - end).abs() < 1e-12;
        assert!(ok, "{r:?} != {start}..{end}");
    }

    #[test]
    fn linear_range_adds_five_percent_each_side() {
        assert_range(padded_range(1.0, 3.0, false), 0.9, 3.1);
        assert_range(padded_range(-2.0, 0.0, false), -2.1, 0.1);
    }

    #[test]
    fn degenerate_linear_range_is_widened() {
        assert_range(padded_range(5.0, 5.0, false), 4.5, 5.5);
        assert_range(padded_range(-2.0, -2.0, false), -2.2, -1.8);
        assert_range(padded_range(0.0, 0.0, false), -1.0, 1.0);
    }

    #[test]
    fn log_range_pads_in_decades() {
        // log10: 0..2, pad 0.1 decade.
        let r = padded_range(1.0, 100.0, true);
        assert_range(r, 10f64.powf(-0.1), 10f64.powf(2.1));
        // A single value gets half a decade each side.
        let r = padded_range(10.0, 10.0, true);
        assert_range(r, 10f64.powf(0.5), 10f64.powf(1.5));
    }

    #[test]
    fn overflowing_span_gets_no_margin() {
        let r = padded_range(-f64::MAX, f64::MAX, false);
        assert_eq!((r.start, r.end), (-f64::MAX, f64::MAX));
    }

    #[test]
    fn bar_range_contains_zero_and_pads_away_from_it() {
        assert_range(bar_value_range(1.0, 4.0), 0.0, 4.2);
        assert_range(bar_value_range(-2.0, 2.0), -2.2, 2.2);
        assert_range(bar_value_range(-3.0, -1.0), -3.15, 0.0);
        assert_range(bar_value_range(0.0, 0.0), 0.0, 1.0);
    }

    #[test]
    fn min_max_of_values() {
        assert_eq!(min_max([3.0, -1.0, 2.0]), Some((-1.0, 3.0)));
        assert_eq!(min_max(std::iter::empty()), None);
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(format_tick(0.0), "0");
        assert_eq!(format_tick(0.1 + 0.2), "0.3");
        assert_eq!(format_tick(2.5e-3), "0.0025");
        assert_eq!(format_tick(1234.25), "1234");
        assert_eq!(format_tick(-12.5), "-12.5");
        assert_eq!(format_tick(1e-4), "1.0e-4");
        assert_eq!(format_tick(250_000.0), "2.5e5");
    }

    #[test]
    fn categories_sit_on_integer_centres() {
        let names = vec!["a".to_owned(), "b".to_owned()];
        assert_range(category_range(2), -0.5, 1.5);
        assert_eq!(category_label(&names, 0.0), "a");
        assert_eq!(category_label(&names, 1.2), "b");
        assert_eq!(category_label(&names, 2.0), "");
        assert_eq!(category_label(&names, -0.7), "");
    }
}
