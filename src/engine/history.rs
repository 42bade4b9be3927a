//! Recording each finished image in the history ([`crate::output::history`]) — here, in the
//! engine, so every front-end records the same row without knowing about it.
//!
//! It runs after provenance, so a row describes the final file (its bytes and SHA-256 after
//! any embedding). A failure to record never fails the job: it is a `--verbose` line, because
//! a read-only or full data directory must not turn a good image into an error.

use super::shared::Engine;
use crate::auth::Auth;
use crate::backend::references::LoadedReference;
use crate::foundation::events::Reporter;
use crate::foundation::job::{JobResult, JobSpec};
use crate::output::history::NewImage;
use crate::output::metadata::redact_source;

impl Engine {
    pub(crate) fn record_history(
        &self,
        job: &JobSpec,
        result: &JobResult,
        references: &[LoadedReference],
        auth: &Auth,
        progress: &Reporter,
    ) {
        let Some(history) = self.inner().history.as_ref() else {
            return;
        };
        let account = auth
            .email
            .clone()
            .filter(|e| !e.is_empty())
            .or_else(|| Some(auth.account_id.clone()).filter(|a| !a.is_empty()));
        let references: Vec<(String, Option<String>)> = references
            .iter()
            .map(|r| (redact_source(&r.source), r.sha256.clone()))
            .collect();
        let requested = job.controls.requested_json();
        let created_ms = chrono::Utc::now().timestamp_millis();
        crate::foundation::blocking::run(|| {
            for image in result.images.iter().filter(|i| i.partial != Some(true)) {
                let path = std::fs::canonicalize(&image.path).unwrap_or(image.path.clone());
                let row = NewImage {
                    created_ms,
                    path: path.display().to_string(),
                    prompt: job.prompt.clone(),
                    revised_prompt: image.revised_prompt.clone(),
                    requested: requested.clone(),
                    format: image.format.clone(),
                    width: image.width,
                    height: image.height,
                    has_alpha: image.has_alpha,
                    c2pa: image.c2pa,
                    sha256: image.sha256.clone(),
                    bytes: image.bytes as u64,
                    model: Some(job.model.clone()),
                    backend: Some(job.backend.as_str().to_string()),
                    references: references.clone(),
                    account: account.clone(),
                };
                if let Err(e) = history.record(&row) {
                    progress.verbose(&format!("codex-imagen: not recorded in the history: {e}"));
                }
            }
        });
    }
}
