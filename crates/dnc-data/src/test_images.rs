//! Image files the tests write by hand, in modes that no encoder in the dependency tree writes:
//! TIFFs of any photometric interpretation and bit depth (palettes among them), CMYK JPEGs, and
//! the CRC that PNG chunks need.

/// CRC-32 (ISO-HDLC, the one of PNG and zlib), bit by bit.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                crc >> 1 ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One uncompressed image of a TIFF file, in one strip.
pub(crate) struct TiffImage {
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Bits per sample (the same for every sample).
    pub(crate) bits: u16,
    /// PhotometricInterpretation: 1 grey (black is zero), 2 RGB, 3 palette, 5 CMYK.
    pub(crate) photometric: u16,
    pub(crate) samples: u16,
    /// The strip: rows padded to whole bytes, 16-bit samples little-endian.
    pub(crate) pixels: Vec<u8>,
    /// The ColorMap tag: `2^bits` reds, then greens, then blues.
    pub(crate) colour_map: Option<Vec<u16>>,
}

const SHORT: u16 = 3;
const LONG: u16 = 4;

/// A little-endian TIFF file holding `image`. A fourth sample of RGB, or a second of grey, is
/// unassociated alpha (ExtraSamples = 2).
pub(crate) fn tiff_file(image: &TiffImage) -> Vec<u8> {
    tiff_file_with(image, &[])
}

/// [`tiff_file`] with more tags of one SHORT value each (e.g. Orientation, 274).
pub(crate) fn tiff_file_with(image: &TiffImage, tags: &[(u16, u16)]) -> Vec<u8> {
    let mut entries: Vec<(u16, u16, Vec<u32>)> = vec![
        (256, LONG, vec![image.width]),
        (257, LONG, vec![image.height]),
        (
            258,
            SHORT,
            vec![u32::from(image.bits); usize::from(image.samples)],
        ),
        (259, SHORT, vec![1]),
        (262, SHORT, vec![u32::from(image.photometric)]),
        (273, LONG, vec![0]),
        (277, SHORT, vec![u32::from(image.samples)]),
        (278, LONG, vec![image.height]),
        (279, LONG, vec![image.pixels.len() as u32]),
    ];
    if let Some(map) = &image.colour_map {
        entries.push((320, SHORT, map.iter().map(|&v| u32::from(v)).collect()));
    }
    let alpha = matches!((image.photometric, image.samples), (1, 2) | (2, 4));
    if alpha {
        entries.push((338, SHORT, vec![2]));
    }
    entries.extend(
        tags.iter()
            .map(|&(tag, v)| (tag, SHORT, vec![u32::from(v)])),
    );
    entries.sort_by_key(|e| e.0);
    let size = |(_, kind, values): &(u16, u16, Vec<u32>)| {
        values.len() * if *kind == SHORT { 2 } else { 4 }
    };
    let ifd_len = 2 + 12 * entries.len() + 4;
    let extra: usize = entries.iter().map(size).filter(|&n| n > 4).sum();
    let pixels_at = (8 + ifd_len + extra) as u32;
    entries.iter_mut().find(|e| e.0 == 273).unwrap().2 = vec![pixels_at];

    let mut out = b"II*\0".to_vec();
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    let mut data = Vec::new();
    let mut data_at = 8 + ifd_len;
    for entry in &entries {
        let (tag, kind, values) = entry;
        let mut bytes = Vec::new();
        for &v in values {
            if *kind == SHORT {
                bytes.extend_from_slice(&(v as u16).to_le_bytes());
            } else {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&(values.len() as u32).to_le_bytes());
        if bytes.len() <= 4 {
            bytes.resize(4, 0);
            out.extend_from_slice(&bytes);
        } else {
            out.extend_from_slice(&(data_at as u32).to_le_bytes());
            data_at += bytes.len();
            data.extend_from_slice(&bytes);
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&data);
    out.extend_from_slice(&image.pixels);
    out
}

/// Appends bits to a JPEG scan, most significant first, stuffing a zero after each `FF`.
struct BitWriter {
    bytes: Vec<u8>,
    acc: u32,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, len: u32) {
        for i in (0..len).rev() {
            self.acc = self.acc << 1 | (value >> i & 1);
            self.n += 1;
            if self.n == 8 {
                self.bytes.push(self.acc as u8);
                if self.acc == 0xFF {
                    self.bytes.push(0);
                }
                (self.acc, self.n) = (0, 0);
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        while self.n != 0 {
            self.put(1, 1);
        }
        self.bytes
    }
}

/// A baseline JPEG of 4 components marked CMYK by an Adobe segment (transform 0), as Photoshop
/// writes them: `block(bx, by)` gives the stored values of the 8×8 block at that block position,
/// which are the inks inverted (255 = no ink). Every block is flat (only a DC coefficient, with
/// quantiser 1), so a decoder's inverse DCT gives back exactly the stored values.
pub(crate) fn cmyk_jpeg(
    blocks_x: u16,
    blocks_y: u16,
    block: impl Fn(u16, u16) -> [u8; 4],
) -> Vec<u8> {
    let segment = |marker: u8, body: &[u8]| {
        [
            &[0xFF, marker][..],
            &((body.len() + 2) as u16).to_be_bytes(),
            body,
        ]
        .concat()
    };
    let adobe = [&b"Adobe"[..], &100u16.to_be_bytes(), &[0, 0, 0, 0, 0]].concat();
    let quant = [&[0u8][..], &[1; 64]].concat();
    let mut frame = vec![8];
    frame.extend_from_slice(&(blocks_y * 8).to_be_bytes());
    frame.extend_from_slice(&(blocks_x * 8).to_be_bytes());
    frame.push(4);
    for id in 1..=4 {
        frame.extend_from_slice(&[id, 0x11, 0]);
    }
    // DC table 0: the 12 difference categories, each coded by its 4-bit number; AC table 0:
    // end-of-block only, coded `0`.
    let mut dc = vec![0x00];
    dc.extend_from_slice(&[0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    dc.extend(0..12u8);
    let mut ac = vec![0x10, 1];
    ac.extend_from_slice(&[0; 15]);
    ac.push(0);
    let mut scan = vec![4];
    for id in 1..=4 {
        scan.extend_from_slice(&[id, 0x00]);
    }
    scan.extend_from_slice(&[0, 63, 0]);

    let mut bits = BitWriter {
        bytes: Vec::new(),
        acc: 0,
        n: 0,
    };
    let mut previous = [0i32; 4];
    for by in 0..blocks_y {
        for bx in 0..blocks_x {
            let values = block(bx, by);
            for c in 0..4 {
                // The DC coefficient of a flat block of value v is 8·(v − 128).
                let dc = 8 * (i32::from(values[c]) - 128);
                let diff = dc - previous[c];
                previous[c] = dc;
                let category = 32 - diff.unsigned_abs().leading_zeros();
                bits.put(category, 4);
                let extra = if diff < 0 { diff - 1 } else { diff };
                bits.put(extra as u32 & ((1 << category) - 1), category);
                bits.put(0, 1);
            }
        }
    }
    [
        &[0xFF, 0xD8][..],
        &segment(0xEE, &adobe),
        &segment(0xDB, &quant),
        &segment(0xC0, &frame),
        &segment(0xC4, &dc),
        &segment(0xC4, &ac),
        &segment(0xDA, &scan),
        &bits.finish(),
        &[0xFF, 0xD9],
    ]
    .concat()
}
