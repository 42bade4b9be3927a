//! Classifying a reference: a URL the backend fetches itself (`http(s)://`, `data:image/...`)
//! or a local path. Job types (`Reference::classify`) and the reference loader both ask here.

/// An `http(s)://` or `data:image/...` URL (case-insensitive prefix).
pub(crate) fn is_url(value: &str) -> bool {
    let lower = value.get(..11).unwrap_or(value).to_ascii_lowercase();
    lower.starts_with("data:image/")
        || lower.starts_with("http://")
        || lower.starts_with("https://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_or_data_image() {
        assert!(is_url("HTTPS://example.com/a.png"));
        assert!(is_url("data:image/png;base64,AAAA"));
        assert!(!is_url("data:text/plain,hi"));
        assert!(!is_url("ftp://x"));
    }
}
