//! The studio: the web page at `/` (issue #23), a client of the same JSON API every other
//! client uses (`/v1/images/*`, `/v1/jobs`, `/v1/history`, `/v1/studio/status`).
//!
//! Design (dufs' habit): plain HTML, CSS and ES modules in `serve/studio/`, compiled into the
//! binary with `include_str!` — no build step, no CDN, works offline. The page needs no token to
//! load (it holds nothing secret); everything it reads or does goes through the token-checked
//! API. Every answer carries a strict Content-Security-Policy: scripts, styles and connections
//! only from this origin, images also from `blob:` (thumbnails fetched with the token) and
//! `data:` (streamed previews), no inline script or style, no framing. The page inserts every
//! text with `textContent`, so a prompt is never HTML.

use axum::extract::Path;
use axum::http::{header, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page's files: name, content type, text.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("studio/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("studio/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("studio/api.js"),
    ),
    (
        "create.js",
        "text/javascript; charset=utf-8",
        include_str!("studio/create.js"),
    ),
    (
        "gallery.js",
        "text/javascript; charset=utf-8",
        include_str!("studio/gallery.js"),
    ),
    (
        "details.js",
        "text/javascript; charset=utf-8",
        include_str!("studio/details.js"),
    ),
    (
        "mask.js",
        "text/javascript; charset=utf-8",
        include_str!("studio/mask.js"),
    ),
    ("icon.svg", "image/svg+xml", include_str!("studio/icon.svg")),
];

const INDEX: &str = include_str!("studio/index.html");

/// The page's routes; they need no token.
pub(crate) fn pages<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/studio/{name}", get(asset))
}

fn page_response(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-cache"),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                "same-origin",
            ),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    page_response("text/html; charset=utf-8", INDEX)
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => page_response(content_type, body),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_or_style_and_names_only_embedded_files() {
        let lower = INDEX.to_ascii_lowercase();
        assert!(!lower.contains("<style"));
        assert!(!lower.contains(" style="));
        for (at, _) in lower.match_indices(" on") {
            let rest = &lower[at + 3..];
            let name_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
            assert!(
                !rest[name_len..].starts_with('='),
                "no inline event handler attribute: {}",
                &lower[at..at + 20]
            );
        }
        for tag in lower.split("<script").skip(1) {
            assert!(tag
                .trim_start()
                .starts_with("type=\"module\" src=\"/studio/"));
        }
        for (name, _, body) in ASSETS {
            if name.ends_with(".js") {
                assert!(!body.contains("innerHTML"), "{name} must not use innerHTML");
                assert!(!body.contains("eval("), "{name} must not eval");
            }
        }
    }
}
