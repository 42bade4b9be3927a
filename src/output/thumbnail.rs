//! A small preview of an image: decoded, fitted inside a square box (aspect ratio kept), then
//! JPEG, or PNG when the picture really has transparent pixels (JPEG would paint them black).
//! The MCP image blocks and the studio's gallery thumbnails both use it; it is CPU-bound, so
//! callers run it on the blocking pool.

use image::{imageops::FilterType, DynamicImage, GenericImageView, ImageFormat};

/// The preview's bytes and content type (`image/jpeg` or `image/png`).
pub(crate) fn thumbnail(
    bytes: &[u8],
    max_side: u32,
    jpeg_quality: u8,
) -> Result<(Vec<u8>, &'static str), String> {
    let img = image::load_from_memory(bytes).map_err(|e| format!("cannot decode image: {e}"))?;
    let (w, h) = img.dimensions();
    let img = if w.max(h) > max_side {
        // `resize` keeps the aspect ratio and fits inside the box; Triangle is a good
        // quality/speed trade-off for a 3x reduction.
        img.resize(max_side, max_side, FilterType::Triangle)
    } else {
        img
    };
    let mut out = std::io::Cursor::new(Vec::new());
    if has_transparency(&img) {
        img.write_to(&mut out, ImageFormat::Png)
            .map_err(|e| format!("cannot encode PNG thumbnail: {e}"))?;
        Ok((out.into_inner(), "image/png"))
    } else {
        let rgb = DynamicImage::ImageRgb8(img.to_rgb8());
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, jpeg_quality);
        rgb.write_with_encoder(encoder)
            .map_err(|e| format!("cannot encode JPEG thumbnail: {e}"))?;
        Ok((out.into_inner(), "image/jpeg"))
    }
}

/// An alpha channel alone is not enough: many opaque PNGs are stored as RGBA.
fn has_transparency(img: &DynamicImage) -> bool {
    img.color().has_alpha() && img.to_rgba8().pixels().any(|p| p.0[3] < u8::MAX)
}
