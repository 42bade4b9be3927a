//! Provenance (`--metadata none|sidecar|embed`), applied to each saved image once its job has
//! succeeded, so the record describes the final file rather than a streamed preview.
//!
//! - `sidecar` writes `<image>.json` beside the image, atomically, after the image.
//! - `embed` puts the prompt (`Description`), `Software` and the same record into the file
//!   itself ([`super::metadata::embed`]). An image that carries a C2PA manifest is never
//!   touched (any byte change breaks its signature): it gets the sidecar instead, with a
//!   warning; so does an image whose format cannot carry the record.
//!
//! `bytes` and `sha256` of each `SavedImage` describe the file on disk afterwards; the record's
//! own `sha256` is that of the image as generated (a file cannot contain its own digest).

use std::path::Path;

use crate::backend::references::LoadedReference;
use crate::foundation::error::{Error, Result};
use crate::foundation::events::Reporter;
use crate::foundation::job::SavedImage;
use crate::foundation::job::{JobResult, JobSpec, MetadataMode};
use crate::output::atomic::write_atomic;
use crate::output::decode::sha256_hex;
use crate::output::embed::embed;
use crate::output::metadata::{sidecar_record, Embedded, RecordInput, ReferenceInput};
use crate::output::sidecar::write_sidecar;

/// Write the provenance `job.metadata` asks for, for every image of `result`.
pub(crate) fn apply(
    job: &JobSpec,
    result: &mut JobResult,
    references: &[LoadedReference],
    progress: &Reporter,
) -> Result<()> {
    if job.metadata == MetadataMode::None {
        return Ok(());
    }
    let inputs: Vec<ReferenceInput<'_>> = references
        .iter()
        .map(|r| ReferenceInput {
            source: &r.source,
            sha256: r.sha256.as_deref(),
        })
        .collect();
    let requested = job.controls.requested_json();
    let created = chrono::Utc::now();
    let request_id = result.request_id.clone();
    for image in &mut result.images {
        let record = sidecar_record(&RecordInput {
            prompt: &job.prompt,
            revised_prompt: image.revised_prompt.as_deref(),
            model: &job.model,
            image_model: job.controls.image_model.as_deref(),
            backend: job.backend.as_str(),
            request_id: &request_id,
            call_id: image.call_id.as_deref(),
            created,
            references: &inputs,
            requested: &requested,
            format: image.format.as_deref(),
            width: image.width,
            height: image.height,
            sha256: &image.sha256,
            tool_version: env!("CARGO_PKG_VERSION"),
        });
        crate::foundation::blocking::run(|| match job.metadata {
            MetadataMode::None => Ok(()),
            MetadataMode::Sidecar => sidecar(&image.path, &record, progress),
            MetadataMode::Embed => embed_or_sidecar(job, image, &record, progress),
        })?;
    }
    Ok(())
}

fn sidecar(image: &Path, record: &serde_json::Value, progress: &Reporter) -> Result<()> {
    let path = write_sidecar(image, record).map_err(|e| Error::Io(e.to_string()))?;
    progress.verbose(&format!("metadata: wrote {}", path.display()));
    Ok(())
}

fn embed_or_sidecar(
    job: &JobSpec,
    image: &mut SavedImage,
    record: &serde_json::Value,
    progress: &Reporter,
) -> Result<()> {
    let bytes = std::fs::read(&image.path)
        .map_err(|e| Error::io(format!("Cannot read {}", image.path.display()), e))?;
    let format = image.format.as_deref().unwrap_or("png");
    let software = format!("codex-imagen {}", env!("CARGO_PKG_VERSION"));
    let record_json = record.to_string();
    match embed(&bytes, format, &job.prompt, &software, &record_json) {
        Ok(Embedded::Image(embedded)) => {
            write_atomic(&image.path, &embedded)?;
            image.bytes = embedded.len();
            image.sha256 = sha256_hex(&embedded);
            progress.verbose(&format!("metadata: embedded in {}", image.path.display()));
            Ok(())
        }
        Ok(Embedded::RefusedC2pa) => {
            progress.warn(&format!(
                "codex-imagen: warning: {} carries a C2PA manifest; metadata written to a sidecar instead of embedded, so its signature stays valid",
                image.path.display()
            ));
            sidecar(&image.path, record, progress)
        }
        Err(err) => {
            progress.warn(&format!(
                "codex-imagen: warning: {err}; metadata written to a sidecar for {}",
                image.path.display()
            ));
            sidecar(&image.path, record, progress)
        }
    }
}
