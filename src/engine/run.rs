//! One job end to end (SPEC §14): prepare auth → load references and the mask → attempts with
//! retries ([`super::generation`]) → on a 401, one refresh ("if the token is still the one I
//! used") and one more round → provenance → the unmet-request warning.
//!
//! Before any of that costs anything, the output directory is checked ([`Engine::check_output`]):
//! created, and a probe file created and removed in it. `run` checks before auth (so not even
//! a token refresh happens for a job that could not save its image) once the job has a prompt,
//! and `run_prepared` checks again, for front-ends that prepare auth themselves.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::generation::{self, Generation};
use super::provenance;
use super::shared::Engine;
use crate::auth::refresh::{still_unauthorized_message, REASON_BACKEND_401};
use crate::auth::{Auth, AuthContext, Fallback, PreparedAuth, RefreshOutcome};
use crate::backend::references;
use crate::foundation::error::{Error, Result};
use crate::foundation::events::{EventSink, Reporter};
use crate::foundation::job::{JobResult, JobSpec, RefreshReport, SavedImage};
use crate::foundation::paths::Environment;
use crate::output::naming::OutputPlan;
use crate::output::probe;

impl Engine {
    /// Run one job to its end. When `cancel` fires, the job stops at once (its request is
    /// dropped, its locks released) and returns [`Error::Cancelled`]; images saved before that
    /// stay on disk and were reported as `ImageSaved` events.
    pub async fn run(
        &self,
        job: JobSpec,
        sink: Arc<dyn EventSink>,
        cancel: CancellationToken,
    ) -> Result<JobResult> {
        let progress = Reporter::new(sink);
        let work = async {
            if let Some(pool) = &self.inner().pool {
                if !job.prompt.trim().is_empty() {
                    self.check_output(&job, None)?;
                }
                return self.run_on_pool(pool, &job, &progress, true).await;
            }
            let ctx = self.auth().context()?;
            if !job.prompt.trim().is_empty() {
                // A blank prompt stays the usage error `run_prepared` reports.
                self.check_output(&job, None)?;
            }
            let prepared = self
                .auth()
                .prepare(&ctx, job.force_refresh, Fallback::Allowed, &progress)
                .await?;
            let result = self.run_prepared(&ctx, prepared, &job, &progress).await;
            if let Err(err) = &result {
                self.note_failure(err);
            }
            result
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(Error::Cancelled("Cancelled before the job finished.".into())),
            result = work => result,
        }
    }

    /// A job whose credentials are ready (the CLI prepares them before it reads the prompt).
    pub(crate) async fn run_prepared(
        &self,
        ctx: &AuthContext,
        prepared: PreparedAuth,
        job: &JobSpec,
        progress: &Reporter,
    ) -> Result<JobResult> {
        job.require_prompt()?;
        self.check_output(job, None)?;
        let PreparedAuth {
            mut auth,
            mut refresh,
        } = prepared;
        let loaded = crate::foundation::blocking::run(|| {
            references::load_all(&job.references, &self.inner().env, &job.base_dir, progress)
        })?;
        let mask = match job.mask.as_deref() {
            Some(mask) => Some(crate::foundation::blocking::run(|| {
                load_mask(mask, job, &self.inner().env)
            })?),
            None => None,
        };
        let mut generation =
            Generation::new(self, ctx, job, &auth, &loaded, mask, progress.clone());
        let mut result = match generation.run_with_retries().await {
            Err(Error::Http { status: 401, .. }) if self.auth().settings().refresh => {
                // The backend rejected a token we thought valid: refresh it unless another job
                // already did, then one more round.
                let used = generation.auth.clone();
                let (fresh, outcome) = self
                    .auth()
                    .refresh(ctx, &used, REASON_BACKEND_401, progress)
                    .await?;
                auth = fresh;
                refresh = Some(outcome);
                generation.auth = auth.clone();
                match generation.run_with_retries().await {
                    Err(Error::Http {
                        status: 401,
                        message,
                        usage_limit,
                        retry_after_secs,
                    }) => {
                        return Err(Error::Http {
                            status: 401,
                            message: still_unauthorized_message(&auth, &message),
                            usage_limit,
                            retry_after_secs,
                        })
                    }
                    other => other?,
                }
            }
            other => other?,
        };
        result.refresh = refresh.map(|outcome| refresh_report(&outcome, &auth));
        provenance::apply(job, &mut result, &loaded, progress)?;
        self.record_history(job, &result, &loaded, &auth, progress);
        if let Some(warning) = generation::unmet_request_with(
            &job.controls,
            &result.images,
            result.response_metadata.as_ref(),
        ) {
            progress.warn(&warning);
        }
        Ok(result)
    }
}

impl Engine {
    /// Check before paying: the directory `job` saves its images in is created and can be
    /// written (a probe file is created and removed), or the job fails now with the path and
    /// the operating system's reason, before any request. `field` names the flag or field that
    /// chose the directory, for front-ends that know it.
    pub(crate) fn check_output(&self, job: &JobSpec, field: Option<&str>) -> Result<()> {
        let dir = self.output_plan(job).directory();
        crate::foundation::blocking::run(|| probe::check_writable(&dir)).map_err(|err| {
            let named = field.map(|f| format!(" ({f})")).unwrap_or_default();
            Error::Io(format!(
                "Cannot write images to {}{named}: {err}. Nothing was sent.",
                dir.display()
            ))
        })
    }

    /// The images an interrupted run of `job` already saved under its stable names (an exact
    /// output file, or batch's `<id>-<k>.<ext>`), each decoded whole; empty when there are
    /// none, or when the job asks for partial images (a preview may sit under the final
    /// name). Blocking: reads and decodes every file found.
    pub(crate) fn saved_images(&self, job: &JobSpec) -> Vec<SavedImage> {
        if job.controls.partial_images.unwrap_or(0) > 0 {
            // What is on disk may be a preview the final image never replaced.
            return Vec::new();
        }
        crate::output::adopt::saved_images(&self.output_plan(job))
    }

    fn output_plan(&self, job: &JobSpec) -> OutputPlan {
        let env = self.inner().env.clone().with_cwd(job.base_dir.clone());
        OutputPlan::new(job.output.clone(), job.out_dir.clone(), &env)
            .with_naming(job.naming.clone())
    }
}

/// The mask as a `data:` URL. It is read here, after auth, like the references (SPEC §14); a
/// file that cannot be used is an input error naming it.
fn load_mask(mask: &str, job: &JobSpec, env: &Environment) -> Result<String> {
    if job.references.is_empty() {
        // Front-ends other than the CLI reach this without its validation.
        return Err(Error::Usage(
            "--mask needs at least one reference image (--image or --image-url)".into(),
        ));
    }
    let path = env.clone().with_cwd(job.base_dir.clone()).resolve(mask);
    let bytes = std::fs::read(&path)
        .map_err(|e| Error::Input(format!("Cannot read --mask {}: {e}", path.display())))?;
    crate::backend::mask::mask_data_url(&bytes, &path.display().to_string())
        .map_err(|e| Error::Input(e.to_string()))
}

pub(crate) fn refresh_report(outcome: &RefreshOutcome, auth: &Auth) -> RefreshReport {
    RefreshReport {
        refreshed: outcome.refreshed,
        skipped: outcome.skipped.clone(),
        last_refresh: auth.last_refresh.clone(),
        access_token_expires_in_seconds: auth.reported_seconds_left(),
    }
}
