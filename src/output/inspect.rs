//! What actually came back: format, dimensions, alpha and C2PA presence of a saved image.
//!
//! Design:
//! - The format comes from magic bytes, never from what was requested or the file name: the
//!   backend may ignore `output_format`, and the report must describe the real file.
//! - Dimensions come from the `imagesize` crate, which reads headers only.
//! - Alpha and C2PA need a look at chunk/segment *headers*. This runs on every saved image
//!   (up to ~30 MB), so the walkers here hop from header to header over the borrowed slice:
//!   no decode, no copy, no CRC pass. `img-parts` would need an owned `Bytes` copy and verifies
//!   every PNG chunk CRC, which is the whole file; it is used for writing (see
//!   `output::metadata`) and in the tests to build the C2PA fixtures.
//! - Every field is best effort. A truncated or odd file gives `None`/`false` rather than an
//!   error, because inspection only annotates an image that is already saved.
//! - C2PA detection errs on the side of "yes": any JUMBF in a JPEG APP11 segment counts. A false
//!   positive only means metadata goes to a sidecar instead of the file; a false negative could
//!   lead to rewriting (and so invalidating) a signed image.

use std::borrow::Cow;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ImageFormat {
    Png,
    Jpeg,
    Webp,
}

impl ImageFormat {
    /// File extension to save under. `jpg`, not `jpeg`: it is what most tools and people expect.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
        }
    }

    /// The name the APIs and reports use (`output_format` values).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::Webp => "webp",
        }
    }

    /// The content type, e.g. `image/png`.
    pub(crate) fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }

    /// From a file extension (case-insensitive, leading dot optional); also accepts the
    /// `as_str` names, so `jpeg` and `jpg` both work.
    pub(crate) fn from_extension(ext: &str) -> Option<Self> {
        let ext = ext.strip_prefix('.').unwrap_or(ext).to_ascii_lowercase();
        match ext.as_str() {
            "png" => Some(Self::Png),
            "jpg" | "jpeg" | "jpe" => Some(Self::Jpeg),
            "webp" => Some(Self::Webp),
            _ => None,
        }
    }

    /// From magic bytes.
    pub(crate) fn detect(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(PNG_SIGNATURE) {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct ImageInfo {
    pub(crate) format: Option<ImageFormat>,
    pub(crate) width: Option<u32>,
    pub(crate) height: Option<u32>,
    pub(crate) has_alpha: Option<bool>,
    pub(crate) c2pa: bool,
}

const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// Cheap: header walks only, whatever the file size.
pub(crate) fn inspect(bytes: &[u8]) -> ImageInfo {
    let size = imagesize::blob_size(bytes).ok();
    inspect_source(bytes, size)
}

/// [`inspect`] for a file on disk, read at the headers' offsets: an image saved straight from
/// the stream ([`super::spill`]) is never loaded whole. Unreadable gives the default.
pub(crate) fn inspect_file(path: &std::path::Path) -> ImageInfo {
    let Ok(file) = std::fs::File::open(path) else {
        return ImageInfo::default();
    };
    let Ok(len) = file.metadata().map(|m| m.len() as usize) else {
        return ImageInfo::default();
    };
    let size = imagesize::reader_size(std::io::BufReader::with_capacity(16 * 1024, &file)).ok();
    inspect_source(&FileSource { file, len }, size)
}

fn inspect_source<S: Source + ?Sized>(src: &S, size: Option<imagesize::ImageSize>) -> ImageInfo {
    let Some(format) = src
        .get(0, 12.min(src.len()))
        .and_then(|h| ImageFormat::detect(&h))
    else {
        return ImageInfo::default();
    };
    let (width, height) = match size {
        Some(size) => (
            u32::try_from(size.width).ok(),
            u32::try_from(size.height).ok(),
        ),
        None => (None, None),
    };
    let (has_alpha, c2pa) = match format {
        ImageFormat::Png => png_alpha_c2pa(src),
        ImageFormat::Jpeg => (Some(false), jpeg_c2pa(src)),
        ImageFormat::Webp => webp_alpha_c2pa(src),
    };
    ImageInfo {
        format: Some(format),
        width,
        height,
        has_alpha,
        c2pa,
    }
}

/// What the walkers read from: a slice, or a file read at offsets.
trait Source {
    fn len(&self) -> usize;
    /// `len` bytes at `at`; `None` when they are not all there.
    fn get(&self, at: usize, len: usize) -> Option<Cow<'_, [u8]>>;

    fn byte(&self, at: usize) -> Option<u8> {
        self.get(at, 1).map(|b| b[0])
    }
}

impl Source for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    fn get(&self, at: usize, len: usize) -> Option<Cow<'_, [u8]>> {
        <[u8]>::get(self, at..at.checked_add(len)?).map(Cow::Borrowed)
    }
}

