//! Where a job's files live and what they are.
//!
//! Artifacts are `<data dir>/artifacts/<job id>/<k>.<ext>`; uploaded edit inputs are kept apart
//! in `<data dir>/inputs/<job id>/` so the artifacts folder holds only results. What an image
//! is (format, size, alpha) is read from its first bytes rather than trusted from the request,
//! because the answer must describe what actually came back.

use std::io::Read;
use std::path::{Path, PathBuf};

pub(crate) fn artifacts_dir(data_dir: &Path, job_id: &str) -> PathBuf {
    data_dir.join("artifacts").join(job_id)
}

pub(crate) fn inputs_dir(data_dir: &Path, job_id: &str) -> PathBuf {
    data_dir.join("inputs").join(job_id)
}

/// What an image file turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe {
    pub format: &'static str,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub has_alpha: bool,
}

pub(crate) fn content_type(format: &str) -> &'static str {
    match format {
        "png" => "image/png",
        "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        _ => "application/octet-stream",
    }
}

/// The extension for an upload of `content_type` or with these first bytes.
pub(crate) fn extension_for(head: &[u8]) -> &'static str {
    match probe_bytes(head).format {
        "jpeg" => "jpg",
        "webp" => "webp",
        "gif" => "gif",
        _ => "png",
    }
}

/// Read the header of the file at `path`.
pub(crate) fn probe(path: &Path) -> Probe {
    let mut head = Vec::with_capacity(64 * 1024);
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(64 * 1024).read_to_end(&mut head);
    }
    probe_bytes(&head)
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]) as u32)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le16(b: &[u8], at: usize) -> Option<u32> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]) as u32)
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        0,
    ]))
}

pub(crate) fn probe_bytes(b: &[u8]) -> Probe {
    let unknown = |format| Probe {
        format,
        width: None,
        height: None,
        has_alpha: false,
    };
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        // IHDR is always first: width, height, bit depth, colour type (4 and 6 carry alpha).
        let alpha = matches!(b.get(25), Some(4) | Some(6));
        return Probe {
            format: "png",
            width: be32(b, 16),
            height: be32(b, 20),
            has_alpha: alpha,
        };
    }
    if b.starts_with(&[0xff, 0xd8]) {
        return jpeg(b).unwrap_or_else(|| unknown("jpeg"));
    }
    if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        return webp(b).unwrap_or_else(|| unknown("webp"));
    }
    if b.starts_with(b"GIF8") {
        return unknown("gif");
    }
    unknown("png")
}

fn jpeg(b: &[u8]) -> Option<Probe> {
    let mut at = 2;
    while at + 9 < b.len() {
        if b[at] != 0xff {
            return None;
        }
        let marker = b[at + 1];
        let len = be16(b, at + 2)? as usize;
        // SOF0..SOF15 except DHT (c4), JPG (c8) and DAC (cc) carry the frame size.
        if (0xc0..=0xcf).contains(&marker) && ![0xc4, 0xc8, 0xcc].contains(&marker) {
            return Some(Probe {
                format: "jpeg",
                height: be16(b, at + 5),
                width: be16(b, at + 7),
                has_alpha: false,
            });
        }
        at += 2 + len;
    }
    None
}

fn webp(b: &[u8]) -> Option<Probe> {
    let chunk = b.get(12..16)?;
    let (width, height, alpha) = match chunk {
        b"VP8X" => (
            le24(b, 24)? + 1,
            le24(b, 27)? + 1,
            b.get(20).is_some_and(|f| f & 0x10 != 0),
        ),
        b"VP8L" => {
            let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
            (
                (bits & 0x3fff) + 1,
                ((bits >> 14) & 0x3fff) + 1,
                bits & (1 << 28) != 0,
            )
        }
        b"VP8 " => (le16(b, 26)? & 0x3fff, le16(b, 28)? & 0x3fff, false),
        _ => return None,
    };
    Some(Probe {
        format: "webp",
        width: Some(width),
        height: Some(height),
        has_alpha: alpha,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_header() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&1024u32.to_be_bytes());
        png.extend_from_slice(&1536u32.to_be_bytes());
        png.extend_from_slice(&[8, 6, 0, 0, 0]);
        let p = probe_bytes(&png);
        assert_eq!(
            (p.format, p.width, p.height, p.has_alpha),
            ("png", Some(1024), Some(1536), true)
        );
        assert_eq!(content_type(p.format), "image/png");
    }

    #[test]
    fn jpeg_header() {
        let jpg = [
            0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0xff, 0xc0, 0, 17, 8, 0, 20, 0, 30, 3, 0, 0,
        ];
        let p = probe_bytes(&jpg);
        assert_eq!((p.format, p.width, p.height), ("jpeg", Some(30), Some(20)));
    }
}
