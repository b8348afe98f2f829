//! Decoding one file's bytes to 8-bit RGB, no larger than its consumer needs.
//!
//! A JPEG can be decoded at 1/2, 1/4 or 1/8 of its size for little more than the cost of reading
//! its entropy-coded data: the inverse DCT then computes fewer output pixels per 8×8 block (as
//! libjpeg's `scale_denom`, PIL's draft mode and DALI do). [`decode`] takes the size the consumer
//! needs (for a random resized crop: the crop's size at the output resolution, see
//! [`Mapper::decode_size`](crate::Mapper::decode_size)) and picks the smallest such scale whose
//! image is at least that large on both axes, where that is measured to be faster than the
//! whole decode: 1/4 or 1/8 ([`MIN_REDUCTION`]) and at most [`MAX_REDUCED_WIDTH`] pixels wide,
//! i.e. small views (CIFAR-sized ones) of ordinary photos. Every other format and JPEG is decoded
//! whole.
//!
//! Before any pixel is decoded, the size the file's header declares is checked against a limit
//! ([`DEFAULT_MAX_IMAGE_PIXELS`] by default): a small file can declare billions of pixels (a
//! "decompression bomb"), which would take minutes and gigabytes to decode. TIFFs with a colour
//! palette or grey + alpha, which `image` does not read, are decoded by
//! [`tiff_modes`](crate::tiff_modes).

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, RgbImage};

/// Why an image could not be loaded, in a form that can be cached and turned into an error.
#[derive(Debug, Clone)]
pub(crate) struct LoadFailure {
    pub(crate) io_kind: Option<std::io::ErrorKind>,
    pub(crate) message: String,
}

impl LoadFailure {
    pub(crate) fn io(e: &std::io::Error) -> Self {
        Self {
            io_kind: Some(e.kind()),
            message: e.to_string(),
        }
    }

    pub(crate) fn decode(message: impl ToString) -> Self {
        Self {
            io_kind: None,
            message: message.to_string(),
        }
    }
}

/// The default largest image, in pixels (width × height as the file declares it), that is
/// decoded: Pillow's `Image.MAX_IMAGE_PIXELS`, about 9,500 × 9,500 (256 MiB of RGBA at 8 bits).
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 89_478_485;

/// Fails when a `width × height` image is larger than `max_pixels`, naming both and the setting
/// that raises the limit.
pub(crate) fn check_pixels(width: u32, height: u32, max_pixels: u64) -> Result<(), LoadFailure> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(LoadFailure::decode(format!(
            "the image declares {width} × {height} = {pixels} pixels, more than the limit of \
             {max_pixels} (data.max_image_pixels; raise it to read this image)"
        )));
    }
    Ok(())
}

/// Given an image's width and height (after its EXIF orientation), the smallest width and height
/// its consumer needs. Returning the size itself asks for the whole image.
pub type SizeRequest<'a> = &'a dyn Fn(u32, u32) -> (u32, u32);

/// The smallest size, of `width × height`'s aspect ratio, whose shorter side is still `side`
/// (what a resize to that shorter side, or the resized-image cache, needs from a decoder).
pub fn size_for_side(width: u32, height: u32, side: u32) -> (u32, u32) {
    let shorter = width.min(height).max(1);
    if shorter <= side {
        return (width, height);
    }
    let scale = f64::from(side) / f64::from(shorter);
    let up = |x: u32| ((f64::from(x) * scale).ceil() as u32).clamp(1, x);
    (up(width), up(height))
}

/// Asks for the whole image.
pub fn full_size(width: u32, height: u32) -> (u32, u32) {
    (width, height)
}

