//! Which route a job's requests take: `/responses` (the hosted `image_generation` tool) or the
//! typed Images route (`/images/generations`, `/images/edits`), and, with `--backend auto`, when
//! a job moves from the second to the first.
//!
//! `auto` does what Codex does since its image extension became the default: the Images route
//! first. It moves the job once to `/responses` only when the Images route failed as a route —
//! HTTP 404, 405 or 410; a 400 whose error says the route or one of its parameters is not
//! supported; a 2xx answer without image data — and never after an image was saved, on a usage
//! limit, a network error or a content refusal (those keep the usual rules). A job that asks for
//! something only `/responses` has (`--partial-images`, `--action`, `--input-fidelity`) goes to
//! `/responses` from the start.

use crate::foundation::controls::ImageControls;
use crate::foundation::error::Error;
use crate::foundation::job::Backend;

/// One of the two routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Responses,
    Images,
}

impl Route {
    /// As reported in `route`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Route::Responses => "responses",
            Route::Images => "images",
        }
    }
}

/// Where a job starts, whether it may still move, and why it is where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoutePlan {
    pub first: Route,
    /// `auto` on the Images route: one move to `/responses` is still allowed.
    pub may_fall_back: bool,
    /// Why `auto` did not start on the Images route.
    pub reason: Option<String>,
}

/// The route plan for a job's backend and controls.
pub(crate) fn plan(backend: Backend, controls: &ImageControls) -> RoutePlan {
    match backend {
        Backend::Responses => RoutePlan {
            first: Route::Responses,
            may_fall_back: false,
            reason: None,
        },
        Backend::Images => RoutePlan {
            first: Route::Images,
            may_fall_back: false,
            reason: None,
        },
        Backend::Auto => match responses_only(controls) {
            Some(flag) => RoutePlan {
                first: Route::Responses,
                may_fall_back: false,
                reason: Some(format!("{flag} needs the responses route")),
            },
            None => RoutePlan {
                first: Route::Images,
                may_fall_back: true,
                reason: None,
            },
        },
    }
}

/// The first control given that only the Responses tool understands.
fn responses_only(controls: &ImageControls) -> Option<&'static str> {
    if controls.partial_images.is_some() {
        Some("--partial-images")
    } else if controls.action.is_some() {
        Some("--action")
    } else if controls.input_fidelity.is_some() {
        Some("--input-fidelity")
    } else {
        None
    }
}

/// Why `err` from the Images route is a failure of the route itself (so `auto` moves the job to
/// `/responses`), or `None` when it is not.
pub(crate) fn route_failure(err: &Error) -> Option<String> {
    match err {
        Error::Http {
            usage_limit: Some(_),
            ..
        } => None,
        Error::Http {
            status: status @ (404 | 405 | 410),
            ..
        } => Some(format!("images route answered HTTP {status}")),
        Error::Http {
            status: 400,
            message,
            ..
        } if names_something_unsupported(message) => {
            Some("images route answered HTTP 400 (unsupported)".to_string())
        }
        Error::GenerationFailed { backend_errors, .. }
            if !backend_errors
                .iter()
                .any(|e| is_refusal(&e.code, &e.message)) =>
        {
            Some("images route answered without image data".to_string())
        }
        _ => None,
    }
}

/// A 400 that says the route, or one of its parameters, is not there.
fn names_something_unsupported(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "unsupported",
        "not supported",
        "unknown parameter",
        "unrecognized request argument",
        "unrecognized parameter",
        "not found",
        "unknown_parameter",
    ]
    .iter()
    .any(|m| lower.contains(m))
}

/// A content refusal: the request was understood and declined, which another route will not fix.
fn is_refusal(code: &Option<String>, message: &str) -> bool {
    let text = format!("{} {message}", code.as_deref().unwrap_or("")).to_ascii_lowercase();
    [
        "moderation",
        "content_policy",
        "safety",
        "policy_violation",
        "refus",
    ]
    .iter()
    .any(|m| text.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::error::{BackendError, UsageLimit};

    fn http(status: u16, message: &str) -> Error {
        Error::Http {
            status,
            message: message.into(),
            usage_limit: None,
            retry_after_secs: None,
        }
    }

    #[test]
    fn auto_starts_on_images_unless_a_control_needs_responses() {
        let plain = plan(Backend::Auto, &ImageControls::default());
        assert_eq!((plain.first, plain.may_fall_back), (Route::Images, true));
        let partial = ImageControls {
            partial_images: Some(1),
            ..ImageControls::default()
        };
        let forced = plan(Backend::Auto, &partial);
        assert_eq!(forced.first, Route::Responses);
        assert!(!forced.may_fall_back);
        assert_eq!(
            forced.reason.as_deref(),
            Some("--partial-images needs the responses route")
        );
        assert!(!plan(Backend::Images, &partial).may_fall_back);
        assert_eq!(plan(Backend::Responses, &partial).first, Route::Responses);
    }

    #[test]
    fn route_failures_are_only_the_route_ones() {
        for status in [404, 405, 410] {
            assert!(route_failure(&http(status, "HTTP x")).is_some(), "{status}");
        }
        assert!(route_failure(&http(
            400,
            "HTTP 400\n{\"error\":{\"message\":\"Unsupported parameter: 'background'\"}}"
        ))
        .is_some());
        assert!(route_failure(&http(400, "HTTP 400\nprompt too long")).is_none());
        assert!(route_failure(&http(500, "HTTP 500")).is_none());
        assert!(route_failure(&http(429, "HTTP 429")).is_none());
        let limit = Error::Http {
            status: 404,
            message: String::new(),
            usage_limit: Some(UsageLimit { resets_at: None }),
            retry_after_secs: None,
        };
        assert!(route_failure(&limit).is_none());
        assert!(route_failure(&Error::Transport("refused".into())).is_none());
        let empty = Error::GenerationFailed {
            message: String::new(),
            seen_event_types: vec![],
            backend_errors: vec![],
        };
        assert!(route_failure(&empty).is_some());
        let refused = Error::GenerationFailed {
            message: String::new(),
            seen_event_types: vec![],
            backend_errors: vec![BackendError {
                source: "image_response".into(),
                code: Some("moderation_blocked".into()),
                kind: None,
                status: None,
                param: None,
                message: "blocked".into(),
            }],
        };
        assert!(route_failure(&refused).is_none());
        let words = Error::Refused {
            message: String::new(),
            seen_event_types: vec![],
        };
        assert!(route_failure(&words).is_none());
    }
}
