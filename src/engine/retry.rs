//! When a failed attempt is tried again, and how long to wait first (SPEC §12).
//!
//! [`retry_reason`] is the single decision: it matches every error kind explicitly, so a new
//! kind of failure cannot become retryable by accident. A generation costs the user quota, so
//! nothing that happened after an image was saved is ever retried (those failures are
//! `Error::Stream` or a success with `timed_out`), and neither is an answer that would only be
//! repeated: a 4xx (401 has its own refresh path, 429 is the quota), a timeout, or the backend
//! declining the prompt.
//!
//! The other, narrower decision, re-sending one request at once when Cloudflare handed out the
//! cookies it wants back (SPEC §10.3), is `backend/cookies.rs`'s `retry_with_cookies`: it is
//! not a retry of a failed generation (nothing ran) and uses none of the run's retries.

use crate::backend::errors::dedupe;
use crate::foundation::error::BackendError;
use crate::foundation::error::Error;

/// Event types that show the backend accepted the request and was still working on it.
const IN_FLIGHT_EVENTS: [&str; 6] = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.image_generation_call.in_progress",
    "response.image_generation_call.generating",
    "keepalive",
];

const TRANSIENT_MARKERS: [&str; 8] = [
    "server_error",
    "internal_error",
    "server_overloaded",
    "service_unavailable",
    "temporarily_unavailable",
    "backend_error",
    "overloaded",
    "unavailable",
];

/// Backend errors that are a decision, not an accident: the prompt was refused by policy or the
/// account is out of quota. Retrying repeats the same answer (and a refused prompt sent again
/// and again is not something a user wants on their account). The README lists what is retried
/// — network failures, 5xx, server_error / overloaded / unavailable, dropped streams, typed
/// responses without data — and a refusal is none of them, so these win over SPEC §12's
/// catch-all "`response.failed` seen".
const FINAL_MARKERS: [&str; 10] = [
    "policy",
    "content_filter",
    "moderation",
    "safety",
    "refus",
    "blocked",
    "usage_limit",
    "rate_limit",
    "quota",
    "invalid_request",
];

/// Why this failure may be retried, or `None` when it must not be.
pub fn retry_reason(err: &Error) -> Option<String> {
    match err {
        Error::Http { status, .. } if (500..600).contains(status) => Some(format!("HTTP {status}")),
        Error::Http { .. } => None,
        Error::Transport(_) => Some("transport".to_string()),
        Error::GenerationFailed {
            seen_event_types,
            backend_errors,
            ..
        } => generation_failure_reason(seen_event_types, backend_errors),
        Error::Usage(_)
        | Error::Auth { .. }
        | Error::Cancelled(_)
        | Error::BadResponse(_)
        | Error::Refused { .. }
        | Error::Refresh { .. }
        | Error::Input(_)
        | Error::Io(_)
        | Error::InvalidImage(_)
        | Error::Stream(_)
        | Error::Timeout(_) => None,
    }
}

