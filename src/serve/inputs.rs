//! The service's input rules for reference images and masks, in one place, applied before a
//! job is accepted: a bad input is a 400 naming its field, never a job that fails later.
//!
//! A reference is an upload (multipart), a data URL, an `http(s)` URL (passed through: the
//! backend fetches it) or a local path. Uploads, data URLs and local files are judged by their
//! bytes as the CLI judges them (PNG, JPEG, GIF or WebP by magic bytes; at most 50 MiB each, at
//! most 16 per job), then copied into `<data dir>/inputs/<job id>/`: the job reads that copy, so
//! what was checked is what is sent, and the stored request keeps only `{source, bytes,
//! sha256}` and the copy's path, never the data.
//!
//! Local paths are refused unless the service was started with `--allow-dir`; then the path's
//! real location (symlinks resolved) must be a regular file under one of those directories. A
//! path that is missing, outside them, or not a regular file (a FIFO, a device) gets the same
//! answer, so errors never tell whether something exists outside. The file is opened without
//! blocking and checked again on the open handle, so a file swapped for a FIFO between the
//! check and the read cannot stall a worker.

use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::ServeConfig;
use super::error::ApiError;
use super::files;
use crate::backend::mask;
use crate::backend::references::sniff_mime;
use crate::output::decode::sha256_hex;

/// The most bytes one reference (or mask) may have.
pub(crate) const MAX_INPUT_BYTES: u64 = 50 * 1024 * 1024;
/// The most references one job may have.
pub(crate) const MAX_REFERENCES: usize = 16;

/// A reference as the request gave it, not yet judged.
#[derive(Debug, Clone)]
pub(crate) enum Given {
    /// A path, an `http(s)` URL or a data URL.
    Text(String),
    /// The n-th uploaded file of a multipart request.
    Upload(usize),
}

/// A file of a multipart request.
#[derive(Debug)]
pub(crate) struct Upload {
    pub file_name: String,
    pub data: bytes::Bytes,
}

/// A judged input: what a job keeps, and (without `file`) what a job object shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Stored")]
pub(crate) struct Input {
    /// Where it came from: `upload:<name>`, `data:<media type>`, the URL or the path given.
    pub source: String,
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    /// The checked copy under `inputs/<job id>/` the job sends; none for an `http(s)` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// Rows written before inputs were judged at submission hold the reference text itself.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Input {
        source: String,
        bytes: Option<u64>,
        sha256: Option<String>,
        #[serde(default)]
        file: Option<String>,
    },
    Legacy(String),
}

impl From<Stored> for Input {
    fn from(stored: Stored) -> Self {
        match stored {
            Stored::Input {
                source,
                bytes,
                sha256,
                file,
            } => Input {
                source,
                bytes,
                sha256,
                file,
            },
            Stored::Legacy(text) => Input {
                source: text,
                bytes: None,
                sha256: None,
                file: None,
            },
        }
    }
}

impl Input {
    /// What the engine is given: the checked copy, else the URL (or a legacy row's text).
    pub(crate) fn reference(&self) -> &str {
        self.file.as_deref().unwrap_or(&self.source)
    }
}

/// A reference as JSON: a string (`/v1/jobs`), `{"image_url": ...}` (OpenAI's edits), or a
/// multipart upload's placeholder `{"upload": n}`.
pub(crate) fn given(param: &str, value: &Value) -> Result<Given, ApiError> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Ok(Given::Text(s.clone())),
        Value::Object(map) => match (map.get("image_url"), map.get("file_id"), map.get("upload")) {
            (Some(Value::String(url)), _, _) if !url.is_empty() => Ok(Given::Text(url.clone())),
            (_, Some(_), _) => Err(ApiError::invalid(
                param,
                "file_id references are not supported here: give image_url (an http(s) or data URL).",
            )),
            (_, _, Some(Value::Number(n))) if n.as_u64().is_some() => {
                Ok(Given::Upload(n.as_u64().unwrap_or_default() as usize))
            }
            _ => Err(ApiError::invalid(param, format!("'{param}' needs an image_url string."))),
        },
        _ => Err(ApiError::invalid(
            param,
            format!("Invalid type for '{param}': expected a path, a URL or {{\"image_url\": ...}}."),
        )
        .code("invalid_type")),
    }
}

