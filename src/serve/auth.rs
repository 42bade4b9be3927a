//! The service token: when one is set, every endpoint but `GET /health` needs
//! `Authorization: Bearer <token>`; anything else is a 401 in OpenAI's error shape.
//!
//! Both sides are hashed with SHA-256 first and the digests compared in constant time
//! (`subtle`), so neither the token's bytes nor its length leak through timing. The token is
//! never logged or echoed.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ring::digest::{digest, SHA256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use std::sync::Arc;

/// The digest of the configured token, computed once.
#[derive(Clone)]
pub(crate) struct TokenCheck {
    expected: Option<Arc<[u8; 32]>>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

impl TokenCheck {
    pub(crate) fn new(token: Option<&str>) -> Self {
        TokenCheck {
            expected: token.map(|t| Arc::new(sha256(t.as_bytes()))),
        }
    }

    /// True when `header` (the Authorization value) carries the token, or none is required.
    pub(crate) fn allows(&self, header: Option<&str>) -> bool {
        let Some(expected) = &self.expected else {
            return true;
        };
        let Some(given) = header.and_then(bearer) else {
            return false;
        };
        bool::from(sha256(given.as_bytes()).ct_eq(expected.as_ref()))
    }
}

fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

pub(crate) async fn require_token(
    State(check): State<TokenCheck>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if check.allows(header) {
        return next.run(request).await;
    }
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        "Missing or wrong bearer token: send Authorization: Bearer <the service token>.",
    )
    .code("invalid_api_key")
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_passes() {
        let check = TokenCheck::new(Some("s3cret"));
        assert!(check.allows(Some("Bearer s3cret")));
        assert!(check.allows(Some("bearer  s3cret ")));
        assert!(!check.allows(Some("Bearer s3cre")));
        assert!(!check.allows(Some("s3cret")));
        assert!(!check.allows(None));
        assert!(TokenCheck::new(None).allows(None));
    }
}
