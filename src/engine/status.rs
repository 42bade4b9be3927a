//! What every front-end says about the credentials in use: the `--smoke` report, also the MCP
//! `auth_status` tool and the service's `/health`. Redacted by construction: it names the store,
//! the profile and the expiry, never a token.

use serde_json::{json, Value};

use super::shared::Engine;
use crate::auth::fence::CredentialState;
use crate::auth::refresh::{still_unauthorized_message, REASON_BACKEND_401};
use crate::auth::{Auth, Fallback};
use crate::backend::request;
use crate::foundation::error::{Error, Result};
use crate::foundation::events::{EventSink, Reporter};
use crate::foundation::job::{Backend, JobSpec};
use std::sync::Arc;
use std::time::Duration;

/// Milliseconds as a JSON number of seconds (3 decimals), an integer when it is one (`300`).
pub(crate) fn seconds_value(ms: u64) -> Value {
    let secs = (ms as f64 / 1000.0 * 1000.0).round() / 1000.0;
    if secs.fract() == 0.0 {
        json!(secs as u64)
    } else {
        json!(secs)
    }
}

/// The `--smoke` report for `auth`, with the job settings `job` would run with (SPEC §14).
pub(crate) fn smoke_report(base_url: &str, user_agent: &str, auth: &Auth, job: &JobSpec) -> Value {
    let responses = format!("{base_url}/responses");
    let generation = format!("{base_url}/images/generations");
    let endpoint = match job.backend {
        Backend::Responses => responses.clone(),
        Backend::Images | Backend::Auto => generation.clone(),
    };
    json!({
        "auth_path": auth.path.display().to_string(),
        "auth_format": auth.format.as_str(),
        "auth_mode": auth.auth_mode,
        "profile_id": auth.profile_id,
        "provider": auth.provider,
        "email": auth.email,
        "account_id": auth.account_id,
        "last_refresh": auth.last_refresh,
        "access_token_expires_in_seconds": auth.reported_seconds_left(),
        "refresh_token_present": auth.refresh_token_present(),
        "backend": job.backend.as_str(),
        "endpoint": endpoint,
        "responses_endpoint": responses,
        "generation_endpoint": generation,
        "edit_endpoint": format!("{base_url}/images/edits"),
        "model": job.model,
        "user_agent": user_agent,
        "out_dir": job.out_dir.display().to_string(),
        "retries": job.retries,
        "total_attempts": job.retries + 1,
        "timeout_seconds": seconds_value(job.timeout_ms),
        "timeout_ms": job.timeout_ms,
        "credential_state": CredentialState::of(auth).as_str(),
    })
}

/// How long `--usage` waits for the backend's answer.
const USAGE_TIMEOUT: Duration = Duration::from_secs(60);

impl Engine {
    /// The `--smoke` report: which store and profile `job` would use and the state of its
    /// credentials, as a JSON object. Reads the first store only; no network, never a token.
    pub async fn auth_status(&self, job: &JobSpec) -> Result<serde_json::Value> {
        let ctx = self.auth().context()?;
        let auth = crate::foundation::blocking::run(|| ctx.read(&ctx.path))?;
        Ok(self.smoke_report(&auth, job))
    }

    /// The `--usage` report: the plan and its quota windows, as a JSON object (`plan_type`,
    /// `allowed`, `limit_reached`, `primary`, `secondary`). Costs no image quota.
    pub async fn usage(&self, sink: Arc<dyn EventSink>) -> Result<serde_json::Value> {
        let progress = Reporter::new(sink);
        Ok(crate::backend::usage::to_json(
            &self.usage_report(&progress).await?,
        ))
    }

    /// `GET <base without /codex>/wham/usage` with fresh credentials; a 401 refreshes once.
    pub(crate) async fn usage_report(
        &self,
        progress: &Reporter,
    ) -> Result<crate::backend::usage::Usage> {
        let ctx = self.auth().context()?;
        let (body, url) = self.usage_body(&ctx, Fallback::Allowed, progress).await?;
        crate::backend::usage::parse(&body, chrono::Utc::now())
            .map_err(|e| Error::BadResponse(format!("{e} (from {url})")))
    }

    /// The `wham/usage` answer for the credentials of `ctx`, and the URL asked.
    pub(crate) async fn usage_body(
        &self,
        ctx: &crate::auth::AuthContext,
        fallback: Fallback,
        progress: &Reporter,
    ) -> Result<(String, String)> {
        use crate::backend::usage;
        let ctx = ctx.clone();
        let prepared = self.auth().prepare(&ctx, false, fallback, progress).await?;
        let url = usage::usage_url(&self.inner().base_url);
        let mut auth = prepared.auth;
        let mut refreshed = false;
        loop {
            progress.info(&format!("codex-imagen: GET {url}"));
            let headers = request::base_headers(&self.identity_for(&auth), "application/json");
            let response = self
                .inner()
                .http
                .get()?
                .get(&url)
                .headers(headers)
                // A quota look-up is one small JSON answer: it must not hang a script.
                .timeout(USAGE_TIMEOUT)
                .send()
                .await
                .map_err(|e| match e.is_timeout() {
                    true => Error::Timeout(format!(
                        "{url} did not answer within {} s.",
                        USAGE_TIMEOUT.as_secs()
                    )),
                    false => Error::Transport(crate::foundation::http::transport_message(&e)),
                })?;
            let status = response.status().as_u16();
            if status == 401 && !refreshed && self.auth().settings().refresh {
                let (fresh, _) = self
                    .auth()
                    .refresh(&ctx, &auth, REASON_BACKEND_401, progress)
                    .await?;
                auth = fresh;
                refreshed = true;
                continue;
            }
            if !response.status().is_success() {
                return Err(match crate::backend::http_error(response).await {
                    Error::Http {
                        status: 401,
                        message,
                        usage_limit,
                        retry_after_secs,
                    } if refreshed => Error::Http {
                        status: 401,
                        message: still_unauthorized_message(&auth, &message),
                        usage_limit,
                        retry_after_secs,
                    },
                    other => other,
                });
            }
            let body = response
                .text()
                .await
                .map_err(|e| Error::Transport(crate::foundation::http::transport_message(&e)))?;
            return Ok((body, url));
        }
    }

    pub(crate) fn smoke_report(&self, auth: &Auth, job: &JobSpec) -> serde_json::Value {
        smoke_report(&self.inner().base_url, &self.inner().user_agent, auth, job)
    }
}