/// Decodes one file's bytes (format from its content, the first frame of an animation),
/// applies its EXIF orientation, and converts any colour mode (greyscale, palette, alpha, 16-bit,
/// CMYK) to 8-bit RGB. A JPEG is decoded at the smallest DCT scale (1/8, 1/4 or 1) whose image
/// is at least `want(width, height)` on both axes; the result keeps the aspect ratio. An image
/// whose header declares more than `max_pixels` pixels fails before its pixels are read.
pub(crate) fn decode(
    bytes: &[u8],
    want: SizeRequest<'_>,
    max_pixels: u64,
) -> Result<RgbImage, LoadFailure> {
    if bytes.is_empty() {
        return Err(LoadFailure::decode("the file is empty"));
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(LoadFailure::decode)?;
    if reader.format() == Some(image::ImageFormat::Tiff)
        && let Some(image) = crate::tiff_modes::decode(bytes, max_pixels)?
    {
        return Ok(image);
    }
    let jpeg = reader.format() == Some(image::ImageFormat::Jpeg);
    if jpeg && !jpeg_is_complete(bytes) {
        // The JPEG decoder fills a cut-off scan with grey rather than failing.
        return Err(LoadFailure::decode(
            "truncated JPEG: no end-of-image marker after the last scan",
        ));
    }
    let mut decoder = reader.into_decoder().map_err(LoadFailure::decode)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, max_pixels)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    if jpeg
        && let Some(reduction) = worth_reducing(width, height, orientation, want)
        && let Some(image) = decode_jpeg_reduced(bytes, (width, height), reduction, orientation)
    {
        return Ok(image);
    }
    let mut image = DynamicImage::from_decoder(decoder).map_err(LoadFailure::decode)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// Whether an orientation exchanges width and height.
fn swaps_axes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// The largest reduction `d` in {8, 4, 2} (the image becomes `⌈w/d⌉ × ⌈h/d⌉`) that keeps at least
/// `need_w × need_h` pixels, or 1.
pub(crate) fn jpeg_reduction(width: u32, height: u32, need_w: u32, need_h: u32) -> u32 {
    [8, 4, 2]
        .into_iter()
        .find(|&d| width.div_ceil(d) >= need_w && height.div_ceil(d) >= need_h)
        .unwrap_or(1)
}

/// The smallest reduction worth a second decoder. The scaled decoder (`jpeg-decoder`) reads the
/// entropy-coded data more slowly than the full one (`zune-jpeg`, through `image`): on 500×375
/// photos it takes 0.70 ms at 1/4 and 0.66 ms at 1/8 against 0.84 ms for the full decode, but
/// 1.25 ms at 1/2, so a half-size decode is done whole.
const MIN_REDUCTION: u32 = 4;

/// The widest reduced output worth the scaled decoder: above 128 pixels it starts a thread per
/// colour component for every image, which on the loader's busy workers made 2000×1500 photos
/// slower to load than decoding them whole.
const MAX_REDUCED_WIDTH: u32 = 128;

/// The DCT reduction (4 or 8) worth decoding a `width × height` JPEG (its stored size) at, for
/// a consumer that needs `want` of the image as `orientation` turns it, or `None` when the whole
/// decode is the faster one.
fn worth_reducing(
    width: u32,
    height: u32,
    orientation: Orientation,
    want: SizeRequest<'_>,
) -> Option<u32> {
    let (need_w, need_h) = if swaps_axes(orientation) {
        let (w, h) = want(height, width);
        (h, w)
    } else {
        want(width, height)
    };
    let reduction = jpeg_reduction(width, height, need_w, need_h);
    (reduction >= MIN_REDUCTION && width.div_ceil(reduction) <= MAX_REDUCED_WIDTH)
        .then_some(reduction)
}

/// A `width × height` JPEG decoded at 1/`reduction` of its size and turned by `orientation`
/// (both read by the full decoder, which sees every segment before the scan), or `None` when the
/// colour mode is one that the full decoder converts (CMYK, 16-bit), or this decoder does not
/// read the file as the full one does (an error, another size): the full decoder then has the
/// last word.
fn decode_jpeg_reduced(
    bytes: &[u8],
    (width, height): (u32, u32),
    reduction: u32,
    orientation: Orientation,
) -> Option<RgbImage> {
    let mut decoder = jpeg_decoder::Decoder::new(std::io::Cursor::new(bytes));
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    if (u32::from(info.width), u32::from(info.height)) != (width, height)
        || !matches!(
            info.pixel_format,
            jpeg_decoder::PixelFormat::RGB24 | jpeg_decoder::PixelFormat::L8
        )
    {
        return None;
    }
    let (w, h) = (width.div_ceil(reduction), height.div_ceil(reduction));
    // Both sides fit in u16: they are at most the JPEG's own, which are u16.
    let scaled = decoder.scale(w as u16, h as u16).ok()?;
    if (u32::from(scaled.0), u32::from(scaled.1)) != (w, h) {
        return None;
    }
    let pixels = decoder.decode().ok()?;
    let rgb = match decoder.info()?.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => pixels,
        _ => pixels.iter().flat_map(|&l| [l, l, l]).collect(),
    };
    let mut image = DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, rgb)?);
    image.apply_orientation(orientation);
    Some(image.into_rgb8())
}

/// Whether a JPEG stream ends its last scan: an end-of-image marker (`FF D9`) after the last
/// start-of-scan (`FF DA`). Inside scan data a `FF` byte is always stuffed or a restart marker,
/// and an EXIF thumbnail's markers come before the main image's scans.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let marker = |m: u8| move |w: &[u8]| w == [0xFF, m];
    match bytes.windows(2).rposition(marker(0xDA)) {
        Some(sos) => bytes[sos..].windows(2).any(marker(0xD9)),
        None => false,
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "bomb_tests.rs"]
mod bomb_tests;

#[cfg(test)]
#[path = "colour_tests.rs"]
pub(crate) mod colour_tests;
