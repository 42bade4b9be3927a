//! Small previews of saved images for MCP image blocks.
//!
//! A full gpt-image PNG is several MB; as base64 in a tool result it would eat an agent's
//! context, so the default image block is a preview whose longest side is at most 512 px.
//! JPEG keeps it small; PNG is used only when the picture really has transparent pixels,
//! since JPEG would paint them black. Decoding and resizing are CPU-bound, so the async
//! entry point runs them on tokio's blocking pool and never stalls the runtime's workers.

use std::path::PathBuf;

use image::ImageFormat;

pub(super) const MAX_SIDE: u32 = 512;
const JPEG_QUALITY: u8 = 85;

pub(super) struct Preview {
    pub(super) data: Vec<u8>,
    pub(super) mime: &'static str,
}

/// Reads the saved file and builds its preview off the async threads.
pub(super) async fn thumbnail_of(path: PathBuf) -> Result<Preview, String> {
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    tokio::task::spawn_blocking(move || thumbnail(&bytes))
        .await
        .map_err(|e| format!("thumbnail task failed: {e}"))?
}

pub(super) fn thumbnail(bytes: &[u8]) -> Result<Preview, String> {
    let (data, mime) = crate::output::thumbnail::thumbnail(bytes, MAX_SIDE, JPEG_QUALITY)?;
    Ok(Preview { data, mime })
}

/// The mime type for a saved file's bytes, from its format or the magic bytes.
pub(super) fn mime_of(format: Option<&str>, bytes: &[u8]) -> &'static str {
    match format {
        Some("png") => "image/png",
        Some("jpeg") | Some("jpg") => "image/jpeg",
        Some("webp") => "image/webp",
        _ => match image::guess_format(bytes) {
            Ok(ImageFormat::Jpeg) => "image/jpeg",
            Ok(ImageFormat::WebP) => "image/webp",
            _ => "image/png",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, GenericImageView};

    fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn opaque_becomes_small_jpeg() {
        let img = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            1536,
            1024,
            image::Rgba([10, 20, 30, 255]),
        ));
        let preview = thumbnail(&encode(img, ImageFormat::Png)).unwrap();
        assert_eq!(preview.mime, "image/jpeg");
        let back = image::load_from_memory(&preview.data).unwrap();
        assert_eq!(back.dimensions(), (512, 341));
    }

    #[test]
    fn transparent_stays_png_and_small_is_not_enlarged() {
        let img = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            300,
            200,
            image::Rgba([10, 20, 30, 0]),
        ));
        let preview = thumbnail(&encode(img, ImageFormat::Png)).unwrap();
        assert_eq!(preview.mime, "image/png");
        let back = image::load_from_memory(&preview.data).unwrap();
        assert_eq!(back.dimensions(), (300, 200));
    }

    #[test]
    fn mime_falls_back_to_magic_bytes() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::new(4, 4));
        assert_eq!(mime_of(None, &encode(img, ImageFormat::Jpeg)), "image/jpeg");
        assert_eq!(mime_of(Some("webp"), b""), "image/webp");
    }
}
