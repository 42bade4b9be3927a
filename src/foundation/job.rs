//! What one job is: an owned, serialisable [`JobSpec`] (so front-ends can persist and forward
//! it), and what a finished job returns ([`JobResult`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::controls::ImageControls;

/// Which backend endpoint a job talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// `POST /responses` with the hosted `image_generation` tool (the default).
    #[default]
    Responses,
    /// The typed `POST /images/generations` and `/images/edits` endpoints.
    Images,
    /// The Images route first, `/responses` once when that route fails as a route
    /// (`engine/route.rs`).
    Auto,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Responses => "responses",
            Backend::Images => "images",
            Backend::Auto => "auto",
        }
    }
}

/// A reference image as given, before it is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// A local file; a relative path resolves against the job's `base_dir`.
    Path(String),
    /// An `http(s)://` or `data:image/...` URL, sent as it is.
    Url(String),
}

impl Reference {
    /// How `--input-ref` reads a value: a URL by its prefix, anything else a path.
    pub fn classify(item: &str) -> Reference {
        if super::url::is_url(item) {
            Reference::Url(item.to_string())
        } else {
            Reference::Path(item.to_string())
        }
    }
}

pub const DEFAULT_RESPONSES_MODEL: &str = "gpt-5.4";
pub const DEFAULT_IMAGES_MODEL: &str = "gpt-image-2";
pub const DEFAULT_RETRIES: u32 = 4;
/// The longest prompt the service and the MCP tools take, in characters: one cap for both.
pub(crate) const MAX_PROMPT_CHARS: usize = 32_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 15 * 60 * 1000;

/// How automatic file names are made (when there is no exact `output` file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Naming {
    /// The SPEC's names: `codex-imagen-<UTC time>-<n>-<call id>.<ext>` (the one-shot CLI).
    #[default]
    Spec,
    /// `<stem>-<k>.<ext>`, k = 1, 2, …: stable across reruns (batch jobs by id).
    Stem(String),
    /// `<k>.<ext>` (the service's `artifacts/<job id>/`).
    Index,
}

/// One generation or edit, fully described: nothing about it is read from process state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    pub prompt: String,
    /// Reference images, in the order given.
    pub references: Vec<Reference>,
    /// `input_image` detail: auto, low, high, original.
    pub image_detail: String,
    /// An exact output file, or a directory (as `--output`); `None`: automatic names in
    /// `out_dir`.
    pub output: Option<String>,
    pub out_dir: PathBuf,
    /// Relative paths of this job (references, `output`) resolve against it.
    pub base_dir: PathBuf,
    pub backend: Backend,
    /// The Responses model (or the Images model with `Backend::Images`).
    pub model: String,
    /// Transient failures are tried again this many times.
    pub retries: u32,
    /// Each attempt is abandoned after this long.
    pub timeout_ms: u64,
    /// Stream the Responses answer (false: one JSON response).
    pub stream: bool,
    /// Refresh the credentials before the first attempt even when they look fresh.
    pub force_refresh: bool,
    /// Automatic file names.
    #[serde(default)]
    pub naming: Naming,
    /// Provenance written for each image (`--metadata`).
    #[serde(default)]
    pub metadata: MetadataMode,
    /// Image controls (size, quality, format, ...); only the ones given are sent. A default
    /// keeps old serialised jobs loadable.
    #[serde(default)]
    pub controls: ImageControls,
    /// A PNG mask with alpha for an edit of the first reference; a relative path resolves
    /// against `base_dir`. Read when the job runs, after auth.
    #[serde(default)]
    pub mask: Option<String>,
}

impl JobSpec {
    /// A job needs a prompt that is not blank: the same usage error for every front-end.
    pub(crate) fn require_prompt(&self) -> crate::foundation::error::Result<()> {
        if self.prompt.trim().is_empty() {
            return Err(crate::foundation::error::Error::Usage(
                "Prompt is required. Pass it positionally, with --prompt, or with --prompt-file."
                    .into(),
            ));
        }
        Ok(())
    }

