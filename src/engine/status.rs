//! What every front-end says about the credentials in use: the `--smoke` report, also the MCP
//! `auth_status` tool and the service's `/health`. Redacted by construction: it names the store,
//! the profile and the expiry, never a token.

use serde_json::{json, Value};

use crate::foundation::job::{Backend, JobSpec};
use crate::auth::fence::CredentialState;
use crate::auth::Auth;

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
        Backend::Images => generation.clone(),
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