struct FileSource {
    file: std::fs::File,
    len: usize,
}

impl Source for FileSource {
    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, at: usize, len: usize) -> Option<Cow<'_, [u8]>> {
        if at.checked_add(len)? > self.len {
            return None;
        }
        let mut buf = vec![0u8; len];
        read_exact_at(&self.file, &mut buf, at as u64).ok()?;
        Some(Cow::Owned(buf))
    }
}

#[cfg(unix)]
fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &std::fs::File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

fn be32(b: &[u8]) -> usize {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
}

fn le32(b: &[u8]) -> usize {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
}

/// Walks PNG chunks: alpha from IHDR colour type 4/6 or a tRNS chunk; C2PA from `caBX`.
/// Walks to IEND because `caBX` may come after the image data.
fn png_alpha_c2pa<S: Source + ?Sized>(src: &S) -> (Option<bool>, bool) {
    let mut alpha = None;
    let mut c2pa = false;
    let mut pos = PNG_SIGNATURE.len();
    while let Some(header) = src.get(pos, 8) {
        let len = be32(&header);
        let kind = &header[4..8];
        match kind {
            b"IHDR" => {
                alpha = src.byte(pos + 8 + 9).map(|ct| matches!(ct, 4 | 6));
            }
            b"tRNS" => alpha = Some(true),
            b"caBX" => c2pa = true,
            b"IEND" => break,
            _ => {}
        }
        // 4 length + 4 type + data + 4 CRC; a bogus length just ends the walk.
        match pos.checked_add(12).and_then(|p| p.checked_add(len)) {
            Some(next) => pos = next,
            None => break,
        }
    }
    (alpha, c2pa)
}

/// Walks JPEG marker segments up to the first scan; C2PA lives in APP11 segments before it.
fn jpeg_c2pa<S: Source + ?Sized>(src: &S) -> bool {
    let mut pos = 2; // after SOI
    loop {
        // Fill bytes (0xFF runs) may precede a marker.
        while src.byte(pos) == Some(0xFF) && src.byte(pos + 1) == Some(0xFF) {
            pos += 1;
        }
        let (Some(0xFF), Some(marker)) = (src.byte(pos), src.byte(pos + 1)) else {
            return false;
        };
        pos += 2;
        match marker {
            // SOS: entropy-coded data follows; EOI: end. No metadata segments after either.
            0xDA | 0xD9 => return false,
            // Standalone markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let Some(len_bytes) = src.get(pos, 2) else {
            return false;
        };
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if len < 2 {
            return false;
        }
        if marker == 0xEB {
            let end = (pos + len).min(src.len());
            // Only the start of the segment matters (see `is_jumbf_app11`).
            let n = end.saturating_sub(pos + 2).min(JUMBF_HEAD);
            if end >= pos + 2 {
                if let Some(content) = src.get(pos + 2, n) {
                    if is_jumbf_app11(&content) {
                        return true;
                    }
                }
            }
        }
        pos += len;
    }
}

/// How far into an APP11 segment [`is_jumbf_app11`] looks.
const JUMBF_HEAD: usize = 32;

/// JPEG XT box packaging: "JP" common identifier, 2-byte instance, 4-byte sequence, then a
/// JUMBF superbox (LBox, TBox = `jumb`). The 'jumb' search is bounded to the first packet
/// header so a random APP11 payload that merely contains the letters far in does not count.
fn is_jumbf_app11(content: &[u8]) -> bool {
    if !content.starts_with(b"JP") {
        return false;
    }
    let head = &content[..content.len().min(JUMBF_HEAD)];
    head.windows(4).any(|w| w == b"jumb")
}

