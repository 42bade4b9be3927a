//! Classifying a reference: a URL the backend fetches itself (`http(s)://`, `data:image/...`)
//! or a local path. Job types (`Reference::classify`) and the reference loader both ask here, and
//! a value written as another kind of URL (`ftp://`, `data:text/...`) is named as such rather
//! than read as a path.

/// An `http(s)://` or `data:image/...` URL (case-insensitive prefix).
pub(crate) fn is_url(value: &str) -> bool {
    let lower = value.get(..11).unwrap_or(value).to_ascii_lowercase();
    lower.starts_with("data:image/")
        || lower.starts_with("http://")
        || lower.starts_with("https://")
}

/// The scheme of a value that is written as a URL this tool does not fetch: `ftp` for
/// `ftp://x/y.png`, `data` for a `data:` URL that is not an image. `None` for supported URLs and
/// for anything else (a path, a Windows drive `C:\x` or `C:/x`).
pub(crate) fn unsupported_scheme(value: &str) -> Option<String> {
    if is_url(value) {
        return None;
    }
    let (scheme, rest) = value.split_once(':')?;
    let lower = scheme.to_ascii_lowercase();
    if lower == "data" {
        return Some(lower);
    }
    let is_scheme = scheme.len() >= 2
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    (is_scheme && rest.starts_with("//")).then_some(lower)
}

/// The message for a reference given as an unsupported URL, naming its flag or field.
pub(crate) fn unsupported_message(what: &str, value: &str, scheme: &str) -> String {
    let shown: String = value.chars().take(80).collect();
    let shown = if shown.len() < value.len() {
        format!("{shown}…")
    } else {
        shown
    };
    let kind = if scheme == "data" {
        "data: URLs must be images (data:image/...)".to_string()
    } else {
        format!("the URL scheme {scheme}: is not supported")
    };
    format!(
        "Unsupported {what} {shown}: {kind}; use an http(s):// or data:image/... URL, or a local file path"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_schemes_are_named() {
        assert_eq!(unsupported_scheme("ftp://x/y.png").as_deref(), Some("ftp"));
        assert_eq!(unsupported_scheme("S3://b/k.png").as_deref(), Some("s3"));
        assert_eq!(
            unsupported_scheme("data:text/plain,hi").as_deref(),
            Some("data")
        );
        assert_eq!(unsupported_scheme("https://x/y.png"), None);
        assert_eq!(unsupported_scheme("C:\\img\\a.png"), None);
        assert_eq!(unsupported_scheme("C://img/a.png"), None);
        assert_eq!(unsupported_scheme("a.png"), None);
        assert_eq!(unsupported_scheme("dir:x/a.png"), None);
        assert_eq!(
            unsupported_message("reference image", "ftp://x/y.png", "ftp"),
            "Unsupported reference image ftp://x/y.png: the URL scheme ftp: is not supported; \
             use an http(s):// or data:image/... URL, or a local file path"
        );
    }

    #[test]
    fn urls_must_be_http_or_data_image() {
        assert!(is_url("HTTPS://example.com/a.png"));
        assert!(is_url("data:image/png;base64,AAAA"));
        assert!(!is_url("data:text/plain,hi"));
        assert!(!is_url("ftp://x"));
    }
}
