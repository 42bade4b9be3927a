//! The OAuth token request (SPEC §7): one POST to the token endpoint with the Codex client id,
//! bounded to 120 s, and what its failures mean (text and kind). Nothing here touches a store.

use std::time::Duration;

use serde_json::{json, Value};

use super::token::{jwt_exp, normalize_expires_ms, now_ms};
use crate::foundation::error::{Error, RefreshErrorKind, Result};

pub const CODEX_OAUTH_CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
pub(crate) const REFRESH_CALL_TIMEOUT_MS: u64 = 120_000;

/// POST the refresh token; the status and body of whatever answered.
pub(crate) async fn post(
    client: &reqwest::Client,
    refresh_url: &str,
    user_agent: &str,
    refresh_token: &str,
) -> Result<(u16, String)> {
    let body = json!({
        "client_id": CODEX_OAUTH_CLIENT_ID,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
    });
    let timed_out = || {
        Error::refresh(
            RefreshErrorKind::Network,
            format!("OAuth refresh exceeded {REFRESH_CALL_TIMEOUT_MS}ms."),
        )
    };
    let sent = client
        .post(refresh_url)
        .timeout(Duration::from_millis(REFRESH_CALL_TIMEOUT_MS))
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .header("originator", "codex_cli_rs")
        .header("user-agent", user_agent)
        .body(body.to_string())
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Err(timed_out()),
        Err(e) => {
            return Err(Error::refresh(
                RefreshErrorKind::Network,
                format!(
                    "OAuth refresh request to {refresh_url} could not be sent: {}",
                    crate::foundation::http::transport_message(&e)
                ),
            ))
        }
    };
    let status = response.status().as_u16();
    let text = match response.text().await {
        Ok(t) => t,
        Err(e) if e.is_timeout() => return Err(timed_out()),
        Err(_) => String::new(),
    };
    Ok((status, text))
}

/// `error` when a string, else `error.code`, else `code`.
fn error_code(body: &str) -> Option<String> {
    let parsed: Value = serde_json::from_str(body).ok()?;
    if let Some(s) = parsed.get("error").and_then(Value::as_str) {
        return Some(s.to_string());
    }
    parsed
        .get("error")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .or_else(|| parsed.get("code").and_then(Value::as_str))
        .map(str::to_string)
}

pub(crate) fn is_reuse_error(status: u16, body: &str) -> bool {
    if status != 401 {
        return false;
    }
    if error_code(body).as_deref() == Some("refresh_token_reused") {
        return true;
    }
    let lower = body.to_lowercase();
    lower.contains("refresh_token_reused")
        || lower.contains("refresh token has already been used")
        || lower.contains("already been used to generate a new access token")
}

pub(crate) fn refresh_failure_text(status: u16, body: &str) -> String {
    const SIGN_IN: &str = "Sign in again with Codex or OpenClaw OAuth.";
    if status == 401 {
        return match error_code(body).as_deref() {
            Some("refresh_token_expired") => format!("Refresh token expired. {SIGN_IN}"),
            Some("refresh_token_reused") => format!("Refresh token was already used. {SIGN_IN}"),
            Some("refresh_token_invalidated") => format!("Refresh token was revoked. {SIGN_IN}"),
            _ if is_reuse_error(status, body) => {
                format!("Refresh token was already used. {SIGN_IN}")
            }
            _ => format!("Refresh token was rejected. {SIGN_IN}"),
        };
    }
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let field = |path: &[&str]| {
        let mut v = parsed.as_ref()?;
        for key in path {
            v = v.get(*key)?;
        }
        v.as_str().map(str::to_string)
    };
    let message = field(&["error", "message"])
        .or_else(|| field(&["error_description"]))
        .or_else(|| field(&["message"]))
        .unwrap_or_else(|| body.trim().to_string());
    format!("Refresh request failed: HTTP {status}: {message}")
}

/// The kind of a failed token-endpoint answer, from the same codes as its text.
pub(crate) fn refresh_failure_kind(status: u16, body: &str) -> RefreshErrorKind {
    if status != 401 {
        return RefreshErrorKind::Failed;
    }
    match error_code(body).as_deref() {
        Some("refresh_token_expired") => RefreshErrorKind::Expired,
        Some("refresh_token_reused") => RefreshErrorKind::Reused,
        Some("refresh_token_invalidated") => RefreshErrorKind::Revoked,
        _ if is_reuse_error(status, body) => RefreshErrorKind::Reused,
        _ => RefreshErrorKind::Rejected,
    }
}

/// New `expires` in ms: `expires_at`, else now + `expires_in`, else the new JWT's `exp`.
pub(crate) fn refreshed_expires_ms(response: &Value) -> Option<i64> {
    if let Some(at) = response.get("expires_at").filter(|v| v.is_number()) {
        return normalize_expires_ms(at);
    }
    if let Some(secs) = response.get("expires_in").and_then(Value::as_f64) {
        return Some(now_ms() + (secs * 1000.0) as i64);
    }
    response
        .get("access_token")
        .and_then(Value::as_str)
        .and_then(jwt_exp)
        .map(|e| e * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_texts_follow_the_spec() {
        assert_eq!(
            refresh_failure_text(401, r#"{"error":{"code":"refresh_token_expired"}}"#),
            "Refresh token expired. Sign in again with Codex or OpenClaw OAuth."
        );
        assert_eq!(
            refresh_failure_text(401, r#"{"error":"refresh_token_invalidated"}"#),
            "Refresh token was revoked. Sign in again with Codex or OpenClaw OAuth."
        );
        assert_eq!(
            refresh_failure_text(401, r#"{"code":"refresh_token_reused"}"#),
            "Refresh token was already used. Sign in again with Codex or OpenClaw OAuth."
        );
        assert_eq!(
            refresh_failure_text(401, "nope"),
            "Refresh token was rejected. Sign in again with Codex or OpenClaw OAuth."
        );
        assert_eq!(
            refresh_failure_text(500, r#"{"error_description":"down"}"#),
            "Refresh request failed: HTTP 500: down"
        );
        assert_eq!(
            refresh_failure_text(502, "  bad gateway \n"),
            "Refresh request failed: HTTP 502: bad gateway"
        );
    }

    #[test]
    fn reuse_errors_are_recognised_by_code_or_wording() {
        assert!(is_reuse_error(
            401,
            r#"{"error":{"code":"refresh_token_reused"}}"#
        ));
        assert!(is_reuse_error(
            401,
            "Your refresh token has already been used"
        ));
        assert!(!is_reuse_error(400, r#"{"error":"refresh_token_reused"}"#));
    }

    /// Outputs of OpenClaw's own `oauthLockPathDigest` (its source text, extracted from the
    /// 2026.6.6, 2026.6.8, 2026.8.2 and 2026.9.6 bundles and run with node over
    /// `JSON.stringify([provider, profileId])`; all four agree).

    #[test]
    fn failure_kinds_follow_the_codes() {
        let kind = refresh_failure_kind;
        assert_eq!(
            kind(401, r#"{"error":{"code":"refresh_token_expired"}}"#),
            RefreshErrorKind::Expired
        );
        assert_eq!(
            kind(401, r#"{"error":"refresh_token_invalidated"}"#),
            RefreshErrorKind::Revoked
        );
        assert_eq!(
            kind(401, "Your refresh token has already been used"),
            RefreshErrorKind::Reused
        );
        assert_eq!(kind(401, "nope"), RefreshErrorKind::Rejected);
        assert_eq!(kind(500, "down"), RefreshErrorKind::Failed);
    }
}
