//! TIFF colour modes that the `image` crate refuses: a colour palette (PhotometricInterpretation
//! 3, `RGBPalette`) and grey with extra samples (grey + alpha).
//!
//! The `tiff` crate reads the tags of such files; it reads the pixels of neither (it knows no
//! colour type for a palette, and cannot invert `WhiteIsZero` grey with extra samples), and
//! `image` has no colour type for a grey sample beside other samples. Palette indices and grey
//! samples are laid out exactly as `BlackIsZero` grey, so [`decode`] reads the samples from a copy
//! of the file whose first directory says `BlackIsZero` (every compression and predictor of the
//! `tiff` crate works unchanged), then looks each index up in the `ColorMap` tag (16-bit red,
//! green and blue tables of `2^bits` entries each) or keeps the first sample of each pixel as
//! its grey level.

use std::io::Cursor;

use image::RgbImage;
use image::metadata::Orientation;
use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::tags::Tag;

use crate::decode::{LoadFailure, check_pixels};

const PHOTOMETRIC_INTERPRETATION: u64 = 262;
const WHITE_IS_ZERO: u16 = 0;
const BLACK_IS_ZERO: u16 = 1;
const RGB_PALETTE: u16 = 3;

/// How the samples become RGB.
enum Mode {
    /// The `ColorMap` tag.
    Palette(Vec<u16>),
    /// The first sample is the grey level.
    Grey { white_is_zero: bool },
}

/// The first image of a palette TIFF, or of a grey TIFF with extra samples, as 8-bit RGB with
/// its orientation tag applied; `Ok(None)` for any other file (the `image` crate reads those).
/// An image declaring more than `max_pixels` pixels fails before any pixel is read.
pub(crate) fn decode(bytes: &[u8], max_pixels: u64) -> Result<Option<RgbImage>, LoadFailure> {
    let Ok(mut decoder) = Decoder::new(Cursor::new(bytes)) else {
        return Ok(None);
    };
    let tag = |d: &mut Decoder<Cursor<&[u8]>>, t| d.find_tag_unsigned::<u16>(t).ok().flatten();
    let photometric = tag(&mut decoder, Tag::PhotometricInterpretation);
    let samples = tag(&mut decoder, Tag::SamplesPerPixel).unwrap_or(1);
    // One value per sample; the `tiff` crate reads only files whose samples are all alike.
    let bits = decoder
        .find_tag_unsigned_vec::<u16>(Tag::BitsPerSample)
        .ok()
        .flatten()
        .and_then(|b| b.first().copied())
        .unwrap_or(1);
    let fail = |e: tiff::TiffError| LoadFailure::decode(format!("TIFF: {e}"));
    let mode = match photometric {
        Some(RGB_PALETTE) => {
            if samples != 1 || !matches!(bits, 1 | 2 | 4 | 8 | 16) {
                return Err(LoadFailure::decode(format!(
                    "palette TIFF with {samples} samples of {bits} bits per pixel is not \
                     supported (1 sample of 1, 2, 4, 8 or 16 bits is)"
                )));
            }
            let map = decoder.get_tag_u16_vec(Tag::ColorMap).map_err(fail)?;
            if map.len() != 3 << bits {
                return Err(LoadFailure::decode(format!(
                    "palette TIFF: a ColorMap of {} values for {bits}-bit indices (needs {})",
                    map.len(),
                    3 << bits
                )));
            }
            Mode::Palette(map)
        }
        Some(p @ (WHITE_IS_ZERO | BLACK_IS_ZERO)) if samples > 1 && matches!(bits, 8 | 16) => {
            Mode::Grey {
                white_is_zero: p == WHITE_IS_ZERO,
            }
        }
        _ => return Ok(None),
    };
    let (width, height) = decoder.dimensions().map_err(fail)?;
    check_pixels(width, height, max_pixels)?;
    let orientation = tag(&mut decoder, Tag::Orientation)
        .and_then(|o| Orientation::from_exif(o.min(255) as u8))
        .unwrap_or(Orientation::NoTransforms);

    let samples = read_samples(bytes, width, height, bits).map_err(fail)?;
    let rgb = match mode {
        Mode::Palette(map) => look_up(&samples, &map)?,
        Mode::Grey { white_is_zero } => grey(&samples, width, height, bits, white_is_zero),
    };
    let rgb = RgbImage::from_raw(width, height, rgb)
        .ok_or_else(|| LoadFailure::decode("TIFF: fewer pixels than its size declares"))?;
    let mut image = image::DynamicImage::ImageRgb8(rgb);
    image.apply_orientation(orientation);
    Ok(Some(image.into_rgb8()))
}

