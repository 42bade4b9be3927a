//! What keeps other web pages from driving the service (issue #20), as ollama's
//! `allowedHostsMiddleware` does for its loopback API.
//!
//! - Without a token (the loopback default) nothing else protects the service, so a request
//!   whose `Host` is not the bound address, a loopback name with its port (`localhost`,
//!   `127.0.0.1`, `[::1]`) or an `--allow-host` name is refused with 421: that is what a DNS
//!   rebinding page sends. A state-changing request (`POST`, `DELETE`) whose `Origin` is another
//!   origin than the `Host`'s own and not a `--cors-origin` is refused with 403. With a token,
//!   the bearer check is the guard (a page cannot read or send it), as in ollama.
//! - `POST` bodies must say `application/json` (edits: or `multipart/form-data`); anything else
//!   is 415, so a page's "simple" cross-origin request (`text/plain`, no preflight) never
//!   reaches a handler.
//! - CORS is off unless `--cors-origin` names origins; then tower-http answers their preflights
//!   and marks their answers.
//! - File URLs in answers use the request's `Host` only when it passed the same rule
//!   ([`files_base`]), else the bound address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::ApiError;

/// What the guard knows of the service.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    pub bound: SocketAddr,
    pub allow_hosts: Arc<Vec<String>>,
    pub cors_origins: Arc<Vec<String>>,
    /// A token is set: Host and Origin are not checked.
    pub token: bool,
}

/// `Host` split into its lower-case name (brackets kept for IPv6) and port.
fn split_host(host: &str) -> Option<(String, Option<u16>)> {
    let host = host.trim().to_ascii_lowercase();
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        let (name, rest) = host.split_at(end + 1);
        match rest.strip_prefix(':') {
            Some(port) => (name.to_string(), Some(port.parse().ok()?)),
            None if rest.is_empty() => (name.to_string(), None),
            None => return None,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name.to_string(), Some(port.parse().ok()?)),
            None => (host.clone(), None),
        }
    };
    let name = name.trim_end_matches('.').to_string();
    (!name.is_empty()).then_some((name, port))
}

/// Whether `host` (a `Host` header) names this service.
pub(crate) fn host_allowed(host: &str, bound: SocketAddr, allow_hosts: &[String]) -> bool {
    let Some((name, port)) = split_host(host) else {
        return false;
    };
    if allow_hosts.contains(&name) {
        return true;
    }
    let port_ok = match port {
        Some(port) => port == bound.port(),
        None => bound.port() == 80,
    };
    if !port_ok {
        return false;
    }
    if name == "localhost" {
        return true;
    }
    match name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => ip.is_loopback() || ip == bound.ip(),
        Err(_) => false,
    }
}

/// `http://<host>` for file URLs: the request's `Host` when it passed the rule, else the bound
/// address.
pub(crate) fn files_base(guard: &Guard, headers: &HeaderMap) -> String {
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) if host_allowed(host, guard.bound, &guard.allow_hosts) => {
            format!("http://{}", host.trim())
        }
        _ => format!("http://{}", guard.bound),
    }
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Host and Origin, when no token protects the service.
pub(crate) async fn check_host_and_origin(
    State(guard): State<Guard>,
    request: Request,
    next: Next,
) -> Response {
    if guard.token {
        return next.run(request).await;
    }
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    let Some(host) = host.filter(|h| host_allowed(h, guard.bound, &guard.allow_hosts)) else {
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "invalid_request_error",
            format!(
                "This service answers to http://{} and loopback names only; start it with --allow-host NAME to answer to another name.",
                guard.bound
            ),
        )
        .code("host_not_allowed")
        .into_response();
    };
    if is_state_changing(request.method()) {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin
                .to_str()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            // A reverse proxy may terminate TLS for an `--allow-host` name: either scheme of
            // the Host's own origin is the same site.
            let own = host.trim().to_ascii_lowercase();
            let same = origin == format!("http://{own}") || origin == format!("https://{own}");
            if !same && !guard.cors_origins.contains(&origin) {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "invalid_request_error",
                    "Requests from other web pages are refused; start the service with --cors-origin ORIGIN to allow one.",
                )
                .code("origin_not_allowed")
                .into_response();
            }
        }
    }
    next.run(request).await
}

/// The media type of a POST body: JSON everywhere, multipart for edits too; else 415.
pub(crate) async fn check_body_type(request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let path = request.uri().path();
    let multipart_ok = path == "/v1/images/edits";
    if !matches!(
        path,
        "/v1/images/generations" | "/v1/images/edits" | "/v1/jobs"
    ) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = given
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || (multipart_ok && essence == "multipart/form-data") {
        return next.run(request).await;
    }
    let wanted = if multipart_ok {
        "application/json or multipart/form-data"
    } else {
        "application/json"
    };
    let shown: String = given.chars().take(100).collect();
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_request_error",
        if shown.is_empty() {
            format!("The request body needs Content-Type: {wanted}.")
        } else {
            format!("The request body needs Content-Type: {wanted}, not '{shown}'.")
        },
    )
    .code("unsupported_media_type")
    .into_response()
}

/// CORS for the `--cors-origin` origins; none without them.
pub(crate) fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let values: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(values))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .expose_headers([header::RETRY_AFTER]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_the_bound_address_loopback_names_or_allowed_names() {
        let bound: SocketAddr = "127.0.0.1:4312".parse().unwrap();
        let allow = vec!["images.example.com".to_string()];
        for ok in [
            "127.0.0.1:4312",
            "localhost:4312",
            "LOCALHOST:4312",
            "[::1]:4312",
            "images.example.com",
            "images.example.com:443",
        ] {
            assert!(host_allowed(ok, bound, &allow), "{ok}");
        }
        for bad in [
            "attacker.example:4312",
            "attacker.example",
            "localhost:9999",
            "localhost",
            "127.0.0.1",
            "10.0.0.1:4312",
            "localhost.attacker.example:4312",
            "",
            "[::1",
        ] {
            assert!(!host_allowed(bad, bound, &allow), "{bad}");
        }
    }
}
