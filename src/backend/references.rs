//! Reference images (SPEC §10.1): local files become `data:` URLs with a sniffed MIME type,
//! URLs are checked and passed through. Local files come first, then URLs, each in flag order.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use std::path::Path;

use crate::foundation::error::{Error, Result};
use crate::foundation::events::Reporter;
use crate::foundation::job::Reference;
use crate::foundation::paths::Environment;
use crate::foundation::url::is_url;

const LARGE_DATA_URL_BYTES: usize = 15 * 1024 * 1024;

/// A reference ready to send.
#[derive(Debug, Clone)]
pub struct LoadedReference {
    pub image_url: String,
    /// What `--verbose` says about it.
    pub description: String,
    /// Where it came from (a resolved local path or the URL), for provenance records.
    pub source: String,
    /// Hex SHA-256 of its bytes when the tool read them (local files, `data:` URLs).
    pub sha256: Option<String>,
}

/// PNG, JPEG, GIF and WebP by magic bytes, else by extension.
pub fn sniff_mime(bytes: &[u8], path: &std::path::Path) -> Option<&'static str> {
    if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]) {
        return Some("image/png");
    }
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        return Some("image/jpeg");
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Some("image/gif");
    }
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    let ext = path.extension()?.to_string_lossy().to_ascii_lowercase();
    match ext.as_str() {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        _ => None,
    }
}

fn load_path(raw: &str, env: &Environment, progress: &Reporter) -> Result<LoadedReference> {
    let path = env.resolve(raw);
    let bytes = std::fs::read(&path).map_err(|e| {
        // `ftp://x/y.png` is no path anyone meant: say what it is (a file by that name still
        // wins, as it was read above).
        if let Some(scheme) = crate::foundation::url::unsupported_scheme(raw) {
            return Error::Input(crate::foundation::url::unsupported_message(
                "reference image",
                raw,
                &scheme,
            ));
        }
        Error::Input(format!(
            "Cannot read reference image {}: {e}",
            path.display()
        ))
    })?;
    let mime = sniff_mime(&bytes, &path).ok_or_else(|| {
        Error::Input(format!(
            "Unsupported image format for {}. Supported: PNG, JPEG, GIF, WebP.",
            path.display()
        ))
    })?;
    let image_url = format!("data:{mime};base64,{}", STANDARD.encode(&bytes));
    if image_url.len() > LARGE_DATA_URL_BYTES {
        progress.info(&format!(
            "codex-imagen: warning: reference image is large after base64 ({} bytes): {}",
            image_url.len(),
            path.display()
        ));
    }
    Ok(LoadedReference {
        description: format!("{}, {mime}, {} bytes", path.display(), bytes.len()),
        image_url,
        source: path.display().to_string(),
        sha256: Some(crate::output::decode::sha256_hex(&bytes)),
    })
}

fn load_url(url: &str, progress: &Reporter) -> Result<LoadedReference> {
    if !is_url(url) {
        return Err(Error::Input(format!(
            "--image-url must be http(s) or data:image URL: {url}"
        )));
    }
    if url.len() > LARGE_DATA_URL_BYTES {
        progress.info(&format!(
            "codex-imagen: warning: reference image URL is large ({} bytes)",
            url.len()
        ));
    }
    let is_data = url
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("data:"));
    let sha256 = is_data
        .then(|| url.split_once(";base64,"))
        .flatten()
        .and_then(|(_, data)| STANDARD.decode(data.trim()).ok())
        .map(|bytes| crate::output::decode::sha256_hex(&bytes));
    Ok(LoadedReference {
        description: if is_data {
            "data:image/...".to_string()
        } else {
            url.to_string()
        },
        image_url: url.to_string(),
        source: url.to_string(),
        sha256,
    })
}

/// Read every reference once per run; attempts reuse the result. Relative paths resolve against
/// `base_dir`, `~` against the engine's home directory.
pub fn load_all(
    references: &[Reference],
    env: &Environment,
    base_dir: &Path,
    progress: &Reporter,
) -> Result<Vec<LoadedReference>> {
    let env = env.clone().with_cwd(base_dir.to_path_buf());
    let mut loaded = Vec::with_capacity(references.len());
    for reference in references {
        if let Reference::Path(p) = reference {
            loaded.push(load_path(p, &env, progress)?);
        }
    }
    for reference in references {
        if let Reference::Url(u) = reference {
            loaded.push(load_url(u, progress)?);
        }
    }
    if !loaded.is_empty() {
        progress.info(&format!(
            "codex-imagen: attached {} reference image(s)",
            loaded.len()
        ));
        for (i, r) in loaded.iter().enumerate() {
            progress.verbose(&format!("reference {}: {}", i + 1, r.description));
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn magic_bytes_win_over_extension() {
        let png = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0];
        assert_eq!(sniff_mime(&png, Path::new("x.jpg")), Some("image/png"));
        assert_eq!(
            sniff_mime(b"\xff\xd8\xff\xe0", Path::new("x")),
            Some("image/jpeg")
        );
        assert_eq!(sniff_mime(b"GIF89a..", Path::new("x")), Some("image/gif"));
        assert_eq!(
            sniff_mime(b"RIFF\0\0\0\0WEBPVP8 ", Path::new("x")),
            Some("image/webp")
        );
        assert_eq!(
            sniff_mime(b"hello", Path::new("x.JPEG")),
            Some("image/jpeg")
        );
        assert_eq!(sniff_mime(b"hello", Path::new("x.txt")), None);
    }
}
