//! Where a job's files live and what they are.
//!
//! Artifacts are `<data dir>/artifacts/<job id>/<k>.<ext>`; uploaded edit inputs are kept apart
//! in `<data dir>/inputs/<job id>/` so the artifacts folder holds only results. What an image
//! is (format, size, alpha) is read from its headers ([`crate::output::inspect`], as for every
//! saved image) rather than trusted from the request, because the answer must describe what
//! actually came back.

use std::path::{Path, PathBuf};

use crate::output::inspect::{self, ImageFormat};

pub(crate) fn artifacts_dir(data_dir: &Path, job_id: &str) -> PathBuf {
    data_dir.join("artifacts").join(job_id)
}

pub(crate) fn inputs_dir(data_dir: &Path, job_id: &str) -> PathBuf {
    data_dir.join("inputs").join(job_id)
}

/// The content type of a stored artifact, from its recorded format.
pub(crate) fn content_type(format: &str) -> &'static str {
    match ImageFormat::from_extension(format) {
        Some(format) => format.mime(),
        None if format == "gif" => "image/gif",
        None => "application/octet-stream",
    }
}

/// The extension for an upload with these first bytes (PNG when unrecognised).
pub(crate) fn extension_for(head: &[u8]) -> &'static str {
    match ImageFormat::detect(head) {
        Some(format) => format.extension(),
        None if head.starts_with(b"GIF8") => "gif",
        None => "png",
    }
}

/// Whether the image at `path` has an alpha channel, from its headers.
pub(crate) fn has_alpha(path: &Path) -> bool {
    inspect::inspect_file(path).has_alpha.unwrap_or(false)
}

/// [`has_alpha`] for an image in memory.
pub(crate) fn bytes_have_alpha(bytes: &[u8]) -> bool {
    inspect::inspect(bytes).has_alpha.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_named_and_artifacts_served_by_what_they_are() {
        assert_eq!(extension_for(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "png");
        assert_eq!(extension_for(&[0xff, 0xd8, 0xff, 0xe0]), "jpg");
        assert_eq!(extension_for(b"RIFF\0\0\0\0WEBPVP8 "), "webp");
        assert_eq!(extension_for(b"GIF89a"), "gif");
        assert_eq!(extension_for(b"????"), "png");
        assert_eq!(content_type("png"), "image/png");
        assert_eq!(content_type("jpeg"), "image/jpeg");
        assert_eq!(content_type("webp"), "image/webp");
        assert_eq!(content_type("gif"), "image/gif");
        assert_eq!(content_type("bmp"), "application/octet-stream");
    }
}