/// Walks the RIFF chunks of a WebP: alpha from VP8X flags, the VP8L header bit, or `false` for
/// lossy VP8 without VP8X (it cannot carry alpha); C2PA from a `C2PA` chunk.
fn webp_alpha_c2pa<S: Source + ?Sized>(src: &S) -> (Option<bool>, bool) {
    let mut alpha = None;
    let mut vp8x_alpha = None;
    let mut c2pa = false;
    let mut pos = 12;
    while let Some(header) = src.get(pos, 8) {
        let len = le32(&header[4..8]);
        let data_start = pos + 8;
        match &header[0..4] {
            b"VP8X" => vp8x_alpha = src.byte(data_start).map(|flags| flags & 0x10 != 0),
            // 0x2F signature, then 14+14 bits of size and the alpha_is_used bit (bit 28).
            b"VP8L" if alpha.is_none() => alpha = src.byte(data_start + 4).map(|b| b & 0x10 != 0),
            b"VP8 " if alpha.is_none() => alpha = Some(false),
            b"C2PA" => c2pa = true,
            _ => {}
        }
        // Chunks are padded to an even length.
        match data_start.checked_add(len).map(|end| end + (len & 1)) {
            Some(next) => pos = next,
            None => break,
        }
    }
    // VP8X is authoritative when present: it covers ALPH + VP8 and animations.
    (vp8x_alpha.or(alpha), c2pa)
}

#[cfg(test)]
mod tests {
    use super::*;
    use img_parts::jpeg::{Jpeg, JpegSegment};
    use img_parts::png::{Png, PngChunk};
    use img_parts::riff::{RiffChunk, RiffContent};
    use img_parts::webp::WebP;
    use img_parts::Bytes;
    use std::io::Cursor;

    fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn rgb(w: u32, h: u32) -> image::DynamicImage {
        image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([x as u8, y as u8, 128])
        }))
    }

    fn rgba(w: u32, h: u32) -> image::DynamicImage {
        image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(w, h, |x, y| {
            image::Rgba([x as u8, y as u8, 128, (x + y) as u8])
        }))
    }

    /// A JUMBF superbox as C2PA writes it: `jumb` containing a `jumd` labelled "c2pa".
    fn jumbf() -> Vec<u8> {
        let mut jumd = Vec::new();
        jumd.extend_from_slice(&[0; 4]);
        jumd.extend_from_slice(b"jumd");
        jumd.extend_from_slice(b"c2pa\0\x11\0\x10\x80\0\xaa\0\x38\x9b\x71\x03");
        jumd.push(0x03);
        jumd.extend_from_slice(b"c2pa\0");
        let jumd_len = jumd.len() as u32;
        jumd[0..4].copy_from_slice(&jumd_len.to_be_bytes());
        let mut out = ((jumd.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(b"jumb");
        out.extend_from_slice(&jumd);
        out
    }

    fn with_png_c2pa(png: &[u8]) -> Vec<u8> {
        let mut p = Png::from_bytes(Bytes::copy_from_slice(png)).unwrap();
        let at = p.chunks().len() - 1;
        p.chunks_mut()
            .insert(at, PngChunk::new(*b"caBX", Bytes::from(jumbf())));
        p.encoder().bytes().to_vec()
    }

    fn with_jpeg_c2pa(jpeg: &[u8]) -> Vec<u8> {
        let mut j = Jpeg::from_bytes(Bytes::copy_from_slice(jpeg)).unwrap();
        let mut content = b"JP\x00\x01\x00\x00\x00\x01".to_vec();
        content.extend_from_slice(&jumbf());
        j.segments_mut().insert(
            1,
            JpegSegment::new_with_contents(0xEB, Bytes::from(content)),
        );
        j.encoder().bytes().to_vec()
    }

    fn with_webp_c2pa(webp: &[u8]) -> Vec<u8> {
        let mut w = WebP::from_bytes(Bytes::copy_from_slice(webp)).unwrap();
        w.chunks_mut().push(RiffChunk::new(
            *b"C2PA",
            RiffContent::Data(Bytes::from(jumbf())),
        ));
        w.encoder().bytes().to_vec()
    }

    #[test]
    fn png_rgb_and_rgba() {
        let info = inspect(&encode(rgb(48, 32), image::ImageFormat::Png));
        assert_eq!(
            info,
            ImageInfo {
                format: Some(ImageFormat::Png),
                width: Some(48),
                height: Some(32),
                has_alpha: Some(false),
                c2pa: false
            }
        );
        let info = inspect(&encode(rgba(16, 64), image::ImageFormat::Png));
        assert_eq!(
            (info.width, info.height, info.has_alpha),
            (Some(16), Some(64), Some(true))
        );
        let la = image::DynamicImage::ImageLumaA8(image::GrayAlphaImage::new(4, 4));
        assert_eq!(
            inspect(&encode(la, image::ImageFormat::Png)).has_alpha,
            Some(true)
        );
    }

    #[test]
    fn png_trns_counts_as_alpha() {
        let png = encode(rgb(8, 8), image::ImageFormat::Png);
        let mut p = Png::from_bytes(Bytes::from(png)).unwrap();
        p.chunks_mut().insert(
            1,
            PngChunk::new(*b"tRNS", Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
        );
        assert_eq!(inspect(&p.encoder().bytes()).has_alpha, Some(true));
    }

    #[test]
    fn jpeg() {
        let info = inspect(&encode(rgb(40, 24), image::ImageFormat::Jpeg));
        assert_eq!(
            info,
            ImageInfo {
                format: Some(ImageFormat::Jpeg),
                width: Some(40),
                height: Some(24),
                has_alpha: Some(false),
                c2pa: false
            }
        );
    }

    #[test]
    fn webp_lossless_alpha_bit() {
        let info = inspect(&encode(rgba(30, 20), image::ImageFormat::WebP));
        assert_eq!(
            info,
            ImageInfo {
                format: Some(ImageFormat::Webp),
                width: Some(30),
                height: Some(20),
                has_alpha: Some(true),
                c2pa: false
            }
        );
        let info = inspect(&encode(rgb(30, 20), image::ImageFormat::WebP));
        assert_eq!(info.has_alpha, Some(false));
    }

    /// RIFF/WEBP with the given chunks; sizes and padding filled in.
    fn riff(chunks: &[(&[u8; 4], Vec<u8>)]) -> Vec<u8> {
        let mut body = b"WEBP".to_vec();
        for (id, data) in chunks {
            body.extend_from_slice(*id);
            body.extend_from_slice(&(data.len() as u32).to_le_bytes());
            body.extend_from_slice(data);
            if data.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// A lossy VP8 key-frame header (frame tag, start code, 14-bit sizes) for 64x48; the
    /// `image` crate only encodes lossless WebP, and inspection reads no further than this.
    fn vp8_header() -> Vec<u8> {
        let mut v = vec![0x50, 0x5a, 0x00, 0x9d, 0x01, 0x2a];
        v.extend_from_slice(&64u16.to_le_bytes());
        v.extend_from_slice(&48u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v
    }

    #[test]
    fn webp_lossy_and_vp8x() {
        let info = inspect(&riff(&[(b"VP8 ", vp8_header())]));
        assert_eq!(
            (info.width, info.height, info.has_alpha),
            (Some(64), Some(48), Some(false))
        );

        let mut vp8x = vec![0x10, 0, 0, 0];
        vp8x.extend_from_slice(&[63, 0, 0, 47, 0, 0]);
        let info = inspect(&riff(&[
            (b"VP8X", vp8x.clone()),
            (b"ALPH", vec![0; 3]),
            (b"VP8 ", vp8_header()),
        ]));
        assert_eq!(
            (info.width, info.height, info.has_alpha),
            (Some(64), Some(48), Some(true))
        );

        vp8x[0] = 0;
        let info = inspect(&riff(&[(b"VP8X", vp8x), (b"VP8 ", vp8_header())]));
        assert_eq!(info.has_alpha, Some(false));
    }

    #[test]
    fn c2pa_in_each_format() {
        let png = encode(rgba(16, 16), image::ImageFormat::Png);
        let jpeg = encode(rgb(16, 16), image::ImageFormat::Jpeg);
        let webp = encode(rgb(16, 16), image::ImageFormat::WebP);
        for plain in [&png, &jpeg, &webp] {
            assert!(!inspect(plain).c2pa);
        }
        let p = inspect(&with_png_c2pa(&png));
        assert!(p.c2pa);
        assert_eq!((p.width, p.has_alpha), (Some(16), Some(true)));
        let j = inspect(&with_jpeg_c2pa(&jpeg));
        assert!(j.c2pa);
        assert_eq!((j.format, j.width), (Some(ImageFormat::Jpeg), Some(16)));
        let w = inspect(&with_webp_c2pa(&webp));
        assert!(w.c2pa);
        assert_eq!((w.format, w.width), (Some(ImageFormat::Webp), Some(16)));
    }

    #[test]
    fn app11_without_jumbf_is_not_c2pa() {
        let jpeg = encode(rgb(16, 16), image::ImageFormat::Jpeg);
        let mut j = Jpeg::from_bytes(Bytes::from(jpeg)).unwrap();
        j.segments_mut().insert(
            1,
            JpegSegment::new_with_contents(0xEB, Bytes::from_static(b"HDR gain map")),
        );
        assert!(!inspect(&j.encoder().bytes()).c2pa);
    }

    #[test]
    fn unknown_and_truncated() {
        assert_eq!(inspect(b""), ImageInfo::default());
        assert_eq!(inspect(b"GIF89a......"), ImageInfo::default());
        let png = encode(rgb(16, 16), image::ImageFormat::Png);
        let info = inspect(&png[..30]);
        assert_eq!(info.format, Some(ImageFormat::Png));
        assert_eq!(info.has_alpha, Some(false));
        let info = inspect(&png[..12]);
        assert_eq!(
            (info.format, info.width, info.has_alpha, info.c2pa),
            (Some(ImageFormat::Png), None, None, false)
        );
        let jpeg = encode(rgb(16, 16), image::ImageFormat::Jpeg);
        assert!(!inspect(&jpeg[..5]).c2pa);
    }

    #[test]
    fn large_file_is_not_decoded() {
        // A 30 MB PNG whose IDAT is garbage: a decoder would fail or take long; the header
        // walk does not care.
        // Spliced in by hand (zero CRC) so building the fixture stays cheap in debug builds.
        let small = encode(rgb(1024, 1024), image::ImageFormat::Png);
        let (head, iend) = small.split_at(small.len() - 12);
        let mut png = head.to_vec();
        png.extend_from_slice(&((30u32 << 20).to_be_bytes()));
        png.extend_from_slice(b"IDAT");
        png.resize(png.len() + (30 << 20) + 4, 0);
        png.extend_from_slice(iend);
        let start = std::time::Instant::now();
        let info = inspect(&png);
        assert_eq!(info.width, Some(1024));
        assert!(start.elapsed() < std::time::Duration::from_millis(50));
    }

    #[test]
    fn a_file_is_inspected_as_its_bytes_are() {
        let tmp = tempfile::tempdir().unwrap();
        let png = encode(rgba(20, 10), image::ImageFormat::Png);
        let jpeg = encode(rgb(16, 8), image::ImageFormat::Jpeg);
        let webp = encode(rgba(4, 4), image::ImageFormat::WebP);
        for (i, bytes) in [
            with_png_c2pa(&png),
            png.clone(),
            png[..30].to_vec(),
            with_jpeg_c2pa(&jpeg),
            jpeg,
            with_webp_c2pa(&webp),
            webp,
            b"GIF89a".to_vec(),
            Vec::new(),
        ]
        .into_iter()
        .enumerate()
        {
            let path = tmp.path().join(format!("{i}.img"));
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(inspect_file(&path), inspect(&bytes), "fixture {i}");
        }
        assert_eq!(
            inspect_file(&tmp.path().join("missing")),
            ImageInfo::default()
        );
    }

    #[test]
    fn format_names() {
        assert_eq!(ImageFormat::Jpeg.extension(), "jpg");
        assert_eq!(ImageFormat::Jpeg.as_str(), "jpeg");
        assert_eq!(ImageFormat::Webp.mime(), "image/webp");
        assert_eq!(ImageFormat::from_extension(".JPG"), Some(ImageFormat::Jpeg));
        assert_eq!(ImageFormat::from_extension("jpeg"), Some(ImageFormat::Jpeg));
        assert_eq!(ImageFormat::from_extension("png"), Some(ImageFormat::Png));
        assert_eq!(ImageFormat::from_extension("WebP"), Some(ImageFormat::Webp));
        assert_eq!(ImageFormat::from_extension("gif"), None);
        assert_eq!(
            serde_json::to_string(&ImageFormat::Jpeg).unwrap(),
            r#""jpeg""#
        );
    }
}
