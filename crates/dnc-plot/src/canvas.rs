//! The drawing surface shared by all charts: the embedded font, colours, text styles, the legend
//! beside a plot, and the atomic PNG writer.
//!
//! Text is rendered with `ab_glyph` from DejaVu Sans Mono, embedded in the crate (see
//! `assets/LICENSE-DejaVu.txt`), so drawing needs no system font libraries.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::error::PlotError;

/// Image size used by the `Default` chart descriptions, in pixels (width, height).
pub const DEFAULT_SIZE: (u32, u32) = (800, 500);
/// Smallest accepted image size: below it axes, labels and legend no longer fit.
pub(crate) const MIN_SIZE: (u32, u32) = (240, 160);
/// Largest accepted side, which bounds the memory of the in-memory bitmap.
pub(crate) const MAX_SIDE: u32 = 8192;

/// A drawing area on the PNG bitmap, in pixel coordinates.
pub(crate) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Name under which the embedded font is registered (unique so that it replaces no other font).
const FONT_FAMILY: &str = "dnc-plot-dejavu-sans-mono";
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
static FONT_READY: OnceLock<bool> = OnceLock::new();

/// Ten well separated colours (matplotlib's "tab10"), used while a chart has at most ten series.
const TAB10: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// A failure inside a drawing closure, carried as the plotting library's message.
#[derive(Debug)]
pub(crate) struct DrawFailure(pub(crate) String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawFailure {
    fn from(err: DrawingAreaErrorKind<E>) -> Self {
        Self(err.to_string())
    }
}

/// Registers the embedded font with plotters (once per process); `false` if it failed to parse.
fn font_ready() -> bool {
    *FONT_READY.get_or_init(|| register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES).is_ok())
}

/// Black text in the embedded font at `size` pixels.
pub(crate) fn text(size: f64) -> TextStyle<'static> {
    (FONT_FAMILY, size).into_font().color(&BLACK)
}

/// `n` distinct colours: the tab10 palette for up to ten, evenly spaced hues beyond.
pub(crate) fn palette(n: usize) -> Vec<RGBColor> {
    if n <= TAB10.len() {
        return TAB10[..n]
            .iter()
            .map(|&(r, g, b)| RGBColor(r, g, b))
            .collect();
    }
    (0..n)
        .map(|i| {
            let (r, g, b) = HSLColor(i as f64 / n as f64, 0.65, 0.45).rgb();
            RGBColor(r, g, b)
        })
        .collect()
}

/// Draws a legend (colour swatch + name per entry) from the top of `area`, which should be a
/// strip beside the plot so that the legend never hides data.
pub(crate) fn side_legend(
    area: &Area<'_>,
    entries: &[(&str, RGBColor)],
) -> Result<(), DrawFailure> {
    const ROW: i32 = 20;
    const TOP: i32 = 40;
    for (row, (name, colour)) in entries.iter().enumerate() {
        let y = TOP + ROW * row as i32;
        area.draw(&Rectangle::new([(8, y - 6), (20, y + 6)], colour.filled()))?;
        area.draw_text(name, &text(14.0), (26, y - 7))?;
    }
    Ok(())
}

/// Width in pixels of a [`side_legend`] for these names, at most a third of the image width.
pub(crate) fn legend_width<'a>(names: impl Iterator<Item = &'a str>, image_width: u32) -> u32 {
    // DejaVu Sans Mono advances 0.6 em per character: 8.4 px at the 14 px legend size.
    let longest = names.map(|n| n.chars().count()).max().unwrap_or(0) as f64;
    let width = (34.0 + 8.4 * longest).ceil() as u32;
    width.clamp(60, image_width / 3)
}

/// Draws a chart with `draw` onto a white `size` bitmap and writes it as a PNG at `path`.
///
/// The image goes to a temporary file in the same folder, which is then renamed onto `path`, so
/// readers never see a half-written file. `chart` (the title) names the chart in errors.
pub(crate) fn render<F>(
    path: &Path,
    chart: &str,
    size: (u32, u32),
    draw: F,
) -> Result<(), PlotError>
where
    F: FnOnce(&Area<'_>) -> Result<(), DrawFailure>,
{
    check_target(path, chart, size)?;
    if !font_ready() {
        return Err(draw_error(
            chart,
            path,
            "the embedded font could not be parsed".into(),
        ));
    }
    let tmp = TempPath::beside(path)?;
    {
        let root = BitMapBackend::new(&tmp.0, size).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(DrawFailure::from)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(DrawFailure::from));
        drawn.map_err(|DrawFailure(message)| draw_error(chart, path, message))?;
    }
    tmp.persist(path)
}

fn draw_error(chart: &str, path: &Path, message: String) -> PlotError {
    PlotError::Draw {
        chart: chart.to_owned(),
        path: path.to_owned(),
        message,
    }
}

