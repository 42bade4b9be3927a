//! Provenance: a JSON record of how an image was made, kept next to it (`--metadata sidecar`)
//! or inside it (`--metadata embed`).
//!
//! Design:
//! - One record shape for both modes ([`sidecar_record`]); embedding stores the same JSON, so
//!   tools can read either without caring which mode produced it.
//! - The record must be safe to share: reference URLs lose their query string and fragment
//!   (signed URLs carry tokens there) and any `user:pass@`; `data:` URLs are reduced to
//!   `data:<mime>` (the bytes are identified by their SHA-256 instead of being copied).
//! - Sidecars are written atomically (unique temp file in the same directory, fsync, rename),
//!   so a crash or a concurrent job never leaves a half-written `.json` next to an image.
//! - Embedding goes through `img-parts`, which keeps every other chunk/segment byte-for-byte.
//!   PNG gets `tEXt` (Latin-1) or `iTXt` (anything else) chunks before `IEND`; JPEG and WebP get
//!   one XMP packet. Our own earlier entries (same keyword / an existing XMP packet) are
//!   replaced so re-embedding never duplicates.
//! - An image carrying C2PA Content Credentials is never rewritten: the manifest signs the
//!   file's bytes, so any edit would break it. [`embed`] returns [`Embedded::RefusedC2pa`] and
//!   the caller writes a sidecar instead, with a warning. The check is repeated here (rather than
//!   taken from `output::inspect`) so this module is safe to call on its own.
//! - JPEG XMP is limited to one APP1 segment (~64 KB). Extended XMP is not implemented; a bigger
//!   record is an error and the caller should fall back to a sidecar, as for any embed error.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use img_parts::jpeg::{markers, Jpeg, JpegSegment};
use img_parts::png::{Png, PngChunk};
use img_parts::riff::{RiffChunk, RiffContent};
use img_parts::webp::{WebP, CHUNK_VP8X, CHUNK_XMP};
use img_parts::{Bytes, ImageICC};
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

/// `a.png` → `a.png.json`: keeps the pairing obvious and never collides with another image.
pub(crate) fn sidecar_path(image_path: &Path) -> PathBuf {
    let mut name = OsString::from(image_path.as_os_str());
    name.push(".json");
    PathBuf::from(name)
}