/// Every sample of the first image, read as `BlackIsZero` grey, unpacked to one value each.
fn read_samples(bytes: &[u8], width: u32, height: u32, bits: u16) -> tiff::TiffResult<Vec<u16>> {
    let grey = as_black_is_zero(bytes).ok_or(tiff::TiffError::FormatError(
        tiff::TiffFormatError::RequiredTagNotFound(Tag::PhotometricInterpretation),
    ))?;
    let mut limits = Limits::default();
    // The pixel count is within the limit: samples are at most 2 bytes, 4 of them a pixel.
    let most = (u64::from(width) * u64::from(height)).saturating_mul(8);
    limits.decoding_buffer_size = limits
        .decoding_buffer_size
        .max(usize::try_from(most).unwrap_or(usize::MAX));
    let mut decoder = Decoder::new(Cursor::new(grey.as_slice()))?.with_limits(limits);
    Ok(match decoder.read_image()? {
        DecodingResult::U8(packed) if bits < 8 => unpack(&packed, width, height, bits),
        DecodingResult::U8(values) => values.into_iter().map(u16::from).collect(),
        DecodingResult::U16(values) => values,
        _ => Vec::new(),
    })
}

/// Indices of `bits` (1, 2 or 4) bits, most significant first, in rows padded to whole bytes.
fn unpack(packed: &[u8], width: u32, height: u32, bits: u16) -> Vec<u16> {
    let (width, bits) = (width as usize, usize::from(bits));
    let row_bytes = (width * bits).div_ceil(8);
    let mask = (1u16 << bits) - 1;
    let mut out = Vec::with_capacity(width * height as usize);
    for row in packed.chunks(row_bytes).take(height as usize) {
        for x in 0..width {
            let bit = x * bits;
            let byte = row.get(bit / 8).copied().unwrap_or(0);
            out.push((u16::from(byte) >> (8 - bits - bit % 8)) & mask);
        }
    }
    out
}

/// RGB bytes from palette indices and a TIFF `ColorMap` (all reds, then all greens, then all
/// blues, 16 bits each; the high byte is kept).
fn look_up(indices: &[u16], map: &[u16]) -> Result<Vec<u8>, LoadFailure> {
    let colours = map.len() / 3;
    let mut rgb = Vec::with_capacity(indices.len() * 3);
    for &i in indices {
        let i = usize::from(i);
        if i >= colours {
            return Err(LoadFailure::decode(format!(
                "palette TIFF: index {i} outside a palette of {colours} colours"
            )));
        }
        rgb.extend([map[i], map[colours + i], map[2 * colours + i]].map(|v| (v >> 8) as u8));
    }
    Ok(rgb)
}

/// RGB bytes from the first of each pixel's samples (all of them when only the first plane of a
/// planar file was read), 16 bits rounded to 8 as `image` does.
fn grey(samples: &[u16], width: u32, height: u32, bits: u16, white_is_zero: bool) -> Vec<u8> {
    let pixels = width as usize * height as usize;
    let stride = (samples.len() / pixels.max(1)).max(1);
    samples
        .iter()
        .step_by(stride)
        .take(pixels)
        .flat_map(|&v| {
            let v = if bits == 16 {
                ((u32::from(v) + 128) / 257) as u8
            } else {
                v as u8
            };
            [if white_is_zero { 255 - v } else { v }; 3]
        })
        .collect()
}

/// A copy of a TIFF whose first directory's PhotometricInterpretation says `BlackIsZero`, or
/// `None` when the entry is not where the header says.
fn as_black_is_zero(bytes: &[u8]) -> Option<Vec<u8>> {
    let little = match bytes.get(..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let read = |at: usize, n: usize| -> Option<u64> {
        let b = bytes.get(at..at.checked_add(n)?)?;
        Some(if little {
            b.iter().rev().fold(0, |v, &x| v << 8 | u64::from(x))
        } else {
            b.iter().fold(0, |v, &x| v << 8 | u64::from(x))
        })
    };
    // Classic TIFF: 2-byte entry count, 12-byte entries; BigTIFF: 8-byte count, 20-byte entries.
    let big = read(2, 2)? == 43;
    let (ifd, count_len, entry_len, value_at) = if big {
        (read(8, 8)?, 8, 20, 12)
    } else {
        (read(4, 4)?, 2, 12, 8)
    };
    let ifd = usize::try_from(ifd).ok()?;
    let count = usize::try_from(read(ifd, count_len)?).ok()?;
    let entry = (0..count)
        .map(|i| ifd + count_len + i * entry_len)
        .take_while(|&e| e + entry_len <= bytes.len())
        .find(|&e| read(e, 2) == Some(PHOTOMETRIC_INTERPRETATION))?;
    let width = match read(entry + 2, 2)? {
        3 => 2, // SHORT
        4 => 4, // LONG
        _ => return None,
    };
    let at = entry + value_at;
    let value = u64::from(BLACK_IS_ZERO).to_le_bytes();
    let mut out = bytes.to_vec();
    let field = out.get_mut(at..at + width)?;
    for (k, b) in field.iter_mut().enumerate() {
        *b = if little {
            value[k]
        } else {
            value[width - 1 - k]
        };
    }
    Some(out)
}

#[cfg(test)]
#[path = "tiff_modes_tests.rs"]
mod tests;