/// True for an `http(s)://` URL (case-insensitive).
pub(crate) fn is_http(text: &str) -> bool {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Judge every reference and the mask, copying the accepted bytes into the job's inputs folder.
/// On an error the caller removes that folder.
pub(crate) fn prepare(
    config: &ServeConfig,
    job_id: &str,
    references: &[(String, Given)],
    mask: Option<&(String, Given)>,
    uploads: &[Upload],
) -> Result<(Vec<Input>, Option<Input>), ApiError> {
    if references.len() > MAX_REFERENCES {
        return Err(ApiError::invalid(
            "image",
            format!(
                "{} images given; at most {MAX_REFERENCES} are allowed.",
                references.len()
            ),
        ));
    }
    let dir = files::inputs_dir(&config.data_dir, job_id);
    let mut inputs = Vec::with_capacity(references.len());
    for (i, (param, given)) in references.iter().enumerate() {
        inputs.push(judge(
            config,
            &dir,
            &(i + 1).to_string(),
            param,
            given,
            uploads,
        )?);
    }
    let mask = match mask {
        Some((param, given)) => {
            let input = judge(config, &dir, "mask", param, given, uploads)?;
            if let Some(file) = &input.file {
                let bytes = std::fs::read(file).map_err(|e| server_error(&e))?;
                if let Some(reason) = mask::mask_problem(&bytes) {
                    return Err(ApiError::invalid(param, format!("'{param}': {reason}."))
                        .code("invalid_mask"));
                }
            }
            Some(input)
        }
        None => None,
    };
    Ok((inputs, mask))
}

fn judge(
    config: &ServeConfig,
    dir: &Path,
    stem: &str,
    param: &str,
    given: &Given,
    uploads: &[Upload],
) -> Result<Input, ApiError> {
    let (source, data) = match given {
        Given::Upload(n) => {
            let upload = uploads.get(*n).ok_or_else(|| {
                ApiError::invalid(param, format!("'{param}' needs an image_url string."))
            })?;
            let name: String = upload.file_name.chars().take(200).collect();
            (format!("upload:{name}"), upload.data.to_vec())
        }
        Given::Text(text) if is_http(text) => {
            return Ok(Input {
                source: text.clone(),
                bytes: None,
                sha256: None,
                file: None,
            })
        }
        Given::Text(text)
            if text
                .get(..5)
                .is_some_and(|p| p.eq_ignore_ascii_case("data:")) =>
        {
            data_url(param, text)?
        }
        Given::Text(text) if text.contains("://") => {
            let scheme = text.split("://").next().unwrap_or_default();
            return Err(ApiError::invalid(
                param,
                format!("'{param}': the URL scheme '{scheme}' is not supported; give an http(s) URL, a data URL or an upload."),
            )
            .code("invalid_value"));
        }
        Given::Text(path) => (path.clone(), local_file(config, param, path)?),
    };
    let size = data.len() as u64;
    if size == 0 {
        return Err(ApiError::invalid(param, format!("'{param}' is empty.")));
    }
    if size > MAX_INPUT_BYTES {
        return Err(ApiError::invalid(
            param,
            format!("'{param}' is {size} bytes; the most an image may have is 50 MiB."),
        )
        .code("image_too_large"));
    }
    if sniff_mime(&data, Path::new("")).is_none() {
        return Err(ApiError::invalid(
            param,
            format!("'{param}' is not an image: supported are PNG, JPEG, GIF and WebP."),
        )
        .code("invalid_image_format"));
    }
    std::fs::create_dir_all(dir).map_err(|e| server_error(&e))?;
    let file = dir.join(format!("{stem}.{}", files::extension_for(&data)));
    std::fs::write(&file, &data).map_err(|e| server_error(&e))?;
    Ok(Input {
        source,
        bytes: Some(size),
        sha256: Some(sha256_hex(&data)),
        file: Some(file.display().to_string()),
    })
}

fn server_error(e: &std::io::Error) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        format!("Cannot keep the input: {e}"),
    )
}

/// `data:<media type>;base64,<data>`: the source shown is `data:<media type>`.
fn data_url(param: &str, text: &str) -> Result<(String, Vec<u8>), ApiError> {
    let bad =
        |why: &str| ApiError::invalid(param, format!("'{param}': {why}")).code("invalid_value");
    let (head, b64) = text
        .split_once(',')
        .ok_or_else(|| bad("a data URL needs a comma before its data."))?;
    let media = head
        .get(5..)
        .and_then(|h| h.strip_suffix(";base64"))
        .ok_or_else(|| bad("a data URL must be base64 (data:image/png;base64,...)."))?;
    let compact: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let data = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| bad("the data URL is not valid base64."))?;
    let media: String = media.chars().take(100).collect();
    Ok((format!("data:{media}"), data))
}

/// The same answer for missing, outside, and not-a-regular-file.
fn refused_path(param: &str) -> ApiError {
    ApiError::invalid(
        param,
        format!("'{param}' is not a readable image file under a directory the service allows (--allow-dir)."),
    )
    .code("path_not_allowed")
}

fn local_file(config: &ServeConfig, param: &str, path: &str) -> Result<Vec<u8>, ApiError> {
    if config.allow_dirs.is_empty() {
        return Err(ApiError::invalid(
            param,
            format!("'{param}': local paths are refused; this service was started without --allow-dir. Upload the file or send a data URL."),
        )
        .code("path_not_allowed"));
    }
    let given = PathBuf::from(path);
    let real = given.canonicalize().map_err(|_| refused_path(param))?;
    if !config.allow_dirs.iter().any(|dir| real.starts_with(dir)) {
        return Err(refused_path(param));
    }
    read_regular(&real).ok_or_else(|| refused_path(param))
}

/// Read a regular file of at most [`MAX_INPUT_BYTES`] (+1, so a larger one is seen as such),
/// never blocking on a FIFO and never following a last-moment symlink.
fn read_regular(path: &Path) -> Option<Vec<u8>> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW);
    }
    let file = options.open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut data = Vec::new();
    file.take(MAX_INPUT_BYTES + 1).read_to_end(&mut data).ok()?;
    Some(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_are_decoded_and_named_by_their_media_type() {
        let (source, data) = data_url("image", "data:image/png;base64,iVBO Rw0K").unwrap();
        assert_eq!(source, "data:image/png");
        assert_eq!(&data[..4], b"\x89PNG");
        assert!(data_url("image", "data:image/png;base64,!!!").is_err());
        assert!(data_url("image", "data:image/png,abc").is_err());
    }

    #[test]
    fn stored_inputs_read_old_rows_too() {
        let old: Input = serde_json::from_value(serde_json::json!("https://x.test/a.png")).unwrap();
        assert_eq!(old.reference(), "https://x.test/a.png");
        let new: Input = serde_json::from_value(
            serde_json::json!({"source": "upload:a.png", "bytes": 3, "sha256": "00", "file": "/d/1.png"}),
        )
        .unwrap();
        assert_eq!(new.reference(), "/d/1.png");
        let shown = serde_json::to_value(Input { file: None, ..new }).unwrap();
        assert_eq!(
            shown,
            serde_json::json!({"source": "upload:a.png", "bytes": 3, "sha256": "00"})
        );
    }
}
