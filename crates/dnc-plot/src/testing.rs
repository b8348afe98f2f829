//! Test helpers: decode a written PNG and measure what was drawn.

use std::ops::Range;
use std::path::Path;

use image::RgbImage;
use plotters::style::RGBColor;

/// Decodes the PNG at `path` (failing the test if it is not one).
pub(crate) fn decode(path: &Path) -> RgbImage {
    let format = image::ImageFormat::from_path(path).unwrap();
    assert_eq!(format, image::ImageFormat::Png);
    image::open(path).unwrap().to_rgb8()
}

/// Number of different colours in `img`; a blank image has one.
pub(crate) fn distinct_colours(img: &RgbImage) -> usize {
    let mut seen: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

/// Number of pixels of exactly `colour`.
pub(crate) fn count_colour(img: &RgbImage, colour: RGBColor) -> usize {
    count_colour_in(img, colour, 0..img.width(), 0..img.height())
}

/// Number of pixels of exactly `colour` with x in `xs` and y in `ys`.
pub(crate) fn count_colour_in(
    img: &RgbImage,
    colour: RGBColor,
    xs: Range<u32>,
    ys: Range<u32>,
) -> usize {
    let want = [colour.0, colour.1, colour.2];
    let mut n = 0;
    for y in ys {
        for x in xs.clone() {
            n += usize::from(img.get_pixel(x, y).0 == want);
        }
    }
    n
}

/// Heights in pixels of the bars of `colour`, left to right: the longest vertical run of the
/// colour in each group of adjacent columns whose run is at least `min_run` pixels (which leaves
/// out legend swatches and lines).
pub(crate) fn bar_heights(img: &RgbImage, colour: RGBColor, min_run: u32) -> Vec<u32> {
    let want = [colour.0, colour.1, colour.2];
    let mut bars = Vec::new();
    let mut current: Option<u32> = None;
    for x in 0..img.width() {
        let (mut run, mut best) = (0, 0);
        for y in 0..img.height() {
            run = if img.get_pixel(x, y).0 == want {
                run + 1
            } else {
                0
            };
            best = best.max(run);
        }
        current = match (current, best >= min_run) {
            (Some(h), true) => Some(h.max(best)),
            (None, true) => Some(best),
            (Some(h), false) => {
                bars.push(h);
                None
            }
            (None, false) => None,
        };
    }
    bars.extend(current);
    bars
}