    /// A job with the CLI's defaults.
    pub fn new(prompt: impl Into<String>, out_dir: PathBuf, base_dir: PathBuf) -> Self {
        JobSpec {
            prompt: prompt.into(),
            references: Vec::new(),
            image_detail: "high".to_string(),
            output: None,
            out_dir,
            base_dir,
            backend: Backend::Responses,
            model: DEFAULT_RESPONSES_MODEL.to_string(),
            retries: DEFAULT_RETRIES,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            stream: true,
            force_refresh: false,
            naming: Naming::Spec,
            metadata: MetadataMode::None,
            controls: ImageControls::default(),
            mask: None,
        }
    }
}

/// What a refresh during the job did, with the credentials' state after it (`auth_refresh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshReport {
    pub refreshed: bool,
    pub skipped: Option<String>,
    pub last_refresh: Option<String>,
    pub access_token_expires_in_seconds: Option<i64>,
}

/// A finished job (SPEC §14).
#[derive(Debug, Clone)]
pub struct JobResult {
    pub request_id: String,
    pub session_id: String,
    pub endpoint: String,
    pub operation: String,
    pub model: String,
    /// Every image saved, in order; all are complete files on disk.
    pub images: Vec<SavedImage>,
    pub seen_event_types: Vec<String>,
    /// The attempt's timer fired after at least one image was saved.
    pub timed_out: bool,
    pub response_metadata: Option<Value>,
    /// Attempts before the one that succeeded.
    pub retry_attempts: u32,
    /// Set when the credentials were refreshed (or a refresh was found unnecessary).
    pub refresh: Option<RefreshReport>,
    /// With `--pool`: the account that made the images (email or redacted account id).
    pub account: Option<String>,
    /// With `--backend auto`: the route that made the images (`images` or `responses`).
    pub route: Option<String>,
    /// With `--backend auto`: why the job is on `/responses` (a route failure, or a control only
    /// that route has); `None` when it stayed on the Images route.
    pub route_fallback: Option<String>,
}

/// One saved image, as reported in the JSON summary (SPEC §9.4).
#[derive(Debug, Clone, PartialEq)]
pub struct SavedImage {
    pub path: PathBuf,
    pub bytes: usize,
    pub sha256: String,
    pub call_id: Option<String>,
    pub status: Option<String>,
    pub partial: Option<bool>,
    pub revised_prompt: Option<String>,
    /// What the bytes are, read from them (not what was asked for): `png`, `jpeg`, `webp`, or
    /// `None` when unrecognised.
    pub format: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub has_alpha: Option<bool>,
    /// The file carries a C2PA manifest (content credentials).
    pub c2pa: bool,
    /// Where the image was meant to go when it could not be written there after it arrived
    /// (a full disk, a folder replaced mid-run): it was kept at `path`, under the data
    /// directory's `rescued/`, instead. `None` for an image saved where it was meant to go.
    pub rescued_from: Option<PathBuf>,
}

/// Provenance, `--metadata none|sidecar|embed` (written by `output/provenance.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataMode {
    /// Default: nothing beyond the image, as before this feature existed.
    #[default]
    None,
    Sidecar,
    Embed,
}

impl MetadataMode {
    pub(crate) fn parse(value: &str) -> Result<Self, BadMetadataMode> {
        match value.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "sidecar" => Ok(Self::Sidecar),
            "embed" => Ok(Self::Embed),
            _ => Err(BadMetadataMode),
        }
    }

    #[cfg(test)]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Sidecar => "sidecar",
            Self::Embed => "embed",
        }
    }
}

/// A `--metadata` value that is not one of the modes.
#[derive(Debug, thiserror::Error)]
#[error("--metadata must be one of: none, sidecar, embed")]
pub(crate) struct BadMetadataMode;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(MetadataMode::parse("embed").unwrap(), MetadataMode::Embed);
        assert_eq!(
            MetadataMode::parse("Sidecar").unwrap(),
            MetadataMode::Sidecar
        );
        assert_eq!(MetadataMode::default().as_str(), "none");
        assert_eq!(
            MetadataMode::parse("file").unwrap_err().to_string(),
            "--metadata must be one of: none, sidecar, embed"
        );
    }
}