/// Writes `<image path>.json` atomically and returns its path.
pub(crate) fn write_sidecar(image_path: &Path, record: &Value) -> Result<PathBuf, MetadataError> {
    let target = sidecar_path(image_path);
    let mut text = serde_json::to_string_pretty(record).map_err(|e| MetadataError::Io {
        path: target.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    text.push('\n');
    // Synced before the rename: a crash right after it must not leave an empty record.
    super::atomic::replace_file(&target, &[text.as_bytes()], true).map_err(|source| {
        MetadataError::Io {
            path: target.display().to_string(),
            source,
        }
    })?;
    Ok(target)
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Embedded {
    /// The new file contents.
    Image(Vec<u8>),
    /// The image carries C2PA; it was not touched. Write a sidecar and warn.
    RefusedC2pa,
}

const XMP_JPEG_HEADER: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
/// A JPEG segment's length field counts itself (2 bytes) and is a u16.
const JPEG_SEGMENT_MAX: usize = 65535 - 2;
/// Namespace of the record property in XMP. Any stable URI works; readers match on it.
pub(crate) const XMP_NAMESPACE: &str = "urn:codex-imagen:xmp:1.0/";
const PNG_RECORD_KEYWORD: &str = "codex-imagen";

/// Embeds the prompt, the software name and the JSON record into the image.
///
/// `format` is `png`, `jpeg` (or `jpg`) or `webp` and must match the bytes.
pub(crate) fn embed(
    bytes: &[u8],
    format: &str,
    description: &str,
    software: &str,
    record_json: &str,
) -> Result<Embedded, MetadataError> {
    match format.to_ascii_lowercase().as_str() {
        "png" => embed_png(bytes, description, software, record_json),
        "jpeg" | "jpg" => embed_jpeg(bytes, description, software, record_json),
        "webp" => embed_webp(bytes, description, software, record_json),
        other => Err(MetadataError::UnsupportedFormat {
            format: other.to_string(),
        }),
    }
}

fn parse_err(format: &'static str) -> impl Fn(img_parts::Error) -> MetadataError {
    move |e| match e {
        img_parts::Error::WrongSignature => MetadataError::WrongFormat { expected: format },
        other => MetadataError::Parse {
            format,
            reason: other.to_string(),
        },
    }
}

fn embed_png(
    bytes: &[u8],
    description: &str,
    software: &str,
    record_json: &str,
) -> Result<Embedded, MetadataError> {
    let mut png = Png::from_bytes(Bytes::copy_from_slice(bytes)).map_err(parse_err("png"))?;
    if png.chunk_by_type(*b"caBX").is_some() {
        return Ok(Embedded::RefusedC2pa);
    }
    let keywords = ["Description", "Software", PNG_RECORD_KEYWORD];
    png.chunks_mut().retain(|c| {
        !(matches!(&c.kind(), b"tEXt" | b"iTXt")
            && text_keyword(c.contents()).is_some_and(|k| keywords.contains(&k)))
    });
    let new_chunks = [
        png_text_chunk("Description", description),
        png_text_chunk("Software", software),
        // Always iTXt: JSON is UTF-8 and readers expect it verbatim.
        png_itxt_chunk(PNG_RECORD_KEYWORD, record_json),
    ];
    let iend = png
        .chunks()
        .iter()
        .position(|c| c.kind() == *b"IEND")
        .ok_or_else(|| MetadataError::Parse {
            format: "png",
            reason: "no IEND chunk".into(),
        })?;
    for (i, chunk) in new_chunks.into_iter().enumerate() {
        png.chunks_mut().insert(iend + i, chunk);
    }
    Ok(Embedded::Image(png.encoder().bytes().to_vec()))
}

fn text_keyword(contents: &[u8]) -> Option<&str> {
    let end = contents.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&contents[..end]).ok()
}

/// tEXt when the text is Latin-1 without NUL (the widest support), iTXt otherwise.
fn png_text_chunk(keyword: &str, text: &str) -> PngChunk {
    let latin1: Option<Vec<u8>> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok().filter(|&b| b != 0))
        .collect();
    match latin1 {
        Some(encoded) => {
            let mut data = Vec::with_capacity(keyword.len() + 1 + encoded.len());
            data.extend_from_slice(keyword.as_bytes());
            data.push(0);
            data.extend_from_slice(&encoded);
            PngChunk::new(*b"tEXt", Bytes::from(data))
        }
        None => png_itxt_chunk(keyword, text),
    }
}

/// Uncompressed iTXt: keyword, NUL, flag 0, method 0, empty language, NUL, empty translated
/// keyword, NUL, UTF-8 text.
fn png_itxt_chunk(keyword: &str, text: &str) -> PngChunk {
    let mut data = Vec::with_capacity(keyword.len() + 5 + text.len());
    data.extend_from_slice(keyword.as_bytes());
    data.extend_from_slice(&[0, 0, 0, 0, 0]);
    data.extend_from_slice(text.as_bytes());
    PngChunk::new(*b"iTXt", Bytes::from(data))
}

fn embed_jpeg(
    bytes: &[u8],
    description: &str,
    software: &str,
    record_json: &str,
) -> Result<Embedded, MetadataError> {
    let mut jpeg = Jpeg::from_bytes(Bytes::copy_from_slice(bytes)).map_err(parse_err("jpeg"))?;
    if jpeg.segments_by_marker(markers::APP11).any(|s| {
        s.contents().starts_with(b"JP") && s.contents().windows(4).take(32).any(|w| w == b"jumb")
    }) {
        return Ok(Embedded::RefusedC2pa);
    }
    let packet = xmp_packet(description, software, record_json);
    let size = XMP_JPEG_HEADER.len() + packet.len();
    if size > JPEG_SEGMENT_MAX {
        return Err(MetadataError::TooLarge {
            size,
            max: JPEG_SEGMENT_MAX,
        });
    }
    let is_xmp =
        |s: &JpegSegment| s.marker() == markers::APP1 && s.contents().starts_with(XMP_JPEG_HEADER);
    jpeg.segments_mut().retain(|s| !is_xmp(s));
    let mut content = Vec::with_capacity(size);
    content.extend_from_slice(XMP_JPEG_HEADER);
    content.extend_from_slice(packet.as_bytes());
    // Readers expect XMP right after JFIF (APP0) and Exif (APP1), before tables and frame.
    let at = jpeg
        .segments()
        .iter()
        .position(|s| !matches!(s.marker(), markers::APP0 | markers::APP1))
        .unwrap_or(jpeg.segments().len());
    jpeg.segments_mut().insert(
        at,
        JpegSegment::new_with_contents(markers::APP1, Bytes::from(content)),
    );
    Ok(Embedded::Image(jpeg.encoder().bytes().to_vec()))
}

/// VP8X flag bits (WebP container spec).
const VP8X_XMP: u8 = 0x04;

fn embed_webp(
    bytes: &[u8],
    description: &str,
    software: &str,
    record_json: &str,
) -> Result<Embedded, MetadataError> {
    let mut webp = WebP::from_bytes(Bytes::copy_from_slice(bytes)).map_err(parse_err("webp"))?;
    if webp.has_chunk(*b"C2PA") {
        return Ok(Embedded::RefusedC2pa);
    }
    let packet = xmp_packet(description, software, record_json);
    webp.remove_chunks_by_id(CHUNK_XMP);
    // XMP is the last chunk in the container order (after image data and EXIF).
    webp.chunks_mut().push(RiffChunk::new(
        CHUNK_XMP,
        RiffContent::Data(Bytes::from(packet.into_bytes())),
    ));
    // Any metadata chunk needs the extended format. img-parts creates or refreshes the VP8X
    // header (canvas size, alpha/ICC/EXIF flags) whenever its metadata setters run, so putting
    // the ICC profile back unchanged is the supported way to make it do that.
    let icc = webp.icc_profile();
    webp.set_icc_profile(icc);
    // img-parts only sets the XMP flag when it creates VP8X, not on an existing one.
    let vp8x = webp
        .chunks_mut()
        .iter_mut()
        .find(|c| c.id() == CHUNK_VP8X)
        .ok_or(MetadataError::NoCanvasSize)?;
    if let RiffContent::Data(data) = vp8x.content_mut() {
        let mut flags = data.to_vec();
        if let Some(first) = flags.first_mut() {
            *first |= VP8X_XMP;
        }
        *data = Bytes::from(flags);
    }
    Ok(Embedded::Image(webp.encoder().bytes().to_vec()))
}

/// An XMP packet with dc:description, xmp:CreatorTool and the record in our namespace.
pub(crate) fn xmp_packet(description: &str, software: &str, record_json: &str) -> String {
    format!(
        "<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n\
         <x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n\
         \x20<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n\
         \x20 <rdf:Description rdf:about=\"\"\n\
         \x20   xmlns:dc=\"http://purl.org/dc/elements/1.1/\"\n\
         \x20   xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\"\n\
         \x20   xmlns:codeximagen=\"{ns}\">\n\
         \x20  <dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">{d}</rdf:li></rdf:Alt></dc:description>\n\
         \x20  <xmp:CreatorTool>{s}</xmp:CreatorTool>\n\
         \x20  <codeximagen:record>{r}</codeximagen:record>\n\
         \x20 </rdf:Description>\n\
         \x20</rdf:RDF>\n\
         </x:xmpmeta>\n\
         <?xpacket end=\"w\"?>",
        ns = XMP_NAMESPACE,
        d = xml_escape(description),
        s = xml_escape(software),
        r = xml_escape(record_json),
    )
}

/// Escapes markup characters and keeps the output valid XML 1.0: characters XML cannot carry
/// at all (most C0 controls, U+FFFE/U+FFFF) become U+FFFD, and CR is written as a reference so
/// parsers do not normalise it away.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::io::Cursor;

    fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn rgba() -> image::DynamicImage {
        image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(24, 16, |x, y| {
            image::Rgba([x as u8 * 8, y as u8 * 8, 64, 200])
        }))
    }

    fn rgb() -> image::DynamicImage {
        image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(24, 16, |x, y| {
            image::Rgb([x as u8 * 8, y as u8 * 8, 64])
        }))
    }

    fn record() -> Value {
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

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("imaging-meta-{tag}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn sidecar_written_atomically() {
        let dir = temp_dir("sidecar");
        let image = dir.join("a.png");
        let path = write_sidecar(&image, &record()).unwrap();
        assert_eq!(path, dir.join("a.png.json"));
        let back: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, record());
        // Overwrite in place, and no temp files left behind.
        write_sidecar(&image, &json!({"x": 1})).unwrap();
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [OsString::from("a.png.json")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sidecar_failure_leaves_no_temp() {
        let dir = temp_dir("fail");
        // The target is a directory, so rename fails after the temp file was written.
        std::fs::create_dir(dir.join("b.png.json")).unwrap();
        std::fs::write(dir.join("b.png.json").join("keep"), b"x").unwrap();
        let err = write_sidecar(&dir.join("b.png"), &json!({})).unwrap_err();
        assert!(err.to_string().starts_with("cannot write "), "{err}");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [OsString::from("b.png.json")]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(write_sidecar(Path::new("/nonexistent-dir-xyz/a.png"), &json!({})).is_err());
    }

    fn png_texts(bytes: &[u8]) -> Vec<(String, String, String)> {
        let png = Png::from_bytes(Bytes::copy_from_slice(bytes)).unwrap();
        png.chunks()
            .iter()
            .filter(|c| matches!(&c.kind(), b"tEXt" | b"iTXt"))
            .map(|c| {
                let kind = String::from_utf8(c.kind().to_vec()).unwrap();
                let data = c.contents();
                let nul = data.iter().position(|&b| b == 0).unwrap();
                let key = String::from_utf8(data[..nul].to_vec()).unwrap();
                let text = if kind == "tEXt" {
                    data[nul + 1..].iter().map(|&b| b as char).collect()
                } else {
                    // flag, method, then language and translated keyword (both NUL-terminated).
                    let rest = &data[nul + 3..];
                    let a = rest.iter().position(|&b| b == 0).unwrap();
                    let rest = &rest[a + 1..];
                    let b = rest.iter().position(|&b| b == 0).unwrap();
                    String::from_utf8(rest[b + 1..].to_vec()).unwrap()
                };
                (kind, key, text)
            })
            .collect()
    }

    #[test]
    fn png_round_trip() {
        let original = encode(rgba(), image::ImageFormat::Png);
        let json = record().to_string();
        let Embedded::Image(out) = embed(
            &original,
            "png",
            "café au lait",
            "codex-imagen 0.9.0",
            &json,
        )
        .unwrap() else {
            panic!("refused")
        };
        assert_eq!(
            png_texts(&out),
            [
                ("tEXt".into(), "Description".into(), "café au lait".into()),
                (
                    "tEXt".into(),
                    "Software".into(),
                    "codex-imagen 0.9.0".into()
                ),
                ("iTXt".into(), "codex-imagen".into(), json.clone()),
            ]
        );
        let png = Png::from_bytes(Bytes::from(out.clone())).unwrap();
        assert_eq!(png.chunks().last().unwrap().kind(), *b"IEND");
        let decoded = image::load_from_memory(&out).unwrap();
        assert_eq!(decoded.to_rgba8(), rgba().to_rgba8());

        // Non-Latin-1 goes to iTXt; embedding again replaces instead of duplicating.
        let Embedded::Image(again) = embed(&out, "png", "猫 🐱", "codex-imagen 1.0", "{}").unwrap()
        else {
            panic!("refused")
        };
        assert_eq!(
            png_texts(&again),
            [
                ("iTXt".into(), "Description".into(), "猫 🐱".into()),
                ("tEXt".into(), "Software".into(), "codex-imagen 1.0".into()),
                ("iTXt".into(), "codex-imagen".into(), "{}".into()),
            ]
        );
    }

    fn xmp_record(packet: &str) -> String {
        let open = "<codeximagen:record>";
        let start = packet.find(open).unwrap() + open.len();
        let end = packet.find("</codeximagen:record>").unwrap();
        packet[start..end]
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    #[test]
    fn jpeg_round_trip() {
        let original = encode(rgb(), image::ImageFormat::Jpeg);
        let json = record().to_string();
        let Embedded::Image(out) = embed(
            &original,
            "jpeg",
            "a cat & a \"dog\" <3",
            "codex-imagen 0.9.0",
            &json,
        )
        .unwrap() else {
            panic!("refused")
        };
        let jpeg = Jpeg::from_bytes(Bytes::from(out.clone())).unwrap();
        let xmp: Vec<_> = jpeg
            .segments_by_marker(markers::APP1)
            .filter(|s| s.contents().starts_with(XMP_JPEG_HEADER))
            .collect();
        assert_eq!(xmp.len(), 1);
        let packet = std::str::from_utf8(&xmp[0].contents()[XMP_JPEG_HEADER.len()..]).unwrap();
        assert!(packet.contains(
            "<rdf:li xml:lang=\"x-default\">a cat &amp; a &quot;dog&quot; &lt;3</rdf:li>"
        ));
        assert!(packet.contains("<xmp:CreatorTool>codex-imagen 0.9.0</xmp:CreatorTool>"));
        assert_eq!(xmp_record(packet), json);
        assert_eq!(
            serde_json::from_str::<Value>(&xmp_record(packet)).unwrap(),
            record()
        );
        // Decodes to the same pixels: only a metadata segment was added.
        let a = image::load_from_memory(&out).unwrap().to_rgb8();
        let b = image::load_from_memory(&original).unwrap().to_rgb8();
        assert_eq!(a, b);
        // Re-embedding keeps one packet.
        let Embedded::Image(again) = embed(&out, "jpg", "x", "y", "{}").unwrap() else {
            panic!()
        };
        let jpeg = Jpeg::from_bytes(Bytes::from(again)).unwrap();
        assert_eq!(
            jpeg.segments_by_marker(markers::APP1)
                .filter(|s| s.contents().starts_with(XMP_JPEG_HEADER))
                .count(),
            1
        );
    }

    #[test]
    fn jpeg_too_large() {
        let original = encode(rgb(), image::ImageFormat::Jpeg);
        let big = "x".repeat(70_000);
        match embed(&original, "jpeg", "p", "s", &big) {
            Err(MetadataError::TooLarge { max, .. }) => assert_eq!(max, 65533),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn webp_round_trip() {
        for img in [rgba(), rgb()] {
            let original = encode(img.clone(), image::ImageFormat::WebP);
            let json = record().to_string();
            let Embedded::Image(out) =
                embed(&original, "webp", "a <b>", "codex-imagen 0.9.0", &json).unwrap()
            else {
                panic!("refused")
            };
            let webp = WebP::from_bytes(Bytes::from(out.clone())).unwrap();
            assert_eq!(webp.chunks()[0].id(), CHUNK_VP8X);
            let flags = webp.chunks()[0].content().data().unwrap()[0];
            assert_ne!(flags & VP8X_XMP, 0);
            // The alpha flag follows the image (VP8L alpha bit), not a guess.
            assert_eq!(flags & 0x10 != 0, img.color().has_alpha());
            assert_eq!(webp.dimensions(), Some((24, 16)));
            let data = webp
                .chunk_by_id(CHUNK_XMP)
                .unwrap()
                .content()
                .data()
                .unwrap();
            let packet = std::str::from_utf8(data).unwrap();
            assert!(packet.contains("<rdf:li xml:lang=\"x-default\">a &lt;b&gt;</rdf:li>"));
            assert_eq!(xmp_record(packet), json);
            let decoded = image::load_from_memory(&out).unwrap();
            assert_eq!(decoded.to_rgba8(), img.to_rgba8());
            // Again, now that VP8X exists: still one packet, flag still set.
            let Embedded::Image(again) = embed(&out, "webp", "b", "s", "{}").unwrap() else {
                panic!("refused")
            };
            let webp = WebP::from_bytes(Bytes::from(again.clone())).unwrap();
            assert_eq!(webp.chunks_by_id(CHUNK_XMP).count(), 1);
            assert_ne!(webp.chunks()[0].content().data().unwrap()[0] & VP8X_XMP, 0);
            assert!(image::load_from_memory(&again).is_ok());
        }
    }

    fn jumbf_app11() -> Vec<u8> {
        let mut v = b"JP\x00\x01\x00\x00\x00\x01\x00\x00\x00\x20jumb\x00\x00\x00\x18jumd".to_vec();
        v.extend_from_slice(b"c2pa\0\x11\0\x10\x80\0\xaa\0\x38\x9b\x71\x03\x03c2pa\0");
        v
    }

    #[test]
    fn c2pa_images_are_left_alone() {
        let png = {
            let mut p =
                Png::from_bytes(Bytes::from(encode(rgba(), image::ImageFormat::Png))).unwrap();
            let at = p.chunks().len() - 1;
            p.chunks_mut().insert(
                at,
                PngChunk::new(*b"caBX", Bytes::from(jumbf_app11()[8..].to_vec())),
            );
            p.encoder().bytes().to_vec()
        };
        let jpeg = {
            let mut j =
                Jpeg::from_bytes(Bytes::from(encode(rgb(), image::ImageFormat::Jpeg))).unwrap();
            j.segments_mut().insert(
                1,
                JpegSegment::new_with_contents(markers::APP11, Bytes::from(jumbf_app11())),
            );
            j.encoder().bytes().to_vec()
        };
        let webp = {
            let mut w =
                WebP::from_bytes(Bytes::from(encode(rgb(), image::ImageFormat::WebP))).unwrap();
            w.chunks_mut().push(RiffChunk::new(
                *b"C2PA",
                RiffContent::Data(Bytes::from(jumbf_app11()[8..].to_vec())),
            ));
            w.encoder().bytes().to_vec()
        };
        for (bytes, format) in [(&png, "png"), (&jpeg, "jpeg"), (&webp, "webp")] {
            let before = bytes.clone();
            assert_eq!(
                embed(bytes, format, "p", "s", "{}").unwrap(),
                Embedded::RefusedC2pa,
                "{format}"
            );
            assert_eq!(*bytes, before);
        }
    }

    #[test]
    fn wrong_or_unknown_format() {
        let png = encode(rgba(), image::ImageFormat::Png);
        assert_eq!(
            embed(&png, "jpeg", "p", "s", "{}").unwrap_err().to_string(),
            "cannot embed metadata: the image is not a jpeg file"
        );
        assert_eq!(
            embed(&png, "gif", "p", "s", "{}").unwrap_err().to_string(),
            "cannot embed metadata in gif: unsupported format (png, jpeg or webp only)"
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(
            xml_escape("a&b<c>d\"e'f"),
            "a&amp;b&lt;c&gt;d&quot;e&apos;f"
        );
        assert_eq!(xml_escape("l1\r\nl2\t\u{1}"), "l1&#xD;\nl2\t\u{fffd}");
        assert_eq!(xml_escape("猫"), "猫");
    }
}
