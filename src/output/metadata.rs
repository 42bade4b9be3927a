//! Provenance: a JSON record of how an image was made, kept next to it (`--metadata sidecar`,
//! `sidecar.rs`) or inside it (`--metadata embed`: PNG text chunks in `embed.rs`, JPEG and WebP
//! XMP in `xmp.rs`). This file is the record itself.
//!
//! Design:
//! - One record shape for both modes ([`sidecar_record`]); embedding stores the same JSON, so
//!   tools can read either without caring which mode produced it.
//! - The record must be safe to share: reference URLs lose their query string and fragment
//!   (signed URLs carry tokens there) and any `user:pass@`; `data:` URLs are reduced to
//!   `data:<mime>` (the bytes are identified by their SHA-256 instead of being copied).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

#[cfg(test)]
use super::decode::sha256_hex;

#[derive(Debug, thiserror::Error)]
pub(crate) enum MetadataError {
    #[error("cannot embed metadata: the image is not a {expected} file")]
    WrongFormat { expected: &'static str },
    #[error("cannot embed metadata in {format}: unsupported format (png, jpeg or webp only)")]
    UnsupportedFormat { format: String },
    #[error("cannot embed metadata: the {format} file could not be parsed ({reason})")]
    Parse {
        format: &'static str,
        reason: String,
    },
    #[error("cannot embed metadata in jpeg: the XMP packet is {size} bytes, over the {max}-byte limit of one APP1 segment")]
    TooLarge { size: usize, max: usize },
    #[error("cannot embed metadata in webp: the image size is unreadable, so no VP8X header can be written")]
    NoCanvasSize,
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One reference image as given by the user.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReferenceInput<'a> {
    /// Local path, http(s) URL or data: URL, as given (or as resolved).
    pub(crate) source: &'a str,
    /// Hex SHA-256 of its bytes when the tool had them (local files, data: URLs); `None` for
    /// URLs passed through to the backend unfetched, which gives `"sha256": null`.
    pub(crate) sha256: Option<&'a str>,
}

/// Everything the record says, as plain values.
#[derive(Clone, Debug)]
pub(crate) struct RecordInput<'a> {
    pub(crate) prompt: &'a str,
    pub(crate) revised_prompt: Option<&'a str>,
    pub(crate) model: &'a str,
    pub(crate) image_model: Option<&'a str>,
    pub(crate) backend: &'a str,
    pub(crate) request_id: &'a str,
    pub(crate) call_id: Option<&'a str>,
    pub(crate) created: DateTime<Utc>,
    pub(crate) references: &'a [ReferenceInput<'a>],
    /// The controls object (`ImageControls::requested_json`).
    pub(crate) requested: &'a Value,
    pub(crate) format: Option<&'a str>,
    pub(crate) width: Option<u32>,
    pub(crate) height: Option<u32>,
    /// Hex SHA-256 of the final image file (`SavedImage::sha256`).
    pub(crate) sha256: &'a str,
    /// codex-imagen's version, e.g. `env!("CARGO_PKG_VERSION")`.
    pub(crate) tool_version: &'a str,
}

/// The provenance record; keys in a fixed order so files diff cleanly.
pub(crate) fn sidecar_record(input: &RecordInput<'_>) -> Value {
    let references: Vec<Value> = input
        .references
        .iter()
        .map(|r| {
            json!({
                "source": redact_source(r.source),
                "sha256": r.sha256,
            })
        })
        .collect();
    let mut m = Map::new();
    m.insert("prompt".into(), json!(input.prompt));
    m.insert("revised_prompt".into(), json!(input.revised_prompt));
    m.insert("model".into(), json!(input.model));
    m.insert("image_model".into(), json!(input.image_model));
    m.insert("backend".into(), json!(input.backend));
    m.insert("request_id".into(), json!(input.request_id));
    m.insert("call_id".into(), json!(input.call_id));
    m.insert(
        "created".into(),
        json!(input.created.to_rfc3339_opts(SecondsFormat::Secs, true)),
    );
    m.insert("references".into(), Value::Array(references));
    m.insert("requested".into(), input.requested.clone());
    m.insert("format".into(), json!(input.format));
    m.insert("width".into(), json!(input.width));
    m.insert("height".into(), json!(input.height));
    m.insert("sha256".into(), json!(input.sha256));
    m.insert(
        "tool".into(),
        json!({"name": "codex-imagen", "version": input.tool_version}),
    );
    Value::Object(m)
}

