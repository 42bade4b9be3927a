//! `--metadata embed` for JPEG and WebP: one XMP packet holding the provenance record. JPEG XMP
//! is limited to one APP1 segment (~64 KB); Extended XMP is not implemented, so a bigger record
//! is an error and the caller falls back to a sidecar, as for any embed error.

use img_parts::jpeg::{markers, Jpeg, JpegSegment};
use img_parts::riff::{RiffChunk, RiffContent};
use img_parts::webp::{WebP, CHUNK_VP8X, CHUNK_XMP};
use img_parts::{Bytes, ImageICC};

use super::metadata::MetadataError;
use super::metadata::{parse_err, Embedded};

pub(crate) const XMP_JPEG_HEADER: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";

/// A JPEG segment's length field counts itself (2 bytes) and is a u16.
pub(crate) const JPEG_SEGMENT_MAX: usize = 65535 - 2;

/// Namespace of the record property in XMP. Any stable URI works; readers match on it.
pub(crate) const XMP_NAMESPACE: &str = "urn:codex-imagen:xmp:1.0/";

pub(crate) fn embed_jpeg(
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
pub(crate) const VP8X_XMP: u8 = 0x04;

pub(crate) fn embed_webp(
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
