//! The `--mask` file: checked to be a PNG with an alpha channel (transparent pixels mark the
//! area to edit, OpenAI's convention), then sent as a `data:image/png` URL.
//!
//! The check reads only PNG chunk headers. It keeps its own small walker rather than using
//! `output::inspect` because it must tell "truncated" apart from "no alpha", which inspection
//! does not.

use base64::Engine as _;

use crate::foundation::controls::ControlError;

const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// Validates a mask file and returns it as a `data:image/png;base64,...` URL.
///
/// The backend uses the mask's alpha channel to mark the editable area, so a PNG without one is
/// rejected here rather than failing (or silently editing everything) server-side.
pub(crate) fn mask_data_url(bytes: &[u8], path_for_messages: &str) -> Result<String, ControlError> {
    const F: &str = "--mask";
    if let Some(reason) = mask_problem(bytes) {
        return Err(ControlError::new(
            F,
            format!("{F} {path_for_messages}: {reason}"),
        ));
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    Ok(format!("data:image/png;base64,{b64}"))
}

/// Why `bytes` cannot be a mask, in words without a flag (the service names its field).
pub(crate) fn mask_problem(bytes: &[u8]) -> Option<&'static str> {
    if !bytes.starts_with(PNG_SIGNATURE) {
        return Some("not a PNG file (the mask must be a PNG with an alpha channel)");
    }
    match png_has_alpha(bytes) {
        Some(true) => None,
        Some(false) => Some(
            "the PNG has no alpha channel; transparent pixels mark the area to edit, so save the mask as RGBA",
        ),
        None => Some("the PNG is truncated or corrupt"),
    }
}

/// Colour type 4/6, or a `tRNS` chunk before the image data. `None`: no readable IHDR.
fn png_has_alpha(bytes: &[u8]) -> Option<bool> {
    let mut pos = PNG_SIGNATURE.len();
    let mut seen_ihdr = false;
    while let Some(header) = bytes.get(pos..pos + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = &header[4..8];
        let data = bytes.get(pos + 8..(pos + 8).checked_add(len)?)?;
        match kind {
            b"IHDR" => {
                let colour_type = *data.get(9)?;
                if matches!(colour_type, 4 | 6) {
                    return Some(true);
                }
                seen_ihdr = true;
            }
            b"tRNS" => return Some(true),
            // tRNS must precede IDAT, so nothing later can add alpha.
            b"IDAT" | b"IEND" => return seen_ihdr.then_some(false),
            _ => {}
        }
        pos = pos + 12 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::controls::tests::err;

    /// Minimal PNG: signature, IHDR with the given colour type, optional tRNS, IDAT, IEND.
    /// CRCs are zero: the mask check reads structure only, it does not decode.
    fn png(colour_type: u8, trns: bool) -> Vec<u8> {
        let mut out = PNG_SIGNATURE.to_vec();
        let mut chunk = |kind: &[u8; 4], data: &[u8]| {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            out.extend_from_slice(&[0; 4]);
        };
        chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, colour_type, 0, 0, 0]);
        if trns {
            chunk(b"tRNS", &[0, 0]);
        }
        chunk(b"IDAT", &[0; 4]);
        chunk(b"IEND", &[]);
        out
    }

    #[test]
    fn mask_checks() {
        let rgba = png(6, false);
        let url = mask_data_url(&rgba, "m.png").unwrap();
        assert!(url.starts_with("data:image/png;base64,iVBORw0KGgo"));
        assert!(mask_data_url(&png(4, false), "m.png").is_ok());
        assert!(mask_data_url(&png(2, true), "m.png").is_ok());
        assert_eq!(
            err(mask_data_url(&png(2, false), "masks/m.png")),
            "--mask masks/m.png: the PNG has no alpha channel; transparent pixels mark the area \
             to edit, so save the mask as RGBA"
        );
        assert_eq!(
            err(mask_data_url(b"\xff\xd8\xff\xe0 jpeg", "m.jpg")),
            "--mask m.jpg: not a PNG file (the mask must be a PNG with an alpha channel)"
        );
        assert_eq!(
            err(mask_data_url(&rgba[..20], "m.png")),
            "--mask m.png: the PNG is truncated or corrupt"
        );
    }
}