/// What a reference is called in the record: never a secret, never a multi-MB data URL.
pub(crate) fn redact_source(source: &str) -> String {
    if let Some(rest) = strip_prefix_ci(source, "data:") {
        let end = rest.find([';', ',']).unwrap_or(rest.len());
        return format!("data:{}", &rest[..end]);
    }
    let scheme_len = if strip_prefix_ci(source, "https://").is_some() {
        8
    } else if strip_prefix_ci(source, "http://").is_some() {
        7
    } else {
        return source.to_string();
    };
    let cut = source.find(['?', '#']).unwrap_or(source.len());
    let (scheme, rest) = source[..cut].split_at(scheme_len);
    // userinfo is everything before an '@' in the authority (up to the first '/').
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    format!("{scheme}{rest}")
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Embedded {
    /// The new file contents.
    Image(Vec<u8>),
    /// The image carries C2PA; it was not touched. Write a sidecar and warn.
    RefusedC2pa,
}

pub(crate) fn parse_err(format: &'static str) -> impl Fn(img_parts::Error) -> MetadataError {
    move |e| match e {
        img_parts::Error::WrongSignature => MetadataError::WrongFormat { expected: format },
        other => MetadataError::Parse {
            format,
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    pub(crate) fn record() -> Value {
        let requested = json!({"size": "1536x864", "quality": "high"});
        let png_bytes = b"fake reference bytes";
        let refs = [
            ReferenceInput {
                source: "/home/u/cat.png",
                sha256: Some(&sha256_hex(png_bytes)),
            },
            ReferenceInput {
                source: "https://user:pw@example.com/a/b.png?sig=SECRET#frag",
                sha256: None,
            },
            ReferenceInput {
                source: "data:image/webp;base64,UklGRg==",
                sha256: Some(&sha256_hex(b"RIFF")),
            },
        ];
        sidecar_record(&RecordInput {
            prompt: "a cat & a \"dog\" <3",
            revised_prompt: Some("A cat and a dog."),
            model: "gpt-5.4",
            image_model: Some("gpt-image-2"),
            backend: "responses",
            request_id: "req_123",
            call_id: Some("ig_1"),
            created: Utc.with_ymd_and_hms(2026, 12, 1, 20, 30, 5).unwrap(),
            references: &refs,
            requested: &requested,
            format: Some("png"),
            width: Some(1536),
            height: Some(864),
            sha256: "ab".repeat(32).as_str(),
            tool_version: "0.9.0",
        })
    }

    #[test]
    fn sidecar_content_and_order() {
        let r = record();
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "prompt",
                "revised_prompt",
                "model",
                "image_model",
                "backend",
                "request_id",
                "call_id",
                "created",
                "references",
                "requested",
                "format",
                "width",
                "height",
                "sha256",
                "tool"
            ]
        );
        assert_eq!(r["created"], "2026-12-01T20:30:05Z");
        assert_eq!(
            r["references"],
            json!([
                {"source": "/home/u/cat.png", "sha256": sha256_hex(b"fake reference bytes")},
                {"source": "https://example.com/a/b.png", "sha256": null},
                {"source": "data:image/webp", "sha256": sha256_hex(b"RIFF")},
            ])
        );
        assert_eq!(r["requested"]["size"], "1536x864");
        assert_eq!(
            r["tool"],
            json!({"name": "codex-imagen", "version": "0.9.0"})
        );
        assert_eq!(
            (r["width"].as_u64(), r["format"].as_str()),
            (Some(1536), Some("png"))
        );
    }

    #[test]
    fn sha256_known_value() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_source("HTTPS://h.example/x.png?a=1"),
            "HTTPS://h.example/x.png"
        );
        assert_eq!(redact_source("http://h.example"), "http://h.example");
        assert_eq!(
            redact_source("https://h.example/p@q.png"),
            "https://h.example/p@q.png"
        );
        assert_eq!(redact_source("data:image/png,xyz"), "data:image/png");
        assert_eq!(redact_source("data:"), "data:");
        assert_eq!(redact_source("./refs/a?b.png"), "./refs/a?b.png");
    }
}
