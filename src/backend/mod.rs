//! Talking to the Codex backend: the request ([`request`], [`references`]), the event stream
//! ([`sse`], [`stream`], [`calls`], [`errors`]), one attempt against the Responses endpoint
//! ([`responses`]) or the typed Images endpoints ([`images`]), and what both share: sending
//! with ChatGPT's Cloudflare cookies ([`cookies`], [`post_json`]) and explaining a non-2xx
//! answer ([`explain`], [`http_error`]); and the quota report ([`usage`]).

pub mod body;
pub mod calls;
pub mod cookies;
pub mod errors;
pub mod explain;
pub mod headroom;
pub mod images;
pub mod mask;
pub mod references;
pub mod request;
pub mod responses;
pub mod sse;
pub mod stream;
pub mod usage;

use reqwest::header::{HeaderMap, HeaderValue, COOKIE};

use crate::foundation::error::{Error, Result};
use crate::foundation::events::Reporter;
use crate::foundation::http::transport_message;

/// `HTTP <status> <reason>\n<body>` with the body cut at 4000 chars (SPEC §11), after a
/// plain-words explanation for a usage limit (429) or a Cloudflare challenge (403).
pub async fn http_error(response: reqwest::Response) -> Error {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("");
    Error::Http {
        status: status.as_u16(),
        message: explain::http_error_message(
            status.as_u16(),
            reason,
            &headers,
            &text,
            chrono::Local::now(),
        ),
        usage_limit: (status.as_u16() == 429)
            .then(|| explain::usage_limit(&text, chrono::Utc::now()))
            .flatten(),
        retry_after_secs: headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok()),
    }
}

/// POST a JSON body, sending the run's ChatGPT Cloudflare cookies and remembering new ones
/// (SPEC §10.3). A 403 that set such cookies is Cloudflare asking for them back: it is sent again
/// once, at once, with them ([`cookies::retry_with_cookies`] decides). Any other answer is
/// returned as it is; a failure to connect is a transport error.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    headers: HeaderMap,
    body: Vec<u8>,
    jar: &mut cookies::CookieJar,
    progress: &Reporter,
) -> Result<reqwest::Response> {
    let body = bytes::Bytes::from(body);
    let mut cookie_retried = false;
    loop {
        let mut request = client.post(url).headers(headers.clone()).body(body.clone());
        if let Some(cookie) = jar
            .header_for(url)
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            request = request.header(COOKIE, cookie);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::Transport(transport_message(&e)))?;
        let set = jar.remember(url, response.headers());
        if cookies::retry_with_cookies(response.status().as_u16(), set, cookie_retried) {
            progress.info("codex-imagen: retrying with ChatGPT Cloudflare cookies");
            cookie_retried = true;
            continue;
        }
        return Ok(response);
    }
}
