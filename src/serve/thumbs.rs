//! Gallery thumbnails: at most 512 px on the longest side, made once and kept on disk beside
//! the image (`<image dir>/.thumbs/<file name>.<sha8>.jpg`, PNG when the image has transparent
//! pixels), so thousands of images stay fast and scrolling never reads a full-size file twice.
//!
//! The cached name carries the image's SHA-256 prefix: an image replaced under the same name
//! gets a new thumbnail instead of a stale one. Decoding and resizing are CPU-bound and run on
//! the blocking pool, at most two at a time so a screenful of new thumbnails cannot starve the
//! service. A directory that cannot be written to still gets its thumbnail, just not cached.

use std::path::{Path, PathBuf};

use tokio::sync::Semaphore;

pub(crate) const MAX_SIDE: u32 = 512;
const JPEG_QUALITY: u8 = 82;

/// At most this many thumbnails are made at once.
pub(crate) static MAKING: Semaphore = Semaphore::const_new(2);

/// A thumbnail's bytes, its content type, and whether it came from the disk cache.
pub(crate) struct Thumb {
    pub bytes: Vec<u8>,
    pub mime: &'static str,
    pub cached: bool,
}

fn cache_paths(image: &Path, sha256: &str) -> Option<(PathBuf, PathBuf)> {
    let dir = image.parent()?.join(".thumbs");
    let name = image.file_name()?.to_string_lossy().into_owned();
    let short: String = sha256.chars().take(8).collect();
    Some((
        dir.join(format!("{name}.{short}.jpg")),
        dir.join(format!("{name}.{short}.png")),
    ))
}

/// The cached files that may belong to `image` (for deleting them with it).
pub(crate) fn cached_files(image: &Path, sha256: &str) -> Vec<PathBuf> {
    cache_paths(image, sha256)
        .map(|(a, b)| vec![a, b])
        .unwrap_or_default()
}

/// The thumbnail of `image` (whose SHA-256 is `sha256`): from the cache, else made and cached.
pub(crate) async fn thumbnail(image: PathBuf, sha256: String) -> Result<Thumb, String> {
    if let Some((jpg, png)) = cache_paths(&image, &sha256) {
        for (path, mime) in [(&jpg, "image/jpeg"), (&png, "image/png")] {
            if let Ok(bytes) = tokio::fs::read(path).await {
                return Ok(Thumb {
                    bytes,
                    mime,
                    cached: true,
                });
            }
        }
    }
    let _permit = MAKING.acquire().await.map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || make(&image, &sha256))
        .await
        .map_err(|e| format!("thumbnail task failed: {e}"))?
}

fn make(image: &Path, sha256: &str) -> Result<Thumb, String> {
    let bytes =
        std::fs::read(image).map_err(|e| format!("cannot read {}: {e}", image.display()))?;
    let (bytes, mime) = encode(&bytes)?;
    if let Some((jpg, png)) = cache_paths(image, sha256) {
        let target = if mime == "image/png" { png } else { jpg };
        // Best effort: an unwritable directory only costs the cache.
        let _ = crate::output::atomic::write_atomic(&target, &bytes);
    }
    Ok(Thumb {
        bytes,
        mime,
        cached: false,
    })
}

/// Fit inside 512×512 and encode: JPEG, or PNG when transparent pixels would turn black.
pub(crate) fn encode(bytes: &[u8]) -> Result<(Vec<u8>, &'static str), String> {
    crate::output::thumbnail::thumbnail(bytes, MAX_SIDE, JPEG_QUALITY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, GenericImageView, ImageFormat};

    #[test]
    fn a_big_image_becomes_a_small_jpeg_and_a_transparent_one_a_png() {
        let big = DynamicImage::new_rgb8(1024, 600);
        let mut buf = std::io::Cursor::new(Vec::new());
        big.write_to(&mut buf, ImageFormat::Png).unwrap();
        let (thumb, mime) = encode(&buf.into_inner()).unwrap();
        assert_eq!(mime, "image/jpeg");
        let decoded = image::load_from_memory(&thumb).unwrap();
        assert_eq!(decoded.dimensions(), (512, 300));
        let clear = DynamicImage::new_rgba8(64, 64);
        let mut buf = std::io::Cursor::new(Vec::new());
        clear.write_to(&mut buf, ImageFormat::Png).unwrap();
        assert_eq!(encode(&buf.into_inner()).unwrap().1, "image/png");
    }
}
