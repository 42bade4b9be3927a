//! Talking to the Codex backend: the request ([`request`], [`references`]), the event stream
//! ([`sse`], [`stream`], [`calls`], [`errors`]) and one attempt against the Responses endpoint
//! ([`responses`]).

pub mod calls;
pub mod errors;
pub mod references;
pub mod request;
pub mod responses;
pub mod sse;
pub mod stream;

use crate::error::Error;

const BODY_PREVIEW_CHARS: usize = 4000;

/// A reqwest error with its causes, e.g. `error sending request ...: tcp connect error: Connection refused`.
pub fn transport_message(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// `HTTP <status> <reason>\n<body>` with the body cut at 4000 chars (SPEC §11).
pub async fn http_error(response: reqwest::Response) -> Error {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let preview = if text.chars().count() > BODY_PREVIEW_CHARS {
        let cut: String = text.chars().take(BODY_PREVIEW_CHARS).collect();
        format!("{cut}...")
    } else {
        text
    };
    let reason = status.canonical_reason().unwrap_or("");
    Error::Http {
        status: status.as_u16(),
        message: format!("HTTP {} {reason}\n{preview}", status.as_u16()),
    }
}
