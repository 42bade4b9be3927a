//! `--metadata embed`: the provenance record inside the image. PNG gets `tEXt` (Latin-1) or
//! `iTXt` (anything else) chunks before `IEND` (here); JPEG and WebP get one XMP packet
//! (`xmp.rs`).
//!
//! Design:
//! - Embedding goes through `img-parts`, which keeps every other chunk/segment byte-for-byte.
//!   Our own earlier entries (same keyword / an existing XMP packet) are replaced so
//!   re-embedding never duplicates.
//! - An image carrying C2PA Content Credentials is never rewritten: the manifest signs the
//!   file's bytes, so any edit would break it. [`embed`] returns [`Embedded::RefusedC2pa`] and
//!   the caller writes a sidecar instead, with a warning. The check is repeated here (rather than
//!   taken from `output::inspect`) so this module is safe to call on its own.

use img_parts::png::{Png, PngChunk};
use img_parts::Bytes;

use super::metadata::MetadataError;
use super::metadata::{parse_err, Embedded};
use super::xmp::{embed_jpeg, embed_webp};

pub(crate) const PNG_RECORD_KEYWORD: &str = "codex-imagen";

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

pub(crate) fn embed_png(
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

pub(crate) fn text_keyword(contents: &[u8]) -> Option<&str> {
    let end = contents.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&contents[..end]).ok()
}

/// tEXt when the text is Latin-1 without NUL (the widest support), iTXt otherwise.
pub(crate) fn png_text_chunk(keyword: &str, text: &str) -> PngChunk {
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
pub(crate) fn png_itxt_chunk(keyword: &str, text: &str) -> PngChunk {
    let mut data = Vec::with_capacity(keyword.len() + 5 + text.len());
    data.extend_from_slice(keyword.as_bytes());
    data.extend_from_slice(&[0, 0, 0, 0, 0]);
    data.extend_from_slice(text.as_bytes());
    PngChunk::new(*b"iTXt", Bytes::from(data))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::output::metadata::tests::record;
    use crate::output::xmp::{VP8X_XMP, XMP_JPEG_HEADER};
    use img_parts::jpeg::{markers, Jpeg, JpegSegment};
    use img_parts::riff::{RiffChunk, RiffContent};
    use img_parts::webp::{WebP, CHUNK_VP8X, CHUNK_XMP};
    use serde_json::Value;
    use std::io::Cursor;

    pub(crate) fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    pub(crate) fn rgba() -> image::DynamicImage {
        image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(24, 16, |x, y| {
            image::Rgba([x as u8 * 8, y as u8 * 8, 64, 200])
        }))
    }

    pub(crate) fn rgb() -> image::DynamicImage {
        image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(24, 16, |x, y| {
            image::Rgb([x as u8 * 8, y as u8 * 8, 64])
        }))
    }

    pub(crate) fn png_texts(bytes: &[u8]) -> Vec<(String, String, String)> {
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
    pub(crate) fn png_round_trip() {
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

    pub(crate) fn jumbf_app11() -> Vec<u8> {
        let mut v = b"JP\x00\x01\x00\x00\x00\x01\x00\x00\x00\x20jumb\x00\x00\x00\x18jumd".to_vec();
        v.extend_from_slice(b"c2pa\0\x11\0\x10\x80\0\xaa\0\x38\x9b\x71\x03\x03c2pa\0");
        v
    }

    #[test]
    pub(crate) fn c2pa_images_are_left_alone() {
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
    pub(crate) fn wrong_or_unknown_format() {
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
}
