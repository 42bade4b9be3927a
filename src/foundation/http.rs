//! The HTTP client one engine shares (credentials refresh and backend requests alike), built on
//! first use, and the text of a transport failure with its causes.

use crate::foundation::error::{Error, Result};

/// The HTTP client every job of an engine shares, built on first use: `--smoke` and the
/// service's `/health` never pay for the TLS set-up (root certificates) they do not need.
#[derive(Clone, Default)]
pub(crate) struct HttpClient {
    cell: std::sync::Arc<std::sync::OnceLock<reqwest::Client>>,
}

impl HttpClient {
    pub(crate) fn get(&self) -> Result<reqwest::Client> {
        if let Some(client) = self.cell.get() {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::Io(format!("Cannot create the HTTP client: {e}")))?;
        // Two first uses at once may both build one; either is fine to keep.
        Ok(self.cell.get_or_init(|| client).clone())
    }
}

/// A reqwest error with its causes, e.g. `error sending request ...: tcp connect error: Connection refused`.
pub(crate) fn transport_message(err: &reqwest::Error) -> String {
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