/// Code, type, status and message, lower-cased, for marker matching.
fn backend_error_text(error: &BackendError) -> String {
    [&error.code, &error.kind, &error.status]
        .into_iter()
        .flatten()
        .chain(std::iter::once(&error.message))
        .map(|s| s.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

fn backend_error_reason(error: &BackendError) -> Option<String> {
    let text = backend_error_text(error);
    TRANSIENT_MARKERS.iter().any(|m| text.contains(m)).then(|| {
        error
            .code
            .clone()
            .or_else(|| error.kind.clone())
            .or_else(|| error.status.clone())
            .unwrap_or_else(|| "backend_error".to_string())
    })
}

fn generation_failure_reason(seen: &[String], backend_errors: &[BackendError]) -> Option<String> {
    let backend_errors = dedupe(backend_errors);
    if let Some(reason) = backend_errors.iter().find_map(backend_error_reason) {
        return Some(reason);
    }
    let declined = backend_errors.iter().any(|e| {
        let text = backend_error_text(e);
        FINAL_MARKERS.iter().any(|m| text.contains(m))
    });
    if declined {
        return None;
    }
    let saw = |t: &str| seen.iter().any(|s| s == t);
    if saw("response.failed") {
        return Some("response.failed".to_string());
    }
    if saw("image_response") {
        return Some("image_response_without_data".to_string());
    }
    if seen.iter().any(|s| s.starts_with("unparsed:")) {
        return Some("unparsed_stream_event".to_string());
    }
    if seen.is_empty() {
        return Some("empty_response_stream".to_string());
    }
    if !saw("response.completed") && IN_FLIGHT_EVENTS.iter().any(|t| saw(t)) {
        return Some("stream_ended_before_completed_image".to_string());
    }
    None
}

/// `round(200 ms · 2^(r−1) · (0.9 + 0.2·random))` for retry `r` (1-based).
pub fn retry_delay_ms(retry_number: u32, base_ms: u64) -> u64 {
    let exp = 2f64.powi(retry_number.saturating_sub(1).min(30) as i32);
    let jitter = 0.9 + 0.2 * fastrand::f64();
    (base_ms as f64 * exp * jitter).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(seen: &[&str], errors: Vec<BackendError>) -> Error {
        Error::GenerationFailed {
            message: String::new(),
            seen_event_types: seen.iter().map(|s| s.to_string()).collect(),
            backend_errors: errors,
        }
    }

    fn backend(code: Option<&str>, message: &str) -> BackendError {
        BackendError {
            source: "error".into(),
            code: code.map(str::to_string),
            kind: None,
            status: None,
            param: None,
            message: message.into(),
        }
    }

    #[test]
    fn http_status_decides() {
        assert_eq!(
            retry_reason(&Error::Http {
                status: 503,
                message: String::new(),
                usage_limit: None,
                retry_after_secs: None,
            })
            .as_deref(),
            Some("HTTP 503")
        );
        for status in [400, 401, 403, 404, 429] {
            assert_eq!(
                retry_reason(&Error::Http {
                    status,
                    message: String::new(),
                    usage_limit: None,
                    retry_after_secs: None,
                }),
                None
            );
        }
    }

    #[test]
    fn generation_failures_follow_the_spec_chain() {
        assert_eq!(
            retry_reason(&failed(&[], vec![backend(Some("server_error"), "x")])).as_deref(),
            Some("server_error")
        );
        assert_eq!(
            retry_reason(&failed(
                &["error"],
                vec![backend(None, "Service Unavailable")]
            ))
            .as_deref(),
            Some("backend_error")
        );
        assert_eq!(
            retry_reason(&failed(&["response.failed"], vec![backend(None, "failed")])).as_deref(),
            Some("response.failed")
        );
        assert_eq!(
            retry_reason(&failed(&["image_response"], vec![])).as_deref(),
            Some("image_response_without_data")
        );
        assert_eq!(
            retry_reason(&failed(&["unparsed:message"], vec![])).as_deref(),
            Some("unparsed_stream_event")
        );
        assert_eq!(
            retry_reason(&failed(&[], vec![])).as_deref(),
            Some("empty_response_stream")
        );
        assert_eq!(
            retry_reason(&failed(&["keepalive"], vec![])).as_deref(),
            Some("stream_ended_before_completed_image")
        );
        assert_eq!(
            retry_reason(&failed(&["response.created", "response.completed"], vec![])),
            None
        );
        assert_eq!(
            retry_reason(&failed(
                &["error"],
                vec![backend(Some("moderation_blocked"), "refused")]
            )),
            None
        );
    }

    #[test]
    fn refusals_and_quota_in_a_failed_response_are_final() {
        for (code, message) in [
            ("content_policy_violation", "Your request was rejected"),
            (
                "moderation_blocked",
                "Your request was rejected by the safety system",
            ),
            ("usage_limit_reached", "limit"),
            ("rate_limit_exceeded", "slow down"),
            ("insufficient_quota", "no"),
            ("invalid_request_error", "bad size"),
        ] {
            let err = failed(
                &["response.created", "response.failed"],
                vec![backend(Some(code), message)],
            );
            assert_eq!(retry_reason(&err), None, "{code}");
        }
        // Without a code, the message still tells.
        let err = failed(
            &["response.failed"],
            vec![backend(None, "The model refused to generate this image")],
        );
        assert_eq!(retry_reason(&err), None);
        // A transient marker wins: the backend said it was its own fault.
        let err = failed(
            &["response.failed"],
            vec![
                backend(Some("moderation_blocked"), "no"),
                backend(Some("server_error"), "boom"),
            ],
        );
        assert_eq!(retry_reason(&err).as_deref(), Some("server_error"));
        // A model that answers in words instead of an image completed normally: final.
        let err = failed(
            &[
                "response.created",
                "response.output_item.done",
                "response.completed",
            ],
            vec![],
        );
        assert_eq!(retry_reason(&err), None);
    }

    #[test]
    fn nothing_after_an_image_or_a_timeout_is_retried() {
        assert_eq!(retry_reason(&Error::Stream("x".into())), None);
        assert_eq!(retry_reason(&Error::Timeout("x".into())), None);
        assert_eq!(retry_reason(&Error::Usage("x".into())), None);
    }

    #[test]
    fn delays_double_with_ten_percent_jitter() {
        for r in 1..=5u32 {
            let base = 200.0 * 2f64.powi(r as i32 - 1);
            for _ in 0..50 {
                let d = retry_delay_ms(r, 200) as f64;
                assert!(
                    d >= (base * 0.9).floor() && d <= (base * 1.1).ceil(),
                    "r={r} d={d}"
                );
            }
        }
    }

    #[test]
    fn an_images_answer_without_data_is_retried() {
        let payload = serde_json::json!({"data": [], "error": {"code": "image_backend_hiccup", "message": "try later"}});
        let errs = crate::backend::errors::from_payload(&payload, "image_response");
        let err = crate::backend::images::no_image_error(errs);
        assert_eq!(
            retry_reason(&err).as_deref(),
            Some("image_response_without_data")
        );
    }
}