/// Rejects targets that would not produce a PNG, and sizes outside [`MIN_SIZE`]..=[`MAX_SIDE`].
fn check_target(path: &Path, chart: &str, (width, height): (u32, u32)) -> Result<(), PlotError> {
    let is_png = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("png"));
    if !is_png {
        let reason = format!("output path {} must end in .png", path.display());
        return Err(PlotError::invalid(chart, reason));
    }
    let too_small = width < MIN_SIZE.0 || height < MIN_SIZE.1;
    if too_small || width > MAX_SIDE || height > MAX_SIDE {
        let reason = format!(
            "image size {width}x{height} is outside {}x{} ..= {MAX_SIDE}x{MAX_SIDE}",
            MIN_SIZE.0, MIN_SIZE.1
        );
        return Err(PlotError::invalid(chart, reason));
    }
    Ok(())
}

/// A temporary file next to the final one, removed on drop unless persisted.
struct TempPath(PathBuf);

impl TempPath {
    fn beside(path: &Path) -> Result<Self, PlotError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            let source = std::io::Error::new(std::io::ErrorKind::NotFound, "folder does not exist");
            let path = dir.to_owned();
            return Err(PlotError::Io { path, source });
        }
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        // The temporary name keeps the .png extension: the bitmap encoder picks the format from it.
        let name = format!(".{stem}.{}-{unique}.tmp.png", std::process::id());
        Ok(Self(dir.join(name)))
    }

    fn persist(self, path: &Path) -> Result<(), PlotError> {
        fs::rename(&self.0, path).map_err(|source| PlotError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        // After a successful rename the file is gone and this fails harmlessly.
        let _ = fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_is_tab10_then_distinct_hues() {
        assert_eq!(
            palette(2),
            vec![RGBColor(31, 119, 180), RGBColor(255, 127, 14)]
        );
        let many = palette(25);
        assert_eq!(many.len(), 25);
        for (i, a) in many.iter().enumerate() {
            for b in &many[i + 1..] {
                assert_ne!(a, b, "palette(25) repeats a colour");
            }
        }
    }

    #[test]
    fn legend_width_grows_with_names_and_is_capped() {
        // 34 + 8.4 * 10 = 118.
        assert_eq!(legend_width(["0123456789", "ab"].into_iter(), 800), 118);
        assert_eq!(legend_width(["x"; 3].into_iter(), 800), 60);
        assert_eq!(
            legend_width(["y".repeat(200).as_str()].into_iter(), 600),
            200
        );
    }

    #[test]
    fn rejects_non_png_paths_and_bad_sizes() {
        let err = check_target(Path::new("a/b.jpg"), "t", DEFAULT_SIZE).unwrap_err();
        assert!(err.to_string().contains("b.jpg"), "{err}");
        let err = check_target(Path::new("x.png"), "t", (100, 500)).unwrap_err();
        assert!(err.to_string().contains("100x500"), "{err}");
        assert!(check_target(Path::new("x.png"), "t", (9000, 500)).is_err());
        assert!(check_target(Path::new("x.PNG"), "t", MIN_SIZE).is_ok());
    }

    fn draw_cross(root: &Area<'_>) -> Result<(), DrawFailure> {
        root.draw(&PathElement::new([(0, 0), (300, 200)], BLACK))?;
        Ok(())
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn render_replaces_the_target_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.png");
        fs::write(&path, b"stale").unwrap();
        render(&path, "t", (300, 200), draw_cross).unwrap();
        let img = crate::testing::decode(&path);
        assert_eq!(img.dimensions(), (300, 200));
        assert_eq!(entries(dir.path()), vec!["chart.png"]);
    }

    #[test]
    fn failed_rename_removes_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty folder in the way: the final rename fails after drawing.
        let path = dir.path().join("taken.png");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        let err = render(&path, "t", (300, 200), draw_cross).unwrap_err();
        assert!(matches!(err, PlotError::Io { .. }), "{err}");
        assert!(err.to_string().contains("taken.png"), "{err}");
        assert_eq!(entries(dir.path()), vec!["taken.png"]);
    }

    #[test]
    fn failed_drawing_names_the_chart_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.png");
        let fail = |_: &Area<'_>| Err(DrawFailure("no luck".into()));
        let err = render(&path, "loss", (300, 200), fail).unwrap_err();
        assert!(matches!(err, PlotError::Draw { .. }));
        assert!(
            err.to_string().starts_with("chart `loss`: drawing"),
            "{err}"
        );
        assert!(err.to_string().ends_with("no luck"), "{err}");
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn missing_folder_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent").join("chart.png");
        let err = render(&path, "t", (300, 200), draw_cross).unwrap_err();
        assert!(matches!(err, PlotError::Io { .. }));
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[test]
    fn embedded_font_registers() {
        assert!(font_ready());
    }
}
