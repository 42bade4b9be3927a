//! One job end to end (SPEC §14): prepare auth → load references and the mask → attempts with
//! retries ([`super::generation`]) → on a 401, one refresh ("if the token is still the one I
//! used") and one more round → provenance → the unmet-request warning.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::generation::{self, Generation};
use super::provenance;
use super::shared::Engine;
use crate::auth::refresh::REASON_BACKEND_401;
use crate::auth::{Auth, AuthContext, Fallback, PreparedAuth, RefreshOutcome};
use crate::backend::references;
use crate::foundation::error::{Error, Result};
use crate::foundation::events::{EventSink, Reporter};
use crate::foundation::job::{JobResult, JobSpec, RefreshReport};
use crate::foundation::paths::Environment;

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
                return self.run_on_pool(pool, &job, &progress).await;
            }
            let ctx = self.auth().context()?;
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
                generation.run_with_retries().await?
            }
            other => other?,
        };
        result.refresh = refresh.map(|outcome| refresh_report(&outcome, &auth));
        provenance::apply(job, &mut result, &loaded, progress)?;
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
